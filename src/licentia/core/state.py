"""The deterministic license state machine.

`LicenseState.apply(command, now)` is the one place license state changes. It
does no I/O and reads no clock, so a standalone server replaying its SQLite
journal and the members of a triad applying the Raft log all reach the same
state. Every handler validates first and mutates after, so a refused command
changes nothing.

The state is put together here from its parts: its data (`state_data`), the indexes derived from them
(`indexed_state`), and the handlers of each concern (`seats`, `printing`, `administration`,
`relationships`); `HANDLERS` is the table of which handler applies which command. Read views are in `views`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from licentia.core import commands as c
from licentia.core.administration import Administration
from licentia.core.indexed_state import DAY
from licentia.core.lease_requests import LeaseRequests
from licentia.core.listing import ListingOrders, Listings
from licentia.core.outcomes import Outcome, R, refused
from licentia.core.printing import Printing
from licentia.core.relationships import Relationships
from licentia.core.seats import Seats
from licentia.core.sharing import share_values
from licentia.core.state_data import Snapshot, snapshot_of

__all__ = ["DAY", "HANDLERS", "LicenseState", "Outcome", "Snapshot"]


class LicenseState(Seats, Printing, Administration, Relationships):
    def apply(self, command: c.Command[R], now: float) -> Outcome[R]:
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

    def _apply(self, command: c.Command[R], now: float) -> Outcome[R]:
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
        return HANDLERS[type(command)](self, command, now)

    # -- snapshots ------------------------------------------------------------------------------

    def snapshot_bytes(self) -> bytes:
        """The whole state, encoded; replaying the journal after it gives back the same state."""
        return msgspec.json.encode(self.snapshot_struct())

    def snapshot_struct(self) -> Snapshot:
        """The whole state as a `Snapshot` that shares this state's records (encode it before changing them)."""
        return snapshot_of(self)

    def snapshot(self) -> Snapshot:
        return msgspec.json.decode(self.snapshot_bytes(), type=Snapshot)

    @classmethod
    def from_snapshot(cls, snap: Snapshot, *, values_shared: bool = False,
                      orders: ListingOrders | None = None) -> LicenseState:
        """The state `snap` holds; its leases, printers and clients are made to share the values they repeat
        (`core.sharing`), unless `values_shared` says they were as they were decoded. The list orders are taken
        from `orders` (what the snapshot file holds, `Listings.positions`) where they fit, else sorted."""
        state = cls()
        if not values_shared:
            share_values(snap.leases, snap.printers, snap.clients)
        state.restore(snap)
        for lease in snap.leases:
            state._held_count[lease.license_id] = state._held_count.get(lease.license_id, 0) + 1
        state.lease_by_request = LeaseRequests.of(snap.leases)
        state._rebuild_in_use()
        listings = None
        if orders is not None and (len(state.leases), len(state.printers), len(state.clients)) == (
                len(snap.leases), len(snap.printers), len(snap.clients)):  # no record listed twice
            listings = Listings.in_order(snap.leases, snap.printers, snap.clients, orders)
        if listings is None:
            listings = Listings.of(state.leases.values(), state.printers.values(), state.clients.values())
        state._listings = listings
        return state


HANDLERS: dict[type[c.Command[Any]], Callable[[LicenseState, Any, float], Outcome[Any]]] = {
    c.AddLicense: LicenseState._add_license,
    c.RemoveLicense: LicenseState._remove_license,
    c.PrintCheck: LicenseState._print_check,
    c.Checkout: LicenseState._checkout,
    c.Heartbeat: LicenseState._heartbeat,
    c.Checkin: LicenseState._checkin,
    c.RevokeLease: LicenseState._revoke_lease,
    c.ReclaimExpired: LicenseState._reclaim_expired,
    c.PruneRegistries: LicenseState._prune_registries,
    c.CreatePrinterGroup: LicenseState._create_group,
    c.RenamePrinterGroup: LicenseState._rename_group,
    c.DeletePrinterGroup: LicenseState._delete_group,
    c.SetMappingRules: LicenseState._set_mapping_rules,
    c.SetPrinterGroup: LicenseState._set_printer_group,
    c.UpdateSettings: LicenseState._update_settings,
    c.SetAccessRules: LicenseState._set_access_rules,
    c.SetAlertSettings: LicenseState._set_alert_settings,
    c.PutAdminUser: LicenseState._put_user,
    c.DeleteAdminUser: LicenseState._delete_user,
    c.RehashAdminPassword: LicenseState._rehash_user,
    c.FormTriad: LicenseState._form_triad,
    c.DissolveTriad: LicenseState._dissolve_triad,
    c.ElectedActive: LicenseState._elected_active,
    c.FormBackupPair: LicenseState._form_backup_pair,
    c.LeaveBackupPair: LicenseState._leave_backup_pair,
    c.SwapPairRoles: LicenseState._swap_pair_roles,
    c.MergePeerChanges: LicenseState._merge_peer_changes,
}
