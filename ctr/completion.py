# -*- test-case-name: tests.unit.test_ctr_completion -*-
"""
C{ctr completion SHELL}: the shell completion script, from click's completion machinery.

The script calls C{ctr} back with C{_CTR_COMPLETE=<shell>_complete} set; container ids are completed by
asking the daemon (L{cli.complete_container_id}).
"""

import click
from click import shell_completion

#: The environment variable the completion script sets when it calls ctr back.
COMPLETE_VAR = "_CTR_COMPLETE"

#: The shells click writes completion scripts for.
SHELLS = ("bash", "zsh", "fish")


def completion_script(command, shell, prog_name="ctr"):
    """@return: the completion script of C{command} (the root group) for C{shell}."""
    complete = shell_completion.get_completion_class(shell)(command, {}, prog_name, COMPLETE_VAR)
    return complete.source()


@click.command(
    epilog="""\b
Examples:
  ctr completion bash > /etc/bash_completion.d/ctr     # in every new bash
  source <(ctr completion bash)                       # in this bash only
  ctr completion zsh > "${fpath[1]}/_ctr"              # zsh, with compinit loaded
  ctr completion fish > ~/.config/fish/completions/ctr.fish

Commands, options and container ids complete (ids are asked from the daemon at --address or
CONTAINERD_ADDRESS, quietly nothing when it does not answer). Bash needs version 4.4 or later.
""",
)
@click.argument("shell", type=click.Choice(SHELLS))
@click.pass_context
def completion(ctx, shell):
    """Print the shell completion script (bash, zsh or fish)."""
    root = ctx.find_root()
    click.echo(completion_script(root.command, shell, root.info_name or "ctr"))
