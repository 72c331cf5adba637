"""`licentia client`: talk to servers as an application would, through the client SDK."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from licentia import __version__
from licentia.cli.terminal import print_json


def _client(args: argparse.Namespace) -> Any:
    import socket

    from licentia.client import LicenseClient

    return LicenseClient(
        args.server.split(","),
        host=socket.gethostname(),
        user=getpass.getuser(),
        application="licentia-cli",
        version=__version__,
        tls_fingerprint=args.tls_fingerprint,
    )


def _client_call(call: Callable[[], Any]) -> int:
    from licentia.client import LicenseDenied, ServerUnavailable

    try:
        print_json(call())
    except LicenseDenied as exc:
        print(f"denied ({exc.status}) {exc.code}: {exc.message}", file=sys.stderr)
        return 1
    except ServerUnavailable as exc:
        print(f"unavailable: {exc}", file=sys.stderr)
        return 3
    return 0


def cmd_client_print(args: argparse.Namespace) -> int:
    client = _client(args)
    return _client_call(
        lambda: client.print_check(
            args.product, args.printer, driver=args.driver, port=args.port_name, location=args.location
        )
    )


def cmd_client_checkout(args: argparse.Namespace) -> int:
    client = _client(args)
    return _client_call(lambda: client.checkout(args.product, feature=args.feature, request_id=args.request_id))


def cmd_client_heartbeat(args: argparse.Namespace) -> int:
    client = _client(args)
    return _client_call(lambda: client.heartbeat(*args.lease_id))


def cmd_client_checkin(args: argparse.Namespace) -> int:
    client = _client(args)
    return _client_call(lambda: client.checkin(args.lease_id))


def cmd_client_grant_keys(args: argparse.Namespace) -> int:
    """Write the relationship's grant keys for applications' `grant_keys_file` (readable, not writable, by users)."""
    from licentia.client import ServerUnavailable

    client = _client(args)
    try:
        document = client.grant_key_document()
    except ServerUnavailable as exc:
        print(f"unavailable: {exc}", file=sys.stderr)
        return 3
    finally:
        client.close()
    text = json.dumps(document, indent=2) + "\n"
    if args.out:
        Path(args.out).write_text(text)
        os.chmod(args.out, 0o644)
        print(f"wrote {len(document['grant_keys'])} grant key(s) to {args.out}; deploy it read-only with the "
              "applications and give its path as grant_keys_file (or $LICENTIA_GRANT_KEYS)")
    else:
        sys.stdout.write(text)
    return 0


def cmd_client_info(args: argparse.Namespace) -> int:
    client = _client(args)
    return _client_call(lambda: client.server_info())

