"""What a client call can fail with."""

from __future__ import annotations

from typing import Any


class LicenseDenied(Exception):
    """The server answered and refused; `code` is its machine-readable reason."""

    def __init__(self, status: int, code: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}

    @classmethod
    def from_answer(cls, status: int, data: dict[str, Any]) -> LicenseDenied:
        """The refusal a 4xx answer's `{"error": {...}}` body describes."""
        error = data.get("error", {})
        return cls(status, error.get("code", "error"), error.get("message", ""), error)


class ServerUnavailable(Exception):
    """No server could process the request (unreachable, timed out, or none of them active)."""
