# -*- test-case-name: tests.unit.test_validation -*-
"""
Every check on client input that needs no daemon state: ids, bundles, stdio paths, signals, sizes, and for
each API request the checks of its fields, in the order the wire contract's messages promise (the first
failing check names the problem).

They run in the gRPC thread before any work reaches the supervisor, and raise
L{containerd_tx.errors.InvalidArgument} with a one-line message. They read the fields of a request message and
never build one (conversions are L{containerd_tx.api_convert}'s).
"""

import json
import os
import re
import signal as signal_module
import stat

from containerd_tx.errors import InvalidArgument
from containerd_tx.model import PAUSED, RUNNING

_ID = re.compile(r"[A-Za-z0-9_.+-]{1,128}")
MAX_SIGNAL = signal_module.SIGRTMAX
MAX_LABELS = 1024
MAX_LABEL_LENGTH = 4096
MAX_RUNTIME_ARGS = 64
#: All labels of one container together, in bytes: 256 of them at the 4096-byte limit, or 1000 of 100 bytes.
MAX_LABEL_BYTES = 256 * 1024
#: The namespaces a checkpoint may leave empty.
NAMESPACES = ("network", "pid", "ipc", "uts", "mount", "user", "cgroup")
#: Terminal sizes above this are refused.
MAX_TERMINAL_SIZE = 65535


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


#: The largest config.json accepted.
CONFIG_LIMIT = 16 * 1024 * 1024


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
            # Read what the file holds (a read of the limit would allocate 16 MiB for every create).
            size = os.fstat(f.fileno()).st_size
            raw = f.read(min(size, CONFIG_LIMIT) + 1 if size else CONFIG_LIMIT + 1)
    except FileNotFoundError:
        raise InvalidArgument(f"bundle {bundle} has no config.json")
    except OSError as e:
        raise InvalidArgument(f"cannot read {path}: {e.strerror}")
    if len(raw) > CONFIG_LIMIT:
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


def check_dir(path, name):
    """Check an optional folder path (checkpointDir): empty, or absolute without NUL, at most 4096 bytes."""
    if path and (not path.startswith("/") or "\0" in path or len(path) > 4096):
        raise InvalidArgument(f"{name} {path!r} must be an absolute path")
    return path


def check_strings(values, name, max_count, max_length):
    """Check a list of strings: at most C{max_count}, each at most C{max_length} long and without NUL."""
    if len(values) > max_count:
        raise InvalidArgument(f"too many {name}: {len(values)} (at most {max_count})")
    for value in values:
        if len(value) > max_length or "\0" in value:
            raise InvalidArgument(f"invalid entry in {name}: too long or contains NUL")
    return values


def _stdio(request):
    return (
        validate_stdio_path(request.stdin, "stdin") or "",
        validate_stdio_path(request.stdout, "stdout") or "",
        validate_stdio_path(request.stderr, "stderr") or "",
    )


# The API's requests, one function each.


def check_create_container(request):
    """
    Check a CreateContainerRequest.

    @return: (the bundle's parsed config.json, the (stdin, stdout, stderr) paths with "" for /dev/null).
    """
    validate_id(request.id)
    if request.checkpoint:
        validate_id(request.checkpoint, "checkpoint name")
    check_dir(request.checkpointDir, "checkpointDir")
    config = load_bundle_config(request.bundlePath)
    stdio = _stdio(request)
    check_strings(request.labels, "labels", MAX_LABELS, MAX_LABEL_LENGTH)
    label_bytes = sum(len(label.encode()) for label in request.labels)
    if label_bytes > MAX_LABEL_BYTES:
        raise InvalidArgument(f"labels too large: {label_bytes} bytes in all (at most {MAX_LABEL_BYTES} per "
                              f"container, so that State answers clients with grpc's default 4 MiB limit)")
    terminal = config["process"].get("terminal") is True
    if terminal and stdio[0]:
        validate_terminal_stdin(stdio[0])
    check_strings(request.runtimeArgs, "runtimeArgs", MAX_RUNTIME_ARGS, MAX_LABEL_LENGTH)
    if request.runtime and ("\0" in request.runtime or len(request.runtime) > 4096):
        raise InvalidArgument("invalid runtime name")
    return config, stdio


def check_signal(request):
    """Check a SignalRequest; the signal number."""
    validate_id(request.id)
    validate_id(request.pid or "", "process id")
    return validate_signal(request.signal)


def check_state(request):
    """Check a StateRequest (an empty id lists every container)."""
    if request.id:
        validate_id(request.id)


def check_add_process(request):
    """
    Check an AddProcessRequest.

    @return: the (stdin, stdout, stderr) paths, "" for /dev/null.
    """
    validate_id(request.id)
    validate_id(request.pid, "process id")
    if not request.args:
        raise InvalidArgument("args must not be empty")
    for name, values in (("args", request.args), ("env", request.env),
                         ("capabilities", request.capabilities)):
        check_strings(values, name, MAX_LABELS, MAX_LABEL_LENGTH)
    if request.terminal and request.stdin:
        validate_terminal_stdin(request.stdin)
    return _stdio(request)


def check_update_process(request):
    """Check an UpdateProcessRequest."""
    validate_id(request.id)
    validate_id(request.pid, "process id")
    if bool(request.width) != bool(request.height):
        raise InvalidArgument("width and height must be given together")
    if request.width > MAX_TERMINAL_SIZE or request.height > MAX_TERMINAL_SIZE:
        raise InvalidArgument(f"width and height must be at most {MAX_TERMINAL_SIZE}")


def check_update_container(request):
    """Check the ids of an UpdateContainerRequest (its resources are checked as they are converted)."""
    validate_id(request.id)
    if request.pid and request.pid != "init":
        validate_id(request.pid, "process id")


def check_update(status, resources):
    """
    Check what an UpdateContainerRequest asks for, once its resources are converted.

    @param resources: the OCI LinuxResources dict, or None without resources.
    """
    if not status and resources is None:
        raise InvalidArgument("nothing to update: give a status or resources")
    if status and status not in (PAUSED, RUNNING):
        raise InvalidArgument(f"invalid status {status!r}: use \"paused\" or \"running\"")


def check_create_checkpoint(request):
    """Check a CreateCheckpointRequest."""
    validate_id(request.id)
    validate_id(request.checkpoint.name, "checkpoint name")
    check_dir(request.checkpointDir, "checkpointDir")
    for namespace in request.checkpoint.emptyNS:
        if namespace not in NAMESPACES:
            raise InvalidArgument(f"invalid emptyNS entry {namespace!r}: use one of {', '.join(NAMESPACES)}")


def check_list_checkpoint(request):
    """Check a ListCheckpointRequest."""
    validate_id(request.id)
    check_dir(request.checkpointDir, "checkpointDir")


def check_delete_checkpoint(request):
    """Check a DeleteCheckpointRequest."""
    validate_id(request.id)
    validate_id(request.name, "checkpoint name")
    check_dir(request.checkpointDir, "checkpointDir")


def check_stats(request):
    """Check a StatsRequest."""
    validate_id(request.id)


def check_events(request, since):
    """
    Check an EventsRequest.

    @param since: its timestamp in nanoseconds, or None without one.
    """
    if request.storedOnly and since is None:
        raise InvalidArgument("storedOnly needs a timestamp")
    if request.id:
        validate_id(request.id)
