# -*- test-case-name: tests.unit.test_validation -*-
"""
Checks on client input that need no daemon state: ids, bundles, stdio paths, signals.

They run in the gRPC thread before any work reaches the supervisor, and raise
L{containerd_tx.errors.InvalidArgument} with a one-line message.
"""

import json
import os
import re
import signal as signal_module
import stat

from containerd_tx.errors import InvalidArgument

_ID = re.compile(r"[A-Za-z0-9_.+-]{1,128}")
MAX_SIGNAL = signal_module.SIGRTMAX


def validate_id(value, what="container id"):
    """
    Check an id (container, process or checkpoint) against the contract's rule: 1-128 characters of
    C{[A-Za-z0-9_.+-]}, not starting with C{.} or C{-}. Such an id can never name a path outside its folder.

    @return: C{value}.
    """
    if not value:
        raise InvalidArgument(f"{what} must not be empty")
    if len(value) > 128:
        raise InvalidArgument(f"{what} is longer than 128 characters")
    if not _ID.fullmatch(value) or value[0] in ".-":
        raise InvalidArgument(
            f"invalid {what} {value!r}: use 1-128 of [A-Za-z0-9_.+-], not starting with '.' or '-'"
        )
    return value


def load_bundle_config(bundle):
    """
    Check that C{bundle} is an absolute directory with a valid config.json and return the parsed config.
    """
    if not bundle:
        raise InvalidArgument("bundlePath must not be empty")
    if not os.path.isabs(bundle):
        raise InvalidArgument(f"bundlePath {bundle!r} must be an absolute path")
    if not os.path.isdir(bundle):
        if os.path.exists(bundle):
            raise InvalidArgument(f"bundlePath {bundle} is not a directory")
        raise InvalidArgument(f"bundlePath {bundle} does not exist")
    path = os.path.join(bundle, "config.json")
    try:
        with open(path, "rb") as f:
            raw = f.read(16 * 1024 * 1024 + 1)
    except FileNotFoundError:
        raise InvalidArgument(f"bundle {bundle} has no config.json")
    except OSError as e:
        raise InvalidArgument(f"cannot read {path}: {e.strerror}")
    if len(raw) > 16 * 1024 * 1024:
        raise InvalidArgument(f"{path} is larger than 16 MiB")
    if not raw.strip():
        raise InvalidArgument(f"{path} is empty")
    try:
        config = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise InvalidArgument(f"{path} is not valid JSON: {e}")
    except RecursionError:
        raise InvalidArgument(f"{path} is nested too deeply")
    _check_config_shape(config, path)
    return config


def _check_config_shape(config, path):
    if not isinstance(config, dict):
        raise InvalidArgument(f"{path}: top level must be a JSON object")
    process = config.get("process")
    if not isinstance(process, dict):
        raise InvalidArgument(f"{path}: missing \"process\" object")
    args = process.get("args")
    if not isinstance(args, list) or not args or not all(isinstance(a, str) for a in args):
        raise InvalidArgument(f"{path}: process.args must be a non-empty list of strings")
    root = config.get("root")
    if not isinstance(root, dict) or not isinstance(root.get("path"), str):
        raise InvalidArgument(f"{path}: missing root.path")
    if not isinstance(config.get("ociVersion", ""), str):
        raise InvalidArgument(f"{path}: ociVersion must be a string")
    _check_process_types(process, path)


_UINT32 = 1 << 32
_UINT64 = 1 << 64
CAPABILITY_SETS = ("bounding", "effective", "inheritable", "permitted", "ambient")


def _is_int(value, limit):
    # bool is an int to Python, not to JSON.
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < limit


def _check_process_types(process, path):
    """
    The types of the C{process} fields the daemon reads (and runc would refuse later with less clear words):
    each wrong one is one line naming the field.
    """
    def wrong(field, wanted):
        raise InvalidArgument(f"{path}: process.{field} must be {wanted}")

    for field in ("terminal", "noNewPrivileges"):
        if field in process and not isinstance(process[field], bool):
            wrong(field, "true or false")
    for field in ("cwd", "apparmorProfile", "selinuxLabel"):
        if field in process and not isinstance(process[field], str):
            wrong(field, "a string")
    env = process.get("env")
    if env is not None and (not isinstance(env, list) or not all(isinstance(e, str) for e in env)):
        wrong("env", "a list of strings")
    user = process.get("user")
    if user is not None:
        if not isinstance(user, dict):
            wrong("user", "an object with numeric uid and gid")
        for field in ("uid", "gid"):
            if field in user and not _is_int(user[field], _UINT32):
                wrong(f"user.{field}", "a number from 0 to 4294967295 (names are not resolved)")
        gids = user.get("additionalGids")
        if gids is not None and (not isinstance(gids, list) or not all(_is_int(g, _UINT32) for g in gids)):
            wrong("user.additionalGids", "a list of numbers from 0 to 4294967295")
        if "username" in user and not isinstance(user["username"], str):
            wrong("user.username", "a string")
    capabilities = process.get("capabilities")
    if isinstance(capabilities, list):
        raise InvalidArgument(
            f"{path}: process.capabilities is a list, the form of runtime-spec before 1.0.0-rc5; use the "
            f"1.0.0-rc5 and later form, an object of lists ({', '.join(CAPABILITY_SETS)})"
        )
    if capabilities is not None:
        if not isinstance(capabilities, dict):
            wrong("capabilities", f"an object of lists ({', '.join(CAPABILITY_SETS)})")
        for name, values in capabilities.items():
            if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
                wrong(f"capabilities.{name}", "a list of strings")
    rlimits = process.get("rlimits")
    if rlimits is not None:
        if not isinstance(rlimits, list):
            wrong("rlimits", "a list of objects with type, soft and hard")
        for limit in rlimits:
            if (not isinstance(limit, dict) or not isinstance(limit.get("type"), str)
                    or not _is_int(limit.get("soft"), _UINT64) or not _is_int(limit.get("hard"), _UINT64)):
                wrong("rlimits", "a list of objects with a string type and numeric soft and hard limits")
    console = process.get("consoleSize")
    if console is not None and (not isinstance(console, dict)
                                or not all(_is_int(console.get(k, 0), _UINT32) for k in ("height", "width"))):
        wrong("consoleSize", "an object with numeric height and width")


def validate_stdio_path(path, name):
    """
    Check a client-given stdio path: empty (meaning /dev/null), or an absolute path that is a FIFO, a
    character device, a writable regular file, or a missing file in an existing directory.

    @param name: "stdin", "stdout" or "stderr", for the message.
    @return: the path, or C{None} for /dev/null.
    """
    if not path:
        return None
    if "\0" in path:
        raise InvalidArgument(f"{name} path {path!r} must not contain NUL characters")
    if not os.path.isabs(path):
        raise InvalidArgument(f"{name} path {path!r} must be absolute")
    try:
        st = os.stat(path)
    except FileNotFoundError:
        parent = os.path.dirname(path)
        if name == "stdin" or not os.path.isdir(parent):
            raise InvalidArgument(f"{name} path {path} does not exist")
        return path
    except OSError as e:
        raise InvalidArgument(f"{name} path {path}: {e.strerror}")
    if stat.S_ISDIR(st.st_mode):
        raise InvalidArgument(f"{name} path {path} is a directory")
    if not (stat.S_ISFIFO(st.st_mode) or stat.S_ISREG(st.st_mode) or stat.S_ISCHR(st.st_mode)):
        raise InvalidArgument(f"{name} path {path} is not a FIFO, file or character device")
    # Root passes every access() check on a writable filesystem, so a regular file with no write (or
    # read) bit at all is taken as the owner's wish that it not be written (or read).
    mode, bits = (os.R_OK, 0o444) if name == "stdin" else (os.W_OK, 0o222)
    if not os.access(path, mode) or (stat.S_ISREG(st.st_mode) and st.st_mode & bits == 0):
        raise InvalidArgument(f"{name} path {path} is not {'readable' if name == 'stdin' else 'writable'}")
    return path


def validate_terminal_stdin(path):
    """
    Check the stdin of a process with a terminal: what is typed into the terminal comes from it as a stream,
    so it must be a FIFO (a regular file or device is refused; a checked path, see L{validate_stdio_path}).
    """
    try:
        st = os.stat(path)
    except OSError as e:
        raise InvalidArgument(f"stdin path {path}: {e.strerror}")
    if not stat.S_ISFIFO(st.st_mode):
        raise InvalidArgument(f"stdin path {path} of a process with a terminal must be a FIFO")
    return path


def validate_signal(number):
    """
    Check a signal number: 1 to SIGRTMAX.
    """
    if not 1 <= number <= MAX_SIGNAL:
        raise InvalidArgument(f"invalid signal {number}: must be between 1 and {int(MAX_SIGNAL)}")
    return int(number)
