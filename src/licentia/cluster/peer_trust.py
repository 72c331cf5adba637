"""How a triad member checks the other members' HTTPS certificates, kept for as long as it runs.

Each member's certificate is pinned by its fingerprint (`TriadMember.tls_fingerprint`). The first request to a
member reads the certificate it presents and makes a TLS context that trusts it (`tls.ServerTrust`): a context, and
a handshake of its own. Everything this member sends another (a checkpoint asked for, an administrator's change
forwarded to the active member) goes through the one `ServerTrust` kept here for that member, so that is done once
per member, not once per request. A member whose pinned fingerprint changed (a new certificate set up) gets a new one.
"""

from __future__ import annotations

from licentia.core.model import TriadMember
from licentia.tls import ServerTrust, normalize_fingerprint


class PeerTrust:
    """The `ServerTrust` this member checks each other member with, one per member and pinned fingerprint."""

    def __init__(self) -> None:
        self._by_member: dict[str, tuple[str, ServerTrust]] = {}

    def of(self, member: TriadMember) -> ServerTrust:
        """How `member`'s certificate is checked: by its pinned fingerprint, the same `ServerTrust` each time."""
        pinned = normalize_fingerprint(member.tls_fingerprint) if member.tls_fingerprint else ""
        known = self._by_member.get(member.name)
        if known is None or known[0] != pinned:
            known = self._by_member[member.name] = (pinned, ServerTrust([pinned] if pinned else []))
        return known[1]
