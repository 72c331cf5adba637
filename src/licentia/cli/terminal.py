"""What the command's admin subcommands share: the server they talk to, the admin's credentials (from the
environment or a prompt) and answers printed as JSON."""

from __future__ import annotations

import argparse
import getpass
import json
import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from licentia.client import AdminSession

DEFAULT_SERVER = os.environ.get("LICENTIA_SERVER", "http://127.0.0.1:8470")


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, sort_keys=True))


def credentials(args: argparse.Namespace) -> tuple[str, str]:
    user = args.user or os.environ.get("LICENTIA_USER", "admin")
    return user, os.environ.get("LICENTIA_PASSWORD") or getpass.getpass(f"password for {user}: ")


def admin_session(args: argparse.Namespace) -> AdminSession:
    from licentia.client import AdminSession  # imported when used: `licentia serve` needs no HTTP client

    return AdminSession(args.server, *credentials(args), tls_fingerprint=args.tls_fingerprint)

