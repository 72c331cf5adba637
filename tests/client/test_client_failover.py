"""The SDK against a real triad: it learns the members from one address, fails over when the active
member is killed or hangs, starts from its cached directory while its only configured server is down,
keeps leases across a failover without taking a second seat, and the CLI fails over too.

Every server here is a real `licentia serve` process (tests/harness.py); nothing is mocked.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from client_support import (
    IDENTITY,
    PRINTS,
    SEATS,
    RecordingTransport,
    admin_get,
    install_on_triad,
    license_used,
)
from harness import ROLES

from licentia.client import AsyncLicenseClient, LicenseClient, ServerUnavailable
from licentia.grants import unverified_key_id

# A failover is the active record running out (0.8 s) plus an election; a few seconds is plenty.
FAILOVER_BUDGET_S = 4.0


def urls(cluster) -> dict[str, str]:
    return {role: cluster.servers[role].url for role in ROLES}


def server_key_id(server) -> str:
    return admin_get(server, "/api/v1/server")["grant_key_id"]


def test_async_client_given_one_address_learns_the_triad_and_survives_killing_the_active(start_triad, issuer, tmp_path):
    cluster = start_triad()
    install_on_triad(cluster, issuer)
    members = urls(cluster)
    graced: list[tuple[str, float]] = []

    async def scenario() -> None:
        async with AsyncLicenseClient(
            members["secondary"], cache_dir=tmp_path / "cache", on_grace=lambda *args: graced.append(args), **IDENTITY
        ) as client:
            assert client.directory.candidates() == [members["secondary"]]
            first = await client.print_check(PRINTS, "P1")
            assert first["granted"] is True and "offline" not in first
            # One answer (a 307 from the secondary, then the primary's) taught it the whole triad.
            assert sorted(client.directory.candidates()) == sorted(members.values())
            assert client.directory.active == members["primary"]
            assert client.directory.relationship == cluster.name

            cluster.servers["primary"].kill()  # SIGKILL
            started = time.monotonic()
            after = await client.print_check(PRINTS, "P1")
            elapsed = time.monotonic() - started
            assert after["granted"] is True and "offline" not in after, after
            assert elapsed < FAILOVER_BUDGET_S, f"the first request after the kill took {elapsed:.2f}s"
            assert client.directory.active == members["secondary"]
            # The grant came from the new active member, signed with its own key, which the client trusts.
            assert unverified_key_id(after["grant"]["token"]) == server_key_id(cluster.servers["secondary"])
            assert client.grace_left(PRINTS) > 71 * 3600

            for n in range(5):  # and it keeps working, straight to the new active member
                started = time.monotonic()
                again = await client.print_check(PRINTS, f"P{n}")
                assert again["granted"] is True and "offline" not in again
                assert time.monotonic() - started < 1.0
        assert graced == [], "no grace was needed: a member took over"

    asyncio.run(scenario())


def test_sync_client_leaves_a_hung_active_member_within_its_request_timeout(start_triad, issuer, tmp_path):
    cluster = start_triad()
    install_on_triad(cluster, issuer)
    members = urls(cluster)
    with LicenseClient(members["primary"], cache_dir=tmp_path / "cache", **IDENTITY) as client:
        assert "offline" not in client.print_check(PRINTS, "P1")
        assert sorted(client.aio.directory.candidates()) == sorted(members.values())
        pid = cluster.servers["primary"].process.pid
        os.kill(pid, signal.SIGSTOP)  # a hung host: the port still accepts connections, nothing answers
        try:
            started = time.monotonic()
            after = client.print_check(PRINTS, "P1")
            elapsed = time.monotonic() - started
            assert after["granted"] is True and "offline" not in after, after
            # One request timeout (1 s) on the hung member, then the secondary, which took over meanwhile.
            assert elapsed < FAILOVER_BUDGET_S, f"took {elapsed:.2f}s"
            assert client.aio.directory.active == members["secondary"]
            recorder = RecordingTransport(client.aio._http._transport)
            client.aio._http._transport = recorder
            assert "offline" not in client.print_check(PRINTS, "P2")
            asked = {attempt[0] for attempt in recorder.attempts}
            assert asked == {members["secondary"]}, "the hung member is not tried first any more"
        finally:
            os.kill(pid, signal.SIGCONT)
        # The primary takes over again once it runs; a 307 from the secondary sends the client there.
        cluster.wait_active("primary")
        assert "offline" not in client.print_check(PRINTS, "P3")
        assert client.aio.directory.active == members["primary"]


def test_client_started_while_its_only_server_is_down_finds_the_others_in_its_cache(start_triad, issuer, tmp_path):
    cluster = start_triad()
    install_on_triad(cluster, issuer)
    members = urls(cluster)
    cache = tmp_path / "cache"
    with LicenseClient(members["primary"], cache_dir=cache, **IDENTITY) as first:
        assert "offline" not in first.print_check(PRINTS, "P1")
    [cached] = cache.glob("servers-*.json")
    saved = json.loads(cached.read_text())
    assert sorted(saved["members"]) == sorted(members.values())
    assert "grant_keys" not in saved, "the keys that judge grace tokens are never kept in the user's cache"

    cluster.servers["primary"].kill()
    # Without the cache, the one address it was given is all it knows: nothing answers.
    with (
        LicenseClient(members["primary"], cache_dir=tmp_path / "empty", **IDENTITY) as blind,
        pytest.raises(ServerUnavailable),
    ):
        blind.print_check(PRINTS, "P1")

    with LicenseClient(members["primary"], cache_dir=cache, **IDENTITY) as restarted:
        started = time.monotonic()
        answer = restarted.print_check(PRINTS, "P1")
        assert answer["granted"] is True and "offline" not in answer, answer
        assert time.monotonic() - started < FAILOVER_BUDGET_S
        assert restarted.aio.directory.active == members["secondary"]
    assert json.loads(cached.read_text())["active"] == members["secondary"], "the cache follows the failover"


def test_leases_survive_a_failover_without_taking_a_second_seat(start_triad, issuer, tmp_path):
    cluster = start_triad()
    license_id = install_on_triad(cluster, issuer, seats=3)[SEATS]
    members = urls(cluster)
    # No background renewal during the test: renew_now() is the renewal under test.
    with LicenseClient(
        members["secondary"], cache_dir=tmp_path / "cache", heartbeat_interval_s=3600, **IDENTITY
    ) as client:
        a = client.checkout(SEATS, request_id="seat-a")
        b = client.checkout(SEATS, request_id="seat-b")
        assert a["repeated"] is False and b["repeated"] is False
        assert license_used(cluster.servers["primary"], license_id) == 2
        before = {lease_id: held.expires_at for lease_id, held in client.aio.leases.items()}
        assert set(before) == {a["lease_id"], b["lease_id"]}

        cluster.servers["primary"].kill()
        client.renew_now()  # goes to the new active member, through the failover
        assert client.aio.directory.active == members["secondary"]
        renewed = {lease_id: held.expires_at for lease_id, held in client.aio.leases.items()}
        assert set(renewed) == set(before), "the same two leases, none re-taken"
        assert all(renewed[lease_id] > before[lease_id] for lease_id in before), (before, renewed)

        new_active = cluster.servers[cluster.wait_active()]
        assert new_active is cluster.servers["secondary"]
        assert license_used(new_active, license_id) == 2
        held = {lease["lease_id"] for lease in admin_get(new_active, "/api/v1/admin/leases")["leases"]}
        assert held == set(before)

        again = client.checkout(SEATS, request_id="seat-a")  # a retry after the failover
        assert again["lease_id"] == a["lease_id"] and again["repeated"] is True
        assert license_used(new_active, license_id) == 2
        assert set(client.aio.leases) == set(before)


def test_cli_print_check_fails_over_to_the_next_server(start_triad, issuer, tmp_path):
    cluster = start_triad()
    install_on_triad(cluster, issuer)
    members = urls(cluster)
    cluster.servers["primary"].kill()
    env = {**os.environ, "LICENTIA_CLIENT_CACHE": str(tmp_path / "cli-cache")}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "licentia",
            "client",
            "print-check",
            "--product",
            PRINTS,
            "--printer",
            "P1",
            "--server",
            f"{members['primary']},{members['secondary']}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["granted"] is True and "offline" not in answer
    assert unverified_key_id(answer["grant"]["token"]) == server_key_id(cluster.servers["secondary"])
    [cached] = Path(env["LICENTIA_CLIENT_CACHE"]).glob("servers-*.json")
    assert json.loads(cached.read_text())["active"] == members["secondary"]


def test_a_member_that_timed_out_rests_while_the_others_say_wait(start_triad, issuer, tmp_path):
    """The tertiary alone never serves: it answers 307 (to the hung primary), then 503, until the
    client's `failover_wait_s` is spent and it answers on its grace token. Meanwhile the hung primary
    is not asked again before it has rested one request timeout, so not every pass costs a timeout."""
    cluster = start_triad()
    install_on_triad(cluster, issuer)
    members = urls(cluster)
    timeout, wait = 0.3, 2.5

    async def scenario() -> None:
        async with AsyncLicenseClient(
            members["primary"], cache_dir=tmp_path / "cache", request_timeout=timeout, failover_wait_s=wait, **IDENTITY
        ) as client:
            assert "offline" not in await client.print_check(PRINTS, "P1")
            recorder = RecordingTransport(client._http._transport)
            client._http._transport = recorder
            cluster.servers["secondary"].kill()
            pid = cluster.servers["primary"].process.pid
            os.kill(pid, signal.SIGSTOP)
            try:
                started = time.monotonic()
                answer = await client.print_check(PRINTS, "P1")
                elapsed = time.monotonic() - started
            finally:
                os.kill(pid, signal.SIGCONT)
            # No member could serve within `failover_wait_s`: the grant of the first check carries it.
            assert answer["offline"] is True and answer["granted"] is True
            assert wait <= elapsed < wait + timeout + 1.0
            checks = [a for a in recorder.attempts if a[1] == "/api/v1/print-checks"]
            to_primary = [a for a in checks if a[0] == members["primary"]]
            assert to_primary and all(a[4] == "ReadTimeout" for a in to_primary)
            assert any(a[0] == members["tertiary"] and a[4] in ("307", "503") for a in checks)
            starts = [a[2] for a in to_primary]
            spacing = [later - earlier for earlier, later in itertools.pairwise(starts)]
            assert all(gap >= 2 * timeout - 0.02 for gap in spacing), spacing
            assert len(to_primary) <= 1 + elapsed / (2 * timeout)

    asyncio.run(scenario())
