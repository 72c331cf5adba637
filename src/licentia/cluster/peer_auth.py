"""How the servers of a relationship prove who they are to each other: an HMAC over each request and
over each answer, with a nonce so a captured request cannot be played again.

The relationship's secret is generated at setup and handed to each server sealed for its key (see
`sealing`), so it never crosses the network in clear. A request carries
`X-Licentia-Peer: <sender> <unix time> <nonce> <hex HMAC-SHA256(sender, method, path, time, nonce, body)>`;
anything else, a nonce already seen, or a request from a server outside the relationship is refused.
The answer carries `X-Licentia-Peer-Answer: <hex HMAC-SHA256("answer", request MAC, status, body)>`,
so the caller knows the answer came from its partner and belongs to this very request.

Nonces are remembered for twice the accepted clock difference, in memory; a receiver that restarts
forgets them, which is why the relationship's traffic also runs over TLS with pinned certificates
whenever the servers listen off loopback.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field

HEADER = "x-licentia-peer"
ANSWER_HEADER = "x-licentia-peer-answer"
MAX_SKEW_S = 300.0
MAX_REMEMBERED = 200_000


def _mac(secret: str, parts: list[bytes]) -> str:
    """The MAC of the parts joined by newlines, fed one by one (a large body is never copied)."""
    mac = hmac.new(secret.encode(), digestmod=hashlib.sha256)
    for n, part in enumerate(parts):
        if n:
            mac.update(b"\n")
        mac.update(part)
    return mac.hexdigest()


def _request_mac(secret: str, sender: str, method: str, path: str, stamp: str, nonce: str, body: bytes) -> str:
    return _mac(
        secret, [sender.encode(), method.upper().encode(), path.encode(), stamp.encode(), nonce.encode(), body]
    )


@dataclass(frozen=True)
class SignedRequest:
    """The header to send, and the request's MAC that the answer must be bound to."""

    header: str
    mac: str


def sign(secret: str, sender: str, method: str, path: str, body: bytes, now: float) -> SignedRequest:
    stamp, nonce = f"{now:.3f}", secrets.token_hex(16)
    mac = _request_mac(secret, sender, method, path, stamp, nonce, body)
    return SignedRequest(f"{sender} {stamp} {nonce} {mac}", mac)


def header_sender(header: str) -> str:
    """Who a peer header says sent it (not yet verified)."""
    return header.split(" ")[0]


@dataclass
class ReplayGuard:
    """The nonces of the signed requests this server accepted recently."""

    seen: dict[str, float] = field(default_factory=dict)

    def first_use(self, nonce: str, now: float) -> bool:
        if nonce in self.seen:
            return False
        if len(self.seen) >= MAX_REMEMBERED or len(self.seen) % 1024 == 0:
            for old in [n for n, until in self.seen.items() if until < now]:
                del self.seen[old]
            if len(self.seen) >= MAX_REMEMBERED:
                return False
        self.seen[nonce] = now + 2 * MAX_SKEW_S
        return True


@dataclass(frozen=True)
class Verdict:
    """Whether a peer request is proven; `mac` binds the answer to it."""

    problem: str
    mac: str = ""


def verify(
    header: str,
    secret: str,
    expected_sender: str,
    method: str,
    path: str,
    body: bytes,
    now: float,
    replays: ReplayGuard,
) -> Verdict:
    """A verdict whose `problem` is "" when the header proves `expected_sender` sent exactly this request,
    for the first time, else says why not."""
    parts = header.split(" ")
    if len(parts) != 4:
        return Verdict("the request is not signed by a member of this server's relationship")
    sender, stamp, nonce, mac = parts
    if not hmac.compare_digest(sender.encode(), expected_sender.encode()):
        return Verdict(f"{sender!r} is not a member of this server's relationship")
    try:
        sent_at = float(stamp)
    except ValueError:
        return Verdict("the request's signature time is not a number")
    if abs(now - sent_at) > MAX_SKEW_S:
        return Verdict("the request's signature is too old (or the two servers' clocks differ by more than 5 minutes)")
    expected = _request_mac(secret, sender, method, path, stamp, nonce, body)
    if not hmac.compare_digest(mac.encode(), expected.encode()):
        return Verdict("the request's signature does not match this relationship's secret")
    if not replays.first_use(nonce, now):
        return Verdict("the request was already received once; a replayed request is refused")
    return Verdict("", expected)


def answer_signature(secret: str, request_mac: str, status: int, body: bytes) -> str:
    return answer_signature_of(secret, request_mac, status, (body,))


def answer_signature_of(secret: str, request_mac: str, status: int, body: Iterable[bytes]) -> str:
    """`answer_signature` of a body given in pieces (a large file read a piece at a time)."""
    mac = hmac.new(secret.encode(), digestmod=hashlib.sha256)
    mac.update(b"answer\n%s\n%d\n" % (request_mac.encode(), status))
    for piece in body:
        mac.update(piece)
    return mac.hexdigest()


def answer_is_genuine(secret: str, request: SignedRequest, status: int, body: bytes, header: str) -> bool:
    """True when the answer's signature proves the partner sent exactly this answer to this request."""
    return answer_is_genuine_of(secret, request, status, (body,), header)


def answer_is_genuine_of(secret: str, request: SignedRequest, status: int, body: Iterable[bytes], header: str) -> bool:
    """`answer_is_genuine` of a body given in pieces (a large file read back a piece at a time)."""
    return hmac.compare_digest(header.encode(), answer_signature_of(secret, request.mac, status, body).encode())
