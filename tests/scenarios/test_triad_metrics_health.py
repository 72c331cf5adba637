"""Metrics and health endpoints of a real triad: every member answers for itself.

/health/active is 200 only on the member that serves licenses, so a load
balancer in front of all three sends clients to it; /metrics on each member
shows its own role, whether it is active, which peers it reaches, how far
behind it is, and the failovers it saw. After the primary is SIGKILLed the
secondary takes over: its /health/active turns 200 and it counts a failover.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from harness import ROLES, Issuer, TriadCluster
from metrics_lint import promtool_problems
from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(cluster: TriadCluster, role: str) -> Samples:
    answer = httpx.get(f"{cluster.servers[role].url}/metrics", timeout=5)
    assert answer.status_code == 200, answer.text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def health(cluster: TriadCluster, role: str, what: str) -> int:
    return httpx.get(f"{cluster.servers[role].url}/health/{what}", timeout=5).status_code


def wait_for(condition: Callable[[], Any], timeout: float = 15.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = condition()
        except (httpx.HTTPError, AssertionError) as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(0.05)
    raise AssertionError(f"{what} not reached within {timeout}s (last: {last!r})")


def healthy_view(cluster: TriadCluster, role: str, active: str, peers_up: int) -> bool:
    """The member's metrics show the expected active member and peers, and it is in sync."""
    samples = scrape(cluster, role)
    return (
        value(samples, "licentia_active") == (1 if role == active else 0)
        and value(samples, "licentia_triad_member_active", member=active, role=active) == 1
        and value(samples, "licentia_triad_peers_reachable") == peers_up
        and value(samples, "licentia_triad_has_quorum") == 1
        and value(samples, "licentia_triad_sync_lag_entries") == 0
        and value(samples, "licentia_ready") == 1
    )


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TriadCluster]:
    """One triad for the module (forming one takes seconds): the first test only reads it, the second and
    last kills its primary."""
    triad = TriadCluster(tmp_path_factory.mktemp("metrics") / "triad", Issuer())
    try:
        yield triad.start()
    finally:
        triad.stop()


def test_each_member_reports_itself_and_only_the_active_one_says_active(cluster: TriadCluster):
    for role in ROLES:
        wait_for(lambda role=role: healthy_view(cluster, role, "primary", 2), what=f"{role} in sync")

    for role in ROLES:
        assert health(cluster, role, "live") == 200
        assert health(cluster, role, "ready") == 200
        assert health(cluster, role, "active") == (200 if role == "primary" else 503), role

        samples = scrape(cluster, role)
        info = {"type": "triad", "triad": cluster.name, "member": role, "role": role}
        assert value(samples, "licentia_relationship_info", **info) == 1, role
        assert value(samples, "licentia_active") == (1 if role == "primary" else 0)
        for peer in ROLES:
            if peer != role:
                assert value(samples, "licentia_triad_peer_reachable", peer=peer, role=peer) == 1, (role, peer)
        assert value(samples, "licentia_triad_peer_reachable", peer=role, role=role) is None
        assert value(samples, "licentia_triad_failovers_total") == 0
        assert value(samples, "licentia_triad_epoch") >= 1
        last_sync = value(samples, "licentia_triad_last_sync_timestamp_seconds")
        assert last_sync is not None and abs(time.time() - last_sync) < 5, (role, last_sync)
        applied = value(samples, "licentia_triad_applied_index")
        assert applied is not None and applied > 0

    # One member is the Raft leader (moved to the active member soon after an election); it knows how
    # far behind each peer is.
    def raft_leader() -> str | None:
        leaders = [role for role in ROLES if value(scrape(cluster, role), "licentia_triad_raft_leader") == 1]
        return leaders[0] if len(leaders) == 1 else None

    leader = wait_for(raft_leader, what="one etcd leader")

    def lags_known() -> bool:
        samples = scrape(cluster, leader)
        for peer in ROLES:
            lag = value(samples, "licentia_triad_replication_lag_entries", peer=peer, role=peer)
            assert (lag is None) if peer == leader else (lag is not None and lag >= 0), (leader, peer, lag)
        return True

    wait_for(lags_known, timeout=5, what="every peer's lag known to the etcd leader's member")
    for role in ROLES:  # the triad's own families (the leader's with per-peer lags) pass promtool's checks
        assert promtool_problems(httpx.get(f"{cluster.servers[role].url}/metrics", timeout=5).text) == "", role


def test_after_the_primary_is_killed_the_secondary_turns_active_and_counts_a_failover(cluster: TriadCluster):
    wait_for(lambda: healthy_view(cluster, "secondary", "primary", 2), what="secondary in sync")
    assert health(cluster, "secondary", "active") == 503

    cluster.servers["primary"].kill()  # SIGKILL

    wait_for(lambda: health(cluster, "secondary", "active") == 200, timeout=20, what="secondary active")
    assert health(cluster, "tertiary", "active") == 503
    for role in ("secondary", "tertiary"):
        # Two of three members: still a quorum, so both remain ready.
        wait_for(lambda role=role: healthy_view(cluster, role, "secondary", 1), what=f"{role} sees the takeover")
        assert health(cluster, role, "ready") == 200
        samples = scrape(cluster, role)
        assert value(samples, "licentia_triad_failovers_total") == 1, role
        assert value(samples, "licentia_triad_peer_reachable", peer="primary", role="primary") == 0
        assert value(samples, "licentia_triad_member_active", member="primary", role="primary") == 0
