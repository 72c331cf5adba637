"""The servers a client knows and which one to try first; cached on disk with the last grace tokens.

A client is given one or more addresses. The first server that answers tells it
the members of its relationship and which one is active; the client keeps that
list in a small JSON file, so an application restarted while its first server is
down still finds the others. The keys that judge grace tokens are not kept here:
the user can write this file (see `grant_keys`).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

RETURN_PROBE_S = 2.0


def default_cache_dir() -> Path:
    return Path(os.environ.get("LICENTIA_CLIENT_CACHE", Path.home() / ".cache" / "licentia"))


class ServerDirectory:
    def __init__(self, seeds: list[str], cache_dir: Path | None = None) -> None:
        self.seeds = [url.rstrip("/") for url in seeds]
        digest = hashlib.sha256("\n".join(sorted(self.seeds)).encode()).hexdigest()[:12]
        self.path = (cache_dir or default_cache_dir()) / f"servers-{digest}.json"
        self.members: list[str] = []
        self.active: str | None = None
        self.grace_tokens: dict[str, str] = {}
        self.relationship: str | None = None
        # In a backup pair the main is preferred: after a failover to the backup, the client tries the main
        # first again every RETURN_PROBE_S, so it goes back once the main returns.
        self.preferred: str | None = None
        self._preferred_probed_at = 0.0
        self._load()

    def _load(self) -> None:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return
        self.members = [str(url) for url in data.get("members", [])]
        self.active = data.get("active")
        self.relationship = data.get("relationship")
        self.preferred = data.get("preferred")
        self.grace_tokens = {str(k): str(v) for k, v in data.get("grace_tokens", {}).items()}

    def save(self) -> None:
        data = {
            "members": self.members,
            "active": self.active,
            "relationship": self.relationship,
            "preferred": self.preferred,
            "grace_tokens": self.grace_tokens,
        }
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".servers-")
            with os.fdopen(fd, "w") as handle:
                json.dump(data, handle)
            os.replace(tmp, self.path)
        except OSError:
            pass

    def keep_grace_token(self, kind: str, product: str, token: str) -> None:
        """Remember the newest grant per (kind, product) on disk, so grace survives a restart while offline."""
        key = f"{kind}/{product}"
        if self.grace_tokens.get(key) != token:
            self.grace_tokens[key] = token
            self.save()

    def candidates(self) -> list[str]:
        """Every known server once: the active one first, then the configured ones, then learned members."""
        ordered = [self.active] if self.active else []
        if self.preferred and self.preferred != self.active:
            now = time.monotonic()
            if now - self._preferred_probed_at >= RETURN_PROBE_S:
                self._preferred_probed_at = now
                ordered.insert(0, self.preferred)
        ordered += self.seeds + self.members
        return list(dict.fromkeys(url for url in ordered if url))

    def mark_active(self, url: str) -> None:
        url = url.rstrip("/")
        if url != self.active:
            self.active = url
            self.save()

    def learn(self, url: str, info: dict[str, Any]) -> None:
        """Take in what `/api/v1/server` at `url` said about its relationship."""
        changed = False
        relationship = info.get("relationship")
        if isinstance(relationship, dict):
            members = [str(m["api_url"]).rstrip("/") for m in relationship.get("members", []) if "api_url" in m]
            active = next(
                (
                    str(m["api_url"]).rstrip("/")
                    for m in relationship.get("members", [])
                    if m.get("name") == relationship.get("active")
                ),
                None,
            )
            preferred = next(
                (
                    str(m["api_url"]).rstrip("/")
                    for m in relationship.get("members", [])
                    if relationship.get("prefer") and m.get("name") == relationship.get("prefer")
                ),
                None,
            )
            if preferred != self.preferred:
                self.preferred = preferred
                changed = True
            if members != self.members or relationship.get("name") != self.relationship:
                self.members, self.relationship = members, relationship.get("name")
                changed = True
            # A backup pair's "active" is only its preferred main: the client stays with whichever member
            # answered and probes the main again now and then (see `candidates`).
            if active and active != self.active and (preferred is None or self.active is None):
                self.active = active
                changed = True
        if changed:
            self.save()
