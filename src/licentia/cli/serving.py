"""`licentia serve` and `licentia demo`: open the data directory, then run the server under uvicorn."""

from __future__ import annotations

import argparse
import ctypes
import gc
import os
import sys
from pathlib import Path
from typing import Any

from licentia import __version__
from licentia.config import Config
from licentia.store.data_directory import DataDirectory
from licentia.store.private_file import PRIVATE_UMASK

UVICORN_OPTIONS: dict[str, Any] = {
    "loop": "uvloop",
    "http": "httptools",
    "lifespan": "on",
    "ws": "none",  # the server speaks no WebSocket: uvicorn then imports no WebSocket library at each start (~28 ms)
    "log_config": None,
    "proxy_headers": False,  # X-Forwarded-For only from `forwarded_allow_ips` (licentia.api.app)
}
"""How `licentia serve` runs uvicorn; bench/echo_app.py serves its baseline with the same options."""



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


def freeze_start_up() -> None:
    """Keep what start-up made (the app, its routes, the compiled templates, the modules imported in the warm-up)
    out of the collector's full passes, as the loaded state is: they live as long as the server. Before, every full
    pass walked them again, ~8,500 objects, 4.5-23 ms a pass on the event loop at 300,000 leases (bench/README.md).
    Collected first, so that no garbage of the start-up is kept forever; called once, in the warm-up's thread."""
    gc.collect()
    gc.freeze()


def _run(config: Config, install: list[Path] | None = None) -> int:
    import uvicorn

    from licentia.api.app import create_app
    from licentia.logs import configure_logging
    from licentia.server import LicenseServer

    configure_logging(config.log_level, config.log_format)
    server = LicenseServer(config)
    # The state loaded now lives as long as the server: the cycle collector waits while it is built (each of its
    # passes would walk the large lists being built: ~0.9 s of a start at 300,000 leases and printers), and it
    # is kept out of the collector's full passes after, which would otherwise stop the event loop ~0.1 s per
    # 100,000 leases each time (bench/scale.py). What the imports left is collected first, while it is little.
    gc.collect()
    gc.disable()
    try:
        server.open()
    except BlockingIOError:
        print(f"error: another licentia server is using {config.data_dir}", file=sys.stderr)
        return 2
    finally:
        gc.freeze()
        gc.enable()
    _return_free_memory()
    server.install_on_start = install or []
    app = create_app(server, when_warm=freeze_start_up)
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

