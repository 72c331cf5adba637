"""The host name of a client's source address, as DNS vouches for it: what "from where: host name" rules match.

A client declares its own computer name, so that name proves nothing. The name
used for rules is the reverse DNS (PTR) name of the address the request came
from, kept only when the forward lookup of that name (A/AAAA) gives the same
address back, so whoever controls the reverse zone of an address cannot claim
another domain's names. Lookups run in a small thread pool (the resolver
blocks), never on the event loop, with a timeout; answers are cached for a few
minutes and concurrent lookups of one address share a single query.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from licentia.core.access import canonical_address

log = logging.getLogger("licentia.api")

LOOKUP_TIMEOUT_S = 1.0
NAME_TTL_S = 300.0  # how long a confirmed name (or the lack of one) is reused
FAILED_TTL_S = 30.0  # how long a lookup that timed out or failed is not retried
CACHE_ENTRIES = 4096
LOOKUP_THREADS = 4


def forward_confirmed_name(address: str) -> str:
    """The PTR name of `address` if resolving that name gives `address` back, else "" (blocking)."""
    try:
        name = socket.gethostbyaddr(address)[0]
        addresses = {canonical_address(str(info[4][0])) for info in socket.getaddrinfo(name, None)}
    except (OSError, UnicodeError):
        return ""
    return name.rstrip(".").lower() if canonical_address(address) in addresses else ""


class VerifiedHostNames:
    def __init__(
        self,
        lookup: Callable[[str], str] = forward_confirmed_name,
        *,
        timeout_s: float = LOOKUP_TIMEOUT_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lookup = lookup
        self._timeout_s = timeout_s
        self._clock = clock
        self._cache: dict[str, tuple[str, float]] = {}  # address -> (name, reusable until)
        self._pending: dict[str, asyncio.Future[str]] = {}
        self._executor = ThreadPoolExecutor(max_workers=LOOKUP_THREADS, thread_name_prefix="licentia-dns")

    async def name_of(self, address: str) -> str:
        """The verified host name of `address`, "" when it has none or DNS did not answer in time."""
        try:
            ipaddress.ip_address(address)
        except ValueError:
            return ""  # not an address: never hand a name to the resolver
        cached = self._cache.get(address)
        if cached is not None and cached[1] > self._clock():
            return cached[0]
        pending = self._pending.get(address)
        if pending is None:
            pending = asyncio.wrap_future(self._executor.submit(self._lookup, address))
            self._pending[address] = pending
            pending.add_done_callback(lambda done: self._remember(address, done))
        try:
            return await asyncio.wait_for(asyncio.shield(pending), self._timeout_s)
        except (TimeoutError, OSError):
            if address not in self._cache or self._cache[address][1] <= self._clock():
                log.warning(
                    "The host name of %s could not be looked up within %.1f s; host name rules do not match it.",
                    address,
                    self._timeout_s,
                )
                self._cache[address] = ("", self._clock() + FAILED_TTL_S)
            return ""

    def _remember(self, address: str, done: asyncio.Future[str]) -> None:
        self._pending.pop(address, None)
        if len(self._cache) >= CACHE_ENTRIES:
            now = self._clock()
            self._cache = {key: entry for key, entry in self._cache.items() if entry[1] > now}
            if len(self._cache) >= CACHE_ENTRIES:
                self._cache.clear()
        name = "" if done.cancelled() or done.exception() is not None else done.result()
        self._cache[address] = (name, self._clock() + NAME_TTL_S)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
