"""Relationships: the triad (its members, who is active in which epoch) and the backup pair (forming,
leaving, swapping roles, and merging what the partner changed).

Every merge keeps the newer of two facts, so a batch of the partner's changes applied twice changes nothing
more; `changes_since` is what this server has that its partner has not seen.
"""

from __future__ import annotations

from typing import Any

import msgspec

from licentia.core import commands as c
from licentia.core.indexed_state import IndexedState
from licentia.core.model import (
    BUILTIN_GROUPS,
    DEFAULT_GROUP,
    ActiveRecord,
    BackupPair,
    Client,
    PeerCursor,
    Printer,
    Triad,
)
from licentia.core.outcomes import (
    Applied,
    Elected,
    Outcome,
    PairFormed,
    PairLeft,
    PeerChangesMerged,
    RolesSwapped,
    TriadDissolved,
    TriadFormed,
    refused,
)
from licentia.core.printers import group_for


class Relationships(IndexedState):
    # -- triad: who is active -------------------------------------------------------------------

    def _form_triad(self, cmd: c.FormTriad, now: float) -> Outcome[TriadFormed]:
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
            self._in_use[license_id] = self._new_in_use(pooled.license)
            brought[license_id] = pooled.member
        self.triad = Triad(name=cmd.name, members=list(cmd.members), active_ttl_s=cmd.active_ttl_s, brought=brought)
        self.active = None
        self.liveness = {}
        return Applied(TriadFormed(cmd.name), changed=True)

    def _dissolve_triad(self, cmd: c.DissolveTriad, now: float) -> Outcome[TriadDissolved]:
        if self.triad is None:
            return refused("no_relationship", "this server is not in a triad")
        name = self.triad.name
        owners = self.triad.license_owners(sorted(self.licenses))
        self.triad = None
        self.active = None
        self.liveness = {}
        return Applied(TriadDissolved(dissolved=name, license_owners=owners), changed=True)

    def _elected_active(self, cmd: c.ElectedActive, now: float) -> Outcome[Elected]:
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
        return Applied(Elected(epoch=self.last_epoch, previous=previous), changed=True)

    # -- backup pair ----------------------------------------------------------------------------

    def _form_backup_pair(self, cmd: c.FormBackupPair, now: float) -> Outcome[PairFormed]:
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
        return Applied(PairFormed(pair=cmd.name, me=cmd.me), changed=True)

    def _leave_backup_pair(self, cmd: c.LeaveBackupPair, now: float) -> Outcome[PairLeft]:
        if self.pair is None:
            return refused("no_relationship", "this server is not in a backup pair")
        name, self.pair = self.pair.name, None
        return Applied(PairLeft(name), changed=True)

    def _swap_pair_roles(self, cmd: c.SwapPairRoles, now: float) -> Outcome[RolesSwapped]:
        pair = self.pair
        if pair is None:
            return refused("no_relationship", "this server is not in a backup pair")
        pair.main, pair.backup = pair.backup, pair.main
        pair.me = "backup" if pair.me == "main" else "main"
        return Applied(RolesSwapped(me=pair.me, main=pair.main.name), changed=True)

    def _merge_peer_changes(self, cmd: c.MergePeerChanges, now: float) -> Outcome[PeerChangesMerged]:
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
        return Applied(
            PeerChangesMerged(cursor=pair.cursor, usage=len(usage)),
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
            self._listings.printer_added(self.printers[theirs.printer_id])
            return
        changed = False
        if seen_there > mine.peer_last_used:
            self._listings.printer_changing(mine)
            mine.peer_last_used = seen_there
            self._listings.printer_changed(mine)
            changed = True
        if theirs.first_seen < mine.first_seen:
            mine.first_seen = theirs.first_seen
            changed = True
        if take_group and group != mine.group:
            self._move_printer(mine, group, via)
        elif changed:
            mine.seq, mine.via = self._mark(via), via

    def _merge_client(self, theirs: Client, via: str) -> None:
        mine = self.clients.get(theirs.client_id)
        if mine is None:
            self.clients[theirs.client_id] = msgspec.structs.replace(theirs, requests=0, seq=self._mark(via), via=via)
            self._listings.client_added(self.clients[theirs.client_id])
            return
        if theirs.last_seen <= mine.last_seen and theirs.first_seen >= mine.first_seen:
            return
        filed_host = self._listings.client_changing(mine)
        if theirs.last_seen > mine.last_seen:
            mine.info, mine.source_ip, mine.last_seen = theirs.info, theirs.source_ip, theirs.last_seen
        mine.first_seen = min(mine.first_seen, theirs.first_seen)
        mine.seq, mine.via = self._mark(via), via
        self._listings.client_changed(mine, filed_host)

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

