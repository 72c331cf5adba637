"""A license server: the core state machine, made durable by the SQLite journal or by a triad's etcd log.

This module is the composition root. The HTTP layer calls `execute` with a
command, which the server hands to its `Relationship` (`cluster.relationship`):
standalone and in a backup pair the journal stamps it with the clock, applies it
to the core and waits until SQLite has it on disk; in a triad it is committed
through etcd with the epoch of the claim this member holds, and every member
applies it once committed. Either way the outcome is answered only once the
change is durable. The server drives every relationship the same way; joining
and leaving one swaps which it holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import itertools
import logging
import os
import secrets
import shutil
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import msgspec

from licentia import __version__
from licentia.alerts.service import AlertService
from licentia.api.credential_cache import VerifiedCredentials
from licentia.api.host_names import VerifiedHostNames
from licentia.api.login_limits import LoginLimits
from licentia.api.passwords import PasswordHasher, is_password_hash
from licentia.cluster.backup_pair import BackupLink
from licentia.cluster.heartbeats import HeartbeatCoalescer
from licentia.cluster.peer_auth import ReplayGuard
from licentia.cluster.relationship import Relationship, Standalone
from licentia.cluster.relationship_status import RelationshipStatus
from licentia.cluster.role_events import RoleEvents
from licentia.cluster.sealing import load_or_create_peer_key, public_b64
from licentia.cluster.triad_seam import CommitFailed, NotActive, TriadConfig
from licentia.config import Config, ConfigError
from licentia.core.commands import (
    AddLicense,
    Command,
    DissolveTriad,
    FormBackupPair,
    FormTriad,
    LeaveBackupPair,
    PruneRegistries,
    PutAdminUser,
    ReclaimExpired,
    RemoveLicense,
    UpdateSettings,
)
from licentia.core.model import AdminUser, Client, PooledLicense, Printer
from licentia.core.outcomes import Outcome, R
from licentia.core.state import DAY, LicenseState, Snapshot
from licentia.grants import GrantSigner
from licentia.license_file import TrustedIssuers, check_binding, key_id, public_key_pem, read_issuer_key
from licentia.store import data_directory
from licentia.store.data_directory import DataDirectory, make_private, write_private
from licentia.store.journal import JournalFailure, SqliteJournal
from licentia.store.revoked_tokens import RevokedTokens
from licentia.tls import ServerCertificate

if TYPE_CHECKING:
    from licentia.cluster.triad import TriadNode

log = logging.getLogger("licentia.server")

GRANT_REUSE_S = 60.0
PRUNE_SLICE = 2000  # printers or clients looked at per pruning command: a bounded pause of the loop each


class LicenseServer:
    def __init__(self, config: Config, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.clock = clock
        self.journal: SqliteJournal
        self.state: LicenseState
        self.trusted: TrustedIssuers
        self.server_id = ""
        self.certificate: ServerCertificate | None = None
        self.peer_replays = ReplayGuard()  # nonces of the relationship's signed requests seen lately
        self.token_secret = b""
        self.started_at = 0.0
        self._tasks: list[asyncio.Task[None]] = []
        self._lock_fd: int | None = None
        self._last_now = 0.0
        self.install_on_start: list[Path] = []
        self.relation: Relationship = Standalone(self)
        self._leaving: TriadNode | None = None  # the triad this server is leaving (see leave_triad)
        self.role_events = RoleEvents()  # the Redundancy page's timeline (cluster.role_events)
        self.heartbeats = HeartbeatCoalescer(self.execute, lambda: self.state.leases)
        self.host_names = VerifiedHostNames()
        # (kind, product, client) -> (signed at, token, expires at): strings and floats only, so the collector untracks
        # each entry's tuple and its full passes do not walk up to 10,000 of them (tests/api/test_heartbeat_grants.py).
        self._grant_cache: dict[tuple[str, str, str], tuple[float, str, float]] = {}
        self.alerts = AlertService(self)
        # (command type, outcome code) -> count, for the metrics (licentia.api.metrics); see `execute`.
        self.outcomes: dict[tuple[type, str], int] = {}
        # Admin logins (licentia.api.auth): scrypt off the event loop, failed-login locks, a short cache of
        # verified HTTP Basic credentials, and the tokens ended by logging out.
        self.password_hasher = PasswordHasher()
        self.login_limits = LoginLimits()
        self.verified_credentials = VerifiedCredentials()
        self.revoked_tokens: RevokedTokens

    # -- lifecycle ------------------------------------------------------------------------------

    def open(self) -> None:
        """Load durable state; synchronous so the CLI can also use it with no event loop."""
        data = self.config.data_dir
        files = self.files
        data.mkdir(parents=True, exist_ok=True, mode=0o700)
        make_private(data)
        self._lock_fd = os.open(files.lock, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            self._lock_fd = None
            raise
        self.config.issuers_dir.mkdir(exist_ok=True)
        self.journal = SqliteJournal(
            self.config.database,
            synchronous=self.config.durability,
            snapshot_every=self.config.snapshot_every,
        )
        self.state = self.journal.load()
        self._last_now = self.journal.last_at
        self.trusted = TrustedIssuers.from_directory(self.config.issuers_dir, self.config.trusted_issuers)
        # The server id is derived from this server's own grant-signing key: it survives restarts, and a
        # license bound to it (license_file.check_binding) installs on no other server.
        self.grants = GrantSigner.from_file(files.grant_key, "")
        self.server_id = self.grants.issuer = self.grants.key_id
        if self.journal.meta("server_id") != self.server_id:
            self.journal.set_meta("server_id", self.server_id)
        self.token_secret = self._secret_file(files.token_key)
        self.revoked_tokens = RevokedTokens(self.config.database, self.clock())
        self.peer_key = load_or_create_peer_key(files.peer_key)
        self.certificate = self._certificate()
        self.started_at = self.clock()
        if self.triad_file.exists():
            # Imported here: a standalone server never loads a triad's etcd client (gRPC, ~13 MB) nor httpx.
            from licentia.cluster.triad import TriadNode
            from licentia.cluster.triad_checkpoint import read_checkpoint

            config = msgspec.json.decode(self.triad_file.read_bytes(), type=TriadConfig)
            checkpoint = read_checkpoint(self.triad_state_file, files.triad_checkpoint_json)
            if checkpoint is None:
                raise RuntimeError(
                    f"{data} belongs to a triad of an earlier Licentia version (replicated with Raft): dissolve "
                    "the triad with the earlier version, upgrade, then set the triad up again (see docs/triad.md)"
                )
            self.state = checkpoint.state
            self.relation = TriadNode(self, config, checkpoint.revision)
        elif self.state.pair is not None and self.pair_key_file.exists():
            self.relation = BackupLink(self, self.pair_key_file.read_text().strip())

    def _certificate(self) -> ServerCertificate | None:
        """The certificate this server listens with, or None for plain HTTP (`[server] tls`)."""
        config = self.config
        mode = config.tls_mode
        if mode == "off":
            return None
        if mode == "files":
            try:
                return ServerCertificate.from_files(Path(config.tls_cert), Path(config.tls_key))
            except (OSError, ValueError) as exc:
                raise ConfigError(f"cannot read the TLS certificate {config.tls_cert}: {exc}") from None
        return ServerCertificate.self_signed(config.data_dir, config.host)

    @property
    def replication(self) -> Relationship:
        """The relationship, by the name it had when it only made commands durable."""
        return self.relation

    @property
    def triad(self) -> TriadNode | None:
        """This server's part of a triad, for the triad's own endpoints; None unless it is a member."""
        if isinstance(self.relation, Standalone):
            return None  # without importing `cluster.triad` (see `open`)
        from licentia.cluster.triad import TriadNode

        return self.relation if isinstance(self.relation, TriadNode) else None

    @property
    def backup(self) -> BackupLink | None:
        """The link to this server's backup partner, for the pair's own endpoints; None unless in a pair."""
        return self.relation if isinstance(self.relation, BackupLink) else None

    def install_state(self, state: LicenseState) -> None:
        """Replace the state (a triad member installing another member's checkpoint)."""
        self.state = state

    @property
    def files(self) -> DataDirectory:
        """The paths of this server's data directory."""
        return DataDirectory(self.config.data_dir)

    @property
    def pair_key_file(self) -> Path:
        return self.files.backup_pair_key

    @property
    def triad_file(self) -> Path:
        return self.files.triad_config

    @property
    def triad_state_file(self) -> Path:
        return self.files.triad_checkpoint

    def release(self) -> None:
        """Let another process open this data directory."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    @staticmethod
    def _secret_file(path: Path) -> bytes:
        if not path.exists():
            write_private(path, secrets.token_bytes(32))
        return path.read_bytes()

    async def start(self) -> None:
        await self.relation.start()
        await self.ensure_admin()
        for path in self.install_on_start:
            await self.install_license_file(path)
        self._tasks.append(asyncio.create_task(self._reclaim_loop()))
        self._tasks.append(asyncio.create_task(self._retention_loop()))
        self.journal.start_rollups(self.state.settings.printer_window_days * DAY)
        self._tasks.append(asyncio.create_task(self.alerts.run()))
        log.info(
            "License server %s started with %d license(s) and trusts %d issuer key(s).",
            self.server_id,
            len(self.state.licenses),
            len(self.trusted.ids()),
        )

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.relation.stop()
        await self.journal.close(self.state if self.relation.snapshot_on_close else None)
        self.host_names.close()
        self.revoked_tokens.close()
        self.release()
        log.info("License server %s stopped; state is on disk.", self.server_id)

    def verify_license(self, data: bytes) -> AddLicense:
        """The AddLicense for a license file this server may install: signed by a trusted issuer and, when
        bound to servers, bound to this one. Raises LicenseFileError (LicenseBoundElsewhere) saying why not."""
        command = self.trusted.verify(data)
        check_binding(command.terms, self.server_id)
        return command

    async def trust_issuer(self, data: bytes, username: str) -> tuple[str, bool]:
        """Trust the issuer public key in `data` from now on, without a restart: kept (owner-readable only) in
        the data directory's trusted-issuers/ folder, where the next start finds it too. Returns its key id
        and whether it is new here. Raises LicenseFileError, storing nothing, when `data` is not such a key."""
        key = read_issuer_key(data)
        kid = key_id(key)
        if kid in self.trusted:
            return kid, False
        folder = self.config.issuers_dir
        await asyncio.to_thread(folder.mkdir, mode=0o700, parents=True, exist_ok=True)
        await asyncio.to_thread(write_private, folder / f"{kid}.pub", public_key_pem(key))
        self.trusted.add(key)
        log.warning("%s made this server trust issuer key %s; licenses it signed can be installed now.", username, kid)
        return kid, True

    async def install_license_file(self, path: Path) -> None:
        command = self.verify_license(path.read_bytes())
        if command.terms.license_id in self.state.licenses:
            return
        outcome = await self.execute(command)
        if outcome.ok:
            log.info("Installed license %s from %s.", command.terms.license_id, path)
        else:
            log.warning("Did not install %s: %s", path, outcome.message)

    async def ensure_admin(self) -> None:
        """On first start create the `admin` user: with the hash in LICENTIA_ADMIN_PASSWORD_HASH (made by
        `licentia admin hash-password`), the password in LICENTIA_ADMIN_PASSWORD, or a generated password."""
        if self.state.users or self.state.triad is not None:
            return  # a triad's users come with its seed
        given_hash = os.environ.get("LICENTIA_ADMIN_PASSWORD_HASH")
        if given_hash:
            if not is_password_hash(given_hash):
                log.error("LICENTIA_ADMIN_PASSWORD_HASH is not a hash made by `licentia admin hash-password`.")
                raise ValueError("LICENTIA_ADMIN_PASSWORD_HASH is not a password hash")
            await self.execute(PutAdminUser(user=AdminUser("admin", given_hash, "admin")))
            return
        password = os.environ.get("LICENTIA_ADMIN_PASSWORD")
        if not password:
            password = secrets.token_urlsafe(12)
            path = self.files.initial_password
            write_private(path, (password + "\n").encode())
            log.warning("Created user 'admin'; its initial password is in %s.", path)
        password_hash = await self.password_hasher.hash(password)
        await self.execute(PutAdminUser(user=AdminUser("admin", password_hash, "admin")))

    # -- commands -------------------------------------------------------------------------------

    def now(self) -> float:
        """The clock, never going backwards: journaled commands carry non-decreasing times."""
        self._last_now = max(self._last_now, self.clock())
        return self._last_now

    async def execute(self, command: Command[R]) -> Outcome[R]:
        try:
            outcome = await self.relation.commit(command)
        except (NotActive, CommitFailed, JournalFailure) as exc:
            self.count_outcome(type(command), "not_active" if isinstance(exc, NotActive) else "unavailable")
            raise
        self.count_outcome(type(command), outcome.code)
        self.relation.committed(command, outcome)
        return outcome

    def count_outcome(self, kind: type, code: str) -> None:
        """One more command of this type answered with this code ("ok" or the refusal reason)."""
        key = (kind, code)
        self.outcomes[key] = self.outcomes.get(key, 0) + 1

    async def read_state(self) -> LicenseState:
        """The state once everything it reflects is durable (in a triad, applied state is committed)."""
        await self.relation.barrier()
        return self.state

    # -- relationships --------------------------------------------------------------------------

    async def join_triad(self, config: TriadConfig, seed: bytes, formed_at: float, seed_member: str = "",
                         pooled: list[PooledLicense] | None = None) -> None:
        """Become a triad member: the seed state plus the formation (with the other members' pooled
        licenses), then replicate through etcd. This server's licenses that are not in the pool are set
        aside in its triad file and come back when it leaves."""
        from licentia.cluster.triad import TriadNode
        from licentia.cluster.triad_checkpoint import write_checkpoint

        if self.relation.describe():
            raise ValueError(f"this server is already in {self.relation.describe()}")
        trusted = set(self.trusted.ids())
        for item in pooled or []:
            if item.license.key_id not in trusted:
                raise ValueError(f"license {item.license.id} from {item.member} is signed by an issuer this "
                                 "server does not trust")
        state = LicenseState.from_snapshot(msgspec.json.decode(seed, type=Snapshot))
        formed = state.apply(
            FormTriad(name=config.name, members=config.members, active_ttl_s=config.active_ttl_s,
                      seed=seed_member, pooled=list(pooled or [])),
            formed_at,
        )
        if not formed.ok:
            raise ValueError(formed.message)
        set_aside = [lic for lic_id, lic in sorted(self.state.licenses.items())
                     if lic_id not in state.licenses or state.licenses[lic_id].signature != lic.signature]
        config = msgspec.structs.replace(config, own_name=self.state.settings.server_name, set_aside=set_aside)
        await self.journal.barrier()
        for stale in (data_directory.ETCD, data_directory.ETCD_TLS, data_directory.RAFT):
            shutil.rmtree(self.files.path(stale), ignore_errors=True)
        await asyncio.to_thread(write_checkpoint, self.triad_state_file, 0, state)
        write_private(self.triad_file, msgspec.json.encode(config))
        self.state = state
        node = TriadNode(self, config, 0)
        self.relation = node
        await node.start()
        log.warning(
            "Joined triad %s as the %s; license state now replicates through etcd.", config.name, config.member.role
        )

    async def leave_triad(self, license_owners: dict[str, str] | None = None) -> None:
        """After the triad was dissolved: keep working alone with the licenses that are this member's to keep
        (those it brought into the pool; the former primary also keeps those added since), never a copy of
        another member's."""
        node = self.triad
        if node is None or node is self._leaving:
            return
        self._leaving = node  # until the relationship below is Standalone, `self.triad` is still this node
        role = node.config.member.role
        await node.stop()
        if self.state.triad is not None:  # normally the committed dissolve has ended it already
            self.state.apply(DissolveTriad(), self.now())
        await self.journal.rebase(self.state)
        self.triad_file.unlink(missing_ok=True)
        node.remove_files()
        # Alone only once nothing of the triad is left on disk: a restart from here on starts alone too.
        self.relation = Standalone(self)
        self.role_events.forget_members()
        self.role_events.record("left", f"Left triad {node.config.name}; this server works alone now.")
        own_name = node.config.own_name
        if own_name and own_name != self.state.settings.server_name:
            await self.execute(UpdateSettings(changes={"server_name": own_name}))
        me = node.config.me
        if license_owners is None:  # no record of who brought what: only the former primary keeps them
            primary = next(m.name for m in node.config.members if m.role == "primary")
            license_owners = dict.fromkeys(self.state.licenses, primary)
        kept, removed = [], []
        for license_id in sorted(self.state.licenses):
            if license_owners.get(license_id, me if role == "primary" else "") == me:
                kept.append(license_id)
            else:
                await self.execute(RemoveLicense(license_id=license_id))
                removed.append(f"{license_id} (to {license_owners.get(license_id, 'the former primary')})")
        for lic in node.config.set_aside:
            if lic.id not in self.state.licenses:
                await self.execute(AddLicense(terms=lic.terms, key_id=lic.key_id, signature=lic.signature))
                kept.append(f"{lic.id} (set aside while in the triad)")
        log.warning(
            "Left triad %s: this server (former %s) works alone now; it keeps %s and removed its copies of %s.",
            node.config.name,
            role,
            ", ".join(kept) or "no license",
            ", ".join(removed) or "no license",
        )

    async def join_backup_pair(self, form: FormBackupPair, secret: str) -> None:
        """Become the main or the backup of a pair; the link starts synchronizing at once."""
        if self.relation.describe():
            raise ValueError("this server is already in a relationship")
        write_private(self.pair_key_file, secret.encode())
        outcome = await self.execute(form)
        if not outcome.ok:
            self.pair_key_file.unlink(missing_ok=True)
            raise ValueError(outcome.message)
        link = BackupLink(self, secret)
        self.relation = link
        await link.start()
        log.warning("Joined backup pair %s as the %s; %s is the partner.", form.name, form.me, link.pair.partner.name)

    async def leave_backup_pair(self) -> str:
        """Work alone again, keeping licenses and everything synchronized so far."""
        link = self.backup
        if link is None:
            raise ValueError("this server is not in a backup pair")
        name = link.pair.name
        await link.stop()
        self.relation = Standalone(self)
        self.role_events.forget_members()
        self.role_events.record("left", f"Left backup pair {name}; this server works alone now.")
        await self.execute(LeaveBackupPair())
        self.pair_key_file.unlink(missing_ok=True)
        log.warning("Left backup pair %s: this server works alone now.", name)
        return name

    def relationship(self) -> RelationshipStatus | None:
        """The relationship as the console, the API and the alerts see it; a dissolved triad is over at once,
        even while this member still waits to stop its part of it."""
        return None if self.relation.ended else self.relation.status()

    async def _reclaim_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.reclaim_interval_s)
            now = self.now()
            if not self.relation.may_reclaim():
                continue
            if self.state.leases_expire_by(now):
                try:
                    outcome = await self.execute(ReclaimExpired())
                except (NotActive, CommitFailed):
                    continue
                reclaimed = outcome.result.reclaimed if outcome.ok else []
                if reclaimed:
                    log.info("Reclaimed %d lease(s) that were not renewed in time.", len(reclaimed))

    async def _retention_loop(self) -> None:
        while True:
            cutoff = self.now() - self.state.settings.usage_retention_days * DAY
            await self.journal.prune_usage(cutoff)
            await self.prune_registries()
            await asyncio.sleep(3600)

    async def prune_registries(self) -> tuple[int, int]:
        """Forget printers and clients unseen for longer than the usage retention: (printers, clients) forgotten.

        PRUNE_SLICE candidates per command with a turn of the loop between, so no request waits behind a long
        scan. Only the member that may reclaim leases proposes it; the core decides which go."""
        printers = await self._prune_slices("printers")
        clients = await self._prune_slices("clients")
        if printers or clients:
            log.info(
                "Forgot %d printer(s) and %d client(s) not seen for %g days (the usage retention).",
                printers,
                clients,
                self.state.settings.usage_retention_days,
            )
        return printers, clients

    async def _prune_slices(self, registry: Literal["printers", "clients"]) -> int:
        """Look at the registry PRUNE_SLICE records at a time, in its order, from where the last slice ended: no copy
        of all its keys (300,000 at a large site, which every pass of the cycle collector walked while the pruning
        went on). A record added meanwhile comes at the end, where a later slice sees it; one removed meanwhile
        by other means than this pruning may make a slice skip a record, looked at again an hour later."""
        forgotten = 0
        start = 0
        while True:
            await asyncio.sleep(0)
            if not self.relation.may_reclaim():
                break
            cutoff = self.now() - self.state.settings.usage_retention_days * DAY
            keys: Mapping[str, object] = self.state.printers if registry == "printers" else self.state.clients
            chunk = list(itertools.islice(keys, start, start + PRUNE_SLICE))
            if not chunk:
                break
            if registry == "printers":
                stale = [key for key in chunk if _printer_unseen(self.state.printers.get(key), cutoff)]
                command = PruneRegistries(printer_ids=stale)
            else:
                stale = [key for key in chunk if _client_unseen(self.state.clients.get(key), cutoff)]
                command = PruneRegistries(client_ids=stale)
            start += len(chunk)
            if not stale:
                continue
            try:
                outcome = await self.execute(command)
            except (NotActive, CommitFailed):
                break
            if outcome.ok:  # a command names one registry's candidates only
                gone = len(outcome.result.printers) + len(outcome.result.clients)
                forgotten += gone
                start -= gone  # the records after them moved up by as many places
        return forgotten

    @property
    def own_name(self) -> str:
        """This server's own name: a triad member keeps the name it had (the triad's settings carry the seed's)."""
        return self.relation.kept_name or self.state.settings.server_name

    def info(self) -> dict[str, object]:
        return {
            "server_id": self.server_id,
            "name": self.own_name,
            "version": __version__,
            "peer_public_key": public_b64(self.peer_key),
            "grant_key_id": self.grants.key_id,
            "grant_public_key": self.grants.public_b64,
            "tls_fingerprint": self.certificate.fingerprint if self.certificate else None,
            "client_grace_hours": self.state.settings.client_grace_hours,
            "relationship": self.relation.client_view(),
            "heartbeat_interval_s": self.state.settings.heartbeat_interval_s,
            "lease_ttl_s": self.state.settings.lease_ttl_s,
            "time": self.now(),
        }

    def grant_token(self, kind: str, product: str, client: str) -> dict[str, object]:
        """A signed statement that `client` was granted `product`, valid for the connectivity grace period.

        Signing costs about as much as the rest of a request, so a token is reused for a minute per
        (kind, product, client); grace is counted in hours, so that minute is immaterial.
        """
        now = self.now()
        key = (kind, product, client)
        cached = self._grant_cache.get(key)
        if cached is None or now - cached[0] >= GRANT_REUSE_S:
            expires = now + self.state.settings.client_grace_hours * 3600
            claims = {"kind": kind, "product": product, "sub": client, "iat": now, "exp": expires}
            cached = (now, self.grants.sign(claims), expires)
            if len(self._grant_cache) > 10_000:
                self._grant_cache.clear()
            self._grant_cache[key] = cached
        _, token, expires = cached
        return {"token": token, "expires_at": expires}


# A cheap first cut of what `PruneRegistries` may forget; the core checks again, and more.
def _printer_unseen(printer: Printer | None, cutoff: float) -> bool:
    return printer is not None and max(printer.first_seen, printer.last_used, printer.peer_last_used) < cutoff


def _client_unseen(client: Client | None, cutoff: float) -> bool:
    return client is not None and client.last_seen < cutoff
