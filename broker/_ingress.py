"""The ingress API: the trader portal's door to the hub.

``POST /v1/submissions`` answers 202 only after the canonical record is on ``nsw.submissions``
(acks=all): an accepted submission is never lost. Bad documents get RFC 9457 problem details
naming the element and line.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
import structlog
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from broker._envelope import avro_message
from broker._ids import new_submission_id
from broker._kafka import Producer
from broker._openapi import openapi_document
from broker._problems import problem
from broker._topics import SUBMISSIONS
from broker._view import StatusView, render_response, render_status
from broker.errors import TransportError
from schemas import DocumentError, Submission, read_declaration

log = structlog.get_logger("nsw.ingress")

XML_TYPES = frozenset({"application/xml", "text/xml"})
THREAD_THRESHOLD = 256 * 1024  # parse bigger documents off the event loop
MAX_WAIT_SECONDS = 60.0


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=headers)


class Ingress:
    def __init__(self, *, producer: Producer, view: StatusView, max_body_bytes: int, max_in_flight: int) -> None:
        self._producer = producer
        self._view = view
        self._max_body = max_body_bytes
        self._max_in_flight = max_in_flight
        self._in_flight = 0
        self.accepted = 0
        self.rejected = 0

    async def submit(self, request: Request) -> Response:
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media not in XML_TYPES:
            self.rejected += 1
            return problem("unsupported-media-type", detail=f"Content-Type {media or '(none)'} is not accepted")
        if self._in_flight >= self._max_in_flight:
            return problem("overloaded", detail="too many submissions in flight", headers={"Retry-After": "1"})
        self._in_flight += 1
        try:
            return await self._submit(request)
        finally:
            self._in_flight -= 1

    async def _read_body(self, request: Request) -> bytes | None:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self._max_body:
            return None
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self._max_body:
                return None
            chunks.append(chunk)
        return b"".join(chunks)

    async def _submit(self, request: Request) -> Response:
        body = await self._read_body(request)
        if body is None:
            self.rejected += 1
            return problem("too-large", detail=f"the body exceeds {self._max_body} bytes")
        received_at = int(time.time() * 1000)
        submission_id = new_submission_id(received_at)
        try:
            if len(body) > THREAD_THRESHOLD:
                submission = await run_in_threadpool(
                    read_declaration, body, submission_id=submission_id, received_at=received_at,
                    max_bytes=self._max_body,
                )
            else:
                submission = read_declaration(
                    body, submission_id=submission_id, received_at=received_at, max_bytes=self._max_body
                )
        except DocumentError as exc:
            self.rejected += 1
            log.info("rejected", problem=exc.type, errors=len(exc.errors))
            return problem(
                exc.type,
                status=exc.status,
                detail=str(exc),
                errors=[{"message": e.message, "line": e.line, "path": e.path} for e in exc.errors],
            )
        return await self._publish(submission)

    async def _publish(self, submission: Submission) -> Response:
        sid = submission["submission_id"]
        try:
            await self._producer.send(avro_message(SUBMISSIONS, "Submission", submission))
        except TransportError as exc:
            log.exception("publish_failed", submission_id=sid, error=str(exc))
            return problem("unavailable", detail="Kafka did not acknowledge the submission; nothing was accepted",
                           headers={"Retry-After": "5"})
        self._view.accepted(sid, version=submission["version"], received_at=submission["received_at"])
        self.accepted += 1
        log.info("accepted", submission_id=sid, version=submission["version"], items=len(submission["items"]),
                 kind=submission["kind"])
        links = {"self": f"/v1/submissions/{sid}", "response": f"/v1/submissions/{sid}/response"}
        return _json(
            {"submission_id": sid, "status": "accepted", "version": submission["version"],
             "trader_reference": submission["trader_reference"], "links": links},
            status=202,
            headers={"Location": links["self"]},
        )

    async def status(self, request: Request) -> Response:
        sid = request.path_params["submission_id"]
        entry = self._view.get(sid)
        if entry is None:
            return problem("not-found", detail=f"no submission {sid}", instance=request.url.path)
        return _json(render_status(entry))

    async def response(self, request: Request) -> Response:
        """The release response; ``?wait=N`` long-polls up to N seconds for it."""
        sid = request.path_params["submission_id"]
        try:
            wait = min(float(request.query_params.get("wait", "0")), MAX_WAIT_SECONDS)
        except ValueError:
            wait = 0.0
        entry = await self._view.wait_final(sid, wait)
        if entry is None:
            return problem("not-found", detail=f"no submission {sid}", instance=request.url.path)
        state = entry.state
        if state is None or state["response"] is None or entry.status not in {"released", "held", "refused"}:
            return _json({"submission_id": sid, "status": entry.status, "response": None}, status=202,
                         headers={"Retry-After": "1"})
        return _json(render_response(state["response"]))

    async def healthz(self, request: Request) -> Response:
        return _json({"status": "ok"})

    async def openapi(self, request: Request) -> Response:
        return _json(openapi_document())


def create_app(ingress: Ingress) -> Starlette:
    return Starlette(
        routes=[
            Route("/v1/submissions", ingress.submit, methods=["POST"]),
            Route("/v1/submissions/{submission_id}", ingress.status, methods=["GET"]),
            Route("/v1/submissions/{submission_id}/response", ingress.response, methods=["GET"]),
            Route("/healthz", ingress.healthz, methods=["GET"]),
            Route("/openapi.json", ingress.openapi, methods=["GET"]),
        ]
    )

