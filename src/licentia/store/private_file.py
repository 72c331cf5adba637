"""Writing a private file so that it survives a power cut: all of it, or the previous version.

The data goes to a new temporary file (mode 0600) in the same directory, is synced, renamed over
the target, and the directory is synced so that the new name is on disk too. Keys written at first
start, relationship files and checkpoints all go through here: a key file that exists but is empty
after a power cut would keep the server from starting.

The whole data directory is private too: `licentia serve` and `licentia demo` run with umask 077, and
`make_private` takes group and other permissions off what an earlier start (or a copy, or a restore)
left readable.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("licentia.store")

PRIVATE_UMASK = 0o077
MAX_PRIVATE_WALK = 20_000  # entries looked at; a data directory holds a few dozen (a triad's etcd a few hundred)


def sync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_private(path: Path, *chunks: bytes, pause: Callable[[], None] | None = None, sync_every: int = 0) -> None:
    """Replace `path` with the concatenation of `chunks`, durably and atomically, readable by the owner only.
    `pause` (for crash tests) is called after the first chunk is written. With `sync_every`, the data is synced
    each time that many bytes were written: a large file (a snapshot, a checkpoint) then never has hundreds of
    megabytes waiting to be flushed at once, which every other fsync on the disk would wait behind (etcd's log,
    the journal's commits)."""
    temporary = path.with_name(f".{path.name}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        unsynced = 0
        for n, chunk in enumerate(chunks):
            if n == 1 and pause is not None:
                pause()
            view = memoryview(chunk)
            while view:
                written = os.write(fd, view[: sync_every or len(view)])
                view = view[written:]
                unsynced += written
                if sync_every and unsynced >= sync_every:
                    os.fdatasync(fd)
                    unsynced = 0
        os.fsync(fd)
    finally:
        os.close(fd)
    put_in_place(temporary, path)


def put_in_place(temporary: Path, path: Path) -> None:
    """Rename the synced file `temporary` over `path`, and sync the directory so that the new name is on disk."""
    os.replace(temporary, path)
    sync_directory(path.parent)


def make_private(directory: Path, limit: int = MAX_PRIVATE_WALK) -> int:
    """Take group and other permissions off `directory` and everything under it (symbolic links are left
    alone, never followed); look at `limit` entries at most. Returns how many entries were changed."""
    changed, seen = _make_private(directory), 0
    for root, dirs, files in os.walk(directory):
        for name in [*dirs, *files]:
            seen += 1
            if seen > limit:
                log.warning("Stopped making %s private after %d entries; check the modes of the rest.", directory,
                            limit)
                return changed
            changed += _make_private(Path(root) / name)
    if changed:
        log.warning("Made %d file(s) and folder(s) in %s readable by this server's user only.", changed, directory)
    return changed


def _make_private(path: Path) -> int:
    try:
        mode = path.lstat().st_mode
        if stat.S_ISLNK(mode) or not stat.S_IMODE(mode) & 0o077:
            return 0
        path.chmod(stat.S_IMODE(mode) & ~0o077)
    except OSError as exc:
        log.warning("Could not make %s private: %s.", path, exc.strerror)
        return 0
    return 1
