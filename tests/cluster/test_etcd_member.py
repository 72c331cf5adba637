"""The triad's etcd: three real etcd members on loopback, over TLS with certificates from the triad CA."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import grpc
import pytest
from aetcd import rpc  # type: ignore[import-untyped]
from harness import free_port

from licentia.cluster.etcd_client import Compare, EtcdClient, EtcdUnavailable, Op, WatchCompacted, WatchEvent
from licentia.cluster.etcd_member import EtcdMember, EtcdPeer, EtcdTiming
from licentia.cluster.triad_tls import MemberTLS, ensure_member_tls, member_tls

SECRET = "relationship-secret-for-etcd-tests"
TRIAD = "test-triad"
ETCD = "/usr/bin/etcd"
T = TypeVar("T")

pytestmark = pytest.mark.skipif(not os.access(ETCD, os.X_OK), reason="etcd-server is not installed")


class LoopThread:
    """An event loop on its own thread, alive for the whole test, so the etcd children outlive each step."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="etcd-test-loop", daemon=True)
        self.thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


class EtcdCluster:
    """Three etcd members, lic-a, lic-b and lic-c, each with its own data and TLS directories under `root`."""

    def __init__(self, root: Path, loop: LoopThread, timing: EtcdTiming) -> None:
        self.root = root
        self.loop = loop
        self.peers = [EtcdPeer(f"lic-{letter}", "127.0.0.1", free_port(), free_port()) for letter in "abc"]
        self.tls: list[MemberTLS] = []
        self.members: list[EtcdMember] = []
        for peer in self.peers:
            tls_dir = root / peer.name / "tls"
            self.tls.append(ensure_member_tls(tls_dir, SECRET, TRIAD, peer.name, peer.host))
            self.members.append(EtcdMember(root / peer.name / "etcd", peer, self.peers, "test-cluster", tls_dir,
                                           timing=timing, binary=ETCD))

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        return self.loop.run(coroutine, timeout)

    def client(self, index: int, timeout: float = 2.0) -> EtcdClient:
        return EtcdClient(self.peers[index].client_endpoint, self.tls[index], timeout=timeout)

    async def start(self) -> None:
        await asyncio.gather(*(member.start() for member in self.members))
        await self.wait_writable(0)

    async def wait_writable(self, index: int, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        async with self.client(index, timeout=1.0) as client:
            while True:
                try:
                    await client.put(b"ready", b"yes")
                    return
                except EtcdUnavailable:
                    if time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(0.05)

    async def stop(self) -> None:
        # One after the other: SIGTERM to all three at once leaves one etcd waiting out its 5 s grace.
        errors = []
        for member in self.members:
            try:
                await member.stop()
            except Exception as error:
                errors.append(error)
        if errors:
            raise errors[0]


def _pids_under(path: Path) -> list[int]:
    found = subprocess.run(["pgrep", "-f", str(path)], capture_output=True, text=True, check=False).stdout
    return [int(pid) for pid in found.split()]


def _alive(pid: int) -> bool:
    """Whether the process exists and is not a zombie waiting for a reaper."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdCluster]:
    """One cluster for the module's tests: each writes keys of its own, and the one that kills a member
    waits until the supervisor has brought it back."""
    tmp_path = tmp_path_factory.mktemp("etcd")
    loop = LoopThread()
    etcd = EtcdCluster(tmp_path, loop, EtcdTiming(heartbeat_ms=50, election_ms=500))
    try:
        etcd.run(etcd.start())
        yield etcd
    finally:
        try:
            etcd.run(etcd.stop())
        finally:
            loop.close()
            leftover = _pids_under(tmp_path)
            for pid in leftover:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        assert leftover == [], f"etcd processes outlived the test: {leftover}"


def test_three_members_form_a_cluster_and_a_create_only_txn_succeeds_once(cluster: EtcdCluster) -> None:
    async def body() -> None:
        clients = [cluster.client(index) for index in range(3)]
        try:
            names = await clients[0].member_names()
            assert sorted(names.values()) == ["lic-a", "lic-b", "lic-c"]
            statuses = [await client.status() for client in clients]
            assert {status.member_id for status in statuses} == set(names)
            assert len({status.leader_id for status in statuses}) == 1
            assert statuses[0].leader_id in names

            create = [Compare.create_revision(b"license/1", "==", 0)]
            first = await clients[1].txn(create, [Op.put(b"license/1", b"seat")], [Op.get(b"license/1")])
            assert first.succeeded and first.responses == [None]
            second = await clients[2].txn(create, [Op.put(b"license/1", b"other")], [Op.get(b"license/1")])
            assert not second.succeeded
            assert second.revision == first.revision
            [[stored]] = second.responses  # type: ignore[misc]
            assert (stored.value, stored.create_revision) == (b"seat", first.revision)
            kv, revision = await clients[0].get(b"license/1")
            assert kv == stored and revision == first.revision
        finally:
            for client in clients:
                await client.close()

    cluster.run(body())


def test_a_watch_yields_every_put_in_order_and_refuses_a_compacted_start(cluster: EtcdCluster) -> None:
    async def body() -> None:
        async with cluster.client(0) as writer, cluster.client(1) as watcher:
            revisions = [await writer.put(f"seats/{n % 4}".encode(), str(n).encode()) for n in range(20)]
            await writer.put(b"other/x", b"not watched")
            await writer.txn([], [Op.delete(b"seats/3")])
            seen: list[tuple[int, WatchEvent]] = []
            async with contextlib.aclosing(watcher.watch(b"seats/", revisions[0], prefix=True)) as stream:
                async for revision, events in stream:
                    assert all(event.kv.mod_revision <= revision for event in events)
                    seen.extend((event.kv.mod_revision, event) for event in events)
                    if len(seen) >= 21:
                        break
            assert [revision for revision, _ in seen] == [*revisions, revisions[-1] + 2]
            assert [event.kv.value for _, event in seen[:20]] == [str(n).encode() for n in range(20)]
            assert [event.kind for _, event in seen] == ["put"] * 20 + ["delete"]
            assert seen[-1][1].kv.key == b"seats/3"

            compacted_to = revisions[10]
            await writer.compact(compacted_to)
            await writer.compact(compacted_to)  # again: nothing to do, not an error
            with pytest.raises(WatchCompacted) as refused:
                async for _ in watcher.watch(b"seats/", revisions[2], prefix=True):
                    pass
            assert refused.value.compact_revision == compacted_to

            # From the compaction revision on, the history is still there.
            async with contextlib.aclosing(watcher.watch(b"seats/", compacted_to, prefix=True)) as stream:
                _, events = await anext(stream)
                assert events[0].kv.mod_revision == compacted_to

    cluster.run(body())


def test_a_lease_expires_unless_kept_alive_and_revoking_deletes_its_key_at_once(cluster: EtcdCluster) -> None:
    async def body() -> None:
        async with cluster.client(0) as client, cluster.client(2) as other:
            forgotten, ttl = await client.grant_lease(1)
            assert ttl >= 1
            kept, _ = await client.grant_lease(2)
            revoked, _ = await client.grant_lease(60)
            await client.put(b"lease/forgotten", b"1", lease=forgotten)
            await client.put(b"lease/kept", b"1", lease=kept)
            await client.put(b"lease/revoked", b"1", lease=revoked)

            started = time.monotonic()
            while (await other.get(b"lease/forgotten"))[0] is not None:
                assert await client.keep_alive(kept) > 0
                assert time.monotonic() - started < 5, "the lease that was not kept alive did not expire"
                await asyncio.sleep(0.3)
            assert await client.lease_ttl(forgotten) == -1
            assert await client.keep_alive(forgotten) == 0
            for _ in range(8):  # 2.4 s: past the kept lease's 2 s TTL
                assert await client.keep_alive(kept) > 0
                await asyncio.sleep(0.3)
            kv, _ = await other.get(b"lease/kept")
            assert kv is not None and kv.lease == kept

            await client.revoke_lease(revoked)
            assert (await other.get(b"lease/revoked"))[0] is None
            assert await other.lease_ttl(revoked) == -1
            await client.revoke_lease(revoked)  # already gone: not an error

    cluster.run(body())


def test_only_clients_with_a_certificate_from_the_triad_ca_are_served(cluster: EtcdCluster) -> None:
    async def body() -> None:
        endpoint = cluster.peers[0].client_endpoint
        foreign = member_tls("another-triads-secret", TRIAD, "lic-a", "127.0.0.1")
        async with EtcdClient(endpoint, foreign, timeout=1.0) as stranger:
            with pytest.raises(EtcdUnavailable):
                await stranger.get(b"license/1")
        # The triad's CA, but no certificate of our own.
        anonymous = grpc.aio.secure_channel(endpoint, grpc.ssl_channel_credentials(cluster.tls[0].ca_pem))
        plain = grpc.aio.insecure_channel(endpoint)
        try:
            for channel in (anonymous, plain):
                with pytest.raises(grpc.aio.AioRpcError):
                    await rpc.KVStub(channel).Range(rpc.RangeRequest(key=b"license/1"), timeout=1.0)
        finally:
            await anonymous.close()
            await plain.close()
        async with cluster.client(0) as member:
            assert (await member.get(b"ready"))[0] is not None

    cluster.run(body())


def test_the_supervisor_restarts_a_killed_etcd_and_it_rejoins(cluster: EtcdCluster) -> None:
    member = cluster.members[1]
    killed = member.pid
    assert killed is not None
    member.kill()

    async def body() -> None:
        deadline = time.monotonic() + 10
        while member.restarts < 1 or member.pid is None:
            assert time.monotonic() < deadline, "the supervisor did not restart etcd"
            await asyncio.sleep(0.05)
        await cluster.wait_writable(1)
        async with cluster.client(1) as client, cluster.client(0) as other:
            revision = await client.put(b"after-restart", b"1")
            kv, _ = await other.get(b"after-restart")
            assert kv is not None and kv.mod_revision == revision

    cluster.run(body())
    assert member.restarts == 1
    assert member.pid not in (None, killed)
    assert not _alive(killed)


CHILD_SCRIPT = textwrap.dedent("""
    import asyncio, sys
    from pathlib import Path
    from licentia.cluster.etcd_member import EtcdMember, EtcdPeer
    from licentia.cluster.triad_tls import ensure_member_tls

    async def main():
        root = Path(sys.argv[1])
        me = EtcdPeer("lic-a", "127.0.0.1", int(sys.argv[2]), int(sys.argv[3]))
        ensure_member_tls(root / "tls", "secret", "triad", me.name, me.host)
        member = EtcdMember(root / "etcd", me, [me], "orphan-test", root / "tls")
        await member.start()
        print(member.pid, flush=True)
        await asyncio.sleep(60)

    asyncio.run(main())
""")


PR_SET_CHILD_SUBREAPER = 36


def test_etcd_dies_with_its_parent_even_when_the_parent_is_killed(tmp_path: Path) -> None:
    # Orphans come to this process rather than to PID 1 (which, in a container, may never reap them),
    # so the test can tell a dead etcd from a live one and reap it.
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    parent = subprocess.Popen([sys.executable, "-c", CHILD_SCRIPT, str(tmp_path), str(free_port()), str(free_port())],
                              stdout=subprocess.PIPE, text=True)
    etcd_pid = 0
    try:
        assert parent.stdout is not None
        etcd_pid = int(parent.stdout.readline())
        assert _alive(etcd_pid)
        parent.send_signal(signal.SIGKILL)
        parent.wait(5)
        deadline = time.monotonic() + 2
        while _alive(etcd_pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not _alive(etcd_pid), "etcd outlived the process that started it"
    finally:
        parent.kill()
        parent.wait(5)
        for pid in [etcd_pid, *_pids_under(tmp_path)]:
            if pid and _alive(pid):
                os.kill(pid, signal.SIGKILL)
        libc.prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
        if etcd_pid:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(etcd_pid, 0)
