"""A triad's members take turns writing their checkpoints (`cluster.triad.first_checkpoint_after`)."""

from __future__ import annotations

import itertools

from licentia.cluster.triad import first_checkpoint_after

MEMBERS = ["primary", "secondary", "tertiary"]


def test_members_started_together_write_their_first_checkpoints_a_third_of_the_interval_apart() -> None:
    firsts = sorted(first_checkpoint_after(me, MEMBERS, 20.0) for me in MEMBERS)

    assert firsts[0] == 20.0  # none sooner than the interval
    assert [round(b - a, 6) for a, b in itertools.pairwise(firsts)] == [round(20.0 / 3, 6)] * 2
    assert firsts[-1] < 40.0  # each still writes one within two intervals of its start


def test_the_turn_follows_the_member_names_not_the_order_they_are_listed_in() -> None:
    assert first_checkpoint_after("tertiary", list(reversed(MEMBERS)), 30.0) == first_checkpoint_after(
        "tertiary", MEMBERS, 30.0) == 50.0  # third of three: 30 s + 2/3 of 30 s
