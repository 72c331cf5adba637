"""Printer groups and the mapping rules that put new printers into them."""

from __future__ import annotations

import pytest

from licentia.core.commands import (
    CreatePrinterGroup,
    DeletePrinterGroup,
    PrintCheck,
    RenamePrinterGroup,
    SetMappingRules,
    SetPrinterGroup,
)
from licentia.core.model import BLOCKED_GROUP, DEFAULT_GROUP, ClientInfo, MappingRule, PrinterIdentity
from licentia.core.printers import printer_id
from licentia.core.state import LicenseState, Outcome

T0 = 1_700_000_000.0


def check(state: LicenseState, printer: PrinterIdentity, now: float = T0 + 1) -> Outcome:
    return state.apply(PrintCheck(product="LabelStudio", printer=printer, client=ClientInfo(host="ws")), now)


def group_of(state: LicenseState, printer: PrinterIdentity) -> str:
    return state.printers[printer_id(printer)].group


@pytest.mark.parametrize("builtin", [DEFAULT_GROUP, BLOCKED_GROUP])
def test_builtin_groups_cannot_be_renamed(state, builtin):
    before = state.snapshot_bytes()
    outcome = state.apply(RenamePrinterGroup(name=builtin, new_name="Other"), T0)
    assert outcome.code == "group_protected"
    assert state.groups == [DEFAULT_GROUP, BLOCKED_GROUP]
    assert state.snapshot_bytes() == before


@pytest.mark.parametrize("builtin", [DEFAULT_GROUP, BLOCKED_GROUP])
def test_builtin_groups_cannot_be_deleted(state, builtin):
    before = state.snapshot_bytes()
    outcome = state.apply(DeletePrinterGroup(name=builtin), T0)
    assert outcome.code == "group_protected"
    assert state.snapshot_bytes() == before


def test_create_group_adds_it(state):
    outcome = state.apply(CreatePrinterGroup(name="Shipping (Dock 2)"), T0)
    assert outcome.ok and outcome.changed
    assert state.groups == [DEFAULT_GROUP, BLOCKED_GROUP, "Shipping (Dock 2)"]


@pytest.mark.parametrize("name", ["Shipping", "shipping", "SHIPPING", "default", "blocked"])
def test_create_group_refuses_existing_name_in_any_case(state, name):
    state.apply(CreatePrinterGroup(name="Shipping"), T0)
    before = state.snapshot_bytes()
    assert state.apply(CreatePrinterGroup(name=name), T0).code == "group_exists"
    assert state.snapshot_bytes() == before


@pytest.mark.parametrize("name", ["", "a/b", "x" * 65, "semi;colon"])
def test_create_group_refuses_invalid_name(state, name):
    assert state.apply(CreatePrinterGroup(name=name), T0).code == "invalid_group_name"
    assert state.groups == [DEFAULT_GROUP, BLOCKED_GROUP]


def test_rename_group_moves_its_printers_and_rules(state, install):
    install(count=5)
    state.apply(CreatePrinterGroup(name="Labels"), T0)
    state.apply(SetMappingRules(rules=[MappingRule(pattern="^zebra", group="Labels")]), T0)
    zebra = PrinterIdentity(name="Zebra-1")
    check(state, zebra)
    assert group_of(state, zebra) == "Labels"

    outcome = state.apply(RenamePrinterGroup(name="Labels", new_name="Label Printers"), T0 + 2)

    assert outcome.ok
    assert state.groups == [DEFAULT_GROUP, BLOCKED_GROUP, "Label Printers"]
    assert group_of(state, zebra) == "Label Printers"
    assert [rule.group for rule in state.mapping_rules] == ["Label Printers"]
    check(state, PrinterIdentity(name="Zebra-2"), T0 + 3)
    assert group_of(state, PrinterIdentity(name="Zebra-2")) == "Label Printers"


def test_rename_group_does_not_change_the_command_it_was_given(state):
    """Commands are plain data that are journaled and replayed; applying one must not alter an earlier one."""
    state.apply(CreatePrinterGroup(name="Labels"), T0)
    set_rules = SetMappingRules(rules=[MappingRule(pattern="^zebra", group="Labels")])
    state.apply(set_rules, T0)
    state.apply(RenamePrinterGroup(name="Labels", new_name="Renamed"), T0)
    assert set_rules.rules[0].group == "Labels"
    assert state.mapping_rules[0].group == "Renamed"


def test_rename_group_refuses_unknown_taken_or_invalid_name(state):
    state.apply(CreatePrinterGroup(name="A"), T0)
    state.apply(CreatePrinterGroup(name="B"), T0)
    before = state.snapshot_bytes()
    assert state.apply(RenamePrinterGroup(name="Nope", new_name="C"), T0).code == "group_not_found"
    assert state.apply(RenamePrinterGroup(name="A", new_name="b"), T0).code == "group_exists"
    assert state.apply(RenamePrinterGroup(name="A", new_name="Blocked"), T0).code == "group_exists"
    assert state.apply(RenamePrinterGroup(name="A", new_name="bad/name"), T0).code == "invalid_group_name"
    assert state.snapshot_bytes() == before


def test_rename_group_to_other_case_of_itself_is_allowed(state):
    state.apply(CreatePrinterGroup(name="labels"), T0)
    assert state.apply(RenamePrinterGroup(name="labels", new_name="Labels"), T0).ok
    assert state.groups[-1] == "Labels"


def test_delete_group_moves_its_printers_to_default(state, install):
    install(count=5)
    state.apply(CreatePrinterGroup(name="Office"), T0)
    printer = PrinterIdentity(name="HP-1")
    check(state, printer)
    state.apply(SetPrinterGroup(printer_id=printer_id(printer), group="Office"), T0 + 2)

    outcome = state.apply(DeletePrinterGroup(name="Office"), T0 + 3)

    assert outcome.ok
    assert "Office" not in state.groups
    assert group_of(state, printer) == DEFAULT_GROUP


def test_delete_unknown_group_is_refused(state):
    assert state.apply(DeletePrinterGroup(name="Ghost"), T0).code == "group_not_found"


def test_delete_group_used_by_mapping_rule_is_refused(state):
    state.apply(CreatePrinterGroup(name="Labels"), T0)
    state.apply(SetMappingRules(rules=[MappingRule(pattern="zebra", group="Labels")]), T0)
    before = state.snapshot_bytes()

    outcome = state.apply(DeletePrinterGroup(name="Labels"), T0)

    assert outcome.code == "group_in_use"
    assert "Labels" in state.groups
    assert state.snapshot_bytes() == before


def test_mapping_rules_first_match_wins_top_down(state, install):
    install(count=10)
    for name in ("Zebra", "Desk", "Dock"):
        state.apply(CreatePrinterGroup(name=name), T0)
    rules = [
        MappingRule(pattern="^ZD", group="Zebra", field="driver"),
        MappingRule(pattern="desk", group="Desk", field="name"),
        MappingRule(pattern="dock", group="Dock", field="any"),
    ]
    assert state.apply(SetMappingRules(rules=rules), T0).ok

    cases = [
        (PrinterIdentity(name="desk-1", driver="ZDesigner"), "Zebra"),  # rules 1 and 2 match; 1 is first
        (PrinterIdentity(name="DESK-2", driver="HP", location="dock"), "Desk"),  # 2 and 3 match; 2 is first
        (PrinterIdentity(name="p3", driver="HP", location="Dock 4"), "Dock"),  # "any" looks at every field
        (PrinterIdentity(name="p4", driver="hp zd", port="lpt1"), DEFAULT_GROUP),  # "^ZD" is anchored
    ]
    for printer, expected in cases:
        check(state, printer)
        assert group_of(state, printer) == expected, printer


def test_mapping_rules_apply_to_new_printers_only(state, install):
    install(count=10)
    state.apply(CreatePrinterGroup(name="Zebra"), T0)
    old = PrinterIdentity(name="Zebra-old")
    check(state, old, T0 + 1)
    assert group_of(state, old) == DEFAULT_GROUP

    state.apply(SetMappingRules(rules=[MappingRule(pattern="zebra", group="Zebra")]), T0 + 2)
    check(state, old, T0 + 3)
    new = PrinterIdentity(name="Zebra-new")
    check(state, new, T0 + 4)

    assert group_of(state, old) == DEFAULT_GROUP
    assert group_of(state, new) == "Zebra"


def test_invalid_regex_is_refused_and_rules_unchanged(state):
    state.apply(CreatePrinterGroup(name="Zebra"), T0)
    good = [MappingRule(pattern="zebra", group="Zebra")]
    state.apply(SetMappingRules(rules=good), T0)
    before = state.snapshot_bytes()

    outcome = state.apply(SetMappingRules(rules=[MappingRule(pattern="([unclosed", group="Zebra")]), T0)

    assert outcome.code == "invalid_mapping_rules"
    assert "invalid regular expression" in outcome.message
    assert state.mapping_rules == good
    assert state.snapshot_bytes() == before


def test_mapping_rule_to_missing_group_is_refused(state):
    before = state.snapshot_bytes()
    outcome = state.apply(SetMappingRules(rules=[MappingRule(pattern="x", group="Nowhere")]), T0)
    assert outcome.code == "invalid_mapping_rules"
    assert "Nowhere" in outcome.message
    assert state.snapshot_bytes() == before


def test_mapping_rule_with_empty_pattern_is_refused(state):
    outcome = state.apply(SetMappingRules(rules=[MappingRule(pattern="", group=DEFAULT_GROUP)]), T0)
    assert outcome.code == "invalid_mapping_rules"
    assert state.mapping_rules == []


def test_group_name_with_surrounding_spaces_is_refused(state):
    from licentia.core.commands import CreatePrinterGroup

    assert state.apply(CreatePrinterGroup(name="Blocked "), 0.0).code == "invalid_group_name"
    assert state.apply(CreatePrinterGroup(name=" Sales"), 0.0).code == "invalid_group_name"
