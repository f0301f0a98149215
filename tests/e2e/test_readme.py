"""
The README's ctr walkthrough, run as an end-to-end script: every C{$ command} of its console block runs in
bash from the repository root against a real daemon, and must succeed and print what the README shows.

Two things are changed so that the test cannot meet a user's own containers: the bundle paths C{/tmp/demo}
and C{/tmp/greeter} move into a directory of the test's, and the container ids get a suffix unique to the
test (runc shares the cgroups of containers of the same id). Outputs are compared line by line and word by
word; words that are numbers (pids, times, sizes, percentages, versions) and size units may differ.
"""

import os
import re
import secrets
import shlex
import subprocess
import sys

from twisted.trial.unittest import SynchronousTestCase

from tests.e2e.base import REPO, CtrTestCase, ctr_env

README = os.path.join(REPO, "README.md")
MARKER = "<!-- walkthrough: tests/e2e/test_readme.py runs the next console block -->"

#: Words that differ from run to run: numbers, times, percentages, versions, git revisions.
_VARIABLE = re.compile(r"^([\d.:%TZ+-]*\d[\d.:%TZ+-]*|(?=[0-9a-f]*\d)[0-9a-f]{7,64})$")
_UNITS = {"B", "KiB", "MiB", "GiB", "TiB"}


def walkthrough(text):
    """
    @return: the C{(command, expected output lines)} of the console block after L{MARKER} in C{text}.
    @raise ValueError: when the marker or its block is missing.
    """
    start = text.find(MARKER)
    if start < 0:
        raise ValueError("README has no walkthrough marker")
    block = re.search(r"```console\n(.*?)```", text[start:], re.S)
    if block is None:
        raise ValueError("no console block after the walkthrough marker")
    steps = []
    for line in block.group(1).splitlines():
        if line.startswith("$ "):
            steps.append((line[2:], []))
        elif steps:
            steps[-1][1].append(line)
        else:
            raise ValueError(f"output before the first command: {line!r}")
    return steps


#: A number as a JSON value inside a word (`"pid1":8911,`).
_JSON_NUMBER = re.compile(r'(?<=":)-?\d+(?:\.\d+)?(?=[,}\]])')


def _word(word):
    bare = word.strip('",[]{}()')
    if _VARIABLE.match(bare) or bare in _UNITS:
        return "#"
    return _JSON_NUMBER.sub("#", word)


def shape(line):
    """
    @return: the words of C{line}, with numbers and size units replaced by C{#}; the status that ends an
        C{exit} event's row is kept, as are lines that are one number (what C{containers wait} prints).
    """
    words = line.split()
    shaped = [_word(word) for word in words]
    if (len(words) == 1 and words[0].isdigit()) or (len(words) >= 5 and words[1] == "exit"):
        shaped[-1] = words[-1]
    return shaped


def mismatch(expected, actual):
    """@return: a description of the first line where two outputs differ in shape, or C{None}."""
    for number, (want, got) in enumerate(zip(expected, actual), 1):
        if shape(want) != shape(got):
            return f"line {number}: expected {want!r}, got {got!r}"
    if len(expected) != len(actual):
        return f"expected {len(expected)} lines, got {len(actual)}: {actual!r}"
    return None


class MatchingTests(SynchronousTestCase):
    """The comparison is loose only where runs differ."""

    def test_numbers_and_units_vary(self):
        self.assertIsNone(mismatch(["demo   /tmp/demo   running   8911", "x  492 KiB / 64 MiB  0.75%"],
                                   ["demo  /tmp/demo  running  120", "x  1.2 MiB / 64 MiB  1.80%"]))
        self.assertIsNone(mismatch(["Server: 0.1.0 (revision 53e248ddf6fc01059a1f5a629775395edc0ce7a2)"],
                                   ["Server: 0.1.2 (revision 0123abc)"]))
        self.assertIsNone(mismatch(["2026-11-29T16:21:47.641127681Z   start-process   demo   ps"],
                                   ["2027-01-02T03:04:05.000000001Z start-process demo ps"]))

    def test_json_numbers_vary(self):
        """Numbers that are JSON values may differ (pids in a one-line object); the rest must match."""
        self.assertIsNone(mismatch(['{"id":"demo","pid1":8911,"processes":[{"systemPid":8911}]}'],
                                   ['{"id":"demo","pid1":120,"processes":[{"systemPid":120}]}']))
        self.assertIn("line 1", mismatch(['{"id":"demo","pid1":8911}'], ['{"id":"demo2","pid1":8911}']))

    def test_exit_statuses_must_match(self):
        """What `containers wait` prints and the status of exit events are compared exactly."""
        self.assertIn("line 1", mismatch(["137"], ["0"]))
        self.assertIn("line 1", mismatch(["2026-11-29T16:21:47.641127681Z   exit   demo   init   137"],
                                         ["2027-01-02T03:04:05.000000001Z exit demo init 0"]))
        self.assertIsNone(mismatch(["2026-11-29T16:21:47.641127681Z   exit   demo   init   137"],
                                   ["2027-01-02T03:04:05.000000001Z exit demo init 137"]))

    def test_words_lines_and_counts_must_match(self):
        self.assertIn("line 1", mismatch(["demo running"], ["demo paused"]))
        self.assertIn("line 2", mismatch(["a", '"status": "running"'], ["a", '"status": "stopped"']))
        self.assertIn("expected 1 lines, got 2", mismatch(["a"], ["a", "b"]))
        self.assertIn("expected 2 lines, got 1", mismatch(["a", "b"], ["a"]))

    def test_parse(self):
        text = f"intro\n{MARKER}\n```console\n$ one\nout 1\n\n$ two\n```\n"
        self.assertEqual(walkthrough(text), [("one", ["out 1", ""]), ("two", [])])
        self.assertRaises(ValueError, walkthrough, "no marker")


class ReadmeWalkthroughTests(CtrTestCase):
    """The README's walkthrough works as printed."""

    def test_walkthrough(self):
        with open(README, encoding="utf-8") as f:
            steps = walkthrough(f.read())
        self.assertGreater(len(steps), 10)
        commands = " ".join(command for command, _ in steps)
        for needed in ("containers start", "containers exec", "checkpoints create", "--checkpoint",
                       "events", "stats", "containers wait", "--attach", "completion"):
            self.assertIn(needed, commands)

        bundles = os.path.join(self.daemon.workdir, "bundles")
        suffix = "-" + secrets.token_hex(3)

        def localize(text):
            text = re.sub(r"/tmp/(demo|greeter)\b", lambda m: os.path.join(bundles, m.group(1)), text)
            return re.sub(r"\b(demo2?|greeter)\b", lambda m: m.group(1) + suffix, text)

        bin_dir = os.path.join(self.daemon.workdir, "bin")
        os.mkdir(bin_dir)
        shim = os.path.join(bin_dir, "ctr")
        with open(shim, "w") as f:  # "ctr" is the working tree's, run by the interpreter running the tests
            f.write(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} -m ctr.main \"$@\"\n")
        os.chmod(shim, 0o755)
        env = ctr_env(CONTAINERD_ADDRESS=self.daemon.address, PATH=bin_dir + os.pathsep + os.environ["PATH"])

        for command, expected in steps:
            command, expected = localize(command), [localize(line) for line in expected]
            done = subprocess.run(["bash", "-c", command], cwd=REPO, env=env, stdin=subprocess.DEVNULL,
                                  capture_output=True, text=True, timeout=120)
            self.assertEqual((done.returncode, done.stderr), (0, ""), f"$ {command}\n{done.stdout}")
            problem = mismatch(expected, done.stdout.splitlines())
            self.assertIsNone(problem, f"$ {command}: {problem}")
