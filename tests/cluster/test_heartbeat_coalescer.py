"""Heartbeats coalesced into one command: each request keeps its origin, and made-up lease ids stay out of it."""

from __future__ import annotations

import asyncio

import msgspec

from licentia.cluster.heartbeats import HeartbeatCoalescer
from licentia.core.commands import Command, Heartbeat, Renewal
from licentia.core.outcomes import Applied, Outcome, Renewals

HELD = {"L1", "L2"}


def test_unknown_lease_ids_are_answered_expired_but_only_the_first_is_journaled():
    sent: list[Command] = []

    async def execute(command: Command) -> Outcome:
        sent.append(command)
        assert isinstance(command, Heartbeat)
        renewed = {i: 1.0 for r in command.renewals for i in r.lease_ids if i in HELD}
        lost = [i for r in command.renewals for i in r.lease_ids if i not in HELD]
        return Applied(Renewals(renewed=renewed, expired=lost, denied={}))

    async def body() -> list[Outcome]:
        coalescer = HeartbeatCoalescer(execute, lambda: HELD)
        ghosts = [f"ghost-{n}" for n in range(1000)]
        return await asyncio.gather(
            coalescer.renew([*ghosts, "L1"], "10.0.0.5", ""),
            coalescer.renew(["L2", "L2"], "10.0.0.6", "ws6.corp.example"),
        )

    flooded, plain = asyncio.run(body())
    assert len(sent) == 1
    assert sent[0] == Heartbeat(renewals=[
        Renewal(["ghost-0", "L1"], "10.0.0.5", ""), Renewal(["L2"], "10.0.0.6", "ws6.corp.example"),
    ])
    assert flooded.result.renewed == {"L1": 1.0} and len(flooded.result.expired) == 1000
    assert msgspec.to_builtins(plain.result) == {"renewed": {"L2": 1.0}, "expired": [], "denied": {}}
