"""A server that cannot be reached is named in a sentence, never with the network library's exception."""

from __future__ import annotations

import socket

from harness import ADMIN_PASSWORD, ServerProcess


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_setting_up_a_pair_with_a_stopped_partner_says_why_in_words(server: ServerProcess) -> None:
    partner_url = f"http://127.0.0.1:{_closed_port()}"
    body = {"name": "B1", "main": {"name": "main", "api_url": server.url},
            "backup": {"name": "lic2", "api_url": partner_url},
            "username": "admin", "password": ADMIN_PASSWORD, "interval_s": 1.0}
    with server.admin() as admin:
        answer = admin.post("/api/v1/admin/relationship/backup", json=body, timeout=30)
    assert answer.status_code == 502, answer.text  # a member the server could not reach
    message = answer.json()["error"]["message"]
    assert message == (
        f"lic2 ({partner_url}) cannot be reached: no connection could be made (the server is stopped, "
        "or the address or a firewall is wrong)."
    )
