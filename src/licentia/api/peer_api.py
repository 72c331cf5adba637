"""The API the two servers of a backup pair call on each other; every request must carry the pair's signature.

Nothing here needs an admin login, and nothing is accepted from a server outside
the pair: a request without a valid signature from the partner gets 403.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from licentia.api.auth import ROLE_RANK
from licentia.api.errors import ApiError
from licentia.api.passwords import hash_stamp, issue_token
from licentia.api.routing import Endpoint, decode_body, ok, read_body
from licentia.api.this_server import this_server
from licentia.cluster import peer_auth
from licentia.cluster.backup_pair import BackupLink, PullRequest
from licentia.cluster.triad_forward import FORWARDED_HEADER, ForwardedAnswer, ForwardedChange, encode
from licentia.cluster.triad_seam import CHECKPOINT_MEDIA_TYPE
from licentia.core.commands import SwapPairRoles

if TYPE_CHECKING:
    from licentia.cluster.triad_checkpoint import CheckpointCopy

log = logging.getLogger("licentia.api")


@dataclass(frozen=True)
class PeerRequest:
    """A request proven to come from a member of this server's relationship, for the first time."""

    body: bytes
    secret: str
    mac: str

    def answer(self, response: Response) -> Response:
        """The response, signed so the caller knows it is its partner's answer to this very request."""
        response.headers[peer_auth.ANSWER_HEADER] = peer_auth.answer_signature(
            self.secret, self.mac, response.status_code, bytes(response.body)
        )
        return response

    async def answer_file(self, copy: CheckpointCopy, media_type: str) -> Response:
        """`answer` with a large file as its body: signed by a thread (hashing releases the GIL), then sent a
        piece at a time, so the file is never held in memory nor copied by the loop."""
        try:
            signature = await asyncio.to_thread(copy.signature, self.secret, self.mac, 200)
        except BaseException:
            copy.close()
            raise
        headers = {peer_auth.ANSWER_HEADER: signature, "content-length": str(copy.size)}
        return StreamingResponse(copy.chunks(), media_type=media_type, headers=headers)


def _peer_header(request: Request) -> str:
    """The X-Licentia-Peer header; one that is not ASCII (headers arrive as Latin-1) is refused with 400."""
    header = request.headers.get(peer_auth.HEADER, "")
    if not header.isascii():
        raise ApiError("invalid_request", "the X-Licentia-Peer header must be ASCII", 400)
    return header


async def _from_partner(request: Request) -> tuple[BackupLink, PeerRequest]:
    """The link, once the request is proven to come from this server's backup partner."""
    server = this_server(request)
    _peer_header(request)
    body = await read_body(request)
    link: BackupLink | None = server.backup
    if link is None:
        raise ApiError("not_in_relationship", "this server is not in a backup pair")
    return link, _check_signature(request, body, link.secret, link.pair.partner.name, server)


def _check_signature(request: Request, body: bytes, secret: str, sender: str, server: Any) -> PeerRequest:
    """Refuse the request unless its peer header proves `sender` signed exactly it with `secret`, once."""
    verdict = peer_auth.verify(
        _peer_header(request),
        secret,
        sender,
        request.method,
        request.url.path,
        body,
        server.now(),
        server.peer_replays,
    )
    if verdict.problem:
        log.warning("Refused a peer request to %s: %s.", request.url.path, verdict.problem)
        raise ApiError("not_in_relationship", verdict.problem)
    return PeerRequest(body, secret, verdict.mac)


async def triad_checkpoint(request: Request) -> Response:
    """A triad member that fell behind the log's compaction asks another member for its checkpoint."""
    server = this_server(request)
    header = _peer_header(request)
    body = await read_body(request)
    node = server.triad
    if node is None:
        raise ApiError("not_in_relationship", "this server is not in a triad")
    sender = peer_auth.header_sender(header)
    if sender not in {m.name for m in node.config.others()}:
        raise ApiError("not_in_relationship", "the request is not signed by another member of this server's triad")
    peer = _check_signature(request, body, node.config.secret, sender, server)
    return await peer.answer_file(await node.checkpoints.open_for_peer(), CHECKPOINT_MEDIA_TYPE)


async def triad_forward(request: Request) -> Response:
    """A standby member of this triad carries an administrator's change here, to the active member: it is
    made as that administrator (with no more than the role the standby vouches for) and answered, signed."""
    server = this_server(request)
    body = await read_body(request)
    node = server.triad
    if node is None:
        raise ApiError("not_in_relationship", "this server is not in a triad")
    sender = peer_auth.header_sender(request.headers.get(peer_auth.HEADER, ""))
    if sender not in {m.name for m in node.config.others()}:
        raise ApiError("not_in_relationship", "the request is not signed by another member of this server's triad")
    peer = _check_signature(request, body, node.config.secret, sender, server)
    change = decode_body(peer.body, ForwardedChange)
    user = server.state.users.get(change.username)
    if user is None or change.role not in ROLE_RANK:
        log.warning("Refused a change forwarded by %s: administrator %r is not known here.", sender, change.username)
        raise ApiError("forbidden", f"administrator {change.username!r} is not known on {node.config.me}")
    if not change.path.startswith("/api/v1/") or change.path.startswith("/api/v1/peer/"):
        raise ApiError("invalid_request", "only an administrator's change can be forwarded")
    # The replayed request carries a short token of that administrator (so this member's own checks decide
    # what the user may do); the role the standby saw is a ceiling, never more than the user has here.
    if ROLE_RANK[change.role] < ROLE_RANK[user.role]:
        log.warning("Refused a change forwarded by %s: %s is a %s there but a %s here.", sender, user.username,
                    change.role, user.role)
        raise ApiError("forbidden", f"{user.username} is a {change.role} on {sender}; sign in again")
    token = issue_token(server.token_secret, user.username, user.password_version, server.now() + 60,
                        hash_stamp(user.password_hash))
    headers = {"Authorization": f"Bearer {token}", FORWARDED_HEADER: sender, "Accept": "application/json"}
    if change.content_type:
        headers["Content-Type"] = change.content_type
    import httpx  # imported when used: a standalone server never loads it (~5 MB)

    started = time.monotonic()
    transport = httpx.ASGITransport(app=request.app, client=(request.client.host if request.client else "", 0))
    async with httpx.AsyncClient(transport=transport, base_url="http://forwarded") as inner:
        answer = await inner.request(change.method, change.path, params=change.query or None,
                                     content=change.body_bytes(), headers=headers)
    log.info(
        "Made a change that %s forwarded for %s (%s): %s %s answered %d in %.0f ms.", sender, user.username,
        user.role, change.method, change.path, answer.status_code, (time.monotonic() - started) * 1000,
    )
    reply = ForwardedAnswer(answer.status_code, answer.headers.get("content-type", "application/json"),
                            encode(answer.content))
    return peer.answer(Response(msgspec.json.encode(reply), media_type="application/json"))


async def changes(request: Request) -> Response:
    link, peer = await _from_partner(request)
    pull = decode_body(peer.body, PullRequest)
    return peer.answer(ok(msgspec.to_builtins(await link.answer_pull(pull))))


async def poke(request: Request) -> Response:
    link, peer = await _from_partner(request)
    link.wake()
    return peer.answer(ok({"syncing": True}))


async def swap(request: Request) -> Response:
    _, peer = await _from_partner(request)
    outcome = await this_server(request).execute(SwapPairRoles())
    if not outcome.ok:
        raise ApiError(outcome.code, outcome.message)
    return peer.answer(ok(outcome.result))


async def leave(request: Request) -> Response:
    _, peer = await _from_partner(request)
    return peer.answer(ok({"left": await this_server(request).leave_backup_pair()}))


P = "/api/v1/peer"
ENDPOINTS = [
    Endpoint("POST", f"{P}/changes", changes, "Backup partner: what changed since its cursor", tag="peer"),
    Endpoint("POST", f"{P}/poke", poke, "Backup partner: synchronize now", tag="peer"),
    Endpoint("POST", f"{P}/swap", swap, "Backup partner: swap main and backup roles", tag="peer"),
    Endpoint("POST", f"{P}/leave", leave, "Backup partner: the pair is removed", tag="peer"),
    Endpoint("POST", f"{P}/triad/forward", triad_forward, "Triad member: an administrator's change made on a "
             "standby member", tag="peer"),
    Endpoint("POST", f"{P}/triad/checkpoint", triad_checkpoint, "Triad member: this member's checkpoint", tag="peer"),
]
