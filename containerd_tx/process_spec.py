# -*- test-case-name: tests.unit.test_process_spec -*-
"""
The OCI process of an exec: the bundle's own process settings, narrowed (never widened) by the request.
"""

import copy
import os

from containerd_tx.errors import FailedPrecondition, InvalidArgument

RLIMIT_TYPES = {
    "RLIMIT_AS", "RLIMIT_CORE", "RLIMIT_CPU", "RLIMIT_DATA", "RLIMIT_FSIZE", "RLIMIT_LOCKS",
    "RLIMIT_MEMLOCK", "RLIMIT_MSGQUEUE", "RLIMIT_NICE", "RLIMIT_NOFILE", "RLIMIT_NPROC", "RLIMIT_RSS",
    "RLIMIT_RTPRIO", "RLIMIT_RTTIME", "RLIMIT_SIGPENDING", "RLIMIT_STACK",
}
APPARMOR_DIR = "/sys/kernel/security/apparmor"
SELINUX_DIR = "/sys/fs/selinux"


def exec_process(bundle_process, request):
    """
    Build the OCI C{process} object for an exec.

    Settings the request leaves empty come from the bundle. Capabilities are the bundle's unless the request
    names some explicitly; no-new-privileges stays on when the bundle turns it on.

    @param bundle_process: the C{process} object of the container's config.json.
    @param request: a dict with args, env, cwd, terminal, uid, gid, additional_gids, capabilities,
        no_new_privileges, rlimits (list of dicts type/soft/hard), apparmor_profile, selinux_label.
    @raise InvalidArgument: malformed request values.
    @raise FailedPrecondition: a security module the host does not have.
    """
    if not request["args"]:
        raise InvalidArgument("args must not be empty")
    process = copy.deepcopy(bundle_process)
    process["args"] = list(request["args"])
    process["terminal"] = bool(request["terminal"])
    if request["env"]:
        process["env"] = list(request["env"])
    if request["cwd"]:
        if not request["cwd"].startswith("/"):
            raise InvalidArgument(f"cwd {request['cwd']!r} must be an absolute path")
        process["cwd"] = request["cwd"]
    user = {"uid": request["uid"], "gid": request["gid"]}
    if request["additional_gids"]:
        user["additionalGids"] = list(request["additional_gids"])
    process["user"] = user
    if request["capabilities"]:
        caps = [_capability(c) for c in request["capabilities"]]
        process["capabilities"] = {kind: caps for kind in ("bounding", "effective", "inheritable",
                                                          "permitted", "ambient")}
    process["noNewPrivileges"] = bool(bundle_process.get("noNewPrivileges")) or request["no_new_privileges"]
    if request["rlimits"]:
        process["rlimits"] = [_rlimit(r) for r in request["rlimits"]]
    if request["apparmor_profile"]:
        if not os.path.isdir(APPARMOR_DIR):
            raise FailedPrecondition("apparmorProfile given but AppArmor is not enabled on this host")
        process["apparmorProfile"] = request["apparmor_profile"]
    if request["selinux_label"]:
        if not os.path.isdir(SELINUX_DIR):
            raise FailedPrecondition("selinuxLabel given but SELinux is not enabled on this host")
        process["selinuxLabel"] = request["selinux_label"]
    for key in ("env", "args"):
        if any("\0" in value for value in process.get(key) or []):
            raise InvalidArgument(f"{key} must not contain NUL characters")
    return process


def _capability(name):
    name = name.upper()
    if not name.startswith("CAP_"):
        name = "CAP_" + name
    if not name[4:].replace("_", "").isalnum():
        raise InvalidArgument(f"invalid capability {name!r}")
    return name


def _rlimit(limit):
    kind = limit["type"].upper()
    if not kind.startswith("RLIMIT_"):
        kind = "RLIMIT_" + kind
    if kind not in RLIMIT_TYPES:
        raise InvalidArgument(f"unknown rlimit type {limit['type']!r}")
    if limit["soft"] > limit["hard"]:
        raise InvalidArgument(f"rlimit {kind}: soft limit {limit['soft']} above hard limit {limit['hard']}")
    return {"type": kind, "soft": limit["soft"], "hard": limit["hard"]}
