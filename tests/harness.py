"""Real server processes on loopback ports for tests and benchmarks."""

from __future__ import annotations

import base64
import contextlib
import functools
import json
import os
import shutil
import signal
import socket
import ssl
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import msgspec

from licentia import license_file
from licentia.api.passwords import hash_password
from licentia.core.model import LicenseTerms
from licentia.tls import CertificateRefused, ServerCertificate, ServerTrust

ADMIN_PASSWORD = "test-admin-password"


def wait_for(condition: Callable[[], Any], timeout: float = 10.0, what: str = "condition",
             interval: float = 0.05) -> Any:
    """Poll `condition` until it returns something truthy, and return that; fail the test after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def free_port_pair() -> int:
    """A port P with P + 1 free too: a triad member's etcd takes its peer port and the next (client) port."""
    for _ in range(200):
        with socket.socket() as first, socket.socket() as second:
            first.bind(("127.0.0.1", 0))
            port = first.getsockname()[1]
            try:
                second.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
            return port
    raise RuntimeError("no two consecutive free ports on 127.0.0.1")


class Issuer:
    """A vendor issuer key that can sign license files for tests."""

    def __init__(self) -> None:
        self.key = license_file.new_issuer_key()

    def public_pem(self) -> bytes:
        return license_file.public_key_pem(self.key.public_key())

    def trust_in(self, data_dir: Path) -> None:
        folder = data_dir / "trusted-issuers"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{license_file.key_id(self.key.public_key())}.pub").write_bytes(self.public_pem())

    def terms(self, **fields: Any) -> LicenseTerms:
        now = time.time()
        values: dict[str, Any] = {
            "license_id": f"LIC-{os.urandom(4).hex()}",
            "product": "LabelStudio",
            "edition": "Automation",
            "customer": "Test Customer",
            "unit": "printers",
            "count": 5,
            "not_before": now - 60,
            "expires": now + 365 * 86400,
        }
        values.update(fields)
        return LicenseTerms(**values)

    def license_bytes(self, **fields: Any) -> bytes:
        return json.dumps(license_file.issue(self.terms(**fields), self.key)).encode()

    def unchecked_license_bytes(self, **fields: Any) -> bytes:
        """A license file signed over whatever terms, without the checks `license_file.issue` makes
        (what a careless or hostile issuer could send)."""
        terms = self.terms(**fields)
        return json.dumps(
            {
                "format": license_file.FORMAT,
                "terms": license_file.terms_document(terms),
                "key_id": license_file.key_id(self.key.public_key()),
                "signature": base64.b64encode(self.key.sign(license_file.canonical(terms))).decode(),
            }
        ).encode()


@functools.cache
def admin_password_hash(password: str) -> str:
    """The hash a test server's first admin starts with (LICENTIA_ADMIN_PASSWORD_HASH), made once per password:
    each hash costs ~0.3 s of scrypt, which every server start would pay again otherwise."""
    return hash_password(password)


class ServerProcess:
    """`licentia serve` in a child process, on its own port and data directory."""

    def __init__(self, data_dir: Path, port: int | None = None, extra_args: list[str] | None = None,
                 host: str = "127.0.0.1", wrapper: list[str] | None = None,
                 admin_password: str | None = ADMIN_PASSWORD, tls: bool = False) -> None:
        """`host` is the address to listen on; `wrapper` prefixes the command (e.g. `ip netns exec NS`);
        `admin_password=None` lets the server generate the first-start password (DATA/initial-admin-password);
        `tls` serves HTTPS with the self-signed certificate the server makes (else plain HTTP, also off
        loopback, where the server's own default would be HTTPS)."""
        self.data_dir = data_dir
        self.admin_password = admin_password
        self.port = port or free_port()
        self.extra_args = extra_args or []
        self.host = host
        self.wrapper = wrapper or []
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir.parent / f"{data_dir.name}-server.log"
        self.extra_env: dict[str, str] = {}  # e.g. libfaketime's variables for a member with a skewed clock
        self.tls = tls
        self._trust: ServerTrust | None = None

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    @property
    def fingerprint(self) -> str:
        """The SHA-256 fingerprint of the certificate the server made (with `tls`)."""
        return ServerCertificate.from_files(
            self.data_dir / "tls" / "server.crt", self.data_dir / "tls" / "server.key"
        ).fingerprint

    @property
    def verify(self) -> ssl.SSLContext | bool:
        """What httpx's `verify=` needs to trust exactly this server's certificate (pinned)."""
        if not self.tls:
            return True
        if self._trust is None:
            trust = ServerTrust([self.fingerprint])
            trust.prepare_sync(self.url)
            self._trust = trust
        return self._trust.context

    def start(self, timeout: float = 20.0) -> ServerProcess:
        return self.launch().wait_started(timeout)

    def launch(self) -> ServerProcess:
        """Start the process without waiting for it to answer (`wait_started` waits): servers launched
        together start up side by side."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "LICENTIA_ADMIN_PASSWORD": self.admin_password or "", **self.extra_env}
        if self.admin_password and "LICENTIA_ADMIN_PASSWORD_HASH" not in env:
            env["LICENTIA_ADMIN_PASSWORD_HASH"] = admin_password_hash(self.admin_password)
        log = self.log_path.open("ab")
        host_args = ["--host", self.host] if self.host != "127.0.0.1" else []
        host_args += ["--tls", "auto" if self.tls else "off"]
        self._trust = None
        self.process = subprocess.Popen(
            [*self.wrapper, sys.executable, "-m", "licentia", "serve", "--data", str(self.data_dir),
             "--port", str(self.port), "--log-level", "warning", *host_args, *self.extra_args],
            stdout=log, stderr=subprocess.STDOUT, env=env,
        )
        log.close()
        return self

    def wait_started(self, timeout: float = 20.0) -> ServerProcess:
        """Wait until the launched server answers; kill it and fail after `timeout`."""
        assert self.process is not None, "launch() first"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}: {self.log_path.read_text()}")
            try:
                if httpx.get(f"{self.url}/api/v1/server", timeout=0.5, verify=self.verify).status_code == 200:
                    return self
            except (httpx.HTTPError, OSError, CertificateRefused):
                self._trust = None
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"server did not start in {timeout}s: {self.log_path.read_text()}")

    def stop(self, timeout: float = 10.0) -> None:
        """Graceful stop (SIGTERM), then SIGKILL if it does not exit."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def admin(self) -> httpx.Client:
        """An httpx client logged in as the admin user."""
        token = httpx.post(f"{self.url}/api/v1/auth/login", verify=self.verify,
                           json={"username": "admin", "password": ADMIN_PASSWORD}).json()["token"]
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=10,
                            verify=self.verify)


def start_servers(servers: Iterable[ServerProcess], timeout: float = 20.0) -> None:
    """Start several servers at once (their start-ups overlap instead of following one another), then wait
    until each answers."""
    launched: list[ServerProcess] = []
    try:
        for server in servers:
            launched.append(server.launch())
        for server in launched:
            server.wait_started(timeout)
    except BaseException:
        for server in launched:
            server.kill()
        raise


def log_in_everywhere(servers: Iterable[ServerProcess]) -> None:
    """Log in to each server at once, so that each checks the admin password (scrypt, ~0.3 s of a core) side
    by side rather than when a relationship's setup logs in to one member after another (a server remembers
    a password it has checked)."""
    with ThreadPoolExecutor() as pool:
        for client in pool.map(lambda server: server.admin(), servers):
            client.close()


def _environment() -> dict[str, str]:
    """What a server launched now inherits, minus the variable pytest changes for every test."""
    return {name: value for name, value in os.environ.items() if name != "PYTEST_CURRENT_TEST"}


class ServerPool:
    """One default server (`ServerProcess` with no extra arguments) launched ahead of the test that will ask
    for it, trusting an issuer made for it: a test gets a server that is already up, while the next one
    starts beside it. Each server still serves one test only, with a data directory nobody used before."""

    def __init__(self, base_dir: Path) -> None:
        self.base_dir = base_dir
        self.launched = 0
        self.pending: ServerProcess | None = None
        self.pending_issuer: Issuer | None = None
        self.pending_env: dict[str, str] = {}

    def issuer(self) -> Issuer:
        """The issuer the next server trusts, if one is launched; otherwise a new one (and `take` finds none)."""
        return self.pending_issuer or Issuer()

    def take(self, issuer: Issuer, link: Path) -> ServerProcess | None:
        """The launched server if it suits (it trusts `issuer`; the environment is the one it was launched
        with; `link` does not exist yet), now answering, with `link` (and the log's usual path beside it)
        pointing at its data directory; then the next one is launched. None if none suits."""
        server = self.pending
        suits = server is not None and self.pending_issuer is issuer and self.pending_env == _environment()
        if server is None or not suits or link.exists():
            return None
        self.pending = self.pending_issuer = None
        try:
            server.wait_started()
        except RuntimeError:
            return None
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(server.data_dir, target_is_directory=True)
        (link.parent / f"{link.name}-server.log").symlink_to(server.log_path)
        self.launch()
        return server

    def launch(self) -> None:
        """Launch the next server (after a test started one the usual way, or took the launched one)."""
        if self.pending is not None and self.pending_env == _environment():
            return
        self.close()  # launched under an environment a test had changed
        self.launched += 1
        issuer = Issuer()
        data_dir = self.base_dir / f"pooled{self.launched}" / "server"
        issuer.trust_in(data_dir)
        self.pending_env = _environment()
        self.pending, self.pending_issuer = ServerProcess(data_dir).launch(), issuer

    def close(self) -> None:
        if self.pending is not None:
            self.pending.kill()
            self.pending = self.pending_issuer = None


_PLANT_LICENSE = """
import asyncio, sys
import msgspec
from licentia.config import Config
from licentia.core.commands import AddLicense
from licentia.core.model import LicenseTerms
from licentia.server import LicenseServer

server = LicenseServer(Config.load(data_dir=sys.argv[1]))
server.open()

async def plant():
    terms = msgspec.json.decode(sys.stdin.buffer.read(), type=LicenseTerms)
    outcome = await server.execute(AddLicense(terms=terms, key_id="earlier-version", signature=""))
    await server.journal.close(server.state)
    assert outcome.ok, outcome

asyncio.run(plant())
server.release()
"""


def every_row(client: httpx.Client, path: str, name: str) -> list[dict[str, Any]]:
    """Every row of a paged admin list (docs/paged-lists.md), following its `next` cursors."""
    rows: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": 500}
    while True:
        answer = client.get(path, params=params)
        assert answer.status_code == 200, answer.text
        page = answer.json()
        rows += page[name]
        if page["next"] is None:
            return rows
        params["after"] = page["next"]


def plant_license(data_dir: Path, terms: LicenseTerms) -> None:
    """Put a license into a stopped server's state the way an earlier version would have taken it, past
    the checks the current one makes at install (in a child process: no event loop of the test's)."""
    subprocess.run(
        [sys.executable, "-c", _PLANT_LICENSE, str(data_dir)],
        input=msgspec.json.encode(terms), check=True, capture_output=True, timeout=60,
    )


@contextlib.contextmanager
def umask(mask: int) -> Iterator[None]:
    """Processes started inside inherit `mask`, as under a login shell's usual 022."""
    previous = os.umask(mask)
    try:
        yield
    finally:
        os.umask(previous)


def readable_by_others(data_dir: Path) -> list[str]:
    """Every path under `data_dir` (itself included) that its group or other users can read, write or enter."""
    found = []
    for path in [data_dir, *data_dir.rglob("*")]:
        mode = path.lstat().st_mode
        if not stat.S_ISLNK(mode) and stat.S_IMODE(mode) & 0o077:
            found.append(f"{path.relative_to(data_dir.parent)} {stat.filemode(mode)}")
    return found


def install_licenses(server: ServerProcess, issuer: Issuer, seats: int = 5, printers: int = 5) -> dict[str, str]:
    """A seat license (SEATS) and a printer license (PRINTS), installed through `server`'s admin API."""
    installed = {}
    with server.admin() as admin:
        for product, unit, count in (("CADStudio", "seats", seats), ("LabelStudio", "printers", printers)):
            answer = admin.post(
                "/api/v1/admin/licenses",
                content=issuer.license_bytes(product=product, unit=unit, count=count),
                headers={"Content-Type": "application/json"},
            )
            assert answer.status_code == 201, answer.text
            installed[product] = answer.json()["license_id"]
    return installed


def admin_get(server: ServerProcess, path: str, **params: Any) -> Any:
    answer = httpx.get(f"{server.url}{path}", auth=("admin", ADMIN_PASSWORD), params=params, timeout=5,
                       verify=server.verify)
    assert answer.status_code == 200, answer.text
    return answer.json()


ROLES = ("primary", "secondary", "tertiary")


class TriadCluster:
    """Three `licentia serve` processes joined in a triad through the setup API of the first one."""

    def __init__(self, base_dir: Path, issuer: Issuer | None = None, name: str = "T1",
                 active_ttl_s: float = 0.8, netns: NetnsLab | None = None, tls: bool = False) -> None:
        """With `netns`, each member runs in its own network namespace of that lab, on the lab's address;
        with `tls`, every member answers over HTTPS and the setup pins each one's certificate."""
        self.name = name
        self.active_ttl_s = active_ttl_s
        self.servers: dict[str, ServerProcess] = {}
        self.raft_ports: dict[str, int] = {}
        for role in ROLES:
            data_dir = base_dir / role
            if issuer is not None:
                issuer.trust_in(data_dir)
            if netns is None:
                self.servers[role] = ServerProcess(data_dir, tls=tls)
            else:
                self.servers[role] = ServerProcess(data_dir, port=8470, host=netns.ip(role),
                                                   wrapper=netns.wrapper(role))
            self.raft_ports[role] = free_port_pair() if netns is None else 9470

    def member_specs(self) -> list[dict[str, Any]]:
        return [
            {"name": role, "role": role, "api_url": server.url,
             "raft_address": f"{server.host}:{self.raft_ports[role]}",
             **({"tls_fingerprint": server.fingerprint} if server.tls else {})}
            for role, server in self.servers.items()
        ]

    def start(self, seed: str = "primary", timeout: float = 20.0) -> TriadCluster:
        start_servers(self.servers.values())
        log_in_everywhere(self.servers.values())
        body = {"name": self.name, "seed": seed, "username": "admin", "password": ADMIN_PASSWORD,
                "members": self.member_specs(), "active_ttl_s": self.active_ttl_s}
        with self.servers[seed].admin() as admin:
            answer = admin.post("/api/v1/admin/relationship/triad", json=body, timeout=60)
        if answer.status_code != 201:
            raise RuntimeError(f"triad setup failed: {answer.status_code} {answer.text}")
        self.wait_active("primary", timeout)
        return self

    def status(self, role: str) -> dict[str, Any]:
        server = self.servers[role]
        return httpx.get(f"{server.url}/api/v1/admin/relationship", auth=("admin", ADMIN_PASSWORD),
                         timeout=2, verify=server.verify).json()

    def active(self) -> str | None:
        """The member that says it serves now, asking each live member."""
        for role, server in self.servers.items():
            if server.process is None or server.process.poll() is not None:
                continue
            try:
                info = httpx.get(f"{server.url}/api/v1/server", timeout=0.5, verify=server.verify).json()
            except (httpx.HTTPError, OSError, CertificateRefused):
                continue
            relationship = info.get("relationship") or {}
            if relationship.get("serving"):
                return role
        return None

    def wait_active(self, role: str | None = None, timeout: float = 20.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            current = self.active()
            if current is not None and (role is None or current == role):
                return current
            time.sleep(0.05)
        raise TimeoutError(f"no active member{' ' + role if role else ''} within {timeout}s")

    def stop(self) -> None:
        for server in self.servers.values():
            if server.process is not None and server.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    server.process.send_signal(signal.SIGCONT)
            server.kill()


class NetnsUnavailable(RuntimeError):
    """Network namespaces cannot be created here (no privileges or no `ip` tool)."""


class NetnsLab:
    """One network namespace per triad member, joined by a bridge the test process also sits on.

    Member `role` listens on `ip(role)`; `cut(a, b)` drops the link between two
    members only (a blackhole route in each of the two namespaces), `heal(a, b)`
    restores it. `close()` removes every namespace and the bridge.
    """

    def __init__(self, roles: tuple[str, ...] = ROLES) -> None:
        if shutil.which("ip") is None:
            raise NetnsUnavailable("the `ip` tool (iproute2) is not installed")
        self.tag = os.urandom(3).hex()
        self.bridge = f"lcb{self.tag}"
        self.roles = roles
        self.namespaces: dict[str, str] = {}
        self._bridge_made = False
        self.subnet = self._free_subnet()
        try:
            self._build()
        except BaseException:
            self.close()
            raise

    @staticmethod
    def _free_subnet() -> str:
        routes = subprocess.run(["ip", "-4", "route"], capture_output=True, text=True).stdout
        for _ in range(100):
            subnet = f"10.213.{int.from_bytes(os.urandom(1), 'big') % 250 + 1}"
            if f"{subnet}." not in routes:
                return subnet
        raise RuntimeError("no free 10.213.x.0/24 subnet for the namespace lab")

    @staticmethod
    def _run(*args: str) -> None:
        result = subprocess.run(list(args), capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed: {result.stderr.strip()}")

    def _build(self) -> None:
        for role in self.roles:
            ns = f"lc{self.tag}{role[0]}"
            made = subprocess.run(["ip", "netns", "add", ns], capture_output=True, text=True)
            if made.returncode != 0:
                raise NetnsUnavailable(f"`ip netns add {ns}` failed: {made.stderr.strip()}")
            self.namespaces[role] = ns
        run = self._run
        run("ip", "link", "add", self.bridge, "type", "bridge")
        self._bridge_made = True
        run("ip", "addr", "add", f"{self.subnet}.1/24", "dev", self.bridge)
        run("ip", "link", "set", self.bridge, "up")
        for role, ns in self.namespaces.items():
            outside, inside = f"{ns}0", f"{ns}1"
            run("ip", "link", "add", outside, "type", "veth", "peer", "name", inside)
            run("ip", "link", "set", inside, "netns", ns)
            run("ip", "link", "set", outside, "master", self.bridge)
            run("ip", "link", "set", outside, "up")
            run("ip", "netns", "exec", ns, "ip", "addr", "add", f"{self.ip(role)}/24", "dev", inside)
            run("ip", "netns", "exec", ns, "ip", "link", "set", inside, "up")
            run("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")

    def ip(self, role: str) -> str:
        return f"{self.subnet}.{self.roles.index(role) + 2}"

    def wrapper(self, role: str) -> list[str]:
        return ["ip", "netns", "exec", self.namespaces[role]]

    def cut(self, a: str, b: str) -> None:
        """Only `a` and `b` stop reaching each other; both still reach everyone else."""
        self._run(*self.wrapper(a), "ip", "route", "add", "blackhole", f"{self.ip(b)}/32")
        self._run(*self.wrapper(b), "ip", "route", "add", "blackhole", f"{self.ip(a)}/32")

    def heal(self, a: str, b: str) -> None:
        self._run(*self.wrapper(a), "ip", "route", "del", "blackhole", f"{self.ip(b)}/32")
        self._run(*self.wrapper(b), "ip", "route", "del", "blackhole", f"{self.ip(a)}/32")

    def close(self) -> None:
        """Remove the namespaces (their veth ends go with them) and the bridge; never raises."""
        for ns in self.namespaces.values():
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        self.namespaces.clear()
        if self._bridge_made:
            subprocess.run(["ip", "link", "del", self.bridge], capture_output=True)
            self._bridge_made = False


class BackupPairProcesses:
    """Two `licentia serve` processes, a main and a backup, joined through the setup API of the main."""

    def __init__(self, base_dir: Path, issuer: Issuer, name: str = "B1", interval_s: float = 1.0,
                 tls: bool = False) -> None:
        self.name = name
        self.interval_s = interval_s
        self.issuer = issuer
        self.servers: dict[str, ServerProcess] = {}
        for role in ("main", "backup"):
            data_dir = base_dir / role
            issuer.trust_in(data_dir)
            self.servers[role] = ServerProcess(data_dir, tls=tls)

    @property
    def main(self) -> ServerProcess:
        return self.servers["main"]

    @property
    def backup(self) -> ServerProcess:
        return self.servers["backup"]

    def spec(self, role: str) -> dict[str, str]:
        server = self.servers[role]
        return {"name": role, "api_url": server.url, **({"tls_fingerprint": server.fingerprint} if server.tls else {})}

    def start(self, *, join: bool = True, settings_from: str = "main") -> BackupPairProcesses:
        start_servers(self.servers.values())
        if join:
            log_in_everywhere(self.servers.values())
            self.join(settings_from=settings_from)
        return self

    def join(self, settings_from: str = "main") -> dict[str, Any]:
        body = {"name": self.name, "main": self.spec("main"), "backup": self.spec("backup"),
                "username": "admin", "password": ADMIN_PASSWORD, "interval_s": self.interval_s,
                "settings_from": settings_from}
        with self.main.admin() as admin:
            answer = admin.post("/api/v1/admin/relationship/backup", json=body, timeout=30)
        assert answer.status_code == 201, answer.text
        return answer.json()

    def status(self, role: str) -> dict[str, Any]:
        with self.servers[role].admin() as admin:
            return admin.get("/api/v1/admin/relationship").json()

    def wait(self, predicate: Any, timeout: float = 15.0, role: str = "main") -> dict[str, Any]:
        """Poll `role`'s relationship status until `predicate(status)` holds; return that status."""
        deadline = time.monotonic() + timeout
        status: dict[str, Any] = {}
        while time.monotonic() < deadline:
            try:
                status = self.status(role)
            except httpx.HTTPError:
                status = {}
            if status and predicate(status):
                return status
            time.sleep(0.1)
        raise AssertionError(f"{role} never reached the expected state; last status: {status}")

    def stop(self) -> None:
        for server in self.servers.values():
            server.kill()
