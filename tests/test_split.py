"""``nsw serve --split router,adapters,aggregator --split auditor``: the fused core and the auditor each in a child
process of their own do their work (the parent serves the ingress), and neither outlives the hub."""

from __future__ import annotations

import os
import signal
import uuid
from pathlib import Path

import httpx
import pytest

from broker._topics import AUDIT
from bus import read_to_end
from tests.conftest import bootstrap, expected_outcomes, poll, sample
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


async def test_the_core_and_the_auditor_work_in_children_that_die_with_the_hub(tmp_path: Path) -> None:
    hub = HubProcess(bootstrap=bootstrap(), log=tmp_path / "hub.log",
                     args=["--split", "router,adapters,aggregator", "--split", "auditor"])
    await hub.start()
    try:
        children = await poll(lambda: _children(hub.pid, 2), timeout=30, what="the core's and the auditor's processes")
        assert {_only(pid) for pid in children} == {"adapters,aggregator,router", "auditor"}
        async with httpx.AsyncClient(base_url=hub.url, timeout=30, headers=hub.headers) as client:
            posted = await client.post("/v1/submissions", content=sample("plain-goods.xml",
                                                                          reference=f"SPLIT-{uuid.uuid4().hex[:20]}"),
                                       headers={"Content-Type": "application/xml"})
            assert posted.status_code == 202, posted.text
            sid = posted.json()["submission_id"]
            await final_status(client, sid)  # decided by the core in its child: the parent runs no engine
            answer = (await client.get(f"/v1/submissions/{sid}/response")).json()
            assert answer["outcome"] == expected_outcomes()["plain-goods.xml"]["outcome"], answer
        await poll(lambda: audited(sid), timeout=90, what="audit entries written by the auditor's child")

        os.kill(hub.pid, signal.SIGKILL)  # the parent alone: no shutdown path runs
        await poll(lambda: _all_gone(children), timeout=30, what="both children gone after their parent was killed")
    finally:
        await hub.stop()


async def _children(pid: int, count: int) -> list[int] | None:
    found = children_of(pid)
    return found if len(found) == count else None


def _only(pid: int) -> str:
    """The services a child runs, from its command line (``--only A,B``)."""
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    return argv[argv.index(b"--only") + 1].decode()


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


async def _all_gone(pids: list[int]) -> bool | None:
    return None if any(map(alive, pids)) else True
