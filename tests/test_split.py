"""``nsw serve --split auditor``: the auditor in a child process does its work, and never outlives the hub."""

from __future__ import annotations

import os
import signal
import uuid
from pathlib import Path

import httpx
import pytest

from broker._topics import AUDIT
from bus import read_to_end
from tests.conftest import bootstrap, poll, sample
from tests.hubproc import HubProcess
from tests.test_hub_e2e import final_status

pytestmark = [pytest.mark.integration]


def children_of(pid: int) -> list[int]:
    """The live child processes of ``pid`` (from /proc; zombies left out)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(entry.name))
    return found


async def audited(sid: str) -> list[str] | None:
    kinds: list[str] = []

    def keep(message: object) -> None:
        if getattr(message, "key", None) == sid.encode():
            kinds.append(getattr(message, "topic", ""))

    await read_to_end(bootstrap(), [(AUDIT, p) for p in range(6)], keep)
    return kinds if len(kinds) >= 4 else None  # submission, routing, decision(s), response


async def test_split_auditor_chains_in_a_child_that_dies_with_the_hub(tmp_path: Path) -> None:
    hub = HubProcess(bootstrap=bootstrap(), log=tmp_path / "hub.log", args=["--split", "auditor"])
    await hub.start()
    try:
        child = await poll(lambda: _one_child(hub.pid), timeout=30, what="the auditor's child process")
        async with httpx.AsyncClient(base_url=hub.url, timeout=30, headers=hub.headers) as client:
            posted = await client.post("/v1/submissions", content=sample("plain-goods.xml",
                                                                          reference=f"SPLIT-{uuid.uuid4().hex[:20]}"),
                                       headers={"Content-Type": "application/xml"})
            assert posted.status_code == 202, posted.text
            sid = posted.json()["submission_id"]
            await final_status(client, sid)
        await poll(lambda: audited(sid), timeout=90, what="audit entries written by the child")

        os.kill(hub.pid, signal.SIGKILL)  # the parent alone: no shutdown path runs
        await poll(lambda: _gone(child), timeout=30, what="the child's end after its parent was killed")
    finally:
        await hub.stop()


async def _one_child(pid: int) -> int | None:
    found = children_of(pid)
    return found[0] if len(found) == 1 else None


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


async def _gone(pid: int) -> bool | None:
    return None if alive(pid) else True
