"""The hub as a separate process, for crash tests: start, SIGKILL, restart."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

from broker._auth import read_dev_key
from tests.conftest import HMRC_SCHEMAS, free_port


class HubProcess:
    def __init__(self, *, bootstrap: str, log: Path, port: int | None = None, args: Sequence[str] = ()) -> None:
        self._args = tuple(args)
        self.state_dir = log.parent / "state"
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._bootstrap = bootstrap
        self._log = log
        self._proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.kills = 0

    def _spawn(self) -> None:
        env = {**os.environ, "NSW_BOOTSTRAP": self._bootstrap, "NSW_PORT": str(self.port), "NSW_LOG_FORMAT": "json",
               "NSW_STATE_DIR": str(self.state_dir),
               "NSW_LOG_LEVEL": os.environ.get("NSW_TEST_HUB_LOG_LEVEL", "warning"),
               # as tests.conftest.FUNCTIONAL_LIMITS: the crash test lodges thousands as one trader
               "NSW_RATE_LIMIT": "100000", "NSW_RATE_BURST": "100000", "NSW_MAX_IN_FLIGHT_PER_TRADER": "100000"}
        with self._log.open("ab") as log:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "broker._cli", "serve", "--bundle", f"hmrc-cds={HMRC_SCHEMAS}", *self._args],
                env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        self.starts += 1

    async def start(self, *, timeout: float = 60) -> None:
        await asyncio.to_thread(self._spawn)
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(timeout=2) as client:
            while time.monotonic() < deadline:
                assert self._proc is not None
                if self._proc.poll() is not None:
                    raise AssertionError(f"hub exited with {self._proc.returncode}; see {self._log}")
                try:
                    if (await client.get(f"{self.url}/healthz")).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.05)
        raise AssertionError(f"hub did not answer within {timeout} s")

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    @property
    def headers(self) -> dict[str, str]:
        """Authorization as the development trader (the key the hub wrote on its first start)."""
        token = read_dev_key(self.state_dir)
        assert token is not None
        return {"Authorization": f"Bearer {token}"}

    def kill(self) -> None:
        """SIGKILL: no shutdown path runs, open transactions are left for the next owner to abort."""
        assert self._proc is not None
        os.killpg(self._proc.pid, signal.SIGKILL)
        self._proc.wait()
        self.kills += 1

    async def stop(self) -> None:
        if self._proc is None or self._proc.poll() is not None:
            return
        self._proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.to_thread(self._proc.wait), timeout=30)
        except TimeoutError:
            self.kill()
