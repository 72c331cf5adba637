"""What a client request may reach and what it leaves behind: scoped idempotency, access checked first and
on every lease request, verified host names, and nothing recorded for a refused request."""

from __future__ import annotations

import msgspec
import pytest

from licentia.core.commands import (
    Checkin,
    Checkout,
    Heartbeat,
    PrintCheck,
    PruneRegistries,
    Renewal,
    SetAccessRules,
    SetPrinterGroup,
    UpdateSettings,
)
from licentia.core.model import BLOCKED_GROUP, AccessRule, ClientInfo, PrinterIdentity
from licentia.core.printers import client_id, printer_id
from licentia.core.state import LicenseState, Outcome

T0 = 1_700_000_000.0
DAY = 86400.0
ANN = ClientInfo(host="ws-ann", user="ann", application="Designer")
MALLORY = ClientInfo(host="evil.corp.example", user="mallory", application="Designer")


def checkout(state: LicenseState, lease_id: str, now: float = T0 + 1, *, client: ClientInfo = ANN,
             ip: str = "10.0.0.5", request_id: str = "req-ann", source_host: str = "", product: str = "Designer"
             ) -> Outcome:
    return state.apply(Checkout(request_id=request_id, lease_id=lease_id, product=product, client=client,
                                source_ip=ip, source_host=source_host), now)


def print_check(state: LicenseState, printer: str, now: float = T0 + 1, *, client: ClientInfo = ANN,
                ip: str = "10.0.0.5", product: str = "LabelStudio", source_host: str = "") -> Outcome:
    return state.apply(PrintCheck(product=product, printer=PrinterIdentity(name=printer), client=client,
                                  source_ip=ip, source_host=source_host), now)


def heartbeat(state: LicenseState, *lease_ids: str, now: float = T0 + 10, ip: str = "10.0.0.5",
              source_host: str = "") -> Outcome:
    return state.apply(Heartbeat(renewals=[Renewal(list(lease_ids), ip, source_host)]), now)


def set_rules(state: LicenseState, *rules: AccessRule, default_policy: str | None = None) -> None:
    assert state.apply(SetAccessRules(rules=list(rules), default_policy=default_policy), T0).ok


@pytest.fixture(autouse=True)
def licenses(install) -> None:
    install(license_id="SEAT", product="Designer", unit="seats", count=5)
    install(license_id="PRN", product="LabelStudio", unit="printers", count=5)


# -- finding 6: a request id names a lease only for the client that made it ---------------------------


def test_another_clients_request_id_does_not_return_their_lease(state):
    ann = checkout(state, "L-ann")
    other = checkout(state, "L-other", client=MALLORY, ip="10.0.0.66")

    assert ann.ok and other.ok
    assert other.result.lease_id == "L-other" != ann.result.lease_id
    assert other.result.repeated is False
    assert set(state.leases) == {"L-ann", "L-other"}


def test_the_same_declared_client_from_another_address_gets_its_own_lease(state):
    checkout(state, "L-ann")
    copycat = checkout(state, "L-copy", ip="10.0.0.66")  # Ann's declared names and request id, elsewhere
    assert copycat.result.lease_id == "L-copy" and copycat.result.repeated is False


def test_a_client_denied_by_the_rules_gets_a_refusal_not_the_lease_its_request_id_names(state):
    checkout(state, "L-ann")
    set_rules(state, AccessRule(rule_id="no-mallory", action="deny", who_kind="user", who="mallory"))
    before = state.snapshot_bytes()

    outcome = checkout(state, "L-mallory", client=MALLORY)

    assert outcome.code == "access_denied" and "L-ann" not in str(outcome)
    assert state.snapshot_bytes() == before


def test_access_is_checked_before_a_retry_is_answered(state):
    assert checkout(state, "L-ann").ok
    set_rules(state, AccessRule(rule_id="no-ann", action="deny", who_kind="user", who="ann"))
    assert checkout(state, "L-retry").code == "access_denied"


def test_a_retry_by_the_same_client_still_returns_its_lease_after_a_snapshot(state):
    checkout(state, "L-ann")
    again = LicenseState.from_snapshot(state.snapshot())
    retry = checkout(again, "L-retry", T0 + 2)
    assert retry.result.lease_id == "L-ann" and retry.result.repeated is True


def test_two_clients_sharing_a_request_id_each_retry_to_their_own_lease_until_it_is_checked_in(state):
    checkout(state, "L-ann")
    checkout(state, "L-other", client=MALLORY, ip="10.0.0.66")  # the same request id, another client
    checkout(state, "L-copy", ip="10.0.0.67")  # Ann's names and request id, from another address

    for loaded in (state, LicenseState.from_snapshot(state.snapshot())):
        assert checkout(loaded, "L-x", T0 + 2).result.lease_id == "L-ann"
        assert checkout(loaded, "L-y", T0 + 2, client=MALLORY, ip="10.0.0.66").result.lease_id == "L-other"
        assert checkout(loaded, "L-z", T0 + 2, ip="10.0.0.67").result.lease_id == "L-copy"
        assert loaded.apply(Checkin(lease_id="L-other"), T0 + 3).ok
        fresh = checkout(loaded, "L-new", T0 + 4, client=MALLORY, ip="10.0.0.66")
        assert fresh.result.lease_id == "L-new" and fresh.result.repeated is False
        assert checkout(loaded, "L-w", T0 + 5).result.lease_id == "L-ann"
        assert checkout(loaded, "L-v", T0 + 5, client=MALLORY, ip="10.0.0.66").result.lease_id == "L-new"


# -- finding 7: refused requests record nothing in the registries --------------------------------------


def test_refused_print_checks_add_no_printers_and_no_clients(state):
    for n in range(20):
        assert print_check(state, f"P-{n}", product="Unlicensed", client=ClientInfo(host=f"h{n}")).code == "no_license"
    set_rules(state, default_policy="deny")
    assert print_check(state, "P-denied").code == "access_denied"
    assert state.printers == {} and state.clients == {}


def test_a_print_check_over_the_limit_with_grace_spent_records_no_printer(state, install):
    install(license_id="TINY", product="Tiny", unit="printers", count=1, grace_days=0)
    assert print_check(state, "P-1", product="Tiny").ok
    assert print_check(state, "P-2", product="Tiny").code == "limit_exceeded"
    assert printer_id(PrinterIdentity(name="P-2")) not in state.printers


def test_refused_checkouts_add_no_clients(state):
    for n in range(20):
        checkout(state, f"L{n}", product="Unlicensed", client=ClientInfo(host=f"h{n}"), request_id=f"r{n}")
    set_rules(state, default_policy="deny")
    assert checkout(state, "L-denied").code == "access_denied"
    assert state.clients == {}


def test_granted_requests_still_record_their_printer_and_client(state):
    assert print_check(state, "Zebra").ok and checkout(state, "L1").ok
    assert list(state.printers) == [printer_id(PrinterIdentity(name="Zebra"))]
    assert list(state.clients) == [client_id(ANN)] and state.clients[client_id(ANN)].requests == 2


def test_a_heartbeat_naming_many_unknown_leases_writes_one_record(state):
    outcome = heartbeat(state, *(f"ghost-{n}" for n in range(1000)))
    assert len(outcome.result.expired) == 1000
    assert [(u.kind, u.reason, u.lease_id, u.source_ip) for u in outcome.usage] == [
        ("heartbeat", "lease_expired", "ghost-0", "10.0.0.5")
    ]


# -- pruning the registries -----------------------------------------------------------------------------


def test_printers_and_clients_unseen_for_longer_than_the_retention_are_pruned(state):
    assert state.apply(UpdateSettings(changes={"usage_retention_days": 30}), T0).ok
    print_check(state, "Old", T0 + 1, client=ClientInfo(host="old"))
    print_check(state, "Recent", T0 + 20 * DAY, client=ClientInfo(host="recent"))
    old_printer, recent_printer = (printer_id(PrinterIdentity(name=n)) for n in ("Old", "Recent"))
    old_client, recent_client = (client_id(ClientInfo(host=h)) for h in ("old", "recent"))

    outcome = state.apply(
        PruneRegistries(printer_ids=[old_printer, recent_printer, "unknown"],
                        client_ids=[old_client, recent_client]),
        T0 + 31 * DAY,
    )

    assert outcome.ok and outcome.changed
    assert msgspec.to_builtins(outcome.result) == {"printers": [old_printer], "clients": [old_client]}
    assert set(state.printers) == {recent_printer} and set(state.clients) == {recent_client}
    # The console's sorted lists forget them too (without a rebuild from scratch).
    listings = state._listings
    assert listings.matches(len(state.leases), len(state.printers), len(state.clients))
    assert [key[-1] for key in listings.printers_by_name.walk()] == [recent_printer]
    assert [key[-1] for key in listings.clients_by_host.walk()] == [recent_client]


def test_pruning_keeps_a_counted_printer_and_one_an_administrator_placed(state):
    assert state.apply(UpdateSettings(changes={"usage_retention_days": 1, "printer_window_days": 7}), T0).ok
    print_check(state, "Counted", T0 + 1)
    print_check(state, "Blocked", T0 + 1)
    counted, blocked = (printer_id(PrinterIdentity(name=n)) for n in ("Counted", "Blocked"))
    assert state.apply(SetPrinterGroup(printer_id=blocked, group=BLOCKED_GROUP), T0 + 2).ok

    kept = state.apply(PruneRegistries(printer_ids=[counted, blocked]), T0 + 3 * DAY)
    later = state.apply(PruneRegistries(printer_ids=[counted, blocked]), T0 + 8 * DAY)

    assert kept.result.printers == [] and not kept.changed  # still within its 7-day in-use window
    assert later.result.printers == [counted]
    assert set(state.printers) == {blocked}


# -- finding 8: host names verified, rules checked on every lease request -----------------------------


def test_a_hostname_rule_matches_the_verified_name_not_the_declared_one(state):
    set_rules(state, AccessRule(rule_id="corp", action="allow", where_kind="hostname", where="*.corp.example"),
              default_policy="deny")

    declared_only = checkout(state, "L1", client=MALLORY, request_id="r1", source_host="")
    verified = checkout(state, "L2", client=MALLORY, request_id="r2", source_host="ws7.corp.example")

    assert declared_only.code == "access_denied"
    assert verified.ok
    assert print_check(state, "P", client=MALLORY, source_host="").code == "access_denied"


def test_entries_journaled_before_host_names_were_verified_replay_as_decided_then(state):
    set_rules(state, AccessRule(rule_id="corp", action="allow", where_kind="hostname", where="*.corp.example"),
              default_policy="deny")
    legacy = Checkout(request_id="r", lease_id="L1", product="Designer", client=MALLORY, source_ip="10.0.0.9")
    assert state.apply(legacy, T0 + 1).ok  # source_host None: matched the declared host, as it was


def test_a_deny_rule_added_later_releases_the_lease_on_its_holders_next_heartbeat(state):
    assert checkout(state, "L1").ok
    set_rules(state, AccessRule(rule_id="no-ann", action="deny", who_kind="user", who="ann"))

    outcome = heartbeat(state, "L1")

    assert outcome.result.renewed == {}
    assert "no-ann" in outcome.result.denied["L1"] and "released" in outcome.result.denied["L1"]
    assert "L1" not in state.leases and state.used("SEAT", T0 + 10) == 0
    assert ("checkin", "access_denied", "L1") in [(u.kind, u.reason, u.lease_id) for u in outcome.usage]


def test_a_denied_heartbeat_from_another_address_neither_renews_nor_releases_the_lease(state):
    assert checkout(state, "L1").ok
    set_rules(state, AccessRule(rule_id="no-lab", action="deny", where_kind="cidr", where="10.9.0.0/16"))
    expires = state.leases["L1"].expires_at

    outcome = heartbeat(state, "L1", ip="10.9.0.1")

    assert outcome.result.renewed == {} and "L1" in outcome.result.denied
    assert state.leases["L1"].expires_at == expires
    assert [(u.kind, u.reason) for u in outcome.usage] == [("heartbeat", "access_denied")]


def test_a_check_in_from_a_denied_address_is_refused_and_leaves_the_lease(state):
    assert checkout(state, "L1").ok
    set_rules(state, AccessRule(rule_id="no-lab", action="deny", where_kind="cidr", where="10.9.0.0/16"))

    outcome = state.apply(Checkin(lease_id="L1", source_ip="10.9.0.1", source_host=""), T0 + 5)

    assert outcome.code == "access_denied"
    assert "L1" in state.leases
    assert state.apply(Checkin(lease_id="L1", source_ip="10.0.0.5", source_host=""), T0 + 6).ok


def test_a_check_in_by_a_holder_the_rules_now_deny_is_refused_and_releases_the_lease(state):
    assert checkout(state, "L1").ok
    set_rules(state, AccessRule(rule_id="no-ann", action="deny", who_kind="user", who="ann"))
    outcome = state.apply(Checkin(lease_id="L1", source_ip="10.0.0.5", source_host=""), T0 + 5)
    assert outcome.code == "access_denied" and "released" in outcome.message
    assert "L1" not in state.leases


@pytest.mark.parametrize(
    ("kind", "written", "saved"),
    [("ip", "::ffff:10.0.0.5", "10.0.0.5"), ("cidr", "::ffff:10.0.0.0/104", "10.0.0.0/8"),
     ("cidr", "fd00::/8", "fd00::/8"), ("ip", "2001:DB8::1", "2001:db8::1")],
)
def test_rule_addresses_are_saved_in_canonical_form(state, kind, written, saved):
    set_rules(state, AccessRule(rule_id="r", action="deny", where_kind=kind, where=written))
    assert state.access_rules[0].where == saved


def test_lease_requests_with_their_origin_survive_the_journal_encoding(state):
    from licentia.core.commands import decode_command, encode_command

    for command in (
        Heartbeat(renewals=[Renewal(["L1", "L2"], "10.0.0.5", "ws7.corp.example")], honour_from=5.0),
        Checkin(lease_id="L1", source_ip="10.0.0.5", source_host=""),
        Checkout(request_id="r", lease_id="L1", product="Designer", client=ANN, source_ip="10.0.0.5",
                 source_host="ws7.corp.example"),
        PruneRegistries(printer_ids=["p1"], client_ids=["c1"]),
    ):
        assert decode_command(encode_command(command)) == command
    legacy = decode_command(b'{"type":"checkin","lease_id":"L1"}')
    assert legacy == Checkin(lease_id="L1") and legacy.source_host is None  # judged as it was: unchecked
