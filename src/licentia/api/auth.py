"""Who is calling the admin API: a bearer token from /auth/login, HTTP Basic for scripts, or the console's cookie.

The console's session cookie carries the same signed token as /auth/login
issues. A browser sends cookies with requests other sites make it send, so a
cookie-authenticated change (any method but GET/HEAD/OPTIONS) must also carry
the X-CSRF-Token header derived from that token, which only the console's own
pages know.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from licentia.api.errors import ApiError
from licentia.api.passwords import hash_stamp, issue_token, read_token, verify_password
from licentia.core.model import AdminUser

ROLE_RANK = {"viewer": 0, "manager": 1, "admin": 2}
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_HEADER = "X-CSRF-Token"


@dataclass(frozen=True)
class Login:
    user: AdminUser
    token: str
    expires_at: float


def log_in(server: Any, username: str, password: str) -> Login | None:
    """A signed token for these credentials (the API's login and the console's login form), or None."""
    user = server.state.users.get(username)
    if user is None or not verify_password(password, user.password_hash):
        return None
    expires_at = server.now() + server.config.token_ttl_s
    stamp = hash_stamp(user.password_hash)
    token = issue_token(server.token_secret, user.username, user.password_version, expires_at, stamp)
    return Login(user, token, expires_at)


def session_cookie_name(server: Any) -> str:
    """Named per server: browsers share cookies across ports, and several servers may run on one host."""
    return f"licentia_session_{server.server_id}"


def csrf_token(secret: bytes, session_token: str) -> str:
    """What a change sent with the session cookie must carry in X-CSRF-Token; no other site can compute it."""
    return hmac.new(secret, b"csrf:" + session_token.encode(), hashlib.sha256).hexdigest()


def _basic_user(request: Request, credentials: str) -> AdminUser | None:
    try:
        username, _, password = base64.b64decode(credentials, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user = request.app.state.server.state.users.get(username)
    if user is None or not verify_password(password, user.password_hash):
        return None
    return user


def token_user(request: Request, token: str) -> AdminUser | None:
    """The user a signed token names, while it is unexpired and the user's password is unchanged."""
    server = request.app.state.server
    claims = read_token(server.token_secret, token, server.now())
    if claims is None:
        return None
    user = server.state.users.get(claims[0])
    if user is None or user.password_version != claims[1] or claims[2] != hash_stamp(user.password_hash):
        return None
    return user


def _session_user(request: Request) -> AdminUser | None:
    server = request.app.state.server
    token = request.cookies.get(session_cookie_name(server))
    if not token:
        return None
    user = token_user(request, token)
    if user is not None and request.method not in SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER, "").encode()
        if not hmac.compare_digest(sent, csrf_token(server.token_secret, token).encode()):
            raise ApiError("csrf_failed", "a change made with the console's session needs its X-CSRF-Token header")
    return user


def authenticate(request: Request) -> AdminUser | None:
    authorization = request.headers.get("authorization")
    if authorization is None:
        return _session_user(request)
    scheme, _, credentials = authorization.partition(" ")
    scheme = scheme.lower()
    if scheme == "bearer":
        return token_user(request, credentials.strip())
    if scheme == "basic":
        return _basic_user(request, credentials.strip())
    return None


async def require_role(request: Request, role: str) -> AdminUser:
    user = authenticate(request)
    if user is None:
        raise ApiError("unauthorized", "log in first: send 'Authorization: Bearer <token>' from /api/v1/auth/login")
    if ROLE_RANK[user.role] < ROLE_RANK[role]:
        raise ApiError("forbidden", f"this needs the {role} role; {user.username!r} is a {user.role}")
    return user
