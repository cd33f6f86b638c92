"""structlog set-up: JSON lines in production, readable console on a terminal, never payloads.

The libraries' own loggers (aiokafka, uvicorn) go through the same renderer, so a log is all JSON or all
console, never a mix of JSON lines and ``ERROR:aiokafka...`` text. Kafka's expected start-up retries are
debug, not errors: a broker that has just created a topic or started answers NotLeaderForPartition, a group
without a coordinator yet GroupCoordinatorNotAvailable, a partition whose replicas are still joining
NotEnoughReplicas; aiokafka logs each at ERROR although it retries them (and the hub's own supervision
reports what does not recover). Anything else aiokafka logs at WARNING or above stays as it is.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, Final, TextIO

import orjson
import structlog

__all__ = ["TRANSIENT_KAFKA_ERRORS", "configure_logging", "json_renderer", "use_json"]

#: What aiokafka says when it retries something that settles by itself while the cluster starts.
TRANSIENT_KAFKA_ERRORS: Final = (
    "NotLeaderForPartition",
    "NotLeaderOrFollower",
    "LeaderNotAvailable",
    "GroupCoordinatorNotAvailable",
    "CoordinatorNotAvailable",
    "CoordinatorLoadInProgress",
    "NotCoordinator",
    "NotEnoughReplicas",
    "UnknownTopicOrPartition",
    "RebalanceInProgress",
    "because it is rebalancing",
    "No partition metadata for topic",
    "Marking the coordinator dead",  # what it does on GroupCoordinatorNotAvailable and NotCoordinator
)

_HANDLER: Final = "nsw-structlog"

#: The libraries' loggers and the least level each may pass on (the handler applies the configured level).
_LIBRARY_LEVELS: Final = {"aiokafka": logging.WARNING, "kafka": logging.WARNING, "uvicorn": logging.WARNING,
                          "uvicorn.error": logging.WARNING, "uvicorn.access": logging.WARNING}


def use_json(fmt: str, stream: TextIO) -> bool:
    """``json``, ``console``, or ``auto``: JSON unless ``stream`` is a terminal."""
    return fmt == "json" or (fmt == "auto" and not stream.isatty())


class _LibraryLevels(logging.Filter):
    """Kafka's start-up retries become debug records; then the configured level decides."""

    def __init__(self, threshold: int) -> None:
        super().__init__()
        self.threshold = threshold

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.DEBUG and record.name.startswith("aiokafka"):
            message = record.getMessage()
            if any(marker in message for marker in TRANSIENT_KAFKA_ERRORS):
                record.levelno, record.levelname = logging.DEBUG, "DEBUG"
                record.exc_info, record.exc_text = None, None  # a retry is not a failure: no traceback
        return record.levelno >= self.threshold


def _orjson_text(value: Any, **options: Any) -> str:
    """``json.dumps`` for structlog's JSONRenderer, by orjson (several lines per submission: a few times faster);
    what JSON has no form for is written as the renderer's fallback gives it (its repr)."""
    return orjson.dumps(value, default=options.get("default"), option=orjson.OPT_NON_STR_KEYS).decode()


def json_renderer() -> structlog.typing.Processor:
    """The hub's JSON lines (``nsw bench step`` renders its lines with it too)."""
    return structlog.processors.JSONRenderer(serializer=_orjson_text)


def configure_logging(*, fmt: str = "auto", level: str = "info") -> None:
    threshold = logging.getLevelNamesMapping()[level.upper()]
    renderer: structlog.typing.Processor = (
        json_renderer() if use_json(fmt, sys.stderr)
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    shared: list[structlog.typing.Processor] = [
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[structlog.contextvars.merge_contextvars, *shared, structlog.processors.format_exc_info,
                    renderer],
        wrapper_class=structlog.make_filtering_bound_logger(threshold),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.name = _HANDLER
    handler.addFilter(_LibraryLevels(threshold))
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, structlog.processors.format_exc_info,
                    renderer],
    ))
    root = logging.getLogger()
    for old in list(root.handlers):
        if old.name == _HANDLER or (isinstance(old, logging.StreamHandler) and not isinstance(old, logging.FileHandler)
                                    and old.stream in (sys.stderr, sys.stdout)):
            root.removeHandler(old)  # ours from an earlier call, or a plain stream handler (basicConfig)
    root.addHandler(handler)
    root.setLevel(max(threshold, logging.WARNING))  # other libraries (httpx: a line per request): warnings
    for name, least in _LIBRARY_LEVELS.items():
        library = logging.getLogger(name)
        library.setLevel(max(least, threshold))
        library.handlers.clear()  # uvicorn's own config adds handlers of its own: ours renders them
        library.propagate = True
