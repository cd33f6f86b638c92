"""The customs adapter service: the reference engine with its feedback kept current from Kafka.

The handler decides as ``AdapterRunner`` does; beside it a ``FollowedTail`` reads ``nsw.inspections`` (customs'
inspection results: the profiles' hit rates) and ``nsw.risk.tuning`` (supervisors' retirements and fixed rates)
for the process's lifetime and feeds :class:`CustomsFeedback`, whose calibration the engine asks per profile.
A malformed record is reported (warning ``tail_bad_record``, a dead letter) and skipped; it never stops the
reader. Start it with :meth:`start` once the topics exist, close it with :meth:`aclose` (``adapters.close_handler``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import structlog

from adapters._inspections import read_inspection, read_tuning
from adapters._runner import AdapterRunner
from adapters.customs._calibration import CustomsFeedback
from adapters.customs._engine import CustomsEngine, CustomsRules
from broker._envelope import InMessage, OutMessage
from broker._tail import FollowedTail
from broker._topics import INSPECTIONS, RISK_TUNING
from bus import KafkaBus
from refdata import customs_risk_settings

__all__ = ["CustomsAdapter"]

log = structlog.get_logger("nsw.adapter.customs")


class CustomsAdapter:
    """Handler of ``nsw.agency.customs.requests`` and reader of the feedback topics (module docstring)."""

    def __init__(self, *, bootstrap: str, random_rate: float | None = None, rules: CustomsRules | None = None) -> None:
        if rules is None:
            settings = customs_risk_settings()
            if random_rate is not None:
                settings = dataclasses.replace(
                    settings, random_selection=dataclasses.replace(settings.random_selection, rate=random_rate))
            rules = CustomsRules(settings=settings)
        self.feedback = CustomsFeedback(rules.settings.feedback)
        self.engine = CustomsEngine(rules, feedback=self.feedback)
        self._runner = AdapterRunner(self.engine)
        self.tail = FollowedTail(name="customs-feedback", bus=KafkaBus(bootstrap), topics=(INSPECTIONS, RISK_TUNING),
                                 apply=self.apply, patient=True)
        self.learnt = 0  # feedback records taken (tests and the console poll it)

    def __call__(self, message: InMessage) -> Sequence[OutMessage]:
        return self._runner.handle(message)

    def sizes(self) -> dict[str, int]:
        """Entries held per structure (the hub's memory diagnostic)."""
        return {f"feedback.{k}": v for k, v in self.feedback.stats.sizes().items()}

    def apply(self, message: InMessage) -> None:
        """Learn one feedback record; raises FeedbackRecordError for a malformed one (the tail skips it)."""
        if message.topic == INSPECTIONS:
            result = read_inspection(message)
            self.feedback.learn_inspection(result)
            log.info("inspection_learnt", submission_id=result["submission_id"], version=result["version"],
                     agency=result["agency"], finding=result["finding"])
        elif message.topic == RISK_TUNING:
            profile, record = read_tuning(message)
            self.feedback.learn_tuning(profile, record)
            log.info("risk_tuning_learnt", profile=profile, status=None if record is None else record["status"])
        else:
            raise ValueError(f"the customs feedback reader does not read {message.topic}")
        self.learnt += 1

    async def start(self) -> None:
        await self.tail.start()

    async def aclose(self) -> None:
        await self.tail.stop()
