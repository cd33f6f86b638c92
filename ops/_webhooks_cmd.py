"""Webhook deliveries still open or given up (``nsw ops webhooks``), read from ``nsw.webhook.deliveries``.

The changelog holds the latest state of each delivery (compacted): pending ones are still retried, failed
ones passed the maximum retry age (``NSW_WEBHOOK_MAX_AGE_SECONDS``) and carry their last error.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from broker._envelope import InMessage
from broker._topics import WEBHOOK_DELIVERIES
from bus import existing_partition_counts, read_to_end

__all__ = ["DeliveryRow", "webhook_deliveries"]


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliveryRow:
    delivery_id: str
    trader: str
    submission_id: str
    status: str
    attempts: int
    created_at: int | None
    next_at: int | None
    settled_at: int | None
    last_error: str | None

    def as_dict(self) -> dict[str, Any]:
        return {"delivery_id": self.delivery_id, "trader": self.trader, "submission_id": self.submission_id,
                "status": self.status, "attempts": self.attempts, "created_at": self.created_at,
                "next_at": self.next_at, "settled_at": self.settled_at, "last_error": self.last_error}


def _row(value: Any) -> DeliveryRow | None:
    if not isinstance(value, dict) or not isinstance(value.get("response"), dict):
        return None
    return DeliveryRow(
        delivery_id=str(value.get("delivery_id")), trader=str(value.get("trader")),
        submission_id=str(value["response"].get("submission_id")), status=str(value.get("status")),
        attempts=int(value.get("attempts", 0)), created_at=value.get("created_at"), next_at=value.get("next_at"),
        settled_at=value.get("delivered_at") or value.get("failed_at"), last_error=value.get("last_error"))


async def webhook_deliveries(bootstrap: str, *, statuses: Iterable[str] = ("pending", "failed"),
                             trader: str | None = None) -> list[DeliveryRow]:
    """The latest state of each delivery whose status is one of ``statuses`` (oldest first)."""
    latest: dict[bytes, DeliveryRow | None] = {}

    def keep(message: InMessage) -> None:
        if message.key is None:
            return
        try:
            latest[message.key] = _row(orjson.loads(message.value)) if message.value else None
        except orjson.JSONDecodeError:
            latest[message.key] = None

    counts = await existing_partition_counts(bootstrap, [WEBHOOK_DELIVERIES])
    await read_to_end(bootstrap, [(WEBHOOK_DELIVERIES, p) for p in range(counts.get(WEBHOOK_DELIVERIES, 0))], keep)
    wanted = set(statuses)
    rows = [r for r in latest.values() if r is not None and r.status in wanted and trader in (None, r.trader)]
    return sorted(rows, key=lambda r: r.created_at or 0)
