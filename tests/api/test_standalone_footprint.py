"""A standalone server loads no code only a triad or a backup pair runs.

gRPC and etcd's client (what a triad member talks to its etcd with) cost ~13 MB of a server's memory and
httpx (how a server calls its partner, a triad member, a webhook) ~5 MB more, of the < 500 MB a site of
300,000 leases and printers may use (issue #14, bench/README.md). The server process is started as
`licentia serve` is, serves a print check, a checkout, an admin list and the console's login page, and is
stopped; what it had imported by then is written on its way out (a `sitecustomize` on its path).
"""

from __future__ import annotations

import os
from pathlib import Path

import httpx
from api_support import install_ok
from harness import ServerProcess

NOT_FOR_STANDALONE = ("grpc", "aetcd", "httpx")

# uvicorn stops on SIGTERM, then raises it again with the handler it found: this one, which writes the modules.
_RECORD_MODULES = """
import os, signal, sys

def _write_modules(signum, frame):
    with open(os.environ["LICENTIA_TEST_MODULES_FILE"], "w") as out:
        out.write("\\n".join(sorted(sys.modules)))
    sys.exit(0)

signal.signal(signal.SIGTERM, _write_modules)
"""


def test_a_standalone_server_never_imports_grpc_etcd_or_httpx(tmp_path: Path, issuer) -> None:
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(_RECORD_MODULES)
    modules_file = tmp_path / "modules.txt"
    data_dir = tmp_path / "server"
    issuer.trust_in(data_dir)
    server = ServerProcess(data_dir)
    server.extra_env = {
        "PYTHONPATH": os.pathsep.join([str(hook), os.environ.get("PYTHONPATH", "")]),
        "LICENTIA_TEST_MODULES_FILE": str(modules_file),
    }
    server.start()
    try:
        with server.admin() as admin, httpx.Client(base_url=server.url, timeout=10) as client:
            install_ok(admin, issuer.license_bytes(license_id="PRN", product="LabelStudio", count=5))
            install_ok(admin, issuer.license_bytes(license_id="SEATS", product="CADStudio", unit="seats", count=5))
            printed = client.post("/api/v1/print-checks", json={"product": "LabelStudio", "printer": {"name": "P1"}})
            assert printed.status_code == 200, printed.text
            checkout = client.post("/api/v1/leases", json={"product": "CADStudio", "request_id": "r1",
                                                           "client": {"host": "ws-1", "user": "ann"}})
            assert checkout.status_code in (200, 201), checkout.text
            assert admin.get("/api/v1/admin/printers").status_code == 200
            assert client.get("/console/login").status_code == 200
    finally:
        server.stop()
    assert server.process is not None and server.process.returncode == 0
    modules = modules_file.read_text().split()
    assert "licentia.server" in modules and "licentia.api.app" in modules  # the hook saw the server's imports
    loaded = sorted({name.split(".")[0] for name in modules} & set(NOT_FOR_STANDALONE))
    assert loaded == []
