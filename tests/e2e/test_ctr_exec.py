"""
ctr end to end: exec (attached, detached, with a terminal in tmux) and start --attach with a terminal.
"""

import re
import shlex

from tests.e2e.base import CTR, SLEEPER, CtrTestCase, Tmux, now_stamp

_ON = r"(?<![-\w]){}(?![-\w])"


class ExecTests(CtrTestCase):

    def setUp(self):
        super().setUp()
        self.start(self.box, *SLEEPER)

    def test_attached_output_and_status(self):
        done = self.ctr("containers", "exec", "--id", self.box, "-a", "--", "sh", "-c", "id -u; exit 4")
        self.assertEqual((done.returncode, done.stdout, done.stderr), (4, "0\n", ""))

    def test_user_cwd_env(self):
        done = self.ctr("containers", "exec", "--id", self.box, "-a", "--uid", "1000", "--gid", "1000", "--cwd", "/tmp",
                        "--env", "FOO=bar", "--", "sh", "-c", "id -u; id -g; pwd; echo $FOO; echo $TERM")
        # --env adds to the container's environment (PATH, TERM from the bundle) rather than replacing it.
        self.assertEqual((done.returncode, done.stdout, done.stderr), (0, "1000\n1000\n/tmp\nbar\nxterm\n", ""))

    def test_stdin_and_stderr(self):
        done = self.ctr("containers", "exec", "--id", self.box, "-a", "--", "sh", "-c", "cat; echo err >&2",
                        input=b"piped\n")
        self.assertEqual((done.returncode, done.stdout, done.stderr), (0, "piped\n", "err\n"))

    def test_detached_prints_process_id(self):
        since = now_stamp()
        name = self.ctr_ok("containers", "exec", "--id", self.box, "--", "sleep", "1000").strip()
        self.assertRegex(name, r"^exec-[0-9a-f]{6}$")
        processes = {p["pid"]: p for p in self.listed()[self.box]["processes"]}
        self.assertEqual(sorted(processes), sorted(["init", name]))
        self.assertEqual(processes[name]["args"], ["sleep", "1000"])
        self.ctr_ok("containers", "kill", "-s", "9", "-p", name, self.box)
        self.assertEqual(self.wait_exit(since, self.box, name)["status"], 137)
        self.assertEqual(self.ctr_ok("containers", "exec", "--id", self.box, "--pid", "named", "--", "true"), "named\n")

    def test_errors_are_one_line(self):
        done = self.ctr("containers", "exec", "--id", "ghost", "-a", "--", "true")
        self.assertEqual((done.returncode, done.stdout), (1, ""))
        self.assertRegex(done.stderr, r"^ctr: [^\n]*ghost[^\n]*\n$")
        done = self.ctr("containers", "exec", "--id", self.box, "-a", "--", "no-such-program")
        self.assertEqual(done.returncode, 1)
        self.assertRegex(done.stderr, r"^ctr: [^\n]*no-such-program[^\n]*\n$")


class TerminalTests(CtrTestCase):
    """A person at a terminal (tmux, 120x40), running ctr from bash."""

    def setUp(self):
        super().setUp()
        self.tmux = Tmux(self, self.daemon.workdir, width=120, height=40)

    def command(self, *args):
        return shlex.join(CTR + ["--address", self.daemon.address] + list(args))

    def assertTerminalRestored(self, status):
        """After ctr ends: back at bash's prompt with the given $?, and the terminal in cooked mode with echo."""
        self.tmux.type("echo status=$?; stty -a")

        def settings(screen):
            found = list(re.finditer(r"^status=(\d+)$", screen, re.MULTILINE))
            return found and "min = " in screen[found[-1].end():] and found[-1]

        screen = self.tmux.wait_for(settings, "the status and stty -a's output")
        last = settings(screen)
        self.assertEqual(last.group(1), str(status), screen)
        for flag in ("icanon", "echo", "isig", "icrnl", "opost"):
            self.assertRegex(screen[last.end():], _ON.format(flag), f"{flag} is off after ctr:\n{screen}")

    def test_exec_interactive_shell(self):
        self.start(self.box, *SLEEPER)
        self.tmux.type(self.command("containers", "exec", "-a", "-t", "--id", self.box, "--", "sh"))
        self.tmux.wait_for_text(r"^/ # ?$", "the container's prompt")
        self.tmux.type("echo hi")
        self.tmux.wait_for_text(r"^hi$", "hi")
        self.tmux.type("stty size")
        self.tmux.wait_for_text(r"^40 120$", "the pane's size in the container")
        self.tmux.resize(100, 30)
        self.tmux.type("stty size")
        self.tmux.wait_for_text(r"^30 100$", "the new size after SIGWINCH")
        self.tmux.type("exit 5")
        self.tmux.wait_for_text(r"^host\$ ?$", "bash's prompt again")
        self.assertTerminalRestored(5)

    def test_exec_error_restores_terminal(self):
        """A failed exec -t (unknown container) leaves the terminal as it was."""
        self.tmux.type(self.command("containers", "exec", "-a", "-t", "--id", "ghost", "--", "sh"))
        self.tmux.wait_for_text(r"^ctr: .*ghost.*$", "the error")
        self.assertTerminalRestored(1)

    def test_start_attach_terminal_bundle(self):
        """start --attach of a bundle with process.terminal: the same raw mode, size and restoring."""
        bundle = self.bundle("sh", terminal=True)
        self.tmux.type(self.command("containers", "start", "-a", self.ttybox, bundle))
        self.tmux.wait_for_text(r"^/ # ?$", "the container's prompt")
        self.tmux.type("stty size; tty")
        self.tmux.wait_for_text(r"^40 120\n/dev/", "the size and a terminal in the container")
        self.tmux.type("exit 3")
        self.tmux.wait_for_text(r"^host\$ ?$", "bash's prompt again")
        self.assertTerminalRestored(3)
