"""What the server and its API know of a triad without running one: the member's configuration, the two
refusals a triad's commit can raise, and the media type of a member's checkpoint.

Kept apart from `cluster.triad` (and its etcd client, which loads gRPC: ~13 MB of a server's memory) so
that a standalone server, which imports these names, never loads what only a triad member runs; the
server imports `cluster.triad` where it starts a triad.
"""

from __future__ import annotations

import msgspec

from licentia.core.model import License, TriadMember

# Plain binary: the file names its own format in its heading line (`store.snapshot_file.MAGIC`), and generic
# clients (openapi-python-client among them) read application/octet-stream as a file.
CHECKPOINT_MEDIA_TYPE = "application/octet-stream"


class NotActive(Exception):
    """This member may not serve license requests now; `active_url` names the one that can, if any."""

    def __init__(self, message: str, active_url: str | None) -> None:
        super().__init__(message)
        self.active_url = active_url


class CommitFailed(Exception):
    """The command could not be committed to the triad's log (etcd has no quorum here, or it timed out)."""


class TriadConfig(msgspec.Struct):
    """What a member keeps in DATA/triad.json: the relationship and its secret (from which the triad's
    CA is derived, see `triad_tls`)."""

    name: str
    me: str
    members: list[TriadMember]
    secret: str
    origin: str
    active_ttl_s: float = 0.8
    own_name: str = ""  # this member's server name when it joined: the triad's settings carry the seed's
    set_aside: list[License] = []  # this member's licenses that could not join the pool; back when it leaves

    @property
    def member(self) -> TriadMember:
        return next(m for m in self.members if m.name == self.me)

    def others(self) -> list[TriadMember]:
        return [m for m in self.members if m.name != self.me]
