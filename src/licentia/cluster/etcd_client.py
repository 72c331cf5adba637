"""A small asyncio client for the etcd v3 API, over gRPC with TLS and the member's client certificate.

aetcd's `Client` only opens insecure channels, so this client drives aetcd's generated
stubs over its own TLS channel and returns typed, frozen values instead of protobuf
messages. Every unary call carries the client's timeout as its gRPC deadline, and every
call asks etcd to refuse it at once when the member has no leader (the `hasleader`
metadata etcd's own client sends), so a partitioned member fails a caller quickly
instead of hanging it. Every failure reaches the caller as `EtcdUnavailable`, whose
message is a plain sentence.

The channel pings etcd every second while a call is open and drops the connection
when a ping goes unanswered for a second, which ends a watch stream on a dead member
within about two seconds. etcd refuses pings closer together than its
`--grpc-keepalive-min-time` (5 s by default), so `EtcdMember` lowers that to 0.5 s.

gRPC's fork support is turned off before gRPC is imported: a triad member forks children that write
its checkpoint (`store.forked_write`) and never call gRPC, and with fork support on, gRPC's handlers
restart its pollers in such a child, which then abort when the child closes their descriptors.
"""

from __future__ import annotations

import os

os.environ["GRPC_ENABLE_FORK_SUPPORT"] = "0"  # before gRPC is imported (see above)

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import grpc
from aetcd import rpc  # type: ignore[import-untyped]

from licentia.cluster.triad_tls import MemberTLS

logger = logging.getLogger("licentia.etcd")

MAX_RECEIVE_BYTES = 64 * 1024 * 1024
MAX_SEND_BYTES = 8 * 1024 * 1024 + 64 * 1024  # etcd's --max-request-bytes, plus framing
_REQUIRE_LEADER = (("hasleader", "true"),)
_COMPACTED_DETAIL = "required revision has been compacted"
_LEASE_NOT_FOUND_DETAIL = "requested lease not found"

CompareOp = Literal["==", "!=", "<", ">"]
_COMPARE_RESULTS = {
    "==": rpc.Compare.EQUAL,
    "!=": rpc.Compare.NOT_EQUAL,
    "<": rpc.Compare.LESS,
    ">": rpc.Compare.GREATER,
}


class EtcdUnavailable(Exception):
    """etcd did not do what was asked: the member could not be reached, timed out, or refused."""


class WatchCompacted(Exception):
    """A watch asked for history etcd has already compacted away."""

    def __init__(self, compact_revision: int) -> None:
        super().__init__(f"etcd has compacted its history up to revision {compact_revision}, "
                         "so a watch cannot start before it.")
        self.compact_revision = compact_revision


@dataclass(frozen=True)
class KeyValue:
    key: bytes
    value: bytes
    create_revision: int
    mod_revision: int
    version: int
    lease: int


@dataclass(frozen=True)
class WatchEvent:
    kind: Literal["put", "delete"]
    kv: KeyValue


TxnOpResult = list[KeyValue] | int | None


@dataclass(frozen=True)
class TxnResult:
    """A transaction's outcome; `responses` has one entry per operation of the branch that ran.

    A get gives its key-values (list[KeyValue]), a delete the number of keys deleted (int), a put None.
    """

    succeeded: bool
    revision: int
    responses: list[TxnOpResult]


@dataclass(frozen=True)
class EtcdStatus:
    member_id: int
    leader_id: int
    raft_index: int
    raft_term: int
    revision: int
    db_size: int


def prefix_end(prefix: bytes) -> bytes:
    """The end of the key range that holds exactly the keys starting with `prefix`."""
    end = bytearray(prefix)
    while end:
        if end[-1] < 0xFF:
            end[-1] += 1
            return bytes(end)
        end.pop()
    return b"\0"  # every key


@dataclass(frozen=True)
class Compare:
    """One condition of a transaction, built with the static constructors."""

    key: bytes
    target: Literal["create_revision", "mod_revision", "value", "version"]
    op: CompareOp
    operand: int | bytes

    @staticmethod
    def create_revision(key: bytes, op: CompareOp, revision: int) -> Compare:
        return Compare(key, "create_revision", op, revision)

    @staticmethod
    def mod_revision(key: bytes, op: CompareOp, revision: int) -> Compare:
        return Compare(key, "mod_revision", op, revision)

    @staticmethod
    def value(key: bytes, op: CompareOp, value: bytes) -> Compare:
        return Compare(key, "value", op, value)

    @staticmethod
    def version(key: bytes, op: CompareOp, version: int) -> Compare:
        return Compare(key, "version", op, version)

    def to_rpc(self) -> Any:
        compare = rpc.Compare(key=self.key, result=_COMPARE_RESULTS[self.op])
        if self.target == "create_revision":
            compare.target = rpc.Compare.CREATE
            compare.create_revision = int(self.operand)
        elif self.target == "mod_revision":
            compare.target = rpc.Compare.MOD
            compare.mod_revision = int(self.operand)
        elif self.target == "version":
            compare.target = rpc.Compare.VERSION
            compare.version = int(self.operand)
        else:
            compare.target = rpc.Compare.VALUE
            compare.value = bytes(self.operand)  # type: ignore[arg-type]
        return compare


@dataclass(frozen=True)
class Op:
    """One operation of a transaction, built with the static constructors."""

    kind: Literal["put", "delete", "get"]
    key: bytes
    value: bytes = b""
    lease: int = 0
    prefix: bool = False
    prev_kv: bool = False

    @staticmethod
    def put(key: bytes, value: bytes, lease: int = 0, prev_kv: bool = False) -> Op:
        """A put; with `prev_kv` its result is the key's previous value (an empty list if it had none)."""
        return Op("put", key, value, lease, prev_kv=prev_kv)

    @staticmethod
    def delete(key: bytes, prefix: bool = False) -> Op:
        return Op("delete", key, prefix=prefix)

    @staticmethod
    def get(key: bytes, prefix: bool = False) -> Op:
        return Op("get", key, prefix=prefix)

    def to_rpc(self) -> Any:
        range_end = prefix_end(self.key) if self.prefix else b""
        if self.kind == "put":
            return rpc.RequestOp(
                request_put=rpc.PutRequest(key=self.key, value=self.value, lease=self.lease, prev_kv=self.prev_kv)
            )
        if self.kind == "delete":
            return rpc.RequestOp(request_delete_range=rpc.DeleteRangeRequest(key=self.key, range_end=range_end))
        return rpc.RequestOp(request_range=rpc.RangeRequest(key=self.key, range_end=range_end))


def _key_value(kv: Any) -> KeyValue:
    return KeyValue(key=kv.key, value=kv.value, create_revision=kv.create_revision, mod_revision=kv.mod_revision,
                    version=kv.version, lease=kv.lease)


def _op_result(response: Any) -> TxnOpResult:
    kind = response.WhichOneof("response")
    if kind == "response_range":
        return [_key_value(kv) for kv in response.response_range.kvs]
    if kind == "response_delete_range":
        return int(response.response_delete_range.deleted)
    if kind == "response_put" and response.response_put.HasField("prev_kv"):
        return [_key_value(response.response_put.prev_kv)]
    return None


def _details(error: grpc.aio.AioRpcError) -> str:
    details = (error.details() or "").strip().rstrip(".")
    return details or error.code().name.lower().replace("_", " ")


class EtcdClient:
    """A connection to one etcd member. Calls may run concurrently; `close` ends them all."""

    def __init__(self, endpoint: str, tls: MemberTLS, timeout: float = 2.0) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        credentials = grpc.ssl_channel_credentials(
            root_certificates=tls.ca_pem, private_key=tls.key_pem, certificate_chain=tls.cert_pem)
        self._channel = grpc.aio.secure_channel(endpoint, credentials, options=[
            ("grpc.keepalive_time_ms", 1000),
            ("grpc.keepalive_timeout_ms", 1000),
            ("grpc.http2.max_pings_without_data", 0),
            ("grpc.max_receive_message_length", MAX_RECEIVE_BYTES),
            ("grpc.max_send_message_length", MAX_SEND_BYTES),
            ("grpc.initial_reconnect_backoff_ms", 100),
            ("grpc.max_reconnect_backoff_ms", 1000),
        ])
        self._kv = rpc.KVStub(self._channel)
        self._lease = rpc.LeaseStub(self._channel)
        self._watch = rpc.WatchStub(self._channel)
        self._maintenance = rpc.MaintenanceStub(self._channel)
        self._cluster = rpc.ClusterStub(self._channel)
        self._keep_alive_stream: Any = None
        self._keep_alive_lock = asyncio.Lock()

    async def __aenter__(self) -> EtcdClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the channel; calls and watches still open end with EtcdUnavailable."""
        self._drop_keep_alive_stream()
        await self._channel.close()

    def _unavailable(self, what: str, error: grpc.aio.AioRpcError) -> EtcdUnavailable:
        if error.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
            return EtcdUnavailable(f"The etcd member at {self.endpoint} did not {what} within {self.timeout:g} s.")
        return EtcdUnavailable(f"The etcd member at {self.endpoint} could not {what}: {_details(error)}.")

    async def _unary(self, what: str, method: Any, request: Any, require_leader: bool = True,
                     timeout: float | None = None) -> Any:
        try:
            return await method(request, timeout=timeout or self.timeout,
                                metadata=_REQUIRE_LEADER if require_leader else ())
        except grpc.aio.AioRpcError as error:
            raise self._unavailable(what, error) from None

    async def get(self, key: bytes, timeout: float | None = None) -> tuple[KeyValue | None, int]:
        """The key's value (None if absent) and the store's revision; a linearizable read (it needs
        etcd's leader to answer, so it also proves that this member reaches it)."""
        response = await self._unary("read a key", self._kv.Range, rpc.RangeRequest(key=key), timeout=timeout)
        kv = _key_value(response.kvs[0]) if response.kvs else None
        return kv, int(response.header.revision)

    async def get_prefix(self, prefix: bytes) -> tuple[list[KeyValue], int]:
        """Every key starting with `prefix`, in key order, and the store's revision; a linearizable read."""
        request = rpc.RangeRequest(key=prefix, range_end=prefix_end(prefix))
        response = await self._unary("read a range of keys", self._kv.Range, request)
        return [_key_value(kv) for kv in response.kvs], int(response.header.revision)

    async def put(self, key: bytes, value: bytes, lease: int = 0) -> int:
        """Write the key; the revision of the write."""
        response = await self._unary("write a key", self._kv.Put, rpc.PutRequest(key=key, value=value, lease=lease))
        return int(response.header.revision)

    async def txn(self, compare: Sequence[Compare], success: Sequence[Op], failure: Sequence[Op] = ()) -> TxnResult:
        """If every comparison holds, run `success`, otherwise `failure`, as one atomic revision."""
        request = rpc.TxnRequest(compare=[c.to_rpc() for c in compare], success=[op.to_rpc() for op in success],
                                 failure=[op.to_rpc() for op in failure])
        response = await self._unary("run a transaction", self._kv.Txn, request)
        return TxnResult(succeeded=bool(response.succeeded), revision=int(response.header.revision),
                         responses=[_op_result(r) for r in response.responses])

    async def grant_lease(self, ttl_s: int) -> tuple[int, int]:
        """A new lease: its id and the TTL etcd granted."""
        response = await self._unary("grant a lease", self._lease.LeaseGrant, rpc.LeaseGrantRequest(TTL=ttl_s))
        if response.error:
            raise EtcdUnavailable(f"The etcd member at {self.endpoint} could not grant a lease: {response.error}.")
        return int(response.ID), int(response.TTL)

    async def keep_alive(self, lease_id: int, timeout: float | None = None) -> int:
        """Renew the lease once; its remaining TTL, or 0 if it is gone.

        The renewals share one long-lived stream, opened on first use and opened again after any failure.
        """
        timeout = timeout or self.timeout
        async with self._keep_alive_lock:
            # Not `wait_for`: on a timeout it waits until the cancelled read has ended, and a read on a
            # stream whose answers no longer arrive need not end. The renewal is given up after `timeout`
            # whatever the stream does; dropping the stream cancels it.
            renewal = asyncio.ensure_future(self._keep_alive_once(lease_id))
            renewal.add_done_callback(lambda task: task.cancelled() or task.exception())
            try:
                done, _ = await asyncio.wait({renewal}, timeout=timeout)
                if not done:
                    renewal.cancel()
                    raise TimeoutError
                return renewal.result()
            except TimeoutError:
                self._drop_keep_alive_stream()
                raise EtcdUnavailable(
                    f"The etcd member at {self.endpoint} did not renew a lease within {timeout:g} s.") from None
            except grpc.aio.AioRpcError as error:
                self._drop_keep_alive_stream()
                raise self._unavailable("renew a lease", error) from None
            except (asyncio.InvalidStateError, grpc.aio.UsageError) as error:  # the stream had already ended
                self._drop_keep_alive_stream()
                raise EtcdUnavailable(f"The etcd member at {self.endpoint} ended the lease renewal stream "
                                      f"({type(error).__name__}).") from None
            except BaseException:
                renewal.cancel()
                self._drop_keep_alive_stream()
                raise

    async def _keep_alive_once(self, lease_id: int) -> int:
        if self._keep_alive_stream is None:
            self._keep_alive_stream = self._lease.LeaseKeepAlive(metadata=_REQUIRE_LEADER)
        stream = self._keep_alive_stream
        await stream.write(rpc.LeaseKeepAliveRequest(ID=lease_id))
        while True:
            response = await stream.read()
            if response is grpc.aio.EOF:
                self._drop_keep_alive_stream()
                raise EtcdUnavailable(f"The etcd member at {self.endpoint} closed the lease renewal stream.")
            if int(response.ID) == lease_id:
                return max(int(response.TTL), 0)

    def _drop_keep_alive_stream(self) -> None:
        stream, self._keep_alive_stream = self._keep_alive_stream, None
        if stream is not None:
            stream.cancel()

    async def revoke_lease(self, lease_id: int) -> None:
        """Revoke the lease, deleting its keys at once; a lease that is already gone is not an error."""
        try:
            await self._lease.LeaseRevoke(rpc.LeaseRevokeRequest(ID=lease_id), timeout=self.timeout,
                                          metadata=_REQUIRE_LEADER)
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND or _LEASE_NOT_FOUND_DETAIL in (error.details() or ""):
                return
            raise self._unavailable("revoke a lease", error) from None

    async def lease_ttl(self, lease_id: int) -> int:
        """The lease's remaining TTL in seconds, or -1 if it is gone."""
        request = rpc.LeaseTimeToLiveRequest(ID=lease_id)
        response = await self._unary("read a lease", self._lease.LeaseTimeToLive, request)
        return int(response.TTL)

    async def watch(self, key: bytes, start_revision: int, prefix: bool = False,
                    progress_notify: bool = False) -> AsyncIterator[tuple[int, list[WatchEvent]]]:
        """The changes to `key` (or every key under it) from `start_revision` on, as (revision, events), in order.

        Each item is one of etcd's watch responses: the header revision and its events, in revision
        order. With `progress_notify`, etcd also sends, when it is quiet, an item with no events,
        saying the watch has seen everything up to that revision. Raises WatchCompacted if
        `start_revision` is already compacted, and EtcdUnavailable when the stream breaks (the member
        dies, loses its leader or stops answering pings). Close the iterator
        (`contextlib.aclosing`) to end the watch at once.
        """
        create = rpc.WatchCreateRequest(key=key, range_end=prefix_end(key) if prefix else b"",
                                        start_revision=start_revision, progress_notify=progress_notify)
        stream = self._watch.Watch(metadata=_REQUIRE_LEADER)
        try:
            try:
                await asyncio.wait_for(stream.write(rpc.WatchRequest(create_request=create)), self.timeout)
                created = await asyncio.wait_for(stream.read(), self.timeout)
            except TimeoutError:
                raise EtcdUnavailable(
                    f"The etcd member at {self.endpoint} did not start a watch within {self.timeout:g} s.") from None
            response = created
            while True:
                if response is grpc.aio.EOF:
                    raise EtcdUnavailable(f"The etcd member at {self.endpoint} ended a watch.")
                if response.compact_revision:
                    raise WatchCompacted(int(response.compact_revision))
                if response.canceled:
                    reason = (response.cancel_reason or "no reason given").rstrip(".")
                    raise EtcdUnavailable(f"The etcd member at {self.endpoint} cancelled a watch: {reason}.")
                if response.events or not response.created:
                    events = [WatchEvent("put" if event.type == rpc.Event.PUT else "delete", _key_value(event.kv))
                              for event in response.events]
                    yield int(response.header.revision), events
                response = await stream.read()
        except grpc.aio.AioRpcError as error:
            raise self._unavailable("keep a watch open", error) from None
        finally:
            stream.cancel()

    async def compact(self, revision: int, physical: bool = False) -> None:
        """Discard the history before `revision`; compacting to a revision already compacted does nothing."""
        try:
            await self._kv.Compact(rpc.CompactionRequest(revision=revision, physical=physical),
                                   timeout=self.timeout, metadata=_REQUIRE_LEADER)
        except grpc.aio.AioRpcError as error:
            if _COMPACTED_DETAIL in (error.details() or ""):
                return
            raise self._unavailable("compact its history", error) from None

    async def status(self, timeout: float | None = None) -> EtcdStatus:
        """The status of the member this client talks to; answered even when the member has no leader."""
        response = await self._unary("report its status", self._maintenance.Status, rpc.StatusRequest(),
                                     require_leader=False, timeout=timeout)
        return EtcdStatus(member_id=int(response.header.member_id), leader_id=int(response.leader),
                          raft_index=int(response.raftIndex), raft_term=int(response.raftTerm),
                          revision=int(response.header.revision), db_size=int(response.dbSize))

    async def member_names(self) -> dict[int, str]:
        """The cluster's members: id -> name (empty for a member that has not started yet)."""
        response = await self._unary("list the cluster's members", self._cluster.MemberList, rpc.MemberListRequest(),
                                     require_leader=False)
        return {int(member.ID): str(member.name) for member in response.members}


    async def move_leader(self, target_member_id: int) -> None:
        """Ask the etcd leader (this client must talk to it) to hand leadership to another member."""
        await self._unary("hand its leadership over", self._maintenance.MoveLeader,
                          rpc.MoveLeaderRequest(targetID=target_member_id))
