"""A triad member's checkpoint (its own, and the one it sends a peer that fell behind a compaction) is
encoded and written off the event loop, from the state exactly as it was when the checkpoint began, and
this works while the member's etcd client runs gRPC's threads. It is in the standalone server's snapshot
format and loaded by the same path (records sharing their values); an earlier version's JSON checkpoint
is read once and written again in that format."""

from __future__ import annotations

import asyncio
import gc
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import msgspec
import pytest
from harness import Issuer

from licentia.cluster import peer_auth
from licentia.cluster.role_events import RoleEvents
from licentia.cluster.triad import TriadConfig, TriadNode
from licentia.cluster.triad_checkpoint import CheckpointCopy, decode_checkpoint, read_checkpoint, write_checkpoint
from licentia.config import Config
from licentia.core import commands as c
from licentia.core.listing import Listings
from licentia.core.model import ClientInfo, PrinterIdentity, TriadMember
from licentia.core.sharing import ValuePool
from licentia.core.state import LicenseState
from licentia.server import LicenseServer
from licentia.store import data_directory
from licentia.store.snapshot_file import decode_snapshot_file

DAY = 86400.0
LEASES = 60_000
PRINTERS = 60_000
ETCD = "/usr/bin/etcd"


def checkout(n: int) -> c.Checkout:
    client = ClientInfo(host=f"ws-{n % 5000}", user=f"user-{n}", application="CAD", version="1.0")
    return c.Checkout(request_id=f"req-{n}", lease_id=f"lease-{n:08d}", product="CAD", client=client,
                      source_ip="10.0.0.1", ttl_s=DAY)


def site_state(leases: int, printers: int) -> LicenseState:
    """`leases` seat leases and `printers` counted printers, applied to the core."""
    issuer, now, state = Issuer(), time.time(), LicenseState()
    for product, unit, count in (("CAD", "seats", 10 * leases), ("LBL", "printers", 10 * printers)):
        terms = issuer.terms(license_id=f"L-{unit}", product=product, unit=unit, count=count,
                             not_before=now - DAY, expires=now + 365 * DAY)
        assert state.apply(c.AddLicense(terms=terms, key_id="k", signature="YmVuY2g="), now).ok
    for n in range(leases):
        assert state.apply(checkout(n), now).ok
    for n in range(printers):
        print_check = c.PrintCheck(product="LBL", printer=PrinterIdentity(name=f"printer-{n}"),
                                   client=ClientInfo(host=f"pc-{n % 5000}", user="label"), source_ip="10.0.0.2")
        assert state.apply(print_check, now).ok
    return state


@pytest.fixture(scope="module")
def large_state() -> Iterator[LicenseState]:
    """LEASES seat leases and PRINTERS counted printers (large enough that encoding them on the loop is a
    stall the tests can tell from a fork), kept out of the cycle collector's full passes as `licentia serve`
    keeps the state it loads."""
    state = site_state(LEASES, PRINTERS)
    gc.collect()
    gc.freeze()
    yield state
    gc.unfreeze()


def same_state(one: LicenseState, other: LicenseState) -> bool:
    return one.snapshot_bytes() == other.snapshot_bytes()


def member(tmp_path: Path, state: LicenseState, applied_revision: int) -> TriadNode:
    """A triad member around `state`, not started (no etcd): enough to write and serve its checkpoint."""
    members = [TriadMember(name=role, role=role, api_url=f"http://127.0.0.1:{9000 + n}",  # type: ignore[arg-type]
                           raft_address=f"127.0.0.1:{9100 + 2 * n}")
               for n, role in enumerate(("primary", "secondary", "tertiary"))]
    config = TriadConfig(name="T1", me="primary", members=members, secret="s" * 32, origin="test")
    server: Any = SimpleNamespace(config=SimpleNamespace(data_dir=tmp_path), state=state, now=time.time,
                                  clock=time.time, role_events=RoleEvents())
    return TriadNode(server, config, applied_revision)


async def while_changing(work: Any, state: LicenseState, changes_from: int) -> tuple[bytes, Any, float]:
    """The state's encoding just before `work` starts, what `work` returned, and the longest wait between
    two turns of a ticker that asks the loop for a turn every 2 ms and applies one more checkout each turn
    while `work` runs."""
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    turns = {"last": loop.time(), "longest": 0.0}

    async def tick() -> None:
        n = changes_from
        while not done.is_set():
            await asyncio.sleep(0.002)
            now = loop.time()
            turns["longest"] = max(turns["longest"], now - turns["last"])
            turns["last"] = now
            assert state.apply(checkout(n), time.time()).ok
            n += 1

    await asyncio.sleep(0)
    before = state.snapshot_bytes()
    ticker = asyncio.create_task(tick())
    turns["last"] = loop.time()
    try:
        result = await work()
    finally:
        done.set()
        await ticker
    return before, result, turns["longest"]


def encoding_s(state: LicenseState, folder: Path) -> float:
    """What writing the checkpoint on the loop would cost now (encoded, written and synced, as the forked child
    does it): the stall a checkpoint would cause without the fork."""
    started = time.perf_counter()
    write_checkpoint(folder / "on-the-loop.snapshot", 0, state)
    return time.perf_counter() - started


def stall_ratios(
    tries: int, work: Any, state: LicenseState, changes_from: int, folder: Path
) -> list[tuple[float, float]]:
    """(longest stall, encoding time) for each try of `work` (a fresh checkpoint each time): a loaded machine
    adds noise to one try; encoding on the loop would stall every one of them."""
    found = []
    for n in range(tries):
        encode_s = encoding_s(state, folder)
        _, _, stall_s = asyncio.run(while_changing(work, state, changes_from + 1000 * n))
        found.append((stall_s, encode_s))
    return found


def test_a_checkpoint_of_a_large_state_does_not_stall_the_loop_and_holds_the_state_as_it_began(
    tmp_path, large_state
):
    state = large_state
    node = member(tmp_path, state, applied_revision=1000)
    node.log.applied_revision = 1234

    expected, _, _ = asyncio.run(while_changing(lambda: node.checkpoints.write(report=False), state, LEASES))

    checkpoint = read_checkpoint(node.checkpoint_file)
    assert checkpoint is not None and checkpoint.revision == 1234
    assert node.log.checkpointed_revision == 1234
    # The checkouts applied while it was written are not in it: it is the state at revision 1234.
    assert checkpoint.state.snapshot_bytes() == expected
    assert len(state.leases) > LEASES

    async def next_checkpoint() -> None:
        node.log.applied_revision += 1
        await node.checkpoints.write(report=False)

    # The loop pays for a fork, not for encoding the checkpoint (a few tenths of a second here, over a second at
    # 300k leases and 300k printers): on a quiet machine the longest stall is the fork's ~10 ms, on a loaded one
    # the machine's own noise.
    tries = stall_ratios(3, next_checkpoint, state, LEASES + 10, tmp_path)
    print("stall/on-the-loop:", [f"{s * 1000:.0f}/{e * 1000:.0f} ms" for s, e in tries])
    assert min(stall / encode for stall, encode in tries) < 0.5, [f"{s * 1000:.0f}/{e * 1000:.0f} ms" for s, e in tries]


async def sent_to_peer(node: TriadNode) -> bytes:
    """What this member streams to a peer that asks for its checkpoint."""
    copy = await node.checkpoints.open_for_peer()
    return b"".join([piece async for piece in copy.chunks()])


def test_the_checkpoint_sent_to_a_peer_is_produced_without_stalling_the_loop(tmp_path, large_state):
    state = large_state
    node = member(tmp_path, state, applied_revision=10)
    node.log.applied_revision = 77  # and no checkpoint file yet: one is written first

    expected, data, _ = asyncio.run(while_changing(lambda: sent_to_peer(node), state, 2 * LEASES))

    sent = decode_checkpoint(data)
    assert sent.revision == 77 and sent.state.snapshot_bytes() == expected

    async def written_and_sent() -> bytes:
        node.checkpoint_file.unlink()
        return await sent_to_peer(node)

    tries = stall_ratios(3, written_and_sent, state, 2 * LEASES + 10, tmp_path)
    print("stall/on-the-loop:", [f"{s * 1000:.0f}/{e * 1000:.0f} ms" for s, e in tries])
    assert min(stall / encode for stall, encode in tries) < 0.5, [f"{s * 1000:.0f}/{e * 1000:.0f} ms" for s, e in tries]


def test_a_checkpoint_is_a_state_snapshot_file_and_a_restarted_member_recovers_the_same_state_with_shared_values(
    tmp_path,
):
    state = site_state(50, 50)
    node = member(tmp_path, state, applied_revision=0)
    node.log.applied_revision = 42

    asyncio.run(node.checkpoints.write(report=False))

    data = node.checkpoint_file.read_bytes()
    assert node.checkpoint_file.name == data_directory.TRIAD_CHECKPOINT.name == "triad-state.snapshot"
    revision, _ = decode_snapshot_file(data)  # the standalone server's snapshot format
    assert revision == 42
    restarted = read_checkpoint(node.checkpoint_file)
    assert restarted is not None and restarted.revision == 42
    assert same_state(restarted.state, state)
    # Loaded by the standalone's path: the leases share one product name and one client record per holder.
    leases = list(restarted.state.leases.values())
    assert len({id(lease.product) for lease in leases}) == 1
    holders = {(lease.client.host, lease.client.user) for lease in leases}
    assert len({id(lease.client) for lease in leases}) == len(holders)


def test_a_checkpoint_is_loaded_sharing_each_records_values_once_with_its_list_orders(tmp_path, monkeypatch):
    """Decoding the file shares the records' values as it builds them (a large state's records are columns over
    tables of their values, `store.record_columns`); loading the state must not share them all again (a pass
    over every record: ~1 s at 300,000 leases and printers), and takes the list orders the file holds instead of
    sorting every record again."""
    state = site_state(1500, 1500)
    write_checkpoint(tmp_path / "member.snapshot", 7, state)
    shared = {"leases": 0}
    share_leases = ValuePool.share_leases

    def counting(pool: ValuePool, leases: Any) -> None:
        leases = list(leases)
        shared["leases"] += len(leases)
        share_leases(pool, leases)

    monkeypatch.setattr(ValuePool, "share_leases", counting)
    sorted_again = {"times": 0}
    of = Listings.of.__func__  # type: ignore[attr-defined]

    def counting_of(cls: type[Listings], *records: Any) -> Listings:
        sorted_again["times"] += 1
        return of(cls, *records)

    monkeypatch.setattr(Listings, "of", classmethod(counting_of))

    loaded = read_checkpoint(tmp_path / "member.snapshot")

    assert loaded is not None and same_state(loaded.state, state)
    assert shared["leases"] == 0
    assert sorted_again["times"] == 0
    leases = list(loaded.state.leases.values())
    assert len({id(lease.product) for lease in leases}) == len({lease.product for lease in leases})
    holders = {(lease.client.host, lease.client.user) for lease in leases}
    assert len({id(lease.client) for lease in leases}) == len(holders)


def test_a_member_with_an_earlier_versions_json_checkpoint_starts_from_it_and_rewrites_it_once(tmp_path):
    state = site_state(20, 20)
    data = tmp_path / "data"
    data.mkdir()
    config = member(tmp_path, state, 0).config
    (data / data_directory.TRIAD_CONFIG.name).write_bytes(msgspec.json.encode(config))
    earlier = data / data_directory.TRIAD_CHECKPOINT_JSON.name
    earlier.write_bytes(b'{"revision":314,"snapshot":' + state.snapshot_bytes() + b"}")
    path = data / data_directory.TRIAD_CHECKPOINT.name

    server = LicenseServer(Config(data_dir=data))
    server.open()  # what `licentia serve` does first
    try:
        assert server.triad is not None and server.triad.log.applied_revision == 314
        assert same_state(server.state, state)
    finally:
        asyncio.run(server.stop())

    assert not earlier.exists()
    revision, _ = decode_snapshot_file(path.read_bytes())
    assert revision == 314
    again = read_checkpoint(path, earlier)  # the next start reads the new file
    assert again is not None and again.revision == 314 and same_state(again.state, state)
    # A peer of an earlier version sends JSON: that is read too.
    from_old_peer = decode_checkpoint(b'{"revision":9,"snapshot":' + state.snapshot_bytes() + b"}")
    assert from_old_peer.revision == 9 and same_state(from_old_peer.state, state)


def test_a_peer_is_sent_the_checkpoint_file_as_it_was_when_asked_signed_over_exactly_what_it_gets(tmp_path):
    state = site_state(30, 30)
    node = member(tmp_path, state, applied_revision=0)
    node.log.applied_revision = 5

    async def main() -> tuple[CheckpointCopy, bytes, bytes]:
        await node.checkpoints.write(report=False)
        copy = await node.checkpoints.open_for_peer()
        on_disk = node.checkpoint_file.read_bytes()
        assert state.apply(checkout(10_000), time.time()).ok
        node.log.applied_revision = 6
        await node.checkpoints.write(report=False)  # replaces the file while the copy is being sent
        return copy, on_disk, b"".join([piece async for piece in copy.chunks()])

    copy, on_disk, sent = asyncio.run(main())

    assert sent == on_disk and copy.size == len(sent)
    assert decode_checkpoint(sent).revision == 5
    assert decode_checkpoint(node.checkpoint_file.read_bytes()).revision == 6
    assert copy.file.closed
    # The signature over the file read piece by piece is the one over its bytes (what the peer checks).
    with node.checkpoint_file.open("rb") as file:
        again = CheckpointCopy(file)
        signature = again.signature("s" * 32, "m" * 64, 200)
        assert signature == peer_auth.answer_signature("s" * 32, "m" * 64, 200, file.read())


@pytest.mark.skipif(not os.access(ETCD, os.X_OK), reason="etcd-server is not installed")
def test_a_checkpoint_is_written_by_a_child_while_the_etcd_client_runs_grpcs_threads(tmp_path):
    """In a process of its own (gRPC is set up at import): an etcd member, a client watching and writing,
    and forked checkpoints in between; every child must write its file (gRPC's fork handlers aborted them)."""
    script = textwrap.dedent(f"""
        import asyncio, sys
        from pathlib import Path
        sys.path.insert(0, {str(Path(__file__).parents[1])!r})
        from harness import free_port
        from licentia.cluster.etcd_client import EtcdClient, EtcdUnavailable
        from licentia.cluster.etcd_member import EtcdMember, EtcdPeer, EtcdTiming
        from licentia.cluster.triad_checkpoint import read_checkpoint, write_checkpoint_forked
        from licentia.cluster.triad_tls import ensure_member_tls
        from licentia.core.state import LicenseState

        async def main():
            root = Path({str(tmp_path)!r})
            peer = EtcdPeer("lic-a", "127.0.0.1", free_port(), free_port())
            tls = ensure_member_tls(root / "tls", "s" * 32, "t", "lic-a", "127.0.0.1")
            etcd = EtcdMember(root / "etcd", peer, [peer], "c", root / "tls", timing=EtcdTiming(30, 300),
                              binary={ETCD!r})
            await etcd.start()
            try:
                async with EtcdClient(peer.client_endpoint, tls, timeout=2.0) as client:
                    for _ in range(150):
                        try:
                            await client.put(b"k", b"v")
                            break
                        except EtcdUnavailable:
                            await asyncio.sleep(0.1)

                    async def watch():
                        async for _ in client.watch(b"k", 1):
                            pass

                    watching = asyncio.create_task(watch())
                    for n in range(10):
                        await write_checkpoint_forked(root / "cp", n, LicenseState())
                        assert read_checkpoint(root / "cp").revision == n
                        await client.put(b"k", str(n).encode())
                    watching.cancel()
            finally:
                await etcd.stop()
            print("all written")

        asyncio.run(main())
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0 and "all written" in done.stdout, done.stderr[-3000:]


def test_the_watchdog_leaves_the_apply_loop_alone_while_it_fetches_a_peers_checkpoint(tmp_path):
    """A large checkpoint takes seconds to arrive: restarting the apply loop then cancelled every fetch
    (seen at 300k leases: a member behind the compaction never caught up)."""

    async def main() -> None:
        node = member(tmp_path, LicenseState(), applied_revision=5)
        node.election.view = SimpleNamespace(log_revision=500)  # type: ignore[assignment]
        fetching = asyncio.create_task(asyncio.sleep(60))
        node._tasks["apply"] = fetching
        now = asyncio.get_running_loop().time()
        node.log.last_applied_at = node.watchdog.behind_since = now - 10
        node.log.fetching_checkpoint = True
        node.watchdog_loop.check_apply(now)
        assert node._tasks["apply"] is fetching and not fetching.cancelled()
        assert node.watchdog.apply_healthy
        node.log.fetching_checkpoint = False  # a loop that makes no progress otherwise is still restarted
        node.watchdog_loop.check_apply(now + 10)
        restarted = node._tasks["apply"]
        assert restarted is not fetching and not node.watchdog.apply_healthy
        for task in (fetching, restarted):
            task.cancel()
        await asyncio.gather(fetching, restarted, return_exceptions=True)

    asyncio.run(main())


def test_the_serving_member_forks_its_own_checkpoint_only_when_none_was_taken_for_three_intervals(tmp_path,
                                                                                                 monkeypatch):
    """The member serving the clients takes a standby's newer checkpoint; with none to take (the standbys are away)
    it writes its own, by a fork, only once its last checkpoint is SERVING_FORKS_AFTER_S old."""
    from licentia.cluster.triad import SERVING_FORKS_AFTER_S

    node = member(tmp_path, LicenseState(), applied_revision=5)
    node.log.applied_revision = 9
    events: list[str] = []
    to_take: list[int | None] = []

    async def adopt_from_peer() -> int | None:
        taken = to_take.pop(0)
        events.append(f"took {taken}" if taken is not None else "none to take")
        if taken is not None:
            node.log.checkpointed(taken)
        return taken

    async def write(report: bool = True) -> None:
        events.append("wrote its own")
        node.log.checkpointed(node.log.applied_revision)

    monkeypatch.setattr(node.checkpoints, "adopt_from_peer", adopt_from_peer)
    monkeypatch.setattr(node.checkpoints, "write", write)
    monkeypatch.setattr(node, "is_serving", lambda: True)

    async def main() -> None:
        now = asyncio.get_running_loop().time()
        node._checkpoint_at = now
        to_take.extend([7, None])
        await node._checkpoint_turn()  # a standby's newer one: taken
        await node._checkpoint_turn()  # none to take, its last one is recent: nothing written
        node._checkpoint_at = now - SERVING_FORKS_AFTER_S - 1
        to_take.append(None)
        await node._checkpoint_turn()  # none to take, its last one is old: it writes its own
        node.log.applied_revision = 12
        monkeypatch.setattr(node, "is_serving", lambda: False)
        await node._checkpoint_turn()  # a standby writes its own, never takes one

    asyncio.run(main())
    assert events == ["took 7", "none to take", "none to take", "wrote its own", "wrote its own"]
    assert node.log.checkpointed_revision == 12
