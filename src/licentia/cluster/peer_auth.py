"""How the two servers of a backup pair prove who they are to each other: an HMAC over each request.

The pair's secret is generated at setup and handed to each server sealed for its
key (see `sealing`), so it never crosses the network in clear. A request carries
`X-Licentia-Peer: <sender> <unix time> <hex HMAC-SHA256(method, path, time, body)>`;
anything else, or anything from a server outside the pair, is refused.
"""

from __future__ import annotations

import hashlib
import hmac

HEADER = "x-licentia-peer"
MAX_SKEW_S = 300.0


def _mac(secret: str, sender: str, method: str, path: str, stamp: str, body: bytes) -> str:
    message = b"\n".join([sender.encode(), method.upper().encode(), path.encode(), stamp.encode(), body])
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def sign(secret: str, sender: str, method: str, path: str, body: bytes, now: float) -> str:
    stamp = f"{now:.3f}"
    return f"{sender} {stamp} {_mac(secret, sender, method, path, stamp, body)}"


def verify(header: str, secret: str, expected_sender: str, method: str, path: str, body: bytes, now: float) -> str:
    """Return "" when the header proves `expected_sender` sent exactly this request, else why not."""
    parts = header.split(" ")
    if len(parts) != 3:
        return "the request is not signed by a member of this server's backup pair"
    sender, stamp, mac = parts
    if not hmac.compare_digest(sender, expected_sender):
        return f"{sender!r} is not this server's backup partner"
    try:
        sent_at = float(stamp)
    except ValueError:
        return "the request's signature time is not a number"
    if abs(now - sent_at) > MAX_SKEW_S:
        return "the request's signature is too old (or the two servers' clocks differ by more than 5 minutes)"
    if not hmac.compare_digest(mac, _mac(secret, sender, method, path, stamp, body)):
        return "the request's signature does not match this backup pair's secret"
    return ""
