"""
Tests for L{containerd_tx.options}: the options of C{twistd containerd}, and the plugin as twistd runs it.
"""

import grp
import io
import os
import shutil
import subprocess
import sys

from twisted.python import usage
from twisted.trial.unittest import SkipTest, SynchronousTestCase, TestCase

from containerd_tx import __version__
from containerd_tx.options import DEFAULT_SOCKET, DEFAULT_STATE_DIR, DaemonOptions, parse_listen_address

TWISTD = os.path.join(os.path.dirname(sys.executable), "twistd")
OPERATIONS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "docs",
                          "operations.md")

ALL_OPTIONS = (
    "--id", "--debug", "--state-dir", "--concurrency", "--metrics-interval", "--listen", "--oom-notify",
    "--graphite-address", "--version", "--runtime", "--runtime-args", "--start-timeout", "--retain-count",
    "--log-level",
)


class DefaultsTests(SynchronousTestCase):
    """
    Without options, every value is the original daemon's default.
    """

    def test_raw_defaults(self):
        """
        Before parsing, the defaults are the documented ones (nothing is created on the host).
        """
        options = DaemonOptions()
        self.assertEqual(options["id"], "deathstar")
        self.assertEqual(options["state-dir"], "/run/containerd")
        self.assertEqual(DEFAULT_STATE_DIR, "/run/containerd")
        self.assertEqual(options["listen"], "/run/containerd/containerd.sock")
        self.assertEqual(DEFAULT_SOCKET, "/run/containerd/containerd.sock")
        self.assertEqual(options["runtime"], "runc")
        self.assertEqual(options["runtime-args"], [])
        self.assertEqual(options["log-level"], "info")
        self.assertEqual(options["graphite-address"], "")
        self.assertFalse(options["debug"])
        self.assertFalse(options["oom-notify"])

    def test_parsed_defaults(self):
        """
        Parsing with only a state dir and a runtime gives every other default, converted: durations in seconds,
        counts as ints.
        """
        state_dir = self.mktemp()
        options = DaemonOptions()
        options.parseOptions(["--state-dir", state_dir, "--runtime", sys.executable])
        self.assertEqual(options["id"], "deathstar")
        self.assertEqual(options["state-dir"], os.path.abspath(state_dir))
        self.assertEqual(options["concurrency"], 10)
        self.assertIsInstance(options["concurrency"], int)
        self.assertEqual(options["metrics-interval"], 60.0)
        self.assertIsInstance(options["metrics-interval"], float)
        self.assertEqual(options["listen"], "/run/containerd/containerd.sock")
        self.assertEqual(options["start-timeout"], 30.0)
        self.assertIsInstance(options["start-timeout"], float)
        self.assertEqual(options["retain-count"], 500)
        self.assertIsInstance(options["retain-count"], int)
        self.assertEqual(options["max-subscribers"], 128)
        self.assertEqual(options["runtime-args"], [])
        self.assertEqual(options["log-level"], "info")
        self.assertEqual(options["log-format"], "text")
        self.assertIsNone(options["group"])
        self.assertEqual(options["graphite-address"], "")
        self.assertTrue(options["oom-notify"])
        self.assertEqual(options["runtime-path"], shutil.which(sys.executable))

    def test_default_runtime_is_runc(self):
        """
        Without --runtime, runc is looked up in PATH.
        """
        runc = shutil.which("runc")
        if runc is None:
            raise SkipTest("runc is not installed")
        options = DaemonOptions()
        options.parseOptions(["--state-dir", self.mktemp()])
        self.assertEqual(options["runtime"], "runc")
        self.assertEqual(options["runtime-path"], runc)

    def test_state_dir_created(self):
        """
        postOptions creates a missing state dir (and its parents), private to the owner.
        """
        state_dir = os.path.join(self.mktemp(), "a", "b")
        options = DaemonOptions()
        options.parseOptions(["--state-dir", state_dir, "--runtime", sys.executable])
        self.assertTrue(os.path.isdir(state_dir))
        self.assertEqual(os.stat(state_dir).st_mode & 0o777, 0o700)

    def test_relative_state_dir_made_absolute(self):
        """
        A relative --state-dir is made absolute from the working directory.
        """
        state_dir = self.mktemp()
        self.assertFalse(os.path.isabs(state_dir))
        options = _parse(self, "--state-dir", state_dir)
        self.assertEqual(options["state-dir"], os.path.join(os.getcwd(), state_dir))


def _parse(case, *args):
    """
    Parse C{args} with a fresh temporary state dir and this interpreter as the runtime (unless given).
    """
    argv = list(args)
    if "--state-dir" not in argv:
        argv = ["--state-dir", case.mktemp()] + argv
    if "--runtime" not in argv:
        argv = ["--runtime", sys.executable] + argv
    options = DaemonOptions()
    options.parseOptions(argv)
    return options


class ValuesTests(SynchronousTestCase):
    """
    Given values are read, converted and normalised.
    """

    def test_concurrency(self):
        """
        -c and --concurrency set the start concurrency as an int.
        """
        self.assertEqual(_parse(self, "-c", "3")["concurrency"], 3)
        self.assertEqual(_parse(self, "--concurrency", "25")["concurrency"], 25)
        self.assertEqual(_parse(self, "--concurrency=1")["concurrency"], 1)

    def test_listen_unix_absolute(self):
        """
        unix:///abs/path serves on /abs/path.
        """
        self.assertEqual(_parse(self, "-l", "unix:///tmp/x/api.sock")["listen"], "/tmp/x/api.sock")
        self.assertEqual(_parse(self, "--listen", "unix:///tmp/y.sock")["listen"], "/tmp/y.sock")

    def test_listen_unix_relative(self):
        """
        unix://rel/path is taken from the working directory.
        """
        self.assertEqual(
            _parse(self, "--listen", "unix://rel/api.sock")["listen"], os.path.join(os.getcwd(), "rel", "api.sock")
        )

    def test_listen_bare_path(self):
        """
        A bare path, absolute or relative, is a unix socket path.
        """
        self.assertEqual(_parse(self, "--listen", "/tmp/z.sock")["listen"], "/tmp/z.sock")
        self.assertEqual(_parse(self, "-l", "z.sock")["listen"], os.path.join(os.getcwd(), "z.sock"))

    def test_listen_normalised(self):
        """
        The socket path is normalised (no "..", no doubled slashes).
        """
        self.assertEqual(parse_listen_address("unix:///tmp//a/../b.sock"), "/tmp/b.sock")

    def test_listen_bad(self):
        """
        Other schemes and empty paths are refused.
        """
        for value in ("tcp://127.0.0.1:80", "unix://", "http:///x"):
            with self.assertRaises(ValueError, msg=value):
                parse_listen_address(value)
        with self.assertRaises(usage.UsageError) as caught:
            _parse(self, "--listen", "tcp://127.0.0.1:80")
        self.assertIn("--listen", str(caught.exception))

    def test_runtime_args_repeated(self):
        """
        --runtime-args is repeatable, keeps the order, and takes values that start with --.
        """
        options = _parse(self, "--runtime-args", "--root=/run/x", "--runtime-args", "--debug")
        self.assertEqual(options["runtime-args"], ["--root=/run/x", "--debug"])
        # "--debug" went to the runtime, not to the daemon.
        self.assertFalse(options["debug"])
        self.assertEqual(options["log-level"], "info")

    def test_runtime_args_equals_form(self):
        """
        --runtime-args=VALUE works too.
        """
        options = _parse(self, "--runtime-args=--systemd-cgroup")
        self.assertEqual(options["runtime-args"], ["--systemd-cgroup"])

    def test_runtime_args_not_shared(self):
        """
        Each options object has its own runtime-args list.
        """
        first = _parse(self, "--runtime-args", "--a")
        second = _parse(self)
        self.assertEqual(first["runtime-args"], ["--a"])
        self.assertEqual(second["runtime-args"], [])

    def test_metrics_interval_zero(self):
        """
        --metrics-interval 0 and 0m0s turn metrics off: 0.0 seconds.
        """
        for value in ("0", "0m0s", "0s"):
            interval = _parse(self, "--metrics-interval", value)["metrics-interval"]
            self.assertEqual(interval, 0.0)
            self.assertIsInstance(interval, float)

    def test_durations(self):
        """
        --metrics-interval and --start-timeout take Go durations.
        """
        options = _parse(self, "--metrics-interval", "1h30m", "--start-timeout", "250ms")
        self.assertEqual(options["metrics-interval"], 5400.0)
        self.assertEqual(options["start-timeout"], 0.25)

    def test_retain_count(self):
        """
        --retain-count is an int.
        """
        self.assertEqual(_parse(self, "--retain-count", "7")["retain-count"], 7)

    def test_id(self):
        """
        --id names the instance.
        """
        self.assertEqual(_parse(self, "--id", "tatooine")["id"], "tatooine")

    def test_debug_sets_log_level(self):
        """
        --debug is the same as --log-level debug, whatever --log-level says.
        """
        options = _parse(self, "--debug", "--log-level", "error")
        self.assertTrue(options["debug"])
        self.assertEqual(options["log-level"], "debug")

    def test_log_levels(self):
        """
        Every documented log level is accepted.
        """
        for level in ("debug", "info", "warn", "error", "critical"):
            self.assertEqual(_parse(self, "--log-level", level)["log-level"], level)

    def test_oom_notify(self):
        """
        --oom-notify is a flag.
        """
        self.assertTrue(_parse(self, "--oom-notify")["oom-notify"])

    def test_graphite_address(self):
        """
        --graphite-address is split into host and int port; IPv6 hosts lose their brackets.
        """
        self.assertEqual(_parse(self, "--graphite-address", "carbon:2003")["graphite-address"], ("carbon", 2003))
        self.assertEqual(
            _parse(self, "--graphite-address", "127.0.0.1:2004")["graphite-address"], ("127.0.0.1", 2004)
        )
        self.assertEqual(_parse(self, "--graphite-address", "[::1]:2003")["graphite-address"], ("::1", 2003))

    def test_group(self):
        """
        --group is resolved to its gid.
        """
        group = grp.getgrgid(os.getgid())
        self.assertEqual(_parse(self, "--group", group.gr_name)["group"], group.gr_gid)

    def test_runtime_path(self):
        """
        --runtime accepts a path; runtime-path is where it was found.
        """
        options = _parse(self, "--runtime", "/bin/true")
        self.assertEqual(options["runtime"], "/bin/true")
        self.assertEqual(options["runtime-path"], "/bin/true")

    def test_runtime_name_in_path(self):
        """
        --runtime accepts a name found in PATH.
        """
        options = _parse(self, "--runtime", "true")
        self.assertEqual(options["runtime-path"], shutil.which("true"))
        self.assertTrue(os.path.isabs(options["runtime-path"]))

    def test_describe(self):
        """
        describe() is one line with the effective values, durations as Go prints them.
        """
        options = _parse(self, "--id", "hoth", "--runtime-args", "--debug", "-c", "4", "--start-timeout", "90s")
        line = options.describe()
        self.assertNotIn("\n", line)
        for part in (
            "id=hoth",
            f"state-dir={options['state-dir']}",
            "listen=unix:///run/containerd/containerd.sock",
            f"runtime={sys.executable}",
            "runtime-args=['--debug']",
            "concurrency=4",
            "start-timeout=1m30s",
            "retain-count=500",
            "metrics-interval=1m0s",
        ):
            self.assertIn(part, line)

    def test_version(self):
        """
        --version prints the version and exits with status 0, before any other check.
        """
        out = io.StringIO()
        self.patch(sys, "stdout", out)
        options = DaemonOptions()
        with self.assertRaises(SystemExit) as caught:
            options.parseOptions(["--version"])
        self.assertIn(caught.exception.code, (0, None))
        self.assertEqual(out.getvalue(), f"containerd-tx version {__version__}\n")


class BadValuesTests(SynchronousTestCase):
    """
    Every bad value is a L{usage.UsageError} with a one-line message naming the problem.
    """

    def assertUsageError(self, args, *words):
        """
        Parsing C{args} fails with a one-line usage error that contains every one of C{words}.
        """
        with self.assertRaises(usage.UsageError, msg=repr(args)) as caught:
            _parse(self, *args)
        message = str(caught.exception)
        self.assertNotIn("\n", message)
        for word in words:
            self.assertIn(word, message)
        return message

    def test_bad_duration(self):
        """
        A malformed duration is refused, naming the option and the value.
        """
        for value in ("abc", "10", "-5s", "5x", ""):
            self.assertUsageError(["--metrics-interval", value], "--metrics-interval", repr(value))
            self.assertUsageError(["--start-timeout", value], "--start-timeout", repr(value))

    def test_zero_start_timeout(self):
        """
        A start timeout of 0 would kill every container at once: refused.
        """
        self.assertUsageError(["--start-timeout", "0s"], "--start-timeout")

    def test_concurrency_zero(self):
        """
        --concurrency 0 (or less) is refused.
        """
        self.assertUsageError(["--concurrency", "0"], "--concurrency")
        self.assertUsageError(["-c", "-3"], "--concurrency")

    def test_concurrency_not_a_number(self):
        """
        --concurrency that is not a number is refused.
        """
        self.assertUsageError(["--concurrency", "ten"], "ten")

    def test_retain_count_zero(self):
        """
        --retain-count 0 is refused.
        """
        self.assertUsageError(["--retain-count", "0"], "--retain-count")

    def test_max_subscribers_zero(self):
        """
        --max-subscribers 0 is refused.
        """
        self.assertUsageError(["--max-subscribers", "0"], "--max-subscribers")

    def test_state_dir_under_file(self):
        """
        A state dir that cannot be created (a path under a regular file) is refused, naming the path.
        """
        path = self.mktemp()
        with open(path, "w"):
            pass
        state_dir = os.path.join(os.path.abspath(path), "sub")
        self.assertUsageError(["--state-dir", state_dir], "--state-dir", state_dir)
        self.assertFalse(os.path.isdir(state_dir))

    def test_state_dir_is_file(self):
        """
        A state dir that is a regular file is refused.
        """
        path = os.path.abspath(self.mktemp())
        with open(path, "w"):
            pass
        self.assertUsageError(["--state-dir", path], "--state-dir", path)

    def test_log_level(self):
        """
        An unknown --log-level is refused, listing the choices.
        """
        self.assertUsageError(["--log-level", "bogus"], "--log-level", "bogus", "debug, info, warn, error, critical")

    def test_log_format(self):
        """
        An unknown --log-format is refused.
        """
        self.assertUsageError(["--log-format", "xml"], "--log-format", "xml")

    def test_graphite_address_without_port(self):
        """
        A graphite address without a usable port is refused.
        """
        for value in (
            "carbon", "carbon:", ":2003", "carbon:0", "carbon:65536", "carbon:x", "carbon:²", "::1", "[::1]", "[]:2003",
        ):
            self.assertUsageError(["--graphite-address", value], "--graphite-address", repr(value))

    def test_unknown_group(self):
        """
        An unknown --group is refused, naming it.
        """
        self.assertUsageError(["--group", "no-such-group-containerd-tx"], "--group", "no-such-group-containerd-tx")

    def test_runtime_not_found(self):
        """
        A runtime that is not in PATH (or not an executable path) is refused, naming it.
        """
        name = "no-such-runtime-containerd-tx"
        self.assertUsageError(["--runtime", name], "--runtime", name)
        missing = os.path.abspath(self.mktemp())
        self.assertUsageError(["--runtime", missing], "--runtime", missing)

    def test_unknown_option(self):
        """
        An unknown option is refused.
        """
        self.assertUsageError(["--no-such-option"], "no-such-option")


def _twistd(case, *args):
    """
    Run C{twistd -n containerd ARGS} as a user would, from an empty working directory.
    """
    if not os.path.exists(TWISTD):
        raise SkipTest(f"{TWISTD} not found")
    cwd = case.mktemp()
    os.makedirs(cwd)
    # COLUMNS fixed: Twisted wraps --help to it, and docs/operations.md shows the 80-column text.
    return subprocess.run(
        [TWISTD, "-n", "containerd", *args], capture_output=True, text=True, timeout=60, cwd=cwd,
        env={**os.environ, "COLUMNS": "80"},
    )


class TwistdPluginTests(TestCase):
    """
    C{twistd -n containerd} as a user runs it: the plugin is found and the options are its own.
    """

    def test_help(self):
        """
        --help lists every option and exits with status 0.
        """
        result = _twistd(self, "--help")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertNotIn("Traceback", result.stdout + result.stderr)
        for option in ALL_OPTIONS:
            self.assertIn(option, result.stdout)

    def test_help_in_docs(self):
        """
        docs/operations.md's "Daemon options" shows --help exactly as it is.
        """
        result = _twistd(self, "--help")
        with open(OPERATIONS, encoding="utf-8") as f:
            readme = f.read()
        start = readme.index("`twistd -n containerd --help`:")
        block = readme[readme.index("```\n", start) + 4:]
        self.assertEqual(block[:block.index("```")], result.stdout)

    def test_bad_value(self):
        """
        A bad value exits non-zero with a one-line error naming the option, and no traceback.
        """
        state_dir = os.path.abspath(self.mktemp())
        result = _twistd(self, "--concurrency", "0", "--state-dir", state_dir, "--runtime", sys.executable)
        self.assertNotEqual(result.returncode, 0)
        output = result.stdout + result.stderr
        self.assertNotIn("Traceback", output)
        error_lines = [line for line in output.splitlines() if "must be at least 1" in line]
        self.assertEqual(len(error_lines), 1, output)
        self.assertIn("concurrency", error_lines[0])

    def test_version(self):
        """
        --version prints the daemon's version.
        """
        result = _twistd(self, "--version")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn(f"containerd-tx version {__version__}", result.stdout)
        self.assertNotIn("Traceback", result.stdout + result.stderr)
