"""`bench/scale.py --triad`: a triad of three `licentia serve` processes holding a large site, under client
load, while its members checkpoint and the active member compacts etcd's log, and while a member that
fell behind a compaction fetches a peer's checkpoint.

Building the site: the triad is formed empty (tests/harness.py `TriadCluster`), the two bulk licenses are
installed through the active member's admin API, and the three members are stopped (each writes its
checkpoint). The newest of their checkpoints is then loaded in this process, the site's commands
(`tests/bulk_load.py` `site_commands`: one print check per printer, one checkout per lease) are applied to
it with the active member's epoch, as the members would have applied them from the log, and that state is
written as the checkpoint of all three members, at the revision it came from. Applying the same commands
to the same state gives every member the same state (that is the triad's premise), and going through the
log would take minutes per 100,000 commands.

Measured (every member runs with `LICENTIA_TRIAD_CHECKPOINT_AFTER_S` = CHECKPOINT_AFTER_S, so each writes
its checkpoint and the active member compacts the log every few seconds in every phase; `--checkpoint-after-s 20`
runs the members at the product's default instead, so the idle and console phases see no more checkpoints than
a site would):

- `restart_s`: the three members started on their checkpoints, until each answers (the slowest);
- phases "idle" (client load only) and "console" (a logged-in console session loading every page and
  admin list, repeatedly), as for a standalone server, against the active member, with the `/health/live`
  probe every 10 ms; phase "checkpoint" lasts until the active member has written two more checkpoints;
- phase "peer_checkpoint": the tertiary is stopped, load goes on until the log is compacted past it (the
  members run with a small `LICENTIA_TRIAD_COMPACT_LAG_LIMIT`), and it is started again: it fetches a
  checkpoint from the primary (the active member) while the probe watches the active member;
  `member_restart_s` is the tertiary's start until it answers, `member_catch_up_s` until it has applied
  the log again (None if not within 180 s), `peer_checkpoints_installed` how many peer checkpoints it
  installed meanwhile. With the small lag limit of the run, a member that takes longer to fetch and
  install a checkpoint than the active member takes to compact LAG_LIMIT revisions past it falls
  behind again and fetches another one (the default limit is 200,000 revisions).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import gc
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import msgspec
from bulk_load import PRINTER_PRODUCT, SEAT_PRODUCT, Site, site_commands
from harness import ADMIN_PASSWORD, ROLES, Issuer, ServerProcess, TriadCluster

from licentia.cluster.triad import CHECKPOINT_FILE
from licentia.cluster.triad_checkpoint import read_checkpoint, write_checkpoint
from licentia.core.commands import UpdateSettings

CHECKPOINT_AFTER_S = 4.0
TRIAD_ENV = {
    "LICENTIA_TRIAD_CHECKPOINT_AFTER_S": str(CHECKPOINT_AFTER_S),
    "LICENTIA_TRIAD_COMPACT_MIN_STEP": "100",
    "LICENTIA_TRIAD_COMPACT_LAG_LIMIT": "300",
}
JSON = {"Content-Type": "application/json"}


def _log(message: str) -> None:
    print(f"[scale-triad {time.strftime('%H:%M:%S')}] {message}", flush=True, file=sys.stderr)


def _start_all(servers: list[ServerProcess], timeout: float) -> float:
    """Start the servers at once; seconds until the slowest answers."""
    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(len(servers)) as pool:
        for future in [pool.submit(server.start, timeout) for server in servers]:
            future.result()
    return time.perf_counter() - started


def _stop_all(servers: list[ServerProcess]) -> None:
    with concurrent.futures.ThreadPoolExecutor(len(servers)) as pool:
        for future in [pool.submit(server.stop, 120) for server in servers]:
            future.result()


def build_triad(base: Path, site: Site, checkpoint_after_s: float = CHECKPOINT_AFTER_S) -> TriadCluster:
    """A stopped triad whose three members hold `site` in their checkpoints (see the module's text)."""
    issuer = Issuer()
    cluster = TriadCluster(base, issuer)
    for server in cluster.servers.values():
        server.extra_env = {**TRIAD_ENV, "LICENTIA_TRIAD_CHECKPOINT_AFTER_S": str(checkpoint_after_s)}
    cluster.start(timeout=60)
    active = cluster.wait_active()
    with cluster.servers[active].admin() as admin:
        for data in (
            issuer.license_bytes(license_id="BULK-PRN", product=PRINTER_PRODUCT, unit="printers",
                                 count=max(site.printers, 1)),
            issuer.license_bytes(license_id="BULK-SEATS", product=SEAT_PRODUCT, unit="seats",
                                 count=max(site.leases, 1)),
        ):
            answer = admin.post("/api/v1/admin/licenses", content=data, headers=JSON)
            if answer.status_code != 201:
                raise RuntimeError(f"installing a bulk license answered {answer.status_code}: {answer.text}")
    time.sleep(1.0)  # every member applies the installs
    _stop_all(list(cluster.servers.values()))
    checkpoints = {role: read_checkpoint(cluster.servers[role].data_dir / CHECKPOINT_FILE) for role in ROLES}
    newest = max((c for c in checkpoints.values() if c is not None), key=lambda c: c.revision)
    state = newest.state
    if state.active is None:
        raise RuntimeError("the triad's checkpoint names no active member")
    epoch, now = state.active.epoch, time.time()
    commands = [UpdateSettings(changes={"lease_ttl_s": site.lease_ttl_s}), *site_commands(site)]
    for command in commands:
        outcome = state.apply(msgspec.structs.replace(command, epoch=epoch), now)
        if not outcome.ok:
            raise RuntimeError(f"loading the triad's state refused a command: {outcome.message}")
    for server in cluster.servers.values():
        write_checkpoint(server.data_dir / CHECKPOINT_FILE, newest.revision, state)
    size = (cluster.servers["primary"].data_dir / CHECKPOINT_FILE).stat().st_size
    _log(f"checkpoints written at revision {newest.revision}: {size / 1e6:.0f} MB each")
    return cluster


def _applied(server: ServerProcess) -> tuple[int | None, int | None]:
    """(applied revision, newest log revision it knows) of a member, from its relationship status."""
    try:
        status = httpx.get(f"{server.url}/api/v1/admin/relationship", auth=("admin", ADMIN_PASSWORD),
                           timeout=5).json()
    except (httpx.HTTPError, ValueError):
        return None, None
    return status.get("applied_index"), status.get("commit_index")


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return 0.0


async def wait_checkpoints(path: Path, count: int, timeout: float) -> int:
    """Wait until the file at `path` has been replaced `count` times; how many times it was."""
    seen, last = 0, _mtime(path)
    deadline = time.perf_counter() + timeout
    while seen < count and time.perf_counter() < deadline:
        await asyncio.sleep(0.1)
        now = _mtime(path)
        if now != last:
            seen, last = seen + 1, now
    return seen


async def peer_checkpoint(cluster: TriadCluster, recorder: Any) -> dict[str, Any]:
    """Stop the tertiary, go on until the log is compacted past it, start it: it fetches a peer's checkpoint."""
    tertiary = cluster.servers["tertiary"]
    await asyncio.to_thread(tertiary.stop, 120)
    active_file = cluster.servers["primary"].data_dir / CHECKPOINT_FILE
    await wait_checkpoints(active_file, 2, 60)  # then the active member compacts past the tertiary
    await asyncio.sleep(1.0)
    recorder.phase = "peer_checkpoint"
    started = time.perf_counter()
    await asyncio.to_thread(tertiary.start, 900)
    member_restart_s = time.perf_counter() - started
    caught_up_s = None
    while time.perf_counter() - started < 180:
        applied, newest = await asyncio.to_thread(_applied, tertiary)
        if applied is not None and newest is not None and applied >= newest - 5:
            caught_up_s = time.perf_counter() - started
            break
        await asyncio.sleep(0.2)
    log_text = tertiary.log_path.read_text(errors="replace")
    return {"member_restart_s": round(member_restart_s, 2),
            "member_catch_up_s": None if caught_up_s is None else round(caught_up_s, 2),
            "peer_checkpoints_installed": log_text.count("checkpoint at revision")}


def run_triad_size(size: Any, workdir: Path, args: Any, measure_phases: Any) -> dict[str, Any]:
    """Build, start and measure a triad holding `size` (`measure_phases` is scale.py's phase runner)."""
    site = Site(printers=size.printers, leases=size.leases, clients=1000, lease_ttl_s=7 * 86400)
    started = time.perf_counter()
    checkpoint_after_s = getattr(args, "checkpoint_after_s", None) or CHECKPOINT_AFTER_S
    cluster = build_triad(workdir / size.name / "triad", site, checkpoint_after_s)
    load_s = time.perf_counter() - started
    gc.collect()  # the site's state built in this process, before anything is measured (see scale.py's run_size)
    gc.freeze()  # and what is left kept out of this process's collector passes (see scale.py's run_size)
    os.sync()  # the checkpoints just written, out before the members' first syncs (see scale.py's run_size)
    try:
        servers = list(cluster.servers.values())
        restart_s = _start_all(servers, 900)
        active = cluster.wait_active(timeout=120)
        _log(f"{size.name}: triad restarted in {restart_s:.1f} s, {active} active")
        result = asyncio.run(measure_phases(cluster.servers[active], size, args, cluster))
        server = cluster.servers[active]
        assert server.process is not None
        rss = _rss_mb(server.process.pid)
    finally:
        cluster.stop()
    result.update(load_s=round(load_s, 1), restart_s=round(restart_s, 2), rss_mb=rss, active=active,
                  checkpoint_after_s=checkpoint_after_s)
    _log(f"{size.name}: {json.dumps({k: v for k, v in result.items() if k != 'pages'})}")
    return result


def _rss_mb(pid: int) -> float | None:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024)
    return None

