"""The triad's pysyncobj node: sealed messages, and leadership transfers that can pass under load.

pysyncobj hands leadership over (Raft's TimeoutNow) only to a follower that holds every entry of the
leader's log, and its tick appends the commands queued since the last tick before it runs the tick
callbacks: under any load a callback always sees an entry the followers have not acknowledged yet,
so every transfer asked for from there is refused. `hand_over` therefore runs just before that
append, when the log holds only entries already sent (the triad sends each entry as it is appended)
and the followers' answers have usually arrived.

Once the TimeoutNow is sent the leader must stop growing its log, as Raft's transfer protocol
says: the target's election needs this member's vote, which goes only to a log at least as long as
its own. pysyncobj does not stop, so the node holds new commands back (they stay queued) until
leadership has moved and the new leader is known, or a short bound has passed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from pysyncobj import FAIL_REASON

from licentia.cluster.raft_cipher import SealedSyncObj


class TriadRaftNode(SealedSyncObj):
    def __init__(self, *args: Any, before_append: Callable[[], None], **kwargs: Any) -> None:
        self._before_append = before_append
        self._hold_until = 0.0
        super().__init__(*args, **kwargs)

    def hand_over(self, target: str, hold_s: float) -> bool:
        """Ask `target` ("host:port") to take Raft leadership now; only from `before_append`.

        Returns whether the request was sent (pysyncobj refuses one to a follower not fully caught
        up); if it was, new commands wait up to `hold_s` for the new leader.
        """
        sent: list[int] = []
        self.transferLeadership(target, callback=lambda _, error: sent.append(error))
        if sent != [FAIL_REASON.SUCCESS]:
            return False
        self._hold_until = time.monotonic() + hold_s
        return True

    def _checkCommandsToApply(self) -> None:
        self._before_append()
        if self._hold_until:
            if time.monotonic() < self._hold_until and (self._isLeader() or self._getLeader() is None):
                return
            self._hold_until = 0.0
        super()._checkCommandsToApply()
