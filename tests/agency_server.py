"""A real HTTP server on localhost for tests (webhook receivers, agency systems), in the test's loop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator, Sequence

import uvicorn
from starlette.applications import Starlette
from starlette.routing import BaseRoute

from tests.conftest import free_port


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.asynccontextmanager
async def serve(routes: Sequence[BaseRoute]) -> AsyncIterator[str]:
    """Serve ``routes`` on a free port; yield the base URL; stop on exit."""
    port = free_port()
    server = _Server(uvicorn.Config(Starlette(routes=list(routes)), host="127.0.0.1", port=port,
                                    log_level="warning", lifespan="off", access_log=False))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            await task
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
