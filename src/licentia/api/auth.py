"""Who is calling the admin API: a bearer token from /auth/login, or HTTP Basic for scripts."""

from __future__ import annotations

import base64
import binascii

from starlette.requests import Request

from licentia.api.errors import ApiError
from licentia.api.passwords import hash_stamp, read_token, verify_password
from licentia.core.model import AdminUser

ROLE_RANK = {"viewer": 0, "manager": 1, "admin": 2}


def _basic_user(request: Request, credentials: str) -> AdminUser | None:
    try:
        username, _, password = base64.b64decode(credentials, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user = request.app.state.server.state.users.get(username)
    if user is None or not verify_password(password, user.password_hash):
        return None
    return user


def _token_user(request: Request, token: str) -> AdminUser | None:
    server = request.app.state.server
    claims = read_token(server.token_secret, token, server.now())
    if claims is None:
        return None
    user = server.state.users.get(claims[0])
    if user is None or user.password_version != claims[1] or claims[2] != hash_stamp(user.password_hash):
        return None
    return user


def authenticate(request: Request) -> AdminUser | None:
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    scheme = scheme.lower()
    if scheme == "bearer":
        return _token_user(request, credentials.strip())
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
