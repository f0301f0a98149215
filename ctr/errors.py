# -*- test-case-name: tests.unit.test_ctr_client -*-
"""
The errors ctr reports as one line, and how a gRPC error is told and described, without importing gRPC
(commands that never call the daemon must not pay for loading it).
"""

import sys


class ClientError(Exception):
    """An error found on the client side; its message is one line for the user."""


class ConnectError(ClientError):
    """No daemon answered at the address."""


def is_rpc_error(error):
    """@return: whether C{error} is a C{grpc.RpcError} (never true while gRPC is not loaded)."""
    grpc = sys.modules.get("grpc")
    return grpc is not None and isinstance(error, grpc.RpcError)


def rpc_code(error):
    """@return: the name of a gRPC error's status code (C{"NOT_FOUND"}), or C{None}."""
    code = error.code() if hasattr(error, "code") else None
    return getattr(code, "name", None)


def describe_rpc_error(error):
    """
    @return: the one-line message of a L{grpc.RpcError}: its details, or its status code's name.
    """
    details = error.details() if hasattr(error, "details") else None
    if not details:
        details = rpc_code(error) or str(error) or "unknown gRPC error"
    return " ".join(details.split())
