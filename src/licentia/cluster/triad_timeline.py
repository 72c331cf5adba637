"""What a triad member tells people about the triad's changes (no I/O): each change of the active member,
each failover with how long it took, and each member it stops or starts again reaching, as a log sentence
and an event on the Redundancy page's timeline (`role_events`)."""

from __future__ import annotations

import logging
import time

from licentia.cluster.role_events import RoleEvents

log = logging.getLogger("licentia.triad")


class ActiveTimeline:
    """The changes one member has seen: the active member (with failovers counted) and its reach of the others."""

    def __init__(self, triad: str, me: str, role: str, events: RoleEvents) -> None:
        self.triad = triad
        self.me = me
        self.role = role
        self.events = events
        self.failovers = 0
        self.last_active: str | None = None
        self._observed: tuple[str | None, int] = (None, 0)
        self._active_seen_at: float | None = None  # Unix time the active member was last seen active and reachable

    def observe(self, holder: str | None, epoch: int) -> None:
        """The election names `holder` (None: nobody) and the state's active record is in `epoch`: log every
        change as one sentence, and record it (a failover with how long it took)."""
        if (holder, epoch) == self._observed:
            return
        previous = self._observed[0]
        self._observed = (holder, epoch)
        events = self.events
        if holder is None:
            log.warning(
                "Triad %s: no member is active (%s's etcd lease is gone); license requests wait.",
                self.triad,
                previous or "the previous active member",
            )
            if previous is not None:
                events.record("no_active", f"No member is active: {previous}'s etcd lease is gone.", previous)
            return
        if holder == self.me:
            log.warning("Triad %s: this server (%s, %s) is active in epoch %d.", self.triad, holder, self.role, epoch)
        else:
            log.warning("Triad %s: %s is now active; this server (%s) redirects clients to it.", self.triad, holder,
                        self.me)
        last = self.last_active
        if last is not None and holder != last:
            self.failovers += 1
            took = time.time() - self._active_seen_at if self._active_seen_at is not None else None
            if took is not None:
                text = f"Failover to {holder} took {took:.1f} s, from when {last} was last seen active and reachable."
            else:
                text = f"Failover to {holder}; {last} is no longer active."
            events.record("failover", text, holder, round(took, 2) if took is not None else None)
        elif last != holder or previous is None:
            events.record("active", f"{holder} is active (epoch {epoch}).", holder)
        if last != holder:
            self._active_seen_at = time.time()
        self.last_active = holder

    def active_seen(self, holder: str | None, reaches: dict[str, bool], probed_at: float) -> None:
        """The election still names the member last seen active, and its API answered at `probed_at` (Unix
        time): a failover is timed from the last such moment."""
        active = self.last_active
        if active is not None and holder == active and reaches.get(active, True):
            self._active_seen_at = probed_at

    def reach_changed(self, before: dict[str, bool], now: dict[str, bool]) -> None:
        """Record each member this member stopped (or started again) reaching."""
        events = self.events
        for name, reached in now.items():
            if reached == before.get(name, True):
                continue
            if reached:
                since = events.unreachable_since(name)
                gone = f" after {time.time() - since:.0f} s" if since is not None else ""
                log.warning("Triad %s: %s can be reached again%s.", self.triad, name, gone)
                events.record("reachable", f"{name} can be reached again{gone}.", name)
            else:
                log.warning("Triad %s: %s cannot be reached from this member.", self.triad, name)
                events.record("unreachable", f"{name} cannot be reached from this server.", name)
