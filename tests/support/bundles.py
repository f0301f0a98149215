"""
Busybox OCI bundles for tests and benchmarks: a rootfs from busybox-static, a config from `runc spec`, edited.
"""

import copy
import json
import os
import shutil
import subprocess

BUSYBOX = "/bin/busybox"
_SPEC_CACHE = {}


def requirements_missing(runtime="runc"):
    """A reason why real containers cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root to run real containers"
    if shutil.which(runtime) is None:
        return f"{runtime} is not installed (run scripts/setup-system)"
    if not os.path.exists(BUSYBOX):
        return "busybox-static is not installed (run scripts/setup-system)"
    return None


def make_rootfs(path):
    """
    A minimal root filesystem: busybox and a link per applet, plus the usual mount points.
    """
    os.makedirs(os.path.join(path, "bin"), exist_ok=True)
    shutil.copy2(BUSYBOX, os.path.join(path, "bin", "busybox"))
    applets = subprocess.run([BUSYBOX, "--list"], check=True, capture_output=True, text=True).stdout.split()
    for applet in applets:
        link = os.path.join(path, "bin", applet)
        if applet != "busybox" and not os.path.lexists(link):
            os.symlink("busybox", link)
    for directory in ("proc", "sys", "dev", "tmp", "etc", "root", "var", "run"):
        os.makedirs(os.path.join(path, directory), exist_ok=True)
    with open(os.path.join(path, "etc", "passwd"), "w") as f:
        f.write("root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/tmp:/bin/sh\n")
    with open(os.path.join(path, "etc", "group"), "w") as f:
        f.write("root:x:0:\nuser:x:1000:\n")
    return path


def runc_spec():
    """The default config of `runc spec` (cached), as a dict."""
    if "runc" not in _SPEC_CACHE:
        import tempfile

        with tempfile.TemporaryDirectory() as directory:
            subprocess.run(["runc", "spec"], cwd=directory, check=True)
            with open(os.path.join(directory, "config.json")) as f:
                _SPEC_CACHE["runc"] = json.load(f)
    return copy.deepcopy(_SPEC_CACHE["runc"])


def make_bundle(path, args, rootfs, terminal=False, readonly=True, env=(), memory_limit=None,
                edit=None):
    """
    Write a bundle at C{path} whose container runs C{args} on C{rootfs} (shared between bundles: mounted
    read-only, with a tmpfs on /tmp).

    @param edit: optional callable(config) for per-test changes.
    @return: the bundle path.
    """
    os.makedirs(path, exist_ok=True)
    config = runc_spec()
    config["root"] = {"path": os.path.abspath(rootfs), "readonly": readonly}
    process = config["process"]
    process["args"] = list(args)
    process["terminal"] = terminal
    process["env"] = process["env"] + list(env)
    config["hostname"] = "busybox"
    config["mounts"].append({
        "destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
        "options": ["nosuid", "nodev", "mode=1777", "size=256m"],
    })
    if memory_limit is not None:
        config["linux"].setdefault("resources", {})["memory"] = {"limit": memory_limit}
    if edit is not None:
        edit(config)
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(config, f, indent=1)
    return path
