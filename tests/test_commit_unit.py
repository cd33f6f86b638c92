"""A transaction whose output was not acknowledged must not commit its offsets (unit test of the commit step).

aiokafka 0.14 commits a transaction even when one of its record batches failed; the processor must notice the
failed delivery itself and abort, or the consumed offsets would be committed without their output.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from broker._envelope import OutMessage
from broker.errors import NSWError
from bus import commit_batch, keep_latest


class RecordingProducer:
    """Stands in for the transactional producer: the broker is not what is under test here."""

    def __init__(self, failing: set[int]) -> None:
        self._failing = failing
        self.sent = 0
        self.offsets_sent = False
        self.outcome: str | None = None

    async def send(self, topic: str, value: bytes, key: bytes | None = None, **_: Any) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self.sent in self._failing:
            from aiokafka.errors import OutOfOrderSequenceNumber  # noqa: PLC0415 - what the broker answered

            future.set_exception(OutOfOrderSequenceNumber())
        else:
            future.set_result(None)
        self.sent += 1
        return future

    async def send_offsets_to_transaction(self, offsets: dict[Any, int], group_id: str) -> None:
        self.offsets_sent = True

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        try:
            yield
        except BaseException:
            self.outcome = "aborted"
            raise
        self.outcome = "committed"


OUTPUTS = [OutMessage(topic="out", key=b"k", value=str(i).encode()) for i in range(3)]


async def test_a_failed_delivery_aborts_the_transaction_with_its_offsets() -> None:
    producer = RecordingProducer(failing={1})
    with pytest.raises(NSWError, match="OutOfOrderSequenceNumber"):
        await commit_batch(producer, OUTPUTS, {"tp": 5}, "unit", what="commit unit p0")
    assert producer.outcome == "aborted"  # the offsets were part of it: the records are read again


async def test_acknowledged_outputs_commit_with_their_offsets() -> None:
    producer = RecordingProducer(failing=set())
    await commit_batch(producer, OUTPUTS, {"tp": 5}, "unit", what="commit unit p0")
    assert (producer.outcome, producer.offsets_sent, producer.sent) == ("committed", True, 3)


def test_only_the_last_record_per_key_of_a_changelog_is_written() -> None:
    out = [OutMessage(topic="state", key=b"a", value=b"1"), OutMessage(topic="events", key=b"a", value=b"e1"),
           OutMessage(topic="state", key=b"b", value=b"1"), OutMessage(topic="state", key=b"a", value=b"2"),
           OutMessage(topic="events", key=b"a", value=b"e2"), OutMessage(topic="state", key=b"a", value=b"")]
    kept = keep_latest(out, frozenset({"state"}))
    assert [(m.topic, m.key, m.value) for m in kept] == [
        ("events", b"a", b"e1"), ("state", b"b", b"1"), ("events", b"a", b"e2"), ("state", b"a", b"")]
    assert keep_latest(out, frozenset()) == out  # other topics keep every record
