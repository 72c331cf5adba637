"""A triad member's checkpoint: its own copy of the state and the log revision it reflects.

The file (`DATA/triad-state.snapshot`) is in the standalone server's snapshot format
(`store.snapshot_file`: a heading line with the revision, then the state in MessagePack) and is
loaded by the same path (`LicenseState.from_snapshot`, which makes the records share the values they
repeat), so a member restarts as fast as a standalone server does. It is written by a forked child
(`store.forked_write`): the loop pays for the fork only, however large the state.

A peer that fell behind the log's compaction is sent this member's file as it is, streamed from a
file opened once (a checkpoint written meanwhile replaces the name, not the open file) and signed by
a thread, so the member that sends it (often the active one) never holds the state's bytes in memory
or copies them on its loop.

The member that serves the clients does not fork for its own checkpoints: it takes another member's newer
one as its own (`TriadCheckpoints.adopt_from_peer`). Every member applies the same log to the same state
machine, so another member's checkpoint at revision R holds this member's state at R. The fork held the
serving member's loop 21-37 ms at 300,000 leases, and its child took a core for seconds.

An earlier version wrote the checkpoint as JSON (`DATA/triad-state.json`): a member that finds only
that file reads it once, writes it again in this format and removes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import httpx
import msgspec

from licentia.cluster import peer_auth
from licentia.cluster.etcd_client import EtcdUnavailable
from licentia.cluster.peer_trust import PeerTrust
from licentia.cluster.relationship import Host
from licentia.cluster.triad_log import APPLIED_PREFIX, TriadLog, reported_checkpoints
from licentia.cluster.triad_seam import CommitFailed
from licentia.core.model import TriadMember
from licentia.core.state import LicenseState, Snapshot
from licentia.store.forked_write import SYNC_EVERY, ForkedWriteFailed, write_forked
from licentia.store.private_file import put_in_place, write_private
from licentia.store.snapshot_file import (
    HEADING_MAX,
    MAGIC,
    SnapshotFileError,
    load_snapshot_file,
    snapshot_chunks,
    snapshot_heading,
)
from licentia.tls import CertificateRefused

log = logging.getLogger("licentia.triad")

CHUNK = 1 << 20  # bytes read (by a thread) per piece of a checkpoint sent to a peer
CHECKPOINT_PATH = "/api/v1/peer/triad/checkpoint"


class CheckpointError(ValueError):
    """The bytes are not a checkpoint this version can read."""


@dataclass(frozen=True)
class MemberCheckpoint:
    """The state a checkpoint holds and the log revision it reflects."""

    revision: int
    state: LicenseState


class _JsonCheckpoint(msgspec.Struct):
    """The checkpoint as an earlier version wrote it (`{"revision": ..., "snapshot": {...}}`)."""

    revision: int
    snapshot: Snapshot


def checkpoint_chunks(revision: int, state: LicenseState) -> list[bytes]:
    """The checkpoint file's bytes for `state` at `revision`: the standalone snapshot's format."""
    return snapshot_chunks(revision, state)


def write_checkpoint(path: Path, revision: int, state: LicenseState) -> None:
    """Write the checkpoint durably (a private temporary file, synced, renamed over, directory synced)."""
    write_private(path, *checkpoint_chunks(revision, state))


async def write_checkpoint_forked(path: Path, revision: int, state: LicenseState) -> None:
    """Write the checkpoint of `state`, which reflects `revision`, from a forked child: the child encodes and
    syncs the state as it is at this moment, while the loop goes on applying the log and serving."""
    await write_forked(path, lambda: checkpoint_chunks(revision, state))


def is_snapshot_format(data: bytes) -> bool:
    return data.startswith(MAGIC)


def decode_checkpoint(data: bytes) -> MemberCheckpoint:
    """The checkpoint in `data`, in this version's format or the earlier JSON one (a peer not yet upgraded)."""
    try:
        if is_snapshot_format(data):
            return MemberCheckpoint(*load_snapshot_file(data))
        if data[:1] != b"{":
            raise CheckpointError("not a Licentia triad checkpoint")
        old = msgspec.json.decode(data, type=_JsonCheckpoint)
    except (msgspec.DecodeError, ValueError) as exc:
        raise CheckpointError(f"the checkpoint cannot be read: {exc}") from None
    return MemberCheckpoint(old.revision, LicenseState.from_snapshot(old.snapshot))


def read_checkpoint(path: Path, earlier: Path | None = None) -> MemberCheckpoint | None:
    """This member's checkpoint, or None when it has none. When only `earlier` (the JSON file of an earlier
    version) exists, it is read once, written again at `path` in this version's format, and removed."""
    try:
        found = decode_checkpoint(path.read_bytes())
    except FileNotFoundError:
        pass
    else:
        if earlier is not None:
            earlier.unlink(missing_ok=True)  # rewritten by a start that stopped before removing it
        return found
    if earlier is None or not earlier.exists():
        return None
    found = decode_checkpoint(earlier.read_bytes())
    write_checkpoint(path, found.revision, found.state)
    earlier.unlink()
    log.warning("Rewrote this member's checkpoint (revision %d) from %s, an earlier version's JSON, as %s.",
                found.revision, earlier.name, path.name)
    return found


def _pieces(fd: int, size: int) -> Iterator[bytes]:
    """The first `size` bytes of the open file `fd`, CHUNK at a time."""
    offset = 0
    while offset < size:
        piece = os.pread(fd, min(CHUNK, size - offset), offset)
        if not piece:
            raise OSError(f"the checkpoint ended at {offset} of {size} bytes")
        offset += len(piece)
        yield piece


def _write_synced(fd: int, pieces: list[bytes]) -> None:
    """Write `pieces` at the end of `fd` and sync them: a checkpoint arriving is synced SYNC_EVERY bytes at a time,
    as a forked child writes one (`write_private`'s `sync_every`), so that it never has tens of megabytes waiting to
    be flushed at once, which every other sync on the disk (etcd's log) would wait behind."""
    for piece in pieces:
        view = memoryview(piece)
        while view:
            view = view[os.write(fd, view) :]
    os.fdatasync(fd)


def _received_revision(fd: int, secret: str, signed: peer_auth.SignedRequest, signature: str) -> int:
    """The revision of the checkpoint received into the open file `fd`, synced, once its signature proves the
    peer sent exactly these bytes (read back a piece at a time: hashing releases the GIL, in a thread)."""
    os.fsync(fd)
    if not peer_auth.answer_is_genuine_of(secret, signed, 200, _pieces(fd, os.fstat(fd).st_size), signature):
        raise CheckpointError("it is not signed with the triad's secret")
    try:
        return snapshot_heading(os.pread(fd, HEADING_MAX, 0))[1]
    except SnapshotFileError:
        raise CheckpointError("it is not in this version's checkpoint format") from None


class CheckpointCopy:
    """A checkpoint file opened for a peer: the file as it was when opened (a checkpoint written since
    replaced the name, not this file), read by threads a piece at a time."""

    def __init__(self, file: BinaryIO) -> None:
        self.file = file
        self.size = os.fstat(file.fileno()).st_size

    def signature(self, secret: str, request_mac: str, status: int) -> str:
        """The answer's signature over the whole file (`peer_auth.answer_signature`), read piece by piece:
        hashing releases the GIL, so a thread computes it without holding up the loop."""
        return peer_auth.answer_signature_of(secret, request_mac, status, _pieces(self.file.fileno(), self.size))

    async def chunks(self) -> AsyncIterator[bytes]:
        """The file's bytes, CHUNK at a time, each read by a thread; the file is closed at the end."""
        try:
            pieces = _pieces(self.file.fileno(), self.size)
            while (piece := await asyncio.to_thread(next, pieces, b"")):
                yield piece
        finally:
            self.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.file.close()


@dataclass(frozen=True)
class CheckpointPeers:
    """What fetching a peer's checkpoint needs to know of the triad."""

    triad: str  # the triad's name, for log lines
    me: str
    secret: str
    others: list[TriadMember]


class TriadCheckpoints:
    """This member's checkpoint: written (forked) from what it has applied and reported to etcd, served to a
    peer that fell behind the compaction, and fetched from a peer when this member is the one behind."""

    def __init__(self, path: Path, host: Host, log_: TriadLog, peers: CheckpointPeers, trust: PeerTrust) -> None:
        self.path = path
        self.host = host
        self.log = log_
        self.peers = peers
        self._lock = asyncio.Lock()
        self._fork = True  # written by a forked child while that works, else by this process
        self.trust = trust  # the member's kept trust in its peers' certificates (a checkpoint makes no handshake more)

    async def write(self, report: bool = True) -> None:
        """Write the checkpoint of what this member has applied (synced), then tell etcd the revision it
        reflects. One at a time; none is written when the last one is still current."""
        async with self._lock:
            revision = self.log.applied_revision
            if revision == self.log.checkpointed_revision and self.path.exists():
                return
            try:
                if self._fork:
                    await write_checkpoint_forked(self.path, revision, self.host.state)
                else:
                    chunks = checkpoint_chunks(revision, self.host.state)
                    await asyncio.to_thread(write_private, self.path, *chunks)
            except ForkedWriteFailed as exc:
                self._fork = False
                log.error("Triad %s: could not write this member's checkpoint (%s); the next ones are written by "
                          "this process.", self.peers.triad, exc)
                return
            self.log.checkpointed(revision)
        if report:
            await self.report(revision)

    async def report(self, revision: int) -> None:
        """Tell etcd the revision this member's checkpoint reflects (the log is compacted below them all)."""
        client = self.log.client
        if client is not None:
            with contextlib.suppress(EtcdUnavailable):
                await client.put(APPLIED_PREFIX + self.peers.me.encode(), str(revision).encode())

    async def open_for_peer(self) -> CheckpointCopy:
        """This member's checkpoint file as it is now, for a peer that fell behind a compaction (one is
        written first if there is none). The file serves as it is: the log is compacted only below what
        every member has checkpointed, so the peer replays the log from its revision."""
        if not self.path.exists():
            await self.write(report=False)
        async with self._lock:
            return CheckpointCopy(await asyncio.to_thread(self.path.open, "rb"))

    @contextlib.asynccontextmanager
    async def _asking(self, member: TriadMember) -> AsyncIterator[tuple[httpx.Response, peer_auth.SignedRequest]]:
        """`member`'s answer to this member's signed request for its checkpoint, its body not read yet."""
        peers = self.peers
        signed = peer_auth.sign(peers.secret, peers.me, "POST", CHECKPOINT_PATH, b"", self.host.now())
        base = member.api_url.rstrip("/")
        trust = self.trust.of(member)
        await trust.prepare(base)
        async with (httpx.AsyncClient(timeout=30.0, verify=trust.verify_for(base)) as http,
                    http.stream("POST", base + CHECKPOINT_PATH, headers={peer_auth.HEADER: signed.header}) as answer):
            yield answer, signed

    async def adopt_from_peer(self) -> int | None:
        """Take the newest checkpoint another member reported as this member's own (see the module's text), when
        it is newer than this member's and this member has applied the log that far (what a member reports never
        runs ahead of what it has applied: the log is compacted below it). Without a fork: streamed into a private
        temporary file a piece at a time, its signature checked and the file synced by a thread, then renamed
        over this member's file. Its revision, or None when no member has one to take or none could send it (the
        caller writes its own)."""
        client = self.log.client
        if client is None:
            return None
        reported = await reported_checkpoints(client)
        mine, applied = self.log.checkpointed_revision, self.log.applied_revision
        newer = sorted((m for m in self.peers.others if mine < reported.get(m.name, 0) <= applied),
                       key=lambda m: -reported.get(m.name, 0))
        for member in newer:
            started = time.perf_counter()
            try:
                taken = await self._adopt(member)
            except CertificateRefused as exc:
                log.warning("Triad %s: %s is refused: %s", self.peers.triad, member.name, exc)
                continue
            except (httpx.HTTPError, CheckpointError, OSError) as exc:
                log.warning("Triad %s: could not take %s's checkpoint as this member's: %s", self.peers.triad,
                            member.name, exc)
                continue
            if taken is None:
                continue
            revision, size = taken
            log.info("Triad %s: this member serves the clients, so it took %s's checkpoint at revision %d "
                     "(%.0f MB in %.1f s) as its own instead of writing one.", self.peers.triad, member.name,
                     revision, size / 1e6, time.perf_counter() - started)
            await self.report(revision)
            return revision
        return None

    async def _adopt(self, member: TriadMember) -> tuple[int, int] | None:
        """`member`'s checkpoint made this member's: its revision and size, or None when it was refused, or is not
        newer than this member's, or is ahead of what this member has applied."""
        temporary = self.path.with_name(f".{self.path.name}.taking")
        async with self._asking(member) as (answer, signed):
            if answer.status_code != 200:
                text = (await answer.aread()).decode(errors="replace")
                log.warning("Triad %s: %s refused its checkpoint: %s", self.peers.triad, member.name, text[:300])
                return None
            signature = answer.headers.get(peer_auth.ANSWER_HEADER, "")
            fd = await asyncio.to_thread(os.open, temporary, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                buffered: list[bytes] = []
                size = pending = 0
                async for piece in answer.aiter_bytes():
                    buffered.append(piece)
                    pending += len(piece)
                    if pending >= SYNC_EVERY:
                        await asyncio.to_thread(_write_synced, fd, buffered)
                        size, buffered, pending = size + pending, [], 0
                await asyncio.to_thread(_write_synced, fd, buffered)
                size += pending
                revision = await asyncio.to_thread(_received_revision, fd, self.peers.secret, signed, signature)
            except BaseException:
                os.close(fd)
                temporary.unlink(missing_ok=True)
                raise
            os.close(fd)
        async with self._lock:
            if not self.log.checkpointed_revision < revision <= self.log.applied_revision:
                temporary.unlink(missing_ok=True)
                return None
            await asyncio.to_thread(put_in_place, temporary, self.path)
            self.log.checkpointed(revision)
        return revision, size

    async def fetch_from_peer(self) -> int:
        """Install another member's checkpoint (this member fell behind the compaction); its revision."""
        peers = self.peers
        for member in peers.others:
            try:
                async with self._asking(member) as (answer, signed):
                    data = await answer.aread()
                if answer.status_code != 200:
                    log.warning("Triad %s: %s refused its checkpoint: %s", peers.triad, member.name,
                                data.decode(errors="replace"))
                    continue
                genuine = await asyncio.to_thread(
                    peer_auth.answer_is_genuine, peers.secret, signed, 200, data,
                    answer.headers.get(peer_auth.ANSWER_HEADER, ""))
                if not genuine:
                    log.warning("Triad %s: the checkpoint from %s is not signed with the triad's secret; it was "
                                "ignored.", peers.triad, member.name)
                    continue
                checkpoint = decode_checkpoint(data)
            except CertificateRefused as exc:
                log.warning("Triad %s: %s is refused: %s", peers.triad, member.name, exc)
                continue
            except (httpx.HTTPError, CheckpointError) as exc:
                log.warning("Triad %s: could not fetch a checkpoint from %s: %s", peers.triad, member.name, exc)
                continue
            if checkpoint.revision <= self.log.applied_revision:
                continue
            self.host.install_state(checkpoint.state)
            gc.freeze()  # kept out of the collector's full passes, as `licentia serve` keeps the state it loads
            self.log.restart_from(checkpoint.revision)
            async with self._lock:  # the peer's checkpoint is this member's now
                if is_snapshot_format(data):
                    await asyncio.to_thread(write_private, self.path, data)
                else:  # from a member of an earlier version
                    await asyncio.to_thread(write_checkpoint, self.path, checkpoint.revision, checkpoint.state)
            await self.report(checkpoint.revision)
            log.warning("Triad %s: installed %s's checkpoint at revision %d.", peers.triad, member.name,
                        checkpoint.revision)
            return checkpoint.revision
        raise CommitFailed("no other member could send a checkpoint")

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
        self.path.with_name(f".{self.path.name}.taking").unlink(missing_ok=True)  # left by a stop mid-way
