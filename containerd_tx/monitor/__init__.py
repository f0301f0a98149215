"""
The container monitor program.

One long-lived monitor process per daemon state dir (C{monitord.py}, stdlib
only, run with C{python -S}) is the child subreaper of every container
process: it spawns every runtime command, reaps, records exit statuses
atomically on disk, proxies stdio (stdin FIFOs, ptys), and outlives the
daemon.  Its modules, one per job, are listed in L{server}.  Nothing here
imports Twisted: the daemon talks to it with
L{containerd_tx.monitor_client.client.MonitorClient}, in a folder of its own.
"""
