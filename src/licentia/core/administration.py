"""Administration: installing and removing licenses, settings, access rules, alert settings and users.

A removed license leaves a `RemovedLicense` behind, so installing it again resumes its grace period and
counts again the printers it counted. The last admin can neither be deleted nor lose the admin role.
"""

from __future__ import annotations

import msgspec

from licentia.core import commands as c
from licentia.core.access import canonical_rules, validate_rules
from licentia.core.alert_settings import alert_settings_problem
from licentia.core.indexed_state import DAY, IndexedState
from licentia.core.model import BLOCKED_GROUP, License, RemovedLicense
from licentia.core.outcomes import Applied, LicenseChanged, Outcome, UserNamed, UserPut, Versioned, refused
from licentia.core.settings import SettingsError, merged_settings

SETTINGS_HISTORY = 50


class Administration(IndexedState):
    def _add_license(self, cmd: c.AddLicense, now: float) -> Outcome[LicenseChanged]:
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
        self._in_use[terms.license_id] = self._new_in_use(self.licenses[terms.license_id])
        if removed is not None and removed.product == terms.product and terms.unit == "printers":
            self._recount_printers(terms.license_id, removed.printer_ids, now)
        return Applied(LicenseChanged(terms.license_id), changed=True)

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
                self._in_use[license_id].put(printer.printer_id, printer.last_used)

    def _remove_license(self, cmd: c.RemoveLicense, now: float) -> Outcome[LicenseChanged]:
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
        return Applied(LicenseChanged(cmd.license_id), usage=usage, changed=True)


    # -- settings, access rules, users ----------------------------------------------------------

    def _update_settings(self, cmd: c.UpdateSettings, now: float) -> Outcome[Versioned]:
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
        return Applied(Versioned(self.settings_version), changed=True)

    def _set_access_rules(self, cmd: c.SetAccessRules, now: float) -> Outcome[Versioned]:
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
        return Applied(Versioned(self.access_rules_version), changed=True)

    def _set_alert_settings(self, cmd: c.SetAlertSettings, now: float) -> Outcome[Versioned]:
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
        return Applied(Versioned(self.alert_settings_version), changed=True)

    def _put_user(self, cmd: c.PutAdminUser, now: float) -> Outcome[UserPut]:
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
        return Applied(UserPut(username=user.username, role=user.role), changed=True)

    def _delete_user(self, cmd: c.DeleteAdminUser, now: float) -> Outcome[UserNamed]:
        user = self.users.get(cmd.username)
        if user is None:
            return refused("user_not_found", f"no user {cmd.username!r}")
        if user.role == "admin" and self._admins() == 1:
            return refused("last_admin", "The last admin cannot be deleted: give another user the admin role first.")
        del self.users[cmd.username]
        return Applied(UserNamed(cmd.username), changed=True)

    def _rehash_user(self, cmd: c.RehashAdminPassword, now: float) -> Outcome[UserNamed]:
        user = self.users.get(cmd.username)
        if user is None or user.password_hash != cmd.old_hash:
            return refused("password_changed", f"the password of {cmd.username!r} changed meanwhile; nothing to do")
        self.users[cmd.username] = msgspec.structs.replace(user, password_hash=cmd.new_hash)
        return Applied(UserNamed(cmd.username), changed=True)

    def _admins(self) -> int:
        return sum(1 for user in self.users.values() if user.role == "admin")

