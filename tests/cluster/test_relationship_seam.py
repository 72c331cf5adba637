"""The server drives whatever relationship it holds through `cluster.relationship.Relationship` alone: a
stand-in relationship gets the commands, answers the health checks, and is what the API and clients see."""

from __future__ import annotations

import asyncio
from pathlib import Path

from licentia.api.metrics import is_active, is_ready
from licentia.cluster.relationship import Relationship, Standalone
from licentia.cluster.relationship_status import RelationshipStatus
from licentia.config import Config
from licentia.core.commands import Command, CreatePrinterGroup
from licentia.core.state import Outcome
from licentia.server import LicenseServer


class Recorded(Standalone):
    """A relationship that records how the server drives it (and makes commands durable like Standalone)."""

    def __init__(self, server: LicenseServer) -> None:
        super().__init__(server)
        self.calls: list[str] = []
        self.ready = True

    async def start(self) -> None:
        self.calls.append("start")

    async def stop(self) -> None:
        self.calls.append("stop")

    async def commit(self, command: Command) -> Outcome:
        self.calls.append(f"commit {type(command).__name__}")
        return await super().commit(command)

    def committed(self, command: Command, outcome: Outcome) -> None:
        self.calls.append(f"committed {outcome.code}")

    def describe(self) -> str:
        return "a recorded relationship"

    def client_view(self) -> dict[str, object] | None:
        return {"type": "recorded"}

    def status(self) -> RelationshipStatus | None:
        return None

    def is_ready(self) -> bool:
        return self.ready

    def is_active(self) -> bool:
        return False


def test_the_server_drives_any_relationship_through_the_protocol_alone(tmp_path: Path):
    server = LicenseServer(Config(data_dir=tmp_path / "data"))
    server.open()

    async def go() -> None:
        recorded = Recorded(server)
        relation: Relationship = recorded
        server.relation = relation
        await server.start()
        try:
            outcome = await server.execute(CreatePrinterGroup(name="Dock"))
            assert outcome.ok and "Dock" in (await server.read_state()).groups
            assert server.info()["relationship"] == {"type": "recorded"}
            assert is_ready(server) and not is_active(server)
            recorded.ready = False
            assert not is_ready(server)
            assert server.triad is None and server.backup is None
        finally:
            await server.stop()
        assert recorded.calls[0] == "start" and recorded.calls[-1] == "stop"
        assert "commit CreatePrinterGroup" in recorded.calls and "committed ok" in recorded.calls

    asyncio.run(go())


def test_a_server_alone_is_standalone_ready_and_active(tmp_path: Path):
    server = LicenseServer(Config(data_dir=tmp_path / "data"))
    server.open()
    try:
        assert isinstance(server.relation, Standalone)
        assert server.relationship() is None and server.relation.client_view() is None
        server.started_at = 1.0
        assert is_ready(server) and is_active(server)
    finally:
        server.release()
