"""
The daemon wires its pieces in their constructor calls (the monitor client's connect, the supervisor's
constructor), never by setting attributes on them afterwards: checked on the source of
L{containerd_tx.daemon}.
"""

import ast
import inspect

from twisted.trial.unittest import TestCase

from containerd_tx import daemon

#: What the daemon builds and must not change from outside once built.
WIRED = ("monitor", "supervisor")


def outside_writes(source):
    """
    Every attribute the code in C{source} assigns or deletes on something other than C{self} itself (e.g.
    C{self.monitor.on_lost = ...}, C{monitor.timeout = ...}), and every C{setattr} call, as
    C{(line, text)}.
    """
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and isinstance(node.ctx, (ast.Store, ast.Del)):
            if not (isinstance(node.value, ast.Name) and node.value.id == "self"):
                found.append((node.lineno, ast.unparse(node)))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("setattr",
                                                                                                "delattr"):
            found.append((node.lineno, ast.unparse(node)))
    return sorted(found)


class DaemonWiringTests(TestCase):

    def test_no_attribute_set_after_construction(self):
        """
        daemon.py assigns attributes of the daemon only: nothing on C{self.monitor}, C{self.supervisor} or
        anything else it built (on_lost, survive, the request timeout and the upgrade are connect's
        keywords; the exits reach the supervisor through the monitor's report_exits_to, called by the
        supervisor's constructor).
        """
        self.assertEqual(outside_writes(inspect.getsource(daemon)), [])

    def test_the_check_sees_writes(self):
        """The check above finds the writes it forbids, however they are spelled."""
        source = "\n".join([
            "class D:",
            "    def f(self, monitor):",
            "        self.monitor = monitor",
            "        self.monitor.on_lost = self.supervisor.stop",
            "        self.supervisor.oom, x = None, 1",
            "        self.monitor.timeout += 1",
            "        monitor.survive = True",
            "        setattr(self.monitor, 'on_lost', None)",
            "        del self.supervisor.debug",
        ])
        self.assertEqual([line for line, _ in outside_writes(source)], [4, 5, 6, 7, 8, 9])
        self.assertEqual(outside_writes(source)[0], (4, "self.monitor.on_lost"))

    def test_wired_in_constructor_calls(self):
        """
        The daemon builds the monitor client and the supervisor as daemon attributes (so the check above
        covers them), and passes connect the keywords that replace the old attribute writes.
        """
        tree = ast.parse(inspect.getsource(daemon))
        assigned = {node.attr for node in ast.walk(tree)
                    if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store)}
        self.assertTrue(set(WIRED) <= assigned)
        connects = [node for node in ast.walk(tree)
                    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "connect" and ast.unparse(node.func.value) == "MonitorClient"]
        self.assertEqual(len(connects), 1)
        self.assertTrue({"on_lost", "survive", "request_timeout", "upgrade"}
                        <= {keyword.arg for keyword in connects[0].keywords})
