"""Admin password hashing (scrypt, in worker threads) and signed, expiring, revocable bearer tokens."""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import hmac
import json
import secrets
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

# Current guidance for scrypt (N=2^17, r=8, p=1): ~128 MiB and ~0.3 s of one core per hash. Hashes made
# with other parameters still verify and are replaced at the next successful login (`needs_rehash`).
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**17, 8, 1
MAX_SCRYPT_MEMORY = 256 * 1024 * 1024  # stored parameters needing more are refused, not run
# Checked for a user that does not exist, so that a wrong name costs as long as a wrong password.
DUMMY_HASH = f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${'00' * 16}${'00' * 32}"
CHECK_WORKERS = 2  # password checks running at once (each holds ~128 MiB while it runs)
MAX_WAITING_CHECKS = 64  # beyond this many waiting for a worker, a check is refused at once
T = TypeVar("T")


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    memory = 128 * r * (n + p + 2)  # what OpenSSL allocates
    if not 0 < memory <= MAX_SCRYPT_MEMORY:
        raise ValueError("scrypt parameters out of range")
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=memory + 1024 * 1024, dklen=32)


def hash_password(password: str) -> str:
    """A new hash with the current parameters. Slow (~0.3 s): on the event loop use `PasswordHasher.hash`."""
    salt = secrets.token_bytes(16)
    digest = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    """Slow (~0.3 s): on the event loop use `PasswordHasher.verify`."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        candidate = _scrypt(password, bytes.fromhex(salt), int(n), int(r), int(p))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(candidate.hex(), digest)


def is_password_hash(text: str) -> bool:
    """Whether `text` is a hash as `hash_password` makes them (LICENTIA_ADMIN_PASSWORD_HASH must be one)."""
    try:
        scheme, n, r, p, salt, digest = text.split("$")
        cost, block, parallel = int(n), int(r), int(p)
        usable = cost > 1 and cost & (cost - 1) == 0 and block > 0 and parallel > 0
        usable = usable and 128 * block * (cost + parallel + 2) <= MAX_SCRYPT_MEMORY
        return scheme == "scrypt" and usable and len(bytes.fromhex(salt)) >= 16 and len(bytes.fromhex(digest)) == 32
    except ValueError:
        return False


def needs_rehash(stored: str) -> bool:
    """Whether a (verified) hash was made with other than the current parameters."""
    return not stored.startswith(f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}$")


def password_problem(password: str) -> str | None:
    """Why a new password is refused, or None. Control characters cannot be typed reliably in every login
    form, and a NUL or line break in a password tends to be cut or mangled by whatever passes it on."""
    if any(unicodedata.category(ch) in ("Cc", "Cs") for ch in password):
        return "a password cannot contain control characters (such as tab, line break or NUL)"
    return None


class PasswordChecksBusy(Exception):
    """Too many password checks are already waiting for a worker."""


class PasswordHasher:
    """Runs scrypt in worker threads, at most `workers` at a time, so that the event loop never waits for it."""

    def __init__(self, workers: int = CHECK_WORKERS, max_waiting: int = MAX_WAITING_CHECKS) -> None:
        self.workers = workers
        self.max_waiting = max_waiting
        self.waiting = 0
        self._slots: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _semaphore(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        if self._slots is None or self._loop is not loop:
            self._slots, self._loop = asyncio.Semaphore(self.workers), loop
        return self._slots

    async def verify(self, password: str, stored: str, when_started: Callable[[], None] | None = None) -> bool:
        """Whether `password` matches `stored`. `when_started` runs once a worker is free, just before
        scrypt starts; it may raise to call the check off (a lock imposed while this check waited)."""
        return await self._run(functools.partial(verify_password, password, stored), when_started)

    async def hash(self, password: str) -> str:
        return await self._run(functools.partial(hash_password, password), None)

    async def _run(self, work: Callable[[], T], when_started: Callable[[], None] | None) -> T:
        if self.waiting >= self.max_waiting:
            raise PasswordChecksBusy
        slots = self._semaphore()
        self.waiting += 1
        try:
            await slots.acquire()
        finally:
            self.waiting -= 1
        try:
            if when_started is not None:
                when_started()
            running = asyncio.get_running_loop().run_in_executor(None, work)
        except BaseException:
            slots.release()
            raise
        # The worker's slot is free only once scrypt has finished, even if the request is cancelled meanwhile.
        running.add_done_callback(lambda _: slots.release())
        return await asyncio.shield(running)


# -- bearer tokens ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenClaims:
    username: str
    password_version: int
    stamp: str  # `hash_stamp` of the user's password hash when the token was issued
    token_id: str  # what logging out revokes (`licentia.store.revoked_tokens`)
    expires_at: float


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_stamp(password_hash: str) -> str:
    """A one-way fingerprint of a stored hash: a token carries it, so a re-created user's old tokens fail."""
    return hashlib.sha256(password_hash.encode()).hexdigest()[:16]


def issue_token(secret: bytes, username: str, password_version: int, expires_at: float, stamp: str = "") -> str:
    claims = {"u": username, "v": password_version, "s": stamp, "j": secrets.token_urlsafe(16), "exp": expires_at}
    body = _b64(json.dumps(claims).encode())
    signature = _b64(hmac.new(secret, body.encode(), hashlib.sha256).digest())
    return f"{body}.{signature}"


def read_token(secret: bytes, token: str, now: float) -> TokenClaims | None:
    """The claims of a validly signed, unexpired token, else None. Tokens without an id (issued before
    logging out could revoke them) are refused: their holders log in again."""
    try:
        body, signature = token.split(".")
        expected = _b64(hmac.new(secret, body.encode(), hashlib.sha256).digest())
        if not hmac.compare_digest(expected, signature):
            return None
        claims = json.loads(_unb64(body))
        expires_at = float(claims["exp"])
        if expires_at <= now or not claims.get("j"):
            return None
        return TokenClaims(str(claims["u"]), int(claims["v"]), str(claims.get("s", "")), str(claims["j"]), expires_at)
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
