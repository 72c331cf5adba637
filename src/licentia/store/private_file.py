"""Writing a private file so that it survives a power cut: all of it, or the previous version.

The data goes to a new temporary file (mode 0600) in the same directory, is synced, renamed over
the target, and the directory is synced so that the new name is on disk too. Keys written at first
start, relationship files and checkpoints all go through here: a key file that exists but is empty
after a power cut would keep the server from starting.
"""

from __future__ import annotations

import os
from pathlib import Path


def sync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_private(path: Path, *chunks: bytes) -> None:
    """Replace `path` with the concatenation of `chunks`, durably and atomically, readable by the owner only."""
    temporary = path.with_name(f".{path.name}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for chunk in chunks:
            view = memoryview(chunk)
            while view:
                view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temporary, path)
    sync_directory(path.parent)
