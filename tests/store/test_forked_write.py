"""The forked child that writes a snapshot or a triad checkpoint yields the CPU to the server."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from licentia.store.forked_write import write_forked


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
