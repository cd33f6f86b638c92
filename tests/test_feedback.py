"""The feedback loop, pure: inspection and tuning records, statistics, calibration, and the customs engine using
it. Nothing running; the Kafka side is tests/test_feedback_hub.py."""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest

from adapters import (
    FeedbackRecordError,
    FeedbackStats,
    inspection_message,
    inspection_result,
    parse_decision,
    read_inspection,
    read_tuning,
    tuning_message,
    tuning_record,
)
from adapters._feedback import DAY_MS, HOUR_MS, Counts
from adapters._inspections import TuningRecord, parse_tuning
from adapters.customs import (
    Calibration,
    CustomsEngine,
    CustomsFeedback,
    calibrate,
    check_tuning,
    random_draw,
    selection_draw,
)
from adapters.errors import DecisionFormatError
from broker._audit import Auditor, AuditTopics, verify_chain
from broker._envelope import InMessage, OutMessage, avro_message
from broker._topics import INSPECTIONS, RISK_TUNING, decisions_topic
from bus.memory import MemoryBus
from refdata import CustomsProfile, FeedbackSettings, customs_risk_settings
from schemas import InspectionResult
from tests.test_customs_engine import BASE, aeo, decide, item, request, rules

SETTINGS = FeedbackSettings(min_inspections=20, target_hit_rate=0.1, prior_inspections=10, lane_rate_bounds=(0.25, 1.0),
                            weight_factor_bounds=(0.5, 1.5), salt="s", why="feedback")
T0 = 1_767_225_600_000  # 2026-01-01T00:00Z


def inspection(*, finding: bool = False, selected_by: tuple[str, ...] = ("RED-SOFT",), at: int = T0,
               performed: bool = True, n: int = 0, **changes: Any) -> InspectionResult:
    fields: dict[str, Any] = {
        "agency": "customs", "submission_id": f"S-{n}", "version": 1, "request_id": f"S-{n}:1:customs:x",
        "items": [1], "performed": performed, "finding": finding, "finding_code": "F-MISDECLARED" if finding else "",
        "note": "", "officer": "customs/alice", "recorded_at": at, "selected_by": selected_by,
        "rules": ("CUSTOMS-ALL",), "lane": "red"}
    fields.update(changes)
    return inspection_result(**fields)


def incoming(out: OutMessage, offset: int = 0) -> InMessage:
    return InMessage(topic=out.topic, partition=0, offset=offset, timestamp=0, key=out.key, value=out.value,
                     headers=out.headers)


def counts(inspected: int, hits: int) -> Counts:
    return Counts(selected=inspected, inspected=inspected, hits=hits)


# --- records ----------------------------------------------------------------------------------------------


def test_an_inspection_result_round_trips_through_its_topic_record() -> None:
    result = inspection(finding=True, note="undeclared lithium cells")
    message = inspection_message(result)
    assert (message.topic, message.key) == (INSPECTIONS, b"S-0")
    assert read_inspection(incoming(message)) == result
    assert result["result_id"] == inspection(finding=True, note="undeclared lithium cells")["result_id"]  # stable


@pytest.mark.parametrize(
    ("changes", "paths"),
    [
        ({"finding": True, "performed": False}, {"/finding"}),
        ({"finding_code": "X"}, {"/finding_code"}),
        ({"items": []}, {"/items"}),
        ({"items": [1, 1]}, {"/items"}),
        ({"officer": "sps/bob"}, {"/officer"}),
        ({"officer": "alice"}, {"/officer"}),
        ({"note": "x" * 2001}, {"/note"}),
        ({"lane": "purple"}, {"/lane"}),
        ({"version": 0, "selected_by": ["", "P" * 65]}, {"/version", "/selected_by/0", "/selected_by/1"}),
    ],
)
def test_a_malformed_inspection_result_is_refused_field_by_field(changes: dict[str, Any], paths: set[str]) -> None:
    with pytest.raises(FeedbackRecordError) as caught:
        inspection(**changes)
    assert {e.path for e in caught.value.errors} == paths


def test_reading_an_inspection_refuses_what_is_not_one() -> None:
    good = inspection_message(inspection())
    for bad in (InMessage(INSPECTIONS, 0, 1, 0, b"S-0", b"not avro", ()),
                InMessage(INSPECTIONS, 0, 1, 0, b"OTHER", good.value, ())):
        with pytest.raises(FeedbackRecordError):
            read_inspection(bad)


def test_a_tuning_record_round_trips_and_a_tombstone_gives_the_profile_back() -> None:
    record = tuning_record(profile="RED-SOFT", status="retired", officer="customs/bob", at=T0, note="supplier fixed")
    message = tuning_message(record)
    assert (message.topic, message.key) == (RISK_TUNING, b"RED-SOFT")
    assert read_tuning(incoming(message)) == ("RED-SOFT", record)
    assert read_tuning(InMessage(RISK_TUNING, 0, 1, 0, b"RED-SOFT", b"", ())) == ("RED-SOFT", None)


@pytest.mark.parametrize(
    "value",
    [b"{not json", b"[1]", b'{"profile": "RED-SOFT", "status": "gone", "officer": "customs/b", "at": 1}',
     b'{"profile": "RED-SOFT", "status": "active", "officer": "customs/b", "at": 1, "rate": 1.5}',
     b'{"profile": "RED-SOFT", "status": "active", "officer": "customs/b", "at": "now"}',
     b'{"profile": "RED-SOFT", "status": "active", "officer": "customs/b", "at": 1, "admin": true}',
     b'{"profile": "OTHER", "status": "active", "officer": "customs/b", "at": 1}'],  # not the record's key
    ids=["not-json", "not-object", "status", "rate", "at", "unknown-field", "wrong-key"])
def test_a_malformed_tuning_record_is_refused(value: bytes) -> None:
    with pytest.raises(FeedbackRecordError):
        read_tuning(InMessage(RISK_TUNING, 0, 1, 0, b"RED-SOFT", value, ()))


def test_the_console_may_publish_only_tuning_within_the_bounds() -> None:
    settings = customs_risk_settings()
    ok = tuning_record(profile="RED-FIREWORKS", rate=0.5, officer="customs/bob", at=T0)
    assert check_tuning(ok, settings) == ok
    for bad, path in [(tuning_record(profile="RED-ARMS", status="retired", officer="customs/b", at=1), "/profile"),
                      (tuning_record(profile="NOPE", officer="customs/b", at=1), "/profile"),
                      (tuning_record(profile="RED-FIREWORKS", rate=0.1, officer="customs/b", at=1), "/rate"),
                      (tuning_record(profile="RED-FIREWORKS", weight_factor=1.0, officer="customs/b", at=1),
                       "/weight_factor"),
                      (tuning_record(profile="HIGH-VALUE", weight_factor=3.0, officer="customs/b", at=1),
                       "/weight_factor")]:
        with pytest.raises(FeedbackRecordError) as caught:
            check_tuning(bad, settings)
        assert [e.path for e in caught.value.errors] == [path]


def test_an_agency_may_say_what_selected_an_item_but_never_name_an_officer() -> None:
    body = {"submission_id": "S", "version": 1, "request_id": "r",
            "items": [{"sequence": 1, "outcome": "HOLD", "code": "H01", "reason": "r", "selected_by": ["P-1"]}]}
    assert parse_decision(body, agency="sps", received_at=1)["items"][0]["selected_by"] == ["P-1"]
    with pytest.raises(DecisionFormatError) as caught:
        parse_decision({**body, "decided_by": "sps/alice"}, agency="sps", received_at=1)
    assert [e.path for e in caught.value.errors] == ["/decided_by"]


# --- statistics -------------------------------------------------------------------------------------------


def test_stats_count_selections_inspections_and_hits_per_id_once() -> None:
    stats = FeedbackStats()
    stats.learn_selection("customs", ["RED-SOFT", "RANDOM"], T0, key="S-1:1")
    stats.learn_selection("customs", ["RED-SOFT", "B"], T0, key="S-1:1")  # a follow-up: only B is news
    stats.learn_selection("customs", ["RED-SOFT"], T0 + 1, key="S-2:1")
    hit = inspection(finding=True, n=1)
    for result in (hit, hit, inspection(n=2), inspection(n=3, performed=False)):
        stats.learn_inspection(result)
    soft = stats.counts("customs", "RED-SOFT")
    assert (soft.selected, soft.inspected, soft.hits, soft.hit_rate) == (2, 2, 1, 0.5)
    assert stats.counts("customs", "CUSTOMS-ALL").inspected == 2  # the routing rule is counted too
    assert stats.hit_rate("customs", "RANDOM") is None  # selected, never inspected
    assert stats.counts("customs", "B").selected == 1
    assert stats.ids("customs") == [("customs", "B"), ("customs", "CUSTOMS-ALL"), ("customs", "RANDOM"),
                                    ("customs", "RED-SOFT")]


def test_stats_series_by_day_and_hour_keep_a_bounded_window() -> None:
    stats = FeedbackStats(days=3, hours=2)
    for day in range(5):
        stats.learn_selection("customs", ["P"], T0 + day * DAY_MS + 5 * HOUR_MS)
        stats.learn_inspection(inspection(selected_by=("P",), at=T0 + day * DAY_MS + 5 * HOUR_MS, n=day,
                                          finding=day % 2 == 0))
    days = stats.series("customs", "P", "day")
    assert days == [(T0 + d * DAY_MS, 1, 1, int(d % 2 == 0)) for d in (2, 3, 4)]
    assert stats.series("customs", "P", "hour") == [(T0 + 4 * DAY_MS + 5 * HOUR_MS, 1, 1, 1)]
    assert stats.counts("customs", "P").selected == 5  # the totals keep everything
    stats.learn_selection("customs", ["P"], T0)  # older than the window: in the totals only
    assert stats.series("customs", "P", "day") == days
    assert stats.series("customs", "NONE", "day") == []


def test_stats_keep_at_most_max_ids() -> None:
    stats = FeedbackStats(max_ids=2)
    stats.learn_selection("customs", ["A", "B", "C"], T0)
    assert [k[1] for k in stats.ids()] == ["A", "B"]
    assert stats.ignored_ids == 1


# --- calibration ------------------------------------------------------------------------------------------

def profile(profile_id: str) -> CustomsProfile:
    found = rules().settings.profile(profile_id)
    assert found is not None
    return found


LANE, WEIGHTED, MANDATORY = profile("RED-SOFT"), profile("W-ORIGIN"), profile("RED-ARMS")


def test_no_adjustment_below_the_minimum_inspections() -> None:
    cal = calibrate(LANE, counts(19, 0), SETTINGS)
    assert (cal.rate, cal.source) == (1.0, "file")
    assert "below the 20 inspections" in cal.why
    assert calibrate(LANE, None, SETTINGS).rate == 1.0


def test_a_low_hit_rate_lowers_a_lane_profile_within_its_bounds() -> None:
    low = calibrate(LANE, counts(60, 2), SETTINGS)
    assert low.source == "calibrated"
    assert low.rate == pytest.approx(((2 + 10 * 0.1) / 70) / 0.1)  # smoothed 3/70 against the 10% target
    assert 0.25 < low.rate < 1.0
    assert low.why == "hit rate 2/60"
    assert calibrate(LANE, counts(1000, 0), SETTINGS).rate == 0.25  # never below the minimum
    assert calibrate(LANE, counts(60, 30), SETTINGS).rate == 1.0  # a lane profile is never above always


def test_weighted_profiles_scale_within_their_bounds() -> None:
    assert calibrate(WEIGHTED, counts(1000, 0), SETTINGS).weight_factor == 0.5
    assert calibrate(WEIGHTED, counts(1000, 900), SETTINGS).weight_factor == 1.5
    assert calibrate(WEIGHTED, counts(90, 9), SETTINGS).weight_factor == pytest.approx(1.0)


def test_mandatory_profiles_are_never_reduced_nor_retired() -> None:
    retire = tuning_record(profile="RED-ARMS", status="retired", officer="customs/b", at=1)
    for cal in (calibrate(MANDATORY, counts(1000, 0), SETTINGS), calibrate(MANDATORY, None, SETTINGS, tuning=retire)):
        assert (cal.rate, cal.retired, cal.source) == (1.0, False, "mandatory")


def test_a_retired_profile_never_selects_and_an_override_stays_within_bounds() -> None:
    retired = calibrate(LANE, counts(60, 30), SETTINGS,
                        tuning=tuning_record(profile="RED-SOFT", status="retired", officer="customs/b", at=1))
    assert (retired.retired, retired.rate, retired.why) == (True, 0.0, "retired by customs/b")
    fixed = calibrate(LANE, counts(1000, 0), SETTINGS,
                      tuning=tuning_record(profile="RED-SOFT", rate=0.6, officer="customs/b", at=1))
    assert (fixed.rate, fixed.source) == (0.6, "supervisor")
    too_low = tuning_record(profile="RED-SOFT", rate=0.01, officer="customs/b", at=1)  # from elsewhere
    assert calibrate(LANE, None, SETTINGS, tuning=too_low).rate == 0.25
    heavy = tuning_record(profile="W-ORIGIN", weight_factor=9.0, officer="customs/b", at=1)
    assert calibrate(WEIGHTED, None, SETTINGS, tuning=heavy).weight_factor == 1.5


def test_the_profile_draw_is_fixed_by_its_inputs() -> None:
    draw = selection_draw("s", "S-1", 1, 1, "RED-SOFT")
    assert draw == selection_draw("s", "S-1", 1, 1, "RED-SOFT")
    assert 0 <= draw < 1
    others = {selection_draw("s", "S-1", v, i, p) for v in (1, 2) for i in (1, 2) for p in ("RED-SOFT", "B")}
    assert len(others) == 8


# --- the engine with feedback ------------------------------------------------------------------------------


class Fixed:
    """A feedback provider with one calibration for one profile (the others from the file)."""

    def __init__(self, calibration: Calibration) -> None:
        self.fixed = calibration

    def calibration(self, profile: Any) -> Calibration:
        return self.fixed if profile.id == self.fixed.profile else Calibration(profile=profile.id)


def fireworks(n: int) -> Any:
    return request([item(code="36041000")], submission_id=f"S-{n}")


def test_the_engine_names_what_selected_an_item() -> None:
    held = decide(CustomsEngine(rules()), fireworks(0))
    assert (held["code"], held.get("selected_by")) == ("H01", ["RED-SOFT"])
    randomly = rules(random_selection={"rate": 1.0})
    picked = decide(CustomsEngine(randomly), request([item()]))
    assert (picked["code"], picked.get("selected_by")) == ("H03", ["RANDOM"])
    assert "selected_by" not in decide(CustomsEngine(rules()), request([item()]))  # nothing selected


def test_a_calibrated_lane_profile_selects_its_share_deterministically_and_says_when_not_drawn() -> None:
    cal = calibrate(LANE, counts(60, 2), SETTINGS)
    engine = CustomsEngine(rules(), feedback=Fixed(cal))
    decisions = [decide(engine, fireworks(n)) for n in range(400)]
    held = [d for d in decisions if d["outcome"] == "HOLD"]
    assert abs(len(held) / 400 - cal.rate) < 0.08
    assert decisions == [decide(engine, fireworks(n)) for n in range(400)]  # replays agree
    missed = next(d for d in decisions if d["outcome"] == "RELEASE")
    assert f"RED-SOFT matched; selected at its calibrated rate {cal.rate:.0%} (hit rate 2/60): not drawn" in \
        missed["reason"]
    assert "selected_by" not in missed


def test_a_retired_profile_releases_and_random_selection_still_measures() -> None:
    retired = Calibration(profile="RED-SOFT", rate=0.0, weight_factor=0.0, retired=True, source="retired",
                          why="retired by customs/bob")
    released = decide(CustomsEngine(rules(), feedback=Fixed(retired)), fireworks(1))
    assert released["code"] == "C01"
    assert "RED-SOFT matched; retired by customs/bob: not applied" in released["reason"]
    randomly = decide(CustomsEngine(rules(random_selection={"rate": 1.0}), feedback=Fixed(retired)), fireworks(1))
    assert (randomly["code"], randomly.get("selected_by")) == ("H03", ["RANDOM"])


def test_weights_are_scaled_in_the_score() -> None:
    doubled = Calibration(profile="HIGH-VALUE", weight_factor=1.5, source="calibrated", why="hit rate 40/60")
    costly = request([item(value=200_000.0)])
    plain = decide(CustomsEngine(rules()), costly)
    scaled = decide(CustomsEngine(rules(), feedback=Fixed(doubled)), costly)
    assert (plain["code"], scaled["code"]) == ("H02", "H02")  # 60 and 90: both yellow
    assert "+90 (x1.50: hit rate 40/60)" in scaled["reason"]
    assert scaled.get("selected_by") == ["HIGH-VALUE"]


def test_the_mandatory_profile_holds_whatever_the_feedback() -> None:
    feedback = CustomsFeedback(SETTINGS)
    for n in range(200):
        feedback.learn_inspection(inspection(selected_by=("RED-ARMS",), n=n))
    feedback.learn_tuning("RED-ARMS", tuning_record(profile="RED-ARMS", status="retired", officer="customs/b", at=1))
    arms = request([item(code="93011000")], authorisations=aeo(None))
    assert decide(CustomsEngine(rules(), feedback=feedback), arms)["code"] == "H01"


def test_no_finding_lowers_the_live_rate_and_other_agencies_results_do_not_count() -> None:
    feedback = CustomsFeedback(SETTINGS)
    assert feedback.calibration(LANE).rate == 1.0
    for n in range(40):
        feedback.learn_inspection(inspection(n=n))
        feedback.learn_inspection(inspection(n=n, agency="sps", officer="sps/eve"))
    lowered = feedback.calibration(LANE)
    assert lowered.inspections == 40
    assert lowered.rate == 0.25  # smoothed 1/50 is a fifth of the target: held at the lower bound
    assert feedback.calibrations(rules().settings.profiles)["RED-SOFT"] == lowered
    feedback.learn_tuning("RED-SOFT", tuning_record(profile="RED-SOFT", rate=0.9, officer="customs/b", at=1))
    assert feedback.calibration(LANE).rate == 0.9
    feedback.learn_tuning("RED-SOFT", None)
    assert feedback.calibration(LANE) == lowered


def test_the_feedback_section_of_the_profiles_file_is_checked() -> None:
    from refdata import ReferenceDataError, parse_risk_settings  # noqa: PLC0415

    shipped = customs_risk_settings()
    assert shipped.feedback.min_inspections >= 1
    fireworks_profile = shipped.profile("RED-FIREWORKS")
    assert fireworks_profile is not None
    assert not fireworks_profile.mandatory
    doc = copy.deepcopy(BASE)
    doc["feedback"] = {"why": "w", "salt": "s", "min_inspections": 10, "target_hit_rate": 0.1,
                       "prior_inspections": 5, "lane_rate_bounds": [0.5, 0.2], "weight_factor_bounds": [0.5, 1.5]}
    with pytest.raises(ReferenceDataError, match="lane_rate_bounds"):
        parse_risk_settings(doc)


# --- the audit chain ---------------------------------------------------------------------------------------


def test_the_auditor_names_the_officer_and_the_chain_verifies() -> None:
    auditor = Auditor(bus=MemoryBus(), topics=AuditTopics.hub(["customs"]), clock=lambda: 7)
    tuning: TuningRecord = tuning_record(profile="RED-FIREWORKS", status="retired", officer="customs/bob", at=T0)
    records = [incoming(inspection_message(inspection(finding=True)), 0),
               InMessage(RISK_TUNING, 0, 0, 0, b"RED-FIREWORKS", orjson.dumps(tuning), ()),
               InMessage(RISK_TUNING, 0, 1, 0, b"RED-FIREWORKS", b"", ()),  # a tombstone: no actor
               InMessage(INSPECTIONS, 0, 1, 0, b"S-9", b"garbage", ()),  # audited all the same
               incoming(avro_message(decisions_topic("customs"), "AgencyDecision", {
                   "decision_id": "d", "submission_id": "S-0", "version": 1, "agency": "customs", "decided_at": 1,
                   "items": [], "decided_by": "customs/carol"}), 2)]
    entries = [orjson.loads(out[0].value) for out in (auditor.handle(m) for m in records)]
    assert [(e["kind"], e.get("actor"), e["agency"]) for e in entries] == [
        ("inspection", "customs/alice", "customs"), ("tuning", "customs/bob", "customs"),
        ("tuning", None, "customs"), ("inspection", None, None), ("decision", "customs/carol", "customs")]
    assert entries[1]["submission_id"] == "RED-FIREWORKS"
    report = verify_chain([(n, orjson.dumps(e)) for n, e in enumerate(entries)])
    assert report.intact, report.problems
    forged = [*entries[:1], {**entries[1], "actor": "customs/mallory"}, *entries[2:]]
    assert verify_chain([(n, orjson.dumps(e)) for n, e in enumerate(forged)]).first_problem is not None


def test_the_profiles_keep_their_lane_with_no_feedback() -> None:
    assert parse_tuning({"profile": "P", "status": "active", "officer": "customs/b", "at": 0}) == {
        "profile": "P", "status": "active", "weight_factor": None, "rate": None, "officer": "customs/b", "at": 0,
        "note": ""}
    assert random_draw("s", "S", 1, 1) != selection_draw("s", "S", 1, 1, "P")


def test_the_sps_engine_names_the_requirement_that_held_an_item() -> None:
    from tests.test_engines_sps import decide as sps_decide  # noqa: PLC0415
    from tests.test_engines_sps import item as sps_item  # noqa: PLC0415

    apples, = sps_decide([sps_item(1, "08081080", origin="ZA")])
    assert apples["code"] == "H01"
    assert apples.get("selected_by")
    assert all(rule in apples["reason"] for rule in apples.get("selected_by", []))


def test_the_feed_counts_selections_from_decisions_and_plans_and_learns_inspections_and_tuning() -> None:
    from adapters import FeedbackFeed  # noqa: PLC0415
    from schemas import AgencyDecision, RoutingPlan  # noqa: PLC0415

    feed = FeedbackFeed(bootstrap="unused:1", agencies=["customs", "sps"])
    decision: AgencyDecision = {
        "decision_id": "d1", "submission_id": "S-1", "version": 1, "agency": "customs", "decided_at": T0,
        "items": [{"sequence": 1, "outcome": "HOLD", "code": "H01", "reason": "r", "hold_reason": "INSPECTION",
                   "selected_by": ["RED-FIREWORKS"]},
                  {"sequence": 2, "outcome": "HOLD", "code": "H03", "reason": "r", "hold_reason": "INSPECTION",
                   "selected_by": ["RANDOM", "RED-FIREWORKS"]}]}
    plan: RoutingPlan = {"submission_id": "S-1", "version": 1, "routed_at": T0, "received_at": T0,
                         "trader_reference": "R", "declarant_id": "D", "item_sequences": [1, 2],
                         "agencies": [{"agency": "customs", "reasons": [{"item": 1, "rule": "CUSTOMS-ALL",
                                                                         "why": "every declaration"}]}]}
    decided = incoming(avro_message(decisions_topic("customs"), "AgencyDecision", decision))
    follow_up = incoming(avro_message(decisions_topic("customs"), "AgencyDecision",
                                      {**decision, "decision_id": "d2", "decided_by": "customs/carol"}))
    for message in (decided, decided, follow_up, incoming(avro_message("nsw.routing", "RoutingPlan", plan)),
                    incoming(inspection_message(inspection(selected_by=("RED-FIREWORKS",)))),
                    incoming(tuning_message(tuning_record(profile="RED-FIREWORKS", rate=0.5, officer="customs/b",
                                                          at=T0)))):
        feed.apply(message)
    assert feed.stats.counts("customs", "RED-FIREWORKS") == Counts(selected=1, inspected=1, hits=0)
    assert feed.stats.counts("customs", "RANDOM").selected == 1
    assert feed.stats.counts("customs", "CUSTOMS-ALL") == Counts(selected=1, inspected=1, hits=0)
    assert feed.calibrations()["RED-FIREWORKS"].rate == 0.5
    assert feed.calibrations()["RED-ARMS"].source == "mandatory"
    with pytest.raises(ValueError, match="does not read"):
        feed.apply(InMessage("nsw.other", 0, 0, 0, None, b"", ()))
