# -*- test-case-name: tests.unit.test_ctr_cli -*-
"""
C{ctr state}: the machine, then every container with its processes.
"""

import click

from ctr import cli, containers, output

#: The columns of each container's process table.
PROCESS_HEADERS = ["PID", "SYSTEMPID", "ARGS"]

_INDENT = "    "


def state_lines(state):
    """
    @return: the lines C{ctr state} prints for a C{StateResponse}: the machine, a blank line, and the
        containers table with each container's processes as an indented table under its row.
    """
    lines = [f"CPUS: {state.machine.cpus}", f"MEMORY: {output.human_size(state.machine.memory)}", ""]
    found = containers.sorted_containers(state)
    table = output.format_table(containers.HEADERS, [containers.container_row(c) for c in found])
    lines.append(table[0])
    for container, line in zip(found, table[1:]):
        lines.append(line)
        rows = [[p.pid, p.systemPid, " ".join(p.args)] for p in container.processes]
        lines.extend(_INDENT + text for text in output.format_table(PROCESS_HEADERS, rows))
    return lines


@click.command(
    epilog="""\b
Examples:
  ctr state
  ctr state --format json               # one line: {"containers": [...], "machine": {...}}
""",
)
@cli.format_option()
def state(fmt):
    """Print the machine, then every container and its processes."""
    from containerd_tx.api import containerd_pb2

    reply = cli.api().State(containerd_pb2.StateRequest())
    if fmt == "json":
        output.print_json({
            "machine": {"cpus": reply.machine.cpus, "memory": reply.machine.memory},
            "containers": [containers.container_dict(c) for c in containers.sorted_containers(reply)],
        })
        return
    for line in state_lines(reply):
        click.echo(line)
