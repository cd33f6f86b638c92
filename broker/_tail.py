"""Read models that follow whole topics (status view, API keys, webhook registrations) and changelog restores.

One bad record must not end a reader: a record its ``apply`` cannot take is counted
(``nsw_tail_bad_records_total{topic}``), logged (where, and why; never the payload), copied to the
dead-letter topic with its reason through a plain producer (best effort, with retries) and skipped. The
reading task restarts itself, carrying on from where it stopped, when it fails, is cancelled under it, or
stalls (a Kafka call that does not return); ``health()`` says what is wrong for ``/readyz``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from typing import Final

import structlog

from broker import _metrics as metrics
from broker._envelope import InMessage, OutMessage
from broker._topics import DLQ
from broker.errors import NSWError
from bus import Bus, Publisher, Tail, bounded, dead_letter, fit_dead_letter
from bus._limits import dlq_limit

__all__ = ["DeadLetters", "FollowedTail", "guarded"]

log = structlog.get_logger("nsw.tail")

Apply = Callable[[InMessage], None]

#: Seconds without a completed fetch before a tail counts as stuck (``/readyz`` says so).
STUCK_SECONDS: Final = 20.0
#: Dead letters waiting to be written beyond which more are dropped (logged and counted).
MAX_QUEUED: Final = 1_000


class DeadLetters:
    """Copies bad records to the DLQ in the background: started when there is something to write and ended
    when there is nothing left, so a reader that never meets a bad record never opens a producer."""

    def __init__(self, bus: Bus, *, dlq: str = DLQ, attempts: int = 5) -> None:
        self._bus = bus
        self._dlq = dlq
        self._attempts = attempts
        self._queue: asyncio.Queue[OutMessage] = asyncio.Queue(maxsize=MAX_QUEUED)
        self._task: asyncio.Task[None] | None = None
        self._running: set[asyncio.Task[None]] = set()
        self.sent = 0
        self.lost = 0

    def put(self, message: InMessage, error: BaseException, *, service: str) -> None:
        letter = fit_dead_letter(dead_letter(message, error, service=service, dlq=self._dlq), dlq_limit())
        if self._queue.full():
            self.lost += 1
            log.error("tail_dead_letter_dropped", topic=message.topic, partition=message.partition,
                      offset=message.offset, reason="too many waiting")
            return
        self._queue.put_nowait(letter)
        if self._task is None:
            self._task = asyncio.create_task(self._drain(), name="tail-dead-letters")
            self._running.add(self._task)
            self._task.add_done_callback(self._running.discard)

    async def _drain(self) -> None:
        producer: Publisher | None = None
        try:
            while True:
                if self._queue.empty():
                    self._task = None  # no await since the check: a put from now on starts a new drain
                    return
                letter = self._queue.get_nowait()
                error = ""
                for attempt in range(1, self._attempts + 1):
                    try:
                        if producer is None:
                            producer = self._bus.publisher()
                            await producer.start()
                        await producer.send(letter)
                    except NSWError as exc:
                        error = str(exc)[:300]
                        if producer is not None:
                            with contextlib.suppress(NSWError):
                                await producer.stop()
                            producer = None
                        if attempt < self._attempts:
                            await asyncio.sleep(min(5.0, 0.25 * 2 ** attempt))
                    else:
                        self.sent += 1
                        break
                else:
                    self.lost += 1
                    log.error("tail_dead_letter_lost", attempts=self._attempts, error=error)
        finally:
            if producer is not None:
                with contextlib.suppress(NSWError):
                    await producer.stop()

    async def flush(self, seconds: float = 10.0) -> None:
        """Until what was put has been written (or given up): for an orderly stop and for tests."""
        if self._running:
            await asyncio.wait(set(self._running), timeout=seconds)


def bad_record(message: InMessage, error: BaseException, *, reader: str, letters: DeadLetters | None) -> None:
    """Count, log and dead-letter a record ``reader`` could not take; the caller skips it. Without ``letters``
    (a read model over topics whose own consumers dead-letter what they cannot take) it is counted and logged
    at debug level only: one bad record is one dead letter, not one per reader and restart."""
    metrics.TAIL_BAD_RECORDS.inc(message.topic)
    event = log.warning if letters is not None else log.debug
    event("tail_bad_record", reader=reader, topic=message.topic, partition=message.partition,
          offset=message.offset, error_type=error.__class__.__name__, error=str(error)[:300])
    if letters is not None:
        letters.put(message, error, service=reader)


def guarded(apply: Apply, *, reader: str, letters: DeadLetters | None) -> Apply:
    """``apply`` that reports and skips a record it cannot take instead of raising."""

    def guarded_apply(message: InMessage) -> None:
        try:
            apply(message)
        except Exception as exc:  # noqa: BLE001 - whatever one record breaks, it is reported and skipped
            bad_record(message, exc, reader=reader, letters=letters)

    return guarded_apply


class FollowedTail:
    """A ``Tail`` of the bus read for the process's lifetime by a task that survives bad records and restarts."""

    def __init__(self, *, name: str, bus: Bus, topics: Sequence[str], apply: Apply,
                 stuck_seconds: float = STUCK_SECONDS, dead_letter: bool = True, patient: bool = False) -> None:
        self.name = name
        self._bus = bus
        self._topics = tuple(topics)
        #: A read model no one waits for by the millisecond: its fetches gather a quarter of a second (``Bus.tail``).
        self._patient = patient
        self.letters = DeadLetters(bus)
        #: ``dead_letter=False``: a read model over other services' inputs, which dead-letter bad records themselves.
        self._apply = guarded(apply, reader=name, letters=self.letters if dead_letter else None)
        #: Seconds without a completed fetch before it is stuck; twice that, it is restarted.
        self.stuck_seconds = stuck_seconds
        self.caught_up = asyncio.Event()
        self.restarts = 0
        self._tail: Tail | None = None
        self._positions: dict[tuple[str, int], int] = {}
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._beat = 0.0
        self._failure: str | None = None
        self._closing: set[asyncio.Future[None]] = set()

    async def start(self) -> None:
        """Start reading (raises when Kafka cannot be reached: the caller decides whether to wait)."""
        self._tail = self._bus.tail(self._topics, patient=self._patient)
        await self._tail.start()
        self._beat = time.monotonic()
        self._launch()

    def _launch(self) -> None:
        self._task = asyncio.create_task(self._follow(), name=f"tail-{self.name}")
        self._task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[None]) -> None:
        """A reading task must end only when stopped; otherwise (cancelled under it) it starts again."""
        if self._stopping:
            return
        self.restarts += 1
        metrics.TAIL_RESTARTS.inc(self.name)
        log.error("tail_task_ended", tail=self.name, cancelled=task.cancelled())
        self._failure = "its reading task ended"
        self._discard_tail()
        self._launch()

    def health(self) -> str | None:
        """None when reading normally; else what is wrong."""
        if self._task is None:
            return "not started"
        if self._task.done():
            return "its reading task ended"
        if self._failure is not None:
            return f"restarting: {self._failure}"
        quiet = time.monotonic() - self._beat
        if quiet > self.stuck_seconds:
            return f"stuck: no fetch completed for {quiet:.0f} s"
        return None

    async def _follow(self) -> None:
        delay = 0.5
        while True:
            try:
                if self._tail is None:
                    tail = self._bus.tail(self._topics, patient=self._patient)
                    self._tail = tail
                    await bounded(tail.start(resume=self._positions), 2 * self.stuck_seconds)
                    log.info("tail_restarted", tail=self.name, partitions=len(self._positions))
                await self._read(self._tail)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if self._stopping or (task is not None and task.cancelling()):
                    raise
                failure = "an internal Kafka operation was cancelled"  # aiokafka, when a connection died
            except TimeoutError:
                failure = f"a Kafka call did not return in {2 * self.stuck_seconds:.0f} s"
            except NSWError as exc:
                failure = str(exc)[:300]
            except Exception as exc:  # a reader must outlive whatever breaks it
                failure = f"{exc.__class__.__name__}: {exc}"[:300]
                log.exception("tail_crashed", tail=self.name)
            self._failure = failure
            self.restarts += 1
            metrics.TAIL_RESTARTS.inc(self.name)
            log.warning("tail_restart", tail=self.name, error=failure, retry_in=delay)
            self._discard_tail()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)

    async def _read(self, tail: Tail) -> None:
        while True:
            messages = await bounded(tail.fetch(), 2 * self.stuck_seconds)
            self._beat = time.monotonic()
            self._failure = None
            for message in messages:
                self._positions[(message.topic, message.partition)] = message.offset + 1
                self._apply(message)
            if not self.caught_up.is_set() and await bounded(tail.caught_up(), 2 * self.stuck_seconds):
                self.caught_up.set()
                log.info("tail_caught_up", tail=self.name, partitions=len(self._positions))

    def _discard_tail(self) -> None:
        tail, self._tail = self._tail, None
        if tail is not None:
            closing = asyncio.ensure_future(_close(tail))
            self._closing.add(closing)  # kept referenced until done; awaited on stop
            closing.add_done_callback(self._closing.discard)

    async def stop(self) -> None:
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._tail is not None:
            await _close(self._tail)
        if self._closing:
            await asyncio.wait(set(self._closing), timeout=10)
        await self.letters.flush()


async def _close(tail: Tail) -> None:
    with contextlib.suppress(NSWError, TimeoutError):
        await tail.stop()
