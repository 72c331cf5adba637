"""The power-loss file system loses exactly what a power cut loses, on a real FUSE mount.

Each test also checks something a plain passthrough file system would get wrong (it would keep unsynced data
and names), so the tests fail if the file system stops dropping data.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from powerloss.lazyfs import PARKING_DIRECTORY_NAME, LazyMount

pytestmark = pytest.mark.skipif(not os.path.exists("/dev/fuse"), reason="/dev/fuse is missing, so nothing can be "
                                "mounted with FUSE here.")


@pytest.fixture
def lazy_mount(tmp_path: Path) -> Iterator[LazyMount]:
    with LazyMount(tmp_path / "backing", tmp_path / "mnt") as mount:
        yield mount


def write_file(path: Path, data: bytes, *, sync: bool) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(descriptor, data)
        if sync:
            os.fsync(descriptor)
    finally:
        os.close(descriptor)


def fsync_directory(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def durable_file(path: Path, data: bytes) -> None:
    """Create a file whose content and name both survive a cut."""
    write_file(path, data, sync=True)
    fsync_directory(path.parent)


def test_write_followed_by_fsync_survives_a_cut_and_a_later_unsynced_write_does_not(lazy_mount: LazyMount) -> None:
    path = lazy_mount.mountpoint / "synced.txt"
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        os.write(descriptor, b"first, synced with fsync")
        os.fsync(descriptor)
        os.write(descriptor, b"; second, synced with fdatasync")
        os.fdatasync(descriptor)
        os.write(descriptor, b"; third, never synced")
    finally:
        os.close(descriptor)
    assert path.read_bytes().endswith(b"never synced")

    lazy_mount.cut()

    assert path.read_bytes() == b"first, synced with fsync; second, synced with fdatasync"
    assert (lazy_mount.backing / "synced.txt").read_bytes() == path.read_bytes()


def test_an_unsynced_write_reverts_to_the_last_synced_content(lazy_mount: LazyMount) -> None:
    path = lazy_mount.mountpoint / "data.bin"
    durable_file(path, b"version one")
    with open(path, "r+b") as file:
        file.write(b"VERSION TWO, LONGER THAN ONE")
    assert path.read_bytes() == b"VERSION TWO, LONGER THAN ONE"
    assert lazy_mount.stats()["dirty_bytes"] > 0
    assert (lazy_mount.backing / "data.bin").read_bytes() == b"version one"

    dropped = lazy_mount.cut()

    assert dropped["files_with_lost_changes"] == 1
    assert path.read_bytes() == b"version one"
    assert path.stat().st_size == len(b"version one")


def test_a_rename_needs_a_directory_fsync_to_survive(lazy_mount: LazyMount) -> None:
    directory = lazy_mount.mountpoint
    durable_file(directory / "old-name", b"old content")
    durable_file(directory / "replaced", b"replaced content")

    os.rename(directory / "old-name", directory / "new-name")
    assert (directory / "new-name").read_bytes() == b"old content"
    lazy_mount.cut()
    assert (directory / "old-name").read_bytes() == b"old content"
    assert not (directory / "new-name").exists()

    os.rename(directory / "old-name", directory / "replaced")
    lazy_mount.cut()
    assert (directory / "old-name").read_bytes() == b"old content"
    assert (directory / "replaced").read_bytes() == b"replaced content"

    os.rename(directory / "old-name", directory / "new-name")
    fsync_directory(directory)
    lazy_mount.cut()
    assert (directory / "new-name").read_bytes() == b"old content"
    assert not (directory / "old-name").exists()
    assert sorted(os.listdir(directory)) == ["new-name", "replaced"]
    assert sorted(os.listdir(lazy_mount.backing)) == sorted(["new-name", "replaced", PARKING_DIRECTORY_NAME])


def test_a_new_file_disappears_unless_its_directory_or_the_file_was_fsynced(lazy_mount: LazyMount) -> None:
    directory = lazy_mount.mountpoint
    write_file(directory / "name-synced", b"data never synced", sync=False)
    fsync_directory(directory)
    write_file(directory / "file-synced", b"synced data", sync=True)
    write_file(directory / "nothing-synced", b"data", sync=False)
    (directory / "subdirectory").mkdir()
    write_file(directory / "subdirectory" / "file-synced", b"synced inner data", sync=True)
    assert (directory / "nothing-synced").read_bytes() == b"data"

    undone = lazy_mount.cut()

    assert undone["undone_namespace_operations"] == 1
    assert sorted(os.listdir(directory)) == ["file-synced", "name-synced", "subdirectory"]
    assert (directory / "name-synced").read_bytes() == b""
    assert (directory / "file-synced").read_bytes() == b"synced data"
    # An fsync of a new file makes its name durable, and with it the new directory that holds it.
    assert (directory / "subdirectory" / "file-synced").read_bytes() == b"synced inner data"


def test_a_new_file_in_an_unsynced_directory_disappears_with_its_data(lazy_mount: LazyMount) -> None:
    directory = lazy_mount.mountpoint
    write_file(directory / "never-synced", b"some data", sync=False)
    (directory / "new-directory").mkdir()
    write_file(directory / "new-directory" / "inner", b"inner data", sync=False)
    assert (directory / "never-synced").read_bytes() == b"some data"

    lazy_mount.cut()

    assert os.listdir(directory) == []
    assert os.listdir(lazy_mount.backing) == [PARKING_DIRECTORY_NAME]


def test_an_unlink_without_a_directory_fsync_is_undone(lazy_mount: LazyMount) -> None:
    directory = lazy_mount.mountpoint
    durable_file(directory / "kept", b"kept content")
    durable_file(directory / "removed", b"removed content")
    (directory / "kept").unlink()
    (directory / "removed").unlink()
    assert not (directory / "kept").exists()
    fsync_directory(directory)
    durable_file(directory / "other", b"x")
    (directory / "other").unlink()

    lazy_mount.cut()

    assert sorted(os.listdir(directory)) == ["other"]
    assert (directory / "other").read_bytes() == b"x"


def test_an_unsynced_truncation_is_undone(lazy_mount: LazyMount) -> None:
    path = lazy_mount.mountpoint / "long.bin"
    original = bytes(range(256)) * 40
    durable_file(path, original)

    os.truncate(path, 100)
    assert path.stat().st_size == 100
    with open(path, "r+b") as file:
        file.truncate(5000)
    assert path.read_bytes() == original[:100] + bytes(4900)
    lazy_mount.cut()
    assert path.read_bytes() == original

    os.truncate(path, 100)
    with open(path, "r+b") as file:
        file.truncate(5000)
        os.fsync(file.fileno())
    lazy_mount.cut()
    assert path.read_bytes() == original[:100] + bytes(4900)


def test_mmap_writes_survive_with_msync_and_are_lost_without(lazy_mount: LazyMount) -> None:
    path = lazy_mount.mountpoint / "mapped.bin"
    durable_file(path, bytes(3 * mmap.PAGESIZE))
    with open(path, "r+b") as file, mmap.mmap(file.fileno(), 3 * mmap.PAGESIZE) as mapping:
        mapping[0:6] = b"synced"
        mapping.flush()  # msync(MS_SYNC): the kernel writes the page back, then sends an fsync.
        mapping[mmap.PAGESIZE : mmap.PAGESIZE + 8] = b"unsynced"
    # Closing wrote the second page back as a plain write: it reached the file system, but unsynced.
    assert lazy_mount.stats()["dirty_bytes"] > 0
    assert path.read_bytes()[mmap.PAGESIZE : mmap.PAGESIZE + 8] == b"unsynced"

    lazy_mount.cut()

    content = path.read_bytes()
    assert content[0:6] == b"synced"
    assert content[mmap.PAGESIZE : mmap.PAGESIZE + 8] == bytes(8)


def test_random_writes_and_truncations_match_a_model_before_and_after_cuts(lazy_mount: LazyMount) -> None:
    randomness = random.Random(20240611)
    path = lazy_mount.mountpoint / "random.bin"
    durable_file(path, b"")
    synced = bytearray()
    current = bytearray()
    descriptor = os.open(path, os.O_RDWR)
    try:
        for step in range(300):
            choice = randomness.random()
            if choice < 0.6:
                offset = randomness.randrange(0, 40_000)
                data = randomness.randbytes(randomness.randrange(1, 9000))
                os.pwrite(descriptor, data, offset)
                if offset > len(current):
                    current.extend(bytes(offset - len(current)))
                current[offset : offset + len(data)] = data
            elif choice < 0.8:
                length = randomness.randrange(0, 45_000)
                os.ftruncate(descriptor, length)
                del current[length:]
                current.extend(bytes(length - len(current)))
            elif choice < 0.93:
                os.fsync(descriptor)
                synced = bytearray(current)
            else:
                os.close(descriptor)
                lazy_mount.cut()
                descriptor = os.open(path, os.O_RDWR)
                current = bytearray(synced)
            assert os.fstat(descriptor).st_size == len(current), f"the size is wrong after step {step}"
            assert os.pread(descriptor, len(current) + 10, 0) == current, f"the content is wrong after step {step}"
    finally:
        os.close(descriptor)
    lazy_mount.cut()
    assert path.read_bytes() == synced


SQLITE_WRITER = textwrap.dedent("""
    import sqlite3, sys, time
    database, synchronous, first, last = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    connection = sqlite3.connect(database, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute(f"PRAGMA synchronous={synchronous}")
    connection.execute("CREATE TABLE IF NOT EXISTS entries (id INTEGER PRIMARY KEY, payload TEXT)")
    for number in range(first, last + 1):
        connection.execute("BEGIN")
        connection.execute("INSERT INTO entries VALUES (?, ?)", (number, "x" * 500))
        connection.execute("COMMIT")
    print("committed", flush=True)
    time.sleep(600)
""")


def run_sqlite_writer_then_kill(database: Path, synchronous: str, first: int, last: int) -> None:
    """Commit rows first..last in one transaction each, then SIGKILL the writer with the database still open."""
    writer = subprocess.Popen([sys.executable, "-c", SQLITE_WRITER, str(database), synchronous, str(first), str(last)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout is not None
        assert writer.stdout.readline().strip() == "committed"
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()


def rows_and_integrity(database: Path) -> tuple[list[int], str]:
    connection = sqlite3.connect(database)
    try:
        rows = [row[0] for row in connection.execute("SELECT id FROM entries ORDER BY id")]
        integrity = connection.execute("PRAGMA integrity_check").fetchone()[0]
        return rows, integrity
    finally:
        connection.close()


def test_sqlite_in_wal_mode_keeps_commits_with_synchronous_full_and_loses_them_with_off(
    lazy_mount: LazyMount,
) -> None:
    database = lazy_mount.mountpoint / "licenses.db"

    run_sqlite_writer_then_kill(database, "FULL", 1, 30)
    syncs_before_cut = lazy_mount.stats()["file_syncs"]
    assert syncs_before_cut >= 30
    lazy_mount.cut()
    rows, integrity = rows_and_integrity(database)
    assert rows == list(range(1, 31))
    assert integrity == "ok"

    run_sqlite_writer_then_kill(database, "OFF", 31, 60)
    assert lazy_mount.stats()["dirty_bytes"] > 0
    lazy_mount.cut()
    rows, integrity = rows_and_integrity(database)
    assert rows == list(range(1, 31)), "commits made with synchronous=OFF must be lost at the cut"
    assert integrity == "ok"

    run_sqlite_writer_then_kill(database, "FULL", 61, 70)
    lazy_mount.cut()
    rows, integrity = rows_and_integrity(database)
    assert rows == [*range(1, 31), *range(61, 71)]
    assert integrity == "ok"


def test_the_mount_and_the_child_process_are_gone_after_the_context(tmp_path: Path) -> None:
    mount = LazyMount(tmp_path / "backing", tmp_path / "mnt", stop_timeout=1)
    with pytest.raises(RuntimeError, match="test failure"), mount:
        process = mount.process
        assert process is not None
        busy = open(mount.mountpoint / "held-open", "wb")  # noqa: SIM115 - kept open so that unmounting is busy
        raise RuntimeError("test failure")
    with contextlib.suppress(OSError):
        busy.close()  # The file system was killed under it: the flush fails with ENOTCONN.
    assert process.poll() is not None
    with open("/proc/mounts", encoding="utf-8") as mounts:
        assert str(mount.mountpoint) not in mounts.read()
