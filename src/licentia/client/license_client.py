"""The synchronous client: the asyncio client run on a private event-loop thread.

Applications that are not written with asyncio use this; every method blocks
until the answer (or the failover) is done, and lease renewal runs in the
background on the client's own thread.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from licentia.client.async_client import AsyncLicenseClient
from licentia.client.errors import LicenseDenied, ServerUnavailable

__all__ = ["LicenseClient", "LicenseDenied", "ServerUnavailable"]

T = TypeVar("T")


class LicenseClient:
    def __init__(self, servers: str | list[str], **options: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="licentia-client", daemon=True)
        self._thread.start()
        self._async = self._run(self._make(servers, options))

    @staticmethod
    async def _make(servers: str | list[str], options: dict[str, Any]) -> AsyncLicenseClient:
        return AsyncLicenseClient(servers, **options)

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    @property
    def aio(self) -> AsyncLicenseClient:
        return self._async

    def close(self) -> None:
        if self._loop.is_running():
            self._run(self._async.aclose())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
        self._loop.close()

    def __enter__(self) -> LicenseClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def server_info(self) -> dict[str, Any]:
        return self._run(self._async.server_info())

    def grant_key_document(self) -> dict[str, Any]:
        return self._run(self._async.grant_key_document())

    def print_check(self, product: str, printer: str, **where: str) -> dict[str, Any]:
        return self._run(self._async.print_check(product, printer, **where))

    def checkout(self, product: str, **options: Any) -> dict[str, Any]:
        return self._run(self._async.checkout(product, **options))

    def heartbeat(self, *lease_ids: str) -> dict[str, Any]:
        return self._run(self._async.heartbeat(*lease_ids))

    def checkin(self, lease_id: str) -> dict[str, Any]:
        return self._run(self._async.checkin(lease_id))

    def renew_now(self) -> None:
        self._run(self._async.renew_now())

    def before_job(self, product: str, printer: str, **where: str) -> dict[str, Any] | None:
        return self._run(self._async.before_job(product, printer, **where))

    def after_job(self, product: str, printer: str, **where: str) -> dict[str, Any] | None:
        return self._run(self._async.after_job(product, printer, **where))

    def grace_left(self, product: str, kind: str = "print") -> float:
        return self._async.grace_left(product, kind)
