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


def test_licentia_serve_keeps_what_start_up_made_out_of_the_collectors_full_passes(tmp_path: Path) -> None:
    """`licentia serve` froze the state it loaded; what start-up made after it (the app, the compiled templates,
    the modules the warm-up imports) stayed in the oldest generation, walked by every full pass on the loop."""
    counts = last_line_printed(f"""
        import asyncio
        import gc
        from pathlib import Path

        from licentia.api.app import create_app
        from licentia.cli.serving import freeze_start_up
        from licentia.config import Config
        from licentia.server import LicenseServer

        def oldest_generation_after_start(when_warm):
            server = LicenseServer(Config.load(None, data_dir=Path({str(tmp_path / "data")!r})))
            server.open()
            gc.collect()
            gc.freeze()  # as `licentia serve` does once the state is loaded
            app = create_app(server, when_warm=when_warm)

            async def start_and_stop():
                events = asyncio.Queue()
                for event in ("lifespan.startup", "lifespan.shutdown"):
                    events.put_nowait({{"type": event}})
                async def send(message):
                    pass
                await app({{"type": "lifespan", "asgi": {{"version": "3.0"}}, "state": {{}}}}, events.get, send)

            asyncio.run(start_and_stop())
            server.release()
            gc.collect()
            left = len(gc.get_objects(generation=2))
            gc.unfreeze()
            return left

        print(oldest_generation_after_start(None), oldest_generation_after_start(freeze_start_up))
    """)
    without, frozen = map(int, counts.split())
    assert frozen < 500 < without, counts
