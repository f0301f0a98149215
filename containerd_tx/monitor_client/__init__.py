"""
The daemon's side of the container monitor (Twisted): L{client.MonitorClient} talks to the monitor process
(C{containerd_tx/monitor/}, standard library only, a world of its own), starts it, survives its death
(L{takeover}, L{recovery}) and protects the daemon and the monitor (L{hardening}).
"""
