# -*- test-case-name: tests.unit.test_console -*-
"""
The C{containerd-tx} console script and the systemd unit that starts it.
"""

import configparser
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile

from twisted.trial import unittest

from containerd_tx.console import twistd_argv

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
UNIT = os.path.join(REPO, "contrib", "containerd-tx.service")


class TwistdArgvTests(unittest.TestCase):
    """C{containerd-tx ARGS} is C{twistd -n --pidfile= containerd ARGS}."""

    def test_daemon_options_follow_the_plugin(self):
        self.assertEqual(twistd_argv(["--state-dir", "/x", "--debug"]),
                         ["containerd-tx", "--nodaemon", "--pidfile=", "containerd", "--state-dir", "/x", "--debug"])

    def test_twistd_options_before_a_separator(self):
        self.assertEqual(twistd_argv(["--logfile", "/l", "--", "--debug"]),
                         ["containerd-tx", "--nodaemon", "--pidfile=", "--logfile", "/l", "containerd", "--debug"])

    def test_help_is_the_daemons(self):
        """C{containerd-tx --help} prints the daemon's options and exits 0."""
        out = subprocess.run([sys.executable, "-c", "from containerd_tx.console import main; main()", "--help"],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO)
        self.assertEqual(out.returncode, 0, out.stdout)
        self.assertIn("--state-dir", out.stdout)
        self.assertIn("--listen", out.stdout)


    def test_bad_option_is_one_line(self):
        """An unknown option ends with one line on stderr naming it, no usage dump, no traceback."""
        out = subprocess.run([sys.executable, "-c", "from containerd_tx.console import main; main()", "--bogus"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
        self.assertEqual(out.returncode, 1)
        self.assertEqual(out.stdout, "")
        self.assertEqual(out.stderr.splitlines(),
                         ["containerd-tx: option --bogus not recognized (see containerd-tx --help)"])


def unit_exec_start():
    """The C{ExecStart=} line of the unit, as a list of words."""
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str
    parser.read(UNIT)
    return parser["Service"]["ExecStart"].split(), parser["Unit"]["Documentation"].split()


class SystemdUnitTests(unittest.TestCase):
    """C{contrib/containerd-tx.service} starts the console script and passes C{systemd-analyze verify}."""

    def test_starts_the_console_script(self):
        argv, _ = unit_exec_start()
        self.assertEqual(argv[0], "/usr/local/bin/containerd-tx")
        self.assertNotIn("twistd", " ".join(argv))

    def test_documentation_is_what_install_puts_there(self):
        """Every C{Documentation=} file URI names a file that scripts/install copies from the checkout."""
        _, docs = unit_exec_start()
        self.assertTrue(docs)
        with open(os.path.join(REPO, "scripts", "install")) as f:
            install = f.read()
        for uri in docs:
            self.assertTrue(uri.startswith("file:///usr/local/share/doc/containerd-tx/"), uri)
            name = uri.rsplit("/", 1)[1]
            self.assertTrue(os.path.exists(os.path.join(REPO, name)) or
                            os.path.exists(os.path.join(REPO, "docs", name)), f"{name} is not in the checkout")
        self.assertIn("/usr/local/share/doc/containerd-tx", install)

    def test_systemd_analyze_verify(self):
        """
        The unit verifies. Where scripts/install has linked /usr/local/bin/containerd-tx the file is verified as
        it is; elsewhere a copy whose ExecStart names this interpreter's console script.
        """
        analyze = shutil.which("systemd-analyze")
        self.assertIsNotNone(analyze, "systemd-analyze is missing: scripts/setup-system installs systemd")
        unit = UNIT
        if not os.access("/usr/local/bin/containerd-tx", os.X_OK):
            script = os.path.join(sysconfig.get_path("scripts"), "containerd-tx")
            self.assertTrue(os.access(script, os.X_OK), f"{script}: the console script is not installed")
            folder = tempfile.mkdtemp()
            self.addCleanup(shutil.rmtree, folder)
            unit = os.path.join(folder, "containerd-tx.service")
            with open(UNIT) as f, open(unit, "w") as out:
                out.write(f.read().replace("/usr/local/bin/containerd-tx", script))
        result = subprocess.run([analyze, "verify", unit], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True)
        ours = [line for line in result.stdout.splitlines() if "containerd-tx" in line]
        self.assertEqual((result.returncode, ours), (0, []), result.stdout)
