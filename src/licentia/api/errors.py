"""The one shape every refusal takes: `{"error": {"code": ..., "message": ...}}` with a 4xx status."""

from __future__ import annotations

from typing import Any

import msgspec
from starlette.responses import Response

STATUS_BY_CODE: dict[str, int] = {
    "invalid_json": 400,
    "invalid_request": 422,
    "unauthorized": 401,
    "invalid_password": 400,
    "login_locked": 429,
    "forbidden": 403,
    "csrf_failed": 403,
    "access_denied": 403,
    "printer_blocked": 403,
    "group_protected": 403,
    "not_found": 404,
    "no_license": 404,
    "license_not_found": 404,
    "lease_not_found": 404,
    "printer_not_found": 404,
    "group_not_found": 404,
    "user_not_found": 404,
    "method_not_allowed": 405,
    "limit_exceeded": 409,
    "license_exists": 409,
    "lease_exists": 409,
    "group_exists": 409,
    "group_in_use": 409,
    "version_conflict": 409,
    "last_admin": 409,
    "request_conflict": 409,
    "not_active": 409,
    "relationship_exists": 409,
    "lease_expired": 410,
    "body_too_large": 413,
    "unsupported_media_type": 415,
    "unavailable": 503,
    "no_active_server": 503,
    "invalid_relationship": 422,
    "invalid_issuer_key": 422,
    "access_check_failed": 409,
    "no_relationship": 404,
    "owned_by_main": 409,
    "not_in_relationship": 403,
    "partner_unreachable": 502,
}

_encoder = msgspec.json.Encoder()


class ApiError(Exception):
    def __init__(
        self, code: str, message: str, status: int | None = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status or STATUS_BY_CODE.get(code, 422)
        self.headers = headers


class JSON(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return _encoder.encode(content)


def error_response(code: str, message: str, status: int | None = None, headers: dict[str, str] | None = None) -> JSON:
    error = ApiError(code, message, status)
    return JSON({"error": {"code": error.code, "message": error.message}}, status_code=error.status, headers=headers)
