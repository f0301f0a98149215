"""
The twistd plugin: C{twistd -n containerd [options]}. Kept tiny so that C{twistd --help} imports nothing heavy.
"""

from twisted.application.service import ServiceMaker

containerd = ServiceMaker(
    "containerd-tx",
    "containerd_tx.tap",
    "High performance container daemon driving runc/crun, serving the containerd gRPC API.",
    "containerd",
)
