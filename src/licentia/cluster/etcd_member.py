"""One member of the triad's etcd cluster, run as a supervised child process of the Licentia server.

Every Licentia triad member runs its own etcd member. The etcd process is a child of the
server process and must never outlive it: the child asks the kernel for SIGKILL when its
parent goes (PR_SET_PDEATHSIG), so even a SIGKILL of the server takes etcd down with it.
The kernel sends that signal when the *thread* that forked the child ends, so an
`EtcdMember` must be started from an event loop whose thread lives as long as the server.

The signal is not asked for in a `preexec_fn`: that makes Python fork() and run Python
code in the child, and fork() runs gRPC's atfork handlers, which in a process with live
gRPC channels (the server's etcd clients) crash the child ("Check failed:
next_worker->state == KICKED") some of the time. Without `preexec_fn` CPython's `subprocess` uses
vfork(), which runs no atfork handlers (uvloop's subprocesses use fork(), so they are not
used either), and the child first runs a few lines of Python
(`python -I -S -c`, about 20 ms) that call prctl and then exec etcd in the same process.

While the member is meant to run, a supervising task waits on the process and restarts
it after an exit, with a backoff of 0.2 s doubling to 5 s (back to 0.2 s once a run has
lasted 30 s). A restarted etcd finds its data directory and ignores the initial-cluster
flags, rejoining the cluster it already belongs to.

All traffic is TLS with client certificates from the triad CA (see `triad_tls`); ports
are bound to the member's own address only. Compaction is left to the application.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from licentia.cluster.triad_tls import CA_FILE, CERT_FILE, KEY_FILE

logger = logging.getLogger("licentia.etcd")

LOG_FILE = "etcd.log"
LOG_LIMIT_BYTES = 20 * 1024 * 1024
QUOTA_BACKEND_BYTES = 2 * 1024 * 1024 * 1024
MAX_REQUEST_BYTES = 8 * 1024 * 1024
# etcd refuses client keepalive pings closer together than this (its default is 5 s, and the
# client pings every second); see `etcd_client`.
GRPC_KEEPALIVE_MIN_TIME = "500ms"
STOP_GRACE_S = 5.0
BACKOFF_FIRST_S = 0.2
BACKOFF_MAX_S = 5.0
BACKOFF_RESET_AFTER_S = 30.0
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class EtcdPeer:
    """One member of the etcd cluster: its name, its address and its two ports."""

    name: str
    host: str
    peer_port: int
    client_port: int

    @property
    def peer_url(self) -> str:
        return f"https://{_url_host(self.host)}:{self.peer_port}"

    @property
    def client_url(self) -> str:
        return f"https://{_url_host(self.host)}:{self.client_port}"

    @property
    def client_endpoint(self) -> str:
        return f"{_url_host(self.host)}:{self.client_port}"


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


@dataclass(frozen=True)
class EtcdTiming:
    """etcd's Raft timing: the leader's heartbeat and the election timeout, in milliseconds."""

    heartbeat_ms: int = 50
    election_ms: int = 500


# Run as `python -c` in the child, then replaced by etcd itself (PR_SET_PDEATHSIG survives execve):
# ask for SIGKILL when the parent goes, and give up if it has already gone. The umask is set here too,
# since uvloop (uvicorn's loop) takes no `umask` argument.
_DIE_WITH_PARENT = (
    "import ctypes, os, sys\n"
    "os.umask(0o077)\n"
    f"if ctypes.CDLL(None, use_errno=True).prctl({_PR_SET_PDEATHSIG}, {int(signal.SIGKILL)}, 0, 0, 0) != 0"
    " or os.getppid() != int(sys.argv[1]):\n"
    "    os._exit(127)\n"
    "os.execv(sys.argv[2], sys.argv[2:])\n"
)


async def _wait_for_exit(process: subprocess.Popen[bytes]) -> int:
    """Wait for the child to exit without blocking the loop, whichever loop it is (asyncio's or uvloop)."""
    code = process.poll()
    if code is not None:
        return code
    try:
        pidfd = os.pidfd_open(process.pid)  # readable once the process has exited
    except OSError:
        return await asyncio.to_thread(process.wait)
    loop = asyncio.get_running_loop()
    exited: asyncio.Future[None] = loop.create_future()
    def on_exit() -> None:
        if not exited.done():
            exited.set_result(None)

    loop.add_reader(pidfd, on_exit)
    try:
        await exited
    finally:
        loop.remove_reader(pidfd)
        os.close(pidfd)
    return process.wait()


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


class EtcdMember:
    """This server's etcd member: the child process and the task that restarts it when it dies."""

    def __init__(
        self,
        data_dir: Path,
        me: EtcdPeer,
        peers: list[EtcdPeer],
        cluster_token: str,
        tls_dir: Path,
        timing: EtcdTiming | None = None,
        binary: str = "/usr/bin/etcd",
    ) -> None:
        if me not in peers:
            raise ValueError(f"the etcd member {me.name} is not among the cluster's members")
        self.data_dir = data_dir
        self.me = me
        self.peers = list(peers)
        self.cluster_token = cluster_token
        self.tls_dir = tls_dir
        self.timing = timing or EtcdTiming()
        self.binary = binary
        self.restarts = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    def pid(self) -> int | None:
        return self._process.pid if self.running and self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def log_path(self) -> Path:
        return self.data_dir / LOG_FILE

    def command(self) -> list[str]:
        """etcd's command line for this member."""
        me, tls = self.me, self.tls_dir
        initial_cluster = ",".join(f"{peer.name}={peer.peer_url}" for peer in self.peers)
        return [
            self.binary,
            f"--name={me.name}",
            f"--data-dir={self.data_dir}",
            f"--listen-peer-urls={me.peer_url}",
            f"--initial-advertise-peer-urls={me.peer_url}",
            f"--listen-client-urls={me.client_url}",
            f"--advertise-client-urls={me.client_url}",
            f"--initial-cluster={initial_cluster}",
            "--initial-cluster-state=new",
            f"--initial-cluster-token={self.cluster_token}",
            f"--heartbeat-interval={self.timing.heartbeat_ms}",
            f"--election-timeout={self.timing.election_ms}",
            # A member cut off from the leader asks the others before it calls an election, so a partial
            # partition (one link cut) does not depose a leader the majority still hears.
            "--pre-vote=true",
            "--client-cert-auth=true",
            f"--trusted-ca-file={tls / CA_FILE}",
            f"--cert-file={tls / CERT_FILE}",
            f"--key-file={tls / KEY_FILE}",
            "--peer-client-cert-auth=true",
            f"--peer-trusted-ca-file={tls / CA_FILE}",
            f"--peer-cert-file={tls / CERT_FILE}",
            f"--peer-key-file={tls / KEY_FILE}",
            "--logger=zap",
            f"--log-outputs={self.log_path}",
            "--log-level=warn",
            "--snapshot-count=10000",
            f"--quota-backend-bytes={QUOTA_BACKEND_BYTES}",
            f"--max-request-bytes={MAX_REQUEST_BYTES}",
            f"--grpc-keepalive-min-time={GRPC_KEEPALIVE_MIN_TIME}",
            "--enable-pprof=false",
            "--auto-compaction-retention=0",
            "--experimental-initial-corrupt-check=true",
        ]

    async def start(self) -> None:
        """Spawn etcd and the task that supervises it; return once the process exists, not once it has a quorum."""
        if self._supervisor is not None:
            return
        self._stopping = False
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.data_dir, 0o700)
        await self._spawn()
        self._supervisor = asyncio.get_running_loop().create_task(self._supervise(), name=f"etcd {self.me.name}")

    async def stop(self) -> None:
        """Stop supervising, then SIGTERM etcd, SIGKILL it after 5 s, and wait until it has exited."""
        self._stopping = True
        supervisor, self._supervisor = self._supervisor, None
        if supervisor is not None:
            supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await supervisor
        process = self._process
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
        try:
            await asyncio.wait_for(_wait_for_exit(process), STOP_GRACE_S)
        except TimeoutError:
            logger.warning("The triad's etcd member %s did not stop within %.0f s; killing it.",
                           self.me.name, STOP_GRACE_S)
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await _wait_for_exit(process)

    def kill(self) -> None:
        """SIGKILL etcd, as a crash would; the supervisor then restarts it."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()

    async def _spawn(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            if self.log_path.stat().st_size > LOG_LIMIT_BYTES:
                os.truncate(self.log_path, 0)
        fd = os.open(self.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            # subprocess, not the loop's subprocess support: uvloop's (libuv's) fork() runs gRPC's
            # atfork handlers; without preexec_fn CPython uses vfork(), which runs none.
            self._process = subprocess.Popen(
                [sys.executable, "-I", "-S", "-c", _DIE_WITH_PARENT, str(os.getpid()), *self.command()],
                stdin=subprocess.DEVNULL,
                stdout=fd,
                stderr=fd,
                start_new_session=False,
                close_fds=True,
            )
        finally:
            os.close(fd)
        logger.debug("Started the triad's etcd member %s as process %d.", self.me.name, self._process.pid)

    async def _supervise(self) -> None:
        backoff = BACKOFF_FIRST_S
        started = time.monotonic()
        while not self._stopping:
            process = self._process
            if process is not None:
                code = await _wait_for_exit(process)
                if self._stopping:
                    return
                if time.monotonic() - started >= BACKOFF_RESET_AFTER_S:
                    backoff = BACKOFF_FIRST_S
                logger.warning("The triad's etcd member %s %s; restarting it in %.1f s.",
                               self.me.name, _describe_exit(code), backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX_S)
            if self._stopping:
                return
            started = time.monotonic()
            try:
                await self._spawn()
            except OSError as exc:
                self._process = None
                logger.error("The triad's etcd member %s could not be started (%s); trying again in %.1f s.",
                             self.me.name, exc, backoff)
                continue
            self.restarts += 1
