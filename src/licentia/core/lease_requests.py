"""Which lease each checkout request got, so that a client's retry of its own request gets the same lease.

A request is named by (client id, source address, request id) (`core.state.RequestKey`). The index is keyed
by the request id alone, the lease's own string, and holds the lease itself; the client and the source
address are checked against the lease found. Keyed by the three as a tuple it cost a tuple and a dict entry
per lease (about 90 bytes, 28 MB at 300,000 leases); this costs the entry. Two clients that use the same
request id share an entry holding both leases.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from licentia.core.model import Lease
from licentia.core.printers import client_id

RequestKey = tuple[str, str, str]  # (client id, source address, request id)


def _names(lease: Lease, key: RequestKey) -> bool:
    return lease.source_ip == key[1] and client_id(lease.client) == key[0]


class LeaseRequests:
    __slots__ = ("_by_request",)

    def __init__(self) -> None:
        self._by_request: dict[str, Lease | tuple[Lease, ...]] = {}

    @classmethod
    def of(cls, leases: Sequence[Lease]) -> LeaseRequests:
        """The index of `leases` (a loaded state's): keyed in one pass where every request id is its lease's alone,
        as at nearly every site (one call of `add` per lease took ~0.15 s of a restart at 300,000 leases)."""
        requests = cls()
        by_request: dict[str, Lease | tuple[Lease, ...]] = {lease.request_id: lease for lease in leases}
        if len(by_request) == len(leases):
            requests._by_request = by_request
            return requests
        for lease in leases:
            requests.add(lease)
        return requests

    def get(self, key: RequestKey, default: str = "") -> str:
        """The id of the lease the request `key` got, else `default`."""
        found = self._by_request.get(key[2])
        if found is None:
            return default
        for lease in found if isinstance(found, tuple) else (found,):
            if _names(lease, key):
                return lease.lease_id
        return default

    def add(self, lease: Lease) -> None:
        """`lease` is what its request got (in place of an earlier lease of the same request, if any)."""
        found = self._by_request.get(lease.request_id)
        if found is None:
            self._by_request[lease.request_id] = lease
            return
        key = (client_id(lease.client), lease.source_ip, lease.request_id)
        others = tuple(other for other in (found if isinstance(found, tuple) else (found,)) if not _names(other, key))
        self._by_request[lease.request_id] = (*others, lease) if others else lease

    def discard(self, lease: Lease) -> None:
        """Forget `lease` (nothing if another lease of the same request replaced it)."""
        found = self._by_request.get(lease.request_id)
        if found is lease:
            del self._by_request[lease.request_id]
        elif isinstance(found, tuple) and any(other is lease for other in found):
            others = tuple(other for other in found if other is not lease)
            self._by_request[lease.request_id] = others if len(others) > 1 else others[0]

    def leases(self) -> Iterator[Lease]:
        """Every lease filed, each once."""
        for found in self._by_request.values():
            yield from found if isinstance(found, tuple) else (found,)

    def __len__(self) -> int:
        return sum(len(found) if isinstance(found, tuple) else 1 for found in self._by_request.values())
