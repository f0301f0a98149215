#!/usr/bin/env python3
# -*- test-case-name: tests.unit.test_monitord -*-
"""
monitord: the container monitor process, one per daemon state dir.

Run as ``<python> -S monitord.py --state-dir DIR [--idle-exit SECONDS] [--oom-score-adj N]
[--child-oom-score-adj N] [--child-nofile N]``: the monitor takes oom_score_adj N itself (the daemon
gives -999) and spawns every command with the children's oom_score_adj and soft RLIMIT_NOFILE (the values
the daemon was started with; the monitor raises its own soft limit to the hard one).
Standard library only: this script imports L{containerd_tx.monitor.server}
(which lists the monitor's modules, one per job) and L{containerd_tx.layout}
(the state dir's paths, the atomic write) from the package it is part of.  It must start fast, stay small, and not
depend on the daemon's site-packages.

What it does
============
- Becomes a session leader and a child subreaper, so every process the
  runtime detaches (container inits, exec'd processes, runc's intermediate
  processes) is reparented to it.  It reaps every child, known or not.
- Holds an exclusive flock on DIR/monitor.lock (a second monitor exits 1),
  writes DIR/monitor.pid, listens on DIR/monitor.sock (0600), prints
  C{ready <pid>} on stdout and closes stdout.
- Spawns every runtime command for the daemon (os.posix_spawn), returns
  status and captured output, and keeps a registry of live container
  processes keyed by (container id, process id).
- When a registered process exits (its status read with WNOWAIT: it stays a
  zombie until its record is on disk, so a monitor killed meanwhile leaves
  the status to the daemon, its subreaper) it drains its pty, closes its stdio
  proxies, writes C{<record_dir>/exit-<process>.json} atomically, reaps it,
  then notifies the connected daemon.  The record is the truth while no daemon is
  connected.  Records are written by a thread of their own, in batches, so a
  slow fsync never stalls stdio.  A record that cannot be written (ENOSPC,
  EIO) is kept in memory, handed to every daemon that says hello, retried
  every second, and dropped once written, once the daemon says C{exit_handled},
  or when its folder is gone (the container was removed).  Status: the exit code, or 128 + signal number.  Exit statuses
  of unknown children (4096 newest) are kept, so a registered process that
  exited before its pid file was read still gets its true status (only a
  status reaped after its spawn began: pids wrap around).  A registered
  process that is still the child of the runtime's short-lived helper (crun
  forks twice) is waited for through the helper's pidfd: once the helper is
  gone the process is the monitor's child, alive or a zombie.  Exited
  children are found one at a time with waitid(P_ALL, WNOWAIT), O(1) each;
  only while a held zombie hides the others is every child asked (a scan).
- Survives the daemon; accepts one daemon connection at a time (a new one
  replaces the old one).
- Exits on its own after C{--idle-exit} seconds (default 5, 0: never) with no
  registered process, no running spawn and no daemon connected; on SIGTERM or
  SIGINT it exits at once.  On exit it removes monitor.sock and monitor.pid.

Wire protocol (version 2)
=========================
Newline-delimited JSON objects over the unix stream socket.  Requests carry an
integer C{tag}; replies carry the same tag and C{"ok": true}, or
C{"ok": false, "error": "<one line>"}.  Notifications carry C{"event"} and no
tag (except C{spawned}, which names the spawn's tag).  Captured bytes are
base64 strings (standard alphabet, padded).  All paths must be absolute.

- C{{"op":"hello"}} -> C{{"pid":..,"protocol":2,"processes":[{"container",
  "process","pid","tty","record_dir","set","fostered"}, ...],"exits":[<exit
  records kept in memory>]}}, then an C{fds} event per fd set.
- Event C{{"event":"fds","set","container","process","pid","record_dir",
  "tty","exited","fostered","names":[..],"ids":[[dev,ino],..]}} with a copy
  of each named fd (SCM_RIGHTS, in the order of C{names}): the daemon's fd
  store.  Sent at registration (before the spawn's reply) and after hello.
  Names: C{stdout_src}/C{stdout_dst} (pipe read end, FIFO or file), the same
  for stderr, C{stdin_src}/C{stdin_dst} (FIFO, pipe write end), C{master},
  C{tty_out}, C{tty_in}.  Event C{{"event":"released","set","names"}}: the
  monitor closed those for good; the daemon closes its copies.
- C{{"op":"takeover","sets":[{"set","container","process","pid",
  "record_dir","tty","exited","names"}, ...]}} with the fds (SCM_RIGHTS, in
  order): a new monitor goes on with the stdio a dead one left.  Live ones
  are registered as fostered: the daemon (their parent now) reaps them and
  says C{{"op":"ended","container","process","pid"}}, and the monitor
  flushes and closes their stdio.
- C{{"op":"exit_handled","container","process","pid"}}: the daemon has an
  exit whose record is kept in memory; drop it.
- C{{"op":"spawn","argv":[abs, ...],"env":{..}|null,"capture":bool,
  "stdin","stdout","stderr","pid_file","console_socket": path|null,
  "register":{"container","process","record_dir"}|null, "announce":bool}}
  -> event C{{"event":"spawned","tag":N,"spawn_pid":P}} right after the spawn
  (unless C{announce} is false: the daemon's runtime commands need only the
  reply, and a message less per start is CPU saved on both sides), then, when the command has exited, C{{"status":S,"stdout":b64,"stderr":b64,
  "pid":P|null}} (stdout/stderr are "" unless captured).
  C{capture} gives the child /dev/null as stdin and pipes as stdout/stderr
  (16 MiB kept each, the excess dropped); otherwise the child gets the stdio
  paths (null: /dev/null).  A FIFO stdin is proxied through a pipe so that
  C{close_stdin} can deliver EOF.  With C{console_socket} the stdin/stdout
  paths feed the pty proxy and the child gets /dev/null (or the capture
  pipes, if C{capture}: that is how runc's own error messages are kept); the
  stdin of a terminal must be a FIFO.  C{register} needs C{pid_file}: after
  exit status 0 the pid is read from it and registered (an error if the file
  is missing or garbage).  Without C{register}, C{pid} is the pid read from
  C{pid_file} when readable.
- C{{"op":"kill","target":<spawn tag>,"signal":N}}: signal a running spawn.
- C{{"op":"resize","container","process","width","height"}}: TIOCSWINSZ.
- C{{"op":"close_stdin","container","process"}}: deliver what the stdin FIFO
  holds, then EOF (pipe closed; pty: a ^D byte).  Idempotent.
- C{{"op":"adopt","container","process","pid","record_dir"}}: watch a live
  pid that is not our child (pidfd); its status is unknown: the record says
  C{"status":255,"unknown":true}.
- C{{"op":"forget","container","process"}}: drop a registration, no record.
- Notification C{{"event":"exit","container","process","pid","status",
  "time_ns"}} (plus C{"unwritten":true} when the record is only in memory,
  and C{"unknown":true} when the status is unknown: adopted
  processes, and a registered pid that was gone, not reaped by us, when its
  pid file was read).

Spawns outlive the connection that asked for them: when it closes (or a new
connection replaces it) they keep running, their processes still register,
only their replies are dropped.  A new daemon learns the registrations from
C{hello} and the exits from the records and later notifications.
"""

import os
import sys


def run():
    """
    Import the server from the containerd_tx package this script is part of and run it.

    The script itself is compiled at every start; the modules it imports are
    cached as bytecode even when the daemon's environment says
    PYTHONDONTWRITEBYTECODE (compiling them costs ~10 ms and ~4 MB RSS).
    """
    here = os.path.dirname(os.path.abspath(__file__))
    # The folder holding the containerd_tx package, in place of this script's own (whose module names, such
    # as records or stdio, must not be found as top-level modules); the package's __init__ imports nothing.
    sys.path[:] = [path for path in sys.path if os.path.abspath(path or ".") != here]
    root = os.path.dirname(os.path.dirname(here))
    if root not in sys.path:
        sys.path.insert(0, root)
    sys.dont_write_bytecode = False
    from containerd_tx.monitor import server

    return server.main()


if __name__ == "__main__":
    sys.exit(run())
