"""The admin port of every hub process: ``/healthz``, ``/readyz`` and ``/metrics``, whatever ``--only`` says.

The ingress also answers these on its public port; a router, adapter, aggregator, notifier or auditor process has
no other HTTP server, so without this its metrics were never exposed and a container platform could not probe
it. Off unless ``NSW_ADMIN_PORT`` is set (docker-compose.yml and deploy/k8s set 9464); it asks no credentials,
so it listens on loopback unless ``NSW_ADMIN_HOST`` says otherwise (``0.0.0.0`` in a container).

- ``/healthz``: 200 while the process serves (liveness: restart it when this fails).
- ``/readyz``: the hub's readiness (``Hub.readyz``): 200 when every service of the process owns partitions
  and every topic reader reads, else 503 naming what it waits for.
- ``/metrics``: the process's metrics in the Prometheus text format.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Awaitable, Callable, Iterator

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from broker import _metrics as metrics
from broker.errors import NSWError

__all__ = ["AdminServer", "admin_app"]

Endpoint = Callable[[Request], Awaitable[Response]]


async def _healthz(request: Request) -> Response:
    return Response(orjson.dumps({"status": "ok"}), media_type="application/json")


async def _metrics(request: Request) -> Response:
    return Response(metrics.render(), media_type="text/plain; version=0.0.4")


def admin_app(readyz: Endpoint) -> Starlette:
    return Starlette(routes=[Route("/healthz", _healthz, methods=["GET"]), Route("/readyz", readyz, methods=["GET"]),
                             Route("/metrics", _metrics, methods=["GET"])])


class _Quiet(uvicorn.Server):
    """No signal handling of its own: the process owner decides when to stop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class AdminServer:
    def __init__(self, readyz: Endpoint, *, host: str, port: int) -> None:
        self.host, self.port = host, port
        config = uvicorn.Config(admin_app(readyz), host=host, port=port, access_log=False, log_level="warning",
                                lifespan="off", loop="none")
        self._server = _Quiet(config)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        # Bound here, not by uvicorn (which would exit the process when the port is taken): a clear error instead.
        sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
        except OSError as exc:
            sock.close()
            raise NSWError(f"the admin server could not listen on {self.host}:{self.port} (NSW_ADMIN_PORT): "
                           f"{exc.strerror}") from exc
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]), name="admin-http")
        while not self._server.started:
            if self._task.done():
                await self._task  # re-raises why it could not start
                raise NSWError(f"the admin server on {self.host}:{self.port} ended while starting")
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        self._server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._task, timeout=10)
