# -*- test-case-name: tests.unit.test_packaging -*-
"""
A plain install carries the whole project: the wheel and the sdist are built from this checkout, each is
installed into a fresh venv, and from outside the checkout every module of the source tree imports from that
venv, C{twistd -n containerd --help}, C{containerd-tx --help} and C{ctr --version} run.

The fresh venvs have no pip packages of their own: the project is installed with C{--no-deps}, and a C{.pth}
file lends them this interpreter's site-packages for the dependencies (a C{.pth} line adds a directory without
reading the C{.pth} files inside it, so an editable install of this checkout there is not seen). No network.
"""

import atexit
import os
import shutil
import site
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import zipfile

from twisted.trial import unittest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
#: Folders of the source tree that are installed as Python packages.
PACKAGE_ROOTS = ("containerd_tx", "ctr", os.path.join("twisted", "plugins"))
#: Folders and files of the checkout that are not source: build output, caches, local environments.
NOT_SOURCE = {"__pycache__", ".git", ".venv", "build", "dist", "_trial_temp", "dropin.cache"}
#: Everything an sdist must carry besides the packages, so that it builds, tests and documents itself.
SDIST_EXTRAS = ("README.md", "LICENSE", "setup.cfg", "pyproject.toml", "proto", "docs", "contrib", "scripts",
                "tests", "bench")


def source_files(*roots):
    """Paths relative to the checkout of every source file under C{roots}, build output and caches left out."""
    found = set()
    for root in roots:
        top = os.path.join(REPO, root)
        if os.path.isfile(top):
            found.add(root)
            continue
        for folder, dirs, files in os.walk(top):
            dirs[:] = [d for d in dirs if d not in NOT_SOURCE and not d.startswith("_trial_temp")
                       and not d.endswith(".egg-info")]
            for name in files:
                if name in NOT_SOURCE or name.endswith(".pyc"):
                    continue
                found.add(os.path.relpath(os.path.join(folder, name), REPO))
    return found


def module_names():
    """Every importable module of the installed packages, by dotted name."""
    names = []
    for path in sorted(source_files(*PACKAGE_ROOTS)):
        if not path.endswith(".py"):
            continue
        parts = path[:-3].split(os.sep)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names.append(".".join(parts))
    return names


def run(argv, **kwargs):
    """Run C{argv}, returning its output; a non-zero exit fails with the output in the message."""
    result = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kwargs)
    if result.returncode != 0:
        raise AssertionError(f"{argv} exited {result.returncode}:\n{result.stdout[-3000:]}")
    return result.stdout


_BUILT = []


def built_artifacts():
    """
    Build the sdist and the wheel once per test run, from a copy of the checkout (so no build/ or egg-info
    appears in it); the folder is removed when the process exits.

    @return: (work folder, wheel path, sdist path).
    """
    if not _BUILT:
        work = tempfile.mkdtemp(prefix="ctx-pkg-")
        atexit.register(shutil.rmtree, work, True)
        dist, tree = os.path.join(work, "dist"), os.path.join(work, "src")
        shutil.copytree(REPO, tree, ignore=shutil.ignore_patterns(
            *NOT_SOURCE, "_trial_temp*", "*.egg-info", "*.pyc"))
        run([sys.executable, "-m", "build", "--no-isolation", "--sdist", "--wheel", "--outdir", dist, tree])
        built = sorted(os.listdir(dist))
        _BUILT.extend([work, os.path.join(dist, next(n for n in built if n.endswith(".whl"))),
                       os.path.join(dist, next(n for n in built if n.endswith(".tar.gz")))])
    return tuple(_BUILT)


class PackagingTests(unittest.TestCase):
    """The wheel and the sdist, built from this checkout and installed into fresh venvs."""

    def setUp(self):
        self.work, self.wheel, self.sdist = built_artifacts()

    def test_wheel_carries_every_package_file(self):
        """Every file under the package folders is in the wheel: modules and data alike."""
        names = set(zipfile.ZipFile(self.wheel).namelist())
        missing = sorted(p for p in source_files(*PACKAGE_ROOTS) if p.replace(os.sep, "/") not in names)
        self.assertEqual(missing, [])
        self.assertIn("twisted/plugins/containerd_plugin.py", names)
        self.assertNotIn("twisted/__init__.py", names, "the wheel must not claim Twisted's own package")

    def test_wheel_declares_console_scripts(self):
        """The wheel's entry points give C{ctr} and C{containerd-tx}."""
        with zipfile.ZipFile(self.wheel) as wheel:
            entry = next(n for n in wheel.namelist() if n.endswith(".dist-info/entry_points.txt"))
            text = wheel.read(entry).decode()
        self.assertIn("ctr = ctr.main:main", text)
        self.assertIn("containerd-tx = containerd_tx.console:main", text)

    def test_sdist_carries_the_whole_project(self):
        """The sdist has the packages and everything else a build, a test run or a reader needs."""
        with tarfile.open(self.sdist) as sdist:
            names = {"/".join(n.split("/")[1:]) for n in sdist.getnames()}
        wanted = source_files(*PACKAGE_ROOTS, *SDIST_EXTRAS)
        missing = sorted(p for p in wanted if p.replace(os.sep, "/") not in names)
        self.assertEqual(missing, [])

    def test_wheel_installs_and_runs(self):
        """The wheel, installed alone into a fresh venv, imports and runs from outside the checkout."""
        self.assertInstalledProjectWorks(self.wheel)

    def test_sdist_installs_and_runs(self):
        """The sdist, built and installed by pip into a fresh venv, imports and runs from outside the checkout."""
        self.assertInstalledProjectWorks(self.sdist)

    def assertInstalledProjectWorks(self, artifact):
        venv = os.path.join(tempfile.mkdtemp(prefix="venv-", dir=self.work), "v")
        run([sys.executable, "-m", "venv", "--without-pip", venv])
        bindir = os.path.join(venv, "bin")
        python = os.path.join(bindir, "python")
        purelib = run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"]).strip()
        lent = [p for p in {*site.getsitepackages(), sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}
                if os.path.isdir(p)]
        with open(os.path.join(purelib, "zz-lent-dependencies.pth"), "w") as pth:
            pth.write("\n".join(lent) + "\n")
        outside = tempfile.mkdtemp(prefix="outside-", dir=self.work)
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PIP_FIND_LINKS")}
        env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
        run([sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps", "--no-index",
             "--no-build-isolation", artifact], cwd=outside, env=env)

        modules = module_names()
        self.assertIn("containerd_tx.supervisor.core", modules)
        check = (
            "import importlib, os, sys\n"
            "prefix = os.path.realpath(sys.prefix)\n"
            "for name in sys.argv[1:]:\n"
            "    module = importlib.import_module(name)\n"
            "    where = os.path.realpath(module.__file__)\n"
            "    assert where.startswith(prefix + os.sep), f'{name} imported from {where}, not the venv'\n"
            "print('imported', len(sys.argv) - 1)\n"
        )
        self.assertEqual(run([python, "-c", check, *modules], cwd=outside, env=env).strip(),
                         f"imported {len(modules)}")

        twistd_help = run([python, "-c", "from twisted.scripts.twistd import run; run()",
                           "-n", "containerd", "--help"], cwd=outside, env=env)
        self.assertIn("--state-dir", twistd_help)
        console_help = run([os.path.join(bindir, "containerd-tx"), "--help"], cwd=outside, env=env)
        self.assertIn("--state-dir", console_help)
        version = run([os.path.join(bindir, "ctr"), "--version"], cwd=outside, env=env)
        from containerd_tx import __version__
        self.assertIn(__version__, version)
