"""Writing a large private file from a copy of the process, so that the event loop never encodes or syncs it.

`write_forked` forks: the child sees this process's memory exactly as it was at the fork (the kernel
copies pages only when either side changes them), encodes what `chunks` returns there, writes it with
`write_private` (temporary file, fsync, rename, directory fsync) and exits; the parent waits for it in
a thread. The loop pays for the fork only (copying page tables: a few milliseconds per GB of memory),
however large the state, and goes on serving and changing the state meanwhile. The child touches no
lock, logger or database of the parent: it closes every inherited descriptor first (so connections
the parent closes are closed), and leaves with `os._exit`.

A triad member forks too, while its etcd client runs gRPC's threads: the child never calls gRPC, and
`cluster.etcd_client` turns gRPC's fork support off before gRPC is imported (with it on, gRPC restarts
its pollers in the child, which abort once the child has closed their descriptors). The journal still
falls back to in-process snapshots after a child fails.

The child runs at the lowest CPU priority (`CHILD_NICENESS`): encoding a large state takes it seconds of CPU,
and where cores are few (or a triad's three members share a machine) the process answering clients must come
first; the child takes whatever CPU the server leaves, so a checkpoint takes longer only on a busy machine. Its
I/O is in the idle class (`_lowest_io_priority`), so the disk serves the commits' syncs before its writes.
For the same reason it syncs every few megabytes it writes (`SYNC_EVERY`) rather than once at the end: a sync of
hundreds of megabytes makes every other sync on the disk wait behind it, and etcd's log and the journal's
commits sync on every write (at 300k leases, etcd reported 350 ms applies and late heartbeats while three
members' checkpoints were flushed at once).

A crash at any moment leaves the previous file or the new one, never a mix (`write_private`). For
the tests, `LICENTIA_TEST_SNAPSHOT_PAUSE_S` makes the child pause after writing its first chunk.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

from licentia.store.collector import collector_paused
from licentia.store.private_file import write_private

PAUSE_ENV = "LICENTIA_TEST_SNAPSHOT_PAUSE_S"
CHILD_NICENESS = 19  # added to the server's: the lowest priority there is
IOPRIO_IDLE = 3 << 13  # Linux's idle I/O class (3), shifted by IOPRIO_CLASS_SHIFT
_IOPRIO_SET = {"x86_64": 251, "aarch64": 30}  # ioprio_set's syscall number (the C library has no wrapper)
SYNC_EVERY = 4 << 20  # bytes the child writes between syncs (`write_private`'s `sync_every`)


class ForkedWriteFailed(OSError):
    """The child could not write the file; the previous version (if any) is still in place."""


def _lowest_io_priority() -> None:
    """This process's reads, writes and syncs in the idle I/O class (Linux `ioprio_set`; elsewhere nothing): the
    disk serves the server's own syncs (the journal's commits, etcd's log) first, and this process's after them or
    once they have waited the scheduler's longest (mq-deadline's `prio_aging_expire`, 10 s by default)."""
    number = _IOPRIO_SET.get(platform.machine())
    if sys.platform == "linux" and number is not None:
        ctypes.CDLL(None, use_errno=True).syscall(number, 1, 0, IOPRIO_IDLE)  # IOPRIO_WHO_PROCESS, this process


def _child(path: Path, chunks: Callable[[], Sequence[bytes]]) -> int:
    try:
        os.closerange(3, os.sysconf("SC_OPEN_MAX"))
        os.nice(CHILD_NICENESS)
        _lowest_io_priority()
        pause_s = float(os.environ.get(PAUSE_ENV) or 0)
        write_private(path, *chunks(), pause=(lambda: time.sleep(pause_s)) if pause_s else None,
                      sync_every=SYNC_EVERY)
        return 0
    except BaseException:
        os.write(2, f"Could not write {path}:\n{traceback.format_exc()}".encode())
        return 1


class ForkedWrite:
    """A child process writing one file; `wait` until it is on disk (always: the cycle collector waits until then).

    While the child runs, the collector waits: walking the objects would copy every page they are on
    (copy-on-write), which stalls the loop (`store.collector`)."""

    def __init__(self, path: Path, chunks: Callable[[], Sequence[bytes]]) -> None:
        """Fork now: the file will hold `chunks()` as computed from this process's memory at this moment."""
        self.path = path
        self._collector = contextlib.ExitStack()
        self._collector.enter_context(collector_paused())
        try:
            pid = os.fork()
        except OSError:
            self._collector.close()
            raise
        if pid == 0:  # pragma: no cover - the child leaves through os._exit
            code = 1
            try:
                code = _child(path, chunks)
            finally:
                os._exit(code)
        self.pid = pid

    async def wait(self) -> None:
        """Return once the file is on disk; ForkedWriteFailed if the child failed."""
        try:
            _, status = await asyncio.to_thread(os.waitpid, self.pid, 0)
        finally:
            self._collector.close()
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            raise ForkedWriteFailed(f"the process writing {self.path.name} exited with {code}")


async def write_forked(path: Path, chunks: Callable[[], Sequence[bytes]]) -> None:
    """Write `path` with the bytes `chunks()` returns for the memory as it is now, from a forked child."""
    await ForkedWrite(path, chunks).wait()
