"""``nsw serve --split SERVICES``: some of the hub's services in a child process, on another core (the option
repeated: one child per group).

One Python process runs one event loop on one core. The auditor, which reads and chains every record of the
lifecycle, costs a good share of the hub's CPU; run beside the others in a child process it lets a two-core
machine carry more (see README "Benchmarks"). The child is ``nsw serve --only <SERVICES>`` with the parent's
environment and Kafka/bundle options; it is restarted if it dies, stopped with the parent, and on Linux it
also dies when the parent is killed outright.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import os
import signal
import sys
from collections.abc import Mapping, Sequence

import structlog

log = structlog.get_logger("nsw.split")

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child, before exec: ask Linux for SIGTERM when the parent dies (no orphaned services)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def child_argv(services: Sequence[str], *, bootstrap: str | None, bundles: Sequence[str]) -> list[str]:
    """The command line of the child that runs ``services``."""
    argv = [sys.executable, "-m", "broker._cli", "serve", "--only", ",".join(services)]
    if bootstrap:
        argv += ["--bootstrap", bootstrap]
    for bundle in bundles:
        argv += ["--bundle", bundle]
    return argv


def split_groups(options: Sequence[str]) -> list[frozenset[str]]:
    """The services of each child, one ``--split`` option each (comma-separated names; empty ones ignored)."""
    groups = [frozenset(name.strip() for name in option.split(",") if name.strip()) for option in options]
    return [group for group in groups if group]


def child_env(admin_port: int | None, index: int = 1) -> dict[str, str] | None:
    """The environment of child ``index`` (1-based): the parent's, its admin server (if any) ``index`` ports on."""
    return None if admin_port is None else {**os.environ, "NSW_ADMIN_PORT": str(admin_port + index)}


async def run_child(argv: Sequence[str], stop: asyncio.Event, *, max_delay: float = 15.0,
                    env: Mapping[str, str] | None = None) -> None:
    """Keep the child running until ``stop`` is set, then stop it (SIGTERM, SIGKILL after 20 s)."""
    delay = 0.5
    while not stop.is_set():
        process = await asyncio.create_subprocess_exec(*argv, preexec_fn=_die_with_parent, env=env)
        log.info("split_child_started", pid=process.pid, services=argv[argv.index("--only") + 1])
        exited = asyncio.ensure_future(process.wait())
        stopping = asyncio.ensure_future(stop.wait())
        await asyncio.wait({exited, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if stop.is_set():
            if process.returncode is None:
                process.terminate()
                try:
                    await asyncio.wait_for(asyncio.shield(exited), 20)
                except TimeoutError:
                    process.kill()
                    await exited
            return
        log.warning("split_child_exited", code=process.returncode, retry_in=delay)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), delay)
        delay = min(delay * 2, max_delay)
