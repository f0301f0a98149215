"""
Tests for L{containerd_tx.process_spec}: an exec's OCI process is the bundle's, narrowed by the request.
"""

import copy
import os

from twisted.trial.unittest import SynchronousTestCase

from containerd_tx import process_spec
from containerd_tx.errors import FailedPrecondition, InvalidArgument
from containerd_tx.process_spec import exec_process

BUNDLE_PROCESS = {
    "terminal": False,
    "user": {"uid": 0, "gid": 0},
    "args": ["sh"],
    "env": ["PATH=/bin", "HOME=/root"],
    "cwd": "/",
    "capabilities": {"bounding": ["CAP_KILL", "CAP_CHOWN"], "effective": ["CAP_KILL"]},
    "rlimits": [{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 1024}],
    "noNewPrivileges": False,
    "apparmorProfile": "bundle-profile",
}


def request(**fields):
    """An exec request dict (as L{containerd_tx.supervisor.ExecRequest}'s fields) with empty defaults."""
    values = dict(args=["ls", "-l"], env=[], cwd="", terminal=False, uid=0, gid=0, additional_gids=[],
                  capabilities=[], no_new_privileges=False, rlimits=[], apparmor_profile="", selinux_label="")
    values.update(fields)
    return values


class ExecProcessTests(SynchronousTestCase):
    """
    L{exec_process} takes what the request leaves empty from the bundle.
    """

    def test_bundle_defaults(self):
        """
        With only args given, the process is the bundle's with those args, uid/gid 0 and no terminal; the
        bundle's object is not changed.
        """
        bundle = copy.deepcopy(BUNDLE_PROCESS)
        process = exec_process(bundle, request())
        self.assertEqual(bundle, BUNDLE_PROCESS)
        self.assertEqual(process["args"], ["ls", "-l"])
        self.assertEqual(process["env"], BUNDLE_PROCESS["env"])
        self.assertEqual(process["cwd"], "/")
        self.assertEqual(process["capabilities"], BUNDLE_PROCESS["capabilities"])
        self.assertEqual(process["rlimits"], BUNDLE_PROCESS["rlimits"])
        self.assertEqual(process["user"], {"uid": 0, "gid": 0})
        self.assertIs(process["terminal"], False)
        self.assertIs(process["noNewPrivileges"], False)
        self.assertEqual(process["apparmorProfile"], "bundle-profile")

    def test_request_overrides(self):
        """Env, cwd, user, additional gids and terminal given in the request replace the bundle's."""
        process = exec_process(BUNDLE_PROCESS, request(env=["A=b"], cwd="/srv", uid=1000, gid=100,
                                                       additional_gids=[10, 11], terminal=True))
        self.assertEqual(process["env"], ["A=b"])
        self.assertEqual(process["cwd"], "/srv")
        self.assertEqual(process["user"], {"uid": 1000, "gid": 100, "additionalGids": [10, 11]})
        self.assertIs(process["terminal"], True)

    def test_capabilities(self):
        """
        Named capabilities (with or without CAP_, any case) replace the bundle's in every set.
        """
        process = exec_process(BUNDLE_PROCESS, request(capabilities=["net_admin", "CAP_KILL"]))
        self.assertEqual(process["capabilities"], {
            kind: ["CAP_NET_ADMIN", "CAP_KILL"] for kind in ("bounding", "effective", "inheritable", "permitted",
                                                             "ambient")})

    def test_bad_capability(self):
        with self.assertRaises(InvalidArgument) as caught:
            exec_process(BUNDLE_PROCESS, request(capabilities=["net admin!"]))
        self.assertEqual(caught.exception.message, "invalid capability 'CAP_NET ADMIN!'")

    def test_no_new_privileges_never_widened(self):
        """The bundle's no-new-privileges stays on whatever the request says; the request may turn it on."""
        locked = dict(BUNDLE_PROCESS, noNewPrivileges=True)
        self.assertIs(exec_process(locked, request(no_new_privileges=False))["noNewPrivileges"], True)
        self.assertIs(exec_process(BUNDLE_PROCESS, request(no_new_privileges=True))["noNewPrivileges"], True)

    def test_rlimits(self):
        """Rlimit types are normalised to RLIMIT_*; unknown types and soft above hard are refused."""
        process = exec_process(BUNDLE_PROCESS, request(rlimits=[{"type": "nproc", "soft": 5, "hard": 10}]))
        self.assertEqual(process["rlimits"], [{"type": "RLIMIT_NPROC", "soft": 5, "hard": 10}])
        with self.assertRaises(InvalidArgument) as caught:
            exec_process(BUNDLE_PROCESS, request(rlimits=[{"type": "bogus", "soft": 1, "hard": 1}]))
        self.assertEqual(caught.exception.message, "unknown rlimit type 'bogus'")
        with self.assertRaises(InvalidArgument) as caught:
            exec_process(BUNDLE_PROCESS, request(rlimits=[{"type": "RLIMIT_CORE", "soft": 2, "hard": 1}]))
        self.assertEqual(caught.exception.message, "rlimit RLIMIT_CORE: soft limit 2 above hard limit 1")

    def test_empty_args(self):
        with self.assertRaises(InvalidArgument) as caught:
            exec_process(BUNDLE_PROCESS, request(args=[]))
        self.assertEqual(caught.exception.message, "args must not be empty")

    def test_relative_cwd(self):
        with self.assertRaises(InvalidArgument) as caught:
            exec_process(BUNDLE_PROCESS, request(cwd="srv"))
        self.assertEqual(caught.exception.message, "cwd 'srv' must be an absolute path")

    def test_nul_in_args_or_env(self):
        """NUL characters in args or env (from the request or the bundle) are refused."""
        for fields in (dict(args=["a\0b"]), dict(env=["A=\0"])):
            with self.assertRaises(InvalidArgument):
                exec_process(BUNDLE_PROCESS, request(**fields))
        with self.assertRaises(InvalidArgument) as caught:
            exec_process(dict(BUNDLE_PROCESS, env=["X=\0"]), request())
        self.assertEqual(caught.exception.message, "env must not contain NUL characters")


class SecurityModuleTests(SynchronousTestCase):
    """
    An AppArmor profile or SELinux label is passed on only when the host has that module.
    """

    def setUp(self):
        self.root = self.mktemp()
        os.makedirs(self.root)
        self.patch(process_spec, "APPARMOR_DIR", os.path.join(self.root, "apparmor"))
        self.patch(process_spec, "SELINUX_DIR", os.path.join(self.root, "selinux"))

    def test_missing_modules(self):
        with self.assertRaises(FailedPrecondition) as caught:
            exec_process(BUNDLE_PROCESS, request(apparmor_profile="p"))
        self.assertEqual(caught.exception.message, "apparmorProfile given but AppArmor is not enabled on this host")
        with self.assertRaises(FailedPrecondition) as caught:
            exec_process(BUNDLE_PROCESS, request(selinux_label="l"))
        self.assertEqual(caught.exception.message, "selinuxLabel given but SELinux is not enabled on this host")

    def test_present_modules(self):
        os.makedirs(process_spec.APPARMOR_DIR)
        os.makedirs(process_spec.SELINUX_DIR)
        process = exec_process(BUNDLE_PROCESS, request(apparmor_profile="p", selinux_label="l"))
        self.assertEqual((process["apparmorProfile"], process["selinuxLabel"]), ("p", "l"))
