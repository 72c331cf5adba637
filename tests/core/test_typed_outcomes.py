"""Each command declares the type of its result (`Command[R]`), and applying it gives a result of that type:
the type checker relies on the declaration when callers read `outcome.result`, so the two must agree."""

from __future__ import annotations

from typing import get_args

import msgspec
import pytest
from state_sample import sample_script

from licentia.core import commands as c
from licentia.core.outcomes import Result
from licentia.core.state import HANDLERS, LicenseState

COMMANDS = get_args(c.AnyCommand)


def declared_result(kind: type) -> type:
    (base,) = kind.__orig_bases__
    return get_args(base)[0]


@pytest.mark.parametrize("kind", COMMANDS, ids=lambda kind: kind.__name__)
def test_every_command_declares_a_result_type_and_has_a_handler(kind):
    assert issubclass(declared_result(kind), Result)
    assert kind in HANDLERS


def test_the_apply_table_handles_exactly_the_commands():
    assert set(HANDLERS) == set(COMMANDS)


def test_each_applied_command_results_in_its_declared_type():
    state = LicenseState()
    kinds = set()
    for command, now in sample_script():
        outcome = state.apply(command, now)
        assert outcome.ok, outcome
        assert type(outcome.result) is declared_result(type(command)), type(command).__name__
        kinds.add(type(command))
    assert len(kinds) >= 10


def test_a_refusal_carries_no_result():
    outcome = LicenseState().apply(c.Checkin(lease_id="nobody"), 1.0)
    assert not outcome.ok and outcome.code == "lease_not_found" and not hasattr(outcome, "result")


def test_a_result_encodes_as_the_answer_the_api_always_gave():
    state = LicenseState()
    for command, now in sample_script()[:9]:
        state.apply(command, now)
    renewed = state.apply(c.Heartbeat(lease_ids=["L1", "gone"]), 1_700_000_100.0)
    assert renewed.ok
    assert msgspec.json.decode(msgspec.json.encode(renewed.result)) == {
        "renewed": {"L1": 1_700_000_100.0 + state.leases["L1"].ttl_s}, "expired": ["gone"], "denied": {},
    }
