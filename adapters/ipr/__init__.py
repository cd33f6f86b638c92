"""IPR border enforcement: recorded rights, officer-like mark matching, suspension and the TRIPS Art. 55 clock.

The Kafka service around the engine (timer, notices, changelog) is ``adapters.ipr._service.IPRAdapter``, built
by ``adapters.adapter_handler``; it is not imported here, so routing can read the register without the broker.
"""

from adapters.ipr._clock import (
    EXTENSION,
    PROCEEDINGS_NOTIFIED,
    PROCEEDINGS_WORKING_DAYS,
    TIME_LIMIT_RELEASE,
    ClockSettings,
    Suspended,
    Suspensions,
    add_working_days,
    due,
    follow_up,
    notification,
    open_suspensions,
    settled,
)
from adapters.ipr._engine import IPREngine
from refdata._ipr_marks import find_marks, mark_key, tokens
from refdata._ipr_register import BrandIndex, RecordedRight, load_register, parse_register, words

engine = IPREngine()

__all__ = [
    "EXTENSION",
    "PROCEEDINGS_NOTIFIED",
    "PROCEEDINGS_WORKING_DAYS",
    "TIME_LIMIT_RELEASE",
    "BrandIndex",
    "ClockSettings",
    "IPREngine",
    "RecordedRight",
    "Suspended",
    "Suspensions",
    "add_working_days",
    "due",
    "engine",
    "find_marks",
    "follow_up",
    "load_register",
    "mark_key",
    "notification",
    "open_suspensions",
    "parse_register",
    "settled",
    "tokens",
    "words",
]
