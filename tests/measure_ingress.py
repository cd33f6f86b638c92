"""The figures of the ingress hardening, measured on a hub in its own process (``nsw serve --only ingress``).

``python -m tests.measure_ingress`` (with NSW_BOOTSTRAP pointing at a running Kafka) prints:

* the hub process's CPU seconds and the answer for each hostile body class (from tests/hostile.py);
* an honest trader's small-submission latency alone, while three hostile 5 MB bodies are validated
  (repeatedly), and while hundreds of connections trickle request heads and bodies;
* the hub's peak RSS (VmHWM).

Not a test (the figures depend on the machine); the README quotes a run. It lodges some 400 declarations
that no router picks up: a hub started on the same broker within five minutes sees them as its backlog
(``503 overloaded`` beyond NSW_MAX_BACKLOG) until its router has routed them.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from broker._ingress import submission_budget
from tests import hostile
from tests.conftest import bootstrap, sample
from tests.hubproc import HubProcess

XML = {"Content-Type": "application/xml"}
AVRO = {"Content-Type": "avro/binary"}
TICKS = os.sysconf("SC_CLK_TCK")
#: Just under what an Avro body may have (the message budget): the largest body the hub decodes.
UNDER_BUDGET = submission_budget(0) - 1000


#: Seconds between the bytes a trickling attacker sends.
ATTACK_PACE = 0.2

def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def honest(client: httpx.AsyncClient) -> float:
    started = time.monotonic()
    answer = await client.post("/v1/submissions", content=sample("plain-goods.xml"), headers=XML)
    assert answer.status_code == 202, answer.text
    return time.monotonic() - started


def summary(latencies: list[float]) -> str:
    ordered = sorted(latencies)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return (f"n={len(ordered)} median {statistics.median(ordered) * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms, "
            f"max {ordered[-1] * 1000:.0f} ms")


async def hostile_classes(hub: HubProcess, client: httpx.AsyncClient) -> None:
    classes: dict[str, tuple[Callable[[], bytes], dict[str, str]]] = {
        **{name: (build, XML) for name, build in hostile.XML_BODIES.items()},
        **{name: (build, AVRO) for name, build in hostile.AVRO_BODIES.items()},
        "avro-empty-cas (1 MB)": (lambda: hostile.avro_empty_cas(UNDER_BUDGET), AVRO),
        "avro-many-items (1 MB)": (lambda: hostile.avro_many_items(UNDER_BUDGET), AVRO),
        "xml-over-budget": (hostile.xml_over_budget, XML),
        "xml-valid-large (accepted)": (hostile.xml_valid_large, XML),
    }
    for name, (build, headers) in classes.items():
        body = build()
        before, started = cpu_seconds(hub.pid), time.monotonic()
        answer = await client.post("/v1/submissions", content=body, headers=headers)
        wall, cpu = time.monotonic() - started, cpu_seconds(hub.pid) - before
        slug = answer.json().get("type", "").rsplit("/", 1)[-1] or "accepted"
        print(f"  {name:28} {len(body) / 1e6:5.2f} MB  {answer.status_code} {slug:18} "
              f"hub CPU {cpu:5.2f} s  answered in {wall:5.2f} s")


async def during_hostile(client: httpx.AsyncClient, rounds: int = 3) -> list[float]:
    bodies = [hostile.xml_unknown_hs(), hostile.xml_bad_pattern(), hostile.xml_unexpected_elements()]
    latencies: list[float] = []
    async with httpx.AsyncClient(base_url=str(client.base_url), headers=dict(client.headers), timeout=120) as bad:
        for _ in range(rounds):
            attacks = [asyncio.create_task(bad.post("/v1/submissions", content=b, headers=XML)) for b in bodies]
            while not all(a.done() for a in attacks):
                latencies.append(await honest(client))
            assert all(a.result().status_code == 422 for a in attacks)
    return latencies


async def during_trickling(hub: HubProcess, client: httpx.AsyncClient, connections: int = 200,
                           seconds: float = 8.0) -> list[float]:
    token = hub.headers["Authorization"].removeprefix("Bearer ")
    body = sample("plain-goods.xml")
    head = (f"POST /v1/submissions HTTP/1.1\r\nHost: hub\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: application/xml\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    stop = asyncio.Event()

    async def trickle(data: bytes) -> None:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", hub.port)
        except OSError:
            return
        try:
            for byte in data:
                if stop.is_set() or writer.is_closing():
                    return
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(ATTACK_PACE)  # the attacker's behaviour being measured, not a wait
        except ConnectionError:
            return
        finally:
            writer.close()

    tasks = [asyncio.create_task(trickle(head * 20)) for _ in range(connections // 2)]
    tasks += [asyncio.create_task(trickle(head + body)) for _ in range(connections // 2)]
    latencies: list[float] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        latencies.append(await honest(client))
        await asyncio.sleep(0.05)  # a trader's pace, not a wait for a result
    stop.set()
    await asyncio.gather(*tasks)
    return latencies


async def main() -> int:
    os.environ["NSW_MAX_BACKLOG"] = "1000000"  # nothing routes here: the backlog only grows
    log = Path(tempfile.mkdtemp(prefix="nsw-measure-")) / "hub.log"
    hub = HubProcess(bootstrap=bootstrap(), log=log, args=["--only", "ingress"])
    await hub.start()
    try:
        async with httpx.AsyncClient(base_url=hub.url, headers=hub.headers, timeout=120) as client:
            await honest(client)
            alone = [await honest(client) for _ in range(30)]
            print(f"honest submission alone: {summary(alone)}; hub peak RSS {peak_rss_mib(hub.pid):.0f} MiB")
            print("hostile bodies, one at a time:")
            await hostile_classes(hub, client)
            print(f"hub peak RSS after them: {peak_rss_mib(hub.pid):.0f} MiB")
            print(f"honest submission while 3 hostile 5 MB bodies are validated: "
                  f"{summary(await during_hostile(client))}; hub peak RSS {peak_rss_mib(hub.pid):.0f} MiB")
            print(f"honest submission while 200 connections trickle heads and bodies: "
                  f"{summary(await during_trickling(hub, client))}; hub peak RSS {peak_rss_mib(hub.pid):.0f} MiB")
    finally:
        await hub.stop()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
