"""
The daemon's shape without its features, for L{bench.shape_floor}: a grpcio server whose worker threads hand
each start to a Twisted reactor, and a separate monitor process that runs the runtime and reaps it. What a
start costs here is the least any daemon of this shape can spend on it.
"""
