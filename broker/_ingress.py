"""The ingress API: the trader portal's door to the hub.

``POST /v1/submissions`` answers 202 only after the canonical record is on ``nsw.submissions``
(acks=all): an accepted submission is never lost. Bad documents get RFC 9457 problem details
naming the element and line. A declaration lodged twice is answered, not processed twice; an
amendment becomes the next version of the submission it amends.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final

import orjson
import structlog
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from broker import _metrics as metrics
from broker._envelope import DECLARANT_HEADER, DIGEST_HEADER, KIND_HEADER, TRADER_HEADER, avro_message
from broker._http import bounded_body
from broker._idempotency import Stored, fingerprint, valid_key
from broker._lodgement import Lodgement, content_digest, decide_lodgement, submission_id_for
from broker._openapi import openapi_document
from broker._problems import problem
from broker._signing import ResponseSigner
from broker._topics import SUBMISSIONS
from broker._view import FINAL, Entry, StatusView, render_response, render_status, render_timeline
from broker.errors import OutputTooLarge, TransportError
from bus import Publisher
from bus._limits import MAX_MESSAGE_BYTES
from schemas import BundleSet, DocumentError, Submission, read_avro_submission, read_submission, response_xml

log = structlog.get_logger("nsw.ingress")

XML_TYPES = frozenset({"application/xml", "text/xml"})
AVRO_TYPES = frozenset({"avro/binary", "application/avro"})
THREAD_THRESHOLD = 16 * 1024  # parse bigger documents off the event loop, in the validation pool
MAX_WAIT_SECONDS = 60.0
ANONYMOUS = "anonymous"
#: Room every message derived from a submission needs beyond the submission's own content: an agency
#: request adds one routing reason per item (a rule id and a sentence, under 300 bytes), and each
#: record carries headers and batch framing.
ROUTING_BYTES_PER_ITEM: Final = 320
RECORD_OVERHEAD_BYTES: Final = 16 * 1024


def submission_budget(items: int) -> int:
    """The most bytes an encoded Submission with ``items`` items may have, so that what the hub derives
    from it (the agency requests, which carry the items and a reason for each) fits MAX_MESSAGE_BYTES."""
    return MAX_MESSAGE_BYTES - RECORD_OVERHEAD_BYTES - items * ROUTING_BYTES_PER_ITEM


class BodyTimeout(Exception):  # noqa: N818 - named for the answer it becomes (408)
    """The client did not send the whole body within the body deadline."""


class KeyedLocks:
    """One asyncio lock per key, dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    def __len__(self) -> int:
        return len(self._locks)


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=headers)


def trader_of(request: Request) -> str:
    """Who is lodging: the authenticated trader (set by the auth middleware) or anonymous."""
    trader = request.scope.get("nsw.trader")
    return trader if isinstance(trader, str) else ANONYMOUS


class Ingress:
    def __init__(self, *, producer: Publisher, view: StatusView, max_body_bytes: int, max_in_flight: int,
                 max_backlog: int, bundles: BundleSet | None = None,
                 signer: ResponseSigner | None = None, max_in_flight_per_trader: int = 50,
                 body_timeout: float = 30.0, validation_workers: int = 2) -> None:
        self._producer = producer
        self._signer = signer
        self._bundles = bundles if bundles is not None else BundleSet.default()
        self._view = view
        self._max_body = max_body_bytes
        self._max_in_flight = max_in_flight
        self._max_per_trader = max_in_flight_per_trader
        self._body_timeout = body_timeout
        self.max_backlog = max_backlog  # adjustable while running
        self._in_flight = 0
        self._per_trader: Counter[str] = Counter()  # open submissions per trader, body reading included
        # Large bodies are parsed and validated here, a few at a time: libxml2 runs without the GIL, and
        # a queue of hostile bodies waits for a worker instead of taking every core.
        self._pool = ThreadPoolExecutor(max_workers=validation_workers, thread_name_prefix="nsw-validate")
        self._locks = KeyedLocks()
        self._validating = KeyedLocks()  # one pool worker per trader at a time: a flood waits its own turn
        self.accepted = 0
        self.rejected = 0
        self.duplicates = 0

    def close(self) -> None:
        """Stop the validation pool (validations under way finish; their answers go nowhere)."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def submit(self, request: Request) -> Response:
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media not in XML_TYPES and media not in AVRO_TYPES:
            self.rejected += 1
            return problem("unsupported-media-type", detail=f"Content-Type {media or '(none)'} is not accepted")
        trader = trader_of(request)
        if self._per_trader[trader] >= self._max_per_trader:
            # One trader's slow or many uploads use its own share only; others keep theirs.
            metrics.SUBMISSIONS_REJECTED.inc("too-many-in-flight")
            return problem("too-many-in-flight", detail=f"trader {trader} has {self._max_per_trader} submissions "
                           "in flight, the most it may have", headers={"Retry-After": "1"})
        if (refusal := self._overloaded()) is not None:  # before reading a body that would be refused
            return refusal
        self._per_trader[trader] += 1
        try:
            return await self._submit(request, media, trader)
        finally:
            self._per_trader[trader] -= 1
            if not self._per_trader[trader]:
                del self._per_trader[trader]

    def _overloaded(self) -> Response | None:
        if self._in_flight >= self._max_in_flight:
            return problem("overloaded", detail="too many submissions in flight", headers={"Retry-After": "1"})
        backlog = self._view.backlog(int(time.time() * 1000))
        if backlog >= self.max_backlog:
            # Accepting more would only lengthen the queue in Kafka: every answer would come later.
            metrics.SUBMISSIONS_REJECTED.inc("overloaded")
            return problem("overloaded", detail=f"the hub is behind: {backlog} accepted submissions wait for "
                           "routing", headers={"Retry-After": "2"})
        return None

    async def _submit(self, request: Request, media: str, trader: str) -> Response:
        try:
            body = await self._read_body(request)
        except BodyTimeout:
            self.rejected += 1
            metrics.SUBMISSIONS_REJECTED.inc("request-timeout")
            return problem("request-timeout", detail=f"the body was not received within {self._body_timeout:g} s",
                           headers={"Connection": "close"})
        except ClientDisconnect:
            return problem("bad-request", detail="the client went away before sending the whole body")
        if body is None:
            self.rejected += 1
            return problem("too-large", detail=f"the body exceeds {self._max_body} bytes")
        # The in-flight slot is taken only now: a slow upload holds its trader's share, not the hub's.
        if (refusal := self._overloaded()) is not None:
            return refusal
        self._in_flight += 1
        try:
            key = request.headers.get("idempotency-key")
            is_avro = media in AVRO_TYPES
            if key is None:
                return await self._lodge(body, trader=trader, avro=is_avro)
            return await self._lodge_once(trader, key, media, body, avro=is_avro)
        finally:
            self._in_flight -= 1

    async def _lodge_once(self, trader: str, key: str, media: str, body: bytes, *, avro: bool) -> Response:
        """Idempotency-Key semantics (IETF draft): replay, 422 on reuse with another body, 409 in flight."""
        if not valid_key(key):
            return problem("bad-idempotency-key", detail="Idempotency-Key must be 1-255 printable characters")
        store = self._view.idempotency
        print_ = fingerprint(body, media)
        verdict, stored = store.check(trader, key, print_)
        if verdict == "replay" and stored is not None:
            return Response(stored.body, status_code=stored.status, media_type=_media_for(stored.status),
                            headers={"Idempotent-Replayed": "true"})
        if verdict == "mismatch":
            return problem("idempotency-key-reused",
                           detail="this Idempotency-Key was used with a different request body")
        if verdict == "in-flight":
            return problem("idempotency-in-flight", detail="the first request with this Idempotency-Key is "
                           "still being processed", headers={"Retry-After": "1"})
        store.begin(trader, key, print_)
        record = None
        try:
            answer = await self._lodge(body, trader=trader, avro=avro)
            if answer.status_code < 500:
                record = store.complete(trader, key, Stored(print_, answer.status_code, bytes(answer.body),
                                                            int(time.time() * 1000)))
        finally:
            if record is None:
                # A 5xx, an exception or a cancelled request: worth retrying with the same key.
                store.abandon(trader, key)
        if record is not None:
            try:
                await self._producer.send(record)
            except TransportError as exc:
                log.warning("idempotency_record_not_kept", error=str(exc))
        return answer

    async def _read_body(self, request: Request) -> bytes | None:
        """The whole body, None when it exceeds the limit; BodyTimeout when it is not in within the deadline."""
        try:
            async with asyncio.timeout(self._body_timeout):
                return await bounded_body(request, self._max_body)
        except TimeoutError:
            raise BodyTimeout from None

    def _read(self, body: bytes, received_at: int, avro: bool) -> Submission:
        if avro:
            return read_avro_submission(body, submission_id="", received_at=received_at, max_bytes=self._max_body)
        return read_submission(body, bundles=self._bundles, submission_id="", received_at=received_at,
                               max_bytes=self._max_body)

    async def _lodge(self, body: bytes, *, trader: str, avro: bool = False) -> Response:
        received_at = int(time.time() * 1000)
        if avro and len(body) > submission_budget(0):
            # The Avro body is the Submission's content: one this big cannot fit any message.
            self.rejected += 1
            metrics.SUBMISSIONS_REJECTED.inc("too-large")
            detail = (f"an Avro submission of {len(body)} bytes cannot fit the hub's Kafka message budget "
                      f"({MAX_MESSAGE_BYTES} bytes per message, {submission_budget(0)} for the submission)")
            return problem("too-large", detail=detail, errors=[{"message": detail, "line": None, "path": None}])
        try:
            if len(body) > THREAD_THRESHOLD:
                loop = asyncio.get_running_loop()
                async with self._validating.hold(trader):
                    submission = await loop.run_in_executor(self._pool, functools.partial(
                        self._read, body, received_at, avro))
            else:
                submission = self._read(body, received_at, avro)
        except DocumentError as exc:
            self.rejected += 1
            metrics.SUBMISSIONS_REJECTED.inc(exc.type)
            log.info("rejected", problem=exc.type, errors=len(exc.errors))
            return problem(
                exc.type,
                status=exc.status,
                detail=str(exc),
                errors=[{"message": e.message, "line": e.line, "path": e.path} for e in exc.errors],
            )
        submission["trader"] = trader
        amends = submission.pop("amends_id", None)
        sid = submission_id_for(submission["declarant_id"], submission["trader_reference"], trader=trader)
        if amends is not None and await self._view.find(sid) is None:
            found = self._amended(await self._view.find(amends), amends, submission, trader)
            if isinstance(found, Response):
                return found
            sid = found
        digest = content_digest(submission)
        async with self._locks.hold(sid):  # decide-then-publish must not interleave for one submission
            entry = await self._view.find(sid)
            lodgement = decide_lodgement(entry.known if entry else None, submission["kind"], digest)
            if lodgement.action != "publish":
                return self._not_published(sid, submission, lodgement, entry)
            submission["submission_id"] = sid
            submission["version"] = lodgement.version
            return await self._publish(submission, digest)

    def _amended(self, target: Entry | None, amends: str, submission: Submission, trader: str) -> str | Response:
        """The submission an amendment or cancellation names by id (WCO DM Declaration/ID: the MRN in CDS,
        here the hub's submission id), ``target`` when found, when its declarant and reference do not find
        one. A declarant it leaves out is the original's."""
        if target is None or target.trader != trader:  # another trader's id is as unknown as a wrong one
            self.rejected += 1
            verb = "amend" if submission["kind"] == "AMENDMENT" else "cancel"
            detail = f"no submission {amends} of this trader to {verb}"
            return problem("unknown-reference", detail=detail,
                           errors=[{"message": detail, "line": None, "path": "/MetaData/Declaration/ID"}])
        if not submission["declarant_id"]:
            submission["declarant_id"] = target.declarant
        return amends

    def _not_published(self, sid: str, submission: Submission, lodgement: Lodgement, entry: Entry | None) -> Response:
        links = _links(sid)
        if lodgement.action == "duplicate":
            self.duplicates += 1
            log.info("duplicate", submission_id=sid, version=lodgement.version)
            return _json({"submission_id": sid, "status": entry.status if entry else "accepted",
                          "version": lodgement.version, "trader_reference": submission["trader_reference"],
                          "duplicate": True, "detail": lodgement.reason, "links": links},
                         headers={"Location": links["self"]})
        self.rejected += 1
        slug = "reference-conflict" if lodgement.action == "conflict" else "unknown-reference"
        instance = links["self"] if lodgement.action == "conflict" else None
        error = {"message": lodgement.reason, "line": None, "path": "/MetaData/Declaration/FunctionalReferenceID"}
        return problem(slug, detail=lodgement.reason, instance=instance, errors=[error])

    async def _publish(self, submission: Submission, digest: str) -> Response:
        sid = submission["submission_id"]
        message = avro_message(SUBMISSIONS, "Submission", submission, extra=(
            (KIND_HEADER, submission["kind"].encode()), (DIGEST_HEADER, digest.encode()),
            (TRADER_HEADER, submission.get("trader", ANONYMOUS).encode()),
            (DECLARANT_HEADER, submission["declarant_id"].encode())))
        budget = submission_budget(len(submission["items"]))
        if len(message.value) > budget:
            self.rejected += 1
            metrics.SUBMISSIONS_REJECTED.inc("too-large")
            log.info("rejected", problem="too-large", bytes=len(message.value), budget=budget)
            detail = (f"the declaration encodes to {len(message.value)} bytes; with {len(submission['items'])} "
                      f"items the messages derived from it fit the hub's Kafka message budget "
                      f"({MAX_MESSAGE_BYTES} bytes) only up to {budget} bytes")
            return problem("too-large", detail=detail, errors=[{"message": detail, "line": None, "path": None}])
        try:
            await self._producer.send(message)
        except OutputTooLarge as exc:  # the configured budget (NSW_MAX_MESSAGE_BYTES) is below the default
            self.rejected += 1
            return problem("too-large", detail=f"the declaration does not fit the hub's Kafka message budget: {exc}")
        except TransportError as exc:
            log.exception("publish_failed", submission_id=sid, error=str(exc))
            return problem("unavailable", detail="Kafka did not acknowledge the submission; nothing was accepted",
                           headers={"Retry-After": "5"})
        self._view.accepted(sid, version=submission["version"], received_at=submission["received_at"],
                            digest=digest, kind=submission["kind"], trader=submission.get("trader", ANONYMOUS),
                            declarant=submission["declarant_id"])
        self.accepted += 1
        metrics.SUBMISSIONS_ACCEPTED.inc(submission["kind"])
        log.info("accepted", submission_id=sid, version=submission["version"], items=len(submission["items"]),
                 kind=submission["kind"])
        links = _links(sid)
        return _json(
            {"submission_id": sid, "status": "accepted", "version": submission["version"],
             "kind": submission["kind"], "trader_reference": submission["trader_reference"], "links": links},
            status=202,
            headers={"Location": links["self"]},
        )

    async def status(self, request: Request) -> Response:
        sid = request.path_params["submission_id"]
        entry = await self._find(sid)
        if isinstance(entry, Response):
            return entry
        if (refusal := _refuse_access(request, sid, entry)) is not None:
            return refusal
        assert entry is not None
        return _json(render_status(entry))

    async def timeline(self, request: Request) -> Response:
        sid = request.path_params["submission_id"]
        entry = await self._find(sid)
        if isinstance(entry, Response):
            return entry
        if (refusal := _refuse_access(request, sid, entry)) is not None:
            return refusal
        assert entry is not None
        return _json(render_timeline(entry))

    async def response(self, request: Request) -> Response:
        """The release response; ``?wait=N`` long-polls up to N seconds for it."""
        sid = request.path_params["submission_id"]
        wait = _wait_seconds(request.query_params.get("wait", "0"))
        if wait is None:
            return problem("bad-request", detail="wait is a number of seconds, 0 or more (at most "
                           f"{MAX_WAIT_SECONDS:g} are waited)", instance=request.url.path,
                           errors=[{"message": "not a finite number >= 0", "line": None, "path": "?wait"}])
        found = await self._find(sid)
        if isinstance(found, Response):
            return found
        if (refusal := _refuse_access(request, sid, found)) is not None:
            return refusal
        entry = found if found is not None and found.status in FINAL else await self._view.wait_final(sid, wait)
        if entry is None:
            return problem("not-found", detail=f"no submission {sid}", instance=request.url.path)
        state = entry.state
        if state is None or state["response"] is None or entry.status not in FINAL:
            return _json({"submission_id": sid, "status": entry.status, "response": None}, status=202,
                         headers={"Retry-After": "1"})
        accept = request.headers.get("accept", "")
        if "xml" in accept:
            return Response(response_xml(state["response"]), media_type="application/xml")
        rendered = render_response(state["response"])
        if self._signer is None:
            return _json(rendered)
        jws = self._signer.sign(rendered)
        if "application/jose" in accept:
            return Response(jws, media_type="application/jose")
        return _json(rendered, headers={"NSW-Response-JWS": jws})

    async def _find(self, sid: str) -> Entry | Response | None:
        """The submission (read back from Kafka when it left memory), or a 503 when Kafka cannot say now."""
        try:
            return await self._view.find(sid)
        except TransportError as exc:
            log.warning("read_back_failed", submission_id=sid, error=str(exc))
            return problem("unavailable", detail="the submission's state could not be read from Kafka now",
                           headers={"Retry-After": "5"})

    async def jwks(self, request: Request) -> Response:
        return _json(self._signer.jwks() if self._signer is not None else {"keys": []})

    async def healthz(self, request: Request) -> Response:
        return _json({"status": "ok"})

    async def metrics(self, request: Request) -> Response:
        return Response(metrics.render(), media_type="text/plain; version=0.0.4")

    async def openapi(self, request: Request) -> Response:
        return _json(openapi_document())


def _wait_seconds(raw: str) -> float | None:
    """``?wait=``'s seconds, capped at MAX_WAIT_SECONDS; None when it is not a finite number >= 0."""
    try:
        seconds = float(raw)
    except ValueError:
        return None
    return min(seconds, MAX_WAIT_SECONDS) if math.isfinite(seconds) and seconds >= 0 else None


def _refuse_access(request: Request, sid: str, entry: Entry | None) -> Response | None:
    """404 for an unknown submission, 403 for another trader's."""
    if entry is None:
        return problem("not-found", detail=f"no submission {sid}", instance=request.url.path)
    if entry.trader != trader_of(request):
        return problem("forbidden", detail="this submission was lodged by another trader", instance=request.url.path)
    return None


def _links(sid: str) -> dict[str, str]:
    return {"self": f"/v1/submissions/{sid}", "response": f"/v1/submissions/{sid}/response",
            "timeline": f"/v1/submissions/{sid}/timeline"}


def _media_for(status: int) -> str:
    return "application/problem+json" if status >= 400 else "application/json"


#: Starlette's own refusals, as problem types.
_HTTP_SLUGS: Final = {400: "bad-request", 404: "no-such-resource", 405: "method-not-allowed"}


async def _http_error(request: Request, exc: Exception) -> Response:
    """Starlette's 404 (no route), 405 (wrong method) and the like, as problem+json."""
    assert isinstance(exc, HTTPException)
    slug = _HTTP_SLUGS.get(exc.status_code, "bad-request")
    detail = f"{request.method} {request.url.path}: {exc.detail}"
    if exc.status_code == 404:
        detail = f"no resource at {request.url.path}"
    elif exc.status_code == 405:
        detail = f"{request.url.path} does not accept {request.method}"
    return problem(slug, detail=detail, status=exc.status_code, instance=request.url.path,
                   headers=dict(exc.headers) if exc.headers else None)


async def _internal_error(request: Request, exc: Exception) -> Response:
    """An unexpected failure: the trader gets problem+json (no details of ours); the log gets the error."""
    log.error("internal_error", path=request.url.path, error_type=exc.__class__.__name__)
    return problem("internal-error", detail="the hub failed while answering; retry later",
                   instance=request.url.path)


def create_app(ingress: Ingress, *, extra_routes: Sequence[BaseRoute] = ()) -> Starlette:
    return Starlette(
        exception_handlers={HTTPException: _http_error, Exception: _internal_error},
        routes=[
            *extra_routes,
            Route("/v1/submissions", ingress.submit, methods=["POST"]),
            Route("/v1/submissions/{submission_id}", ingress.status, methods=["GET"]),
            Route("/v1/submissions/{submission_id}/response", ingress.response, methods=["GET"]),
            Route("/v1/submissions/{submission_id}/timeline", ingress.timeline, methods=["GET"]),
            Route("/healthz", ingress.healthz, methods=["GET"]),
            Route("/metrics", ingress.metrics, methods=["GET"]),
            Route("/.well-known/jwks.json", ingress.jwks, methods=["GET"]),
            Route("/openapi.json", ingress.openapi, methods=["GET"]),
        ]
    )
