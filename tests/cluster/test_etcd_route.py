"""A triad member whose own etcd member cannot reach etcd's leader talks to etcd through another member's
etcd, and back once its own answers again (`cluster.etcd_route`): each switch is logged as a sentence and
counted in /metrics (`licentia_triad_etcd_route_switches_total`, which passes `promtool check metrics`)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

from metrics_lint import promtool_problems
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from licentia.api.loop_lateness import LoopLateness
from licentia.api.metrics import LicentiaCollector
from licentia.cluster import etcd_route
from licentia.cluster.etcd_client import EtcdUnavailable
from licentia.cluster.etcd_route import EtcdRoute
from licentia.cluster.relationship_status import TriadMemberStatus, TriadStatus


class FakeEtcdClient:
    """An etcd client whose reads are answered, or not, as the test says."""

    def __init__(self, answers: bool) -> None:
        self.answers = answers

    async def get(self, key: bytes, timeout: float | None = None) -> None:
        if not self.answers:
            raise EtcdUnavailable("no leader")

    async def status(self, timeout: float | None = None) -> Any:
        if not self.answers:
            raise EtcdUnavailable("no leader")
        return SimpleNamespace(leader_id=1)

    async def close(self) -> None:
        return None


def test_a_switch_to_another_members_etcd_and_back_is_counted_and_logged_as_a_sentence(caplog, monkeypatch):
    monkeypatch.setattr(etcd_route, "REPICK_EVERY_S", 0.0)
    monkeypatch.setattr(etcd_route, "BACK_EVERY_S", 0.0)
    own, other = FakeEtcdClient(answers=False), FakeEtcdClient(answers=True)
    changed: list[str | None] = []

    async def main() -> EtcdRoute:
        route = EtcdRoute("T1", own, {"s": other}, lambda: changed.append(route.via))  # type: ignore[arg-type]
        assert route.switches == {"another_member": 0, "own": 0}
        await route.failed()  # a keep-alive through its own etcd was not answered
        assert route.via == "s" and route.current is other
        await route.check()  # its own etcd still does not answer: it stays away
        own.answers = True
        await route.check()  # its own answers again: back
        assert route.via is None and route.current is own
        return route

    with caplog.at_level(logging.WARNING, logger="licentia.triad"):
        route = asyncio.run(main())

    assert route.switches == {"another_member": 1, "own": 1}
    assert changed == ["s", None]
    said = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("Triad T1: this member's etcd member cannot reach etcd's leader, but s's can") and
               m.endswith(".") for m in said), said
    assert any("reaches etcd's leader again; it talks to etcd through it again instead of through s's." in m
               for m in said), said


def triad_status(switches: dict[str, int]) -> TriadStatus:
    roles = {"a": "primary", "b": "secondary", "c": "tertiary"}
    return TriadStatus(
        name="T1", me="a", my_role="primary", active="a", epoch=1, serving=True, applied_index=10, commit_index=10,
        members=tuple(TriadMemberStatus(name=n, role=r, api_url=f"http://{n}:8470", raft_address=f"{n}:7000",
                                        active=n == "a", reachable=True, etcd_lease_alive=True, raft_leader=False,
                                        log_behind=0)
                      for n, r in roles.items()),
        active_until=None, has_quorum=True, in_sync_at=None, failovers_seen=0, etcd_restarts=0,
        watchdog_events={}, healthy=True, etcd_route_switches=switches,
    )


def test_the_route_switches_are_a_counter_in_metrics_that_promtool_accepts():
    status = triad_status({"another_member": 3, "own": 2})
    server: Any = SimpleNamespace(relation=SimpleNamespace(status=lambda: status), server_id="srv")
    collector = LicentiaCollector(server, {}, LoopLateness())

    class Relationship(Collector):
        def collect(self) -> Iterator[Any]:
            return collector._relationship_metrics(server, 0.0)

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Relationship())
    text = generate_latest(registry).decode()

    samples = {(s.name, s.labels.get("to")): s.value for family in text_string_to_metric_families(text)
               for s in family.samples}
    assert samples[("licentia_triad_etcd_route_switches_total", "another_member")] == 3
    assert samples[("licentia_triad_etcd_route_switches_total", "own")] == 2
    assert promtool_problems(text) == ""
