"""The time a triad member stamps the batches it proposes with (no I/O).

While it serves, a member stamps commands with the time it started serving, advanced by its own
monotonic clock: a wall clock stepped while it serves moves no lease. A monotonic clock that jumps
(forwards by more than CLOCK_JUMP_S between two ticks of the clock watch, or backwards) moves no command
time either, and every lease is then honoured for one more of its TTL, as after a takeover
(`ReclaimExpired.honour_from`). While it does not serve, it uses the wall clock as it reads now, never
behind the state's time floor.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

log = logging.getLogger("licentia.triad")

CLOCK_JUMP_S = 3.0  # the clock watch ticks every 0.1 s; a tick this late means a stop or a clock jump


class CommandClock:
    """Command times of one member, framed by the claim it serves under."""

    def __init__(self, triad: str, claim: Callable[[], int | None], wall: Callable[[], float]) -> None:
        """`claim`: the election claim this member holds now (None: none); `wall`: the wall clock as it reads
        now, never behind the state's time floor."""
        self.triad = triad
        self._claim = claim
        self._wall = wall
        self.frame_claim: int | None = None  # the claim its command times were set up for
        self.honour_from = 0.0  # command time from which leases are honoured for one more TTL (takeover, jump)
        self._base = 0.0  # command time when it started serving, advanced by the monotonic clock
        self._base_mono = 0.0
        self._tick_command_time = 0.0  # the command time at the clock watch's last tick
        self._tick_mono = 0.0

    def started(self, mono: float) -> None:
        self._tick_mono = mono

    def in_frame(self) -> bool:
        """Whether this member still holds the claim its command times were set up for."""
        return self.frame_claim is not None and self.frame_claim == self._claim()

    def command_time(self, mono: float) -> float:
        """The time for a command proposed at monotonic time `mono` (see the module's text)."""
        self.watch(mono)
        if self.in_frame():
            return self._base + (mono - self._base_mono)
        # The wall clock as it reads now, not the server's never-backwards `now()`: a clock that ran ahead
        # and was put back (seed 3008: +120 s for 6 s) must not stamp this member's next claim, and with it
        # every lease it grants, two minutes ahead. The state's time floor keeps the log's times in order.
        return self._wall()

    def watch(self, mono: float) -> None:
        """One tick of the clock watch (also run at every command time)."""
        gap = mono - self._tick_mono
        if gap > CLOCK_JUMP_S or gap < -0.05:
            self._jumped(gap, mono)
        self._tick_mono = mono
        if self.in_frame():
            self._tick_command_time = self._base + (mono - self._base_mono)

    def _jumped(self, gap: float, mono: float) -> None:
        """The watch slept far longer than it asked. A real stop that long would have cost this member its
        etcd lease (and its claim); if it still holds them, its monotonic clock jumped. Commands then go on
        from the time they had, not from the jump, and leases are honoured for a lease TTL as after a
        takeover, so no lease expires because of the jump."""
        if not self.in_frame():
            return
        log.warning(
            "Triad %s: this member's monotonic clock jumped by %+.1f s while it served; its command times go on "
            "from where they were, and every lease is honoured for one more of its TTL.",
            self.triad,
            gap,
        )
        self._base = self._tick_command_time
        self._base_mono = mono
        self.honour_from = self._base

    def frame(self, claim: int, mono: float) -> bool:
        """This member starts serving under `claim`: command times go on from the wall clock now, and leases
        that ran out during the change are honoured for one more TTL. False when it serves again under the
        claim its times were already set up for (its lease was unconfirmed for a moment): same times."""
        if claim == self.frame_claim:
            return False
        self.frame_claim = claim
        self._base = self._wall()
        self._base_mono = mono
        self._tick_command_time = self._base
        self.honour_from = self._base
        return True
