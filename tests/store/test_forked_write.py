"""The forked child that writes a snapshot or a triad checkpoint yields the CPU to the server."""

from __future__ import annotations

import asyncio
import os
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
