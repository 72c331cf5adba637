"""The core side of a backup pair: what each server hands its partner, and merges that cannot double count."""

from __future__ import annotations

import msgspec
import pytest
from conftest import T0

from licentia.core import commands as c
from licentia.core.model import ClientInfo, LicenseTerms, PairMember, PrinterIdentity, UsageRecord
from licentia.core.state import LicenseState

MAIN = PairMember("main", "http://10.0.0.1:8470")
BACKUP = PairMember("backup", "http://10.0.0.2:8470")


def paired(me: str) -> LicenseState:
    """A server of the pair with a printer license for "Label" (only granted print checks record printers)."""
    state = LicenseState()
    assert state.apply(c.FormBackupPair(name="B1", main=MAIN, backup=BACKUP, me=me), T0).ok
    terms = LicenseTerms(license_id=f"PRN-{me}", product="Label", edition="std", customer="Acme", unit="printers",
                         count=100, not_before=T0 - 60, expires=T0 + 86400 * 365)
    assert state.apply(c.AddLicense(terms=terms, key_id="test", signature="unchecked by the core"), T0).ok
    return state


def pull(source: LicenseState, target: LicenseState, usage: list[c.PeerUsage] | None = None) -> c.Outcome:
    """What the sync link does: the source's changes after the target's cursor, applied to the target."""
    assert target.pair is not None and source.pair is not None
    changes = source.changes_since(target.pair.cursor.changes, target.pair.myself.name)
    usage = usage or []
    command = c.MergePeerChanges(
        peer=source.pair.myself.name,
        up_to=changes["up_to"],
        usage_up_to=usage[-1].row_id if usage else target.pair.cursor.usage,
        config=changes["config"],
        printers=changes["printers"],
        clients=changes["clients"],
        usage=usage,
    )
    # Through the wire format, as the partner would send it.
    command = c.decode_command(c.encode_command(command))
    return target.apply(command, T0 + 10)


def print_check(state: LicenseState, printer: str, host: str = "ws-1") -> None:
    state.apply(
        c.PrintCheck(product="Label", printer=PrinterIdentity(name=printer), client=ClientInfo(host=host)), T0 + 1
    )


def test_backup_takes_the_mains_settings_groups_and_printers_with_their_group():
    main, backup = paired("main"), paired("backup")
    assert main.apply(c.CreatePrinterGroup(name="Warehouse"), T0).ok
    assert main.apply(c.UpdateSettings(changes={"lease_ttl_s": 300, "server_name": "Main"}), T0).ok
    print_check(main, "Zebra")
    pid = next(iter(main.printers))
    assert main.apply(c.SetPrinterGroup(printer_id=pid, group="Warehouse"), T0 + 2).ok

    assert pull(main, backup).ok
    assert backup.settings.lease_ttl_s == 300
    assert backup.settings.server_name != "Main"
    assert "Warehouse" in backup.groups
    assert backup.printers[pid].group == "Warehouse"
    assert backup.printers[pid].license_id is None  # counted only against licenses of the server that granted it
    assert backup.printers[pid].peer_last_used == main.printers[pid].last_used


def test_a_main_ignores_settings_sent_by_its_backup():
    main, backup = paired("main"), paired("backup")
    backup.settings = msgspec.structs.replace(backup.settings, lease_ttl_s=999)
    assert pull(backup, main).ok
    assert main.settings.lease_ttl_s != 999


def test_a_backup_refuses_settings_changes_and_names_the_main():
    backup = paired("backup")
    outcome = backup.apply(c.UpdateSettings(changes={"lease_ttl_s": 300}), T0)
    assert outcome.code == "owned_by_main"
    assert MAIN.api_url in outcome.message
    assert backup.settings.lease_ttl_s != 300


def test_merging_the_same_batch_twice_records_its_usage_once():
    main, backup = paired("main"), paired("backup")
    print_check(main, "Zebra")
    rows = [c.PeerUsage(row_id=i, record=UsageRecord(at=T0, kind="print", granted=True, reason="ok")) for i in (1, 2)]
    first = pull(main, backup, rows)
    again = pull(main, backup, rows)
    assert len(first.usage) == 2
    assert all(record.server == "main" for record in first.usage)
    assert again.usage == []
    assert backup.pair is not None and backup.pair.cursor.usage == 2


def test_what_came_from_the_partner_is_not_sent_back_to_it():
    main, backup = paired("main"), paired("backup")
    print_check(main, "Zebra", host="main-host")
    pull(main, backup)
    echo = backup.changes_since(0, "main")
    assert echo["printers"] == []
    assert echo["clients"] == []
    assert backup.own_change_seq == 0


def test_a_merge_keeps_the_newer_client_facts_and_the_local_request_count():
    main, backup = paired("main"), paired("backup")
    print_check(backup, "Office", host="ws-1")
    print_check(main, "Zebra", host="ws-1")
    client_id = next(iter(main.clients))
    main.clients[client_id].last_seen = T0 + 50
    main.clients[client_id].seq = main._mark()
    pull(main, backup)
    mine = backup.clients[client_id]
    assert mine.last_seen == T0 + 50
    assert mine.requests == 1


def test_a_merge_from_a_server_outside_the_pair_is_refused():
    backup = paired("backup")
    outcome = backup.apply(c.MergePeerChanges(peer="intruder", up_to=5, usage_up_to=5), T0)
    assert outcome.code == "not_in_relationship"
    assert backup.pair is not None and backup.pair.cursor.changes == 0


@pytest.mark.parametrize("me", ["main", "backup"])
def test_pair_state_survives_a_snapshot(me):
    state = paired(me)
    print_check(state, "Zebra")
    again = LicenseState.from_snapshot(state.snapshot())
    assert again.snapshot_bytes() == state.snapshot_bytes()
    assert again.pair == state.pair


def test_swap_roles_makes_the_backup_own_the_settings():
    backup = paired("backup")
    assert backup.apply(c.SwapPairRoles(), T0).ok
    assert backup.pair is not None and backup.pair.me == "main" and backup.pair.main.name == "backup"
    assert backup.apply(c.UpdateSettings(changes={"lease_ttl_s": 300}), T0).ok


def test_a_server_in_a_backup_pair_cannot_form_a_triad():
    state = paired("main")
    outcome = state.apply(c.FormTriad(name="T", members=[]), T0)
    assert outcome.code == "relationship_exists"
