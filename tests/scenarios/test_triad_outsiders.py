"""Nothing outside the triad can disturb it: garbage, oversized frames and idle connections on every port.

Each member listens on three ports: its API, and its etcd member's peer and client ports (TLS
with client certificates from the triad's CA). An outsider without a certificate opens 100
connections to each port of each member, sends garbage, a TLS ClientHello-looking prefix that
announces a huge record, an HTTP/2 preface with an oversized frame, and then holds the
connections open. The active member keeps answering `/health/active` 200, no election happens
(the epoch stays), and no member's memory grows by 10 MiB or more.
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import threading
import time

import httpx
from harness import ROLES, TriadCluster
from triad_support import admin_get, install_licenses

CONNECTIONS_PER_PORT = 100
GARBAGE = [
    os.urandom(4096),
    b"\x16\x03\x01\xff\xff" + os.urandom(64),  # a TLS record header announcing 64 KiB, then noise
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + struct.pack(">I", 0x7FFFFF)[1:] + b"\x00\x00" + b"\x00\x00\x00\x01",
    b"\x00\x00\x00\x7f\xff\xff\xff",  # a length-prefixed frame of 2 GiB
    b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n" + os.urandom(512),
]


def rss_kib(pid: int) -> int:
    """Resident memory of a process and its children (the server and its etcd), in KiB."""
    total = 0
    for candidate in [pid, *children(pid)]:
        try:
            with open(f"/proc/{candidate}/status") as status:
                for line in status:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except FileNotFoundError:
            continue
    return total


def children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as listing:
            return [int(p) for p in listing.read().split()]
    except FileNotFoundError:
        return []


def flood(host: str, port: int, sockets: list[socket.socket]) -> None:
    for n in range(CONNECTIONS_PER_PORT):
        try:
            conn = socket.create_connection((host, port), timeout=1)
            conn.settimeout(0.2)
            conn.sendall(GARBAGE[n % len(GARBAGE)])
        except OSError:
            continue  # the member may close a connection at once; that is its right
        sockets.append(conn)


def settled_rss(cluster: TriadCluster) -> dict[str, int]:
    """Each member's RSS once a just-formed triad has warmed up (its gRPC channels and etcd grow ~10 MiB in
    their first ~12 s with no traffic at all), so that what grows afterwards is the outsiders' doing."""
    samples = [{role: rss_kib(cluster.servers[role].process.pid) for role in ROLES}]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        time.sleep(1.0)
        samples.append({role: rss_kib(cluster.servers[role].process.pid) for role in ROLES})
        if len(samples) >= 3 and all(samples[-1][role] - samples[-3][role] < 512 for role in ROLES):
            break
    return samples[-1]


def test_outsiders_without_certificates_cannot_disturb_the_triad(start_triad, issuer):
    cluster: TriadCluster = start_triad()
    install_licenses(cluster, issuer, seats=5)
    primary = cluster.servers["primary"]
    epoch = admin_get(primary, "/api/v1/admin/relationship")["epoch"]
    before = settled_rss(cluster)

    targets = []
    for role in ROLES:
        server = cluster.servers[role]
        etcd_port = cluster.raft_ports[role]
        targets += [(server.host, server.port), (server.host, etcd_port), (server.host, etcd_port + 1)]

    health_failures: list[str] = []
    stop = threading.Event()

    def watch_health() -> None:
        while not stop.is_set():
            try:
                answer = httpx.get(f"{primary.url}/health/active", timeout=2)
                if answer.status_code != 200:
                    health_failures.append(f"{answer.status_code} {answer.text}")
            except httpx.HTTPError as exc:
                health_failures.append(repr(exc))
            time.sleep(0.1)

    watcher = threading.Thread(target=watch_health, daemon=True)
    watcher.start()
    sockets: list[socket.socket] = []
    try:
        for host, port in targets:
            flood(host, port, sockets)
        assert len(sockets) > len(targets) * CONNECTIONS_PER_PORT // 2, "the outsider could not even connect"
        time.sleep(3.0)
        for conn in sockets:  # a second volley on the connections still open
            with contextlib.suppress(OSError):
                conn.sendall(os.urandom(1024))
        time.sleep(2.0)
    finally:
        stop.set()
        watcher.join(5)
        for conn in sockets:
            conn.close()

    assert health_failures == [], health_failures[:5]
    view = admin_get(primary, "/api/v1/admin/relationship")
    assert view["serving"] is True and view["epoch"] == epoch, "an election happened"
    assert httpx.post(f"{primary.url}/api/v1/leases", json={"product": "CADStudio", "client": {"host": "ws"}},
                      timeout=5).status_code == 201
    for role in ROLES:
        grown = rss_kib(cluster.servers[role].process.pid) - before[role]
        assert grown < 10 * 1024, f"{role} grew by {grown} KiB"
