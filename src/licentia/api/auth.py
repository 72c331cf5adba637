"""Who is calling the admin API: a bearer token from /auth/login, HTTP Basic for scripts, or the console's cookie.

The console's session cookie carries the same signed token as /auth/login
issues. A browser sends cookies with requests other sites make it send, so a
cookie-authenticated change (any method but GET/HEAD/OPTIONS) must also carry
the X-CSRF-Token header derived from that token, which only the console's own
pages know.

Every password check (the API's login, the console's login form, HTTP Basic)
goes through `check_password`: it refuses a locked user or address before
checking anything (`login_limits`), runs scrypt in a worker thread
(`PasswordHasher`), checks a dummy hash for a user that does not exist so that
a wrong name takes as long as a wrong password, and replaces a hash made with
older parameters after a successful check. Verified credentials are remembered
for a minute (`credential_cache`), so that a script using HTTP Basic does not pay
for scrypt on every request. Logging out revokes the token
(`licentia.store.revoked_tokens`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import math
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from licentia.api.errors import ApiError
from licentia.api.passwords import (
    DUMMY_HASH,
    PasswordChecksBusy,
    hash_stamp,
    issue_token,
    needs_rehash,
    password_problem,
    read_token,
)
from licentia.api.source_address import source_address
from licentia.api.this_server import this_server
from licentia.cluster.triad_seam import CommitFailed, NotActive
from licentia.core.commands import RehashAdminPassword
from licentia.core.model import AdminUser, Role
from licentia.store.journal import JournalFailure

log = logging.getLogger("licentia.auth")

ROLE_RANK: dict[str, int] = {"viewer": 0, "manager": 1, "admin": 2}  # keyed by Role; str: the wire's words
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_HEADER = "X-CSRF-Token"


class LoginLocked(ApiError):
    """Refused without checking the password: too many failed logins for this user or from this address."""

    def __init__(self, seconds: float) -> None:
        self.retry_after = max(1, math.ceil(seconds))
        super().__init__(
            "login_locked",
            f"too many failed logins; try again in {self.retry_after} seconds",
            headers={"Retry-After": str(self.retry_after)},
        )


@dataclass(frozen=True)
class Login:
    user: AdminUser
    token: str
    expires_at: float


def _busy() -> ApiError:
    return ApiError("unavailable", "too many password checks are waiting; try again shortly", 503, {"Retry-After": "1"})


async def check_password(server: Any, username: str, password: str, address: str, via: str) -> AdminUser | None:
    """The user these credentials name, or None (counted as a failure). Raises `LoginLocked` while the user
    or the address is locked, and ApiError 503 when too many checks are already waiting."""
    limits = server.login_limits

    def refuse_if_locked() -> None:
        wait = limits.locked_for(username, address)
        if wait > 0:
            limits.refused()
            log.debug("Refused a login for %r from %s (%s): logins are locked.", username[:64], address, via)
            raise LoginLocked(wait)

    refuse_if_locked()  # before the cache: a lock must not let a guesser learn that a guess was right
    remembered: AdminUser | None = server.verified_credentials.user(username, password, server.state.users)
    if remembered is not None:
        return remembered
    for _ in range(2):  # a second time only if the hash was replaced while the first check ran
        user = server.state.users.get(username)
        stored = user.password_hash if user is not None else DUMMY_HASH
        try:
            matches = await server.password_hasher.verify(password, stored, when_started=refuse_if_locked)
        except PasswordChecksBusy:
            raise _busy() from None
        current = server.state.users.get(username)
        if not (matches and user is not None and current is not None and current.password_hash != stored):
            break
    if not matches or current is None or current.password_hash != stored:
        for lock in limits.failed(username, address):
            log.warning(lock.sentence())
        log.info("Refused a login for %r from %s (%s): wrong user name or password.", username[:64], address, via)
        return None
    limits.succeeded(username, address)
    if needs_rehash(stored):
        current = await _rehash(server, current, password)
    server.verified_credentials.remember(username, password, current.password_hash)
    return current


async def _rehash(server: Any, user: AdminUser, password: str) -> AdminUser:
    """Replace a hash made with older scrypt parameters, now that the password is known to be right."""
    try:
        new_hash = await server.password_hasher.hash(password)
        outcome = await server.execute(
            RehashAdminPassword(username=user.username, old_hash=user.password_hash, new_hash=new_hash)
        )
    except (PasswordChecksBusy, NotActive, CommitFailed, JournalFailure) as exc:
        log.info("Kept the older password hash of %r for now (%s); a later login replaces it.", user.username, exc)
        return user
    if outcome.ok:
        log.info("Replaced the password hash of %r with one made with the current scrypt parameters.", user.username)
    return server.state.users.get(user.username, user)  # type: ignore[no-any-return]


async def log_in(server: Any, username: str, password: str, address: str, via: str) -> Login | None:
    """A signed token for these credentials (the API's login and the console's login form), or None.
    Raises `LoginLocked` while the user or the address is locked."""
    user = await check_password(server, username, password, address, via)
    if user is None:
        return None
    expires_at = server.now() + server.config.token_ttl_s
    stamp = hash_stamp(user.password_hash)
    token = issue_token(server.token_secret, user.username, user.password_version, expires_at, stamp)
    return Login(user, token, expires_at)


async def new_password_hash(server: Any, password: str) -> str:
    """The hash to store for a password being set: refused with 400 if it holds control characters."""
    problem = password_problem(password)
    if problem:
        raise ApiError("invalid_password", problem)
    try:
        return await server.password_hasher.hash(password)  # type: ignore[no-any-return]
    except PasswordChecksBusy:
        raise _busy() from None


async def log_out(server: Any, token: str) -> bool:
    """Revoke a token (a bearer token or a console session) on this server, for good; False if it is not valid."""
    claims = read_token(server.token_secret, token, server.now())
    if claims is None or claims.token_id in server.revoked_tokens:
        return False
    await server.revoked_tokens.revoke(claims.token_id, claims.expires_at, server.now())
    log.info("User %r logged out; their token is revoked.", claims.username)
    return True


def session_cookie_name(server: Any) -> str:
    """Named per server: browsers share cookies across ports, and several servers may run on one host."""
    return f"licentia_session_{server.server_id}"


def csrf_token(secret: bytes, session_token: str) -> str:
    """What a change sent with the session cookie must carry in X-CSRF-Token; no other site can compute it."""
    return hmac.new(secret, b"csrf:" + session_token.encode(), hashlib.sha256).hexdigest()


async def _basic_user(request: Request, credentials: str) -> AdminUser | None:
    try:
        username, _, password = base64.b64decode(credentials, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return await check_password(this_server(request), username, password, source_address(request), "HTTP Basic")


def token_user(request: Request, token: str) -> AdminUser | None:
    """The user a signed token names, while it is unexpired, not revoked, and the user's password is unchanged."""
    server = this_server(request)
    claims = read_token(server.token_secret, token, server.now())
    if claims is None or claims.token_id in server.revoked_tokens:
        return None
    user: AdminUser | None = server.state.users.get(claims.username)
    if user is None or user.password_version != claims.password_version:
        return None
    return user if claims.stamp == hash_stamp(user.password_hash) else None


def _session_user(request: Request) -> AdminUser | None:
    server = this_server(request)
    token = request.cookies.get(session_cookie_name(server))
    if not token:
        return None
    user = token_user(request, token)
    if user is not None and request.method not in SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER, "").encode()
        if not hmac.compare_digest(sent, csrf_token(server.token_secret, token).encode()):
            raise ApiError("csrf_failed", "a change made with the console's session needs its X-CSRF-Token header")
    return user


def presented_token(request: Request) -> str | None:
    """The token this request authenticates with: its bearer token, or the console's session cookie."""
    authorization = request.headers.get("authorization")
    if authorization is None:
        return request.cookies.get(session_cookie_name(this_server(request))) or None
    scheme, _, credentials = authorization.partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" else None


async def authenticate(request: Request) -> AdminUser | None:
    authorization = request.headers.get("authorization")
    if authorization is None:
        return _session_user(request)
    scheme, _, credentials = authorization.partition(" ")
    scheme = scheme.lower()
    if scheme == "bearer":
        return token_user(request, credentials.strip())
    if scheme == "basic":
        return await _basic_user(request, credentials.strip())
    return None


async def require_role(request: Request, role: Role) -> AdminUser:
    user = await authenticate(request)
    if user is None:
        raise ApiError("unauthorized", "log in first: send 'Authorization: Bearer <token>' from /api/v1/auth/login")
    if ROLE_RANK[user.role] < ROLE_RANK[role]:
        raise ApiError("forbidden", f"this needs the {role} role; {user.username!r} is a {user.role}")
    return user
