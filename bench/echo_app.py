"""A bare Starlette app with one JSON echo endpoint: the baseline `bench/checkout.py` compares Licentia with.

It is served by uvicorn with the settings `licentia serve` uses (uvloop, httptools, lifespan on,
no access log, no logging config of uvicorn's own), so the difference in the benchmark is what
Licentia does per request, not the HTTP stack.

    python bench/echo_app.py --port 8471
"""

from __future__ import annotations

import argparse

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from licentia.cli.serving import UVICORN_OPTIONS


async def echo(request: Request) -> Response:
    return JSONResponse(await request.json())


async def ready(request: Request) -> Response:
    return JSONResponse({"ok": True})


app = Starlette(routes=[Route("/echo", echo, methods=["POST"]), Route("/ready", ready, methods=["GET"])])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.Server(
        uvicorn.Config(
            app,
            host=args.host,
            port=args.port,
            log_level="warning",
            access_log=False,
            **UVICORN_OPTIONS,
        )
    ).run()


if __name__ == "__main__":
    main()
