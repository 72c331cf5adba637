"""The peer signature header is read safely: anything malformed is a refusal with a reason, never an exception."""

from __future__ import annotations

import pytest

from licentia.cluster import peer_auth

SECRET = "pair-secret"


def _verify(header: str) -> str:
    guard = peer_auth.ReplayGuard()
    return peer_auth.verify(header, SECRET, "main", "POST", "/api/v1/peer/changes", b"{}", 1000.0, guard).problem


def test_a_correctly_signed_request_is_accepted():
    signed = peer_auth.sign(SECRET, "main", "POST", "/api/v1/peer/changes", b"{}", 1000.0)
    assert _verify(signed.header) == ""


@pytest.mark.parametrize(
    "header",
    [
        "m\u00e4in 1000.000 " + "0" * 32 + " " + "0" * 64,  # non-ASCII sender (headers arrive as Latin-1)
        "main 1000.000 " + "0" * 32 + " " + "\u00e9" * 64,  # non-ASCII MAC
        "main 1000.000 \u00e9 " + "0" * 64,  # non-ASCII nonce
        "main 1\u00b2000 " + "0" * 32 + " " + "0" * 64,
        "",
        "main",
        "main 1000.000 ab cd ef",
    ],
)
def test_a_malformed_or_non_ascii_header_is_refused_with_a_reason(header):
    assert _verify(header)
