"""The ordered allow/deny access rules ("This License Server") and the default policy."""

from __future__ import annotations

import pytest

from licentia.core.commands import Checkout, Heartbeat, PrintCheck, Renewal, SetAccessRules
from licentia.core.model import AccessRule, ClientInfo, PrinterIdentity
from licentia.core.state import LicenseState, Outcome

T0 = 1_700_000_000.0


def print_check(state: LicenseState, *, user: str = "alice", host: str = "ws-01", ip: str = "10.0.0.2",
                printer: str = "Zebra-1") -> Outcome:
    client = ClientInfo(host=host, user=user, application="LabelStudio")
    return state.apply(PrintCheck(product="LabelStudio", printer=PrinterIdentity(name=printer), client=client,
                                  source_ip=ip), T0 + 1)


def checkout(state: LicenseState, lease_id: str, *, user: str = "alice", host: str = "ws-01",
             ip: str = "10.0.0.2") -> Outcome:
    return state.apply(
        Checkout(request_id=f"r-{lease_id}", lease_id=lease_id, product="Designer",
                 client=ClientInfo(host=host, user=user), source_ip=ip),
        T0 + 1,
    )


def set_rules(state: LicenseState, *rules: AccessRule, default_policy: str | None = None) -> Outcome:
    outcome = state.apply(SetAccessRules(rules=list(rules), default_policy=default_policy), T0)
    assert outcome.ok, outcome
    return outcome


@pytest.fixture(autouse=True)
def licenses(install) -> None:
    install(license_id="LIC-PRN", product="LabelStudio", unit="printers", count=100)
    install(license_id="LIC-SEAT", product="Designer", unit="seats", count=100)


def test_rules_are_ordered_and_first_match_wins(state):
    set_rules(
        state,
        AccessRule(rule_id="allow-alice", action="allow", who_kind="user", who="alice"),
        AccessRule(rule_id="deny-all", action="deny"),
        AccessRule(rule_id="allow-all", action="allow"),
    )
    assert print_check(state, user="alice").ok
    denied = print_check(state, user="bob", printer="Zebra-2")
    assert denied.code == "access_denied"
    assert "deny-all" in denied.message


def test_default_policy_allow_lets_unmatched_requests_through(state):
    set_rules(state, AccessRule(rule_id="deny-eve", action="deny", who_kind="user", who="eve"))
    assert state.settings.default_access_policy == "allow"
    assert print_check(state, user="alice").ok
    assert print_check(state, user="eve", printer="Zebra-2").code == "access_denied"


def test_default_policy_deny_refuses_unmatched_requests(state):
    outcome = set_rules(state, AccessRule(rule_id="allow-lab", action="allow", where_kind="cidr",
                                          where="10.1.0.0/16"), default_policy="deny")
    assert outcome.result.version == 2
    assert state.settings.default_access_policy == "deny"

    assert print_check(state, ip="10.1.4.4").ok
    denied = print_check(state, ip="10.2.4.4", printer="Zebra-2")
    assert denied.code == "access_denied"
    assert "default policy (deny)" in denied.message


def test_default_policy_deny_with_no_rules_refuses_a_heartbeat_and_allow_renews_it(state):
    assert checkout(state, "L1").ok and checkout(state, "L2", ip="10.0.0.3").ok
    set_rules(state, default_policy="deny")

    refused = state.apply(Heartbeat(renewals=[Renewal(["L1"], "10.0.0.9", "")]), T0 + 2)
    assert refused.result.renewed == {}
    assert refused.result.denied == {"L1": "denied by access default policy (deny)"}

    set_rules(state, default_policy="allow")
    renewed = state.apply(Heartbeat(renewals=[Renewal(["L1", "L2"], "10.0.0.9", "")]), T0 + 3)
    assert set(renewed.result.renewed) == {"L1", "L2"} and renewed.result.denied == {}


@pytest.mark.parametrize(
    ("pattern", "user", "matches"),
    [("temp-*", "TEMP-07", True), ("TEMP-*", "temp-07", True), ("temp-?", "temp-7", True),
     ("temp-*", "alice", False), ("alice", "Alice", True), ("alice", "alice2", False), ("*", "", False)],
)
def test_who_user_matches_glob_case_insensitively(state, pattern, user, matches):
    set_rules(state, AccessRule(rule_id="r1", action="deny", who_kind="user", who=pattern))
    outcome = print_check(state, user=user)
    assert (outcome.code == "access_denied") is matches


@pytest.mark.parametrize(
    ("pattern", "host", "matches"),
    [("*.guest.example", "kiosk.GUEST.example", True), ("KIOSK-*", "kiosk-3", True),
     ("*.guest.example", "ws.corp.example", False)],
)
def test_who_host_matches_glob_case_insensitively(state, pattern, host, matches):
    set_rules(state, AccessRule(rule_id="r1", action="deny", who_kind="host", who=pattern))
    assert (print_check(state, host=host).code == "access_denied") is matches


@pytest.mark.parametrize(("ip", "matches"), [("10.0.0.5", True), ("10.0.0.6", False), ("not-an-ip", False),
                                             ("", False)])
def test_where_ip_matches_exact_address(state, ip, matches):
    set_rules(state, AccessRule(rule_id="one-box", action="deny", where_kind="ip", where="10.0.0.5"))
    assert (print_check(state, ip=ip).code == "access_denied") is matches


@pytest.mark.parametrize(
    ("ip", "matches"),
    [("192.168.50.1", True), ("192.168.50.254", True), ("192.168.51.1", False), ("::1", False)],
)
def test_where_cidr_matches_network(state, ip, matches):
    set_rules(state, AccessRule(rule_id="guest-net", action="deny", where_kind="cidr", where="192.168.50.0/24"))
    assert (print_check(state, ip=ip).code == "access_denied") is matches


def test_ipv4_mapped_ipv6_address_matches_ipv4_rules(state):
    set_rules(state, AccessRule(rule_id="lan", action="deny", where_kind="cidr", where="10.0.0.0/8"))
    assert print_check(state, ip="::ffff:10.1.2.3").code == "access_denied"


def test_where_ipv6_cidr_matches(state):
    set_rules(state, AccessRule(rule_id="v6", action="deny", where_kind="cidr", where="fd00::/8"))
    assert print_check(state, ip="fd12::1").code == "access_denied"
    assert print_check(state, ip="2001:db8::1").ok


@pytest.mark.parametrize(("host", "matches"), [("LAB-3", True), ("lab-12", True), ("office-1", False)])
def test_where_hostname_matches_glob(state, host, matches):
    set_rules(state, AccessRule(rule_id="labs", action="deny", where_kind="hostname", where="lab-*"))
    assert (print_check(state, host=host).code == "access_denied") is matches


def test_rule_needs_both_who_and_where_to_match(state):
    set_rules(state, AccessRule(rule_id="bob-at-lab", action="deny", who_kind="user", who="bob",
                                where_kind="cidr", where="10.9.0.0/16"))
    assert print_check(state, user="bob", ip="10.9.1.1").code == "access_denied"
    assert print_check(state, user="bob", ip="10.8.1.1").ok
    assert print_check(state, user="alice", ip="10.9.1.1").ok


def test_deny_rule_refuses_print_check_naming_the_rule(state):
    set_rules(state, AccessRule(rule_id="no-guests", action="deny", who_kind="host", who="guest*"))

    outcome = print_check(state, host="guest-7")

    assert not outcome.ok
    assert outcome.code == "access_denied"
    assert "'no-guests'" in outcome.message
    assert [(u.kind, u.granted, u.reason) for u in outcome.usage] == [("print", False, "access_denied")]
    assert state.printers == {}  # a refused request does not register the printer
    assert state.used("LIC-PRN", T0 + 1) == 0


def test_deny_rule_refuses_checkout_naming_the_rule(state):
    set_rules(state, AccessRule(rule_id="no-guests", action="deny", who_kind="host", who="guest*"))

    outcome = checkout(state, "L1", host="guest-7")

    assert outcome.code == "access_denied"
    assert "'no-guests'" in outcome.message
    assert [(u.kind, u.granted, u.reason) for u in outcome.usage] == [("checkout", False, "access_denied")]
    assert state.leases == {}
    assert checkout(state, "L2", host="ws-01").ok


@pytest.mark.parametrize(
    "bad_rules",
    [
        [AccessRule(rule_id="r1", action="deny", where_kind="cidr", where="10.0.0.0/33")],
        [AccessRule(rule_id="r1", action="deny", where_kind="cidr", where="not-a-network")],
        [AccessRule(rule_id="r1", action="deny", where_kind="ip", where="10.0.0.256")],
        [AccessRule(rule_id="r1", action="deny"), AccessRule(rule_id="r1", action="allow")],
        [AccessRule(rule_id="bad id!", action="deny")],
        [AccessRule(rule_id="r1", action="deny", who_kind="user", who="")],
        [AccessRule(rule_id="r1", action="deny", where_kind="hostname", where="")],
    ],
    ids=["cidr-prefix", "cidr-text", "ip", "duplicate-id", "rule-id", "empty-who", "empty-where"],
)
def test_invalid_access_rules_are_refused_and_nothing_changes(state, bad_rules):
    set_rules(state, AccessRule(rule_id="keep", action="allow"))
    before = state.snapshot_bytes()

    outcome = state.apply(SetAccessRules(rules=bad_rules, default_policy="deny"), T0 + 5)

    assert outcome.code == "invalid_access_rules"
    assert not outcome.changed
    assert state.snapshot_bytes() == before
    assert [rule.rule_id for rule in state.access_rules] == ["keep"]
    assert state.settings.default_access_policy == "allow"


def test_invalid_default_policy_is_refused(state):
    before = state.snapshot_bytes()
    assert state.apply(SetAccessRules(rules=[], default_policy="maybe"), T0).code == "invalid_access_rules"
    assert state.snapshot_bytes() == before


def test_set_access_rules_bumps_version_and_replaces_list(state):
    set_rules(state, AccessRule(rule_id="a", action="deny"))
    outcome = set_rules(state)
    assert outcome.result.version == state.access_rules_version == 3
    assert state.access_rules == []
    assert print_check(state).ok
