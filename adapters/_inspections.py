"""The feedback loop's records: inspection results and risk-profile tuning, built and checked (pure).

**Inspection result** (Avro ``nsw.v1.InspectionResult`` on ``nsw.inspections``, key = submission id): what an
officer found when inspecting items of one submission version. It names the profiles and rules that selected
the items (``selected_by``, copied from the agency's decision, and ``rules``, the routing rule ids from the plan),
so hit rates can be counted per profile and per rule without joining topics. ``performed`` false records that
the inspection did not take place (goods not presented, waived): it counts as a selection, not an inspection.
A ``finding`` needs ``performed`` and a ``finding_code``; no finding has ``finding_code`` "".

**Tuning record** (JSON on the compacted ``nsw.risk.tuning``, key = profile id): a supervisor's change to one
risk profile, the latest record per profile being the one in force::

    {"profile": "RED-FIREWORKS", "status": "active" | "retired",
     "weight_factor": 0.8 | null,   # a weighted profile's weight times this, instead of the calibrated factor
     "rate": 0.5 | null,            # a lane profile's selection rate, instead of the calibrated one
     "officer": "customs/bob", "at": 1767225600000, "note": "fewer hits since the new supplier rules"}

An empty value (a tombstone) gives the profile back to its file and its calibration. The bounds a factor or a
rate must keep are the customs engine's (``adapters.customs.check_tuning``); this module checks the shape.

Readers (the customs adapter, the console) take records with :func:`read_inspection` and :func:`read_tuning`,
which raise ``FeedbackRecordError`` for a malformed one: the reader skips it (``broker._tail.guarded``).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping
from typing import Final, Literal, TypedDict, cast

import orjson

from adapters.errors import FeedbackRecordError, FieldError
from broker._envelope import CONTENT_TYPE_HEADER, JSON_CONTENT_TYPE, InMessage, OutMessage, avro_message
from broker._topics import INSPECTIONS, RISK_TUNING
from schemas import InspectionResult, registry
from schemas.errors import NSWSchemaError

__all__ = [
    "MAX_NOTE",
    "TuningRecord",
    "TuningStatus",
    "check_inspection",
    "inspection_message",
    "inspection_result",
    "parse_tuning",
    "read_inspection",
    "read_tuning",
    "tuning_message",
    "tuning_record",
]

MAX_NOTE: Final = 2_000
MAX_ID: Final = 64  # a profile, rule or finding code
MAX_IDS: Final = 32
MAX_NAME: Final = 200  # ids of submissions, requests, results; officers
MAX_ITEMS: Final = 10_000
LANE_NAMES: Final = frozenset({"", "green", "blue", "yellow", "red"})

TuningStatus = Literal["active", "retired"]
TUNING_FIELDS: Final = frozenset({"profile", "status", "weight_factor", "rate", "officer", "at", "note"})


class TuningRecord(TypedDict):
    profile: str
    status: TuningStatus
    weight_factor: float | None
    rate: float | None
    officer: str
    at: int
    note: str


# --- field checks -------------------------------------------------------------------------------------


def _name(errors: list[FieldError], path: str, value: object, *, limit: int = MAX_NAME) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        errors.append(FieldError(path, f"must be a non-empty string of at most {limit} characters"))
        return ""
    return value


def _whole(errors: list[FieldError], path: str, value: object, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= 2**63 - 1:
        errors.append(FieldError(path, f"must be an integer >= {minimum}"))
        return minimum
    return value


def _flag(errors: list[FieldError], path: str, value: object) -> bool:
    if not isinstance(value, bool):
        errors.append(FieldError(path, "must be true or false"))
        return False
    return value


def _ids(errors: list[FieldError], path: str, value: object) -> list[str]:
    if not isinstance(value, list | tuple) or len(value) > MAX_IDS:
        errors.append(FieldError(path, f"must be an array of at most {MAX_IDS} ids"))
        return []
    out: list[str] = []
    for n, entry in enumerate(value):
        out.append(_name(errors, f"{path}/{n}", entry, limit=MAX_ID))
    return out


def _officer(errors: list[FieldError], value: object, agency: str | None) -> str:
    officer = _name(errors, "/officer", value)
    agency_part, _, user = officer.partition("/")
    if officer and (not user or (agency is not None and agency_part != agency)):
        errors.append(FieldError("/officer", f"must be <agency>/<user>{f' of {agency}' if agency else ''}"))
    return officer


# --- inspection results -------------------------------------------------------------------------------


def check_inspection(record: Mapping[str, object]) -> InspectionResult:
    """The record as an InspectionResult, every field checked; raise FeedbackRecordError (``errors`` says where)."""
    errors: list[FieldError] = []
    agency = _name(errors, "/agency", record.get("agency"), limit=MAX_ID)
    raw_items = record.get("items")
    items: list[int] = []
    if not isinstance(raw_items, list | tuple) or not raw_items or len(raw_items) > MAX_ITEMS:
        errors.append(FieldError("/items", f"must be a non-empty array of at most {MAX_ITEMS} item sequences"))
    else:
        for n, seq in enumerate(raw_items):
            items.append(_whole(errors, f"/items/{n}", seq, minimum=1))
        if len(set(items)) != len(items):
            errors.append(FieldError("/items", "an item is named twice"))
    performed = _flag(errors, "/performed", record.get("performed"))
    finding = _flag(errors, "/finding", record.get("finding"))
    code = record.get("finding_code")
    if finding and not performed:
        errors.append(FieldError("/finding", "a finding needs a performed inspection"))
    if finding:
        code = _name(errors, "/finding_code", code, limit=MAX_ID)
    elif code != "":
        errors.append(FieldError("/finding_code", "is \"\" when there is no finding"))
    note = record.get("note")
    if not isinstance(note, str) or len(note) > MAX_NOTE:
        errors.append(FieldError("/note", f"must be a string of at most {MAX_NOTE} characters"))
    lane = record.get("lane")
    if lane not in LANE_NAMES:
        errors.append(FieldError("/lane", f"must be one of {sorted(LANE_NAMES)}"))
    result: InspectionResult = {
        "result_id": _name(errors, "/result_id", record.get("result_id")),
        "agency": agency,
        "submission_id": _name(errors, "/submission_id", record.get("submission_id")),
        "version": _whole(errors, "/version", record.get("version"), minimum=1),
        "request_id": _name(errors, "/request_id", record.get("request_id")),
        "items": sorted(items),
        "performed": performed,
        "finding": finding,
        "finding_code": code if isinstance(code, str) else "",
        "note": note if isinstance(note, str) else "",
        "officer": _officer(errors, record.get("officer"), agency or None),
        "recorded_at": _whole(errors, "/recorded_at", record.get("recorded_at"), minimum=0),
        "selected_by": _ids(errors, "/selected_by", record.get("selected_by")),
        "rules": _ids(errors, "/rules", record.get("rules")),
        "lane": lane if isinstance(lane, str) else "",
    }
    if errors:
        raise FeedbackRecordError("inspection result", errors)
    return result


def inspection_result(
    *, agency: str, submission_id: str, version: int, request_id: str, items: Iterable[int], performed: bool,
    finding: bool, officer: str, recorded_at: int, finding_code: str = "", note: str = "",
    selected_by: Iterable[str] = (), rules: Iterable[str] = (), lane: str = "", result_id: str | None = None,
) -> InspectionResult:
    """Build and check an inspection result (raise FeedbackRecordError). Without ``result_id`` the id is derived
    from the content, so the same form sent twice is one result."""
    record: dict[str, object] = {
        "agency": agency, "submission_id": submission_id, "version": version, "request_id": request_id,
        "items": sorted(items), "performed": performed, "finding": finding, "finding_code": finding_code,
        "note": note, "officer": officer, "recorded_at": recorded_at, "selected_by": list(selected_by),
        "rules": list(rules), "lane": lane}
    if result_id is None:
        digest = hashlib.sha256(orjson.dumps(record, option=orjson.OPT_SORT_KEYS)).hexdigest()[:20]
        result_id = f"{submission_id}:{version}:{agency}:inspection:{digest}"
    return check_inspection({**record, "result_id": result_id})


def inspection_message(result: InspectionResult) -> OutMessage:
    """The record for ``nsw.inspections`` (key = submission id, co-partitioned with the submission's others)."""
    return avro_message(INSPECTIONS, "InspectionResult", check_inspection(result))


def read_inspection(message: InMessage) -> InspectionResult:
    """The inspection result in a record of ``nsw.inspections``; FeedbackRecordError when it is not one."""
    try:
        _, record = registry().decode(message.value, "InspectionResult")
    except NSWSchemaError as exc:
        raise FeedbackRecordError("inspection result", [FieldError("", str(exc)[:300])]) from None
    result = check_inspection(record)
    if message.key is not None and message.key != result["submission_id"].encode():
        raise FeedbackRecordError("inspection result", [FieldError("/submission_id", "is not the record's key")])
    return result


# --- tuning records -----------------------------------------------------------------------------------


def _fraction(errors: list[FieldError], path: str, value: object, *, high: float | None) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0 or (
            high is not None and value > high) or value > 1e6:
        errors.append(FieldError(path, f"must be null or a number from 0 to {high if high is not None else 'a bound'}"))
        return None
    return float(value)


def parse_tuning(value: object, *, key: bytes | None = None) -> TuningRecord:
    """A tuning record from its JSON value, checked field by field; raise FeedbackRecordError.

    Strict like ``broker._auth.key_record``: a malformed record must neither replace a good one (it could
    retire a profile nobody retired) nor stop a reader."""
    if not isinstance(value, dict):
        raise FeedbackRecordError("tuning record", [FieldError("", "must be a JSON object")])
    errors: list[FieldError] = []
    unknown = sorted(set(value) - TUNING_FIELDS)
    if unknown:
        errors.append(FieldError("", f"unknown fields {', '.join(unknown)}"))
    profile = _name(errors, "/profile", value.get("profile"), limit=MAX_ID)
    status = value.get("status")
    if status not in ("active", "retired"):
        errors.append(FieldError("/status", "must be active or retired"))
    note = value.get("note", "")
    if not isinstance(note, str) or len(note) > MAX_NOTE:
        errors.append(FieldError("/note", f"must be a string of at most {MAX_NOTE} characters"))
    record: TuningRecord = {
        "profile": profile,
        "status": cast(TuningStatus, status),
        "weight_factor": _fraction(errors, "/weight_factor", value.get("weight_factor"), high=None),
        "rate": _fraction(errors, "/rate", value.get("rate"), high=1.0),
        "officer": _officer(errors, value.get("officer"), None),
        "at": _whole(errors, "/at", value.get("at"), minimum=0),
        "note": note if isinstance(note, str) else "",
    }
    if profile and key is not None and key != profile.encode():
        errors.append(FieldError("/profile", "is not the record's key"))
    if errors:
        raise FeedbackRecordError("tuning record", errors)
    return record


def tuning_record(*, profile: str, officer: str, at: int, status: TuningStatus = "active",
                  weight_factor: float | None = None, rate: float | None = None, note: str = "") -> TuningRecord:
    """Build and check a tuning record (shape only; the customs bounds: ``adapters.customs.check_tuning``)."""
    return parse_tuning({"profile": profile, "status": status, "weight_factor": weight_factor, "rate": rate,
                         "officer": officer, "at": at, "note": note})


def tuning_message(record: TuningRecord) -> OutMessage:
    """The record for ``nsw.risk.tuning`` (compacted, key = profile id)."""
    checked = parse_tuning(dict(record))
    return OutMessage(topic=RISK_TUNING, key=checked["profile"].encode(), value=orjson.dumps(checked),
                      headers=((CONTENT_TYPE_HEADER, JSON_CONTENT_TYPE),))


def read_tuning(message: InMessage) -> tuple[str, TuningRecord | None]:
    """(profile id, record) of a record of ``nsw.risk.tuning``; record None for a tombstone (the profile goes
    back to its file). FeedbackRecordError when it is neither."""
    if not message.value:
        if not message.key:
            raise FeedbackRecordError("tuning record", [FieldError("", "a tombstone without a key")])
        return message.key.decode("utf-8", "replace"), None
    try:
        value = orjson.loads(message.value)
    except orjson.JSONDecodeError as exc:
        raise FeedbackRecordError("tuning record", [FieldError("", f"not JSON ({exc})")]) from None
    record = parse_tuning(value, key=message.key)
    return record["profile"], record
