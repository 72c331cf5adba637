"""The data directory: every file a server keeps there, what it holds, and whether a backup takes it.

One list (`FILES`) names each entry once; the server, the alerts, the console, the relationships and
`store.backup` take their paths from here, and what a backup holds is derived from the list, so a new
file cannot be silently left out of backups: it has to say whether it goes along and, if not, why.
Writing a private file durably is `store.private_file.write_private` (re-exported here as `write_private`).

It imports nothing of Licentia's but `store.private_file`, so any layer may use it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from licentia.store.private_file import make_private, sync_directory, write_private

__all__ = [
    "FILES",
    "DataDirectory",
    "DataFile",
    "InBackup",
    "backed_up_as_is",
    "make_private",
    "sync_directory",
    "write_private",
]


class InBackup(Enum):
    """How `store.backup` takes an entry."""

    DATABASE = "database"  # copied with SQLite's online backup API, consistent as of one commit
    SNAPSHOT = "snapshot"  # read just before the database is copied, and paired with it
    AS_IS = "as_is"  # copied byte for byte when present: written once, or replaced atomically
    ISSUER_KEYS = "issuer_keys"  # a folder of public keys, each copied as it is
    LEFT_OUT = "left_out"  # not in a backup; `why_left_out` says why


@dataclass(frozen=True)
class DataFile:
    """One entry of the data directory: its path inside it, what it holds, and how a backup takes it."""

    name: str
    holds: str
    backup: InBackup
    why_left_out: str = ""

    def __post_init__(self) -> None:
        if (self.backup is InBackup.LEFT_OUT) != bool(self.why_left_out):
            raise ValueError(f"{self.name}: say why a file is left out of backups, and only then")


DATABASE = DataFile("licentia.db", "the journal of commands, the usage log, metadata, ended login tokens",
                    InBackup.DATABASE)
SNAPSHOT = DataFile("licentia.snapshot", "the state as of a journal index (store.snapshot_file)", InBackup.SNAPSHOT)
DATABASE_WAL = DataFile("licentia.db-wal", "SQLite's write-ahead log", InBackup.LEFT_OUT,
                        "the online backup of the database already holds what it has committed")
DATABASE_SHM = DataFile("licentia.db-shm", "SQLite's shared-memory index of the write-ahead log", InBackup.LEFT_OUT,
                        "SQLite makes it again")
GRANT_KEY = DataFile("grant.key", "the key that signs grants; the server id is derived from it", InBackup.AS_IS)
TOKEN_KEY = DataFile("token.key", "the secret that signs admin login tokens", InBackup.AS_IS)
PEER_KEY = DataFile("peer.key", "the key relationship set-up secrets are sealed to", InBackup.AS_IS)
TRIAD_CONFIG = DataFile("triad.json", "a triad member's relationship and secret", InBackup.AS_IS)
TRIAD_CHECKPOINT = DataFile("triad-state.snapshot", "a triad member's state and the etcd revision it reflects "
                            "(cluster.triad_checkpoint)", InBackup.AS_IS)
TRIAD_CHECKPOINT_JSON = DataFile("triad-state.json", "a triad member's checkpoint as an earlier version wrote it "
                                 "(JSON); read once at start and written again as triad-state.snapshot",
                                 InBackup.AS_IS)
ALERTS_STATE = DataFile("alerts-state.json", "the open alert incidents", InBackup.AS_IS)
BACKUP_PAIR_KEY = DataFile("backup-pair.key", "a backup pair's shared secret", InBackup.AS_IS)
TRUSTED_ISSUERS = DataFile("trusted-issuers", "the public keys of the license issuers this server trusts",
                           InBackup.ISSUER_KEYS)
LOCK = DataFile("server.lock", "held by the running server, so that no second process opens the directory",
                InBackup.LEFT_OUT, "it means something only to a running process")
INITIAL_PASSWORD = DataFile("initial-admin-password", "the first-start password of the user admin",
                            InBackup.LEFT_OUT, "it is meant to be read once and deleted")
TLS_CERTIFICATE = DataFile("tls/server.crt", "the self-signed certificate of `[server] tls = auto`",
                           InBackup.LEFT_OUT, "a restored server makes a new one (partners pin the new fingerprint)")
TLS_KEY = DataFile("tls/server.key", "the private key of that certificate", InBackup.LEFT_OUT,
                   "a restored server makes a new one")
ETCD = DataFile("etcd", "a triad member's etcd data", InBackup.LEFT_OUT,
                "its log is not copied consistently while it is written; the other members bring it up to date")
ETCD_TLS = DataFile("etcd-tls", "a triad member's etcd certificates", InBackup.LEFT_OUT,
                    "they are derived again from the triad's secret")
RAFT = DataFile("raft", "a triad member's Raft log of an earlier version", InBackup.LEFT_OUT,
                "only an earlier version reads it")

FILES: tuple[DataFile, ...] = (
    DATABASE, SNAPSHOT, DATABASE_WAL, DATABASE_SHM, TOKEN_KEY, PEER_KEY, GRANT_KEY, TRIAD_CONFIG, TRIAD_CHECKPOINT,
    TRIAD_CHECKPOINT_JSON,
    ALERTS_STATE, BACKUP_PAIR_KEY, TRUSTED_ISSUERS, LOCK, INITIAL_PASSWORD, TLS_CERTIFICATE, TLS_KEY, ETCD, ETCD_TLS,
    RAFT,
)


def backed_up_as_is() -> tuple[str, ...]:
    """The files a backup copies byte for byte when present."""
    return tuple(entry.name for entry in FILES if entry.backup is InBackup.AS_IS)


def declared(relative: str) -> DataFile | None:
    """The entry a path inside the data directory belongs to (a file inside a declared folder belongs to it)."""
    for entry in FILES:
        if relative == entry.name or relative.startswith(entry.name + "/"):
            return entry
    return None


class DataDirectory:
    """The paths of one server's data directory."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, entry: DataFile) -> Path:
        return self.root / entry.name

    @property
    def database(self) -> Path:
        return self.path(DATABASE)

    @property
    def trusted_issuers(self) -> Path:
        return self.path(TRUSTED_ISSUERS)

    @property
    def lock(self) -> Path:
        return self.path(LOCK)

    @property
    def grant_key(self) -> Path:
        return self.path(GRANT_KEY)

    @property
    def token_key(self) -> Path:
        return self.path(TOKEN_KEY)

    @property
    def peer_key(self) -> Path:
        return self.path(PEER_KEY)

    @property
    def initial_password(self) -> Path:
        return self.path(INITIAL_PASSWORD)

    @property
    def triad_config(self) -> Path:
        return self.path(TRIAD_CONFIG)

    @property
    def triad_checkpoint(self) -> Path:
        return self.path(TRIAD_CHECKPOINT)

    @property
    def triad_checkpoint_json(self) -> Path:
        return self.path(TRIAD_CHECKPOINT_JSON)

    @property
    def backup_pair_key(self) -> Path:
        return self.path(BACKUP_PAIR_KEY)

    @property
    def alerts_state(self) -> Path:
        return self.path(ALERTS_STATE)

    @property
    def etcd(self) -> Path:
        return self.path(ETCD)

    @property
    def etcd_tls(self) -> Path:
        return self.path(ETCD_TLS)
