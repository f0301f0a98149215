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


class SignalType(click.ParamType):
    """click type for a signal name or number (L{parse_signal}); a bad one is a usage error."""

    name = "signal"

    def convert(self, value, param, ctx):
        if isinstance(value, int):
            return value
        try:
            return parse_signal(value)
        except ValueError as error:
            self.fail(str(error), param, ctx)


#: The shared instance of L{SignalType}.
SIGNAL = SignalType()
