"""Printing: print checks against printer licenses, printer groups and their mapping rules.

A printer license counts the printers used within the printer window. A print check picks the license the
printer already counts against, else one with a free place, else one still in its grace period; a printer
in the Blocked group is refused. Printers and clients not seen for the usage retention are forgotten
(`PruneRegistries`).
"""

from __future__ import annotations

import msgspec

from licentia.core import commands as c
from licentia.core.indexed_state import DAY, IndexedState, request_record
from licentia.core.model import BLOCKED_GROUP, BUILTIN_GROUPS, DEFAULT_GROUP, License, Printer
from licentia.core.outcomes import (
    Applied,
    GroupNamed,
    MappingRulesSet,
    Outcome,
    PrinterMoved,
    PrintGranted,
    Pruned,
    Refused,
    refused,
)
from licentia.core.printers import GROUP_NAME, group_for, printer_id, validate_mapping_rules


class Printing(IndexedState):
    def _print_check(self, cmd: c.PrintCheck, now: float) -> Outcome[PrintGranted]:
        """Nothing is recorded in the printer and client registries until the request is granted: a refused
        one (access, blocked printer, no license, limit) leaves only its usage record."""
        pid = printer_id(cmd.printer)
        allowed, why = self._client_access(cmd.client, cmd.source_ip, cmd.source_host)
        if not allowed:
            return refused(
                "access_denied",
                f"denied by access {why}",
                [request_record(cmd, now, False, "access_denied", printer_id=pid)],
            )
        known = self.printers.get(pid)
        group = known.group if known is not None else group_for(cmd.printer, self.mapping_rules)
        if group == BLOCKED_GROUP:
            return refused(
                "printer_blocked",
                f"printer {cmd.printer.name!r} is in the Blocked group",
                [request_record(cmd, now, False, "printer_blocked", printer_id=pid)],
            )
        licenses = self._valid_licenses(cmd.product, "printers", now)
        if not licenses:
            return refused(
                "no_license",
                f"no valid printer license for product {cmd.product!r}",
                [request_record(cmd, now, False, "no_license", printer_id=pid)],
            )
        window = self.settings.printer_window_days * DAY
        chosen: License | None = None
        status = "ok"
        current = self.licenses.get(known.license_id or "") if known is not None else None
        if current in licenses and pid in self._in_use[current.id] and known and known.last_used + window > now:
            chosen = current
        if chosen is None:
            chosen = next((lic for lic in licenses if self.used(lic.id, now) < lic.terms.count), None)
        if chosen is None:
            chosen = next((lic for lic in licenses if lic.grace_seconds_left(now) > 0), None)
            if chosen is None:
                return refused(
                    "limit_exceeded",
                    f"all printer licenses for {cmd.product!r} are in use and their grace period is spent",
                    [request_record(cmd, now, False, "limit_exceeded", printer_id=pid)],
                )
            if chosen.grace_started_at is None:
                chosen.grace_started_at = now
            status = "grace"
        printer = known
        if printer is None:
            printer = self.printers[pid] = Printer(
                printer_id=pid, identity=cmd.printer, group=group, first_seen=now, last_used=0.0
            )
        else:
            self._listings.printer_changing(printer)
        self._touch_client(cmd.client, cmd.source_ip, now)
        if printer.license_id and printer.license_id != chosen.id and printer.license_id in self._in_use:
            self._in_use[printer.license_id].discard(pid)
        printer.license_id = chosen.id
        printer.last_used = now
        printer.uses += 1
        printer.seq, printer.via = self._mark(), ""
        if known is None:
            self._listings.printer_added(printer)
        else:
            self._listings.printer_changed(printer)
        self._in_use[chosen.id].put(printer.printer_id, printer.last_used)  # its own id; the offset is the window
        if status == "ok" and self.used(chosen.id, now) > chosen.terms.count:
            status = "grace"
        return Applied(
            PrintGranted(
                granted=True,
                printer_id=pid,
                group=printer.group,
                license_id=chosen.id,
                status=status,
                grace_days_left=round(chosen.grace_seconds_left(now) / DAY, 2),
            ),
            usage=[request_record(cmd, now, True, status, chosen.id, printer_id=pid)],
            changed=True,
        )

    def _set_printer_group(self, cmd: c.SetPrinterGroup, now: float) -> Outcome[PrinterMoved]:
        printer = self.printers.get(cmd.printer_id)
        if printer is None:
            return refused("printer_not_found", f"no printer {cmd.printer_id}")
        if cmd.group not in self.groups:
            return refused("group_not_found", f"no printer group {cmd.group!r}")
        self._move_printer(printer, cmd.group)
        return Applied(PrinterMoved(printer_id=printer.printer_id, group=cmd.group), changed=True)

    def _new_group_name_refusal(self, name: str, *, replacing: str | None) -> Refused | None:
        """Why `name` cannot name a group (in place of `replacing`, when renaming), or None."""
        if not GROUP_NAME.match(name):
            return refused("invalid_group_name", "a group name is 1-64 letters, digits, spaces or . ( ) -")
        if name.casefold() in {g.casefold() for g in self.groups if g != replacing}:
            return refused("group_exists", f"printer group {name!r} already exists")
        return None

    def _custom_group_refusal(self, name: str, verb: str) -> Refused | None:
        """Why the group `name` cannot be `verb` (renamed, deleted): built in, or not there; or None."""
        if name in BUILTIN_GROUPS:
            return refused("group_protected", f"the built-in group {name!r} cannot be {verb}")
        if name not in self.groups:
            return refused("group_not_found", f"no printer group {name!r}")
        return None

    def _create_group(self, cmd: c.CreatePrinterGroup, now: float) -> Outcome[GroupNamed]:
        if (refusal := self._new_group_name_refusal(cmd.name, replacing=None)) is not None:
            return refusal
        self.groups.append(cmd.name)
        return Applied(GroupNamed(cmd.name), changed=True)

    def _rename_group(self, cmd: c.RenamePrinterGroup, now: float) -> Outcome[GroupNamed]:
        if (refusal := self._custom_group_refusal(cmd.name, "renamed")) is not None:
            return refusal
        if (refusal := self._new_group_name_refusal(cmd.new_name, replacing=cmd.name)) is not None:
            return refusal
        self.groups[self.groups.index(cmd.name)] = cmd.new_name
        for printer in self.printers.values():
            if printer.group == cmd.name:
                self._move_printer(printer, cmd.new_name)
        # New rule objects: the old ones belong to the SetMappingRules command that installed them.
        self.mapping_rules = [
            msgspec.structs.replace(rule, group=cmd.new_name) if rule.group == cmd.name else rule
            for rule in self.mapping_rules
        ]
        return Applied(GroupNamed(cmd.new_name), changed=True)

    def _delete_group(self, cmd: c.DeletePrinterGroup, now: float) -> Outcome[GroupNamed]:
        if (refusal := self._custom_group_refusal(cmd.name, "deleted")) is not None:
            return refusal
        if any(rule.group == cmd.name for rule in self.mapping_rules):
            return refused("group_in_use", f"a mapping rule still sends printers to {cmd.name!r}")
        self.groups.remove(cmd.name)
        for printer in self.printers.values():
            if printer.group == cmd.name:
                self._move_printer(printer, DEFAULT_GROUP)
        return Applied(GroupNamed(cmd.name), changed=True)

    def _set_mapping_rules(self, cmd: c.SetMappingRules, now: float) -> Outcome[MappingRulesSet]:
        problem = validate_mapping_rules(cmd.rules, set(self.groups))
        if problem:
            return refused("invalid_mapping_rules", problem)
        self.mapping_rules = list(cmd.rules)
        return Applied(MappingRulesSet(len(cmd.rules)), changed=True)

    def _prune_registries(self, cmd: c.PruneRegistries, now: float) -> Outcome[Pruned]:
        """Forget the named printers and clients not seen within the usage retention (a printer also not
        within its in-use window, so no counted printer goes). A printer an administrator put in another
        group than the mapping rules would (a printer blocked by hand, say) is kept: that choice is not
        forgotten."""
        retention = self.settings.usage_retention_days * DAY
        printer_cutoff = now - max(retention, self.settings.printer_window_days * DAY)
        printers = [
            pid
            for pid in dict.fromkeys(cmd.printer_ids)
            if (printer := self.printers.get(pid)) is not None
            and max(printer.first_seen, printer.last_used, printer.peer_last_used) < printer_cutoff
            and printer.group == group_for(printer.identity, self.mapping_rules)
        ]
        clients = [
            cid
            for cid in dict.fromkeys(cmd.client_ids)
            if (client := self.clients.get(cid)) is not None and client.last_seen < now - retention
        ]
        for pid in printers:
            printer = self.printers.pop(pid)
            self._listings.printer_dropped(printer)
            if printer.license_id in self._in_use:
                self._in_use[printer.license_id].discard(pid)
        for cid in clients:
            self._listings.client_dropped(self.clients.pop(cid))
        return Applied(Pruned(printers=printers, clients=clients), changed=bool(printers or clients))

