"""A license state in which every field of the state's declaration holds something other than its default.

It is built by commands where a command can set the field; a triad and a backup pair exclude each other,
so the pair (and the triad's old liveness map, and the partner a configuration came from) are set directly.
`tests/core/data/state-before-split.*` were written by this builder with the code before the core split.
"""

from __future__ import annotations

from licentia.core import commands as c
from licentia.core.alert_settings import AlertSettings
from licentia.core.model import (
    AccessRule,
    AdminUser,
    BackupPair,
    ClientInfo,
    LicenseTerms,
    MappingRule,
    PairMember,
    PeerCursor,
    PrinterIdentity,
    TriadMember,
)
from licentia.core.state import LicenseState

T0 = 1_700_000_000.0
DAY = 86400.0
CLIENT = ClientInfo(host="ws-01", user="alice", application="Designer", version="9")


def license_command(license_id: str, product: str, unit: str, count: int) -> c.AddLicense:
    terms = LicenseTerms(license_id=license_id, product=product, edition="Pro", customer="Acme", unit=unit,
                         count=count, not_before=T0 - 60, expires=T0 + 365 * DAY, features=["rfid"])
    return c.AddLicense(terms=terms, key_id="issuer-1", signature="sig-" + license_id)


def sample_script() -> list[tuple[c.Command, float]]:
    """The commands that make the sample state, with their times (every one is applied)."""
    return [
        (c.PutAdminUser(user=AdminUser("admin", "hash-1", "admin")), T0),
        (license_command("LIC-P", "LabelStudio", "printers", 1), T0),
        (license_command("LIC-S", "Designer", "seats", 2), T0),
        (license_command("LIC-GONE", "Retired", "printers", 1), T0),
        (c.CreatePrinterGroup(name="Labels"), T0 + 1),
        (c.SetMappingRules(rules=[MappingRule(pattern="^zebra", group="Labels")]), T0 + 2),
        (c.PrintCheck(product="LabelStudio", printer=PrinterIdentity(name="Zebra-1", port="USB001"),
                      client=CLIENT, source_ip="10.0.0.7"), T0 + 10),
        (c.PrintCheck(product="LabelStudio", printer=PrinterIdentity(name="Zebra-2", port="USB002"),
                      client=CLIENT, source_ip="10.0.0.7"), T0 + 11),  # over the count of 1: grace starts
        (c.Checkout(request_id="req-1", lease_id="L1", product="Designer", client=CLIENT, feature="rfid",
                    source_ip="10.0.0.8"), T0 + 20),
        (c.UpdateSettings(changes={"lease_ttl_s": 300}), T0 + 30),
        (c.SetAccessRules(rules=[AccessRule(rule_id="no-eve", action="deny", who_kind="user", who="eve")]),
         T0 + 40),
        (c.SetAlertSettings(settings=AlertSettings(recipients=["ops@example.com"], denials_threshold=7)), T0 + 50),
        (c.RemoveLicense(license_id="LIC-GONE"), T0 + 60),
        (c.FormTriad(name="t1", members=[TriadMember("p", "primary", "https://p", "p:1"),
                                         TriadMember("s", "secondary", "https://s", "s:1"),
                                         TriadMember("t", "tertiary", "https://t", "t:1")], seed="p"), T0 + 70),
        (c.ElectedActive(member="p"), T0 + 80),
    ]


def sample_state() -> LicenseState:
    state = LicenseState()
    for command, now in sample_script():
        outcome = state.apply(command, now)
        assert outcome.ok, (command, outcome)
    state.liveness = {"p": T0 + 81}
    state.pair = BackupPair(name="pair", main=PairMember("main", "https://main"),
                            backup=PairMember("backup", "https://backup"), me="main", interval_s=5.0,
                            cursor=PeerCursor(changes=3, usage=4))
    state.config_via = "backup"
    return state
