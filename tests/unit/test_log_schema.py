"""
The JSON log's schema (C{--log-format json}, L{containerd_tx.logs}), checked over a simulated day of a
busy daemon: every container lifecycle log call the daemon makes (found in its source, so a new one is
covered as soon as it is written), with the values of the types the code passes (a pid is an int in one
call and C{"init"} in another), the periodic metrics dump, Twisted's old-style C{log.msg} lines and a
failure with its traceback. The events get their times from a L{Clock} advanced through 24 hours; nothing
waits.
"""

import ast
import datetime
import io
import json
import os
import re

from twisted.internet.task import Clock
from twisted.logger import Logger, formatEvent
from twisted.logger._legacy import publishToNewObserver
from twisted.python.failure import Failure
from twisted.python.log import textFromEventDict
from twisted.trial.unittest import SynchronousTestCase

import containerd_tx
from containerd_tx.logs import make_observer
from containerd_tx.metrics import Metrics
from containerd_tx.metrics.registry import CONTAINER_START_TIME, EVENTS, EXIT_PROCESS_TIME, process_gauges
from containerd_tx.metrics.stdout import IDLE_LIMIT, StdoutReporter

PACKAGE = os.path.dirname(os.path.abspath(containerd_tx.__file__))
#: The modules whose log lines make a container's life: create, start, exec, exit, delete, pause, resume,
#: update, checkpoint, OOM, adoption after a restart.
LIFECYCLE_MODULES = ("supervisor", "daemon.py", "oom.py")
LEVELS = ("debug", "info", "warn", "error", "critical")
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)$")
DAY = 24 * 3600.0
START = 1767225600.0  # 2026-01-01T00:00:00Z


def check_record(testcase, line):
    """
    Assert that C{line} is one JSON record of the schema; return it as a dict.

    time (RFC 3339), level (a level name), message (a string), namespace (a string) come first; every
    other field is a string; none of Twisted's bookkeeping leaks.
    """
    testcase.assertNotIn("__class_uuid__", line)
    testcase.assertNotIn("log_flattened", line)
    record = json.loads(line)
    testcase.assertIsInstance(record, dict)
    testcase.assertEqual(list(record)[:4], ["time", "level", "message", "namespace"], line)
    testcase.assertRegex(record["time"], RFC3339)
    datetime.datetime.fromisoformat(record["time"].replace("Z", "+00:00"))
    testcase.assertIn(record["level"], LEVELS)
    for key, value in record.items():
        testcase.assertIsInstance(value, str, f"{key} in {line}")
        testcase.assertFalse(key.startswith("log_"), f"{key} in {line}")
    testcase.assertTrue(record["namespace"])
    return record


def log_calls(paths):
    """
    Every C{log.<level>("format", key=value, ...)} call in the given source files: (namespace, level,
    format, keyword names), the namespace being the module's (what C{Logger()} at module level takes).
    """
    calls = []
    for path in paths:
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), path)
        module = "containerd_tx." + os.path.relpath(path, PACKAGE)[:-3].replace(os.sep, ".")
        module = module.removesuffix(".__init__")
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "log"
                    and node.func.attr in ("debug", "info", "warn", "error", "critical")
                    and node.args and isinstance(node.args[0], ast.Constant)
                    and isinstance(node.args[0].value, str)):
                continue
            keys = tuple(k.arg for k in node.keywords if k.arg is not None)
            calls.append((module, node.func.attr, node.args[0].value, keys))
    return calls


def lifecycle_sources():
    paths = []
    for name in LIFECYCLE_MODULES:
        path = os.path.join(PACKAGE, name)
        if os.path.isdir(path):
            paths.extend(os.path.join(path, f) for f in sorted(os.listdir(path)) if f.endswith(".py"))
        else:
            paths.append(path)
    return paths


class _Value:
    """An object that is neither a string nor a number (a resources dict, a Failure, a reason...)."""

    def __init__(self, n):
        self.n = n

    def __str__(self):
        return f"<value {self.n}>"


def value_for(key, n):
    """
    A value as the daemon's code passes it for C{key}, its type varying with C{n} where the code's does:
    a process id is a system pid (int) or a name (C{"init"}); anything else takes its turn as a str, an
    int, a float, a bool, an exception and a plain object.
    """
    if key == "pid":
        return (4242 + n, "init", f"exec-{n}")[n % 3]
    if key in ("id", "name", "container"):
        return f"c{n % 500}"
    if key in ("status", "n", "t", "count"):
        return (n % 256, float(n % 7), str(n))[n % 3]
    kinds = (f"text {n}", n, n / 8.0, bool(n % 2), OSError(n % 40, "simulated"), _Value(n), {"n": n})
    return kinds[n % len(kinds)]


class LogSchemaDayTests(SynchronousTestCase):

    def setUp(self):
        self.clock = Clock()
        self.clock.advance(START)
        self.out = io.StringIO()
        json_observer = make_observer(level="debug", fmt="json", stream=self.out)
        self.expected = []  # (time, message) per event, in order

        def stamped(event):
            event["log_time"] = self.clock.seconds()
            self.expected.append((event["log_time"], formatEvent(event)))
            json_observer(event)

        self.observer = stamped

    def run_day(self):
        calls = log_calls(lifecycle_sources())
        self.assertGreaterEqual(len(calls), 10, "found too few lifecycle log calls in the source")
        self.assertIn("containerd_tx.supervisor.core", {module for module, _, _, _ in calls})
        loggers = {module: Logger(namespace=module, observer=self.observer) for module, _, _, _ in calls}
        metrics = Metrics(self.clock)
        process_gauges(metrics)
        reporter = StdoutReporter(metrics, 60, reactor=self.clock, idle_limit=IDLE_LIMIT,
                                  log=Logger(namespace="containerd_tx.metrics.stdout", observer=self.observer))
        reporter.startService()
        self.addCleanup(reporter.stopService)
        n = 0
        turns = {}  # per field: how many values it has had (so each field goes through its types)

        def value(key):
            turns[key] = turns.get(key, -1) + 1
            return value_for(key, turns[key])

        # Busy in the working hours (a lifecycle every 20 s), idle at night.
        while self.clock.seconds() < START + DAY:
            hour = (self.clock.seconds() - START) / 3600
            if 8 <= hour < 20:
                for module, level, fmt, keys in calls:
                    n += 1
                    getattr(loggers[module], level)(fmt, **{key: value(key) for key in keys})
                metrics.timer(CONTAINER_START_TIME).update(0.1 + (n % 10) / 100)
                metrics.timer(EXIT_PROCESS_TIME).update(0.01)
                metrics.counter(EVENTS).inc(3)
                if n % 97 == 0:
                    publishToNewObserver(self.observer, {
                        "message": (f"legacy line {n}",), "isError": 0, "system": "-",
                        "time": self.clock.seconds(), "format": None}, textFromEventDict)
                if n % 401 == 0:
                    loggers["containerd_tx.daemon"].failure(
                        "reporter {reporter} failed", Failure(ValueError(f"bad {n}")), reporter="x")
            self.clock.advance(20)
        return n

    def test_a_day_of_lifecycle_lines(self):
        self.run_day()
        lines = self.out.getvalue().splitlines()
        self.assertEqual(len(lines), len(self.expected))
        self.assertGreater(len(lines), 20000)
        types = {}
        namespaces = set()
        for line, (when, message) in zip(lines, self.expected):
            record = check_record(self, line)
            self.assertEqual(record["message"], message)
            stamp = datetime.datetime.fromisoformat(record["time"].replace("Z", "+00:00")).timestamp()
            self.assertAlmostEqual(stamp, when, places=5)
            namespaces.add(record["namespace"])
            for key, value in record.items():
                types.setdefault(key, set()).add(type(value).__name__)
        self.assertEqual({key: kinds for key, kinds in types.items() if kinds != {"str"}}, {})
        self.assertIn("pid", types)
        self.assertIn("containerd_tx.supervisor.core", namespaces)
        self.assertIn("containerd_tx.metrics.stdout", namespaces)
        self.assertIn("log_legacy", namespaces)
        first = json.loads(lines[0])["time"]
        last = json.loads(lines[-1])["time"]
        self.assertTrue(first.startswith("2026-01-01T00:01:00"), first)  # the first metrics dump
        self.assertGreaterEqual(last, "2026-01-01T23:")

    def test_pid_is_always_a_string(self):
        """The field that was an int in one record and "init" in another: always a string now."""
        self.run_day()
        pids = [record["pid"] for record in map(json.loads, self.out.getvalue().splitlines()) if "pid" in record]
        self.assertGreater(len(pids), 1000)
        self.assertTrue("init" in pids, "no pid 'init' in the day")
        self.assertTrue(any(pid.isdigit() for pid in pids), "no system pid in the day")
        self.assertEqual({type(pid) for pid in pids}, {str})

    def test_idle_night_is_not_flooded(self):
        """From 20:00 to 24:00 nothing happens: the metrics dump appears once an hour, not once a minute."""
        self.run_day()
        dumps = [record for record in map(json.loads, self.out.getvalue().splitlines())
                 if record["message"] == "timer container-start-time" and record["time"] >= "2026-01-01T20:01"]
        self.assertLessEqual(len(dumps), 4)
        self.assertGreaterEqual(len(dumps), 3)

    def test_failure_and_legacy_records(self):
        self.run_day()
        records = list(map(json.loads, self.out.getvalue().splitlines()))
        failures = [r for r in records if "traceback" in r]
        self.assertTrue(failures)
        for record in failures:
            self.assertEqual(record["level"], "critical")
            self.assertIn("ValueError: bad", record["traceback"])
            self.assertTrue(record["message"].startswith("reporter x failed"))
        legacy = [r for r in records if r["namespace"] == "log_legacy"]
        self.assertTrue(legacy)
        for record in legacy:
            self.assertRegex(record["message"], r"^legacy line \d+$")
            self.assertEqual(record["level"], "info")
            self.assertEqual(sorted(record), ["level", "message", "namespace", "system", "time"])

    def test_reserved_names_do_not_clobber(self):
        """An event field called message or time is kept, under event_<name>."""
        log = Logger(namespace="containerd_tx.test", observer=self.observer)
        log.info("said {message} at {time}", message="hello", time=3)
        record = check_record(self, self.out.getvalue().splitlines()[0])
        self.assertEqual(record["message"], "said hello at 3")
        self.assertEqual((record["event_message"], record["event_time"]), ("hello", "3"))
        self.assertEqual(record["time"], "2026-01-01T00:00:00.000000Z")
