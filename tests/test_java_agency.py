"""Proof in another language: an agency and a trader's reader in Java, on the real Kafka and a real hub.

The program (adapters/examples/java-agency, built by ``make install``) uses only the official Kafka client,
Apache Avro's single-object codec and the published ``.avsc`` files: none of the hub's code. The SPS agency
runs in topic mode here, so the Java agency's decision is the SPS decision the hub aggregates; it holds every
item for inspection, which the hub's own SPS rules would not do for this sample, so the response shows whose
decision it is.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from broker import requests_topic
from broker._envelope import InMessage, avro_message, header
from broker._topics import TopicSpec
from bus import Producer, ensure_topics, read_to_end
from schemas import registry
from schemas.errors import UnknownSchemaError
from tests.conftest import bootstrap, poll, sample, topic_mode_client
from tests.test_bridge import sps_request

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]
PROJECT = ROOT / "adapters" / "examples" / "java-agency"
CLASSPATH = f"{PROJECT / 'target' / 'classes'}:{PROJECT / 'target' / 'lib' / '*'}"
AVSC = ROOT / "schemas" / "avro"
#: What the hub sent for AgencyRequest before its fingerprints were the specification's (no Avro library agrees).
LEGACY_AGENCY_REQUEST_FINGERPRINT = bytes.fromhex("d226cb1637ef48c0")
TOP_LEVEL = ("AgencyRequest", "AgencyDecision", "ReleaseResponse", "RoutingPlan", "Submission", "InspectionResult")


def java(mode: str, *args: str) -> list[str]:
    return ["java", "-cp", CLASSPATH, "org.nsw.example.JavaAgency", "--mode", mode, "--schemas", str(AVSC),
            "--bootstrap", bootstrap(), *args]


async def start(command: list[str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(*command, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL)


async def stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), timeout=15)
        except TimeoutError:
            process.kill()
            await process.wait()


async def run(command: list[str], *, timeout: float) -> tuple[int, str, str]:
    """Runs a Java command to its end: (exit status, stdout, stderr)."""
    process = await start(command)
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout=timeout)
    finally:
        await stop(process)
    assert process.returncode is not None
    return process.returncode, out.decode(errors="replace"), err.decode(errors="replace")


async def next_event(process: asyncio.subprocess.Process, *, timeout: float, what: str) -> dict[str, Any]:
    """The Java agency's next JSON line on stdout, within ``timeout`` seconds."""
    assert process.stdout is not None
    try:
        line = await asyncio.wait_for(process.stdout.readline(), timeout=timeout)
    except TimeoutError:
        raise AssertionError(f"timed out after {timeout} s waiting for {what}") from None
    if not line:
        assert process.stderr is not None
        err = (await process.stderr.read()).decode(errors="replace")
        raise AssertionError(f"the Java agency ended (status {await process.wait()}) before {what}: {err}")
    event: dict[str, Any] = json.loads(line)
    return event


def test_java_computes_the_hub_fingerprints_from_the_published_files() -> None:
    done = subprocess.run(java("fingerprints"), capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    computed: dict[str, str] = json.loads(done.stdout)
    for name in TOP_LEVEL:
        assert computed[f"nsw.v1.{name}"] == registry().get(name).fingerprint.hex(), name
    assert computed["nsw.v1.AgencyRequest"] != LEGACY_AGENCY_REQUEST_FINGERPRINT.hex()
    for full, fingerprint in computed.items():  # every other record the hub knows by name agrees too
        try:
            known = registry().get(full.rpartition(".")[2])
        except UnknownSchemaError:  # the trader's DeclarationSubmission: the hub reads it, never writes it
            continue
        assert fingerprint == known.fingerprint.hex(), full


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def sps_topic_client() -> AsyncIterator[httpx.AsyncClient]:
    async with topic_mode_client("sps") as client:  # the hub runs no SPS adapter: the Java system decides
        yield client


@pytest.mark.asyncio(loop_scope="module")
async def test_java_agency_decision_reaches_the_release_response_and_java_trader_reads_it(
        sps_topic_client: httpx.AsyncClient) -> None:
    client = sps_topic_client
    group = f"agency-sps-test-{uuid.uuid4().hex[:8]}"  # a fresh group: older runs' requests stay unread
    agency = await start(java("agency", "--agency", "sps", "--group", group, "--offset-reset", "latest",
                              "--outcome", "HOLD", "--max", "1", "--timeout-s", "120"))
    trader: asyncio.subprocess.Process | None = None
    try:
        ready = await next_event(agency, timeout=60, what="the Java agency's partitions")
        assert (ready["event"], ready["topic"], ready["group"]) == ("ready", requests_topic("sps"), group)
        since_ms = int(time.time() * 1000) - 1000
        lodged = await client.post("/v1/submissions", content=sample("plants-sps.xml"),
                                   headers={"Content-Type": "application/xml"})
        assert lodged.status_code == 202, lodged.text
        sid = lodged.json()["submission_id"]

        decided = await next_event(agency, timeout=90, what="the Java agency's decision")
        assert (decided["event"], decided["submission_id"]) == ("decided", sid)
        decision = decided["decision"]
        assert decision["request_id"] == decided["request_id"]
        assert decision["decision_id"] == f"{decided['request_id']}:java"
        assert decision["agency_reference"] == f"JAVA-{sid}-1"
        assert [(i["sequence"], i["outcome"], i["code"]) for i in decision["items"]] == [(1, "HOLD", "H01")]
        assert await asyncio.wait_for(agency.wait(), timeout=30) == 0  # --max 1: done after one decision

        async def answered() -> dict[str, Any] | None:
            body: dict[str, Any] = (await client.get(f"/v1/submissions/{sid}")).json()
            return body if body["response"] is not None else None

        body = await poll(answered, timeout=60, what="the release response with the Java agency's decision")
        response = body["response"]
        assert body["status"] == "held"
        assert (response["outcome"], response["function_code"]) == ("HOLD", "05")  # held for inspection
        sps = [a for a in response["agencies"] if a["agency"] == "sps"]
        assert [(a["decision_id"], a["agency_reference"], a["outcome"]) for a in sps] == [
            (decision["decision_id"], f"JAVA-{sid}-1", "HOLD")]

        trader = await start(java("trader", "--since-ms", str(since_ms), "--submission", sid, "--timeout-s", "90"))
        out, err = await asyncio.wait_for(trader.communicate(), timeout=120)
        assert trader.returncode == 0, err.decode(errors="replace")
        read = [json.loads(line) for line in out.decode().splitlines()]
        mine = [r for r in read if r["submission_id"] == sid]
        assert mine, f"the Java trader reader printed no response for {sid}: {read}"
        java_view = mine[-1]
        for field in ("response_id", "submission_id", "version", "response_version", "trader_reference",
                      "outcome", "function_code", "invalidated", "trader"):
            assert java_view[field] == response[field], field
        assert [(a["agency"], a["outcome"], a["decision_id"], a["agency_reference"]) for a in java_view["agencies"]] \
            == [(a["agency"], a["outcome"], a["decision_id"], a["agency_reference"]) for a in response["agencies"]]
        assert [(i["sequence"], i["outcome"]) for i in java_view["items"]] \
            == [(i["sequence"], i["outcome"]) for i in response["items"]]
    finally:
        await stop(agency)
        if trader is not None:
            await stop(trader)


async def _all(topic: str) -> list[InMessage]:
    found: list[InMessage] = []
    await read_to_end(bootstrap(), [(topic, 0)], found.append)
    return found


@pytest.mark.asyncio(loop_scope="module")
async def test_java_agency_stops_on_an_unknown_fingerprint_and_loses_nothing() -> None:
    run_id = uuid.uuid4().hex[:8]
    agency = f"jfp{run_id}"
    requests, decisions = f"nsw.agency.{agency}.requests", f"nsw.agency.{agency}.decisions"
    await ensure_topics(bootstrap(), [TopicSpec(name=n, partitions=1, replication=1) for n in (requests, decisions)])

    def request(n: int, kind: str = "DECLARATION") -> dict[str, Any]:
        sid = f"01JJAVAFP{run_id}{n:04d}"
        return {**sps_request(sid, kind=kind), "agency": agency, "request_id": f"{sid}:1:{agency}:n{n}"}

    good, cancelled, old = request(1), request(2, "CANCELLATION"), request(3)
    stale = avro_message(requests, "AgencyRequest", old)  # as the hub wrote before its fingerprints were fixed
    stale_value = stale.value[:2] + LEGACY_AGENCY_REQUEST_FINGERPRINT + stale.value[10:]
    producer = Producer(bootstrap())
    await producer.start()
    try:
        for sent in (avro_message(requests, "AgencyRequest", good),
                     avro_message(requests, "AgencyRequest", cancelled), replace(stale, value=stale_value)):
            await producer.send(sent)
    finally:
        await producer.stop()

    command = java("agency", "--agency", agency, "--group", f"agency-{agency}", "--timeout-s", "90")
    status, out, err = await run(command, timeout=150)
    assert status == 3, (status, err)
    assert f"no published schema has fingerprint {LEGACY_AGENCY_REQUEST_FINGERPRINT.hex()}" in err
    events = [json.loads(line) for line in out.splitlines()]
    assert [(e["event"], e["request_id"]) for e in events if e["event"] != "ready"] == [
        ("decided", good["request_id"]), ("ignored", cancelled["request_id"])]

    written = await poll(lambda: _some(decisions), timeout=30, what="the Java agency's decision on its topic")
    assert len(written) == 1  # one decision: the cancellation is only acknowledged, the stale record not decided
    message = written[0]
    assert message.key == good["submission_id"].encode()
    assert header(message.headers, "nsw-schema") == b"nsw.v1.AgencyDecision"
    assert header(message.headers, "nsw-submission-id") == good["submission_id"].encode()
    assert header(message.headers, "nsw-version") == b"1"
    assert header(message.headers, "content-type") == b"avro/binary"
    assert message.value[2:10] == registry().get("AgencyDecision").fingerprint
    name, decoded = registry().decode(message.value, "AgencyDecision")  # the hub reads what Java wrote
    assert name == "nsw.v1.AgencyDecision"
    assert (decoded["decision_id"], decoded["request_id"]) == (f"{good['request_id']}:java", good["request_id"])
    assert (decoded["agency"], decoded["version"], decoded["agency_reference"]) == (
        agency, 1, f"JAVA-{good['submission_id']}-1")

    # The stale record's offset was not committed, the others were: a restart stops at it again, deciding nothing.
    status, out, err = await run(command, timeout=150)
    assert status == 3, (status, err)
    assert [json.loads(line)["event"] for line in out.splitlines()] in ([], ["ready"])
    assert len(await _all(decisions)) == 1


async def _some(topic: str) -> list[InMessage] | None:
    return await _all(topic) or None
