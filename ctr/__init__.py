"""
ctr: the command-line client of containerd-tx.

A thin gRPC client of the containerd 0.2 API (service C{types.API}): it imports nothing of the daemon but the
generated code in L{containerd_tx.api}. The entry point is L{ctr.main.main}.
"""
