"""A server that has just started imports nothing on its event loop when it first streams an answer."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

# Run in a process of its own: this one has imported everything long ago.
_SERVER_START_AND_STOP = textwrap.dedent(
    """
    import asyncio, sys, threading
    from pathlib import Path

    imported_on = {}

    class Watch:
        def find_spec(self, name, path=None, target=None):
            if name not in sys.modules:
                imported_on.setdefault(name, threading.current_thread().name)
            return None

    from licentia.api.app import create_app
    from licentia.config import Config
    from licentia.server import LicenseServer

    assert "anyio._backends._asyncio" not in sys.modules, "imported before the server started"
    sys.meta_path.insert(0, Watch())
    server = LicenseServer(Config.load(None, data_dir=Path(sys.argv[1])))
    server.open()
    app = create_app(server)

    async def lifespan():
        events = asyncio.Queue()
        for event in ("lifespan.startup", "lifespan.shutdown"):
            events.put_nowait({"type": event})
        sent = []
        async def send(message):
            sent.append(message["type"])
        await app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, events.get, send)
        return sent

    sent = asyncio.run(lifespan())
    server.release()
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"], sent
    print(imported_on.get("anyio._backends._asyncio"))
    """
)


def test_the_modules_a_first_streamed_answer_needs_are_imported_off_the_loop_once_the_server_starts(
    tmp_path: Path,
) -> None:
    done = subprocess.run([sys.executable, "-c", _SERVER_START_AND_STOP, str(tmp_path / "data")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    # Imported by the server's worker thread while it started: not by a request, on the loop's thread, later.
    imported_by = done.stdout.strip().splitlines()[-1]
    assert imported_by not in ("None", "MainThread"), imported_by
