"""The `licentia` command: a thin layer over the server, the signing module and the client SDK."""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import gc
import getpass
import json
import logging
import os
import sys
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from licentia import __version__, license_file
from licentia.config import Config, ConfigError
from licentia.store.data_directory import DataDirectory
from licentia.store.private_file import PRIVATE_UMASK

UVICORN_OPTIONS: dict[str, Any] = {
    "loop": "uvloop",
    "http": "httptools",
    "lifespan": "on",
    "log_config": None,
    "proxy_headers": False,  # X-Forwarded-For only from `forwarded_allow_ips` (licentia.api.app)
}
"""How `licentia serve` runs uvicorn; bench/echo_app.py serves its baseline with the same options."""

DEFAULT_SERVER = os.environ.get("LICENTIA_SERVER", "http://127.0.0.1:8470")
log = logging.getLogger("licentia.cli")


def _print(data: Any) -> None:
    print(json.dumps(data, indent=2, sort_keys=True))


def _date(text: str) -> float:
    """A date as YYYY-MM-DD (UTC midnight) or a Unix timestamp."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(text if "T" in text else f"{text}T00:00:00+00:00").timestamp()
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not YYYY-MM-DD or a Unix time") from None


# -- serve / demo --------------------------------------------------------------------------------


def _config(args: argparse.Namespace) -> Config:
    return Config.load(
        args.config,
        data_dir=args.data,
        host=args.host,
        port=args.port,
        trusted_issuers=args.trust or None,
        log_level=args.log_level,
        tls=args.tls,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
    )


def _return_free_memory() -> None:
    """Give the C allocator's free pages back to the system (glibc's `malloc_trim`; elsewhere nothing): loading
    a large state frees the snapshot's bytes and the loader's tables, which would otherwise stay resident."""
    trim = getattr(ctypes.CDLL(None), "malloc_trim", None)  # the process's own symbols: the C library's
    if trim is not None:
        trim(0)


def _run(config: Config, install: list[Path] | None = None) -> int:
    import uvicorn

    from licentia.api.app import create_app
    from licentia.logs import configure_logging
    from licentia.server import LicenseServer

    configure_logging(config.log_level, config.log_format)
    server = LicenseServer(config)
    try:
        server.open()
    except BlockingIOError:
        print(f"error: another licentia server is using {config.data_dir}", file=sys.stderr)
        return 2
    # The state just loaded lives as long as the server: keep it out of the collector's full passes,
    # which would otherwise stop the event loop ~0.1 s per 100,000 leases each time (bench/scale.py).
    gc.collect()
    gc.freeze()
    _return_free_memory()
    server.install_on_start = install or []
    app = create_app(server)
    certificate = server.certificate
    base = f"{'https' if certificate else 'http'}://{config.host}:{config.port}"
    tls_line = (
        f"  TLS:        certificate {certificate.cert_file}, SHA-256 fingerprint {certificate.fingerprint}\n"
        if certificate
        else "  TLS:        off (plain HTTP; listen on a loopback address only, or use --tls auto)\n"
    )
    print(
        f"Licentia {__version__} on {base}\n"
        f"  console:    {base}{config.console_path}/\n"
        f"  client API: {base}/api/v1   admin API: {base}/api/v1/admin   OpenAPI: {base}/openapi.json\n"
        f"{tls_line}"
        f"  data:       {config.data_dir.resolve()}\n"
        f"  admin user: admin (first-start password in {DataDirectory(config.data_dir.resolve()).initial_password}"
        " unless LICENTIA_ADMIN_PASSWORD was set)",
        flush=True,
    )
    uvicorn.Server(
        uvicorn.Config(
            app,
            host=config.host,
            port=config.port,
            log_level=config.log_level,
            access_log=config.access_log,
            ssl_certfile=str(certificate.cert_file) if certificate else None,
            ssl_keyfile=str(certificate.key_file) if certificate else None,
            **UVICORN_OPTIONS,
        )
    ).run()
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    os.umask(PRIVATE_UMASK)  # whatever the server writes (database, keys, etcd's files) is its user's only
    return _run(_config(args))


def cmd_demo(args: argparse.Namespace) -> int:
    from licentia.demo import prepare_demo

    os.umask(PRIVATE_UMASK)
    config = _config(args)
    paths = prepare_demo(config.data_dir)
    print("Demo issuer key and licenses:", ", ".join(str(p) for p in paths))
    return _run(config, install=paths)


# -- keys and licenses ---------------------------------------------------------------------------


def cmd_keys_new(args: argparse.Namespace) -> int:
    key = license_file.new_issuer_key()
    private, public = Path(f"{args.out}.key"), Path(f"{args.out}.pub")
    if private.exists() and not args.force:
        print(f"error: {private} exists (use --force to replace it)", file=sys.stderr)
        return 2
    fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(license_file.private_key_pem(key))
    public.write_bytes(license_file.public_key_pem(key.public_key()))
    print(f"issuer key {license_file.key_id(key.public_key())}: private {private}, public {public}")
    print(f"servers trust it when {public.name} is in their data directory's trusted-issuers/ folder")
    return 0


def cmd_license_issue(args: argparse.Namespace) -> int:
    from licentia.core.model import LicenseTerms

    now = time.time()
    terms = LicenseTerms(
        license_id=args.id or f"LIC-{uuid.uuid4().hex[:10].upper()}",
        product=args.product,
        edition=args.edition,
        customer=args.customer,
        unit=args.unit,
        count=args.count,
        features=args.feature or [],
        not_before=args.not_before if args.not_before is not None else now,
        expires=args.expires if args.expires is not None else now + args.days * 86400,
        grace_days=args.grace_days,
        issued_at=now,
        bound_to=list(dict.fromkeys(args.bind or [])),
    )
    if terms.count < 1 or terms.expires <= terms.not_before:
        print("error: count must be at least 1 and the expiry after not-before", file=sys.stderr)
        return 2
    try:
        document = license_file.issue(terms, license_file.load_private_key(args.key))
    except license_file.LicenseFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    text = json.dumps(document, indent=2) + "\n"
    if args.out:
        Path(args.out).write_text(text)
        print(f"wrote license {terms.license_id} to {args.out}")
    else:
        sys.stdout.write(text)
    return 0


def _credentials(args: argparse.Namespace) -> tuple[str, str]:
    user = args.user or os.environ.get("LICENTIA_USER", "admin")
    return user, os.environ.get("LICENTIA_PASSWORD") or getpass.getpass(f"password for {user}: ")


def _admin(args: argparse.Namespace) -> Any:
    from licentia.client import AdminSession

    return AdminSession(args.server, *_credentials(args), tls_fingerprint=args.tls_fingerprint)


def cmd_license_add(args: argparse.Namespace) -> int:
    _print(_admin(args).request("POST", "/api/v1/admin/licenses", content=Path(args.file).read_bytes()))
    return 0


def cmd_license_list(args: argparse.Namespace) -> int:
    licenses = _admin(args).request("GET", "/api/v1/admin/licenses")["licenses"]
    for lic in licenses:
        expires = datetime.fromtimestamp(lic["expires"]).date().isoformat()
        print(
            f"{lic['license_id']:<20} {lic['product']:<16} {lic['unit']:<8} "
            f"{lic['used']:>5}/{lic['count']:<5} {lic['status']:<10} expires {expires}"
        )
    if not licenses:
        print("no licenses installed")
    return 0


def cmd_license_remove(args: argparse.Namespace) -> int:
    # One path segment, whatever the id: "../users/x" must not become another URL.
    _print(_admin(args).request("DELETE", f"/api/v1/admin/licenses/{quote(args.license_id, safe='')}"))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    _print(_admin(args).request("GET", "/api/v1/admin/status"))
    return 0


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


# -- backup and restore --------------------------------------------------------------------------


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


# -- relationships -------------------------------------------------------------------------------


def _member(text: str) -> dict[str, str]:
    """NAME,ROLE,API_URL,RAFT_HOST:PORT (the member's etcd peer port; its client port is the next one)"""
    parts = text.split(",")
    if len(parts) != 4:
        raise argparse.ArgumentTypeError("a member is NAME,ROLE,API_URL,RAFT_HOST:PORT")
    name, role, api_url, raft = (p.strip() for p in parts)
    return {"name": name, "role": role, "api_url": api_url, "raft_address": raft}


def _pair_member(text: str) -> dict[str, str]:
    """NAME=API_URL"""
    name, sep, api_url = text.partition("=")
    if not sep or not name.strip() or not api_url.strip():
        raise argparse.ArgumentTypeError("a server is NAME=API_URL, e.g. lic1=http://lic1:8470")
    return {"name": name.strip(), "api_url": api_url.strip()}


def cmd_relationship_triad(args: argparse.Namespace) -> int:
    user, password = _credentials(args)
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
    user, password = _credentials(args)
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
    user, password = _credentials(args)
    body = {"backup": args.backup, "username": user, "password": password}
    return _set_up(args, "/api/v1/admin/relationship/backup/replace", body)


def _set_up(args: argparse.Namespace, path: str, body: dict[str, object]) -> int:
    """Send a relationship setup; on refusal, say exactly which access rule is missing where."""
    from licentia.client import AdminSession, LicenseDenied

    session = AdminSession(
        args.server, str(body["username"]), str(body["password"]), tls_fingerprint=args.tls_fingerprint
    )
    try:
        _print(session.request("POST", path, body))
    except LicenseDenied as exc:
        print(f"refused ({exc.status}) {exc.code}: {exc.message}", file=sys.stderr)
        for problem in exc.details.get("problems", []):
            if "fix" in problem:
                print(f"  - {problem['fix']}", file=sys.stderr)
        return 1
    return 0


def cmd_relationship_status(args: argparse.Namespace) -> int:
    status = _admin(args).request("GET", "/api/v1/admin/relationship")
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
    _print(_admin(args).request("POST", "/api/v1/admin/relationship/dissolve", {}))
    return 0


def cmd_relationship_sync(args: argparse.Namespace) -> int:
    _print(_admin(args).request("POST", "/api/v1/admin/relationship/sync", {}))
    return 0


def cmd_relationship_swap(args: argparse.Namespace) -> int:
    _print(_admin(args).request("POST", "/api/v1/admin/relationship/swap", {}))
    return 0


# -- client --------------------------------------------------------------------------------------


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
        _print(call())
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


# -- parser --------------------------------------------------------------------------------------


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
    p.add_argument("--not-before", type=_date, help="YYYY-MM-DD (default: now)")
    p.add_argument("--expires", type=_date, help="YYYY-MM-DD (default: --days from now)")
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
        type=_member,
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
    p.add_argument("--main", type=_pair_member, required=True, metavar="NAME=API_URL", help="the main server")
    p.add_argument("--backup", type=_pair_member, required=True, metavar="NAME=API_URL", help="the backup server")
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
    p.add_argument("--backup", type=_pair_member, required=True, metavar="NAME=API_URL", help="the new backup")
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


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (OSError, license_file.LicenseFileError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        from licentia.client import LicenseDenied, ServerUnavailable

        if isinstance(exc, LicenseDenied | ServerUnavailable):
            print(f"error: {exc}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
