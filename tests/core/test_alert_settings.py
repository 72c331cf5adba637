"""Alert recipients and thresholds: license state changed only by a validated, versioned command."""

from __future__ import annotations

import msgspec
import pytest

from licentia.core.alert_settings import AlertSettings
from licentia.core.commands import SetAlertSettings, decode_command, encode_command
from licentia.core.model import TriadMember
from licentia.core.state import LicenseState, Snapshot

T0 = 1_700_000_000.0


def valid(**fields) -> AlertSettings:
    values = {"recipients": ["ops@example.com", "lead+licentia@mail.example.org"],
              "webhook_url": "https://hooks.example.com/licentia", "member_down_after_s": 10.0,
              "expiring_within_days": 14.0, "denials_threshold": 20, "denials_window_s": 120.0}
    values.update(fields)
    return AlertSettings(**values)


def test_set_alert_settings_replaces_them_and_bumps_the_version(state):
    outcome = state.apply(SetAlertSettings(settings=valid()), T0)

    assert outcome.ok and outcome.changed and msgspec.to_builtins(outcome.result) == {"version": 2}
    assert state.alert_settings == valid()
    assert state.alert_settings_version == 2
    assert state.apply(SetAlertSettings(settings=AlertSettings(), expected_version=2), T0).ok
    assert state.alert_settings == AlertSettings() and state.alert_settings_version == 3


@pytest.mark.parametrize(
    "fields",
    [
        {"recipients": ["not-an-address"]},
        {"recipients": ["ops@localhost"]},
        {"recipients": ["two words@example.com"]},
        {"recipients": ["ops@example.com", "OPS@example.com"]},
        {"recipients": [f"u{n}@example.com" for n in range(21)]},
        {"recipients": ["x" * 250 + "@example.com"]},
        {"webhook_url": "ftp://example.com/x"},
        {"webhook_url": "http://"},
        {"webhook_url": "https://example.com/" + "x" * 500},
        {"member_down_after_s": 0.5},
        {"member_down_after_s": float("nan")},
        {"backup_unsynchronized_after_s": 1},
        {"expiring_within_days": -1},
        {"expiring_within_days": 366},
        {"denials_threshold": -1},
        {"denials_window_s": 1},
        {"muted_kinds": ["earthquake"]},
    ],
)
def test_invalid_alert_settings_are_refused_and_nothing_changes(state, fields):
    before = state.snapshot_bytes()

    outcome = state.apply(SetAlertSettings(settings=valid(**fields)), T0)

    assert outcome.code == "invalid_alert_settings", outcome
    assert not outcome.changed and outcome.message
    assert state.snapshot_bytes() == before


def test_a_stale_expected_version_is_refused(state):
    state.apply(SetAlertSettings(settings=valid()), T0)
    outcome = state.apply(SetAlertSettings(settings=AlertSettings(), expected_version=1), T0)
    assert outcome.code == "version_conflict" and state.alert_settings == valid()


def test_alert_settings_survive_encoding_snapshots_and_replay(state):
    command = SetAlertSettings(settings=valid(muted_kinds=["denials"]), expected_version=1)
    replayed = LicenseState()
    replayed.apply(decode_command(encode_command(command)), T0)
    state.apply(command, T0)

    restored = LicenseState.from_snapshot(state.snapshot())
    assert restored.alert_settings == replayed.alert_settings == valid(muted_kinds=["denials"])
    assert restored.alert_settings_version == 2
    assert restored.snapshot_bytes() == replayed.snapshot_bytes() == state.snapshot_bytes()


def test_the_state_does_not_alias_the_command(state):
    command = SetAlertSettings(settings=valid())
    state.apply(command, T0)
    command.settings.recipients.append("intruder@example.com")
    assert state.alert_settings.recipients == valid().recipients


def test_snapshots_from_before_alerts_load_with_the_defaults(state):
    old = msgspec.json.decode(state.snapshot_bytes())
    del old["alert_settings"], old["alert_settings_version"]
    restored = LicenseState.from_snapshot(msgspec.json.decode(msgspec.json.encode(old), type=Snapshot))
    assert restored.alert_settings == AlertSettings() and restored.alert_settings_version == 1


def test_in_a_triad_the_command_is_fenced_like_every_other(state):
    from licentia.core.commands import ElectedActive, FormTriad

    members = [TriadMember(name=n, role=r, api_url=f"http://{n}:8470", raft_address=f"{n}:9470")
               for n, r in (("a", "primary"), ("b", "secondary"), ("c", "tertiary"))]
    state.apply(FormTriad(name="T1", members=members), T0)
    epoch = state.apply(ElectedActive(member="a"), T0).result.epoch
    assert state.apply(SetAlertSettings(settings=valid(), epoch=epoch + 1), T0).code == "not_active"
    assert state.apply(SetAlertSettings(settings=valid(), epoch=epoch), T0 + 0.5).ok
