"""The SQLite journal: commands survive a restart, snapshots compact the journal, usage is queryable."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from harness import Issuer

from licentia.core import commands as c
from licentia.core.model import AdminUser, ClientInfo, PrinterIdentity
from licentia.core.printers import printer_id
from licentia.core.state import LicenseState, Outcome
from licentia.store import forked_write
from licentia.store import journal as journal_module
from licentia.store.journal import SqliteJournal
from licentia.store.snapshot_file import read_snapshot_file
from licentia.store.usage_log import UsageQuery

T0 = 1_700_000_000.0
DAY = 86400.0


def add_license(issuer: Issuer, **fields) -> c.AddLicense:
    terms = issuer.terms(not_before=T0 - 60, expires=T0 + 365 * DAY, **fields)
    return c.AddLicense(terms=terms, key_id="test-key", signature="c2lnbmF0dXJl")


def print_check(name: str, host: str = "ws-01") -> c.PrintCheck:
    return c.PrintCheck(product="LabelStudio", printer=PrinterIdentity(name=name),
                        client=ClientInfo(host=host, user="alice", application="LabelStudio"), source_ip="10.0.0.2")


def checkout(lease_id: str, version: str) -> c.Checkout:
    return c.Checkout(request_id=f"req-{lease_id}", lease_id=lease_id, product="Designer",
                      client=ClientInfo(host="ws-09", user="bob", application="Designer", version=version))


def script(issuer: Issuer) -> list[tuple[c.Command, float]]:
    """Twelve commands that each change state (so each is journaled), with explicit times."""
    return [
        (c.PutAdminUser(user=AdminUser("admin", "hash", "admin")), T0),
        (add_license(issuer, license_id="LIC-P", unit="printers", count=2, grace_days=0), T0 + 1),
        (add_license(issuer, license_id="LIC-S", product="Designer", unit="seats", count=5), T0 + 2),
        (print_check("P1"), T0 + 10),
        (checkout("L1", "1.0"), T0 + 11),
        (print_check("P2", host="ws-02"), T0 + 12),
        (print_check("P3", host="ws-03"), T0 + 13),  # over the count with no grace: denied, but journaled
        (c.CreatePrinterGroup(name="Dock"), T0 + 14),
        (c.UpdateSettings(changes={"lease_ttl_s": 600}), T0 + 15),
        (checkout("L2", "2.0"), T0 + 16),  # the same workstation with a newer client version
        (c.Heartbeat(lease_ids=["L1", "L2"]), T0 + 17),
        (checkout("L3", "3.0"), T0 + 18),
    ]


async def execute(journal: SqliteJournal, state: LicenseState, command: c.Command, now: float) -> Outcome:
    """What the standalone server does: apply, then journal what changed and offer a snapshot."""
    outcome = state.apply(command, now)
    if outcome.changed:
        await journal.append(command, now, outcome.usage)
        journal.offer_snapshot(state)
    return outcome


async def run_script(journal: SqliteJournal, state: LicenseState, issuer: Issuer) -> list[Outcome]:
    outcomes = [await execute(journal, state, command, now) for command, now in script(issuer)]
    assert all(outcome.changed for outcome in outcomes)
    return outcomes


def table_rows(path: Path, table: str) -> int:
    with sqlite3.connect(path) as conn:
        return conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]


def snapshot_index(path: Path) -> int | None:
    """The journal index of the snapshot file beside the database, if there is one."""
    found = read_snapshot_file(path.with_suffix(".snapshot"))
    return found[0] if found else None


def reload(path: Path) -> tuple[LicenseState, int]:
    journal = SqliteJournal(path)
    try:
        state = journal.load()
        return state, journal.last_index
    finally:
        asyncio.run(journal.close())


def test_reopened_journal_replays_commands_to_same_state(tmp_path, issuer):
    path = tmp_path / "journal.db"
    state = LicenseState()

    async def body() -> None:
        journal = SqliteJournal(path)
        assert journal.load().snapshot_bytes() == LicenseState().snapshot_bytes()
        await run_script(journal, state, issuer)
        assert journal.durable_index == 12
        await journal.close()  # no snapshot: reload must replay all twelve commands

    asyncio.run(body())

    assert table_rows(path, "journal") == 12
    assert snapshot_index(path) is None
    reloaded, last_index = reload(path)
    assert last_index == 12
    assert reloaded.snapshot_bytes() == state.snapshot_bytes()
    assert reloaded.used("LIC-P", T0 + 20) == state.used("LIC-P", T0 + 20) == 2


def test_close_with_state_writes_snapshot_and_empties_journal(tmp_path, issuer):
    path = tmp_path / "journal.db"
    state = LicenseState()

    async def body() -> None:
        journal = SqliteJournal(path)
        journal.load()
        await run_script(journal, state, issuer)
        await journal.close(state)

    asyncio.run(body())

    assert table_rows(path, "journal") == 0
    assert snapshot_index(path) == 12
    reloaded, last_index = reload(path)
    assert last_index == 12
    assert reloaded.snapshot_bytes() == state.snapshot_bytes()


def test_snapshot_every_five_compacts_journal_and_reload_is_equal(tmp_path, issuer):
    path = tmp_path / "journal.db"
    state = LicenseState()

    async def body() -> None:
        journal = SqliteJournal(path, snapshot_every=5)
        journal.load()
        for command, now in script(issuer)[:5]:
            await execute(journal, state, command, now)
        await journal.wait_for_snapshot()  # written by a forked child while the journal goes on
        assert journal.snapshot_index == 5
        for command, now in script(issuer)[5:]:
            await execute(journal, state, command, now)
        await journal.wait_for_snapshot()
        assert journal.snapshot_index == 10
        await journal.close()

    asyncio.run(body())

    assert table_rows(path, "journal") == 2  # commands 11 and 12; the rest are in the snapshot at 10
    assert snapshot_index(path) == 10
    reloaded, last_index = reload(path)
    assert last_index == 12
    assert reloaded.snapshot_bytes() == state.snapshot_bytes()
    # The lease checked out by client version 1.0 still says so after a restart from the snapshot.
    assert reloaded.leases["L1"].client.version == state.leases["L1"].client.version == "1.0"


def test_journal_continues_after_reload(tmp_path, issuer):
    path = tmp_path / "journal.db"
    live = LicenseState()

    async def first_run() -> None:
        journal = SqliteJournal(path, snapshot_every=5)
        journal.load()
        for command, now in script(issuer)[:7]:
            await execute(journal, live, command, now)
        await journal.close()

    async def second_run() -> None:
        journal = SqliteJournal(path, snapshot_every=5)
        state = journal.load()
        assert journal.last_index == 7
        assert state.snapshot_bytes() == live.snapshot_bytes()
        for command, now in script(issuer)[7:]:
            await execute(journal, state, command, now)
            live.apply(command, now)
        assert journal.last_index == 12
        await journal.close()

    asyncio.run(first_run())
    asyncio.run(second_run())

    reloaded, last_index = reload(path)
    assert last_index == 12
    assert reloaded.snapshot_bytes() == live.snapshot_bytes()


def test_usage_rows_are_queryable(tmp_path, issuer):
    path = tmp_path / "journal.db"
    state = LicenseState()

    async def body() -> None:
        journal = SqliteJournal(path)
        journal.load()
        await run_script(journal, state, issuer)

        failed = await journal.query_usage(UsageQuery(failed_only=True))
        assert [(r["kind"], r["reason"], r["printer_name"]) for r in failed] == [
            ("print", "limit_exceeded", "P3")
        ]
        assert failed[0]["granted"] is False
        assert failed[0]["at"] == T0 + 13

        everything = await journal.query_usage(UsageQuery())
        assert len(everything) == 6  # 3 print checks, 3 checkouts; settings and groups leave no usage
        assert [r["id"] for r in everything] == sorted((r["id"] for r in everything), reverse=True)
        assert everything[0]["lease_id"] == "L3"  # newest first
        assert all(r["granted"] for r in everything if r["reason"] == "ok")

        prints = await journal.query_usage(UsageQuery(kind="print"))
        assert [r["printer_name"] for r in prints] == ["P3", "P2", "P1"]

        one_printer = await journal.query_usage(UsageQuery(printer_id=printer_id(PrinterIdentity(name="P2"))))
        assert [r["printer_name"] for r in one_printer] == ["P2"]

        by_host = await journal.query_usage(UsageQuery(client_host="ws-09"))
        assert [r["lease_id"] for r in by_host] == ["L3", "L2", "L1"]

        window = await journal.query_usage(UsageQuery(since=T0 + 11, until=T0 + 13))
        assert [r["at"] for r in window] == [T0 + 12, T0 + 11]

        page = await journal.query_usage(UsageQuery(limit=2, offset=1))
        assert [r["id"] for r in page] == [r["id"] for r in everything[1:3]]

        await journal.close()

    asyncio.run(body())


def test_usage_survives_restart_and_prune_removes_old_rows(tmp_path, issuer):
    path = tmp_path / "journal.db"

    async def write() -> None:
        journal = SqliteJournal(path)
        state = journal.load()
        await run_script(journal, state, issuer)
        await journal.close(state)

    async def read_and_prune() -> None:
        journal = SqliteJournal(path)
        journal.load()
        assert len(await journal.query_usage(UsageQuery())) == 6
        await journal.prune_usage(T0 + 13)
        assert [r["at"] for r in await journal.query_usage(UsageQuery())] == [T0 + 18, T0 + 16, T0 + 13]
        await journal.close()

    asyncio.run(write())
    asyncio.run(read_and_prune())


def test_refused_command_without_usage_is_not_journaled(tmp_path):
    path = tmp_path / "journal.db"

    async def body() -> None:
        journal = SqliteJournal(path)
        state = journal.load()
        outcome = await execute(journal, state, c.DeletePrinterGroup(name="Default"), T0)
        assert outcome.code == "group_protected"
        await execute(journal, state, c.CreatePrinterGroup(name="Dock"), T0)
        assert journal.last_index == 1
        await journal.close()

    asyncio.run(body())
    assert table_rows(path, "journal") == 1


def test_meta_values_persist(tmp_path):
    path = tmp_path / "journal.db"

    async def body() -> None:
        journal = SqliteJournal(path)
        journal.set_meta("server_id", "abc")
        journal.set_meta("server_id", "def")
        await journal.close()

    asyncio.run(body())
    journal = SqliteJournal(path)
    try:
        assert journal.meta("server_id") == "def"
        assert journal.meta("missing") is None
    finally:
        asyncio.run(journal.close())


def test_invalid_synchronous_mode_is_refused(tmp_path):
    with pytest.raises(ValueError, match="synchronous"):
        SqliteJournal(tmp_path / "journal.db", synchronous="OFF")


def test_snapshot_kept_in_the_database_by_earlier_versions_moves_to_the_snapshot_file(tmp_path, issuer):
    path = tmp_path / "journal.db"
    state = LicenseState()

    async def body() -> None:
        journal = SqliteJournal(path)
        journal.load()
        await run_script(journal, state, issuer)
        await journal.close()

    asyncio.run(body())
    earlier = LicenseState()
    for command, now in script(issuer)[:8]:
        earlier.apply(command, now)
    with sqlite3.connect(path) as conn:  # what an earlier version left: the state at 8 in a table
        conn.execute("CREATE TABLE snapshot (id INTEGER PRIMARY KEY CHECK (id = 1), idx INTEGER NOT NULL, "
                     "data BLOB NOT NULL)")
        conn.execute("INSERT INTO snapshot VALUES (1, 8, ?)", (earlier.snapshot_bytes(),))
        conn.execute("DELETE FROM journal WHERE idx <= 8")

    reloaded, last_index = reload(path)
    assert last_index == 12
    assert reloaded.snapshot_bytes() == state.snapshot_bytes()
    assert snapshot_index(path) == 8
    with sqlite3.connect(path) as conn:
        assert not conn.execute("SELECT name FROM sqlite_master WHERE name = 'snapshot'").fetchall()
    assert reload(path)[0].snapshot_bytes() == state.snapshot_bytes()


def test_the_wal_and_the_database_stay_bounded_under_steady_writes_and_snapshots(tmp_path, issuer, monkeypatch):
    """Snapshots live in their own file (replaced, not accumulated) and the WAL starts over at its limit."""
    monkeypatch.setattr(journal_module, "WAL_SIZE_LIMIT", 1024 * 1024)
    path = tmp_path / "journal.db"
    wal = path.with_name(path.name + "-wal")
    state = LicenseState()
    largest_wal = 0

    async def body() -> None:
        nonlocal largest_wal
        journal = SqliteJournal(path, snapshot_every=200)
        journal.load()
        for command, now in script(issuer)[:3]:
            await execute(journal, state, command, now)
        for n in range(4000):  # ~6 MB of journal and usage rows: clients with long names
            client = ClientInfo(host=f"ws-{n}-" + "x" * 150, user="u" * 150, application="a" * 150)
            command = c.Checkout(request_id=f"r{n}", lease_id=f"L{n}", product="Designer", client=client)
            await execute(journal, state, command, T0 + 20 + n)
            if wal.exists():
                largest_wal = max(largest_wal, wal.stat().st_size)
        await journal.wait_for_snapshot()
        await journal.close()

    asyncio.run(body())
    assert largest_wal < 1024 * 1024 + 300_000  # the limit, a checkpoint's lag and one batch
    snapshot = path.with_suffix(".snapshot").stat().st_size
    assert path.stat().st_size < 2 * (snapshot + 4 * 1024 * 1024)  # usage rows and the journal since the snapshot
    reloaded, last_index = reload(path)
    assert last_index == 4003 and reloaded.snapshot_bytes() == state.snapshot_bytes()


def test_a_snapshot_child_that_fails_loses_nothing_and_later_snapshots_are_written_in_process(
    tmp_path, issuer, monkeypatch
):
    async def failing_wait(self) -> None:
        await asyncio.to_thread(os.waitpid, self.pid, 0)
        raise forked_write.ForkedWriteFailed("the child died")

    monkeypatch.setattr(forked_write.ForkedWrite, "wait", failing_wait)
    path = tmp_path / "journal.db"
    state = LicenseState()

    async def body() -> None:
        journal = SqliteJournal(path, snapshot_every=5)
        journal.load()
        for command, now in script(issuer)[:5]:
            await execute(journal, state, command, now)
        await journal.wait_for_snapshot()
        assert journal.snapshot_index == 0 and table_rows(path, "journal") == 5  # nothing dropped
        for command, now in script(issuer)[5:]:
            await execute(journal, state, command, now)
        await journal.wait_for_snapshot()
        written = journal.snapshot_index  # from the next offer on (6), written by this process
        assert written >= 6 and snapshot_index(path) == written
        assert table_rows(path, "journal") == 12 - written
        await journal.close()

    asyncio.run(body())
    reloaded, last_index = reload(path)
    assert last_index == 12 and reloaded.snapshot_bytes() == state.snapshot_bytes()


def test_the_space_of_a_burst_of_journaled_commands_is_given_back_once_a_snapshot_holds_them(tmp_path, issuer):
    """A burst of changes with no snapshot between them (a bulk import, a long outage of the snapshot child)
    leaves the database file full of free pages once the snapshot holds them; they are given back to the file
    system, so the data directory stays about the size of the live data."""
    path = tmp_path / "journal.db"
    state = LicenseState()

    async def body() -> None:
        journal = SqliteJournal(path, snapshot_every=10**9)
        journal.load()
        for command, now in script(issuer)[:3]:
            await execute(journal, state, command, now)
        for n in range(3000):  # ~2.5 MB of journal: clients with long names
            client = ClientInfo(host=f"ws-{n}-" + "x" * 180, user="u" * 200, application="a" * 200)
            command = c.Checkout(request_id=f"r{n}", lease_id=f"L{n}", product="Designer", client=client)
            await execute(journal, state, command, T0 + 20 + n)
        await journal.close(state)  # the snapshot at close holds every command; the journal is emptied

    asyncio.run(body())
    conn = sqlite3.connect(path)
    page_size, pages, free = (conn.execute(f"PRAGMA {name}").fetchone()[0]
                              for name in ("page_size", "page_count", "freelist_count"))
    journal_rows = conn.execute("SELECT COUNT(*) FROM journal").fetchone()[0]
    conn.close()
    assert journal_rows == 0
    assert free * page_size <= 1024 * 1024, f"{free} free pages of {pages} kept in the file"  # 4 MB before
    reloaded, last_index = reload(path)
    assert last_index == 3003 and reloaded.snapshot_bytes() == state.snapshot_bytes()


def test_a_snapshot_leaves_the_state_frozen_at_start_out_of_the_collectors_passes(tmp_path, issuer):
    """`licentia serve` freezes the state it loads, so that the collector's full passes never walk it (at 300k
    leases a pass over it stops the loop ~1 s). Writing a snapshot must not hand it back to the collector."""
    import gc

    path = tmp_path / "journal.db"
    state = LicenseState()
    frozen: list[list[int]] = [[n] for n in range(1000)]  # stands for the loaded state
    gc.freeze()
    frozen_at_start = gc.get_freeze_count()

    async def body() -> int:
        journal = SqliteJournal(path, snapshot_every=5)
        journal.load()
        for command, now in script(issuer)[:6]:
            await execute(journal, state, command, now)
        await journal.wait_for_snapshot()
        assert journal.snapshot_index > 0  # a snapshot was written (by a forked child)
        after = gc.get_freeze_count()
        await journal.close()
        return after

    try:
        assert asyncio.run(body()) >= frozen_at_start > 0
        assert gc.isenabled()
    finally:
        gc.unfreeze()
        del frozen


SLOW_SYNC_S = 0.120  # a sync behind another process's writes (seen: 51-53 ms of a 73-80 ms commit, 2026-12-07)


def threads_writing(monkeypatch, slow_write: int = 0) -> list[str]:
    """The names of the threads that write the journal's batches, in order, as they are written; the write numbered
    `slow_write` (from 1) takes SLOW_SYNC_S more, as a sync behind another process's writes does."""
    written_by: list[str] = []
    original = SqliteJournal._write

    def recording_write(self, batch):
        written_by.append(threading.current_thread().name)
        if len(written_by) == slow_write:
            time.sleep(SLOW_SYNC_S)
        return original(self, batch)

    monkeypatch.setattr(SqliteJournal, "_write", recording_write)
    return written_by


def test_commands_are_committed_beside_the_loop_while_a_snapshot_is_being_written(tmp_path, issuer, monkeypatch):
    """A sync waits behind what else the disk is writing: while the snapshot child writes the state (hundreds of
    megabytes at a large site), the commit thread writes the journal's batches, so the loop serves meanwhile;
    and what it acknowledges is on disk all the same."""
    monkeypatch.setenv(forked_write.PAUSE_ENV, "1.0")  # the child pauses after its first chunk
    path = tmp_path / "journal.db"
    state = LicenseState()
    written_by = threads_writing(monkeypatch)

    async def body() -> None:
        journal = SqliteJournal(path, snapshot_every=5)
        journal.load()
        commands = script(issuer)
        for command, now in commands[:5]:  # the fifth starts the snapshot
            await execute(journal, state, command, now)
        assert journal._snapshot_task is not None
        for command, now in commands[5:8]:
            await execute(journal, state, command, now)
        assert journal._snapshot_task is not None  # still being written
        await journal.wait_for_snapshot()
        await journal.close()

    asyncio.run(body())
    assert len(written_by) >= 2 and all(name.startswith("licentia-commit") for name in written_by)
    reloaded, last_index = reload(path)
    assert last_index == 8 and reloaded.snapshot_bytes() == state.snapshot_bytes()


def test_a_slow_sync_never_holds_the_loop(tmp_path, issuer, monkeypatch):
    """Every batch is committed (and synced) by the commit thread, the first one too: a sync that waits behind the
    disk's other writes holds the commit, never the loop. Before, commits ran on the loop until one had been
    slow, so that first slow one held the loop for its whole sync (73 and 80 ms at 300k leases, issue #14)."""
    path = tmp_path / "journal.db"
    state = LicenseState()
    written_by = threads_writing(monkeypatch, slow_write=1)
    lateness: list[float] = []

    async def ticking(stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            due = loop.time() + 0.005
            await asyncio.sleep(0.005)
            lateness.append(loop.time() - due)

    async def body() -> None:
        journal = SqliteJournal(path, snapshot_every=10**9)
        journal.load()
        stop = asyncio.Event()
        ticker = asyncio.create_task(ticking(stop))
        await asyncio.sleep(0.02)
        for command, now in script(issuer)[:5]:
            await execute(journal, state, command, now)
        stop.set()
        await ticker
        await journal.close()

    asyncio.run(body())
    assert written_by and all(name.startswith("licentia-commit") for name in written_by)
    assert len(lateness) >= SLOW_SYNC_S / 0.005 / 2  # the loop ticked on while the slow sync was waited for
    assert max(lateness) < SLOW_SYNC_S / 2, f"the loop was held {max(lateness) * 1000:.0f} ms"
    assert reload(path)[1] == 5
