"""Writing to Kafka: the idempotent producer, one-off writes (``send_all``), and a transaction's commit.

``commit_batch`` is how every transaction of the hub commits: each output acknowledged, then the consumed
offsets, or nothing at all.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from aiokafka import AIOKafkaProducer

from bus._clients import bounded, producer_kwargs
from bus._errors import kafka_errors
from bus._metrics import TRANSACTIONS
from bus._records import OutMessage
from bus.errors import ProduceError, TransportError

__all__ = ["COMMIT_SECONDS", "Producer", "commit_batch", "keep_latest", "send_all", "send_confirmed"]

#: Seconds a transaction may take to commit before the service is restarted.
COMMIT_SECONDS = 30.0


class Producer:
    """The ingress producer: idempotent, ``acks=all``; ``send`` returns once the broker has it."""

    def __init__(self, bootstrap: str) -> None:
        self._producer = AIOKafkaProducer(**producer_kwargs(bootstrap))

    async def start(self) -> None:
        async with kafka_errors("start producer"):
            await self._producer.start()

    async def stop(self) -> None:
        async with kafka_errors("stop producer"):
            await self._producer.stop()

    async def send(self, message: OutMessage) -> tuple[int, int]:
        """Write and wait for the acknowledgement; return (partition, offset)."""
        try:
            async with kafka_errors(f"produce to {message.topic}"):
                meta = await self._producer.send_and_wait(
                    message.topic, message.value, key=message.key, headers=list(message.headers)
                )
        except TransportError as exc:
            raise ProduceError(str(exc)) from exc
        return meta.partition, meta.offset


def keep_latest(outputs: Sequence[OutMessage], topics: frozenset[str]) -> Sequence[OutMessage]:
    """``outputs`` without the records of ``topics`` that a later record for the same key supersedes."""
    if not topics:
        return outputs
    last = {(out.topic, out.key): index for index, out in enumerate(outputs) if out.topic in topics}
    return [out for index, out in enumerate(outputs) if out.topic not in topics or last[(out.topic, out.key)] == index]


async def send_confirmed(producer: AIOKafkaProducer, outputs: Iterable[OutMessage],
                         offsets: dict[Any, int] | None = None, group_id: str = "") -> None:
    """Write ``outputs`` (and ``offsets``) inside the open transaction and wait until the broker has
    acknowledged every record.

    aiokafka 0.14 commits a transaction even when one of its batches failed (OutOfOrderSequenceNumber
    after a broker restart, for one): the offsets would be committed without that output. Waiting for
    every delivery turns such a failure into an exception inside the transaction, which aborts it (the
    offsets with it). The offsets are added while the records are in flight: one round trip less.
    """
    deliveries = [await producer.send(out.topic, out.value, key=out.key, headers=list(out.headers))
                  for out in outputs]
    if offsets:
        await producer.send_offsets_to_transaction(offsets, group_id)
    for outcome in await asyncio.gather(*deliveries, return_exceptions=True):
        if isinstance(outcome, BaseException):
            raise outcome


async def commit_batch(producer: AIOKafkaProducer, outputs: Sequence[OutMessage], offsets: dict[Any, int] | None = None,
                       group_id: str = "", *, what: str, service: str = "other") -> None:
    """One transaction: every output acknowledged, then the consumed ``offsets`` (if any) committed with them.

    Raises TransportError when Kafka does not answer within ``COMMIT_SECONDS`` and the translated aiokafka
    error when a delivery or the commit fails; the transaction is then aborted (or never committed).
    """
    async def commit() -> None:
        async with kafka_errors(what), producer.transaction():
            await send_confirmed(producer, outputs, offsets, group_id)

    try:
        await bounded(commit(), COMMIT_SECONDS)
    except TimeoutError:
        # Seen after broker restarts: aiokafka's sender dies and the commit future never resolves.
        raise TransportError(f"{what}: no answer in {COMMIT_SECONDS} s") from None
    TRANSACTIONS.inc(service)


async def send_all(
    bootstrap: str,
    messages: Sequence[tuple[OutMessage, int | None]],
    *,
    transactional_id: str | None = None,
    on_sent: Callable[[int], None] | None = None,
    then: Callable[[list[tuple[str, int, int]]], Sequence[tuple[OutMessage, int | None]]] | None = None,
) -> list[tuple[str, int, int]]:
    """Write (message, partition or None for the key's partition) in order; return each (topic, partition, offset).

    With ``transactional_id`` every message is written in one transaction (all or none, and a second
    writer with the same id fences the first); otherwise the idempotent producer is used.
    ``on_sent`` gets the number acknowledged so far. ``then`` receives the positions of ``messages``
    once they are acknowledged and returns more records to write after them (in the same transaction,
    when there is one): a receipt that names where the first records went.
    """
    kwargs = producer_kwargs(bootstrap)
    if transactional_id is not None:
        kwargs["transactional_id"] = transactional_id
    producer = AIOKafkaProducer(**kwargs)
    written: list[tuple[str, int, int]] = []

    async def write() -> None:
        await write_batch(messages)
        if then is not None:
            await write_batch(then(list(written)))

    async def write_batch(batch: Sequence[tuple[OutMessage, int | None]]) -> None:
        window: list[asyncio.Future[Any]] = []
        for message, partition in batch:
            window.append(await producer.send(message.topic, message.value, key=message.key or None,
                                              partition=partition, headers=list(message.headers)))
            if len(window) >= 500:
                await flush(window)
        await flush(window)

    async def flush(window: list[asyncio.Future[Any]]) -> None:
        for meta in await asyncio.gather(*window):
            written.append((meta.topic, meta.partition, meta.offset))
        window.clear()
        if on_sent is not None:
            on_sent(len(written))

    try:
        async with kafka_errors("write records"):
            await producer.start()
            try:
                if transactional_id is None:
                    await write()
                else:
                    async with producer.transaction():
                        await write()
            finally:
                await producer.stop()
    except TransportError as exc:
        raise ProduceError(str(exc)) from exc
    return written
