# -*- test-case-name: tests.unit.test_options -*-
"""
Command-line options of C{twistd containerd}: the original daemon's flags, same names and defaults.
"""

import os
import shutil

from twisted.python import usage

from containerd_tx import __version__
from containerd_tx.addresses import DEFAULT_SOCKET, socket_path
from containerd_tx.durations import format_duration, parse_duration

DEFAULT_STATE_DIR = "/run/containerd"
LOG_LEVELS = ("debug", "info", "warn", "error", "critical")


def parse_listen_address(text):
    """
    Turn a C{--listen} value into an absolute socket path.

    Accepted: C{unix:///abs/path}, C{unix://relative/path}, C{unix:path}, C{/abs/path}, C{relative/path};
    relative paths are taken from the daemon's working directory. The parsing is ctr's too
    (L{containerd_tx.addresses.socket_path}).

    @raise ValueError: for other schemes or an empty path.
    """
    return os.path.abspath(socket_path(text, "listen address"))


class DaemonOptions(usage.Options):
    """
    Options for C{twistd -n containerd}.

    After parsing, durations are seconds (floats), paths are absolute and C{runtime-args} is a list.
    """

    synopsis = "[options]"
    longdesc = (
        "High performance container daemon (containerd-tx): starts and supervises OCI containers with runc "
        "or crun, and serves the containerd gRPC API on a unix socket. Containers keep running when the "
        "daemon stops; a daemon restarted on the same --state-dir adopts them again."
    )

    optFlags = [
        ["debug", None, "enable debug output in the logs (same as --log-level debug)"],
        ["oom-notify", None, "report OOM kills as oom events (the default; kept for compatibility)"],
        ["no-oom-notify", None, "do not report OOM kills as oom events"],
    ]

    optParameters = [
        ["id", None, "deathstar", "unique containerd id to identify the instance (used in metric names)"],
        ["state-dir", None, DEFAULT_STATE_DIR, "runtime state directory"],
        ["concurrency", "c", 10, "max concurrent runtime starts (containers being created at once)", int],
        ["metrics-interval", None, "1m0s",
         "interval for flushing metrics to the log and graphite (Go duration, e.g. 30s, 5m; 0 turns it off)"],
        ["log-metrics", None, "auto",
         "periodic metrics dump in the log: on, off, or auto (off when --graphite-address or --metrics-address "
         "is set; at the default interval, idle dumps are skipped, one an hour at least)"],
        ["listen", "l", DEFAULT_SOCKET,
         "address on which the gRPC API is served: unix:///abs/path, unix://rel/path or a bare path"],
        ["graphite-address", None, "", "address of a graphite (carbon) server, host:port"],
        ["metrics-address", None, "",
         "Twisted endpoint serving Prometheus metrics and /healthz, e.g. tcp:1338:interface=127.0.0.1 (off by default)"],
        ["runtime", None, "runc", "name or path of the OCI compliant runtime to use (runc, crun)"],
        ["start-timeout", None, "30s", "timeout duration for waiting on a container to start before it is killed"],
        ["retain-count", None, 500, "number of past events to keep in the event log", int],
        ["log-level", None, "info", "log level: " + ", ".join(LOG_LEVELS)],
        ["log-format", None, "text", "log format: text or json (one JSON object per line)"],
        ["group", None, "", "group that may use the API socket (socket is root:<group>, mode 0660)"],
        ["max-subscribers", None, 128, "maximum concurrent Events streams", int],
    ]

    def __init__(self):
        super().__init__()
        self["runtime-args"] = []

    def opt_runtime_args(self, value):
        """
        Global flag passed to the runtime before its subcommand; repeatable. Values may start with --, e.g.
        --runtime-args --root=/run/x.
        """
        self["runtime-args"].append(value)

    opt_runtime_args.__doc__ = " ".join(opt_runtime_args.__doc__.split())

    def opt_metrics_interval(self, value):
        # Remembers that the interval was asked for (no docstring: the help text is the parameter's).
        self["metrics-interval"] = value
        self["metrics-interval-given"] = True

    def opt_version(self):
        """
        Print the daemon version and exit.
        """
        print(f"containerd-tx version {__version__}")
        raise SystemExit(0)

    def postOptions(self):
        """
        Validate and normalise every value; any problem is a one-line L{usage.UsageError}.
        """
        if self["debug"]:
            self["log-level"] = "debug"
        if self["oom-notify"] and self["no-oom-notify"]:
            raise usage.UsageError("--oom-notify and --no-oom-notify contradict each other: give one")
        # On unless turned off, as containerd 0.2.9 always reported OOM kills.
        self["oom-notify"] = not self["no-oom-notify"]
        if self["log-level"] not in LOG_LEVELS:
            raise usage.UsageError(
                f"invalid --log-level {self['log-level']!r}: choose one of {', '.join(LOG_LEVELS)}"
            )
        if self["log-metrics"] not in ("auto", "on", "off"):
            raise usage.UsageError(f"invalid --log-metrics {self['log-metrics']!r}: choose auto, on or off")
        self.setdefault("metrics-interval-given", False)
        if self["log-format"] not in ("text", "json"):
            raise usage.UsageError(f"invalid --log-format {self['log-format']!r}: choose text or json")
        for name in ("metrics-interval", "start-timeout"):
            try:
                self[name] = parse_duration(self[name])
            except ValueError as e:
                raise usage.UsageError(f"--{name}: {e}")
        if self["start-timeout"] <= 0:
            raise usage.UsageError("--start-timeout must be greater than 0")
        if self["concurrency"] < 1:
            raise usage.UsageError("--concurrency must be at least 1")
        if self["retain-count"] < 1:
            raise usage.UsageError("--retain-count must be at least 1")
        if self["max-subscribers"] < 1:
            raise usage.UsageError("--max-subscribers must be at least 1")
        try:
            self["listen"] = parse_listen_address(self["listen"])
        except ValueError as e:
            raise usage.UsageError(f"--listen: {e}")
        self["state-dir"] = os.path.abspath(self["state-dir"])
        self._check_state_dir(self["state-dir"])
        if self["graphite-address"]:
            self["graphite-address"] = _parse_host_port(self["graphite-address"])
        if self["group"]:
            import grp

            try:
                self["group"] = grp.getgrnam(self["group"]).gr_gid
            except KeyError:
                raise usage.UsageError(f"--group: no such group {self['group']!r}")
        else:
            self["group"] = None
        runtime = shutil.which(self["runtime"])
        if runtime is None:
            raise usage.UsageError(f"--runtime: {self['runtime']!r} not found in PATH")
        self["runtime-path"] = runtime

    @staticmethod
    def _check_state_dir(path):
        try:
            os.makedirs(path, mode=0o700, exist_ok=True)
        except OSError as e:
            raise usage.UsageError(f"--state-dir {path}: {e.strerror}")
        if not os.path.isdir(path) or not os.access(path, os.W_OK | os.X_OK):
            raise usage.UsageError(f"--state-dir {path}: not a writable directory")

    def describe(self):
        """
        The effective configuration as one log line.
        """
        return (
            f"id={self['id']} state-dir={self['state-dir']} listen=unix://{self['listen']} "
            f"runtime={self['runtime-path']} runtime-args={self['runtime-args']} "
            f"concurrency={self['concurrency']} start-timeout={format_duration(self['start-timeout'])} "
            f"retain-count={self['retain-count']} metrics-interval={format_duration(self['metrics-interval'])}"
        )


def _parse_host_port(text):
    host, sep, port = text.rpartition(":")
    # isdigit() alone accepts "²", which int() refuses; an IPv6 host needs brackets ("[::1]:2003").
    bare_ipv6 = ":" in host and not (host.startswith("[") and host.endswith("]"))
    port_ok = port.isascii() and port.isdigit() and 0 < int(port) < 65536
    if not sep or not host.strip("[]") or bare_ipv6 or not port_ok:
        raise usage.UsageError(f"--graphite-address {text!r}: expected host:port")
    return (host.strip("[]"), int(port))
