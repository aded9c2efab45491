"""The opt-in HTTP port (METRICS_PORT): Prometheus text at /metrics, and /healthz for Docker and orchestrators.

/healthz answers 200 when `health()` says the process is fine (the bot: its gateway is connected and the store
answers) and 503 with the reason otherwise.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Awaitable, Callable

from aiohttp import web

from services.errors import ConfigError
from services.metrics import CONTENT_TYPE, Metrics

log = logging.getLogger(__name__)

Health = Callable[[], Awaitable[tuple[bool, str]]]


def check_port(host: str, port: int) -> None:
    """Before login: a METRICS_PORT that cannot be listened on is a start-up mistake (ConfigError)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        family, kind, proto, _, address = infos[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(address)
    except OSError as exc:
        raise ConfigError("METRICS_PORT", f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


async def start_metrics_server(host: str, port: int, metrics: Metrics, health: Health) -> web.AppRunner:
    """Listen on host:port until the returned runner is cleaned up (`await runner.cleanup()`)."""

    async def serve_metrics(_request: web.Request) -> web.Response:
        return web.Response(body=metrics.text(), headers={"Content-Type": CONTENT_TYPE})

    async def serve_health(_request: web.Request) -> web.Response:
        try:
            ok, reason = await health()
        except Exception as exc:  # a check that breaks is an unhealthy process, not a 500
            ok, reason = False, f"health check failed: {type(exc).__name__}"
        return web.Response(status=200 if ok else 503, text=reason + "\n")

    app = web.Application()
    app.router.add_get("/metrics", serve_metrics)
    app.router.add_get("/healthz", serve_health)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    log.info("Metrics on http://%s:%d/metrics, health on /healthz", host, port)
    return runner
