"""Client-side rules that need no network: the print-check schedule and connectivity grace."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from licentia.client.directory import ServerDirectory
from licentia.client.grant_keys import TrustedGrantKeys
from licentia.grants import read_grant

CHECKS_TO_RECOVER = 4
LIFETIME_SLACK_S = 120.0  # rounding of the server's clock readings between iat and exp


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
    """The last signed grant per (kind, product), kept in the server directory's cache file and checked
    every time it is used: signed by a trusted key, issued to this client (`subject`), for this kind and
    product, unexpired, and no longer-lived than the relationship's grace allows."""

    def __init__(self, directory: ServerDirectory, subject: str = "") -> None:
        self.directory = directory
        self.subject = subject

    def keep(self, kind: str, product: str, token: str) -> None:
        self.directory.keep_grace_token(kind, product, token)

    def valid_claims(
        self, kind: str, product: str, trusted: TrustedGrantKeys, now: float
    ) -> dict[str, Any] | None:
        token = self.directory.grace_tokens.get(f"{kind}/{product}")
        if token is None:
            return None
        claims = read_grant(token, trusted.keys)
        if claims is None or claims.get("kind") != kind or claims.get("product") != product:
            return None
        if claims.get("sub") != self.subject:
            return None
        try:
            issued, expires = float(claims["iat"]), float(claims["exp"])
        except (KeyError, TypeError, ValueError):
            return None
        if expires - issued > trusted.max_lifetime_s + LIFETIME_SLACK_S or not expires > now:
            return None
        return claims

    def seconds_left(self, kind: str, product: str, trusted: TrustedGrantKeys, now: float) -> float:
        claims = self.valid_claims(kind, product, trusted, now)
        return max(0.0, float(claims["exp"]) - now) if claims else 0.0
