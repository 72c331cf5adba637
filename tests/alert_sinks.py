"""Where test alerts land: a real SMTP server (aiosmtpd, with AUTH) and a small HTTP webhook receiver."""

from __future__ import annotations

import email
import email.policy
import json
import threading
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from harness import free_port

SMTP_USER = "licentia-mailer"
SMTP_PASSWORD = "smtp-Secret-4f9a1c"


class SmtpSink:
    """A real SMTP server on a loopback port that accepts mail only after AUTH with the test credentials."""

    def __init__(self, user: str = SMTP_USER, password: str = SMTP_PASSWORD) -> None:
        self.user, self.password = user, password
        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str], bool]] = []
        self._lock = threading.Lock()
        self.port = free_port()
        self.controller = Controller(
            self,
            hostname="127.0.0.1",
            port=self.port,
            auth_require_tls=False,
            authenticator=self._authenticate,
        )

    def _authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == self.user
            and auth_data.password.decode() == self.password
        )
        return AuthResult(success=ok, handled=False)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if not session.authenticated:
            return "530 Authentication required"
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self._lock:
            self.messages.append(message)  # type: ignore[arg-type]
            self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos), bool(session.authenticated)))
        return "250 OK"

    def start(self) -> SmtpSink:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()

    def subjects(self) -> list[str]:
        with self._lock:
            return [str(m["Subject"]) for m in self.messages]

    def matching(self, *words: str) -> list[EmailMessage]:
        with self._lock:
            found = list(self.messages)
        return [m for m in found if all(w in str(m["Subject"]) + m.get_content() for w in words)]


class WebhookSink:
    """An HTTP server that records every JSON POST and answers `status` (or 503 for the next `fail_next` ones)."""

    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        self.status = 204
        self.fail_next = 0  # answer this many requests with 503 first
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                sink.posts.append(json.loads(body))
                status = sink.status
                if sink.fail_next > 0:
                    sink.fail_next -= 1
                    status = 503
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}/hooks/licentia"
        self.thread = threading.Thread(target=self.http.serve_forever, daemon=True)

    def start(self) -> WebhookSink:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.http.shutdown()
        self.http.server_close()

    def events(self, kind: str | None = None) -> list[tuple[str, str]]:
        return [(p["event"], p["key"]) for p in list(self.posts) if kind is None or p["kind"] == kind]


def alerts_config(directory: Path, smtp: SmtpSink, password: str | None = None, interval_s: float = 0.2,
                  server_table: str = "") -> Path:
    """A `licentia serve --config` file whose [alerts] table points at `smtp` (plain SMTP with AUTH)."""
    path = directory / f"alerts-{smtp.port}.toml"
    directory.mkdir(parents=True, exist_ok=True)
    path.write_text(
        (f"[server]\n{server_table}\n" if server_table else "")
        + "[alerts]\n"
        f'smtp_host = "127.0.0.1"\nsmtp_port = {smtp.port}\nsmtp_tls = "none"\n'
        f'smtp_user = "{smtp.user}"\nsmtp_password = "{password or smtp.password}"\n'
        f'smtp_from = "licentia@example.test"\ninterval_s = {interval_s}\n'
    )
    return path


