"""Work on a data directory without the admin API: a user's password while the server is stopped, a password
hash for the first start, and backup (also while the server runs) and restore."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
from datetime import datetime
from typing import Any

from licentia.config import Config


def cmd_admin_password(args: argparse.Namespace) -> int:
    """Set a user's password directly in the data directory while the server is stopped."""
    from licentia.api.passwords import hash_password, password_problem
    from licentia.core.commands import PutAdminUser
    from licentia.core.model import AdminUser
    from licentia.server import LicenseServer

    password = os.environ.get("LICENTIA_NEW_PASSWORD") or getpass.getpass(f"new password for {args.username}: ")
    if len(password) < 8:
        print("error: a password has at least 8 characters", file=sys.stderr)
        return 2
    problem = password_problem(password)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    server = LicenseServer(Config.load(data_dir=args.data))
    try:
        server.open()
    except BlockingIOError:
        print("error: the server is running; change passwords through the admin API or console", file=sys.stderr)
        return 2

    async def apply() -> Any:
        outcome = await server.execute(PutAdminUser(user=AdminUser(args.username, hash_password(password), args.role)))
        await server.journal.close(server.state)
        return outcome

    outcome = asyncio.run(apply())
    server.release()
    if not outcome.ok:
        print(f"error: {outcome.message}", file=sys.stderr)
        return 2
    print(f"password of {args.username!r} ({args.role}) set")
    return 0


def cmd_admin_hash_password(args: argparse.Namespace) -> int:
    """Print a password hash for LICENTIA_ADMIN_PASSWORD_HASH: the first admin without its password in the
    service's environment."""
    from licentia.api.passwords import hash_password, password_problem

    password = os.environ.get("LICENTIA_NEW_PASSWORD") or getpass.getpass("password to hash: ")
    problem = "a password has at least 8 characters" if len(password) < 8 else password_problem(password)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    print(hash_password(password))
    return 0


def cmd_backup(args: argparse.Namespace) -> int:
    """A consistent snapshot of a data directory, also while its server runs."""
    from licentia.store.backup import BackupError, create_backup

    try:
        manifest = create_backup(args.data, args.out)
    except BackupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    state = manifest["state"]
    print(
        f"backup of {args.data} written to {args.out}: journal index {state['journal_index']}, "
        f"{state['licenses']} license(s), {state['leases']} lease(s), {len(manifest['files'])} file(s)"
    )
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    """Bring a backup back into a data directory whose server is stopped."""
    from licentia.store.backup import BackupError, restore_backup

    try:
        manifest = restore_backup(args.source, args.data, force=args.force)
    except BackupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    state = manifest["state"]
    taken = datetime.fromtimestamp(manifest["created_at"]).isoformat(timespec="seconds")
    print(
        f"restored {args.source} (taken {taken}, journal index {state['journal_index']}) into {args.data}; "
        f"start the server on it with: licentia serve --data {args.data}"
    )
    return 0

