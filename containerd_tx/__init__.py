"""
containerd-tx: a container daemon on Twisted that drives an OCI runtime (runc or crun).
"""

__version__ = "0.1.0"

#: The daemon's version as the wire contract reports it (major, minor, patch).
VERSION_TUPLE = tuple(int(part) for part in __version__.split("."))

#: Git revision baked in at release time; empty in a development checkout. GetServerVersion reports
#: L{containerd_tx.revision.revision}, which never is.
REVISION = ""
