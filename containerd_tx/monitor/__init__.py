"""
The container monitor.

One long-lived monitor process per daemon state dir (C{monitord.py}, stdlib
only, run with C{python -S}) is the child subreaper of every container
process: it spawns every runtime command, reaps, records exit statuses
atomically on disk, proxies stdio (stdin FIFOs, ptys), and outlives the
daemon.  The daemon talks to it with L{client.MonitorClient}.
"""
