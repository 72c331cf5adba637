"""A triad with alerts on every member, a member killed and brought back: each alert arrives exactly once.

Also: after the setup, logins, formation and all of this, no secret appears in any member's log.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
from alert_sinks import SMTP_PASSWORD, SmtpSink, WebhookSink, alerts_config
from harness import ADMIN_PASSWORD, Issuer, TriadCluster, wait_for

QUIET = 1.5  # seconds in which no duplicate may arrive (several evaluations of every member)


def test_member_down_failover_recovery_and_failback_alerts_once_each(tmp_path: Path, issuer: Issuer):
    smtp, webhook = SmtpSink().start(), WebhookSink().start()
    config = alerts_config(tmp_path, smtp, server_table="access_log = true")
    cluster = TriadCluster(tmp_path / "triad", issuer)
    tokens: list[str] = []
    for server in cluster.servers.values():
        server.extra_args = ["--config", str(config), "--log-level", "debug"]
    try:
        cluster.start()
        primary = cluster.servers["primary"]
        login = httpx.post(f"{primary.url}/api/v1/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD})
        tokens.append(login.json()["token"])
        admin = httpx.Client(base_url=primary.url, headers={"Authorization": f"Bearer {tokens[0]}"}, timeout=10)
        answer = admin.put("/api/v1/admin/alerts", json={
            "recipients": ["ops@example.com"], "webhook_url": webhook.url, "member_down_after_s": 2,
            "expiring_within_days": 0, "denials_threshold": 0})
        assert answer.status_code == 200, answer.text
        admin.close()
        # Replicated: every member has the same recipients (the others apply the change a moment after the
        # active member answered); a healthy triad sends nothing.
        for server in cluster.servers.values():
            with server.admin() as member_admin:
                wait_for(lambda a=member_admin: a.get("/api/v1/admin/alerts").json()["settings"]["recipients"]
                         == ["ops@example.com"], timeout=5, what="the recipients on every member")
        time.sleep(QUIET)
        assert smtp.messages == []

        cluster.servers["primary"].kill()
        cluster.wait_active("secondary")
        wait_for(lambda: len(smtp.messages) >= 2, timeout=15, what="the failover and member-down alerts")
        time.sleep(QUIET)
        failover = smtp.matching("[Licentia ALERT]", "failover")
        down = smtp.matching("[Licentia ALERT]", "member primary", "is down")
        assert len(failover) == 1 and len(down) == 1 and len(smtp.messages) == 2, smtp.subjects()
        assert "reported by secondary" in down[0].get_content()  # the survivor that serves tells, not the tertiary

        cluster.servers["primary"].start()
        cluster.wait_active("primary", timeout=20)
        wait_for(lambda: len(smtp.messages) >= 4, timeout=15, what="the recovery and failback alerts")
        time.sleep(QUIET)
        back = smtp.matching("[Licentia RESOLVED]", "member primary is reachable again")
        failback = smtp.matching("[Licentia RESOLVED]", "failback")
        assert len(back) == 1 and len(failback) == 1 and len(smtp.messages) == 4, smtp.subjects()
        assert sorted(webhook.events()) == sorted([
            ("opened", "failover:T1"), ("opened", "member_down:T1:primary"),
            ("resolved", "member_down:T1:primary"), ("resolved", "failover:T1")])
        assert all(post["reported_by"].startswith("secondary") for post in webhook.posts)

        for server in cluster.servers.values():
            with server.admin() as member_admin:
                tokens.append(member_admin.headers["Authorization"].removeprefix("Bearer "))
        secret = json.loads((cluster.servers["secondary"].data_dir / "triad.json").read_text())["secret"]
    finally:
        cluster.stop()
        smtp.stop()
        webhook.stop()

    # No secret in any log: admin password, SMTP password, the triad's Raft secret, bearer tokens.
    secrets = {"admin password": ADMIN_PASSWORD, "SMTP password": SMTP_PASSWORD, "triad secret": secret}
    secrets.update({f"token {n}": token for n, token in enumerate(tokens)})
    for role, server in cluster.servers.items():
        log = server.log_path.read_text()
        assert "INFO" in log and "Triad T1" in log  # the scan read real, verbose (debug level) logs
        for what, value in secrets.items():
            assert value not in log, f"the {what} is in the {role}'s log"
        assert "Traceback" not in log, log[-3000:]
