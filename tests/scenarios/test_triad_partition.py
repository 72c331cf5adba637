"""A triad split by the network: the primary and the secondary lose each other but both still reach the tertiary.

Each member runs in its own Linux network namespace (harness `NetnsLab`), on a
bridge the test process sits on too, so only the primary-secondary link is cut
(a blackhole route in each of the two namespaces) while every member still
reaches the tertiary and the test still reaches every member. The rule: the
primary reaches the tertiary, so it stays (or becomes) the active member; the
secondary never serves meanwhile; no epoch is served by two members; and every
grant a client was told about is still held once the link is back.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import ROLES, Issuer, NetnsLab, TriadCluster
from triad_support import (
    SEATS,
    Background,
    ServingSampler,
    TriadClient,
    admin_get,
    checkout,
    held_leases,
    install_licenses,
    licenses,
    wait_for,
    wait_same_state,
)

LOAD = "LoadStudio"
# Enough that the background load (~30 checkouts/s, none returned) cannot use them all, however long a
# takeover takes on a loaded CI machine: a 409 there would be the test running dry, not a fault.
LOAD_SEATS = 20_000


@pytest.fixture
def netns_triad(lab: NetnsLab, tmp_path: Path, issuer: Issuer) -> Iterator[TriadCluster]:
    cluster = TriadCluster(tmp_path / "triad", issuer, netns=lab)
    try:
        yield cluster.start()
    finally:
        cluster.stop()


def reachable(cluster: TriadCluster, role: str) -> dict[str, bool]:
    view = admin_get(cluster.servers[role], "/api/v1/admin/relationship", timeout=2)
    return {m["name"]: m["reachable"] for m in view["members"] if m["name"] != role}


def assert_redirects_or_refuses(cluster: TriadCluster, role: str, tries: int = 5) -> None:
    """Checkouts sent to `role` are never granted there: 307 to the primary, or 503."""
    primary_url = cluster.servers["primary"].url
    for n in range(tries):
        answer = checkout(cluster.servers[role], request_id=f"at-{role}-{n}-{time.monotonic_ns()}", timeout=5)
        assert answer.status_code in (307, 503), answer.text
        if answer.status_code == 307:
            assert answer.headers["location"].startswith(primary_url), answer.headers["location"]
        else:
            assert answer.json()["error"]["code"] in ("no_active_server", "unavailable"), answer.text
        time.sleep(0.1)


def assert_every_grant_held(cluster: TriadCluster, client: TriadClient, earlier: list[str], ids: dict) -> None:
    state = wait_same_state(cluster, timeout=15)
    granted = {grant.lease_id for grant in client.grants}
    assert len(granted) == len(client.grants), "a request id was granted two different leases"
    assert set(state["leases"]) == granted | set(earlier)
    for product in (SEATS, LOAD):
        in_use = sum(1 for lease in state["leases"].values() if lease["product"] == product)
        assert state["licenses"][ids[product]]["used"] == in_use


def test_primary_cut_off_from_the_secondary_stays_active_through_the_tertiary(lab, netns_triad, issuer):
    cluster = netns_triad
    ids = install_licenses(cluster, issuer, seats=5, **{LOAD: LOAD_SEATS})
    earlier = [checkout(cluster.servers["primary"], request_id=f"early-{n}").json()["lease_id"] for n in range(2)]
    client = TriadClient(cluster, product=LOAD)
    load = Background(lambda: (client.checkout(), time.sleep(0.03)))
    sampler = ServingSampler(cluster)
    try:
        time.sleep(0.5)
        lab.cut("primary", "secondary")
        wait_for(lambda: reachable(cluster, "primary") == {"secondary": False, "tertiary": True}, 10,
                 what="the primary reaching only the tertiary")
        wait_for(lambda: reachable(cluster, "secondary")["primary"] is False, 10,
                 what="the secondary losing the primary")
        cut_grants = len(client.grants)
        deadline = time.monotonic() + 6 * cluster.active_ttl_s
        while time.monotonic() < deadline:  # several lease lifetimes
            assert_redirects_or_refuses(cluster, "secondary", tries=1)
            assert_redirects_or_refuses(cluster, "tertiary", tries=1)
        assert len(client.grants) > cut_grants, "nothing was granted while the link was cut"
        assert wait_for(lambda: cluster.active() == "primary", 5, what="the primary serving") is True
    finally:
        load.stop()
        sampler.stop()
        client.close()
    sampler.assert_no_epoch_served_by_two()
    assert sampler.named_active() == {"primary"}, "a member other than the primary was named active"
    assert sampler.served_epochs()["secondary"] == set()
    assert {grant.answered_by for grant in client.grants} == {"primary"}

    lab.heal("primary", "secondary")
    wait_for(lambda: all(all(reachable(cluster, role).values()) for role in ROLES), 10, what="the link back")
    assert cluster.wait_active("primary", timeout=10) == "primary"
    assert_every_grant_held(cluster, client, earlier, ids)


def test_returning_primary_cut_off_from_the_secondary_takes_over_through_the_tertiary(lab, netns_triad, issuer):
    cluster = netns_triad
    ids = install_licenses(cluster, issuer, seats=5, **{LOAD: LOAD_SEATS})
    primary, secondary = cluster.servers["primary"], cluster.servers["secondary"]
    earlier = [checkout(primary, request_id=f"early-{n}").json()["lease_id"] for n in range(2)]
    primary.kill()
    cluster.wait_active("secondary", timeout=10)
    epoch_secondary = admin_get(secondary, "/api/v1/admin/relationship")["epoch"]
    earlier += [checkout(secondary, request_id=f"failover-{n}").json()["lease_id"] for n in range(2)]

    client = TriadClient(cluster, product=LOAD)
    load = Background(lambda: (client.checkout(), time.sleep(0.03)))
    sampler = ServingSampler(cluster)
    try:
        time.sleep(0.3)
        lab.cut("primary", "secondary")
        primary.start()
        # The returning primary catches up through the tertiary's etcd, then takes the election over.
        assert cluster.wait_active("primary", timeout=45) == "primary"
        epoch_primary = admin_get(primary, "/api/v1/admin/relationship")["epoch"]
        assert epoch_primary > epoch_secondary
        wait_for(lambda: reachable(cluster, "primary") == {"secondary": False, "tertiary": True}, 10,
                 what="the primary reaching only the tertiary")
        # The secondary hears of the takeover through the tertiary and stops serving.
        wait_for(lambda: not admin_get(secondary, "/api/v1/admin/relationship")["serving"], 10,
                 what="the secondary no longer serving")
        assert_redirects_or_refuses(cluster, "secondary")
        time.sleep(3 * cluster.active_ttl_s)
        assert wait_for(lambda: cluster.active() == "primary", 5, what="the primary serving") is True
        assert admin_get(primary, "/api/v1/admin/relationship")["epoch"] == epoch_primary
    finally:
        load.stop()
        sampler.stop()
        client.close()
    sampler.assert_no_epoch_served_by_two()
    after_takeover = [g for g in client.grants if g.answered_by == "primary"]
    assert after_takeover, "the primary granted nothing after it took over"

    lab.heal("primary", "secondary")
    assert cluster.wait_active("primary", timeout=10) == "primary"
    assert_every_grant_held(cluster, client, earlier, ids)
    assert licenses(primary)[ids[SEATS]]["used"] == 4
    assert set(held_leases(secondary)) >= set(earlier)
