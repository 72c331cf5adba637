"""The deterministic license state machine.

`LicenseState.apply(command, now)` is the one place license state changes. It
does no I/O and reads no clock, so a standalone server replaying its SQLite
journal and the members of a triad applying the Raft log all reach the same
state. Every handler validates first and mutates after, so a refused command
changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from licentia.core import commands as c
from licentia.core.access import RequestOrigin, canonical_rules, matching_rule, validate_rules
from licentia.core.alert_settings import AlertSettings, alert_settings_problem
from licentia.core.expiring import ExpiringSet
from licentia.core.lease_requests import LeaseRequests
from licentia.core.listing import Listings
from licentia.core.model import (
    BLOCKED_GROUP,
    BUILTIN_GROUPS,
    DEFAULT_GROUP,
    AccessRule,
    ActiveRecord,
    AdminUser,
    BackupPair,
    Client,
    ClientInfo,
    Lease,
    License,
    MappingRule,
    PeerCursor,
    Printer,
    RemovedLicense,
    Triad,
    UsageRecord,
)
from licentia.core.printers import GROUP_NAME, client_id, group_for, printer_id, validate_mapping_rules
from licentia.core.settings import Settings, SettingsError, merged_settings
from licentia.core.sharing import share_values

DAY = 86400.0
SETTINGS_HISTORY = 50

RequestKey = tuple[str, str, str]  # (client id, source address, request id): whose retry a checkout is


def request_key(client: ClientInfo, source_ip: str, request_id: str) -> RequestKey:
    return (client_id(client), source_ip, request_id)


class Outcome(msgspec.Struct):
    """What applying a command decided. `code` is "ok" or a machine-readable refusal reason."""

    ok: bool
    code: str = "ok"
    message: str = ""
    data: dict[str, Any] = {}
    usage: list[UsageRecord] = []
    changed: bool = False


def refused(code: str, message: str, usage: list[UsageRecord] | None = None) -> Outcome:
    return Outcome(ok=False, code=code, message=message, usage=usage or [], changed=bool(usage))


class Snapshot(msgspec.Struct):
    licenses: list[License]
    printers: list[Printer]
    leases: list[Lease]
    clients: list[Client]
    groups: list[str]
    mapping_rules: list[MappingRule]
    access_rules: list[AccessRule]
    access_rules_version: int
    settings: Settings
    settings_version: int
    settings_history: list[dict[str, Any]]
    users: list[AdminUser]
    triad: Triad | None = None
    active: ActiveRecord | None = None
    liveness: dict[str, float] = {}
    last_epoch: int = 0
    time_floor: float = 0.0
    alert_settings: AlertSettings = msgspec.field(default_factory=AlertSettings)
    alert_settings_version: int = 1
    pair: BackupPair | None = None
    change_seq: int = 0
    own_change_seq: int = 0
    config_seq: int = 0
    config_via: str = ""
    removed_licenses: list[RemovedLicense] = []


class LicenseState:
    def __init__(self) -> None:
        self.licenses: dict[str, License] = {}
        self.removed_licenses: dict[str, RemovedLicense] = {}
        self.printers: dict[str, Printer] = {}
        self.leases: dict[str, Lease] = {}
        self.lease_by_request = LeaseRequests()
        self.clients: dict[str, Client] = {}
        self.groups: list[str] = list(BUILTIN_GROUPS)
        self.mapping_rules: list[MappingRule] = []
        self.access_rules: list[AccessRule] = []
        self.access_rules_version = 1
        self.settings = Settings()
        self.settings_version = 1
        self.settings_history: list[dict[str, Any]] = []
        self.users: dict[str, AdminUser] = {}
        self.triad: Triad | None = None
        self.active: ActiveRecord | None = None
        self.liveness: dict[str, float] = {}
        self.last_epoch = 0
        self.time_floor = 0.0
        self.alert_settings = AlertSettings()
        self.alert_settings_version = 1
        self.pair: BackupPair | None = None
        # Change sequence for what a backup pair shares; `own_change_seq` is the last change made here.
        self.change_seq = 0
        self.own_change_seq = 0
        self.config_seq = 0
        self.config_via = ""
        self._in_use: dict[str, ExpiringSet] = {}
        self._held_count: dict[str, int] = {}  # leases held per license, expired or not, until dropped
        self._listings = Listings()
        self._handlers: dict[type, Callable[[Any, float], Outcome]] = {
            c.AddLicense: self._add_license,
            c.RemoveLicense: self._remove_license,
            c.PrintCheck: self._print_check,
            c.Checkout: self._checkout,
            c.Heartbeat: self._heartbeat,
            c.Checkin: self._checkin,
            c.RevokeLease: self._revoke_lease,
            c.ReclaimExpired: self._reclaim_expired,
            c.PruneRegistries: self._prune_registries,
            c.CreatePrinterGroup: self._create_group,
            c.RenamePrinterGroup: self._rename_group,
            c.DeletePrinterGroup: self._delete_group,
            c.SetMappingRules: self._set_mapping_rules,
            c.SetPrinterGroup: self._set_printer_group,
            c.UpdateSettings: self._update_settings,
            c.SetAccessRules: self._set_access_rules,
            c.SetAlertSettings: self._set_alert_settings,
            c.PutAdminUser: self._put_user,
            c.DeleteAdminUser: self._delete_user,
            c.RehashAdminPassword: self._rehash_user,
            c.FormTriad: self._form_triad,
            c.DissolveTriad: self._dissolve_triad,
            c.ElectedActive: self._elected_active,
            c.FormBackupPair: self._form_backup_pair,
            c.LeaveBackupPair: self._leave_backup_pair,
            c.SwapPairRoles: self._swap_pair_roles,
            c.MergePeerChanges: self._merge_peer_changes,
        }

    def apply(self, command: c.Command, now: float) -> Outcome:
        """Apply `command` at `now`. Time never runs backwards inside the state: a command stamped
        earlier than the last applied change (another member's clock after a failover) is applied
        at that change's time, so every replica, live or rebuilt from a snapshot, counts alike."""
        now = max(now, self.time_floor)
        outcome = self._apply(command, now)
        if outcome.changed:
            self.time_floor = now
            if isinstance(command, c.MAIN_OWNED):
                self.config_seq = self._mark()
                self.config_via = ""
        return outcome

    def _apply(self, command: c.Command, now: float) -> Outcome:
        if self.triad is not None and not isinstance(command, c.UNFENCED):
            active = self.active
            if active is None:
                return refused("not_active", "no member of the triad is active")
            if command.epoch != active.epoch:
                return refused(
                    "not_active",
                    f"epoch {command.epoch} is stale; {active.member} is active in epoch {active.epoch}",
                )
        if self.pair is not None and self.pair.me == "backup" and isinstance(command, c.MAIN_OWNED):
            main = self.pair.main
            return refused(
                "owned_by_main",
                f"settings and rules of backup pair {self.pair.name!r} are owned by the main server {main.name} "
                f"({main.api_url}); change them there (or swap roles first)",
            )
        return self._handlers[type(command)](command, now)

    def _mark(self, via: str = "") -> int:
        """The next change sequence number; a change made here (not taken from the partner) is also 'own'."""
        self.change_seq += 1
        if not via:
            self.own_change_seq = self.change_seq
        return self.change_seq

    # -- triad: who is active -------------------------------------------------------------------

    def _form_triad(self, cmd: c.FormTriad, now: float) -> Outcome:
        if self.triad is not None:
            return refused("relationship_exists", f"this server is already in triad {self.triad.name!r}")
        if self.pair is not None:
            return refused("relationship_exists", f"this server is already in backup pair {self.pair.name!r}")
        roles = sorted(m.role for m in cmd.members)
        names = {m.name for m in cmd.members}
        if roles != ["primary", "secondary", "tertiary"] or len(names) != 3:
            return refused("invalid_relationship", "a triad has three members: a primary, a secondary, a tertiary")
        if not 0.2 <= cmd.active_ttl_s <= 60:
            return refused("invalid_relationship", "active_ttl_s must be between 0.2 and 60 seconds")
        brought = dict.fromkeys(self.licenses, cmd.seed) if cmd.seed in names else {}
        for pooled in cmd.pooled:
            license_id = pooled.license.id
            if license_id in self.licenses or pooled.member not in names:
                continue  # never two copies of one license
            self.licenses[license_id] = pooled.license
            self._in_use[license_id] = ExpiringSet()
            brought[license_id] = pooled.member
        self.triad = Triad(name=cmd.name, members=list(cmd.members), active_ttl_s=cmd.active_ttl_s, brought=brought)
        self.active = None
        self.liveness = {}
        return Outcome(ok=True, data={"triad": cmd.name}, changed=True)

    def _dissolve_triad(self, cmd: c.DissolveTriad, now: float) -> Outcome:
        if self.triad is None:
            return refused("no_relationship", "this server is not in a triad")
        name = self.triad.name
        owners = self.triad.license_owners(sorted(self.licenses))
        self.triad = None
        self.active = None
        self.liveness = {}
        return Outcome(ok=True, data={"dissolved": name, "license_owners": owners}, changed=True)

    def _elected_active(self, cmd: c.ElectedActive, now: float) -> Outcome:
        """Record the election's winner in a new epoch; commands of every earlier epoch are refused.

        Leases are not touched: the new active member honours them for one lease TTL on its own
        lease's own TTL (see `ReclaimExpired.honour_from`), so nobody's lease is extended by a failover.
        """
        member = self.triad.member(cmd.member) if self.triad else None
        if self.triad is None or member is None:
            return refused("not_a_member", f"{cmd.member!r} is not a member of this triad")
        if member.role == "tertiary":
            return refused("tertiary_never_active", "the tertiary keeps a copy and votes; it never serves")
        previous = self.active.member if self.active else None
        self.last_epoch += 1
        self.active = ActiveRecord(member=cmd.member, epoch=self.last_epoch, since=now, until=0.0)
        return Outcome(
            ok=True,
            data={"epoch": self.last_epoch, "previous": previous},
            changed=True,
        )

    # -- backup pair ----------------------------------------------------------------------------

    def _form_backup_pair(self, cmd: c.FormBackupPair, now: float) -> Outcome:
        if self.pair is not None:
            return refused("relationship_exists", f"this server is already in backup pair {self.pair.name!r}")
        if self.triad is not None:
            return refused("relationship_exists", f"this server is already in triad {self.triad.name!r}")
        if cmd.main.name == cmd.backup.name or cmd.main.api_url.rstrip("/") == cmd.backup.api_url.rstrip("/"):
            return refused("invalid_relationship", "the main and the backup must be two different servers")
        if not 0.2 <= cmd.interval_s <= 3600:
            return refused("invalid_relationship", "interval_s must be between 0.2 and 3600 seconds")
        self.pair = BackupPair(name=cmd.name, main=cmd.main, backup=cmd.backup, me=cmd.me, interval_s=cmd.interval_s)
        if cmd.config is not None and cmd.me == "main":
            self._take_config(cmd.config, "")
        return Outcome(ok=True, data={"pair": cmd.name, "me": cmd.me}, changed=True)

    def _leave_backup_pair(self, cmd: c.LeaveBackupPair, now: float) -> Outcome:
        if self.pair is None:
            return refused("no_relationship", "this server is not in a backup pair")
        name, self.pair = self.pair.name, None
        return Outcome(ok=True, data={"left": name}, changed=True)

    def _swap_pair_roles(self, cmd: c.SwapPairRoles, now: float) -> Outcome:
        pair = self.pair
        if pair is None:
            return refused("no_relationship", "this server is not in a backup pair")
        pair.main, pair.backup = pair.backup, pair.main
        pair.me = "backup" if pair.me == "main" else "main"
        return Outcome(ok=True, data={"me": pair.me, "main": pair.main.name}, changed=True)

    def _merge_peer_changes(self, cmd: c.MergePeerChanges, now: float) -> Outcome:
        """Take in the partner's changes. Every merge keeps the newer of two facts, and usage rows at or
        below the cursor are dropped, so a batch applied twice (a retried sync) changes nothing more."""
        pair = self.pair
        if pair is None or cmd.peer != pair.partner.name:
            return refused("not_in_relationship", f"{cmd.peer!r} is not this server's backup partner")
        via = cmd.peer
        from_main = pair.me == "backup"
        if cmd.config is not None and from_main:
            self._take_config(cmd.config, via)
        for theirs in cmd.printers:
            self._merge_printer(theirs, via, take_group=from_main)
        for their_client in cmd.clients:
            self._merge_client(their_client, via)
        usage = [
            msgspec.structs.replace(item.record, server=via) for item in cmd.usage if item.row_id > pair.cursor.usage
        ]
        pair.cursor = PeerCursor(max(pair.cursor.changes, cmd.up_to), max(pair.cursor.usage, cmd.usage_up_to))
        return Outcome(
            ok=True,
            data={"cursor": msgspec.to_builtins(pair.cursor), "usage": len(usage)},
            usage=usage,
            changed=True,
        )

    def _take_config(self, config: c.SharedConfig, via: str) -> None:
        settings = msgspec.structs.replace(config.settings, server_name=self.settings.server_name)
        if settings != self.settings:
            window_changed = settings.printer_window_days != self.settings.printer_window_days
            self.settings = settings
            self.settings_version += 1
            if window_changed:
                self._rebuild_in_use()
        if config.access_rules != self.access_rules:
            self.access_rules = list(config.access_rules)
            self.access_rules_version += 1
        if config.alert_settings != self.alert_settings:
            theirs = config.alert_settings
            self.alert_settings = msgspec.structs.replace(
                theirs, recipients=list(theirs.recipients), muted_kinds=list(theirs.muted_kinds)
            )
            self.alert_settings_version += 1
        groups = list(dict.fromkeys([*BUILTIN_GROUPS, *config.groups]))
        self.groups = groups
        self.mapping_rules = [rule for rule in config.mapping_rules if rule.group in groups]
        for printer in self.printers.values():
            if printer.group not in groups:
                self._move_printer(printer, DEFAULT_GROUP, via)
        self.config_seq = self._mark(via)
        self.config_via = via

    def _merge_printer(self, theirs: Printer, via: str, *, take_group: bool) -> None:
        seen_there = max(theirs.last_used, theirs.peer_last_used)
        group = theirs.group if theirs.group in self.groups else group_for(theirs.identity, self.mapping_rules)
        mine = self.printers.get(theirs.printer_id)
        if mine is None:
            self.printers[theirs.printer_id] = Printer(
                printer_id=theirs.printer_id,
                identity=theirs.identity,
                group=group,
                first_seen=theirs.first_seen,
                last_used=0.0,
                peer_last_used=seen_there,
                seq=self._mark(via),
                via=via,
            )
            self._listings.printer_changed(self.printers[theirs.printer_id])
            return
        changed = False
        if seen_there > mine.peer_last_used:
            mine.peer_last_used = seen_there
            changed = True
        if theirs.first_seen < mine.first_seen:
            mine.first_seen = theirs.first_seen
            changed = True
        if take_group and group != mine.group:
            self._move_printer(mine, group, via)
        elif changed:
            mine.seq, mine.via = self._mark(via), via
            self._listings.printer_changed(mine)

    def _merge_client(self, theirs: Client, via: str) -> None:
        mine = self.clients.get(theirs.client_id)
        if mine is None:
            self.clients[theirs.client_id] = msgspec.structs.replace(theirs, requests=0, seq=self._mark(via), via=via)
            self._listings.client_changed(self.clients[theirs.client_id])
            return
        if theirs.last_seen <= mine.last_seen and theirs.first_seen >= mine.first_seen:
            return
        if theirs.last_seen > mine.last_seen:
            mine.info, mine.source_ip, mine.last_seen = theirs.info, theirs.source_ip, theirs.last_seen
        mine.first_seen = min(mine.first_seen, theirs.first_seen)
        mine.seq, mine.via = self._mark(via), via
        self._listings.client_changed(mine)

    def shared_config(self) -> c.SharedConfig:
        return c.SharedConfig(
            settings=self.settings,
            access_rules=self.access_rules,
            groups=self.groups,
            mapping_rules=self.mapping_rules,
            alert_settings=self.alert_settings,
        )

    def changes_since(self, since: int, peer: str) -> dict[str, Any]:
        """What `peer` has not seen: changes after its cursor that did not come from it (a read; no mutation).

        A cursor of 0 means the partner never synchronized, so the configuration goes along whatever its age."""
        config_new = since == 0 or (self.config_seq > since and self.config_via != peer)
        return {
            "up_to": self.change_seq,
            "config": self.shared_config() if config_new else None,
            "printers": [p for p in self.printers.values() if p.seq > since and p.via != peer],
            "clients": [cl for cl in self.clients.values() if cl.seq > since and cl.via != peer],
        }

    # -- licenses -------------------------------------------------------------------------------

    def _add_license(self, cmd: c.AddLicense, now: float) -> Outcome:
        terms = cmd.terms
        if terms.license_id in self.licenses:
            return refused("license_exists", f"license {terms.license_id} is already installed")
        if terms.expires <= now:
            return refused("license_expired", f"license {terms.license_id} expired")
        if terms.not_before >= terms.expires:
            return refused("invalid_license", "license not_before is not before its expiry")
        if terms.count < 1:
            return refused("invalid_license", "license count must be at least 1")
        if terms.grace_days < 0:
            return refused("invalid_license", "license grace_days must not be negative")
        removed = self.removed_licenses.pop(terms.license_id, None)
        self.licenses[terms.license_id] = License(
            terms=terms,
            key_id=cmd.key_id,
            signature=cmd.signature,
            installed_at=now,
            grace_started_at=removed.grace_started_at if removed else None,
        )
        self._in_use[terms.license_id] = ExpiringSet()
        if removed is not None and removed.product == terms.product and terms.unit == "printers":
            self._recount_printers(terms.license_id, removed.printer_ids, now)
        return Outcome(ok=True, data={"license_id": terms.license_id}, changed=True)

    def _recount_printers(self, license_id: str, printer_ids: list[str], now: float) -> None:
        """Count again the printers a reinstalled license counted when it was removed: those still inside
        the printer window and not taken by another license meanwhile."""
        window = self.settings.printer_window_days * DAY
        for pid in printer_ids:
            printer = self.printers.get(pid)
            if printer is None or printer.license_id is not None or printer.group == BLOCKED_GROUP:
                continue
            if printer.last_used + window > now:
                printer.license_id = license_id
                self._in_use[license_id].put(pid, printer.last_used + window)

    def _remove_license(self, cmd: c.RemoveLicense, now: float) -> Outcome:
        lic = self.licenses.get(cmd.license_id)
        if lic is None:
            return refused("license_not_found", f"no license {cmd.license_id} is installed")
        del self.licenses[cmd.license_id]
        del self._in_use[cmd.license_id]
        usage = []
        for lease in [lease for lease in self.leases.values() if lease.license_id == cmd.license_id]:
            self._drop_lease(lease)
            usage.append(self._lease_record(lease, now, "checkin", False, "license_removed"))
        counted = []
        for printer in self.printers.values():
            if printer.license_id == cmd.license_id:
                printer.license_id = None
                counted.append(printer.printer_id)
        self.removed_licenses[cmd.license_id] = RemovedLicense(
            license_id=cmd.license_id,
            product=lic.terms.product,
            removed_at=now,
            grace_started_at=lic.grace_started_at,
            printer_ids=counted,
        )
        return Outcome(ok=True, data={"license_id": cmd.license_id}, usage=usage, changed=True)

    def _valid_licenses(self, product: str, unit: str, now: float, feature: str | None = None) -> list[License]:
        found = [
            lic
            for lic in self.licenses.values()
            if lic.terms.product == product
            and lic.terms.unit == unit
            and lic.is_valid_at(now)
            and (feature is None or feature in lic.terms.features)
        ]
        found.sort(key=lambda lic: (lic.terms.expires, lic.id))
        return found

    def used(self, license_id: str, now: float) -> int:
        return self._in_use[license_id].live_count(now)

    # -- clients and access ---------------------------------------------------------------------

    def _touch_client(self, info: ClientInfo, source_ip: str, now: float) -> Client:
        key = client_id(info)
        client = self.clients.get(key)
        if client is None:
            client = self.clients[key] = Client(
                client_id=key, info=info, source_ip=source_ip, first_seen=now, last_seen=now
            )
        # Replace, never mutate: `client.info` may be the very ClientInfo a lease holds.
        client.info = msgspec.structs.replace(client.info, version=info.version)
        client.source_ip = source_ip
        client.last_seen = now
        client.requests += 1
        client.seq, client.via = self._mark(), ""
        self._listings.client_changed(client)
        return client

    def _client_access(self, client: ClientInfo, source_ip: str, source_host: str | None) -> tuple[bool, str]:
        return self.access_decision(RequestOrigin(user=client.user, host=client.host, ip=source_ip,
                                                  source_host=source_host))

    def access_decision(self, origin: RequestOrigin) -> tuple[bool, str]:
        """(allowed, why) for a request from `origin`; `why` names the rule that decided."""
        rule = matching_rule(self.access_rules, origin)
        if rule is None:
            allowed = self.settings.default_access_policy == "allow"
            return allowed, f"default policy ({self.settings.default_access_policy})"
        return rule.action == "allow", f"rule {rule.rule_id!r} ({rule.action})"

    # -- printers -------------------------------------------------------------------------------

    def _print_check(self, cmd: c.PrintCheck, now: float) -> Outcome:
        """Nothing is recorded in the printer and client registries until the request is granted: a refused
        one (access, blocked printer, no license, limit) leaves only its usage record."""
        pid = printer_id(cmd.printer)

        def record(granted: bool, reason: str, license_id: str = "") -> UsageRecord:
            return UsageRecord(
                at=now,
                kind="print",
                granted=granted,
                reason=reason,
                product=cmd.product,
                license_id=license_id,
                printer_id=pid,
                printer_name=cmd.printer.name,
                client_host=cmd.client.host,
                client_user=cmd.client.user,
                application=cmd.client.application,
                source_ip=cmd.source_ip,
            )

        allowed, why = self._client_access(cmd.client, cmd.source_ip, cmd.source_host)
        if not allowed:
            return refused("access_denied", f"denied by access {why}", [record(False, "access_denied")])
        known = self.printers.get(pid)
        group = known.group if known is not None else group_for(cmd.printer, self.mapping_rules)
        if group == BLOCKED_GROUP:
            return refused(
                "printer_blocked",
                f"printer {cmd.printer.name!r} is in the Blocked group",
                [record(False, "printer_blocked")],
            )
        licenses = self._valid_licenses(cmd.product, "printers", now)
        if not licenses:
            return refused(
                "no_license",
                f"no valid printer license for product {cmd.product!r}",
                [record(False, "no_license")],
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
                    [record(False, "limit_exceeded")],
                )
            if chosen.grace_started_at is None:
                chosen.grace_started_at = now
            status = "grace"
        printer = known
        if printer is None:
            printer = self.printers[pid] = Printer(
                printer_id=pid, identity=cmd.printer, group=group, first_seen=now, last_used=0.0
            )
        self._touch_client(cmd.client, cmd.source_ip, now)
        if printer.license_id and printer.license_id != chosen.id and printer.license_id in self._in_use:
            self._in_use[printer.license_id].discard(pid)
        printer.license_id = chosen.id
        printer.last_used = now
        printer.uses += 1
        printer.seq, printer.via = self._mark(), ""
        self._listings.printer_changed(printer)
        self._in_use[chosen.id].put(pid, now + window)
        if status == "ok" and self.used(chosen.id, now) > chosen.terms.count:
            status = "grace"
        return Outcome(
            ok=True,
            data={
                "granted": True,
                "printer_id": pid,
                "group": printer.group,
                "license_id": chosen.id,
                "status": status,
                "grace_days_left": round(chosen.grace_seconds_left(now) / DAY, 2),
            },
            usage=[record(True, status, chosen.id)],
            changed=True,
        )

    def _set_printer_group(self, cmd: c.SetPrinterGroup, now: float) -> Outcome:
        printer = self.printers.get(cmd.printer_id)
        if printer is None:
            return refused("printer_not_found", f"no printer {cmd.printer_id}")
        if cmd.group not in self.groups:
            return refused("group_not_found", f"no printer group {cmd.group!r}")
        self._move_printer(printer, cmd.group)
        return Outcome(ok=True, data={"printer_id": printer.printer_id, "group": cmd.group}, changed=True)

    def _move_printer(self, printer: Printer, group: str, via: str = "") -> None:
        """Put a printer in a group; a blocked printer stops counting against a license at once."""
        printer.group = group
        printer.seq, printer.via = self._mark(via), via
        self._listings.printer_changed(printer)
        if group == BLOCKED_GROUP and printer.license_id in self._in_use:
            self._in_use[printer.license_id].discard(printer.printer_id)
            printer.license_id = None

    def _create_group(self, cmd: c.CreatePrinterGroup, now: float) -> Outcome:
        if not GROUP_NAME.match(cmd.name):
            return refused("invalid_group_name", "a group name is 1-64 letters, digits, spaces or . ( ) -")
        if cmd.name.casefold() in {g.casefold() for g in self.groups}:
            return refused("group_exists", f"printer group {cmd.name!r} already exists")
        self.groups.append(cmd.name)
        return Outcome(ok=True, data={"name": cmd.name}, changed=True)

    def _rename_group(self, cmd: c.RenamePrinterGroup, now: float) -> Outcome:
        if cmd.name in BUILTIN_GROUPS:
            return refused("group_protected", f"the built-in group {cmd.name!r} cannot be renamed")
        if cmd.name not in self.groups:
            return refused("group_not_found", f"no printer group {cmd.name!r}")
        if not GROUP_NAME.match(cmd.new_name):
            return refused("invalid_group_name", "a group name is 1-64 letters, digits, spaces or . ( ) -")
        if cmd.new_name.casefold() in {g.casefold() for g in self.groups if g != cmd.name}:
            return refused("group_exists", f"printer group {cmd.new_name!r} already exists")
        self.groups[self.groups.index(cmd.name)] = cmd.new_name
        for printer in self.printers.values():
            if printer.group == cmd.name:
                self._move_printer(printer, cmd.new_name)
        # New rule objects: the old ones belong to the SetMappingRules command that installed them.
        self.mapping_rules = [
            msgspec.structs.replace(rule, group=cmd.new_name) if rule.group == cmd.name else rule
            for rule in self.mapping_rules
        ]
        return Outcome(ok=True, data={"name": cmd.new_name}, changed=True)

    def _delete_group(self, cmd: c.DeletePrinterGroup, now: float) -> Outcome:
        if cmd.name in BUILTIN_GROUPS:
            return refused("group_protected", f"the built-in group {cmd.name!r} cannot be deleted")
        if cmd.name not in self.groups:
            return refused("group_not_found", f"no printer group {cmd.name!r}")
        if any(rule.group == cmd.name for rule in self.mapping_rules):
            return refused("group_in_use", f"a mapping rule still sends printers to {cmd.name!r}")
        self.groups.remove(cmd.name)
        for printer in self.printers.values():
            if printer.group == cmd.name:
                self._move_printer(printer, DEFAULT_GROUP)
        return Outcome(ok=True, data={"name": cmd.name}, changed=True)

    def _set_mapping_rules(self, cmd: c.SetMappingRules, now: float) -> Outcome:
        problem = validate_mapping_rules(cmd.rules, set(self.groups))
        if problem:
            return refused("invalid_mapping_rules", problem)
        self.mapping_rules = list(cmd.rules)
        return Outcome(ok=True, data={"rules": len(cmd.rules)}, changed=True)

    # -- seats ----------------------------------------------------------------------------------

    def _lease_record(self, lease: Lease, now: float, kind: str, granted: bool, reason: str) -> UsageRecord:
        return UsageRecord(
            at=now,
            kind=kind,
            granted=granted,
            reason=reason,
            product=lease.product,
            license_id=lease.license_id,
            lease_id=lease.lease_id,
            client_host=lease.client.host,
            client_user=lease.client.user,
            application=lease.client.application,
            source_ip=lease.source_ip,
        )

    def _drop_lease(self, lease: Lease) -> None:
        del self.leases[lease.lease_id]
        self._listings.lease_dropped(lease)
        self._held_count[lease.license_id] -= 1
        self.lease_by_request.discard(lease)
        if lease.license_id in self._in_use:
            self._in_use[lease.license_id].discard(lease.lease_id)

    @staticmethod
    def lease_view(lease: Lease) -> dict[str, Any]:
        return {
            "lease_id": lease.lease_id,
            "license_id": lease.license_id,
            "product": lease.product,
            "feature": lease.feature,
            "expires_at": lease.expires_at,
            "ttl_s": lease.ttl_s,
        }

    def _checkout(self, cmd: c.Checkout, now: float) -> Outcome:
        """The access rules decide first, then a retry of this client's own request (same request id, same
        declared client, same source address) gets its lease back; another client's request id names no
        lease of theirs. The client registry records the client only once a seat is granted."""

        def record(granted: bool, reason: str, license_id: str = "") -> UsageRecord:
            return UsageRecord(
                at=now,
                kind="checkout",
                granted=granted,
                reason=reason,
                product=cmd.product,
                license_id=license_id,
                lease_id=cmd.lease_id if granted else "",
                client_host=cmd.client.host,
                client_user=cmd.client.user,
                application=cmd.client.application,
                source_ip=cmd.source_ip,
            )

        allowed, why = self._client_access(cmd.client, cmd.source_ip, cmd.source_host)
        if not allowed:
            return refused("access_denied", f"denied by access {why}", [record(False, "access_denied")])
        key = request_key(cmd.client, cmd.source_ip, cmd.request_id)
        existing = self.leases.get(self.lease_by_request.get(key, ""))
        if existing is not None and existing.expires_at > now:
            if (existing.product, existing.feature) != (cmd.product, cmd.feature):
                return refused("request_conflict", f"request id {cmd.request_id} was used for another product")
            self._touch_client(cmd.client, cmd.source_ip, now)
            return Outcome(ok=True, data={**self.lease_view(existing), "repeated": True}, changed=True)
        if cmd.lease_id in self.leases and (existing is None or existing.lease_id != cmd.lease_id):
            return refused("lease_exists", f"lease id {cmd.lease_id} is already in use")
        licenses = self._valid_licenses(cmd.product, "seats", now, cmd.feature)
        if not licenses:
            what = f"product {cmd.product!r}" + (f" with feature {cmd.feature!r}" if cmd.feature else "")
            return refused("no_license", f"no valid seat license for {what}", [record(False, "no_license")])
        # A member that has just taken over honours every lease still held for one more of its TTL (see
        # `Checkout.honour_from`): meanwhile a seat counts as taken while its lease is held at all.
        honouring = cmd.honour_from > 0 and now < cmd.honour_from + self.settings.lease_ttl_s
        chosen = next(
            (
                lic
                for lic in licenses
                if (self._held_count.get(lic.id, 0) if honouring else self.used(lic.id, now)) < lic.terms.count
            ),
            None,
        )
        if chosen is None:
            total = sum(lic.terms.count for lic in licenses)
            return refused(
                "limit_exceeded",
                f"all {total} seats of {cmd.product!r} are in use",
                [record(False, "limit_exceeded")],
            )
        if existing is not None:
            self._drop_lease(existing)
        ttl = min(cmd.ttl_s or self.settings.lease_ttl_s, self.settings.lease_ttl_s)
        lease = Lease(
            lease_id=cmd.lease_id,
            request_id=cmd.request_id,
            license_id=chosen.id,
            product=cmd.product,
            feature=cmd.feature,
            client=cmd.client,
            source_ip=cmd.source_ip,
            granted_at=now,
            expires_at=now + ttl,
            ttl_s=ttl,
        )
        self.leases[lease.lease_id] = lease
        self._listings.lease_added(lease)
        self._held_count[chosen.id] = self._held_count.get(chosen.id, 0) + 1
        self._touch_client(cmd.client, cmd.source_ip, now)
        self.lease_by_request.add(lease)
        self._in_use[chosen.id].put(lease.lease_id, lease.expires_at)
        return Outcome(
            ok=True,
            data={**self.lease_view(lease), "repeated": False},
            usage=[record(True, "ok", chosen.id)],
            changed=True,
        )

    def _heartbeat(self, cmd: c.Heartbeat, now: float) -> Outcome:
        """Renew each request's leases that are still held and that the access rules still allow.

        A lease the rules now deny is not renewed. When the denied heartbeat comes from the address the
        lease was checked out from, the rules deny the lease's own holder: the lease is released at once
        and its seat freed for someone allowed. From any other address the lease is left as it is, so
        whoever else learnt a lease id cannot end it from a denied place. Each request writes at most one
        usage record for leases it named that are not held and one for leases it was denied, besides the
        end record of each lease it released.
        """
        renewed: dict[str, float] = {}
        lost: list[str] = []
        denied: dict[str, str] = {}
        usage: list[UsageRecord] = []
        renewals = [(renewal, True) for renewal in cmd.renewals]
        if cmd.lease_ids:
            renewals.append((c.Renewal(cmd.lease_ids, "", ""), False))
        for renewal, checked in renewals:
            gone: list[str] = []
            refused_here: list[str] = []
            for lease_id in renewal.lease_ids:
                lease = self.leases.get(lease_id)
                if lease is None or (lease.expires_at <= now and cmd.honour_from + lease.ttl_s <= now):
                    gone.append(lease_id)
                    continue
                if checked:
                    allowed, why = self._client_access(lease.client, renewal.source_ip, renewal.source_host)
                    if not allowed:
                        if renewal.source_ip == lease.source_ip:  # its end record is this request's record
                            self._drop_lease(lease)
                            usage.append(self._lease_record(lease, now, "checkin", False, "access_denied"))
                            denied[lease_id] = f"denied by access {why}; the lease was released"
                        else:
                            refused_here.append(lease_id)
                            denied[lease_id] = f"denied by access {why}"
                        continue
                lease.expires_at = now + lease.ttl_s
                self._in_use[lease.license_id].put(lease_id, lease.expires_at)
                renewed[lease_id] = lease.expires_at
            lost += gone
            for reason, ids in (("lease_expired", gone), ("access_denied", refused_here)):
                if ids:
                    usage.append(UsageRecord(at=now, kind="heartbeat", granted=False, reason=reason,
                                             lease_id=ids[0], source_ip=renewal.source_ip))
        return Outcome(
            ok=True,
            data={"renewed": renewed, "expired": lost, "denied": denied},
            usage=usage,
            changed=bool(renewed or usage),
        )

    def _checkin(self, cmd: c.Checkin, now: float) -> Outcome:
        """A check-in the access rules deny is refused; as with a heartbeat (see `_heartbeat`), one from the
        address the lease was checked out from also releases it, since the rules now deny its holder."""
        lease = self.leases.get(cmd.lease_id)
        if lease is not None and cmd.source_host is not None:
            allowed, why = self._client_access(lease.client, cmd.source_ip, cmd.source_host)
            if not allowed:
                if cmd.source_ip != lease.source_ip:
                    record = UsageRecord(at=now, kind="checkin", granted=False, reason="access_denied",
                                         product=lease.product, source_ip=cmd.source_ip)
                    return refused("access_denied", f"denied by access {why}", [record])
                self._drop_lease(lease)
                return refused(
                    "access_denied",
                    f"denied by access {why}; the lease was released",
                    [self._lease_record(lease, now, "checkin", False, "access_denied")],
                )
        return self._release(cmd.lease_id, now, granted=True, reason="ok", flag="released")

    def _revoke_lease(self, cmd: c.RevokeLease, now: float) -> Outcome:
        return self._release(cmd.lease_id, now, granted=False, reason="revoked", flag="revoked")

    def _release(self, lease_id: str, now: float, *, granted: bool, reason: str, flag: str) -> Outcome:
        """End a lease, by its holder (checkin) or by an administrator (revoke)."""
        lease = self.leases.get(lease_id)
        if lease is None:
            return refused("lease_not_found", f"no lease {lease_id} is held")
        self._drop_lease(lease)
        return Outcome(
            ok=True,
            data={"lease_id": lease.lease_id, flag: True},
            usage=[self._lease_record(lease, now, "checkin", granted, reason)],
            changed=True,
        )

    def _reclaim_expired(self, cmd: c.ReclaimExpired, now: float) -> Outcome:
        expired = [
            lease
            for lease in self.leases.values()
            if lease.expires_at <= now and cmd.honour_from + lease.ttl_s <= now
        ]
        for lease in expired:
            self._drop_lease(lease)
        return Outcome(
            ok=True,
            data={"reclaimed": [lease.lease_id for lease in expired]},
            usage=[self._lease_record(lease, now, "checkin", False, "lease_expired") for lease in expired],
            changed=bool(expired),
        )

    def _prune_registries(self, cmd: c.PruneRegistries, now: float) -> Outcome:
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
        return Outcome(
            ok=True, data={"printers": printers, "clients": clients}, changed=bool(printers or clients)
        )

    # -- settings, access rules, users ----------------------------------------------------------

    def _update_settings(self, cmd: c.UpdateSettings, now: float) -> Outcome:
        if cmd.expected_version is not None and cmd.expected_version != self.settings_version:
            return refused(
                "version_conflict",
                f"settings are at version {self.settings_version}, not {cmd.expected_version}",
            )
        try:
            updated = merged_settings(self.settings, cmd.changes)
        except SettingsError as exc:
            return refused("invalid_settings", str(exc))
        window_changed = updated.printer_window_days != self.settings.printer_window_days
        self.settings = updated
        self.settings_version += 1
        self.settings_history.append({"version": self.settings_version, "at": now, "changes": cmd.changes})
        del self.settings_history[:-SETTINGS_HISTORY]
        if window_changed:
            self._rebuild_in_use()
        return Outcome(ok=True, data={"version": self.settings_version}, changed=True)

    def _set_access_rules(self, cmd: c.SetAccessRules, now: float) -> Outcome:
        problem = validate_rules(cmd.rules)
        if problem:
            return refused("invalid_access_rules", problem)
        if cmd.default_policy not in (None, "allow", "deny"):
            return refused("invalid_access_rules", "default_policy must be 'allow' or 'deny'")
        self.access_rules = canonical_rules(cmd.rules)
        self.access_rules_version += 1
        if cmd.default_policy is not None and cmd.default_policy != self.settings.default_access_policy:
            self.settings = msgspec.structs.replace(self.settings, default_access_policy=cmd.default_policy)
            self.settings_version += 1
        return Outcome(ok=True, data={"version": self.access_rules_version}, changed=True)

    def _set_alert_settings(self, cmd: c.SetAlertSettings, now: float) -> Outcome:
        if cmd.expected_version is not None and cmd.expected_version != self.alert_settings_version:
            return refused(
                "version_conflict",
                f"alert settings are at version {self.alert_settings_version}, not {cmd.expected_version}",
            )
        problem = alert_settings_problem(cmd.settings)
        if problem:
            return refused("invalid_alert_settings", problem)
        # A copy: the command object may be kept (journal queue, Raft log) and must not alias live state.
        self.alert_settings = msgspec.structs.replace(
            cmd.settings, recipients=list(cmd.settings.recipients), muted_kinds=list(cmd.settings.muted_kinds)
        )
        self.alert_settings_version += 1
        return Outcome(ok=True, data={"version": self.alert_settings_version}, changed=True)

    def _put_user(self, cmd: c.PutAdminUser, now: float) -> Outcome:
        user = cmd.user
        if not 1 <= len(user.username) <= 64 or not user.username.isprintable():
            return refused("invalid_user", "a username is 1 to 64 printable characters")
        previous = self.users.get(user.username)
        if previous and previous.role == "admin" and user.role != "admin" and self._admins() == 1:
            return refused(
                "last_admin", "The last admin cannot lose the admin role: give another user the admin role first."
            )
        version = previous.password_version + 1 if previous else 1
        self.users[user.username] = msgspec.structs.replace(user, password_version=version)
        return Outcome(ok=True, data={"username": user.username, "role": user.role}, changed=True)

    def _delete_user(self, cmd: c.DeleteAdminUser, now: float) -> Outcome:
        user = self.users.get(cmd.username)
        if user is None:
            return refused("user_not_found", f"no user {cmd.username!r}")
        if user.role == "admin" and self._admins() == 1:
            return refused("last_admin", "The last admin cannot be deleted: give another user the admin role first.")
        del self.users[cmd.username]
        return Outcome(ok=True, data={"username": cmd.username}, changed=True)

    def _rehash_user(self, cmd: c.RehashAdminPassword, now: float) -> Outcome:
        user = self.users.get(cmd.username)
        if user is None or user.password_hash != cmd.old_hash:
            return refused("password_changed", f"the password of {cmd.username!r} changed meanwhile; nothing to do")
        self.users[cmd.username] = msgspec.structs.replace(user, password_hash=cmd.new_hash)
        return Outcome(ok=True, data={"username": cmd.username}, changed=True)

    def _admins(self) -> int:
        return sum(1 for user in self.users.values() if user.role == "admin")

    # -- snapshots and views --------------------------------------------------------------------

    def _rebuild_in_use(self) -> None:
        window = self.settings.printer_window_days * DAY
        members: dict[str, list[tuple[float, str]]] = {license_id: [] for license_id in self.licenses}
        for printer in self.printers.values():
            if printer.license_id in members:
                members[printer.license_id].append((printer.last_used + window, printer.printer_id))
        for lease in self.leases.values():
            if lease.license_id in members:
                members[lease.license_id].append((lease.expires_at, lease.lease_id))
        self._in_use = {license_id: ExpiringSet() for license_id in self.licenses}
        for license_id, expiring in self._in_use.items():
            expiring.fill(members[license_id])

    def snapshot_bytes(self) -> bytes:
        """The whole state, encoded; replaying the journal after it gives back the same state."""
        return msgspec.json.encode(self.snapshot_struct())

    def snapshot_struct(self) -> Snapshot:
        """The whole state as a `Snapshot` that shares this state's records (encode it before changing them)."""
        return Snapshot(
            licenses=list(self.licenses.values()),
            printers=list(self.printers.values()),
            leases=list(self.leases.values()),
            clients=list(self.clients.values()),
            groups=self.groups,
            mapping_rules=self.mapping_rules,
            access_rules=self.access_rules,
            access_rules_version=self.access_rules_version,
            settings=self.settings,
            settings_version=self.settings_version,
            settings_history=self.settings_history,
            users=list(self.users.values()),
            triad=self.triad,
            active=self.active,
            liveness=self.liveness,
            last_epoch=self.last_epoch,
            time_floor=self.time_floor,
            alert_settings=self.alert_settings,
            alert_settings_version=self.alert_settings_version,
            pair=self.pair,
            change_seq=self.change_seq,
            own_change_seq=self.own_change_seq,
            config_seq=self.config_seq,
            config_via=self.config_via,
            removed_licenses=list(self.removed_licenses.values()),
        )

    def snapshot(self) -> Snapshot:
        return msgspec.json.decode(self.snapshot_bytes(), type=Snapshot)

    @classmethod
    def from_snapshot(cls, snap: Snapshot, *, values_shared: bool = False) -> LicenseState:
        """The state `snap` holds; its leases, printers and clients are made to share the values they repeat
        (`core.sharing`), unless `values_shared` says they were as they were decoded."""
        state = cls()
        if not values_shared:
            share_values(snap.leases, snap.printers, snap.clients)
        state.licenses = {lic.id: lic for lic in snap.licenses}
        state.removed_licenses = {removed.license_id: removed for removed in snap.removed_licenses}
        state.printers = {p.printer_id: p for p in snap.printers}
        state.leases = {lease.lease_id: lease for lease in snap.leases}
        for lease in snap.leases:
            state._held_count[lease.license_id] = state._held_count.get(lease.license_id, 0) + 1
        state.lease_by_request = LeaseRequests.of(snap.leases)
        state.clients = {cl.client_id: cl for cl in snap.clients}
        state.groups = list(snap.groups)
        state.mapping_rules = list(snap.mapping_rules)
        state.access_rules = list(snap.access_rules)
        state.access_rules_version = snap.access_rules_version
        state.settings = snap.settings
        state.settings_version = snap.settings_version
        state.settings_history = list(snap.settings_history)
        state.users = {u.username: u for u in snap.users}
        state.triad = snap.triad
        state.active = snap.active
        state.liveness = dict(snap.liveness)
        state.last_epoch = snap.last_epoch
        state.time_floor = snap.time_floor
        state.alert_settings = snap.alert_settings
        state.alert_settings_version = snap.alert_settings_version
        state.pair = snap.pair
        state.change_seq = snap.change_seq
        state.own_change_seq = snap.own_change_seq
        state.config_seq = snap.config_seq
        state.config_via = snap.config_via
        state._rebuild_in_use()
        state._listings = Listings.of(state.leases.values(), state.printers.values(), state.clients.values())
        return state

    def listings(self) -> Listings:
        """The sorted orders of leases, printers and clients (rebuilt if a record was ever put in without them)."""
        if not self._listings.matches(len(self.leases), len(self.printers), len(self.clients)):
            self._listings = Listings.of(self.leases.values(), self.printers.values(), self.clients.values())
        return self._listings

    def license_status(self, lic: License, now: float) -> dict[str, Any]:
        # Not `used()`: its pruning at this reader's clock would make a replica that is replaying the
        # log (or applying entries stamped earlier) count fewer seats than the others.
        used = self._in_use[lic.id].count_live(now)
        if now >= lic.terms.expires:
            status = "expired"
        elif now < lic.terms.not_before:
            status = "not_yet_valid"
        elif used > lic.terms.count:
            status = "grace" if lic.grace_seconds_left(now) > 0 else "exhausted"
        elif lic.terms.unit == "seats" and used >= lic.terms.count:
            status = "full"
        else:
            status = "ok"
        return {
            **msgspec.to_builtins(lic.terms),
            "key_id": lic.key_id,
            "installed_at": lic.installed_at,
            "used": used,
            "status": status,
            "grace_started_at": lic.grace_started_at,
            "grace_days_left": round(lic.grace_seconds_left(now) / DAY, 2),
        }

    def printer_view(self, printer: Printer, now: float) -> dict[str, Any]:
        window = self.settings.printer_window_days * DAY
        return {
            **msgspec.to_builtins(printer),
            "in_window": max(printer.last_used, printer.peer_last_used) + window > now,
            "counted": printer.license_id is not None
            and printer.license_id in self._in_use
            and printer.printer_id in self._in_use[printer.license_id]
            and printer.last_used + window > now,
        }
