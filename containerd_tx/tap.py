# -*- test-case-name: tests.unit.test_options -*-
"""
C{twistd containerd}: option parsing lives in L{containerd_tx.options}; this module wires the service.
"""

import os
import signal
import sys

# grpcio must not try to handle fork(); we never fork beside its threads (see docs/design.md, "Pitfalls").
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "0")

from twisted.application import service  # noqa: E402
from twisted.logger import ILogObserver, Logger  # noqa: E402
from twisted.python.components import Componentized  # noqa: E402

from containerd_tx.daemon import ContainerdService, StartupError  # noqa: E402
from containerd_tx.logs import make_observer  # noqa: E402
from containerd_tx.options import DaemonOptions  # noqa: E402

Options = DaemonOptions
log = Logger()


class _TwistdContainerd(ContainerdService):
    """
    The daemon under twistd: installs its own log observer on the application, turns start-up problems into
    one line on stderr and exit status 1.
    """

    def setServiceParent(self, parent):
        if isinstance(parent, Componentized):
            # twistd asks the application for an ILogObserver before starting logging.
            parent.setComponent(ILogObserver, make_observer(self.config["log-level"], self.config["log-format"]))
        super().setServiceParent(parent)

    def startService(self):
        if os.geteuid() != 0:
            raise SystemExit("containerd: must run as root (the OCI runtime needs root to create containers)")
        try:
            super().startService()
        except StartupError as e:
            raise SystemExit(f"containerd: {e}")
        log.info("containerd-tx starting: {config}", config=self.config.describe())
        self.reactor.callWhenRunning(self._handle_signals)

    def _handle_signals(self):
        # twistd re-raises SIGTERM/SIGINT after shutdown (exit status -15); a clean stop exits 0 instead.
        def stop(signum, frame):
            log.info("received {name}, shutting down", name=signal.Signals(signum).name)
            self.reactor.callFromThread(self.reactor.stop)

        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, stop)


def makeService(config, reactor=None):
    """
    Build the daemon service from parsed options.

    @param reactor: injected for tests; the global reactor by default.
    """
    if reactor is None:
        from twisted.internet import reactor

    def fatal(message):
        print(f"containerd: {message}", file=sys.stderr)
        reactor.addSystemEventTrigger("after", "shutdown", os._exit, 1)
        if reactor.running:
            reactor.stop()

    return _TwistdContainerd(config, reactor, on_fatal=fatal)


__all__ = ["Options", "makeService", "service"]
