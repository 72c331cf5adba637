"""The standalone server's state snapshot: a file beside the database, replaced whole at each snapshot.

`licentia.snapshot` holds the journal index the snapshot reflects on its first line, then the state
(`core.state_data.Snapshot`) in MessagePack, which decodes about twice as fast as JSON. It is written by a
forked child (`store.forked_write`) and replaced atomically, so it is either the previous snapshot or
the new one; the journal's commands up to its index are deleted only once it is on disk. Keeping it
out of the database means no free pages left behind by the previous snapshot and no WAL the size of
the state.
"""

from __future__ import annotations

from pathlib import Path

import msgspec

from licentia.core.state import LicenseState, Snapshot

MAGIC = b"licentia-snapshot 1 "
SUFFIX = ".snapshot"


class SnapshotFileError(ValueError):
    """The snapshot file is not one this version can read."""


def snapshot_path(database: Path) -> Path:
    return database.with_suffix(SUFFIX)


def snapshot_chunks(index: int, state: LicenseState) -> list[bytes]:
    """The file's bytes for `state` at journal index `index` (heading, then the encoded state)."""
    return [MAGIC + b"%d\n" % index, msgspec.msgpack.encode(state.snapshot_struct())]


def decode_snapshot_file(data: bytes) -> tuple[int, Snapshot]:
    heading, newline, _ = data[:64].partition(b"\n")
    if not newline or not heading.startswith(MAGIC) or not heading[len(MAGIC) :].isdigit():
        raise SnapshotFileError("not a Licentia state snapshot")
    body = memoryview(data)[len(heading) + 1 :]  # a view, not a copy of the state's bytes
    return int(heading[len(MAGIC) :]), msgspec.msgpack.decode(body, type=Snapshot)


def read_snapshot_file(path: Path) -> tuple[int, Snapshot] | None:
    """The snapshot's journal index and state, or None when there is no snapshot file yet."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    return decode_snapshot_file(data)
