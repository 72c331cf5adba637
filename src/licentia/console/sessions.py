"""Console sessions: the login form, the session cookie, logout, and the first-start password change.

The session cookie holds the same signed token /api/v1/auth/login hands out
(HttpOnly, SameSite=Strict), so the admin API authenticates the console's
fetches itself (`licentia.api.auth`) and the console keeps no session store.
The login form is protected by a double-submit token: a random nonce in a
short-lived cookie, and in the form its HMAC under the server's token secret.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from licentia.api.auth import LoginLocked, csrf_token, log_in, log_out, session_cookie_name, token_user
from licentia.api.errors import ApiError
from licentia.api.passwords import PasswordChecksBusy
from licentia.api.routing import read_body
from licentia.api.source_address import source_address
from licentia.api.this_server import this_server
from licentia.console.views import render, static_url
from licentia.core.model import AdminUser
from licentia.store.data_directory import INITIAL_PASSWORD

log = logging.getLogger("licentia.console")

MAX_FORM_BYTES = 8 * 1024
LOGIN_FORM_TTL_S = 3600
FIRST_ADMIN = "admin"
_SAFE_NEXT = re.compile(r"[A-Za-z0-9/_.~%=&?-]*")


@dataclass(frozen=True)
class ConsoleSession:
    """Who is logged in to the console, with the token their cookie holds and its CSRF value."""

    user: AdminUser
    token: str
    csrf: str


def console_path(request: Request) -> str:
    return str(this_server(request).config.console_path)


def current_session(request: Request) -> ConsoleSession | None:
    server = this_server(request)
    token = request.cookies.get(session_cookie_name(server))
    if not token:
        return None
    user = token_user(request, token)
    if user is None:
        return None
    return ConsoleSession(user, token, csrf_token(server.token_secret, token))


# (stored hash, hint) -> whether the hint still opens the admin account; scrypt is slow, the answer is stable.
_hint_checks: dict[tuple[str, str], bool] = {}


async def initial_password_pending(server: Any) -> bool:
    """Whether `admin` still has the password generated on first start (its hint file exists and works).

    A hint that no longer works (the password was changed, here or through the
    API or CLI) is a stale secret on disk, so it is deleted.
    """
    path = server.config.data_dir / INITIAL_PASSWORD.name
    try:
        hint = path.read_text().strip()
    except OSError:
        return False
    user = server.state.users.get(FIRST_ADMIN)
    if user is None:
        return False
    key = (user.password_hash, hint)
    pending = _hint_checks.get(key)
    if pending is None:
        try:
            pending = await server.password_hasher.verify(hint, user.password_hash)
        except PasswordChecksBusy:
            return True  # cannot tell now; asking for a new password is the safe side
        if len(_hint_checks) > 64:
            _hint_checks.clear()
        _hint_checks[key] = pending
    if not pending:
        path.unlink(missing_ok=True)
        log.info("The admin password was changed; deleted the first-start hint %s.", path)
    return pending


async def must_set_password(request: Request, session: ConsoleSession) -> bool:
    return session.user.username == FIRST_ADMIN and await initial_password_pending(this_server(request))


# -- login and logout ---------------------------------------------------------------------------


def _login_cookie_name(server: Any) -> str:
    return f"licentia_login_{server.server_id}"


def _login_form_token(server: Any, nonce: str) -> str:
    return hmac.new(server.token_secret, b"login:" + nonce.encode(), hashlib.sha256).hexdigest()


def _matches(sent: str, expected: str) -> bool:
    return hmac.compare_digest(sent.encode(), expected.encode())


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


async def read_form(request: Request) -> dict[str, str]:
    """A small urlencoded form (the console's own forms only): field -> first value."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    try:
        data = await read_body(request, MAX_FORM_BYTES)
    except ApiError:
        return {}
    if content_type != "application/x-www-form-urlencoded":
        return {}
    try:
        fields = parse_qs(data.decode(), keep_blank_values=True, max_num_fields=20)
    except (UnicodeDecodeError, ValueError):
        return {}
    return {name: values[0] for name, values in fields.items()}


def safe_next(request: Request, target: str | None) -> str:
    """Where to go after logging in: only a page of this console, never another site."""
    base = console_path(request)
    if not target:
        return base + "/"
    well_formed = _SAFE_NEXT.fullmatch(target) and "//" not in target and ".." not in target
    if well_formed and (target == base or target.startswith(base + "/")):
        return target
    return base + "/"


async def login_form(
    request: Request,
    *,
    error: str | None = None,
    notice: str | None = None,
    status: int = 200,
    headers: dict[str, str] | None = None,
    username: str = "",
) -> Response:
    """The login page, with a fresh double-submit token (its nonce cookie is set on the response); after a
    refused attempt it keeps the username typed, so only the password is typed again."""
    server = this_server(request)
    base = console_path(request)
    nonce = secrets.token_urlsafe(24)
    if notice is None:
        notice = {
            "password": "Your password was changed. Log in with the new password.",
            "account": "Your account was changed, which ended your session. Log in again.",
        }.get(request.query_params.get("changed", ""))
    if notice is None and request.query_params.get("logged_out") == "1":
        notice = "You are logged out."
    context = {
        "console": base,
        "static": lambda name: static_url(base, name),
        "title": "Log in",
        "server_name": server.own_name,
        "form_token": _login_form_token(server, nonce),
        "next": safe_next(request, request.query_params.get("next")),
        "error": error,
        "notice": notice,
        "username": username[:64],
        "first_start": await initial_password_pending(server),
        "hint_file": INITIAL_PASSWORD.name,
    }
    response = render(request, "login.html", context, status)
    response.headers.update(headers or {})
    response.set_cookie(
        _login_cookie_name(server),
        nonce,
        max_age=LOGIN_FORM_TTL_S,
        path=base,
        httponly=True,
        samesite="strict",
        secure=_secure(request),
    )
    return response


async def login_page(request: Request) -> Response:
    if current_session(request) is not None:
        return RedirectResponse(safe_next(request, request.query_params.get("next")), 303)
    return await login_form(request)


async def login_submit(request: Request) -> Response:
    server = this_server(request)
    form = await read_form(request)
    nonce = request.cookies.get(_login_cookie_name(server), "")
    if not nonce or not _matches(form.get("csrf", ""), _login_form_token(server, nonce)):
        return await login_form(
            request,
            error="This login form expired or did not come from this console. Please log in again.",
            status=403,
        )
    username, password = form.get("username", ""), form.get("password", "")
    try:
        session = await log_in(server, username, password, source_address(request), "console login form")
    except LoginLocked as locked:
        message = f"Too many failed logins. Try again in {locked.retry_after} seconds."
        return await login_form(
            request, error=message, status=429, headers=locked.headers, username=form.get("username", "")
        )
    except ApiError:
        message = "The server is busy checking other passwords. Try again in a moment."
        return await login_form(request, error=message, status=503, headers={"Retry-After": "1"})
    if session is None:
        return await login_form(
            request, error="Wrong username or password.", status=401, username=form.get("username", "")
        )
    response = RedirectResponse(safe_next(request, form.get("next")), 303)
    response.set_cookie(
        session_cookie_name(server),
        session.token,
        max_age=int(server.config.token_ttl_s),
        path="/",
        httponly=True,
        samesite="strict",
        secure=_secure(request),
    )
    response.delete_cookie(_login_cookie_name(server), path=console_path(request))
    return response


async def logout(request: Request) -> Response:
    """Logging out is a POST with the page's CSRF value, so another site cannot log a user out. It revokes
    the session's token on the server, as POST /api/v1/auth/logout does: a copy of the cookie stops working."""
    server = this_server(request)
    session = current_session(request)
    form = await read_form(request)
    if session is not None and not _matches(form.get("csrf", ""), session.csrf):
        return render_refusal(request, "Logging out needs the console's own form. Reload the page and try again.")
    if session is not None:
        await log_out(server, session.token)
    response = RedirectResponse(f"{console_path(request)}/login?logged_out=1", 303)
    response.delete_cookie(session_cookie_name(server), path="/", httponly=True, samesite="strict")
    return response


def render_refusal(request: Request, message: str, status: int = 403) -> Response:
    base = console_path(request)
    context = {
        "console": base,
        "static": lambda name: static_url(base, name),
        "title": "Not allowed" if status == 403 else "Not found",
        "message": message,
    }
    return render(request, "refusal.html", context, status)


def to_login(request: Request) -> Response:
    """Back to the login page, coming back here afterwards."""
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"{console_path(request)}/login?next={quote(target, safe='/')}", 303)


# -- first start: set the admin password --------------------------------------------------------


async def password_page(request: Request) -> Response:
    """Shown (and forced) while `admin` still has its generated first-start password."""
    session = current_session(request)
    if session is None:
        return to_login(request)
    if not await must_set_password(request, session):
        return RedirectResponse(console_path(request) + "/", 303)
    base = console_path(request)
    context = {
        "console": base,
        "static": lambda name: static_url(base, name),
        "title": "Set your password",
        "csrf": session.csrf,
        "user": session.user,
        "page": "set-password",
        "script": "password.js",
    }
    return render(request, "password.html", context)
