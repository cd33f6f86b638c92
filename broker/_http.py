"""The ingress's HTTP protocol: uvicorn's httptools protocol with the guards a public endpoint needs.

uvicorn closes idle keep-alive connections, but it waits forever for a client that sends its request
head a byte at a time (slowloris), accepts a head of any size (httptools has no limit), and waits
forever for a body that never ends. Each such connection holds a socket and memory; enough of them
lock everyone out. This protocol adds, per request:

* a **head deadline**: the request line and headers must be in within ``head_timeout`` seconds of
  the connection (or of the request's first byte on a kept-alive connection), else ``408``;
* a **head size limit**: ``max_head_bytes``, else ``431``;
* a **body deadline** as a backstop for every route: a request whose body is not complete
  ``body_timeout`` seconds after its head is disconnected (the submission route answers ``408``
  itself, earlier, from its own read deadline);
* uvicorn's own ``400`` for bytes that are not HTTP, as problem+json like every other refusal.

:class:`ProblemOnError` is the outermost ASGI layer: an exception that escapes everything inside
(the authentication middleware included) is answered with a problem+json ``500``, not uvicorn's text.

A connection that never sent a byte is closed silently at the head deadline (nothing to answer).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, ClassVar

import structlog
from starlette.requests import Request
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from broker._problems import problem_body

log = structlog.get_logger("nsw.http")

#: Seconds beyond the body deadline before the protocol cuts a body the application did not time out.
BODY_GRACE_SECONDS = 5.0


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """See the module docstring; :func:`guarded_protocol` makes a subclass with the hub's limits."""

    head_timeout: ClassVar[float] = 10.0
    body_timeout: ClassVar[float] = 30.0
    max_head_bytes: ClassVar[int] = 65_536

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._in_head = True  # waiting for (the rest of) a request head
        self._begun = False  # a byte of the current request head has arrived
        self._head_bytes = 0

    # ------------------------------------------------------------------ asyncio.Protocol

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self.head_timeout, self._head_late)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._in_head:
            self._head_bytes += len(data)
        super().data_received(data)
        # Checked after parsing: a first read can hold the whole head and the start of the body.
        if self._in_head and self._head_bytes > self.max_head_bytes and not self.transport.is_closing():
            log.warning("request_head_too_large", bytes=self._head_bytes, limit=self.max_head_bytes)
            if self._busy():
                self.transport.close()  # an answer is being written on this connection: do not interleave
            else:
                self._refuse(431, "header-too-large", f"the request head exceeds {self.max_head_bytes} bytes")

    # ------------------------------------------------------------------ parser callbacks

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head, self._begun = True, True
        if self._deadline is None:  # a kept-alive connection's next request: a fresh head deadline
            self._arm(self.head_timeout, self._head_late)

    def on_headers_complete(self) -> None:
        self._in_head, self._begun, self._head_bytes = False, False, 0
        self._arm(self.body_timeout + BODY_GRACE_SECONDS, self._body_late)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def send_400_response(self, msg: str) -> None:
        self._refuse(400, "bad-request", msg)

    # ------------------------------------------------------------------ deadlines

    def _arm(self, seconds: float, then: Any) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, then)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _head_late(self) -> None:
        self._deadline = None
        if self.transport.is_closing() or not self._in_head:
            return
        if self._begun and not self._busy():
            log.info("request_head_timeout", seconds=self.head_timeout, bytes=self._head_bytes)
            self._refuse(408, "request-timeout", f"the request head was not complete within {self.head_timeout:g} s")
        else:
            self.transport.close()  # nothing was asked (or an answer is being written): just hang up

    def _body_late(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            log.info("request_body_timeout", seconds=self.body_timeout)
            self.transport.close()  # the application sees a disconnect

    def _busy(self) -> bool:
        """An earlier request on this connection (pipelined) is still being answered."""
        return self.cycle is not None and not self.cycle.response_complete

    def _refuse(self, status: int, slug: str, detail: str) -> None:
        body = problem_body(slug, detail=detail, status=status)
        head = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            head += [name, b": ", value, b"\r\n"]
        head += [b"content-type: application/problem+json\r\n",
                 b"content-length: " + str(len(body)).encode() + b"\r\n", b"connection: close\r\n", b"\r\n"]
        self.transport.write(b"".join(head) + body)
        self.transport.close()


def guarded_protocol(*, head_timeout: float, body_timeout: float, max_head_bytes: int) -> type[HttpToolsProtocol]:
    """The protocol class to give ``uvicorn.Config(http=...)``, with these limits."""

    class Guarded(GuardedHttpToolsProtocol):
        pass

    Guarded.head_timeout = head_timeout
    Guarded.body_timeout = body_timeout
    Guarded.max_head_bytes = max_head_bytes
    return Guarded


Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


class ProblemOnError:
    """ASGI: an exception nobody inside answered becomes a problem+json 500 (if no answer has started)."""

    def __init__(self, app: App) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        started = False

        async def watched(message: MutableMapping[str, Any]) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self._app(scope, receive, watched)
        except Exception as exc:
            if started:
                raise  # answered already (Starlette's 500 re-raises for the server's log), or half an answer is out
            log.exception("unhandled_error", path=scope.get("path"), error_type=exc.__class__.__name__)
            body = problem_body("internal-error", detail="the hub failed while answering; retry later")
            await send({"type": "http.response.start", "status": 500, "headers": [
                (b"content-type", b"application/problem+json"), (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})


async def bounded_body(request: Request, limit: int) -> bytes | None:
    """The request's body, or None as soon as it is (or declares to be) longer than ``limit``: never more
    than ``limit`` bytes held, whatever the client sends."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)
