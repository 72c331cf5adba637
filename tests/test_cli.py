"""The `licentia` command line, run as a real process against real servers."""

from __future__ import annotations

import argparse
import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from harness import ADMIN_PASSWORD, ServerProcess, plant_license

from licentia import license_file
from licentia.api.passwords import verify_password
from licentia.cli import build_parser


def licentia(*args: str, password: str | None = ADMIN_PASSWORD, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("LICENTIA_")}
    if password is not None:
        environment["LICENTIA_PASSWORD"] = password
    environment.update(env)
    return subprocess.run(
        [sys.executable, "-m", "licentia", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=environment,
        stdin=subprocess.DEVNULL,
    )


def _subcommands(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [prefix]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += _subcommands(sub, (*prefix, name))
    return found


ALL_COMMANDS = _subcommands(build_parser())


@pytest.fixture
def vendor_key(tmp_path: Path) -> Path:
    result = licentia("keys", "new", "--out", str(tmp_path / "vendor"))
    assert result.returncode == 0, result.stderr
    return tmp_path / "vendor"


def _issue(key: Path, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return licentia(
        "license",
        "issue",
        "--key",
        f"{key}.key",
        "--product",
        "LabelStudio",
        "--customer",
        "ACME",
        "--out",
        str(out),
        *extra,
    )


@pytest.fixture
def cli_server(tmp_path: Path, start_server, vendor_key: Path) -> ServerProcess:
    """A server whose data directory trusts the key made by `licentia keys new`."""
    issuers = tmp_path / "cli-server" / "trusted-issuers"
    issuers.mkdir(parents=True)
    (issuers / "vendor.pub").write_bytes(Path(f"{vendor_key}.pub").read_bytes())
    return start_server("cli-server")


@pytest.mark.parametrize("command", ALL_COMMANDS, ids=lambda c: " ".join(c) or "licentia")
def test_help_of_every_command_exits_zero(command):
    result = licentia(*command, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: licentia")
    assert "Traceback" not in result.stderr


def test_command_list_covers_the_documented_commands():
    names = {" ".join(c) for c in ALL_COMMANDS}
    assert names >= {
        "keys new",
        "license issue",
        "license add",
        "license list",
        "license remove",
        "client print-check",
        "client checkout",
        "client checkin",
        "admin password",
        "serve",
    }


def test_keys_new_writes_a_private_and_a_public_key(tmp_path, vendor_key):
    private, public = Path(f"{vendor_key}.key"), Path(f"{vendor_key}.pub")
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    key = license_file.load_private_key(private)
    assert license_file.load_public_key(public.read_bytes()) is not None
    assert license_file.public_key_pem(key.public_key()) == public.read_bytes()


def test_keys_new_refuses_to_overwrite_without_force(vendor_key):
    original = Path(f"{vendor_key}.key").read_bytes()
    refused = licentia("keys", "new", "--out", str(vendor_key))
    assert refused.returncode == 2 and "--force" in refused.stderr
    assert Path(f"{vendor_key}.key").read_bytes() == original
    forced = licentia("keys", "new", "--out", str(vendor_key), "--force")
    assert forced.returncode == 0
    assert Path(f"{vendor_key}.key").read_bytes() != original


def test_license_issue_writes_a_file_that_verifies(tmp_path, vendor_key):
    out = tmp_path / "lic.json"
    result = _issue(
        vendor_key,
        out,
        "--unit",
        "seats",
        "--count",
        "3",
        "--id",
        "L-CLI",
        "--feature",
        "export",
        "--expires",
        "2099-01-01",
    )
    assert result.returncode == 0, result.stderr
    assert "L-CLI" in result.stdout
    trusted = license_file.TrustedIssuers([license_file.load_public_key(Path(f"{vendor_key}.pub").read_bytes())])
    command = trusted.verify(out.read_bytes())
    assert command.terms.license_id == "L-CLI" and command.terms.count == 3
    assert command.terms.unit == "seats" and command.terms.features == ["export"]
    assert command.terms.expires == 4070908800.0
    stranger = license_file.TrustedIssuers([license_file.new_issuer_key().public_key()])
    with pytest.raises(license_file.LicenseFileError):
        stranger.verify(out.read_bytes())


def test_license_issue_to_stdout_and_refusals(tmp_path, vendor_key):
    printed = licentia(
        "license",
        "issue",
        "--key",
        f"{vendor_key}.key",
        "--product",
        "P",
        "--customer",
        "C",
        "--unit",
        "printers",
        "--count",
        "2",
    )
    assert printed.returncode == 0
    assert json.loads(printed.stdout)["terms"]["count"] == 2
    assert _issue(vendor_key, tmp_path / "zero.json", "--unit", "seats", "--count", "0").returncode == 2
    backwards = _issue(
        vendor_key,
        tmp_path / "b.json",
        "--unit",
        "seats",
        "--count",
        "1",
        "--not-before",
        "2030-01-01",
        "--expires",
        "2029-01-01",
    )
    assert backwards.returncode == 2 and "expiry" in backwards.stderr
    bad_date = _issue(vendor_key, tmp_path / "d.json", "--unit", "seats", "--count", "1", "--expires", "soon")
    assert bad_date.returncode == 2 and "YYYY-MM-DD" in bad_date.stderr
    missing_key = _issue(tmp_path / "nope", tmp_path / "k.json", "--unit", "seats", "--count", "1")
    assert missing_key.returncode == 2 and "Traceback" not in missing_key.stderr
    assert not any((tmp_path / name).exists() for name in ("zero.json", "b.json", "d.json", "k.json"))


def test_license_add_list_and_remove_against_a_server(tmp_path, vendor_key, cli_server):
    lic = tmp_path / "lic.json"
    assert _issue(vendor_key, lic, "--unit", "seats", "--count", "3", "--id", "L-CLI").returncode == 0
    url = cli_server.url

    empty = licentia("license", "list", "--server", url)
    assert empty.returncode == 0 and "no licenses installed" in empty.stdout

    added = licentia("license", "add", str(lic), "--server", url)
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout)["license_id"] == "L-CLI"
    with cli_server.admin() as admin:
        assert admin.get("/api/v1/admin/licenses/L-CLI").json()["count"] == 3

    listed = licentia("license", "list", "--server", url)
    assert listed.returncode == 0
    [line] = listed.stdout.splitlines()
    assert line.startswith("L-CLI") and "0/3" in line and "seats" in line

    duplicate = licentia("license", "add", str(lic), "--server", url)
    assert duplicate.returncode == 1 and "license_exists" in duplicate.stderr

    removed = licentia("license", "remove", "L-CLI", "--server", url)
    assert removed.returncode == 0 and json.loads(removed.stdout)["license_id"] == "L-CLI"
    assert "no licenses installed" in licentia("license", "list", "--server", url).stdout
    again = licentia("license", "remove", "L-CLI", "--server", url)
    assert again.returncode == 1 and "license_not_found" in again.stderr


def test_license_add_refuses_untrusted_file_and_wrong_password(tmp_path, cli_server, issuer):
    untrusted_key = tmp_path / "other"
    assert licentia("keys", "new", "--out", str(untrusted_key)).returncode == 0
    lic = tmp_path / "untrusted.json"
    assert _issue(untrusted_key, lic, "--unit", "seats", "--count", "1").returncode == 0
    refused = licentia("license", "add", str(lic), "--server", cli_server.url)
    assert refused.returncode == 1 and "invalid_license" in refused.stderr
    wrong = licentia("license", "list", "--server", cli_server.url, password="not-the-password")
    assert wrong.returncode == 1 and "unauthorized" in wrong.stderr
    missing = licentia("license", "add", str(tmp_path / "missing.json"), "--server", cli_server.url)
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    with cli_server.admin() as admin:
        assert admin.get("/api/v1/admin/licenses").json()["licenses"] == []


def test_client_print_check_exit_codes_and_output(cli_server, issuer):
    url = cli_server.url
    denied = licentia("client", "print-check", "--product", "LabelStudio", "--printer", "P1", "--server", url)
    assert denied.returncode == 1
    assert "denied (404) no_license" in denied.stderr
    with cli_server.admin() as admin:
        lic = issuer.license_bytes(license_id="PRN", unit="printers")
        assert admin.post(
            "/api/v1/admin/licenses", content=lic, headers={"Content-Type": "application/json"}
        ).is_success
    granted = licentia(
        "client",
        "print-check",
        "--product",
        "LabelStudio",
        "--printer",
        "P1",
        "--port-name",
        "IP_10.0.0.5",
        "--server",
        url,
    )
    assert granted.returncode == 0, granted.stderr
    answer = json.loads(granted.stdout)
    assert answer["granted"] is True and answer["license_id"] == "PRN"
    with cli_server.admin() as admin:
        printers = admin.get("/api/v1/admin/printers").json()["printers"]
        [printer] = [p for p in printers if p["printer_id"] == answer["printer_id"]]
        assert printer["identity"] == {"name": "P1", "driver": "", "port": "IP_10.0.0.5", "location": ""}
        [client] = admin.get("/api/v1/admin/clients").json()["clients"]
        assert client["info"]["application"] == "licentia-cli"


def test_client_checkout_and_checkin_exit_codes_and_output(cli_server, issuer):
    url = cli_server.url
    with cli_server.admin() as admin:
        lic = issuer.license_bytes(license_id="SEAT", unit="seats", count=1)
        assert admin.post(
            "/api/v1/admin/licenses", content=lic, headers={"Content-Type": "application/json"}
        ).is_success
    out = licentia("client", "checkout", "--product", "LabelStudio", "--request-id", "cli-1", "--server", url)
    assert out.returncode == 0, out.stderr
    lease = json.loads(out.stdout)
    assert lease["license_id"] == "SEAT" and lease["repeated"] is False
    retried = licentia("client", "checkout", "--product", "LabelStudio", "--request-id", "cli-1", "--server", url)
    assert retried.returncode == 0 and json.loads(retried.stdout)["lease_id"] == lease["lease_id"]
    full = licentia("client", "checkout", "--product", "LabelStudio", "--server", url)
    assert full.returncode == 1 and "denied (409) limit_exceeded" in full.stderr

    beat = licentia("client", "heartbeat", lease["lease_id"], "--server", url)
    assert beat.returncode == 0 and lease["lease_id"] in json.loads(beat.stdout)["renewed"]

    checked_in = licentia("client", "checkin", lease["lease_id"], "--server", url)
    assert checked_in.returncode == 0
    assert json.loads(checked_in.stdout) == {"lease_id": lease["lease_id"], "released": True}
    twice = licentia("client", "checkin", lease["lease_id"], "--server", url)
    assert twice.returncode == 0, "a repeated checkin is idempotent in the SDK"
    assert json.loads(twice.stdout) == {"lease_id": lease["lease_id"], "released": False}
    with cli_server.admin() as admin:
        assert admin.get("/api/v1/admin/leases").json()["leases"] == []


def test_client_commands_report_an_unreachable_server_with_exit_3(tmp_path):
    dead = ServerProcess(tmp_path / "never-started").url  # a free port nobody listens on
    for args in (
        ("client", "checkout", "--product", "LabelStudio"),
        ("client", "print-check", "--product", "LabelStudio", "--printer", "P1"),
        ("client", "checkin", "abc"),
        ("client", "info"),
    ):
        result = licentia(*args, "--server", dead)
        assert result.returncode == 3, (args, result.stderr)
        assert result.stderr.startswith("unavailable:")
        assert "Traceback" not in result.stderr


def test_admin_password_refuses_while_the_server_runs_and_works_when_stopped(server):
    data = str(server.data_dir)
    running = licentia("admin", "password", "--data", data, LICENTIA_NEW_PASSWORD="fresh-password-1")
    assert running.returncode == 2 and "server is running" in running.stderr
    assert (
        httpx.post(
            f"{server.url}/api/v1/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD}
        ).status_code
        == 200
    )

    server.stop()
    short = licentia("admin", "password", "--data", data, LICENTIA_NEW_PASSWORD="short")
    assert short.returncode == 2 and "8 characters" in short.stderr
    changed = licentia("admin", "password", "--data", data, LICENTIA_NEW_PASSWORD="fresh-password-1")
    assert changed.returncode == 0, changed.stderr
    assert "password of 'admin' (admin) set" in changed.stdout
    added = licentia(
        "admin",
        "password",
        "--data",
        data,
        "--username",
        "ops",
        "--role",
        "manager",
        LICENTIA_NEW_PASSWORD="ops-password-1",
    )
    assert added.returncode == 0, added.stderr

    server.start()
    login = f"{server.url}/api/v1/auth/login"
    assert httpx.post(login, json={"username": "admin", "password": ADMIN_PASSWORD}).status_code == 401
    fresh = httpx.post(login, json={"username": "admin", "password": "fresh-password-1"})
    assert fresh.status_code == 200 and fresh.json()["role"] == "admin"
    ops = httpx.post(login, json={"username": "ops", "password": "ops-password-1"})
    assert ops.status_code == 200 and ops.json()["role"] == "manager"


def test_admin_password_keeps_the_last_admin(server):
    server.stop()
    demote = licentia(
        "admin",
        "password",
        "--data",
        str(server.data_dir),
        "--role",
        "viewer",
        LICENTIA_NEW_PASSWORD="fresh-password-1",
    )
    assert demote.returncode == 2 and "last admin" in demote.stderr
    server.start()
    login = httpx.post(f"{server.url}/api/v1/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD})
    assert login.status_code == 200 and login.json()["role"] == "admin"


def test_status_command_prints_the_server_status(cli_server):
    result = licentia("status", "--server", cli_server.url)
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    assert status["licenses"] == [] and len(status["trusted_issuers"]) == 2
    assert status["time"] == pytest.approx(time.time(), abs=60)


def test_license_issue_binds_a_license_to_the_servers_named_with_bind(tmp_path, vendor_key):
    out = tmp_path / "bound.json"
    ids = ["0123456789abcdef", "fedcba9876543210"]
    result = _issue(vendor_key, out, "--unit", "seats", "--count", "1", "--bind", ids[0], "--bind", ids[1])
    assert result.returncode == 0, result.stderr
    trusted = license_file.TrustedIssuers([license_file.load_public_key(Path(f"{vendor_key}.pub").read_bytes())])
    assert trusted.verify(out.read_bytes()).terms.bound_to == ids


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (("--id", "../users/admin2"), "license id"),
        (("--id", "x" * 65), "license id"),
        (("--bind", "not-a-server"), "not a server id"),
    ],
)
def test_license_issue_refuses_a_bad_id_or_server_id(tmp_path, vendor_key, flags, message):
    out = tmp_path / "refused.json"
    result = _issue(vendor_key, out, "--unit", "seats", "--count", "1", *flags)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr
    assert not out.exists()


def test_status_command_shows_the_server_id_a_license_binds_to(cli_server):
    status = json.loads(licentia("status", "--server", cli_server.url).stdout)
    info = httpx.get(f"{cli_server.url}/api/v1/server").json()
    assert status["server_id"] == info["server_id"] == info["grant_key_id"]


def test_license_remove_sends_the_id_as_one_path_segment(tmp_path, issuer):
    """`license remove ../users/admin2` removes that license (left by an earlier version), not user admin2."""
    data_dir = tmp_path / "server"
    plant_license(data_dir, issuer.terms(license_id="../users/admin2"))
    server = ServerProcess(data_dir).start()
    try:
        with server.admin() as admin:
            user = admin.put("/api/v1/admin/users/admin2", json={"password": "another-password", "role": "viewer"})
            assert user.status_code == 200, user.text
        removed = licentia("license", "remove", "../users/admin2", "--server", server.url)
        assert removed.returncode == 0, removed.stderr
        assert json.loads(removed.stdout)["license_id"] == "../users/admin2"
        with server.admin() as admin:
            assert admin.get("/api/v1/admin/licenses").json()["licenses"] == []
            assert "admin2" in [u["username"] for u in admin.get("/api/v1/admin/users").json()["users"]]
    finally:
        server.kill()


def test_admin_hash_password_prints_a_current_hash_and_refuses_a_bad_password():
    made = licentia("admin", "hash-password", LICENTIA_NEW_PASSWORD="a-provisioned-password")
    assert made.returncode == 0, made.stderr
    stored = made.stdout.strip()
    assert stored.startswith("scrypt$131072$8$1$") and verify_password("a-provisioned-password", stored)
    short = licentia("admin", "hash-password", LICENTIA_NEW_PASSWORD="short")
    assert short.returncode == 2 and "8 characters" in short.stderr
    control = licentia("admin", "hash-password", LICENTIA_NEW_PASSWORD="tab\tin-the-password")
    assert control.returncode == 2 and "control characters" in control.stderr
