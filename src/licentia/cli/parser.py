"""The `licentia` command's arguments: every subcommand, its flags and the function that runs it."""

from __future__ import annotations

import argparse
import os
from datetime import datetime
from pathlib import Path

from licentia import __version__
from licentia.cli.application import (
    cmd_client_checkin,
    cmd_client_checkout,
    cmd_client_grant_keys,
    cmd_client_heartbeat,
    cmd_client_info,
    cmd_client_print,
)
from licentia.cli.licenses import (
    cmd_keys_new,
    cmd_license_add,
    cmd_license_issue,
    cmd_license_list,
    cmd_license_remove,
    cmd_status,
)
from licentia.cli.offline import cmd_admin_hash_password, cmd_admin_password, cmd_backup, cmd_restore
from licentia.cli.relationships import (
    cmd_relationship_backup,
    cmd_relationship_dissolve,
    cmd_relationship_replace_backup,
    cmd_relationship_status,
    cmd_relationship_swap,
    cmd_relationship_sync,
    cmd_relationship_triad,
    member_argument,
    pair_member_argument,
)
from licentia.cli.serving import cmd_demo, cmd_serve
from licentia.cli.terminal import DEFAULT_SERVER


def date_argument(text: str) -> float:
    """A date as YYYY-MM-DD (UTC midnight) or a Unix timestamp."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(text if "T" in text else f"{text}T00:00:00+00:00").timestamp()
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not YYYY-MM-DD or a Unix time") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="licentia", description="Licentia network license server.")
    parser.add_argument("--version", action="version", version=f"licentia {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def tls_fingerprint_flag(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--tls-fingerprint",
            default=os.environ.get("LICENTIA_TLS_FINGERPRINT") or None,
            help="trust the server's HTTPS certificate by this SHA-256 fingerprint (shown on its console) "
            "instead of the system's CAs; default $LICENTIA_TLS_FINGERPRINT",
        )

    def server_flags(p: argparse.ArgumentParser, default_data: str | None = None) -> None:
        p.add_argument(
            "--data",
            type=Path,
            default=default_data,
            help="data directory (SQLite store, keys); default ./licentia-data",
        )
        p.add_argument("--host", help="address to listen on (default 127.0.0.1)")
        p.add_argument("--port", type=int, help="port to listen on (default 8470)")
        p.add_argument("--config", type=Path, help="TOML configuration file (see docs/configuration.md)")
        p.add_argument(
            "--trust",
            type=Path,
            action="append",
            metavar="PUBKEY",
            help="trust licenses signed by this issuer public key (repeatable)",
        )
        p.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
        p.add_argument(
            "--tls",
            choices=["auto", "off", "files"],
            help="HTTPS: auto (self-signed certificate in the data directory), files (--tls-cert, --tls-key) "
            "or off; default off on a loopback address, auto anywhere else",
        )
        p.add_argument("--tls-cert", help="PEM certificate (chain) file, with --tls files")
        p.add_argument("--tls-key", help="PEM private key file, with --tls files")

    p = commands.add_parser("serve", help="run a license server")
    server_flags(p)
    p.set_defaults(func=cmd_serve)

    p = commands.add_parser("demo", help="run a server with a demo issuer key and demo licenses")
    server_flags(p)
    p.set_defaults(func=cmd_demo)

    keys = commands.add_parser("keys", help="issuer keys (vendor side)").add_subparsers(
        dest="keys_command", required=True, metavar="ACTION"
    )
    p = keys.add_parser("new", help="make an Ed25519 issuer key pair: OUT.key and OUT.pub")
    p.add_argument("--out", default="issuer", help="file name prefix (default: issuer)")
    p.add_argument("--force", action="store_true", help="replace an existing key")
    p.set_defaults(func=cmd_keys_new)

    def admin_flags(p: argparse.ArgumentParser) -> None:
        p.add_argument("--server", default=DEFAULT_SERVER, help=f"server URL (default {DEFAULT_SERVER})")
        tls_fingerprint_flag(p)
        p.add_argument(
            "--user",
            help="admin user (default $LICENTIA_USER or admin); password from $LICENTIA_PASSWORD or a prompt",
        )

    lic = commands.add_parser("license", help="issue, add, list and remove licenses").add_subparsers(
        dest="license_command", required=True, metavar="ACTION"
    )
    p = lic.add_parser("issue", help="sign a license file with an issuer key (vendor side)")
    p.add_argument("--key", type=Path, required=True, help="issuer private key (from 'keys new')")
    p.add_argument("--product", required=True)
    p.add_argument("--edition", default="Standard")
    p.add_argument("--customer", required=True)
    p.add_argument("--unit", choices=["printers", "seats"], required=True)
    p.add_argument("--count", type=int, required=True, help="printers or concurrent seats allowed")
    p.add_argument("--feature", action="append", help="a feature name (repeatable)")
    p.add_argument("--id", help="license id: 1-64 letters, digits, '.', '_' or '-' (default: generated)")
    p.add_argument(
        "--bind",
        action="append",
        metavar="SERVER_ID",
        help="install only on the server with this id, as 'licentia status' and the console show it "
        "(repeatable: a triad's three members; default: any server)",
    )
    p.add_argument("--not-before", type=date_argument, help="YYYY-MM-DD (default: now)")
    p.add_argument("--expires", type=date_argument, help="YYYY-MM-DD (default: --days from now)")
    p.add_argument("--days", type=float, default=365, help="validity when --expires is not given")
    p.add_argument("--grace-days", type=int, default=30, help="limited-use grace for over-use (default 30)")
    p.add_argument("--out", help="write the license here instead of standard output")
    p.set_defaults(func=cmd_license_issue)
    p = lic.add_parser("add", help="install a license file on a server")
    p.add_argument("file")
    admin_flags(p)
    p.set_defaults(func=cmd_license_add)
    p = lic.add_parser("list", help="list a server's licenses with use and status")
    admin_flags(p)
    p.set_defaults(func=cmd_license_list)
    p = lic.add_parser("remove", help="remove a license (to move it to another server)")
    p.add_argument("license_id")
    admin_flags(p)
    p.set_defaults(func=cmd_license_remove)

    p = commands.add_parser("status", help="a server's status and license summary")
    admin_flags(p)
    p.set_defaults(func=cmd_status)

    adm = commands.add_parser("admin", help="offline administration of a stopped server").add_subparsers(
        dest="admin_command", required=True, metavar="ACTION"
    )
    p = adm.add_parser(
        "password",
        help="set a user's password in DATA (server stopped); reads $LICENTIA_NEW_PASSWORD or prompts",
    )
    p.add_argument("--data", type=Path, default=Path("licentia-data"))
    p.add_argument("--username", default="admin")
    p.add_argument("--role", choices=["viewer", "manager", "admin"], default="admin")
    p.set_defaults(func=cmd_admin_password)
    p = adm.add_parser(
        "hash-password",
        help="print a password hash for LICENTIA_ADMIN_PASSWORD_HASH; reads $LICENTIA_NEW_PASSWORD or prompts",
    )
    p.set_defaults(func=cmd_admin_hash_password)

    p = commands.add_parser("backup", help="write a consistent backup of a data directory (server may run)")
    p.add_argument("--data", type=Path, default=Path("licentia-data"), help="data directory (default ./licentia-data)")
    p.add_argument("--out", type=Path, required=True, help="archive to write (tar.gz; holds secret keys: mode 0600)")
    p.set_defaults(func=cmd_backup)
    p = commands.add_parser("restore", help="restore a backup into a data directory (server stopped)")
    p.add_argument("--data", type=Path, default=Path("licentia-data"), help="data directory (default ./licentia-data)")
    p.add_argument("--from", dest="source", type=Path, required=True, metavar="FILE", help="archive from 'backup'")
    p.add_argument("--force", action="store_true", help="replace the contents of a non-empty data directory")
    p.set_defaults(func=cmd_restore)

    rel = commands.add_parser("relationship", help="set up, watch and remove a triad or backup pair").add_subparsers(
        dest="relationship_command", required=True, metavar="ACTION"
    )
    p = rel.add_parser("triad", help="set up a triad from this server (checks access rules first)")
    p.add_argument("--name", required=True, help="the triad's name (shown as one license server)")
    p.add_argument(
        "--member",
        type=member_argument,
        action="append",
        required=True,
        help="NAME,ROLE,API_URL,RAFT_HOST:PORT (three times: primary, secondary, tertiary); RAFT_HOST:PORT is "
        "where the member's etcd listens for its peers, and the next port is its client port",
    )
    p.add_argument("--seed", required=True, help="member whose licenses and settings seed the triad")
    p.add_argument(
        "--active-ttl", type=float, default=0.8,
        help="kept for compatibility: the active member's liveness is an etcd lease of 1 s",
    )
    p.add_argument("--check", action="store_true", help="only check reachability and access rules")
    admin_flags(p)
    p.set_defaults(func=cmd_relationship_triad)
    p = rel.add_parser("backup", help="set up a backup pair (from either server; checks access rules first)")
    p.add_argument("--name", required=True, help="the pair's name")
    p.add_argument("--main", type=pair_member_argument, required=True, metavar="NAME=API_URL", help="the main server")
    p.add_argument(
        "--backup", type=pair_member_argument, required=True, metavar="NAME=API_URL", help="the backup server"
    )
    p.add_argument("--interval", type=float, default=5.0, help="seconds between synchronizations (default 5)")
    p.add_argument(
        "--settings-from", choices=("main", "backup"), default="main", help="whose settings both share (default main)"
    )
    p.add_argument("--check", action="store_true", help="only check reachability and access rules")
    admin_flags(p)
    p.set_defaults(func=cmd_relationship_backup)
    p = rel.add_parser("status", help="members, roles, who is active or connected and synchronized, lag")
    admin_flags(p)
    p.set_defaults(func=cmd_relationship_status)
    p = rel.add_parser("sync", help="backup pair: synchronize now")
    admin_flags(p)
    p.set_defaults(func=cmd_relationship_sync)
    p = rel.add_parser("swap", help="backup pair: the backup becomes the main and the main the backup")
    admin_flags(p)
    p.set_defaults(func=cmd_relationship_swap)
    p = rel.add_parser("replace-backup", help="backup pair: replace the backup by another server (on the main)")
    p.add_argument("--backup", type=pair_member_argument, required=True, metavar="NAME=API_URL", help="the new backup")
    admin_flags(p)
    p.set_defaults(func=cmd_relationship_replace_backup)
    p = rel.add_parser(
        "dissolve", aliases=["remove"], help="dissolve the triad (primary keeps licenses) or remove the backup pair"
    )
    admin_flags(p)
    p.set_defaults(func=cmd_relationship_dissolve)

    cli = commands.add_parser("client", help="talk to a server as an application would").add_subparsers(
        dest="client_command", required=True, metavar="ACTION"
    )

    def client_flags(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--server",
            default=DEFAULT_SERVER,
            help=f"server URL, or several separated by commas (default {DEFAULT_SERVER})",
        )
        tls_fingerprint_flag(p)

    p = cli.add_parser("info", help="what the server tells clients about itself")
    client_flags(p)
    p.set_defaults(func=cmd_client_info)
    p = cli.add_parser(
        "grant-keys", help="write the servers' grant keys, so applications' grace survives a restart offline"
    )
    p.add_argument("--out", help="file to write (default: standard output)")
    client_flags(p)
    p.set_defaults(func=cmd_client_grant_keys)
    p = cli.add_parser("print-check", help="ask whether this computer may print to a printer")
    p.add_argument("--product", required=True)
    p.add_argument("--printer", required=True, help="printer name")
    p.add_argument("--driver", default="")
    p.add_argument("--port-name", default="", help="printer port (e.g. IP_10.0.0.5)")
    p.add_argument("--location", default="")
    client_flags(p)
    p.set_defaults(func=cmd_client_print)
    p = cli.add_parser("checkout", help="check out a seat; prints the lease")
    p.add_argument("--product", required=True)
    p.add_argument("--feature")
    p.add_argument("--request-id", help="retrying with the same id never takes a second seat")
    client_flags(p)
    p.set_defaults(func=cmd_client_checkout)
    p = cli.add_parser("heartbeat", help="renew leases")
    p.add_argument("lease_id", nargs="+")
    client_flags(p)
    p.set_defaults(func=cmd_client_heartbeat)
    p = cli.add_parser("checkin", help="release a lease")
    p.add_argument("lease_id")
    client_flags(p)
    p.set_defaults(func=cmd_client_checkin)
    return parser

