"""Licentia: an open network license server with backup and triad redundancy."""

__version__ = "0.1.0"
