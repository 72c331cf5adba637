"""Backups of a server's data directory, taken while it runs, and restoring them.

`create_backup` copies `licentia.db` with SQLite's online backup API in one
step, that is inside one read transaction: the copy is exactly the database as
of one commit, however busy the server is (in WAL mode the server keeps
writing meanwhile). Every lease in the copy was therefore durable, and so
answered or about to be, before the backup finished. The key files, trusted
issuer keys, open alert incidents, a triad member's relationship files and a backup pair's secret go
along; everything lands in one tar.gz archive with a `manifest.json` that lists
each file with its SHA-256 and summarises the state (journal index, licenses,
leases). The archive holds the server's secret keys: it is written mode 0600.

What goes along and what does not (`server.lock`, the first-start password file, a triad
member's etcd data directory: its log is not copied consistently while it is
written; a restored member is brought up to date by the other two) is declared,
with the reason, in `store.data_directory`.

`restore_backup` refuses while a server holds the data directory's lock, and
refuses a non-empty directory unless forced. It checks every checksum and the
database before it replaces anything.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import os
import re
import secrets
import shutil
import sqlite3
import tarfile
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any

import msgspec

from licentia import __version__
from licentia.core.commands import decode_command
from licentia.core.state import LicenseState, Snapshot
from licentia.store import data_directory
from licentia.store.snapshot_file import decode_snapshot_file, load_snapshot_file, snapshot_path

FORMAT = "licentia-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
DATABASE = data_directory.DATABASE.name
SNAPSHOT = snapshot_path(Path(DATABASE)).name  # read just before the database is copied (see create_backup)
# Files copied as they are when present: they are written once (keys) or replaced atomically.
PLAIN_FILES = data_directory.backed_up_as_is()
ISSUERS_DIR = data_directory.TRUSTED_ISSUERS.name
LOCK_FILE = data_directory.LOCK.name
_ISSUER_NAME = re.compile(r"^trusted-issuers/[A-Za-z0-9._-]{1,200}$")


class BackupError(Exception):
    """The backup or restore cannot be done; the message says why and what to do."""


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _summary(conn: sqlite3.Connection, snapshot: bytes | None) -> dict[str, Any]:
    """Rebuild the state from the copied snapshot file and database, the way a server starting on them would
    (a database of an earlier version holds its snapshot in a table), and count it."""
    state, index = LicenseState(), 0
    if snapshot is not None:
        index, state = load_snapshot_file(snapshot)
    if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'snapshot'").fetchone():
        row = conn.execute("SELECT idx, data FROM snapshot WHERE id = 1").fetchone()
        if row and row[0] > index:
            state, index = LicenseState.from_snapshot(msgspec.json.decode(row[1], type=Snapshot)), row[0]
    for idx, at, blob in conn.execute("SELECT idx, at, command FROM journal WHERE idx > ? ORDER BY idx", (index,)):
        state.apply(decode_command(blob), at)
        index = idx
    meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    return {
        "server_id": meta.get("server_id", ""),
        "journal_index": index,
        "licenses": len(state.licenses),
        "leases": len(state.leases),
        "usage_records": conn.execute("SELECT COUNT(*) FROM usage").fetchone()[0],
    }


def _check_database(path: Path) -> None:
    conn = sqlite3.connect(path)
    try:
        result = conn.execute("PRAGMA integrity_check").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"the database copy is not usable: {exc}") from None
    finally:
        conn.close()
    if result != "ok":
        raise BackupError(f"the database copy failed SQLite's integrity check: {result}")


def _copy_database(source: Path, target: Path) -> None:
    """One-step online backup: a consistent copy even while the server commits."""
    try:
        src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=30)
    except sqlite3.Error as exc:
        raise BackupError(f"cannot open {source}: {exc}") from None
    dst = sqlite3.connect(target)
    try:
        src.backup(dst)
        dst.execute("PRAGMA journal_mode=DELETE")  # a self-contained file: no -wal beside it
    except sqlite3.Error as exc:
        raise BackupError(f"cannot copy {source}: {exc}") from None
    finally:
        dst.close()
        src.close()


def _copy_database_and_snapshot(data_dir: Path, copy: Path, attempts: int = 5) -> bytes | None:
    """The snapshot file, then a copy of the database whose journal goes on from it: the server deletes
    journaled commands only after a newer snapshot file is on disk and says up to where (meta
    `compacted_to`), so a copy compacted past the snapshot read is taken again, with the newer file."""
    snapshot_file = data_dir / SNAPSHOT
    for _ in range(attempts):
        snapshot = snapshot_file.read_bytes() if snapshot_file.is_file() else None
        _copy_database(data_dir / DATABASE, copy)
        _check_database(copy)
        conn = sqlite3.connect(copy)
        try:
            row = conn.execute("SELECT value FROM meta WHERE key = 'compacted_to'").fetchone()
        finally:
            conn.close()
        index = decode_snapshot_file(snapshot)[0] if snapshot is not None else 0
        if row is None or int(row[0]) <= index:
            return snapshot
        copy.unlink()
    raise BackupError("the server wrote snapshots faster than the backup could copy its database; try again")


def create_backup(data_dir: Path, out: Path) -> dict[str, Any]:
    """Write a backup archive of `data_dir` to `out` (replaced atomically); returns its manifest."""
    database = data_dir / DATABASE
    if not database.is_file():
        raise BackupError(f"{data_dir} has no {DATABASE}: it is not a Licentia data directory")
    out = out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    files: dict[str, bytes] = {}
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".licentia-backup-") as work:
        copy = Path(work) / DATABASE
        started = time.time()
        snapshot = _copy_database_and_snapshot(data_dir, copy)
        conn = sqlite3.connect(copy)
        try:
            summary = _summary(conn, snapshot)
        finally:
            conn.close()
        files[DATABASE] = copy.read_bytes()
        if snapshot is not None:
            files[SNAPSHOT] = snapshot
    for name in PLAIN_FILES:
        path = data_dir / name
        if path.is_file():
            files[name] = path.read_bytes()
    issuers = data_dir / ISSUERS_DIR
    if issuers.is_dir():
        for path in sorted(issuers.iterdir()):
            if path.is_file() and _ISSUER_NAME.match(f"{ISSUERS_DIR}/{path.name}"):
                files[f"{ISSUERS_DIR}/{path.name}"] = path.read_bytes()
    relationship = None
    if "triad.json" in files:
        triad = json.loads(files["triad.json"])
        relationship = {"type": "triad", "name": triad.get("name"), "me": triad.get("me")}
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "licentia_version": __version__,
        "created_at": started,
        "source": str(data_dir.resolve()),
        "state": summary,
        "relationship": relationship,
        "files": [{"name": name, "size": len(data), "sha256": _sha256(data)} for name, data in files.items()],
    }
    temporary = out.with_name(f".{out.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            with tarfile.open(fileobj=handle, mode="w:gz") as tar:
                for name, data in [(MANIFEST, json.dumps(manifest, indent=2).encode()), *files.items()]:
                    info = tarfile.TarInfo(name)
                    info.size, info.mode, info.mtime = len(data), 0o600, int(started)
                    tar.addfile(info, io.BytesIO(data))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, out)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return manifest


def read_manifest(archive: Path) -> dict[str, Any]:
    with tarfile.open(archive, "r:gz") as tar:
        return _manifest(tar)


def _manifest(tar: tarfile.TarFile) -> dict[str, Any]:
    try:
        member = tar.getmember(MANIFEST)
        handle = tar.extractfile(member)
        manifest = json.loads(handle.read() if handle else b"")
    except (KeyError, ValueError) as exc:
        raise BackupError(f"not a Licentia backup (no readable {MANIFEST}: {exc})") from None
    if manifest.get("format") != FORMAT or manifest.get("format_version") != FORMAT_VERSION:
        raise BackupError(f"not a Licentia backup of format {FORMAT_VERSION}")
    return manifest


def _allowed(name: str) -> bool:
    return name in (DATABASE, SNAPSHOT) or name in PLAIN_FILES or bool(_ISSUER_NAME.match(name))


@contextlib.contextmanager
def _data_dir_lock(data_dir: Path) -> Any:
    """Hold the data directory's server lock: no server can start on it while we restore."""
    fd = os.open(data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BackupError(f"a server is running on {data_dir}; stop it before restoring") from None
        yield
    finally:
        os.close(fd)


def restore_backup(archive: Path, data_dir: Path, *, force: bool = False) -> dict[str, Any]:
    """Bring a backup back into `data_dir`; returns its manifest."""
    if not archive.is_file():
        raise BackupError(f"no backup file {archive}")
    data_dir.mkdir(parents=True, exist_ok=True)
    with _data_dir_lock(data_dir):
        existing = [p for p in data_dir.iterdir() if p.name != LOCK_FILE]
        if existing and not force:
            raise BackupError(
                f"{data_dir} is not empty ({len(existing)} entries); restore into an empty directory, "
                "or add --force to replace its contents"
            )
        staging = Path(tempfile.mkdtemp(dir=data_dir, prefix=".restore-"))
        try:
            manifest = _extract(archive, staging)
            _check_database(staging / DATABASE)
            for path in existing:
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                else:
                    path.unlink()
            for entry in manifest["files"]:
                target = data_dir / entry["name"]
                target.parent.mkdir(mode=0o700, exist_ok=True)
                os.replace(staging / entry["name"], target)
            dir_fd = os.open(data_dir, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return manifest


def _extract(archive: Path, staging: Path) -> dict[str, Any]:
    try:
        with tarfile.open(archive, "r:gz") as tar:
            return _extract_from(tar, staging)
    except (tarfile.TarError, EOFError, zlib.error) as exc:
        raise BackupError(f"cannot read {archive}: {exc}") from None
    except OSError as exc:
        raise BackupError(f"cannot restore {archive}: {exc}") from None


def _extract_from(tar: tarfile.TarFile, staging: Path) -> dict[str, Any]:
    manifest = _manifest(tar)
    listed = {entry["name"]: entry for entry in manifest["files"]}
    if DATABASE not in listed:
        raise BackupError(f"the backup has no {DATABASE}")
    for member in tar.getmembers():
        if member.name == MANIFEST:
            continue
        if member.name not in listed or not _allowed(member.name) or not member.isfile():
            raise BackupError(f"unexpected entry {member.name!r} in the backup; refusing it")
    for name, entry in listed.items():
        if not _allowed(name):
            raise BackupError(f"unexpected file {name!r} in the manifest; refusing the backup")
        try:
            handle = tar.extractfile(name)
        except KeyError:
            raise BackupError(f"the backup lacks {name}, which its manifest lists") from None
        data = handle.read() if handle else b""
        if len(data) != entry["size"] or _sha256(data) != entry["sha256"]:
            raise BackupError(f"{name} in the backup does not match its checksum: the file is damaged")
        target = staging / name
        target.parent.mkdir(mode=0o700, exist_ok=True)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle_out:
            handle_out.write(data)
            handle_out.flush()
            os.fsync(handle_out.fileno())
    return manifest
