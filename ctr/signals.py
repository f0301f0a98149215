# -*- test-case-name: tests.unit.test_ctr_signals -*-
"""
Signal names and numbers as C{ctr containers kill -s} takes them.
"""

import signal

import click


def parse_signal(text):
    """
    Parse a signal given by number or name: C{"9"}, C{"KILL"}, C{"SIGKILL"}, C{"kill"}.

    @return: the signal number.
    @raise ValueError: with a one-line reason for an unknown name or an out-of-range number.
    """
    value = str(text).strip()
    if value.isdigit():
        number = int(value)
        if not 1 <= number <= signal.SIGRTMAX:
            raise ValueError(f"invalid signal number {number} (1-{int(signal.SIGRTMAX)})")
        return number
    name = value.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    try:
        return int(signal.Signals[name])
    except KeyError:
        raise ValueError(f"unknown signal {text!r}") from None


def signal_names():
    """@return: the names of the standard signals without C{SIG} (C{HUP}, C{INT}, ...), in number order."""
    found = {}
    for item in signal.Signals:
        if item.name.startswith("SIG") and not item.name.startswith("SIG_") and not item.name.startswith("SIGRT"):
            found.setdefault(int(item), item.name[3:])
    return [found[number] for number in sorted(found)]


def complete_signal(incomplete):
    """
    @return: the signal names that complete C{incomplete}, as it was begun: C{K} -> C{KILL},
        C{SIGK} -> C{SIGKILL}, C{k} -> C{kill}.
    """
    prefix = "SIG" if incomplete.upper().startswith("SIG") else ""
    names = [prefix + name for name in signal_names()]
    if incomplete[:1].islower():
        names = [name.lower() for name in names]
    return [name for name in names if name.startswith(incomplete)]


class SignalType(click.ParamType):
    """click type for a signal name or number (L{parse_signal}); a bad one is a usage error."""

    name = "signal"

    def shell_complete(self, ctx, param, incomplete):
        from click.shell_completion import CompletionItem

        return [CompletionItem(name) for name in complete_signal(incomplete)]

    def convert(self, value, param, ctx):
        if isinstance(value, int):
            return value
        try:
            return parse_signal(value)
        except ValueError as error:
            self.fail(str(error), param, ctx)


#: The shared instance of L{SignalType}.
SIGNAL = SignalType()
