"""Calibration: how a risk profile's hit rate and a supervisor's tuning change what it selects (pure).

``calibrate(profile, counts, settings, tuning=...)`` gives a profile's :class:`Calibration`:

- a **mandatory** profile is never reduced nor retired (the law says every movement is examined);
- a **retired** profile (a supervisor's tuning record) selects nothing;
- with at least ``min_inspections`` inspections, the smoothed hit rate ``(hits + prior * target) /
  (inspections + prior)`` divided by the target scales a **lane** profile's selection rate (within
  ``lane_rate_bounds``, never above 1) or a **weighted** profile's weight (within ``weight_factor_bounds``);
- a supervisor's fixed ``rate`` or ``weight_factor`` replaces the calibrated one, kept within the same bounds;
- random selection is not a profile and is never calibrated: it keeps measuring compliance.

A lane profile selected at a rate below 1 is drawn per item from a hash of the feedback salt, submission id,
version, item and profile (:func:`selection_draw`), as random selection is: replays of a version agree as long
as the calibration is the same.

:class:`CustomsFeedback` is the live provider the customs adapter keeps current from ``nsw.inspections`` and
``nsw.risk.tuning``; the engine only asks it ``calibration(profile)``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Literal, Protocol

from adapters._feedback import Counts, FeedbackStats
from adapters._inspections import TuningRecord
from adapters.errors import FeedbackRecordError, FieldError
from refdata import CustomsProfile, CustomsRiskSettings, FeedbackSettings
from schemas import InspectionResult

__all__ = [
    "AGENCY",
    "Calibration",
    "CalibrationSource",
    "CustomsFeedback",
    "FeedbackProvider",
    "calibrate",
    "check_tuning",
    "selection_draw",
]

AGENCY = "customs"
CalibrationSource = Literal["file", "calibrated", "supervisor", "retired", "mandatory"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Calibration:
    """What the engine applies for one profile. ``rate``: share of the matched items a lane profile selects;
    ``weight_factor``: what a weighted profile's weight is multiplied by; ``why``: one sentence for reasons."""

    profile: str
    rate: float = 1.0
    weight_factor: float = 1.0
    retired: bool = False
    source: CalibrationSource = "file"
    why: str = ""
    inspections: int = 0
    hits: int = 0

    @property
    def hit_rate(self) -> float | None:
        return None if self.inspections == 0 else self.hits / self.inspections


class FeedbackProvider(Protocol):
    """What the engine asks: the calibration of a profile now."""

    def calibration(self, profile: CustomsProfile) -> Calibration: ...


def selection_draw(salt: str, submission_id: str, version: int, sequence: int, profile_id: str) -> float:
    """A number in [0, 1) fixed by its inputs: whether a calibrated profile selects this item of this version."""
    digest = hashlib.sha256(f"{salt}\x1f{submission_id}\x1f{version}\x1f{sequence}\x1f{profile_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _clamp(value: float, bounds: tuple[float, float]) -> float:
    return min(max(value, bounds[0]), bounds[1])


def _lane_bounds(settings: FeedbackSettings) -> tuple[float, float]:
    lo, hi = settings.lane_rate_bounds
    return lo, min(hi, 1.0)


def calibrate(profile: CustomsProfile, counts: Counts | None, settings: FeedbackSettings, *,
              tuning: TuningRecord | None = None) -> Calibration:
    """The profile's calibration from its inspection counts and a supervisor's tuning (module docstring)."""
    inspections, hits = (0, 0) if counts is None else (counts.inspected, counts.hits)
    measured = f"hit rate {hits}/{inspections}"
    base = Calibration(profile=profile.id, inspections=inspections, hits=hits)
    if profile.mandatory:
        return replace(base, source="mandatory", why=f"mandatory, never reduced ({measured})")
    if tuning is not None and tuning["status"] == "retired":
        return replace(base, rate=0.0, weight_factor=0.0, retired=True, source="retired",
                           why=f"retired by {tuning['officer']}")
    lane = profile.lane is not None
    if tuning is not None and (tuning["rate"] if lane else tuning["weight_factor"]) is not None:
        if lane:
            rate = _clamp(float(tuning["rate"] or 0.0), _lane_bounds(settings))
            return replace(base, rate=rate, source="supervisor",
                               why=f"rate {rate:.0%} set by {tuning['officer']} ({measured})")
        factor = _clamp(float(tuning["weight_factor"] or 0.0), settings.weight_factor_bounds)
        return replace(base, weight_factor=factor, source="supervisor",
                           why=f"weight x{factor:.2f} set by {tuning['officer']} ({measured})")
    if inspections < settings.min_inspections:
        return replace(base, source="file",
                           why=f"{measured}, below the {settings.min_inspections} inspections that adjust it")
    target, prior = settings.target_hit_rate, settings.prior_inspections
    ratio = ((hits + prior * target) / (inspections + prior)) / target
    if lane:
        rate = _clamp(ratio, _lane_bounds(settings))
        return replace(base, rate=rate, source="calibrated", why=measured)
    factor = _clamp(ratio, settings.weight_factor_bounds)
    return replace(base, weight_factor=factor, source="calibrated", why=measured)


def check_tuning(record: TuningRecord, settings: CustomsRiskSettings) -> TuningRecord:
    """A supervisor's tuning as the console may publish it: a known, non-mandatory profile, a rate only for a
    lane profile and a weight factor only for a weighted one, each within the feedback bounds; raise
    FeedbackRecordError. (A reader still clamps whatever it reads: records can come from elsewhere.)"""
    errors: list[FieldError] = []
    profile = settings.profile(record["profile"])
    if profile is None:
        errors.append(FieldError("/profile", f"no customs risk profile {record['profile']!r}"))
    elif profile.mandatory:
        errors.append(FieldError("/profile", f"{profile.id} is mandatory: it can be neither retired nor reduced"))
    else:
        fb = settings.feedback
        rate, factor = record["rate"], record["weight_factor"]
        lo, hi = _lane_bounds(fb)
        if rate is not None and (profile.lane is None or not lo <= rate <= hi):
            errors.append(FieldError("/rate", f"a lane profile's rate between {lo} and {hi}"
                                              if profile.lane is not None else "only a lane profile has a rate"))
        wlo, whi = fb.weight_factor_bounds
        if factor is not None and (profile.lane is not None or not wlo <= factor <= whi):
            errors.append(FieldError("/weight_factor", f"a weighted profile's factor between {wlo} and {whi}"
                                                       if profile.lane is None else "only a weighted profile has a "
                                                                                    "weight factor"))
    if errors:
        raise FeedbackRecordError("tuning record", errors)
    return record


class CustomsFeedback:
    """The live feedback of the customs engine: inspection statistics and the tuning in force, learnt record by
    record (the adapter's reader calls ``learn_*``); ``calibration`` computes from them (FeedbackProvider)."""

    def __init__(self, settings: FeedbackSettings, *, stats: FeedbackStats | None = None) -> None:
        self.settings = settings
        self.stats = stats if stats is not None else FeedbackStats()
        self.tuning: dict[str, TuningRecord] = {}

    def learn_inspection(self, result: InspectionResult) -> None:
        if result["agency"] == AGENCY:
            self.stats.learn_inspection(result)

    def learn_tuning(self, profile: str, record: TuningRecord | None) -> None:
        """The tuning in force for ``profile`` (None: back to the file and the calibration)."""
        if record is None:
            self.tuning.pop(profile, None)
        else:
            self.tuning[profile] = record

    def calibration(self, profile: CustomsProfile) -> Calibration:
        return calibrate(profile, self.stats.counts(AGENCY, profile.id), self.settings,
                         tuning=self.tuning.get(profile.id))

    def calibrations(self, profiles: tuple[CustomsProfile, ...]) -> Mapping[str, Calibration]:
        """Every profile's calibration now, by id (for the console's display)."""
        return {p.id: self.calibration(p) for p in profiles}
