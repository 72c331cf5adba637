"""The forked child that writes a snapshot or a triad checkpoint yields the CPU to the server."""

from __future__ import annotations

import asyncio
import ctypes
import os
import platform
import sys
from pathlib import Path

import pytest

from licentia.store.forked_write import write_forked
from licentia.store.private_file import write_private


def test_the_child_writing_a_snapshot_runs_at_the_lowest_cpu_priority_and_the_server_keeps_its_own(
    tmp_path: Path,
) -> None:
    # Encoding a large state takes the child seconds of CPU; on a machine with few cores (or three members of a
    # triad on one) it must give way to the process answering clients, not share the CPU with it equally.
    path = tmp_path / "priority"
    before = os.getpriority(os.PRIO_PROCESS, 0)

    asyncio.run(write_forked(path, lambda: [str(os.getpriority(os.PRIO_PROCESS, 0)).encode()]))

    assert int(path.read_text()) == 19  # the lowest (os.nice caps there whatever the server's own)
    assert os.getpriority(os.PRIO_PROCESS, 0) == before  # the server's own priority is untouched


def _io_class() -> int:
    """This process's I/O scheduling class (`ioprio_get`): 0 none (the default), 1 real time, 2 best effort, 3 idle."""
    number = {"x86_64": 252, "aarch64": 31}[platform.machine()]
    return ctypes.CDLL(None, use_errno=True).syscall(number, 1, 0) >> 13


@pytest.mark.skipif(sys.platform != "linux" or platform.machine() not in ("x86_64", "aarch64"),
                    reason="ioprio_get is a Linux system call with these numbers on these machines")
def test_the_child_writing_a_snapshot_waits_for_the_disk_behind_the_servers_own_syncs(tmp_path: Path) -> None:
    # The standbys' checkpoint children took the disk from the etcds' fsyncs in the triad benchmark (bench/README).
    path = tmp_path / "io-class"
    before = _io_class()

    asyncio.run(write_forked(path, lambda: [str(_io_class()).encode()]))

    assert int(path.read_text()) == 3  # idle: the disk serves it when nothing else waits
    assert _io_class() == before != 3  # the server's own I/O keeps its class


def test_a_large_private_file_is_synced_every_few_megabytes_not_all_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A snapshot of hundreds of megabytes flushed by one fsync at the end makes every other fsync on the disk
    # (etcd's log, the journal's commits) wait behind it; synced as it is written, nothing large is ever pending.
    synced_at: list[int] = []
    real_fdatasync = os.fdatasync
    path = tmp_path / "large"

    def fdatasync(fd: int) -> None:
        synced_at.append(os.fstat(fd).st_size)
        real_fdatasync(fd)

    monkeypatch.setattr(os, "fdatasync", fdatasync)
    write_private(path, b"h" * 100, b"x" * (10 << 20), sync_every=1 << 20)

    assert path.read_bytes() == b"h" * 100 + b"x" * (10 << 20)
    assert len(synced_at) == 10
    assert all(later - earlier <= (1 << 20) + 100 for earlier, later in zip([0, *synced_at], synced_at, strict=False))
