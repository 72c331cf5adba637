"""An administrator's change made on a triad member that does not serve now, carried to the active member.

The standby sends the change itself (method, path, query, body) with the administrator's identity and role,
signed with the triad's secret (`peer_auth`), to the active member's `/api/v1/peer/triad/forward`. The
active member checks the signature, authorizes the change as that administrator (the triad's users are the
same on every member) and answers with a signed answer, which the standby hands back to the browser as is.
So the triad is managed from any member's console, and every change is still made in one place.
"""

from __future__ import annotations

import base64
import logging
from typing import TYPE_CHECKING

import msgspec

from licentia.cluster import peer_auth
from licentia.core.model import TriadMember
from licentia.tls import CertificateRefused, ServerTrust

if TYPE_CHECKING:
    from licentia.cluster.triad_seam import TriadConfig

log = logging.getLogger("licentia.triad")

FORWARD_PATH = "/api/v1/peer/triad/forward"
FORWARDED_HEADER = "x-licentia-forwarded"  # set on the change replayed on the active member: never forwarded again
FORWARD_TIMEOUT_S = 10.0


class ForwardedChange(msgspec.Struct, forbid_unknown_fields=True):
    """What a standby member sends to the active one: the administrator's request and who made it."""

    method: str
    path: str
    query: str
    body: str  # base64: a license upload or any JSON body, byte for byte
    content_type: str
    username: str
    role: str

    def body_bytes(self) -> bytes:
        return base64.b64decode(self.body)


class ForwardedAnswer(msgspec.Struct):
    """The active member's answer to the administrator's request."""

    status: int
    content_type: str
    body: str  # base64

    def body_bytes(self) -> bytes:
        return base64.b64decode(self.body)


class ForwardFailed(Exception):
    """The active member could not be asked; `message` is a clause for the administrator."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def encode(data: bytes) -> str:
    return base64.b64encode(data).decode()


async def forward(config: TriadConfig, active: TriadMember, change: ForwardedChange, now: float,
                  trust: ServerTrust) -> ForwardedAnswer:
    """Send `change` to the active member, signed as this member, checking its certificate with `trust` (this
    member's kept trust in it, `cluster.peer_trust`); its genuine answer, or ForwardFailed."""
    import httpx  # imported when used: a standalone server never loads it (~5 MB)

    body = msgspec.json.encode(change)
    signed = peer_auth.sign(config.secret, config.me, "POST", FORWARD_PATH, body, now)
    base = active.api_url.rstrip("/")
    try:
        await trust.prepare(base)
        async with httpx.AsyncClient(timeout=FORWARD_TIMEOUT_S, verify=trust.verify_for(base)) as http:
            answer = await http.post(
                base + FORWARD_PATH,
                content=body,
                headers={peer_auth.HEADER: signed.header, "Content-Type": "application/json"},
            )
    except CertificateRefused as exc:
        log.warning("Triad %s: %s presents a certificate this member does not trust: %s.", config.name,
                    active.name, exc)
        raise ForwardFailed(f"{active.name} presents an HTTPS certificate this server does not trust") from None
    except httpx.HTTPError as exc:
        log.warning("Triad %s: a change could not be sent to the active member %s: %r.", config.name,
                    active.name, exc)
        raise ForwardFailed(f"this server cannot reach {active.name} right now") from None
    if answer.status_code != 200:
        try:
            reason = str(answer.json()["error"]["message"])
        except (ValueError, KeyError, TypeError):
            reason = f"it answered {answer.status_code}"
        log.warning("Triad %s: %s refused a forwarded change: %s.", config.name, active.name, reason)
        raise ForwardFailed(f"{active.name} refused to take the change from this server: {reason}")
    if not peer_auth.answer_is_genuine(
        config.secret, signed, answer.status_code, answer.content, answer.headers.get(peer_auth.ANSWER_HEADER, "")
    ):
        log.warning("Triad %s: the answer from %s to a forwarded change is not signed with the triad's secret; "
                    "it was ignored.", config.name, active.name)
        raise ForwardFailed(f"the answer from {active.name} could not be proven to come from it")
    try:
        return msgspec.json.decode(answer.content, type=ForwardedAnswer)
    except msgspec.DecodeError:
        raise ForwardFailed(f"{active.name} sent an answer this server does not understand") from None
