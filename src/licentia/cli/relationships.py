"""`licentia relationship`: set up a triad or a backup pair, watch its status, synchronize, swap, replace the
backup, dissolve."""

from __future__ import annotations

import argparse
import sys

from licentia.cli.terminal import admin_session, credentials, print_json


def member_argument(text: str) -> dict[str, str]:
    """NAME,ROLE,API_URL,RAFT_HOST:PORT (the member's etcd peer port; its client port is the next one)"""
    parts = text.split(",")
    if len(parts) != 4:
        raise argparse.ArgumentTypeError("a member is NAME,ROLE,API_URL,RAFT_HOST:PORT")
    name, role, api_url, raft = (p.strip() for p in parts)
    return {"name": name, "role": role, "api_url": api_url, "raft_address": raft}


def pair_member_argument(text: str) -> dict[str, str]:
    """NAME=API_URL"""
    name, sep, api_url = text.partition("=")
    if not sep or not name.strip() or not api_url.strip():
        raise argparse.ArgumentTypeError("a server is NAME=API_URL, e.g. lic1=http://lic1:8470")
    return {"name": name.strip(), "api_url": api_url.strip()}


def cmd_relationship_triad(args: argparse.Namespace) -> int:
    user, password = credentials(args)
    body = {
        "name": args.name,
        "members": args.member,
        "seed": args.seed,
        "username": user,
        "password": password,
        "active_ttl_s": args.active_ttl,
        "check_only": args.check,
    }
    return _set_up(args, "/api/v1/admin/relationship/triad", body)


def cmd_relationship_backup(args: argparse.Namespace) -> int:
    user, password = credentials(args)
    body = {
        "name": args.name,
        "main": args.main,
        "backup": args.backup,
        "username": user,
        "password": password,
        "interval_s": args.interval,
        "settings_from": args.settings_from,
        "check_only": args.check,
    }
    return _set_up(args, "/api/v1/admin/relationship/backup", body)


def cmd_relationship_replace_backup(args: argparse.Namespace) -> int:
    user, password = credentials(args)
    body = {"backup": args.backup, "username": user, "password": password}
    return _set_up(args, "/api/v1/admin/relationship/backup/replace", body)


def _set_up(args: argparse.Namespace, path: str, body: dict[str, object]) -> int:
    """Send a relationship setup; on refusal, say exactly which access rule is missing where."""
    from licentia.client import AdminSession, LicenseDenied

    session = AdminSession(
        args.server, str(body["username"]), str(body["password"]), tls_fingerprint=args.tls_fingerprint
    )
    try:
        print_json(session.request("POST", path, body))
    except LicenseDenied as exc:
        print(f"refused ({exc.status}) {exc.code}: {exc.message}", file=sys.stderr)
        for problem in exc.details.get("problems", []):
            if "fix" in problem:
                print(f"  - {problem['fix']}", file=sys.stderr)
        return 1
    return 0


def cmd_relationship_status(args: argparse.Namespace) -> int:
    status = admin_session(args).request("GET", "/api/v1/admin/relationship")
    if not status.get("type"):
        print("this server is not in a relationship")
        return 0
    if status["type"] == "backup":
        flags = f"{'connected' if status['connected'] else 'NOT CONNECTED'}, "
        flags += "synchronized" if status["synchronized"] else "NOT SYNCHRONIZED"
        print(f"backup pair {status['name']}: {flags} (sync every {status['interval_s']:g}s)")
        for member in status["members"]:
            print(
                f"  {member['name']:<12} {member['role']:<7} {'(this server)' if member['me'] else '':<14}"
                f"{'online' if member['online'] else 'OFFLINE':<8} {member['api_url']}"
            )
        pending = status["pending"]
        print(f"  pending to partner: {pending['to_partner']}; from partner: {pending['from_partner']}")
        if status["last_error"]:
            print(f"  last error: {status['last_error']}")
        return 0
    print(
        f"triad {status['name']}: active {status['active'] or 'nobody'} (epoch {status['epoch']}), "
        f"quorum {'yes' if status['has_quorum'] else 'no'}"
    )
    for member in status["members"]:
        behind = "?" if member["log_behind"] is None else member["log_behind"]
        print(
            f"  {member['name']:<12} {member['role']:<9} {'ACTIVE' if member['active'] else '':<6} "
            f"{'reachable' if member['reachable'] else 'UNREACHABLE':<11} log behind {behind:<4} "
            f"{member['api_url']}"
        )
    return 0


def cmd_relationship_dissolve(args: argparse.Namespace) -> int:
    print_json(admin_session(args).request("POST", "/api/v1/admin/relationship/dissolve", {}))
    return 0


def cmd_relationship_sync(args: argparse.Namespace) -> int:
    print_json(admin_session(args).request("POST", "/api/v1/admin/relationship/sync", {}))
    return 0


def cmd_relationship_swap(args: argparse.Namespace) -> int:
    print_json(admin_session(args).request("POST", "/api/v1/admin/relationship/swap", {}))
    return 0

