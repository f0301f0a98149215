"""
containerd-tx: a container daemon on Twisted that drives an OCI runtime (runc or crun).
"""

__version__ = "0.1.0"

#: The daemon's version as the wire contract reports it (major, minor, patch).
VERSION_TUPLE = tuple(int(part) for part in __version__.split("."))
