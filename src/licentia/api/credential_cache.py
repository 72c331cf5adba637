"""Credentials verified in the last minute, so that a script's every HTTP Basic request does not cost a scrypt.

Only a successful check is remembered, and the failed-login locks are checked
before this cache, so a hit tells a caller nothing it did not already know.

An entry is keyed by an HMAC of the user name and password under a key made at
start and never stored: neither the password nor an unkeyed hash of it is kept.
It holds the stored password hash it was checked against, and counts only while
the user still has that hash, so a password change (or the user's removal) ends
it at once. Entries last `ttl_s`; at most `max_entries` are kept.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable

from licentia.core.model import AdminUser

TTL_S = 60.0
MAX_ENTRIES = 1024


class VerifiedCredentials:
    def __init__(
        self, clock: Callable[[], float] = time.monotonic, ttl_s: float = TTL_S, max_entries: int = MAX_ENTRIES
    ) -> None:
        self.clock = clock
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._key = secrets.token_bytes(32)
        self._entries: OrderedDict[bytes, tuple[str, str, float]] = OrderedDict()  # username, hash, expires

    def _digest(self, username: str, password: str) -> bytes:
        return hmac.new(self._key, username.encode() + b"\0" + password.encode(), hashlib.sha256).digest()

    def user(self, username: str, password: str, users: dict[str, AdminUser]) -> AdminUser | None:
        """The user, if these exact credentials were verified lately and the user's hash is unchanged."""
        digest = self._digest(username, password)
        entry = self._entries.get(digest)
        if entry is None:
            return None
        cached_name, password_hash, expires_at = entry
        user = users.get(username)
        if (
            expires_at <= self.clock()
            or user is None
            or cached_name != username
            or not hmac.compare_digest(user.password_hash, password_hash)
        ):
            del self._entries[digest]
            return None
        return user

    def remember(self, username: str, password: str, password_hash: str) -> None:
        digest = self._digest(username, password)
        self._entries[digest] = (username, password_hash, self.clock() + self.ttl_s)
        self._entries.move_to_end(digest)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
