"""The HTTP client a server calls out with (its backup partner, the other triad members, a webhook), imported off
the event loop.

A standalone server never loads httpx (~5 MB). Imported where it is first used, it was imported on the loop in the
middle of serving, and so was what its first request imports after it (httpcore's connection, anyio's asyncio
backend, h11): ~145 modules, seen as a 75 ms stall of a triad's active member at the first checkpoint it took from a
peer. `http_client_imported` imports all of it in a worker thread once, before the first request is made; there an
import holds the interpreter a switch interval (5 ms) at a time, and the loop keeps answering.
"""

from __future__ import annotations

import asyncio

_imported = False


def import_http_client() -> None:
    """Import httpx and what its first request imports otherwise."""
    import anyio._backends._asyncio  # noqa: F401
    import h11  # noqa: F401
    import httpcore._async.http11
    import httpcore._backends.anyio  # noqa: F401
    import httpx  # noqa: F401


async def http_client_imported() -> None:
    """Once `import_http_client` has run in a worker thread (at once after the first time)."""
    global _imported
    if not _imported:
        await asyncio.to_thread(import_http_client)
        _imported = True
