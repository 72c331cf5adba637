"""A server that has just started imports nothing on its event loop when it first streams an answer."""

from __future__ import annotations

from pathlib import Path

from import_threads import last_line_printed


def test_the_modules_a_first_streamed_answer_needs_are_imported_off_the_loop_once_the_server_starts(
    tmp_path: Path,
) -> None:
    imported_by = last_line_printed(f"""
        import asyncio
        from pathlib import Path

        from licentia.api.app import create_app
        from licentia.config import Config
        from licentia.server import LicenseServer

        assert "anyio._backends._asyncio" not in sys.modules, "imported before the server started"
        watch_imports()
        server = LicenseServer(Config.load(None, data_dir=Path({str(tmp_path / "data")!r})))
        server.open()
        app = create_app(server)

        async def lifespan():
            events = asyncio.Queue()
            for event in ("lifespan.startup", "lifespan.shutdown"):
                events.put_nowait({{"type": event}})
            sent = []
            async def send(message):
                sent.append(message["type"])
            await app({{"type": "lifespan", "asgi": {{"version": "3.0"}}, "state": {{}}}}, events.get, send)
            return sent

        sent = asyncio.run(lifespan())
        server.release()
        assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"], sent
        print(imported_on.get("anyio._backends._asyncio"))
    """)
    # Imported by the server's worker thread while it started: not by a request, on the loop's thread, later.
    assert imported_by not in ("None", "MainThread"), imported_by
