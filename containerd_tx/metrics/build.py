# -*- test-case-name: tests.unit.test_metrics_prometheus -*-
"""
What C{containerd_tx_build_info} says: the package version, the source revision (the same one
GetServerVersion reports, see L{containerd_tx.revision}) and the default runtime.
"""

import os

from containerd_tx import __version__
from containerd_tx.revision import revision


def build_info(runtime):
    """The labels of C{containerd_tx_build_info}: C{version}, C{revision}, C{runtime} (the default runtime)."""
    return {"version": __version__, "revision": revision(), "runtime": os.path.basename(runtime)}
