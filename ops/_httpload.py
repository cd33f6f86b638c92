"""A minimal HTTP/1.1 keep-alive client for load generation, and a trivial server to measure it against.

httpx spends a few hundred microseconds of Python per request (pool bookkeeping, header models,
h11 state machine); on a two-core machine that shares its CPUs with the hub and Kafka that would make
the generator the bottleneck. This client does only what the benchmark needs: one request at a time per
persistent connection (no pipelining), requests pre-built as bytes, answers parsed for the status line,
headers and a ``Content-Length`` body. It is a test instrument, not a general client: no chunked
bodies, no TLS, no redirects.

``python -m ops._httpload serve PORT`` runs the trivial server (a fixed 202 JSON answer) so that the
generator's own ceiling can be measured in another process (``nsw bench generator``).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import cast
from urllib.parse import urlsplit

from ops._ports import free_port
from ops.errors import OpsError

__all__ = ["HttpAnswer", "HttpConnection", "HttpError", "build_request", "generator_max_rate", "parse_url"]

_HEADER_END = b"\r\n\r\n"


class HttpError(OpsError, ConnectionError):
    """The connection failed, closed mid-answer, or the answer is not HTTP/1.1 we understand (retriable)."""

    retriable = True


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    status: int
    headers: dict[str, str]
    body: bytes


def parse_url(url: str) -> tuple[str, int]:
    """(host, port) of an ``http://`` URL."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"only plain http://host:port URLs are supported, not {url!r}")
    return parts.hostname, parts.port or 80


def build_request(*, host: str, port: int, path: str, content_type: str, body: bytes,
                  headers: Mapping[str, str] | None = None) -> bytes:
    """The whole request as bytes, ready to write."""
    extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
    head = (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: {content_type}\r\n{extra}"
            f"Content-Length: {len(body)}\r\n\r\n")
    return head.encode("ascii") + body


def parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    """Status and lower-cased headers of a response head (without the blank line)."""
    lines = head.split(b"\r\n")
    status_line = lines[0]
    if not status_line.startswith(b"HTTP/1.") or len(status_line) < 12:
        raise HttpError(f"not an HTTP/1.x status line: {status_line[:40]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")
    return int(status_line[9:12]), headers


class HttpConnection(asyncio.Protocol):
    """One persistent connection; ``request`` writes pre-built bytes and waits for the whole answer."""

    def __init__(self) -> None:
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._waiter: asyncio.Future[HttpAnswer] | None = None
        self._head: tuple[int, dict[str, str], int] | None = None  # status, headers, body length
        self.closed = False

    @classmethod
    async def open(cls, host: str, port: int) -> HttpConnection:
        loop = asyncio.get_running_loop()
        try:
            _, protocol = await loop.create_connection(cls, host, port)
        except OSError as exc:
            raise HttpError(f"cannot connect to {host}:{port}: {exc}") from exc
        return protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's transports are not subclasses
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(HttpError(f"connection closed before the answer ({exc})"))

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        try:
            self._parse()
        except HttpError as exc:
            if self._waiter is not None and not self._waiter.done():
                self._waiter.set_exception(exc)
            self.close()

    def _parse(self) -> None:
        if self._head is None:
            end = self._buffer.find(_HEADER_END)
            if end < 0:
                return
            status, headers = parse_head(bytes(self._buffer[:end]))
            if "transfer-encoding" in headers:
                raise HttpError("chunked answers are not supported by the load client")
            length = int(headers.get("content-length", "0"))
            del self._buffer[: end + 4]
            self._head = (status, headers, length)
        status, headers, length = self._head
        if len(self._buffer) < length:
            return
        body = bytes(self._buffer[:length])
        del self._buffer[:length]
        self._head = None
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(HttpAnswer(status, headers, body))
        if headers.get("connection", "").lower() == "close":
            self.close()

    async def request(self, raw: bytes) -> HttpAnswer:
        if self.closed or self._transport is None:
            raise HttpError("connection is closed")
        if self._waiter is not None:
            raise RuntimeError("one request at a time per connection")
        waiter = self._waiter = asyncio.get_running_loop().create_future()
        self._transport.write(raw)
        answer: HttpAnswer = await waiter
        return answer

    def close(self) -> None:
        self.closed = True
        if self._transport is not None:
            self._transport.close()


# --------------------------------------------------------------------------- trivial server


class _TrivialServer(asyncio.Protocol):
    ANSWER = b'{"submission_id":"x","status":"accepted"}'
    RESPONSE = (b"HTTP/1.1 202 Accepted\r\ncontent-type: application/json\r\ncontent-length: "
                + str(len(ANSWER)).encode() + b"\r\n\r\n" + ANSWER)

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's transports are not subclasses

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while True:
            end = self._buffer.find(_HEADER_END)
            if end < 0:
                return
            _, headers = _request_head(bytes(self._buffer[:end]))
            length = int(headers.get("content-length", "0"))
            if len(self._buffer) < end + 4 + length:
                return
            del self._buffer[: end + 4 + length]
            assert self._transport is not None
            self._transport.write(self.RESPONSE)


def _request_head(head: bytes) -> tuple[bytes, dict[str, str]]:
    lines = head.split(b"\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")
    return lines[0], headers


async def serve_trivial(port: int) -> None:
    """Answer every request with a fixed 202 until killed."""
    server = await asyncio.get_running_loop().create_server(_TrivialServer, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


@dataclass(slots=True)
class _Count:
    done: int = 0
    errors: int = 0
    latencies: list[float] = field(default_factory=list)


async def generator_max_rate(
    *, duration: float = 5.0, concurrency: int = 32, body_bytes: int = 5000
) -> dict[str, float]:
    """Closed-loop requests/s of this client against the trivial server in a child process.

    The figure is the generator's own ceiling on this machine: the hub cannot be measured above it.
    """
    port = free_port()
    child = subprocess.Popen([sys.executable, "-m", "ops._httpload", "serve", str(port)])  # noqa: ASYNC220 - started once, before timing
    try:
        deadline = time.monotonic() + 15
        conns: list[HttpConnection] = []
        while len(conns) < concurrency:
            try:
                conns.append(await HttpConnection.open("127.0.0.1", port))
            except HttpError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.05)
        raw = build_request(host="127.0.0.1", port=port, path="/v1/submissions", content_type="application/xml",
                            body=b"x" * body_bytes)
        count = _Count()
        stop_at = time.perf_counter() + duration

        async def lane(conn: HttpConnection) -> None:
            while (now := time.perf_counter()) < stop_at:
                answer = await conn.request(raw)
                count.latencies.append(time.perf_counter() - now)
                if answer.status == 202:
                    count.done += 1
                else:
                    count.errors += 1

        started = time.perf_counter()
        await asyncio.gather(*(lane(c) for c in conns))
        elapsed = time.perf_counter() - started
        for conn in conns:
            conn.close()
    finally:
        child.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=5)
        if child.poll() is None:
            child.kill()
    count.latencies.sort()
    p50 = count.latencies[len(count.latencies) // 2] * 1000 if count.latencies else 0.0
    return {"requests_per_s": round(count.done / elapsed, 1), "errors": count.errors,
            "concurrency": concurrency, "duration_s": round(elapsed, 2), "p50_ms": round(p50, 3)}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) == 2 and args[0] == "serve":
        with contextlib.suppress(KeyboardInterrupt):
            try:
                import uvloop  # noqa: PLC0415 - same event loop as the hub, when installed
            except ImportError:
                asyncio.run(serve_trivial(int(args[1])))
            else:
                uvloop.run(serve_trivial(int(args[1])))
        return 0
    sys.stderr.write("usage: python -m ops._httpload serve PORT\n")
    return 2


if __name__ == "__main__":
    sys.exit(main())
