"""The relationship's timeline: the role changes and lost or regained members this server saw, newest first.

The triad (`TriadNode._observe`, its watchdog) and the backup pair (`BackupLink`) write each such change to
the log as a sentence; they record the same change here, with its time, so the Redundancy page can show
"Failover to lic-b took 1.4 s" or "lic-c unreachable since 08:01:09" without reading the log. The record is
bounded (the newest `KEEP` events, in memory), and reading a page of it does no I/O.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Literal

RoleEventKind = Literal["active", "no_active", "failover", "unreachable", "reachable", "left"]

KEEP = 500  # events kept; older ones are dropped
MAX_PAGE = 100


@dataclass(frozen=True)
class RoleEvent:
    """One change as this server saw it. `text` is a sentence; `took_s` is a failover's duration."""

    seq: int
    at: float  # Unix time
    kind: RoleEventKind
    text: str
    member: str | None = None
    took_s: float | None = None

    def document(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RoleEventPage:
    events: list[RoleEvent]
    next: int | None  # pass as `before` for the page of older events; None: there is none
    unreachable_since: dict[str, float]  # members this server cannot reach now, since when

    def document(self) -> dict[str, Any]:
        return {
            "events": [event.document() for event in self.events],
            "next": self.next,
            "unreachable_since": dict(self.unreachable_since),
        }


class RoleEvents:
    """The newest role changes and member outages, with who is unreachable now and since when."""

    def __init__(self, keep: int = KEEP, clock: Callable[[], float] = time.time) -> None:
        self._events: deque[RoleEvent] = deque(maxlen=keep)
        self._seq = 0
        self._clock = clock
        self._unreachable: dict[str, float] = {}

    def record(
        self, kind: RoleEventKind, text: str, member: str | None = None, took_s: float | None = None
    ) -> RoleEvent:
        self._seq += 1
        event = RoleEvent(self._seq, self._clock(), kind, text, member, took_s)
        self._events.append(event)
        if member is not None and kind == "unreachable":
            self._unreachable.setdefault(member, event.at)
        elif member is not None and kind == "reachable":
            self._unreachable.pop(member, None)
        return event

    def unreachable_since(self, member: str) -> float | None:
        return self._unreachable.get(member)

    def forget_members(self) -> None:
        """The relationship ended: nobody is 'unreachable since' any more (the events stay)."""
        self._unreachable.clear()

    def page(self, limit: int = 20, before: int | None = None) -> RoleEventPage:
        """Up to `limit` events older than event `before` (all when None), newest first."""
        limit = max(1, min(limit, MAX_PAGE))
        chosen: list[RoleEvent] = []
        for event in reversed(self._events):
            if before is not None and event.seq >= before:
                continue
            if len(chosen) == limit:
                return RoleEventPage(chosen, chosen[-1].seq, dict(self._unreachable))
            chosen.append(event)
        return RoleEventPage(chosen, None, dict(self._unreachable))
