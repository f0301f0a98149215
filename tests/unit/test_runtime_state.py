"""
Tests for L{tests.support.runtime_state}: the test and benchmark clean-up reads a runtime root while containers
are deleted under it. A fake runtime (a script) stands in for runc, failing as runc does.
"""

import os
import sys
import textwrap

from twisted.trial.unittest import SynchronousTestCase

from tests.support.runtime_state import list_containers, remove_all

#: A runtime that fails its first <fails> listings with <fail_message>, lists the folders under --root, deletes
#: a folder on `delete --force` (except <keep>), and logs every call; <name> are files beside it.
FAKE_RUNTIME = textwrap.dedent("""\
    #!{python}
    import json, os, shutil, sys
    state = os.path.dirname(os.path.abspath(sys.argv[0]))
    def setting(name, default=""):
        path = os.path.join(state, name)
        return open(path).read() if os.path.exists(path) else default
    root = sys.argv[sys.argv.index("--root") + 1]
    command = sys.argv[3]
    with open(os.path.join(state, "calls"), "a") as f:
        f.write(" ".join(sys.argv[3:]) + "\\n")
    if command == "list":
        counter = os.path.join(state, "lists")
        done = int(open(counter).read()) if os.path.exists(counter) else 0
        open(counter, "w").write(str(done + 1))
        if done < int(setting("fails", "0")):
            sys.stderr.write(setting("fail_message") + "\\n")
            sys.exit(1)
        names = sorted(n for n in os.listdir(root) if os.path.isdir(os.path.join(root, n)))
        print(json.dumps([{{"id": n, "status": "running"}} for n in names]) if names else "null")
    elif command == "delete":
        if sys.argv[-1] != setting("keep"):
            shutil.rmtree(os.path.join(root, sys.argv[-1]))
""")

VANISHED = 'time="2026-12-01T23:19:01Z" level=error msg="stat /run/runc/lk84: no such file or directory"'


class RuntimeStateTests(SynchronousTestCase):

    def setUp(self):
        self.state = self.mktemp()
        self.root = os.path.join(self.state, "root")
        os.makedirs(self.root)
        self.runtime = os.path.join(self.state, "fake-runc")
        with open(self.runtime, "w") as f:
            f.write(FAKE_RUNTIME.format(python=sys.executable))
        os.chmod(self.runtime, 0o755)
        self.settings(fail_message=VANISHED)

    def settings(self, **values):
        for name, value in values.items():
            with open(os.path.join(self.state, name), "w") as f:
                f.write(value)

    def containers(self, *ids):
        for container_id in ids:
            os.makedirs(os.path.join(self.root, container_id))

    def calls(self):
        with open(os.path.join(self.state, "calls")) as f:
            return f.read().splitlines()

    def test_a_listing_broken_by_a_concurrent_delete_is_taken_again(self):
        self.containers("a", "b")
        self.settings(fails="2")
        self.assertEqual(list_containers(self.runtime, self.root, pause=0), {"a": "running", "b": "running"})
        self.assertEqual(len(self.calls()), 3)

    def test_other_failures_are_reported_at_once(self):
        self.settings(fails="5", fail_message="permission denied")
        with self.assertRaises(AssertionError) as caught:
            list_containers(self.runtime, self.root, pause=0)
        self.assertIn("permission denied", str(caught.exception))
        self.assertEqual(len(self.calls()), 1)

    def test_a_listing_that_keeps_failing_is_reported(self):
        self.settings(fails="100")
        with self.assertRaises(AssertionError) as caught:
            list_containers(self.runtime, self.root, attempts=3, pause=0)
        self.assertIn("no such file or directory", str(caught.exception))
        self.assertEqual(len(self.calls()), 3)

    def test_no_root_no_containers(self):
        self.assertEqual(list_containers(self.runtime, os.path.join(self.state, "none")), {})
        self.assertEqual(remove_all(self.runtime, os.path.join(self.state, "none")), [])

    def test_remove_all_deletes_every_folder_without_listing(self):
        self.containers("a", "b", "c")
        with open(os.path.join(self.root, "not-a-container"), "w") as f:
            f.write("x")
        # A listing would fail now (a delete is "running"): the clean-up must not depend on one.
        self.settings(fails="100")
        self.assertEqual(remove_all(self.runtime, self.root), [])
        self.assertEqual(sorted(os.listdir(self.root)), ["not-a-container"])
        self.assertEqual(self.calls(), ["delete --force a", "delete --force b", "delete --force c"])

    def test_remove_all_reports_what_it_could_not_delete(self):
        self.containers("a", "stuck")
        self.settings(keep="stuck")
        self.assertEqual(remove_all(self.runtime, self.root, rounds=2), ["stuck"])
        self.assertEqual(self.calls(), ["delete --force a", "delete --force stuck", "delete --force stuck"])

