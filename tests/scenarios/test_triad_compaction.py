"""The triad's log is compacted below what every member has checkpointed, and a member that fell behind a
compaction (it was away while the others went on) catches up from another member's checkpoint."""

from __future__ import annotations

import time

from harness import ROLES, TriadCluster
from triad_support import checkout, install_licenses, wait_for, wait_same_state

QUICK_COMPACTION = {
    "LICENTIA_TRIAD_CHECKPOINT_AFTER_S": "1",
    "LICENTIA_TRIAD_COMPACT_MIN_STEP": "10",
    "LICENTIA_TRIAD_COMPACT_LAG_LIMIT": "30",
}


def test_a_member_behind_the_compaction_catches_up_from_a_peers_checkpoint(tmp_path, issuer):
    cluster = TriadCluster(tmp_path / "triad", issuer)
    for role in ROLES:
        cluster.servers[role].extra_env = dict(QUICK_COMPACTION)
    try:
        cluster.start(timeout=60)
        install_licenses(cluster, issuer, seats=200)
        wait_same_state(cluster)
        tertiary = cluster.servers["tertiary"]
        tertiary.kill()
        primary = cluster.servers["primary"]
        for n in range(120):
            # Killing the tertiary (it holds etcd's leadership) can leave a commit in flight with its outcome
            # unknown (503 unavailable): the same request id again, as the SDK does.
            answer = checkout(primary, request_id=f"away-{n}")
            for _ in range(5):
                if answer.status_code != 503:
                    break
                answer = checkout(primary, request_id=f"away-{n}")
            assert answer.status_code in (200, 201), answer.text
        time.sleep(4)  # a checkpoint a second, then the active member compacts below the other two's
        tertiary.start(timeout=60)
        state = wait_same_state(cluster, timeout=60)
        assert len(state["leases"]) == 120
        text = wait_for(lambda: (t := tertiary.log_path.read_text()) and "checkpoint at revision" in t and t, 30,
                        what="the tertiary installing a peer's checkpoint")
        assert "etcd has compacted it up to" in text, text[-3000:]
    finally:
        cluster.stop()
