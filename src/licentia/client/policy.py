"""Client-side rules that need no network: the print-check schedule and connectivity grace."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from licentia.client.directory import ServerDirectory
from licentia.grants import read_grant

CHECKS_TO_RECOVER = 4


@dataclass
class PrintCheckSchedule:
    """The original product's rule: check after each job; after a failed check, check before each job
    until 4 checks in a row succeed, then go back to checking after jobs."""

    required: int = CHECKS_TO_RECOVER
    before_jobs: bool = False
    streak: int = 0

    def record(self, succeeded: bool) -> None:
        if not succeeded:
            self.before_jobs = True
            self.streak = 0
            return
        if self.before_jobs:
            self.streak += 1
            if self.streak >= self.required:
                self.before_jobs = False
                self.streak = 0


class GraceTokens:
    """The last signed grant per (kind, product), kept in the server directory's cache file and
    checked against the servers' keys every time it is used."""

    def __init__(self, directory: ServerDirectory) -> None:
        self.directory = directory

    def keep(self, kind: str, product: str, token: str) -> None:
        self.directory.keep_grace_token(kind, product, token)

    def valid_claims(self, kind: str, product: str, keys: dict[str, bytes], now: float) -> dict[str, Any] | None:
        token = self.directory.grace_tokens.get(f"{kind}/{product}")
        if token is None:
            return None
        claims = read_grant(token, keys)
        if claims is None or claims.get("kind") != kind or claims.get("product") != product:
            return None
        if not float(claims.get("exp", 0)) > now:
            return None
        return claims

    def seconds_left(self, kind: str, product: str, keys: dict[str, bytes], now: float) -> float:
        claims = self.valid_claims(kind, product, keys, now)
        return max(0.0, float(claims["exp"]) - now) if claims else 0.0
