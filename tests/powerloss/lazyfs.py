"""A power-loss test file system: LazyFS's method, written in Python on top of FUSE (mfusepy, libfuse3).

The file system mirrors a backing directory, but it behaves like a disk behind a volatile cache, so a test
can cut the power at any moment and look at what an application finds when it starts again.

File data
    write() never reaches the backing file. It goes into an in-memory page cache kept per file (keyed by
    the backing inode, so renames and hard links share it). read() returns the backing content overlaid
    with the cached pages, and getattr() reports the logical size, so the application sees its own writes.
    truncate(), ftruncate(), open(O_TRUNC) and fallocate() (mode 0, which extends the file) change the
    logical size in memory only; FALLOC_FL_KEEP_SIZE is accepted and does nothing, other modes are refused.
    fsync() and fdatasync() of a file (the FUSE fsync operation, whatever its datasync flag) write the
    cached pages and the logical size into the backing file and os.fsync() it: from then on the data
    survives a cut. close() does not sync. Writes made through a shared mmap reach the file system as
    write() calls when the kernel writes the pages back (msync, munmap/close, or background writeback), and
    msync(MS_SYNC) arrives as an fsync, so mmap follows the same rule. The mount never uses direct_io (it
    would break shared mmap) and keeps the kernel's caches short: attributes and names are not cached
    (timeouts of 0) and the page cache of a file is dropped whenever it is opened, so that after a cut the
    kernel cannot serve data the cut has thrown away.

Names (create, mknod, mkdir, symlink, link, rename, unlink, rmdir)
    A namespace operation is applied to the backing directory at once, so the application sees it, and it
    is recorded in a journal together with what is needed to undo it. An unlinked file, a removed
    directory, and the file a rename replaced are not deleted but parked in a hidden directory of the
    backing root (`.lazyfs-parked`, invisible through the mount), so that a cut can put them back.
    An operation becomes durable, and leaves the journal, when
      * every directory it changed has been fsynced afterwards (the FUSE fsyncdir operation; a rename
        between two directories needs both), or
      * it created a name for a file (create, mknod, link, symlink) and that file is then fsynced: like
        ext4, an fsync of a new file also makes its name durable. A rename is not made durable by an fsync
        of the renamed file; it needs the directory fsync, as POSIX asks.
    Making an operation durable also makes durable every earlier pending operation on the same name, on an
    ancestor directory of it, or on a name below it, so that the journal can always be undone in order
    (for example, fsyncing `d/` makes the pending `mkdir d` durable too). Parked entries of a durable
    removal are deleted for good. Attribute changes (chmod, chown, utimens) pass straight through and
    survive a cut.

A cut ("power loss")
    Under the lock every operation takes, the cut undoes the pending namespace operations in reverse order
    (a new file disappears, a rename goes back so that the old name returns with its old synced content, an
    unlinked name comes back), then drops every cached page and logical size. What is left in the backing
    directory is what the machine would find after the power came back, and the file system keeps
    serving that view. The intended order for a server test is: SIGKILL the server processes, cut(), then
    restart the servers on the same mount. Handles still open across a cut keep working on whatever file
    they were opened on. Unmounting is treated as a cut too, so the backing directory always ends as the
    durable view and the parking directory ends empty.

Control and use
    Run `python -m tests.powerloss.lazyfs BACKING MOUNTPOINT --control SOCKET` (or this file as a script).
    The unix socket answers one JSON line to each line it receives: `cut`, `stats` or `ping`. Tests use
    `LazyMount(backing, mountpoint)` as a context manager: it starts this file system as a child process,
    waits for the mount, offers `.cut()` and `.stats()`, and on exit unmounts and makes sure the child has
    gone.

libfuse's high-level API turns the unlink of a file that is still open into a rename to `.fuse_hidden...`
and unlinks that name at the last close; both steps are journaled like any other, so a cut brings the old
name back unless the directory was fsynced.

Limitations: dirty data lives in memory without a bound; extended attributes are not supported; an
unlinked but parked file keeps its link count; RENAME_EXCHANGE is refused; POSIX locks are handled by the
kernel locally (enough for SQLite on one machine).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import errno
import json
import logging
import os
import posixpath
import shutil
import signal
import socket
import socketserver
import stat
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

log = logging.getLogger("lazyfs")

PAGE_SIZE = 4096
PARKING_DIRECTORY_NAME = ".lazyfs-parked"
MAX_WRITE_BYTES = 1024 * 1024
RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2
FALLOC_FL_KEEP_SIZE = 1
UTIME_NOW = (1 << 30) - 1
UTIME_OMIT = (1 << 30) - 2
PR_SET_PDEATHSIG = 1

FileKey = tuple[int, int]


def _failure(error_number: int) -> OSError:
    return OSError(error_number, os.strerror(error_number))


def _related(first: str, second: str) -> bool:
    """Whether two mount paths are the same name or one lies below the other."""
    if first == second:
        return True
    shorter, longer = sorted((first, second), key=len)
    return shorter == "/" or longer.startswith(shorter + "/")


class CachedFile:
    """The volatile state of one backing inode: dirty pages and a logical size not yet synced.

    Callers hold the file system lock. `backing_valid_size` is how much of the backing file still counts:
    bytes at or after it were cut off by an unsynced truncation and read as zeros. It never exceeds
    `logical_size`.
    """

    def __init__(self, key: FileKey, descriptor: int, synced_size: int) -> None:
        self.key = key
        self.descriptor = descriptor
        self.synced_size = synced_size
        self.logical_size = synced_size
        self.backing_valid_size = synced_size
        self.dirty_pages: dict[int, bytearray] = {}
        self.open_handles = 0
        self.modified_ns: int | None = None

    @property
    def has_unsynced_changes(self) -> bool:
        return bool(self.dirty_pages) or self.logical_size != self.synced_size or (
            self.backing_valid_size != self.synced_size
        )

    def _read_backing(self, start: int, end: int) -> bytes:
        valid_end = min(end, self.backing_valid_size)
        data = os.pread(self.descriptor, valid_end - start, start) if valid_end > start else b""
        if len(data) < end - start:
            data += bytes(end - start - len(data))
        return data

    def _page_for_update(self, page_index: int, covers_whole_page: bool) -> tuple[bytearray, bool]:
        """The dirty page to change, loaded from the backing file if it was clean; and whether it is new."""
        page = self.dirty_pages.get(page_index)
        if page is not None:
            return page, False
        start = page_index * PAGE_SIZE
        page = bytearray(PAGE_SIZE) if covers_whole_page else bytearray(self._read_backing(start, start + PAGE_SIZE))
        self.dirty_pages[page_index] = page
        return page, True

    def read(self, size: int, offset: int) -> bytes:
        end = min(offset + size, self.logical_size)
        if offset >= end:
            return b""
        if not self.dirty_pages:
            return self._read_backing(offset, end)
        parts: list[bytes] = []
        position = offset
        while position < end:
            page_index = position // PAGE_SIZE
            page_start = page_index * PAGE_SIZE
            page_end = min(page_start + PAGE_SIZE, end)
            page = self.dirty_pages.get(page_index)
            if page is not None:
                parts.append(bytes(page[position - page_start : page_end - page_start]))
                position = page_end
                continue
            run_end = page_end
            while run_end < end and run_end // PAGE_SIZE not in self.dirty_pages:
                run_end = min(run_end + PAGE_SIZE, end)
            parts.append(self._read_backing(position, run_end))
            position = run_end
        return b"".join(parts)

    def write(self, data: bytes, offset: int) -> int:
        """Put `data` into the page cache; return how many bytes of newly dirtied pages this cost."""
        newly_dirty_bytes = 0
        view = memoryview(data)
        position = offset
        end = offset + len(data)
        while position < end:
            page_index = position // PAGE_SIZE
            page_start = page_index * PAGE_SIZE
            chunk_end = min(page_start + PAGE_SIZE, end)
            covers_whole_page = position == page_start and chunk_end == page_start + PAGE_SIZE
            page, is_new = self._page_for_update(page_index, covers_whole_page)
            if is_new:
                newly_dirty_bytes += PAGE_SIZE
            page[position - page_start : chunk_end - page_start] = view[position - offset : chunk_end - offset]
            position = chunk_end
        self.logical_size = max(self.logical_size, end)
        self.modified_ns = time.time_ns()
        return newly_dirty_bytes

    def truncate(self, length: int) -> int:
        """Change the logical size; return how many bytes of dirty pages were released."""
        released_bytes = 0
        if length < self.logical_size:
            first_gone_page = -(-length // PAGE_SIZE)
            for page_index in [index for index in self.dirty_pages if index >= first_gone_page]:
                del self.dirty_pages[page_index]
                released_bytes += PAGE_SIZE
            partial_page = self.dirty_pages.get(length // PAGE_SIZE)
            if partial_page is not None and length % PAGE_SIZE:
                partial_page[length % PAGE_SIZE :] = bytes(PAGE_SIZE - length % PAGE_SIZE)
            self.backing_valid_size = min(self.backing_valid_size, length)
        self.logical_size = length
        self.modified_ns = time.time_ns()
        return released_bytes

    def write_back(self) -> int:
        """Write the dirty pages and the logical size into the backing file (no fsync); return bytes released."""
        released_bytes = len(self.dirty_pages) * PAGE_SIZE
        if self.backing_valid_size < self.synced_size:
            os.ftruncate(self.descriptor, self.backing_valid_size)
        run_start: int | None = None
        run_pages: list[bytes] = []

        def write_run() -> None:
            if run_start is not None and run_pages:
                os.pwrite(self.descriptor, b"".join(run_pages), run_start)

        previous_index = -2
        for page_index in sorted(self.dirty_pages):
            page_start = page_index * PAGE_SIZE
            if page_start >= self.logical_size:
                continue
            page = self.dirty_pages[page_index]
            content = bytes(page[: min(PAGE_SIZE, self.logical_size - page_start)])
            if page_index != previous_index + 1:
                write_run()
                run_start, run_pages = page_start, []
            run_pages.append(content)
            previous_index = page_index
        write_run()
        if os.fstat(self.descriptor).st_size != self.logical_size:
            os.ftruncate(self.descriptor, self.logical_size)
        self.dirty_pages.clear()
        self.synced_size = self.backing_valid_size = self.logical_size
        return released_bytes

    def forget_unsynced(self) -> int:
        """Drop everything not synced, as a power cut does; return the dirty bytes dropped."""
        dropped_bytes = len(self.dirty_pages) * PAGE_SIZE
        self.dirty_pages.clear()
        self.synced_size = self.logical_size = self.backing_valid_size = os.fstat(self.descriptor).st_size
        self.modified_ns = None
        return dropped_bytes


@dataclass
class NamespaceOperation:
    """One applied namespace change that a cut would undo, unless it has become durable first."""

    kind: str
    path: str
    source: str | None = None
    parked_name: str | None = None
    file_key: FileKey | None = None
    directories_to_sync: set[str] = field(default_factory=set)

    @property
    def paths(self) -> tuple[str, ...]:
        return (self.path,) if self.source is None else (self.source, self.path)


@dataclass
class Counters:
    writes: int = 0
    file_syncs: int = 0
    directory_syncs: int = 0
    cuts: int = 0
    namespace_operations: int = 0
    durable_namespace_operations: int = 0


class LazyFileSystem:
    """The mfusepy operations: a passthrough to `backing_root` that keeps unsynced state in memory.

    Every operation that touches shared state holds `self.state_lock`, so a cut is atomic with respect to them.
    """

    use_ns = True

    def __init__(self, backing_root: Path) -> None:
        self.backing_root = str(Path(backing_root).resolve())
        self.parking_directory = os.path.join(self.backing_root, PARKING_DIRECTORY_NAME)
        self.state_lock = threading.Lock()
        self.files_by_key: dict[FileKey, CachedFile] = {}
        self.files_by_handle: dict[int, CachedFile] = {}
        self.next_handle = 1
        self.next_parked_number = 1
        self.journal: list[NamespaceOperation] = []
        self.dirty_bytes = 0
        self.counters = Counters()
        self._prepare_parking_directory()

    # Helpers.

    def _prepare_parking_directory(self) -> None:
        if os.path.lexists(self.parking_directory):
            log.warning("A parking directory was left by an earlier run; its entries are deleted for good.")
            shutil.rmtree(self.parking_directory)
        os.mkdir(self.parking_directory, 0o700)

    def _backing(self, path: str) -> str:
        if path == "/":
            return self.backing_root
        if path == "/" + PARKING_DIRECTORY_NAME or path.startswith("/" + PARKING_DIRECTORY_NAME + "/"):
            raise _failure(errno.ENOENT)
        return self.backing_root + path

    def _parked(self, name: str) -> str:
        return os.path.join(self.parking_directory, name)

    def _park(self, backing_path: str) -> str:
        name = str(self.next_parked_number)
        self.next_parked_number += 1
        os.rename(backing_path, self._parked(name))
        return name

    def _give_to_caller(self, backing_path: str) -> None:
        """Make a new entry belong to the calling user, as a kernel file system would, when we run as root."""
        if os.geteuid() != 0:
            return
        from mfusepy import fuse_get_context

        user_id, group_id, _ = fuse_get_context()
        with contextlib.suppress(OSError):
            os.lchown(backing_path, user_id, group_id)

    @staticmethod
    def _open_backing(backing_path: str) -> int:
        try:
            return os.open(backing_path, os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW)
        except OSError as error:
            if error.errno not in (errno.EACCES, errno.EPERM, errno.EROFS, errno.ETXTBSY):
                raise
            return os.open(backing_path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)

    def _register_handle(self, descriptor: int) -> int:
        """Attach an opened backing descriptor to the cache of its inode and return a new handle number."""
        status = os.fstat(descriptor)
        key = (status.st_dev, status.st_ino)
        cached = self.files_by_key.get(key)
        if cached is None:
            cached = CachedFile(key, descriptor, status.st_size)
            self.files_by_key[key] = cached
        else:
            os.close(descriptor)
        cached.open_handles += 1
        handle = self.next_handle
        self.next_handle += 1
        self.files_by_handle[handle] = cached
        return handle

    def _cached_for(self, handle: int) -> CachedFile:
        cached = self.files_by_handle.get(handle)
        if cached is None:
            raise _failure(errno.EBADF)
        return cached

    def _forget_if_idle(self, cached: CachedFile) -> None:
        if cached.open_handles == 0 and not cached.has_unsynced_changes:
            self.files_by_key.pop(cached.key, None)
            os.close(cached.descriptor)

    def _record(self, operation: NamespaceOperation) -> None:
        operation.directories_to_sync = {posixpath.dirname(path) for path in operation.paths}
        self.journal.append(operation)
        self.counters.namespace_operations += 1

    def _make_durable(self, seeds: list[NamespaceOperation]) -> None:
        """Make `seeds` durable together with every earlier pending operation their undo would conflict with."""
        if not seeds:
            return
        seed_ids = {id(operation) for operation in seeds}
        needed_paths: list[str] = []
        durable_ids: set[int] = set()
        for operation in reversed(self.journal):
            if id(operation) in seed_ids or any(
                _related(path, needed) for path in operation.paths for needed in needed_paths
            ):
                durable_ids.add(id(operation))
                needed_paths.extend(operation.paths)
        still_pending: list[NamespaceOperation] = []
        for operation in self.journal:
            if id(operation) not in durable_ids:
                still_pending.append(operation)
                continue
            self.counters.durable_namespace_operations += 1
            if operation.parked_name is not None:
                self._delete_parked(operation.parked_name)
        self.journal = still_pending

    def _delete_parked(self, name: str) -> None:
        parked_path = self._parked(name)
        try:
            if os.path.isdir(parked_path) and not os.path.islink(parked_path):
                shutil.rmtree(parked_path)
            else:
                os.unlink(parked_path)
        except OSError as error:
            log.warning("The parked entry %s could not be deleted: %s.", name, error.strerror)

    def _undo(self, operation: NamespaceOperation) -> None:
        backing_path = self.backing_root + operation.path
        if operation.kind in ("create", "mknod", "symlink", "link"):
            os.unlink(backing_path)
        elif operation.kind == "mkdir":
            os.rmdir(backing_path)
        elif operation.kind in ("unlink", "rmdir"):
            assert operation.parked_name is not None
            os.rename(self._parked(operation.parked_name), backing_path)
        elif operation.kind == "rename":
            assert operation.source is not None
            os.rename(backing_path, self.backing_root + operation.source)
            if operation.parked_name is not None:
                os.rename(self._parked(operation.parked_name), backing_path)

    # The power cut, the statistics, and the clean end.

    def cut(self) -> dict[str, int]:
        """Undo the pending namespace operations, drop all unsynced data, and keep serving the durable view."""
        with self.state_lock:
            undone = 0
            for operation in reversed(self.journal):
                try:
                    self._undo(operation)
                    undone += 1
                    log.debug("The cut undid the %s of %s.", operation.kind, operation.path)
                except OSError as error:
                    log.error("Undoing the %s of %s failed at a cut: %s.", operation.kind, operation.path,
                              error.strerror)
            self.journal.clear()
            dropped_bytes = 0
            dropped_files = 0
            for cached in list(self.files_by_key.values()):
                if cached.has_unsynced_changes:
                    dropped_files += 1
                dropped_bytes += cached.forget_unsynced()
                self._forget_if_idle(cached)
            self.dirty_bytes = 0
            self.counters.cuts += 1
            log.info("Power cut: %d namespace operations undone, %d files lost %d bytes of unsynced pages.",
                     undone, dropped_files, dropped_bytes)
            return {"undone_namespace_operations": undone, "files_with_lost_changes": dropped_files,
                    "dropped_dirty_bytes": dropped_bytes}

    def stats(self) -> dict[str, int]:
        with self.state_lock:
            return {
                "dirty_bytes": self.dirty_bytes,
                "files_with_unsynced_changes": sum(
                    1 for cached in self.files_by_key.values() if cached.has_unsynced_changes
                ),
                "open_handles": len(self.files_by_handle),
                "pending_namespace_operations": len(self.journal),
                "writes": self.counters.writes,
                "file_syncs": self.counters.file_syncs,
                "directory_syncs": self.counters.directory_syncs,
                "cuts": self.counters.cuts,
                "namespace_operations": self.counters.namespace_operations,
                "durable_namespace_operations": self.counters.durable_namespace_operations,
            }

    def init_with_config(self, connection: Any, config: Any) -> None:
        if connection is not None:
            connection.max_write = MAX_WRITE_BYTES
        if config is not None:
            config.entry_timeout = 0.0
            config.attr_timeout = 0.0
            config.negative_timeout = 0.0
            config.use_ino = 1
            config.kernel_cache = 0
            config.auto_cache = 0
            config.direct_io = 0
            config.hard_remove = 0
        log.info("The file system is mounted and serves %s.", self.backing_root)

    def destroy(self, path: str) -> None:
        log.info("The file system is being unmounted; unsynced state is dropped as at a power cut.")
        self.cut()
        with self.state_lock:
            for cached in self.files_by_key.values():
                with contextlib.suppress(OSError):
                    os.close(cached.descriptor)
            self.files_by_key.clear()
            self.files_by_handle.clear()
        with contextlib.suppress(OSError):
            shutil.rmtree(self.parking_directory)

    # Attributes and directories.

    def getattr(self, path: str, fh: int | None = None) -> dict[str, Any]:
        with self.state_lock:
            cached = self.files_by_handle.get(fh) if fh is not None else None
            status = os.fstat(cached.descriptor) if cached is not None else os.lstat(self._backing(path))
            if cached is None and stat.S_ISREG(status.st_mode):
                cached = self.files_by_key.get((status.st_dev, status.st_ino))
            attributes: dict[str, Any] = {
                "st_mode": status.st_mode, "st_ino": status.st_ino, "st_nlink": status.st_nlink,
                "st_uid": status.st_uid, "st_gid": status.st_gid, "st_rdev": status.st_rdev,
                "st_size": status.st_size, "st_blocks": status.st_blocks, "st_blksize": status.st_blksize,
                "st_atime": status.st_atime_ns, "st_mtime": status.st_mtime_ns, "st_ctime": status.st_ctime_ns,
            }
            if cached is not None and cached.has_unsynced_changes:
                attributes["st_size"] = cached.logical_size
                attributes["st_blocks"] = max(status.st_blocks, -(-cached.logical_size // 512))
                if cached.modified_ns is not None:
                    attributes["st_mtime"] = attributes["st_ctime"] = cached.modified_ns
            return attributes

    def readlink(self, path: str) -> str:
        return os.readlink(self._backing(path))

    def readdir(self, path: str, fh: int) -> list[tuple[str, dict[str, int], int]]:
        """Names with their inode numbers and types (an entry without an inode number would be skipped)."""
        backing_path = self._backing(path)
        directory_status = os.lstat(backing_path)
        entries = [(name, {"st_ino": directory_status.st_ino, "st_mode": stat.S_IFDIR}, 0) for name in (".", "..")]
        with os.scandir(backing_path) as scan:
            for entry in scan:
                if path == "/" and entry.name == PARKING_DIRECTORY_NAME:
                    continue
                entry_status = entry.stat(follow_symlinks=False)
                entries.append((entry.name, {"st_ino": entry.inode(), "st_mode": stat.S_IFMT(entry_status.st_mode)},
                                0))
        return entries

    def statfs(self, path: str) -> dict[str, int]:
        status = os.statvfs(self.backing_root)
        return {key: getattr(status, key) for key in (
            "f_bsize", "f_frsize", "f_blocks", "f_bfree", "f_bavail", "f_files", "f_ffree", "f_favail",
            "f_flag", "f_namemax")}

    def chmod(self, path: str, mode: int) -> int:
        os.chmod(self._backing(path), mode)
        return 0

    def chown(self, path: str, uid: int, gid: int) -> int:
        os.lchown(self._backing(path), uid, gid)
        return 0

    def utimens(self, path: str, times: tuple[int | None, int | None] | None = None) -> int:
        """Set times in nanoseconds; None for one of them keeps it, and None for both means now."""
        backing_path = self._backing(path)
        if times is None:
            os.utime(backing_path, follow_symlinks=False)
            return 0
        status = os.lstat(backing_path)
        access_ns = status.st_atime_ns if times[0] is None else times[0]
        modify_ns = status.st_mtime_ns if times[1] is None else times[1]
        os.utime(backing_path, ns=(access_ns, modify_ns), follow_symlinks=False)
        return 0

    def fsyncdir(self, path: str, datasync: int, fh: int) -> int:
        directory_descriptor = os.open(self._backing(path), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            with self.state_lock:
                self.counters.directory_syncs += 1
                seeds: list[NamespaceOperation] = []
                for operation in self.journal:
                    operation.directories_to_sync.discard(path)
                    if not operation.directories_to_sync:
                        seeds.append(operation)
                self._make_durable(seeds)
            os.fsync(directory_descriptor)
        finally:
            os.close(directory_descriptor)
        return 0

    # Namespace operations.

    def mkdir(self, path: str, mode: int) -> int:
        with self.state_lock:
            backing_path = self._backing(path)
            os.mkdir(backing_path, mode)
            self._give_to_caller(backing_path)
            self._record(NamespaceOperation("mkdir", path))
        return 0

    def mknod(self, path: str, mode: int, dev: int) -> int:
        with self.state_lock:
            backing_path = self._backing(path)
            os.mknod(backing_path, mode, dev)
            self._give_to_caller(backing_path)
            status = os.lstat(backing_path)
            self._record(NamespaceOperation("mknod", path, file_key=(status.st_dev, status.st_ino)))
        return 0

    def symlink(self, link_path: str, link_target: str) -> int:
        with self.state_lock:
            backing_path = self._backing(link_path)
            os.symlink(link_target, backing_path)
            self._give_to_caller(backing_path)
            status = os.lstat(backing_path)
            self._record(NamespaceOperation("symlink", link_path, file_key=(status.st_dev, status.st_ino)))
        return 0

    def link(self, new_path: str, existing_path: str) -> int:
        with self.state_lock:
            backing_path = self._backing(new_path)
            os.link(self._backing(existing_path), backing_path, follow_symlinks=False)
            status = os.lstat(backing_path)
            self._record(NamespaceOperation("link", new_path, file_key=(status.st_dev, status.st_ino)))
        return 0

    def unlink(self, path: str) -> int:
        with self.state_lock:
            backing_path = self._backing(path)
            if stat.S_ISDIR(os.lstat(backing_path).st_mode):
                raise _failure(errno.EISDIR)
            self._record(NamespaceOperation("unlink", path, parked_name=self._park(backing_path)))
        return 0

    def rmdir(self, path: str) -> int:
        with self.state_lock:
            backing_path = self._backing(path)
            if path == "/":
                raise _failure(errno.EBUSY)
            if not stat.S_ISDIR(os.lstat(backing_path).st_mode):
                raise _failure(errno.ENOTDIR)
            if os.listdir(backing_path):
                raise _failure(errno.ENOTEMPTY)
            self._record(NamespaceOperation("rmdir", path, parked_name=self._park(backing_path)))
        return 0

    def rename(self, old: str, new: str, flags: int = 0) -> int:
        if flags & RENAME_EXCHANGE:
            raise _failure(errno.EINVAL)
        with self.state_lock:
            source_path, target_path = self._backing(old), self._backing(new)
            source_status = os.lstat(source_path)
            try:
                target_status: os.stat_result | None = os.lstat(target_path)
            except FileNotFoundError:
                target_status = None
            if target_status is not None and flags & RENAME_NOREPLACE:
                raise _failure(errno.EEXIST)
            if target_status is not None and os.path.samestat(source_status, target_status):
                return 0
            if new.startswith(old + "/"):
                raise _failure(errno.EINVAL)
            parked_name: str | None = None
            if target_status is not None:
                if stat.S_ISDIR(target_status.st_mode):
                    if not stat.S_ISDIR(source_status.st_mode):
                        raise _failure(errno.EISDIR)
                    if os.listdir(target_path):
                        raise _failure(errno.ENOTEMPTY)
                elif stat.S_ISDIR(source_status.st_mode):
                    raise _failure(errno.ENOTDIR)
                parked_name = self._park(target_path)
            try:
                os.rename(source_path, target_path)
            except OSError:
                if parked_name is not None:
                    os.rename(self._parked(parked_name), target_path)
                raise
            self._record(NamespaceOperation("rename", new, source=old, parked_name=parked_name))
        return 0

    # Files.

    def create(self, path: str, mode: int, flags: int) -> int:
        with self.state_lock:
            backing_path = self._backing(path)
            try:
                descriptor = os.open(
                    backing_path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, mode
                )
            except FileExistsError:
                if flags & os.O_EXCL:
                    raise
                return self._open_locked(path, flags)
            self._give_to_caller(backing_path)
            handle = self._register_handle(descriptor)
            key = self.files_by_handle[handle].key
            self._record(NamespaceOperation("create", path, file_key=key))
            return handle

    def open(self, path: str, flags: int) -> int:
        with self.state_lock:
            return self._open_locked(path, flags)

    def _open_locked(self, path: str, flags: int) -> int:
        handle = self._register_handle(self._open_backing(self._backing(path)))
        if flags & os.O_TRUNC:
            self._truncate_cached(self.files_by_handle[handle], 0)
        return handle

    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        with self.state_lock:
            return self._cached_for(fh).read(size, offset)

    def write(self, path: str, data: bytes, offset: int, fh: int) -> int:
        with self.state_lock:
            self.dirty_bytes += self._cached_for(fh).write(data, offset)
            self.counters.writes += 1
        return len(data)

    def _truncate_cached(self, cached: CachedFile, length: int) -> None:
        self.dirty_bytes -= cached.truncate(length)

    def truncate(self, path: str, length: int, fh: int | None = None) -> int:
        with self.state_lock:
            if fh is not None:
                self._truncate_cached(self._cached_for(fh), length)
                return 0
            handle = self._open_locked(path, 0)
            try:
                self._truncate_cached(self.files_by_handle[handle], length)
            finally:
                self._release_locked(handle)
        return 0

    def fallocate(self, path: str, mode: int, offset: int, size: int, fh: int) -> int:
        if mode & FALLOC_FL_KEEP_SIZE and not mode & ~FALLOC_FL_KEEP_SIZE:
            return 0
        if mode:
            raise _failure(errno.EOPNOTSUPP)
        with self.state_lock:
            cached = self._cached_for(fh)
            if offset + size > cached.logical_size:
                self._truncate_cached(cached, offset + size)
        return 0

    def flush(self, path: str, fh: int) -> int:
        return 0

    def fsync(self, path: str, datasync: int, fh: int) -> int:
        with self.state_lock:
            cached = self._cached_for(fh)
            if cached.has_unsynced_changes:
                self.dirty_bytes -= cached.write_back()
            self.counters.file_syncs += 1
            self._make_durable([
                operation for operation in self.journal
                if operation.file_key == cached.key and operation.kind in ("create", "mknod", "link", "symlink")
            ])
            descriptor = os.dup(cached.descriptor)
        try:
            if datasync:
                os.fdatasync(descriptor)
            else:
                os.fsync(descriptor)
        finally:
            os.close(descriptor)
        return 0

    def release(self, path: str, fh: int) -> int:
        with self.state_lock:
            self._release_locked(fh)
        return 0

    def _release_locked(self, handle: int) -> None:
        cached = self.files_by_handle.pop(handle, None)
        if cached is not None:
            cached.open_handles -= 1
            self._forget_if_idle(cached)


class ControlRequestHandler(socketserver.StreamRequestHandler):
    """Answers one JSON line to each command line: `cut`, `stats` or `ping`."""

    server: ControlServer

    def handle(self) -> None:
        for raw_line in self.rfile:
            command = raw_line.decode("utf-8", "replace").strip()
            file_system = self.server.file_system
            reply: dict[str, Any]
            if command == "cut":
                reply = {"ok": True, **file_system.cut()}
            elif command == "stats":
                reply = {"ok": True, **file_system.stats()}
            elif command == "ping":
                reply = {"ok": True}
            else:
                reply = {"ok": False, "error": f"The command {command!r} is unknown; use cut, stats or ping."}
            self.wfile.write(json.dumps(reply).encode() + b"\n")
            self.wfile.flush()


class ControlServer(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True

    def __init__(self, socket_path: Path, file_system: LazyFileSystem) -> None:
        self.file_system = file_system
        with contextlib.suppress(FileNotFoundError):
            os.unlink(socket_path)
        super().__init__(str(socket_path), ControlRequestHandler)


def _fuse_class() -> type:
    """mfusepy's FUSE, with three callbacks that hand over what mfusepy would drop.

    rename gets its flags (RENAME_NOREPLACE), truncate gets the file handle (ftruncate), and utimens gets
    UTIME_NOW and UTIME_OMIT intact instead of times computed from an uninitialised tv_sec.
    """
    import mfusepy as fuse

    class LazyFuse(fuse.FUSE):
        def _decode(self, path: bytes | None) -> str | None:
            return None if path is None else path.decode(self.encoding, self.errors)

        def rename_fuse_3(self, old: bytes, new: bytes, flags: int) -> int:
            return self.operations.rename(self._decode(old), self._decode(new), flags)

        def truncate_fuse_3(self, path: bytes | None, length: int, fip: Any) -> int:
            handle = fip.contents.fh if fip else None
            return self.operations.truncate(self._decode(path), length, handle)

        def utimens_fuse_3(self, path: bytes | None, buf: Any, fip: Any) -> int:
            times: tuple[int | None, int | None] | None = None
            if buf:
                decoded: list[int | None] = []
                for timespec in (buf.contents.actime, buf.contents.modtime):
                    if timespec.tv_nsec == UTIME_OMIT:
                        decoded.append(None)
                    elif timespec.tv_nsec == UTIME_NOW:
                        decoded.append(time.time_ns())
                    else:
                        decoded.append(timespec.tv_sec * 10**9 + timespec.tv_nsec)
                times = (decoded[0], decoded[1])
            return self.operations.utimens(self._decode(path), times)

    return LazyFuse


def serve(backing: Path, mountpoint: Path, control_socket: Path | None, debug: bool = False) -> None:
    """Mount the file system in the foreground and serve until it is unmounted."""
    file_system = LazyFileSystem(backing)
    control_server: ControlServer | None = None
    if control_socket is not None:
        control_server = ControlServer(control_socket, file_system)
        threading.Thread(target=control_server.serve_forever, kwargs={"poll_interval": 0.05},
                         name="lazyfs-control", daemon=True).start()
    options: dict[str, Any] = {
        "foreground": True,
        "debug": debug,
        "fsname": "lazyfs",
        "subtype": "lazyfs",
        "default_permissions": True,
        "use_ino": True,
    }
    if os.geteuid() == 0:
        options["allow_other"] = True
    try:
        _fuse_class()(file_system, str(mountpoint), **options)
    finally:
        if control_server is not None:
            control_server.shutdown()
            control_server.server_close()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(control_socket)


def _exit_with_parent(parent_pid: int) -> None:
    """Ask the kernel for SIGTERM when the parent dies; libfuse then unmounts cleanly."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    if os.getppid() != parent_pid:
        raise SystemExit("The parent process has already exited, so the file system is not mounted.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="A FUSE file system that loses unsynced data on command.")
    parser.add_argument("backing", type=Path, help="the directory that holds the durable state")
    parser.add_argument("mountpoint", type=Path)
    parser.add_argument("--control", type=Path, help="a unix socket path that accepts cut, stats and ping")
    parser.add_argument("--parent-pid", type=int, help="unmount when this process dies")
    parser.add_argument("--debug", action="store_true", help="log every FUSE request")
    arguments = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if arguments.debug else logging.INFO, format="lazyfs: %(message)s")
    if arguments.parent_pid is not None:
        _exit_with_parent(arguments.parent_pid)
    os.umask(0)
    serve(arguments.backing, arguments.mountpoint, arguments.control, arguments.debug)
    return 0


def _mounted_at(mountpoint: Path) -> bool:
    """Whether a FUSE file system is mounted at `mountpoint` (an absolute, resolved path); no file system call."""
    target = str(mountpoint)
    with open("/proc/mounts", encoding="utf-8") as mounts:
        for line in mounts:
            fields = line.split()
            if len(fields) > 2 and fields[1].replace("\\040", " ") == target and "fuse" in fields[2]:
                return True
    return False


class LazyMount:
    """A lazy file system mounted at `mountpoint` over `backing` by a child process, for tests.

    Use it as a context manager. `cut()` is the power cut (kill the processes using the mount first);
    `stats()` returns the counters. On exit the mount is removed and the child process is gone, whatever
    happened in the body.
    """

    def __init__(self, backing: Path, mountpoint: Path, *, startup_timeout: float = 15.0,
                 stop_timeout: float = 10.0, debug: bool = False) -> None:
        self.backing = Path(backing)
        self.mountpoint = Path(mountpoint)
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.debug = debug
        self.process: subprocess.Popen[bytes] | None = None
        self._work_directory: str | None = None
        self._mount_target = self.mountpoint

    @property
    def control_socket(self) -> Path:
        assert self._work_directory is not None, "The mount has not been started."
        return Path(self._work_directory) / "control.sock"

    @property
    def log_path(self) -> Path:
        assert self._work_directory is not None, "The mount has not been started."
        return Path(self._work_directory) / "lazyfs.log"

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except (OSError, AssertionError):
            return ""

    def start(self) -> LazyMount:
        self.backing.mkdir(parents=True, exist_ok=True)
        self.mountpoint.mkdir(parents=True, exist_ok=True)
        self._mount_target = self.mountpoint.resolve()
        # A short directory of our own: unix socket paths are limited to 107 bytes.
        self._work_directory = tempfile.mkdtemp(prefix="lazyfs-")
        command = [sys.executable, str(Path(__file__).resolve()), str(self.backing), str(self.mountpoint),
                   "--control", str(self.control_socket), "--parent-pid", str(os.getpid())]
        if self.debug:
            command.append("--debug")
        with open(self.log_path, "wb") as log_file:
            self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file)
        try:
            self._wait_until_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_until_ready(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"The lazy file system exited with code {self.process.returncode} before "
                                   f"it was mounted. Its log:\n{self.log_text()}")
            if _mounted_at(self._mount_target) and self.control_socket.exists():
                with contextlib.suppress(OSError):
                    self._command("ping")
                    return
            time.sleep(0.02)
        raise RuntimeError(f"The lazy file system was not mounted within {self.startup_timeout} s. "
                           f"Its log:\n{self.log_text()}")

    def _command(self, command: str) -> dict[str, Any]:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
            connection.settimeout(30)
            connection.connect(str(self.control_socket))
            connection.sendall(command.encode() + b"\n")
            reply = b""
            while not reply.endswith(b"\n"):
                chunk = connection.recv(65536)
                if not chunk:
                    break
                reply += chunk
        answer = json.loads(reply)
        if not answer.pop("ok", False):
            raise RuntimeError(answer.get("error", f"The command {command} failed."))
        return answer

    def cut(self) -> dict[str, int]:
        """Cut the power: everything not synced is lost; the mount keeps serving what survived."""
        return self._command("cut")

    def stats(self) -> dict[str, int]:
        return self._command("stats")

    def stop(self) -> None:
        """Unmount, and make sure the child process has exited; safe to call more than once."""
        process = self.process
        try:
            if _mounted_at(self._mount_target):
                unmounted = subprocess.run(["fusermount3", "-u", str(self.mountpoint)],
                                           capture_output=True, check=False).returncode == 0
                if not unmounted:
                    log.warning("The mount at %s was busy, so it is detached lazily.", self.mountpoint)
                    subprocess.run(["fusermount3", "-uz", str(self.mountpoint)], capture_output=True, check=False)
            if process is not None:
                try:
                    process.wait(timeout=self.stop_timeout)
                except subprocess.TimeoutExpired:
                    log.warning("The lazy file system (pid %d) did not exit after unmounting; it is killed.",
                                process.pid)
                    process.kill()
                    process.wait(timeout=10)
            if _mounted_at(self._mount_target):
                subprocess.run(["fusermount3", "-uz", str(self.mountpoint)], capture_output=True, check=False)
        finally:
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()
            if process is not None and process.returncode not in (0, -signal.SIGKILL):
                log.warning("The lazy file system exited with code %s. Its log:\n%s", process.returncode,
                            self.log_text())
            self.process = None
            if self._work_directory is not None:
                shutil.rmtree(self._work_directory, ignore_errors=True)
                self._work_directory = None

    def __enter__(self) -> LazyMount:
        return self.start()

    def __exit__(self, exception_type: type[BaseException] | None, exception: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()


if __name__ == "__main__":
    sys.exit(main())
