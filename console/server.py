"""The console's static file server: the built single-page app and the OpenAPI document.

Envoy routes every path that is neither the REST API nor gRPC here. Answers ``/healthz``
(the launcher's readiness check), ``/openapi.json`` and the files of the build folder; the
hashed files under ``/assets/`` are cached for a year, everything else is revalidated so a new
build shows at once. Nothing outside the build folder is ever served.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path

import structlog
from aiohttp import web

from console.config import ConsoleConfig

log = structlog.get_logger()

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: Headers on every answer: no framing, no sniffing, no referrer to other sites, and a policy
#: allowing only the console's own scripts (it calls only its own origin's API).
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' blob: data:; style-src 'self' 'unsafe-inline'; "
        "connect-src 'self'; object-src 'none'; base-uri 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}

_IMMUTABLE = "public, max-age=31536000, immutable"
_REVALIDATE = "no-cache"


class ConsoleNotBuilt(RuntimeError):
    """The build folder has no index.html: ``make console`` was not run."""


@web.middleware
async def _headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        exc.headers.update(SECURITY_HEADERS)
        raise
    response.headers.update(SECURITY_HEADERS)
    return response


def file_in(root: Path, url_path: str) -> Path | None:
    """The file ``url_path`` names inside ``root``, or None (missing, a folder, or outside)."""
    relative = url_path.lstrip("/") or "index.html"
    candidate = (root / relative).resolve()
    if not candidate.is_relative_to(root) or not candidate.is_file():
        return None
    return candidate


def create_app(root: Path) -> web.Application:
    """The aiohttp application serving the build folder ``root``."""
    root = root.resolve()
    if not (root / "index.html").is_file():
        raise ConsoleNotBuilt(f"{root / 'index.html'} is missing: run `make console`")

    async def healthz(_request: web.Request) -> web.StreamResponse:
        return web.Response(text="ok\n")

    async def static(request: web.Request) -> web.StreamResponse:
        path = file_in(root, request.path)
        if path is None:
            raise web.HTTPNotFound(text=f"Not found: {request.path} (the console is at /)\n")
        response = web.FileResponse(path)
        immutable = request.path.startswith("/assets/")
        response.headers["Cache-Control"] = _IMMUTABLE if immutable else _REVALIDATE
        return response

    app = web.Application(middlewares=[_headers])
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/{tail:.*}", static)
    return app


async def serve(config: ConsoleConfig) -> None:
    """Serves until SIGTERM or SIGINT, then lets requests in flight finish."""
    runner = web.AppRunner(
        create_app(config.root), access_log=None, shutdown_timeout=config.shutdown_grace_s
    )
    await runner.setup()
    site = web.TCPSite(runner, config.host, config.port)
    await site.start()
    log.info("serving", host=config.host, port=config.port, root=str(config.root))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    log.info("stopping")
    await runner.cleanup()
