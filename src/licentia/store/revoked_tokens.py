"""Bearer tokens and console sessions ended by logging out, kept until they would have expired anyway.

A token is signed with this server's own `token.key`, so only this server
accepts it, also inside a backup pair or a triad (each member has its own key):
revoking it here ends it everywhere it works, and nothing needs replicating. The
list is a table of this server's SQLite database (so backups carry it), read
into memory at start; a revocation is in memory at once and on disk before the
logout is answered. Rows are pruned once their token has expired.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

SCHEMA = "CREATE TABLE IF NOT EXISTS revoked_token (token_id TEXT PRIMARY KEY, expires_at REAL NOT NULL)"


class RevokedTokens:
    def __init__(self, database: Path, now: float) -> None:
        self._conn = sqlite3.connect(database, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute("PRAGMA busy_timeout=5000")
        self._conn.execute(SCHEMA)
        self._lock = threading.Lock()
        rows = self._conn.execute("SELECT token_id, expires_at FROM revoked_token WHERE expires_at > ?", (now,))
        self._expiry: dict[str, float] = dict(rows.fetchall())

    def __contains__(self, token_id: str) -> bool:
        return token_id in self._expiry

    def __len__(self) -> int:
        return len(self._expiry)

    async def revoke(self, token_id: str, expires_at: float, now: float) -> None:
        """End a token for good: refused from now on, and still after a restart once this returns."""
        self._expiry[token_id] = expires_at
        for expired in [key for key, at in self._expiry.items() if at <= now]:
            del self._expiry[expired]
        await asyncio.to_thread(self._write, token_id, expires_at, now)

    def _write(self, token_id: str, expires_at: float, now: float) -> None:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.execute(
                    "INSERT OR REPLACE INTO revoked_token (token_id, expires_at) VALUES (?, ?)", (token_id, expires_at)
                )
                self._conn.execute("DELETE FROM revoked_token WHERE expires_at <= ?", (now,))
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            self._conn.close()
