"""The server keys a client trusts for connectivity grace, and how long a grant may last.

Grace tokens are kept in the client's cache file so an application restarted while no server is
reachable keeps working; but the user can write that file, so the keys that judge the tokens never
come from it. A client trusts:

- the keys of the servers it reached in this run (learned from `/api/v1/server`, over HTTPS whose
  certificate was verified when the server listens off loopback), held in memory only; and
- the keys in a grant-key file the administrator deployed with the application (read-only to users,
  made with `licentia client grant-keys`), which is what lets grace survive a restart while offline.

A token counts only when it was issued to this client (`sub`) and its lifetime is at most the
relationship's `client_grace_hours` (from the file, or from the server reached in this run).
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from licentia.grants import grant_key_id

DEFAULT_GRACE_HOURS = 72.0  # the server's default; a longer lifetime needs the file or a server's word
ENV_FILE = "LICENTIA_GRANT_KEYS"


class GrantKeyFileError(ValueError):
    pass


@dataclass
class TrustedGrantKeys:
    """Key id -> raw Ed25519 public key, and the longest grant lifetime accepted, in hours."""

    keys: dict[str, bytes] = field(default_factory=dict)
    grace_hours: float | None = None

    @classmethod
    def load(cls, path: Path) -> TrustedGrantKeys:
        try:
            data = json.loads(path.read_text())
            raw = {str(kid): base64.b64decode(value) for kid, value in data["grant_keys"].items()}
            hours = data.get("client_grace_hours")
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise GrantKeyFileError(f"cannot read the grant-key file {path}: {exc}") from None
        keys = {kid: key for kid, key in raw.items() if grant_key_id(key) == kid}
        if len(keys) != len(raw):
            raise GrantKeyFileError(f"the grant-key file {path} names a key under an id that is not its own")
        if hours is not None and not (isinstance(hours, int | float) and hours > 0):
            raise GrantKeyFileError(f"the grant-key file {path} has an invalid client_grace_hours")
        return cls(keys, float(hours) if hours is not None else None)

    @classmethod
    def configured(cls, path: Path | str | None) -> TrustedGrantKeys:
        """The deployed file (`path`, else $LICENTIA_GRANT_KEYS), or nothing."""
        chosen = path or os.environ.get(ENV_FILE)
        return cls.load(Path(chosen)) if chosen else cls()

    def learn(self, info: dict[str, Any]) -> bool:
        """Take a reached server's key (and grace hours) from its `/api/v1/server` answer; True if new."""
        kid, raw = info.get("grant_key_id"), info.get("grant_public_key")
        hours = info.get("client_grace_hours")
        if isinstance(hours, int | float) and hours > 0:
            self.grace_hours = float(hours)
        if isinstance(kid, str) and isinstance(raw, str) and kid not in self.keys:
            try:
                key = base64.b64decode(raw)
            except ValueError:
                return False
            if grant_key_id(key) == kid:
                self.keys[kid] = key
                return True
        return False

    @property
    def max_lifetime_s(self) -> float:
        return (self.grace_hours or DEFAULT_GRACE_HOURS) * 3600.0

    def document(self) -> dict[str, Any]:
        """What `licentia client grant-keys` writes."""
        return {
            "grant_keys": {kid: base64.b64encode(key).decode() for kid, key in sorted(self.keys.items())},
            "client_grace_hours": self.grace_hours or DEFAULT_GRACE_HOURS,
        }
