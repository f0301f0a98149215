# -*- test-case-name: tests.unit.test_ctr_cli -*-
"""
C{ctr version}: the client's and the daemon's versions.
"""

import click

from containerd_tx import __version__
from ctr import cli, output


def server_version(reply):
    """@return: a C{GetServerVersionResponse} as C{major.minor.patch}."""
    return f"{reply.major}.{reply.minor}.{reply.patch}"


@click.command(
    epilog="""\b
Examples:
  ctr version
  ctr version --format json
""",
)
@cli.format_option(plain="text")
def version(fmt):
    """Print the client's and the daemon's versions."""
    if fmt == "text":
        click.echo(f"Client: {__version__}")
    from containerd_tx.api import containerd_pb2

    reply = cli.api().GetServerVersion(containerd_pb2.GetServerVersionRequest())
    if fmt == "json":
        output.print_json({
            "client": {"version": __version__},
            "server": {
                "version": server_version(reply),
                "major": reply.major,
                "minor": reply.minor,
                "patch": reply.patch,
                "revision": reply.revision,
            },
        })
        return
    revision = f" (revision {reply.revision})" if reply.revision else ""
    click.echo(f"Server: {server_version(reply)}{revision}")
