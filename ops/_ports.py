"""Free local ports for servers started a little later (tests, benchmarks, campaigns).

A port the kernel hands out for ``bind(0)`` comes from the ephemeral range, the same range every outgoing
connection takes its local port from. Between choosing such a port and starting the server on it, a client
socket (a Kafka broker's, a hub's) may take it, and the server then fails to bind. Ports are therefore chosen
outside the ephemeral range, where the kernel never assigns a connection's local port on its own.
"""

from __future__ import annotations

import random
import socket
from contextlib import ExitStack
from pathlib import Path

_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_DEFAULT_EPHEMERAL = (32768, 60999)  # Linux's default, when the file cannot be read
_LOWEST = 10000  # below: the well-known and registered ports of common services
_HIGHEST = 65535
_TRIES = 500


def ephemeral_range(text: str | None = None) -> tuple[int, int]:
    """The kernel's ephemeral port range (first, last), from its file or from ``text`` of that form."""
    if text is None:
        try:
            text = _RANGE_FILE.read_text(encoding="ascii")
        except OSError:
            return _DEFAULT_EPHEMERAL
    parts = text.split()
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        return _DEFAULT_EPHEMERAL
    first, last = int(parts[0]), int(parts[1])
    return (first, last) if first <= last else _DEFAULT_EPHEMERAL


def candidate_spans(count: int, ephemeral: tuple[int, int]) -> list[tuple[int, int]]:
    """The spans (first, last first port) where a block of ``count`` ports lies outside the ephemeral range."""
    first, last = ephemeral
    spans = [(_LOWEST, first - count), (last + 1, _HIGHEST + 1 - count)]
    usable = [(low, high) for low, high in spans if low <= high]
    return usable or [(1024, _HIGHEST + 1 - count)]  # a kernel that lends every port: the best there is


def free_ports(count: int = 1, *, consecutive: bool = False, host: str = "127.0.0.1") -> list[int]:
    """``count`` distinct ports free on ``host`` now, outside the ephemeral range (a block if ``consecutive``)."""
    if count < 1:
        raise ValueError("count must be at least 1")
    width = count if consecutive else 1
    spans = candidate_spans(width, ephemeral_range())
    rng = random.SystemRandom()
    chosen: list[int] = []
    with ExitStack() as held:  # every chosen port stays bound until all are chosen: none is given twice
        for _ in range(_TRIES):
            low, high = rng.choice(spans)
            block = range(base := rng.randint(low, high), base + width)
            if _bind_all(held, host, block):
                chosen.extend(block)
            if len(chosen) == count:
                return chosen
    raise OSError(f"no {count} free {'consecutive ' if consecutive else ''}ports on {host}")


def _bind_all(held: ExitStack, host: str, block: range) -> bool:
    """Bind every port of ``block`` into ``held``; none stays bound if one is taken."""
    with ExitStack() as attempt:
        for port in block:
            sock = attempt.enter_context(socket.socket())
            try:
                sock.bind((host, port))
            except OSError:
                return False
        held.push(attempt.pop_all())
        return True


def free_port(host: str = "127.0.0.1") -> int:
    """One port free on ``host`` now, outside the ephemeral range."""
    return free_ports(1, host=host)[0]
