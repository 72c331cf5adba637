"""The state's fields are declared once (`licentia.core.state_data.StateData`): the snapshot, its restore and
the state's equality all come from that declaration, so a field cannot be left out of one of them.

Each test takes the list of fields from the declaration itself; `state_sample.sample_state` must set every one
of them to something other than its default, so a field added later fails here until the sample covers it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest
from state_sample import sample_state

from licentia.core.expiring import ExpiringSet
from licentia.core.lease_requests import LeaseRequests
from licentia.core.listing import GroupedIndex, SortedIndex
from licentia.core.state import LicenseState, Snapshot
from licentia.core.state_data import state_fields
from licentia.store.snapshot_file import decode_snapshot_file, snapshot_chunks

DATA = Path(__file__).parent / "data"


def test_the_sample_state_sets_every_declared_field():
    sample, fresh = sample_state(), LicenseState()
    left_default = [name for name in state_fields() if getattr(sample, name) == getattr(fresh, name)]
    assert state_fields() and not left_default, f"extend state_sample.sample_state to set {left_default}"


@pytest.mark.parametrize("encoding", ["json", "msgpack"])
def test_a_snapshot_restores_every_declared_field(encoding):
    sample = sample_state()
    if encoding == "json":
        snapshot = msgspec.json.decode(sample.snapshot_bytes(), type=Snapshot)
    else:
        snapshot = decode_snapshot_file(b"".join(snapshot_chunks(7, sample)))[1]
    restored = LicenseState.from_snapshot(snapshot)
    for name in state_fields():
        assert getattr(restored, name) == getattr(sample, name), name
    assert restored == sample


@pytest.mark.parametrize("name", state_fields())
def test_equality_and_the_snapshot_see_a_change_in_every_declared_field(name):
    sample = sample_state()
    other = LicenseState.from_snapshot(sample.snapshot())
    assert other == sample
    setattr(other, name, getattr(LicenseState(), name))
    assert other != sample
    assert other.snapshot_bytes() != sample.snapshot_bytes()


def comparable(value: Any) -> Any:
    """An index as plain values: an expiring set's offset, members and times, a sorted index's keys in order."""
    if isinstance(value, ExpiringSet):
        return (value.offset, comparable(value._expiry))
    if isinstance(value, SortedIndex | GroupedIndex):
        return list(value.walk())
    if isinstance(value, LeaseRequests):
        return sorted((lease.request_id, lease.lease_id) for lease in value.leases())
    if isinstance(value, dict):
        return {key: comparable(item) for key, item in value.items()}
    if hasattr(value, "__dict__") and not isinstance(value, msgspec.Struct):
        return comparable(vars(value))
    return value


def test_every_attribute_not_declared_is_an_index_the_snapshot_rebuilds():
    """What the state holds besides its declared fields is derived from them: a state loaded from a snapshot
    has the same, so nothing kept outside the declaration is lost on a restart."""
    sample = sample_state()
    restored = LicenseState.from_snapshot(sample.snapshot())
    undeclared = set(vars(sample)) - set(state_fields())
    assert "lease_by_request" in undeclared
    for name in sorted(undeclared):
        assert comparable(getattr(restored, name)) == comparable(getattr(sample, name)), name


def test_a_snapshot_written_before_the_core_split_loads_as_the_same_state():
    """Data directories written before the split keep working: both snapshot encodings load, and the state
    they give encodes to the very same bytes again."""
    written = (DATA / "state-before-split.json").read_bytes()
    loaded = LicenseState.from_snapshot(msgspec.json.decode(written, type=Snapshot))
    assert loaded == sample_state()
    assert loaded.snapshot_bytes() == written

    snapshot_file = (DATA / "state-before-split.snapshot").read_bytes()
    index, snapshot = decode_snapshot_file(snapshot_file)
    assert index == 42 and LicenseState.from_snapshot(snapshot) == sample_state()
    assert b"".join(snapshot_chunks(42, LicenseState.from_snapshot(snapshot))) == snapshot_file
