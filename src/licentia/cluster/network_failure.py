"""What went wrong reaching another server, in words a person reads (never an exception's repr)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import httpx


def describe(exc: httpx.HTTPError) -> str:
    """"no connection could be made (…)" for httpx's ConnectError('All connection attempts failed'), etc."""
    import httpx  # loaded already: `exc` is one of its errors

    if isinstance(exc, httpx.TimeoutException):
        return "it did not answer in time"
    if isinstance(exc, httpx.ConnectError):
        return "no connection could be made (the server is stopped, or the address or a firewall is wrong)"
    return "the connection failed while it answered"
