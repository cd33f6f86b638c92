"""IPR: marks matched as an officer reads them, and the TRIPS Art. 55 clock (pure, and in the adapter's handler)."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Sequence
from datetime import UTC, date, datetime
from typing import Any

import orjson
import pytest

from adapters.ipr import (
    BrandIndex,
    ClockSettings,
    IPREngine,
    Suspensions,
    add_working_days,
    due,
    follow_up,
    load_register,
    mark_key,
    open_suspensions,
)
from adapters.ipr._clock import end_of
from adapters.ipr._service import IPRAdapter
from broker._aggregate import apply_decision, apply_plan, check_decision, new_state
from broker._envelope import InMessage, OutMessage, avro_message
from broker._topics import IPR_NOTIFICATIONS, IPR_SUSPENSIONS, decisions_topic, requests_topic
from bus.memory import MemoryBus
from ops._security import Operation, ResourceType, acl_bindings, allows, principals
from routing import load_rules, route
from schemas import AGENCIES, AgencyDecision, AgencyRequest, Item, ItemDecision, RoutingPlan, Submission, registry

THURSDAY = date(2026, 11, 26)
INDEX = BrandIndex(load_register())


def ms(day: date, hour: int = 12) -> int:
    return int(datetime(day.year, day.month, day.day, hour, tzinfo=UTC).timestamp() * 1000)


# --- matching ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "written"),
    [
        ("ZENTRA chronograph", "ZENTRA"),
        ("zentra watches", "zentra"),
        ("Z\N{LATIN CAPITAL LETTER E WITH ACUTE}NTRA watch", "Z\N{LATIN CAPITAL LETTER E WITH ACUTE}NTRA"),
        ("Z3NTRA watch", "Z3NTRA"),  # 3 for E
        ("ZEN-TRA watch", "ZEN-TRA"),  # punctuation inside the mark
        ("Z E N T R A watch", "Z E N T R A"),  # spacing inside the mark
        ("Z.E.N.T.R.A.", "Z.E.N.T.R.A"),
        ("\N{FULLWIDTH LATIN CAPITAL LETTER Z}ENTRA", "\N{FULLWIDTH LATIN CAPITAL LETTER Z}ENTRA"),  # NFKD
        ("Z\N{CYRILLIC CAPITAL LETTER IE}NTRA", "Z\N{CYRILLIC CAPITAL LETTER IE}NTRA"),  # Cyrillic look-alike
        ("ZENTRA's best", "ZENTRA"),
    ],
)
def test_trivial_variants_of_a_mark_match(text: str, written: str) -> None:
    [(right, found)] = INDEX.matches(text)
    assert (right.brand, found) == ("ZENTRA", written)


@pytest.mark.parametrize(
    ("text", "brand"),
    [("K0RVANTE trainers", "KORVANTE"), ("N1MBRAQ earbuds", "NIMBRAQ"), ("NlMBRAQ earbuds", "NIMBRAQ"),
     ("NIMBRAQ", "NIMBRAQ"), ("$ORVANTE", None), ("0SPRELLA", "OSPRELLA"), ("05PRELLA", "OSPRELLA"),
     ("K0RVAN TE", "KORVANTE")],
)
def test_look_alike_characters(text: str, brand: str | None) -> None:
    assert [r.brand for r in INDEX.find(text)] == ([brand] if brand else [])


@pytest.mark.parametrize(
    "text",
    ["Zentralux wall clocks", "Azentra tools", "zentrad", "ZEN TRADE bags", "KORVANTES", "NIMBRA", "watches",
     "Nimbraqi phone"],
)
def test_no_hits_inside_longer_words(text: str) -> None:
    assert INDEX.find(text) == []


def test_look_alike_pairs_fold_both_sides() -> None:
    assert mark_key("Modern") == mark_key("Modem") == "modem"  # rn reads as m, in the mark and in the text
    assert mark_key("VVolf") == mark_key("Wolf")


def test_routing_sends_variants_to_ipr() -> None:
    item: Item = {"sequence": 1, "description": "Z3NTRA quartz wristwatches", "commodity_code": "91021100",
                  "origin_country": "HK", "cas_numbers": [], "documents": [], "quantity": None,
                  "quantity_unit": None, "net_mass_kg": None, "value": 10.0, "currency": "GBP"}
    sub: Submission = {"submission_id": "s", "version": 1, "kind": "DECLARATION", "received_at": 0, "bundle": "nsw",
                       "function_code": "9", "trader_reference": "LRN", "declaration_type": "IMZ",
                       "declarant_id": "GB1", "parties": [], "authorisations": [], "export_country": "HK",
                       "destination_country": "GB", "items": [item]}
    routes = route(sub, load_rules(on=THURSDAY))
    assert [(r["item"], r["rule"]) for r in routes["ipr"]] == [(1, "IPR-REGISTER")]


# --- the clock's dates ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "days", "expected"),
    [
        (date(2026, 11, 26), 10, date(2026, 12, 10)),  # Thursday -> Thursday two weeks on
        (date(2026, 11, 27), 10, date(2026, 12, 11)),  # Friday -> Friday
        (date(2026, 11, 28), 10, date(2026, 12, 11)),  # Saturday: counting starts on Monday
        (date(2026, 11, 29), 1, date(2026, 11, 30)),  # Sunday -> Monday
        (date(2026, 11, 27), 1, date(2026, 11, 30)),  # Friday -> Monday
        (date(2026, 12, 10), 10, date(2026, 12, 24)),  # the extension
        (date(2026, 11, 26), 0, date(2026, 11, 26)),
    ],
)
def test_working_days_skip_weekends(start: date, days: int, expected: date) -> None:
    assert add_working_days(start, days) == expected


def test_negative_days_are_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        add_working_days(THURSDAY, -1)


def test_the_holder_may_notify_on_the_last_day() -> None:
    assert end_of(date(2026, 12, 10)) == ms(date(2026, 12, 11), 0)


# --- the clock on a record -----------------------------------------------------------------------------


def ipr_request(items: list[tuple[int, str, str]], *, sid: str = "sub-ipr", declarant: str = "GB1") -> AgencyRequest:
    return {"request_id": f"{sid}:1:ipr", "submission_id": sid, "version": 1, "agency": "ipr", "requested_at": 0,
            "trader_reference": "LRN-1", "declaration_type": "IMZ", "declarant_id": declarant, "parties": [],
            "authorisations": [], "export_country": "HK", "destination_country": "GB",
            "items": [{"sequence": seq, "description": text, "commodity_code": code, "origin_country": "HK",
                       "cas_numbers": [], "documents": [], "quantity": None, "quantity_unit": None,
                       "net_mass_kg": None, "value": 10.0, "currency": "GBP"} for seq, code, text in items],
            "reasons": []}


TWO_ITEMS = [(1, "91021100", "Z3NTRA watches"), (2, "64039900", "plain leather shoes")]


def suspended(settings: ClockSettings | None = None) -> tuple[AgencyDecision, Suspensions]:
    settings = settings or ClockSettings()
    req = ipr_request(TWO_ITEMS)
    items, found = IPREngine().examine(req, today=THURSDAY)
    decision: AgencyDecision = {"decision_id": f"{req['request_id']}:ref", "submission_id": req["submission_id"],
                                "version": 1, "agency": "ipr", "decided_at": ms(THURSDAY), "items": items,
                                "agency_reference": "IPR-X", "request_id": req["request_id"]}
    record = open_suspensions(decision, found, now=ms(THURSDAY), settings=settings)
    assert record is not None
    return decision, record


def officer(record: Suspensions, item: ItemDecision) -> AgencyDecision:
    return {"decision_id": "officer-1", "submission_id": record["submission_id"], "version": 1, "agency": "ipr",
            "decided_at": 0, "items": [item], "request_id": record["request_id"]}


def hold(code: str, until: str | None = None) -> ItemDecision:
    return {"sequence": 1, "outcome": "HOLD", "code": code, "reason": "officer", "hold_reason": "IPR_SUSPENSION",
            "valid_until": until}


def test_suspension_then_release_after_the_time_limit() -> None:
    first, record = suspended()
    assert [(i["outcome"], i["code"], i["valid_until"]) for i in first["items"]] == [
        ("HOLD", "H01", "2026-12-10"), ("RELEASE", "C01", None)]
    assert "written 'Z3NTRA'" in first["items"][0]["reason"]
    assert due(record, now=ms(date(2026, 12, 10), 23)) is None  # still the last day
    release = due(record, now=ms(date(2026, 12, 11), 0))
    assert release is not None
    assert release["request_id"] == first["request_id"]
    assert release["decision_id"] == f"{first['request_id']}:art55:1"
    assert [(i["sequence"], i["outcome"], i["code"]) for i in release["items"]] == [
        (1, "RELEASE", "C04"), (2, "RELEASE", "C01")]  # every item: the decision replaces the previous one
    assert due(record, now=ms(date(2026, 12, 20))) is None  # once


def test_proceedings_stop_the_clock() -> None:
    _, record = suspended()
    assert follow_up(record, officer(record, hold("H02")), now=0, settings=ClockSettings()) == ["1:proceedings"]
    assert due(record, now=ms(date(2027, 1, 30))) is None
    assert record["items"][0]["code"] == "H02"


def test_one_extension_of_ten_working_days() -> None:
    _, record = suspended()
    changes = follow_up(record, officer(record, hold("H03", "2026-12-24")), now=0, settings=ClockSettings())
    assert changes == ["1:extended:2026-12-24"]
    assert due(record, now=ms(date(2026, 12, 11))) is None
    again = follow_up(record, officer(record, hold("H03", "2027-01-08")), now=0, settings=ClockSettings())
    assert again == ["1:extension-refused"]
    assert record["clocks"]["1"]["valid_until"] == "2026-12-24"
    release = due(record, now=ms(date(2026, 12, 25)))
    assert release is not None
    assert release["items"][0]["code"] == "C04"


def test_officer_release_ends_the_clock_and_other_requests_are_ignored() -> None:
    _, record = suspended()
    other = officer(record, hold("H03"))
    other["request_id"] = "sub-ipr:2:ipr"
    assert follow_up(record, other, now=0, settings=ClockSettings()) == []
    released: ItemDecision = {"sequence": 1, "outcome": "RELEASE", "code": "C05", "reason": "inspected",
                              "hold_reason": None, "valid_until": None}
    assert follow_up(record, officer(record, released), now=0, settings=ClockSettings()) == ["1:ended"]
    assert due(record, now=ms(date(2027, 1, 30))) is None


def test_the_timers_release_is_accepted_by_the_aggregator() -> None:
    first, record = suspended()
    plan: RoutingPlan = {"submission_id": "sub-ipr", "version": 1, "routed_at": 0, "received_at": 0,
                         "trader_reference": "LRN-1", "declarant_id": "GB1", "item_sequences": [1, 2],
                         "agencies": [{"agency": "ipr", "request_id": "sub-ipr:1:ipr",
                                       "reasons": [{"item": 1, "rule": "IPR", "why": "x"},
                                                   {"item": 2, "rule": "IPR", "why": "x"}]}]}
    state = new_state("sub-ipr")
    apply_plan(state, plan, now=0)
    held = apply_decision(state, first, now=1)
    assert held is not None
    assert held["outcome"] == "HOLD"
    release = due(record, now=ms(date(2026, 12, 11), 1))
    assert release is not None
    assert check_decision(plan, release, agency="ipr") is None
    answer = apply_decision(state, release, now=2)
    assert answer is not None
    assert answer["outcome"] == "RELEASE"


# --- the adapter's handler and timer (no broker: the changelog records are returned, not written) ------


class Clock:
    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def synchronous(result: Sequence[OutMessage] | Awaitable[Sequence[OutMessage]]) -> Sequence[OutMessage]:
    """The adapter's answer when all it needs is in memory: given at once, not awaited."""
    assert not inspect.isawaitable(result)
    return result


def message(out: OutMessage, *, partition: int = 0) -> InMessage:
    return InMessage(topic=out.topic, partition=partition, offset=0, timestamp=0, key=out.key, value=out.value,
                     headers=out.headers)


def decoded(out: OutMessage) -> dict[str, Any]:
    _, record = registry().decode(out.value, "AgencyDecision")
    return dict(record)


def test_adapter_writes_decision_notice_and_changelog_together_and_the_timer_releases() -> None:
    clock = Clock(ms(THURSDAY))
    adapter = IPRAdapter(bootstrap="127.0.0.1:1", clock=clock)
    req = ipr_request(TWO_ITEMS)
    out = synchronous(adapter(message(avro_message(requests_topic("ipr"), "AgencyRequest", req))))
    assert [o.topic for o in out] == [decisions_topic("ipr"), IPR_NOTIFICATIONS, IPR_SUSPENSIONS]
    notice = orjson.loads(out[1].value)
    assert (notice["right_id"], notice["holder_id"], notice["submission_id"], notice["item"]) == (
        "TM-2021-0001", "CH-ZEN-0001", "sub-ipr", 1)
    assert (notice["deadline"], notice["extendable_to"]) == ("2026-12-10", "2026-12-24")
    assert synchronous(adapter.tick(0, ms(date(2026, 12, 10)))) == []
    # its own decision coming back on the decisions topic changes nothing
    assert synchronous(adapter(message(out[0]))) == []
    ticked = synchronous(adapter.tick(0, ms(date(2026, 12, 11), 1)))
    assert [(o.topic, bool(o.value)) for o in ticked] == [(decisions_topic("ipr"), True), (IPR_SUSPENSIONS, False)]
    assert adapter.store.get("sub-ipr") is None  # settled: forgotten
    release = decoded(ticked[0])
    assert (release["request_id"], [i["code"] for i in release["items"]]) == ("sub-ipr:1:ipr", ["C04", "C01"])
    assert synchronous(adapter.tick(0, ms(date(2026, 12, 12)))) == []


def test_adapter_takes_an_extension_from_the_decisions_topic_and_forgets_on_cancellation() -> None:
    adapter = IPRAdapter(bootstrap="127.0.0.1:1", clock=Clock(ms(THURSDAY)))
    synchronous(adapter(message(avro_message(requests_topic("ipr"), "AgencyRequest", ipr_request(TWO_ITEMS)))))
    record = adapter.store.get("sub-ipr")
    assert record is not None
    extension = officer(record, hold("H03", "2026-12-24"))
    extended = synchronous(adapter(message(avro_message(decisions_topic("ipr"), "AgencyDecision", extension))))
    assert [o.topic for o in extended] == [IPR_SUSPENSIONS]
    assert synchronous(adapter.tick(0, ms(date(2026, 12, 11), 1))) == []
    cancel = ipr_request(TWO_ITEMS)
    cancel["kind"] = "CANCELLATION"
    gone = synchronous(adapter(message(avro_message(requests_topic("ipr"), "AgencyRequest", cancel))))
    assert [(o.topic, o.value) for o in gone] == [(IPR_SUSPENSIONS, b"")]
    assert synchronous(adapter.tick(0, ms(date(2027, 1, 30)))) == []


def test_short_deadline_by_configuration() -> None:
    settings = ClockSettings(deadline_ms=1000)
    _, record = suspended(settings)
    assert record["clocks"]["1"]["valid_until"] == "2026-12-10"  # the legal date is still what is shown
    assert due(record, now=ms(THURSDAY) + 999) is None
    assert due(record, now=ms(THURSDAY) + 1000) is not None


# --- least privilege for the IPR topics ----------------------------------------------------------------


def test_only_the_ipr_adapter_writes_notices_and_suspensions_and_only_the_ipr_authority_reads_notices() -> None:
    policy, topic = acl_bindings(AGENCIES), ResourceType.TOPIC
    everyone = principals(AGENCIES)[1:]  # the admin (super user) needs no ACL

    def who(operation: Operation, name: str) -> set[str]:
        return {p for p in everyone if allows(policy, p, operation, topic, name)}

    assert who(Operation.WRITE, IPR_NOTIFICATIONS) == who(Operation.WRITE, IPR_SUSPENSIONS) == {"nsw-adapter-ipr"}
    assert who(Operation.READ, IPR_NOTIFICATIONS) == {"agency-ipr", "nsw-ops"}
    assert who(Operation.READ, IPR_SUSPENSIONS) == {"nsw-adapter-ipr", "nsw-ops"}
    assert "nsw-adapter-ipr" in who(Operation.READ, decisions_topic("ipr"))
    assert "nsw-adapter-sps" not in who(Operation.READ, decisions_topic("sps"))


# --- open suspensions leave memory after the retention; the timer reads them back when due ---------------


def _written(bus: MemoryBus, out: OutMessage) -> InMessage:
    """``out`` as committed and read back from the bus (the changelog a read-back finds)."""
    bus.commit([(out, 0)])
    return bus.partitions_of(out.topic)[0][-1]


async def _answer(result: Any) -> Any:
    return await result if inspect.isawaitable(result) else result


def _bounded_adapter(clock: Clock, bus: MemoryBus) -> IPRAdapter:
    return IPRAdapter(bootstrap="127.0.0.1:1", clock=clock, bus=bus, retain_seconds=60, max_resting=1000)


@pytest.mark.asyncio
async def test_open_suspensions_leave_memory_and_the_timer_reads_each_back_when_due() -> None:
    clock = Clock(ms(THURSDAY))
    bus = MemoryBus(clock=clock)
    adapter = _bounded_adapter(clock, bus)
    for n in range(30):
        req = ipr_request(TWO_ITEMS, sid=f"sub-{n}")
        for out in synchronous(adapter(message(avro_message(requests_topic("ipr"), "AgencyRequest", req)))):
            if out.topic == IPR_SUSPENSIONS:
                _written(bus, out)
    assert (len(adapter.store), len(adapter.store.timers)) == (30, 0)  # younger than the retention: in memory
    clock.now += 61_000
    assert list(adapter.store.in_partition(0)) == []  # the walk lets them go: open, but past the retention
    assert (len(adapter.store), len(adapter.store.timers), adapter.store.evicted) == (0, 30, 30)
    assert synchronous(adapter.tick(0, ms(date(2026, 12, 10)))) == []  # not due yet: nothing read back, synchronous
    assert len(bus.partitions_of(IPR_SUSPENSIONS)[0]) == 30  # nothing written by evicting
    ticked = await _answer(adapter.tick(0, ms(date(2026, 12, 11), 1)))
    releases = [decoded(o) for o in ticked if o.topic == decisions_topic("ipr")]
    assert sorted(r["submission_id"] for r in releases) == sorted(f"sub-{n}" for n in range(30))
    assert {tuple(i["code"] for i in r["items"]) for r in releases} == {("C04", "C01")}
    assert [o.value for o in ticked if o.topic == IPR_SUSPENSIONS] == [b""] * 30  # settled: tombstones
    assert (len(adapter.store), len(adapter.store.timers)) == (0, 0)
    assert await _answer(adapter.tick(0, ms(date(2026, 12, 12)))) == []


@pytest.mark.asyncio
async def test_a_follow_up_for_a_suspension_out_of_memory_reads_it_back_first() -> None:
    clock = Clock(ms(THURSDAY))
    bus = MemoryBus(clock=clock)
    adapter = _bounded_adapter(clock, bus)
    out = synchronous(adapter(message(avro_message(requests_topic("ipr"), "AgencyRequest", ipr_request(TWO_ITEMS)))))
    record = adapter.store.get("sub-ipr")
    assert record is not None
    _written(bus, next(o for o in out if o.topic == IPR_SUSPENSIONS))
    clock.now += 61_000
    list(adapter.store.in_partition(0))
    assert (adapter.store.get("sub-ipr"), adapter.store.needs_load("sub-ipr")) == (None, True)
    extension = officer(record, hold("H03", "2026-12-24"))
    answered = adapter(message(avro_message(decisions_topic("ipr"), "AgencyDecision", extension)))
    assert inspect.isawaitable(answered)  # the suspension is read back before the decision is applied
    assert [o.topic for o in await answered] == [IPR_SUSPENSIONS]
    kept = adapter.store.get("sub-ipr")
    assert kept is not None
    assert kept["clocks"]["1"]["extended"] is True
    assert len(adapter.store.timers) == 0  # in memory again: its timer is walked, not looked up
    assert await _answer(adapter.tick(0, ms(date(2026, 12, 11), 1))) == []  # extended: not due any more
