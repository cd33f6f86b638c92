"""The feedback feed: the statistics and calibrations the console charts, kept current from Kafka.

A ``FollowedTail`` over
- ``nsw.agency.<agency>.decisions``: each submission version whose decisions name ``selected_by`` ids is one
  selection of each id (repeats and officers' follow-ups that keep the engine's items are no news);
- ``nsw.routing`` (``plans=True``): each plan is one selection of every routing rule that sent items to an
  agency (per submission version);
- ``nsw.inspections``: inspections and hits per profile and rule;
- ``nsw.risk.tuning``: the supervisors' retirements and fixed rates in force.

Malformed records are reported and skipped (``broker._tail``); the reader never stops. In sasl mode the
process's principal must read those topics (the ingress, which serves the console, reads the feedback topics).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from adapters._feedback import FeedbackStats
from adapters._inspections import read_inspection, read_tuning
from adapters.customs._calibration import Calibration, CustomsFeedback
from broker._envelope import InMessage, decode
from broker._tail import FollowedTail
from broker._topics import INSPECTIONS, RISK_TUNING, ROUTING, decisions_topic
from bus import KafkaBus
from refdata import CustomsRiskSettings, customs_risk_settings
from schemas import AgencyDecision, RoutingPlan

__all__ = ["FeedbackFeed"]


class FeedbackFeed:
    """Statistics per (agency, profile or rule id) and the customs calibrations, read from the topics."""

    def __init__(self, *, bootstrap: str, agencies: Collection[str], plans: bool = True,
                 settings: CustomsRiskSettings | None = None, stats: FeedbackStats | None = None) -> None:
        self.settings = settings if settings is not None else customs_risk_settings()
        self.stats = stats if stats is not None else FeedbackStats()
        self.customs = CustomsFeedback(self.settings.feedback, stats=self.stats)
        self._decisions = {decisions_topic(a): a for a in agencies}
        topics = [INSPECTIONS, RISK_TUNING, *self._decisions, *([ROUTING] if plans else [])]
        # The aggregator dead-letters a plan or decision it cannot read, the customs adapter's reader an inspection
        # or tuning record: this reader only skips and counts.
        self.tail = FollowedTail(name="feedback", bus=KafkaBus(bootstrap), topics=topics, apply=self.apply,
                                 dead_letter=False, patient=True)

    def apply(self, message: InMessage) -> None:
        """Learn one record (raises for a malformed one: the tail reports and skips it)."""
        if message.topic == INSPECTIONS:
            self.stats.learn_inspection(read_inspection(message))
        elif message.topic == RISK_TUNING:
            self.customs.learn_tuning(*read_tuning(message))
        elif message.topic in self._decisions:
            decision: AgencyDecision = decode(message, "AgencyDecision")  # type: ignore[assignment]
            ids = [i for item in decision["items"] for i in item.get("selected_by", [])]
            if ids:
                self.stats.learn_selection(self._decisions[message.topic], ids, decision["decided_at"],
                                           key=f"{decision['submission_id']}:{decision['version']}")
        elif message.topic == ROUTING:
            plan: RoutingPlan = decode(message, "RoutingPlan")  # type: ignore[assignment]
            for route in plan["agencies"]:
                self.stats.learn_selection(route["agency"], [r["rule"] for r in route["reasons"]], plan["routed_at"],
                                           key=f"plan:{plan['submission_id']}:{plan['version']}")
        else:
            raise ValueError(f"the feedback feed does not read {message.topic}")

    def calibrations(self) -> Mapping[str, Calibration]:
        """Each customs profile's calibration now, by profile id (in the file's order)."""
        return self.customs.calibrations(self.settings.profiles)

    async def start(self) -> None:
        await self.tail.start()

    async def stop(self) -> None:
        await self.tail.stop()
