"""
The OCI runtime seam: L{IRuntime} and its implementation for runc-compatible command lines.
"""
