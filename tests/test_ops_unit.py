"""The pure parts of the operations tooling: partitioner, replay guard, redrive plan, trace order, tables."""

from __future__ import annotations

import io

import pytest

from broker._aggregate import AggregateState, new_state
from broker._envelope import InMessage
from broker._topics import AGGREGATE_STATE, DLQ, RESPONSES, ROUTING, SUBMISSIONS, decisions_topic, requests_topic
from bus import key_partition
from ops._cli import Progress, render_table
from ops._dlq import REDRIVEN_FROM_HEADER, DeadLetter, original_headers, plan_redrive, value_summary
from ops._replay import is_hub_topic, parse_time, replay_guard, replay_message
from ops._trace import TraceStep, order
from ops.errors import OpsConfigError
from schemas import AgencyDecision, registry


@pytest.mark.parametrize(
    ("key", "java_hash"),
    # Kafka's own reference values (clients UtilsTest.testMurmur2).
    [("21", -973932308), ("foobar", -790332482), ("a-little-bit-long-string", -985981536),
     ("a-little-bit-longer-string", -1486304829), ("lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
     ("abc", 479470107)],
)
def test_key_partition_is_kafkas_default_partitioner(key: str, java_hash: int) -> None:
    for partitions in (1, 6, 7, 100):
        assert key_partition(key.encode(), partitions) == (java_hash & 0x7FFFFFFF) % partitions


def _decision(agency: str, version: int) -> AgencyDecision:
    return {"decision_id": f"S:{version}:{agency}:ref", "submission_id": "S", "version": version, "agency": agency,
            "decided_at": 1, "items": [{"sequence": 1, "outcome": "RELEASE", "code": "R", "reason": "ok"}]}


def _state(*, version: int = 1, decided: tuple[str, ...] = (), answered: bool = False,
           status: str = "routed") -> AggregateState:
    state = new_state("S")
    state["version"] = version
    state["status"] = status
    state["decisions"] = {a: _decision(a, version) for a in decided}
    if answered:
        state["response"] = {"response_id": f"S:{version}:1", "submission_id": "S", "version": version,
                             "response_version": 1, "issued_at": 2, "received_at": 0, "trader_reference": "LRN",
                             "declarant_id": "D", "outcome": "RELEASE", "function_code": "08", "agencies": [],
                             "items": [], "invalidated": False}
    return state


def test_replay_guard_lets_unknown_and_undecided_records_through() -> None:
    assert replay_guard(SUBMISSIONS, 1, None) is None
    assert replay_guard(requests_topic("sps"), 1, _state(decided=("customs",))) is None
    assert replay_guard(ROUTING, 1, _state(decided=("customs",))) is None


def test_replay_guard_stops_what_would_be_decided_or_answered_twice() -> None:
    answered = _state(decided=("customs", "sps"), answered=True, status="released")
    assert "already answered" in (replay_guard(SUBMISSIONS, 1, answered) or "")
    assert "already answered" in (replay_guard(ROUTING, 1, answered) or "")
    assert "already answered" in (replay_guard(requests_topic("sps"), 1, answered) or "")
    pending = _state(decided=("customs",))
    assert replay_guard(requests_topic("customs"), 1, pending) == "customs already decided version 1"
    assert replay_guard(decisions_topic("customs"), 1, pending) == "customs already decided version 1"
    assert replay_guard(SUBMISSIONS, 1, pending) == "version 1 already decided by customs"
    assert "superseded" in (replay_guard(requests_topic("sps"), 1, _state(version=2)) or "")
    assert "cancelled" in (replay_guard(SUBMISSIONS, 1, _state(status="cancelled")) or "")


@pytest.mark.parametrize("topic", [RESPONSES, AGGREGATE_STATE, DLQ])
def test_replay_guard_never_writes_responses_state_or_dead_letters_in_place(topic: str) -> None:
    assert replay_guard(topic, None, None)


def test_hub_topics_are_told_from_shadow_topics() -> None:
    assert is_hub_topic(requests_topic("cwc"))
    assert is_hub_topic(SUBMISSIONS)
    assert not is_hub_topic("shadow.nsw.submissions")


def _message(topic: str = SUBMISSIONS, *, headers: tuple[tuple[str, bytes], ...] = (), value: bytes = b"x",
             offset: int = 7) -> InMessage:
    return InMessage(topic=topic, partition=0, offset=offset, timestamp=1, key=b"K", value=value, headers=headers)


def test_replay_message_keeps_key_value_and_headers_and_says_where_from() -> None:
    source = _message(headers=(("nsw-version", b"1"),), value=b"\x00\x01payload")
    out = replay_message(source, "shadow")
    assert (out.topic, out.key, out.value) == ("shadow", b"K", b"\x00\x01payload")
    assert out.headers == (("nsw-version", b"1"), ("nsw-replayed-from", b"nsw.submissions/0/7"))


def _letter(offset: int = 3, *, source: str | None = SUBMISSIONS) -> DeadLetter:
    headers: tuple[tuple[str, bytes], ...] = (("nsw-schema", b"nsw.v1.Submission"), ("nsw-version", b"1"),
                                              ("nsw-error-type", b"AvroDecodeError"), ("nsw-attempts", b"1"))
    if source is not None:
        headers += (("nsw-source-topic", source.encode()), ("nsw-source-partition", b"2"))
    return DeadLetter.from_message(InMessage(topic=DLQ, partition=0, offset=offset, timestamp=1, key=b"K",
                                             value=b"garbage", headers=headers))


def test_redrive_sends_the_original_headers_back_and_refuses_twice() -> None:
    letter = _letter()
    assert original_headers(letter.headers) == (("nsw-schema", b"nsw.v1.Submission"), ("nsw-version", b"1"))
    [(_, message, reason)] = plan_redrive([letter], {}, force=False)
    assert message is not None
    assert reason == ""
    assert message.topic == SUBMISSIONS
    assert message.value == b"garbage"
    assert message.headers[-1] == (REDRIVEN_FROM_HEADER, b"3")
    ledger = {"3": {"topic": SUBMISSIONS, "partition": 2, "offset": 99}}
    [(_, refused, why)] = plan_redrive([letter], ledger, force=False)
    assert refused is None
    assert "already redriven" in why
    [(_, forced, _)] = plan_redrive([letter], ledger, force=True)
    assert forced is not None


def test_redrive_refuses_a_dead_letter_without_source_or_already_answered() -> None:
    [(_, message, why)] = plan_redrive([_letter(source=None)], {}, force=False)
    assert message is None
    assert "nsw-source-topic" in why
    answered = {"K": _state(answered=True, status="released")}
    [(_, message, why)] = plan_redrive([_letter()], {}, force=False, states=answered)
    assert message is None
    assert "already answered" in why


def test_value_summary_names_the_record_but_not_its_content() -> None:
    assert value_summary(b"not avro")["avro"] is False
    decision = _decision("customs", 2)
    summary = value_summary(registry().encode("AgencyDecision", decision))
    assert summary["schema"] == "nsw.v1.AgencyDecision"
    assert (summary["submission_id"], summary["version"], summary["items_count"]) == ("S", 2, 1)
    assert "items" not in summary


def _step(at: int, step: str, topic: str) -> TraceStep:
    return TraceStep(at=at, kafka_timestamp=at, topic=topic, partition=0, offset=at, step=step, version=1,
                     agency=None, detail="")


def test_trace_order_is_by_time_then_pipeline_with_durations() -> None:
    steps = order([_step(30, "decided", "d"), _step(20, "requested", "r"), _step(20, "routed", ROUTING),
                   _step(10, "submitted", SUBMISSIONS)])
    assert [s.step for s in steps] == ["submitted", "routed", "requested", "decided"]
    assert [s.since_previous_ms for s in steps] == [0, 10, 0, 10]
    assert [s.since_first_ms for s in steps] == [0, 10, 10, 20]


def test_render_table_aligns_columns() -> None:
    text = render_table(["name", "n"], [("a", 1), ("bbb", 22), ("c", None)])
    assert text.splitlines() == ["name   n", "----  --", "a      1", "bbb   22", "c      -"]


def test_parse_time_reads_iso_and_defaults_to_utc() -> None:
    assert parse_time("1970-01-01T00:00:01") == 1000
    assert parse_time("1970-01-01T01:00:01+01:00") == 1000
    with pytest.raises(OpsConfigError):
        parse_time("yesterday")


class _Terminal(io.StringIO):
    def __init__(self, *, tty: bool) -> None:
        super().__init__()
        self._tty = tty

    def isatty(self) -> bool:
        return self._tty


def test_progress_bar_only_on_a_terminal_and_only_for_long_replays() -> None:
    terminal = _Terminal(tty=True)
    bar = Progress(terminal, label="replay")
    bar(5, 10)  # short: no bar
    assert terminal.getvalue() == ""
    bar(50, 200)
    bar(200, 200)
    bar.close()
    assert terminal.getvalue().split("\r")[1:] == [
        "replay [#######.......................] 50/200", "replay [##############################] 200/200\n"]
    piped = _Terminal(tty=False)
    Progress(piped, label="replay")(200, 200)
    assert piped.getvalue() == ""
