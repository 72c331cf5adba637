"""The member serving the clients does not fork for its checkpoints: it takes a standby's newer checkpoint as its
own (the same log applied to the same state machine), and restarts from it."""

from __future__ import annotations

import re
import time

from harness import ROLES, TriadCluster
from triad_support import checkout, install_licenses, wait_for, wait_same_state

from licentia.cluster.triad import CHECKPOINT_FILE
from licentia.store.snapshot_file import HEADING_MAX, snapshot_heading

TOOK = re.compile(r"this member serves the clients, so it took (\S+)'s checkpoint at revision (\d+)")
QUICK_CHECKPOINTS = {"LICENTIA_TRIAD_CHECKPOINT_AFTER_S": "1"}


def file_revision(path) -> int:
    with path.open("rb") as file:
        return snapshot_heading(file.read(HEADING_MAX))[1]


def test_the_serving_member_takes_a_standbys_checkpoint_as_its_own_and_restarts_from_it(tmp_path, issuer):
    cluster = TriadCluster(tmp_path / "triad", issuer)
    for role in ROLES:
        cluster.servers[role].extra_env = dict(QUICK_CHECKPOINTS)
        cluster.servers[role].extra_args = [*cluster.servers[role].extra_args, "--log-level", "info"]
    try:
        cluster.start(timeout=60)
        install_licenses(cluster, issuer, seats=200)
        primary = cluster.servers["primary"]
        for n in range(30):  # spread over a few checkpoint turns
            answer = checkout(primary, request_id=f"spread-{n}")
            assert answer.status_code in (200, 201), answer.text
            time.sleep(0.1)
        wait_same_state(cluster)

        def settled_on_a_taken_checkpoint() -> tuple[str, int] | None:
            taken = TOOK.findall(primary.log_path.read_text(errors="replace"))
            if len(taken) < 2:
                return None
            member, revision = taken[-1][0], int(taken[-1][1])
            newest = max(file_revision(cluster.servers[role].data_dir / CHECKPOINT_FILE) for role in ROLES)
            mine = file_revision(primary.data_dir / CHECKPOINT_FILE)
            return (member, revision) if mine == revision == newest else None

        member, revision = wait_for(settled_on_a_taken_checkpoint, 30, 0.2,
                                    "the active member's checkpoint being the newest, taken from a standby")
        assert member in ("secondary", "tertiary")
        assert file_revision(cluster.servers[member].data_dir / CHECKPOINT_FILE) == revision
        assert (primary.data_dir / CHECKPOINT_FILE).read_bytes() == (
            cluster.servers[member].data_dir / CHECKPOINT_FILE).read_bytes()
        assert "writes its own" not in primary.log_path.read_text(errors="replace")
        for role in ("secondary", "tertiary"):  # the standbys write theirs
            assert not TOOK.search(cluster.servers[role].log_path.read_text(errors="replace"))

        for role in ROLES:  # all three at once: the active member starts from the checkpoint it took
            cluster.servers[role].kill()
        for role in ROLES:
            cluster.servers[role].start(timeout=60)
        cluster.wait_active(timeout=60)
        state = wait_same_state(cluster, timeout=60)
        assert len(state["leases"]) == 30
    finally:
        cluster.stop()
