"""The OpenAPI description: generated from the typed models, valid OpenAPI 3.1 (openapi-spec-validator), complete
(every route of the running app is described), true (real answers validate against it) and fuzzed: Schemathesis
drives every operation of the live hub with generated valid and invalid requests, and every answer must be a
documented status with a documented media type and body, never a 5xx.
"""

from __future__ import annotations

import asyncio
import copy
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal, NotRequired, TypedDict, get_type_hints

import httpx
import hypothesis
import jsonschema
import pytest
import schemathesis
from openapi_spec_validator import validate
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from starlette.applications import Starlette
from starlette.routing import Mount, Route

from broker._api_types import RenderedAgencyOutcome, RenderedResponse
from broker._auth import DEV_TRADER
from broker._cli import main
from broker._envelope import OutMessage
from broker._hub import Hub
from broker._ingress import _wait_seconds
from broker._openapi import OPERATIONS, openapi_document
from broker._webhook_guard import UrlPolicy
from broker._webhook_secrets import SecretBox
from broker._webhooks import WebhookRegistry, registration_routes
from broker.errors import TransportError
from bus.memory import MemoryBus
from schemas import AgencyOutcome, ReleaseResponse
from schemas._jsonschema import JsonSchema, SchemaSet, SchemaTypeError
from tests.conftest import SAMPLES, auth, poll, sample
from tests.test_decision_trust import agency_key

#: Examples per operation, generation mode (positive, negative) and path (generated, a real resource's).
EXAMPLES = 20
#: Avro bodies are bytes (``format: binary``), sent as they are generated.
schemathesis.serializer.alias(["avro/binary", "application/avro"], "application/octet-stream")


@schemathesis.serializer("application/xml", "text/xml")
def _xml_text(ctx: schemathesis.SerializationContext, value: Any) -> bytes:
    """An XML body is the document's text (``type: string``): sent as it is, not wrapped in an element."""
    return value if isinstance(value, bytes) else str(value).encode("utf-8", "surrogatepass")


CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance, negative_data_rejection]


# --- the generator (pure) ---------------------------------------------------------------------------------------

class _Inner(TypedDict):
    """A nested model."""

    n: int


class _Model(TypedDict):
    name: str
    kind: Literal["A", "B"]
    maybe: str | None
    inner: _Inner
    many: list[_Inner]
    by_key: dict[str, float]
    either: int | str
    short: NotRequired[str]
    ranged: NotRequired[Annotated[int, JsonSchema(minimum=1)] | None]


def test_typed_dicts_become_json_schema() -> None:
    models = SchemaSet()
    assert models.describe(_Model) == {"$ref": "#/components/schemas/_Model"}
    schema = models.components["_Model"]
    assert schema["required"] == ["name", "kind", "maybe", "inner", "many", "by_key", "either"]
    assert schema["additionalProperties"] is False
    props = schema["properties"]
    assert props["kind"] == {"type": "string", "enum": ["A", "B"]}
    assert props["maybe"] == {"type": ["string", "null"]}
    assert props["inner"] == {"$ref": "#/components/schemas/_Inner"}
    assert props["many"] == {"type": "array", "items": {"$ref": "#/components/schemas/_Inner"}}
    assert props["by_key"] == {"type": "object", "additionalProperties": {"type": "number"}}
    assert props["either"] == {"type": ["integer", "string"]}
    assert props["ranged"] == {"anyOf": [{"type": "integer", "minimum": 1}, {"type": "null"}]}
    assert models.components["_Inner"]["description"] == "A nested model."


def test_a_type_it_cannot_describe_is_an_error() -> None:
    with pytest.raises(SchemaTypeError, match="no JSON Schema"):
        SchemaSet().describe(bytes)


def test_rendered_response_has_exactly_the_records_fields() -> None:
    """A field added to the Avro record must reach the API's description (times are ISO strings there)."""
    for rendered, record in ((RenderedResponse, ReleaseResponse), (RenderedAgencyOutcome, AgencyOutcome)):
        assert set(get_type_hints(rendered)) == set(get_type_hints(record)), rendered.__name__


def test_document_is_valid_openapi_3_1() -> None:
    document = openapi_document()
    validate(document)  # raises OpenAPIValidationError
    assert document["openapi"] == "3.1.0"
    described = {(method, path) for path, item in document["paths"].items() for method in item}
    assert described == OPERATIONS
    submit = document["paths"]["/v1/submissions"]["post"]
    assert {"application/xml", "avro/binary", "application/avro"} <= set(submit["requestBody"]["content"])
    problem_types = {t for status in ("400", "422") for t in
                     submit["responses"][status]["content"]["application/problem+json"]["schema"]["allOf"][1]
                     ["properties"]["type"]["enum"]}
    assert "https://nsw-broker.dev/problems/schema-violation" in problem_types
    callback = document["paths"]["/v1/agencies/{agency}/decisions"]["post"]
    assert callback["security"] == [{"agencyKey": []}]
    assert set(document["components"]["securitySchemes"]) == {"traderKey", "agencyKey"}


def test_nsw_openapi_writes_the_document(tmp_path: Path) -> None:
    out = tmp_path / "openapi.json"
    assert main(["openapi", "--output", str(out)]) == 0
    assert json.loads(out.read_text(encoding="utf-8")) == json.loads(json.dumps(openapi_document()))
    assert main(["openapi", "--output", str(tmp_path / "no-such-dir" / "openapi.json")]) == 2


# --- defects the description and the fuzzer brought out, pinned below the HTTP layer -----------------------------

@pytest.mark.parametrize(("raw", "seconds"), [("0", 0.0), ("2.5", 2.5), ("600", 60.0), ("abc", None), ("nan", None),
                                              ("inf", None), ("-1", None), ("", None)])
def test_wait_is_a_finite_number_of_seconds(raw: str, seconds: float | None) -> None:
    assert _wait_seconds(raw) == seconds


class _KafkaDown:
    """A producer whose broker never acknowledges (what Producer.send raises then)."""

    async def send(self, message: OutMessage) -> None:
        raise TransportError("send: Kafka unreachable or slow (test)")


async def test_a_webhook_registration_kafka_did_not_take_is_a_503_not_a_500() -> None:
    registry = WebhookRegistry(MemoryBus(), SecretBox(bytes(32)))
    routes = registration_routes(registry, _KafkaDown(), policy=UrlPolicy(allow_private=True, allow_http=True),  # type: ignore[arg-type]
                                 resolver=_loopback)
    inner = Starlette(routes=routes)

    async def as_trader(scope: Any, receive: Any, send: Any) -> None:
        scope["nsw.trader"] = "t1"
        await inner(scope, receive, send)

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=as_trader), base_url="http://hub") as client:
        answer = await client.put("/v1/webhooks/t1", json={"url": "http://127.0.0.1:9/hook", "secret": "s" * 20})
    assert answer.status_code == 503, answer.text
    assert answer.json()["type"].endswith("/unavailable")
    assert answer.headers["retry-after"] == "5"
    assert registry.get("t1") is None  # nothing registered that Kafka does not have


async def _loopback(host: str, port: int) -> list[str]:
    return ["127.0.0.1"]


# --- against the running hub (real Kafka, real HTTP) ------------------------------------------------------------

def _app_operations(hub: Hub) -> set[tuple[str, str]]:
    """(method, path) of every route of the ingress app outside /console (HEAD: Starlette's, for each GET)."""
    assert hub.server is not None
    app: Any = hub.server.config.app
    while not hasattr(app, "routes"):
        app = app._app  # ProblemOnError -> AuthMiddleware -> Starlette
    found: set[tuple[str, str]] = set()
    for route in app.routes:
        if isinstance(route, Mount):
            assert route.path == "/console", route.path
            continue
        assert isinstance(route, Route)
        found |= {(method.lower(), route.path) for method in route.methods or () if method != "HEAD"}
    return found


@pytest.mark.integration
@pytest.mark.asyncio(loop_scope="module")
async def test_every_route_is_described(hub: Hub) -> None:
    routes = _app_operations(hub)
    assert routes - OPERATIONS == set(), "routes the OpenAPI document does not describe"
    assert OPERATIONS - routes == set(), "operations the app does not serve"


def _validator(schema: dict[str, Any]) -> jsonschema.Draft202012Validator:
    components = openapi_document()["components"]
    return jsonschema.Draft202012Validator({**schema, "components": components},
                                           format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


def _conforms(answer: httpx.Response, path: str, method: str = "get") -> None:
    """The answer's status, media type and body are the ones the document gives for this operation."""
    responses = openapi_document()["paths"][path][method]["responses"]
    assert str(answer.status_code) in responses, (path, answer.status_code, answer.text)
    media = answer.headers["content-type"].split(";")[0]
    content = responses[str(answer.status_code)]["content"]
    assert media in content, (path, media)
    schema = content[media]["schema"]
    body = answer.json() if "json" in media else answer.text
    _validator(schema).validate(body)


@pytest.mark.integration
@pytest.mark.asyncio(loop_scope="module")
async def test_real_answers_match_the_description(hub: Hub) -> None:
    base = f"http://{hub.config.host}:{hub.config.port}"
    async with httpx.AsyncClient(base_url=base, headers=auth(hub.config), timeout=30) as client:
        served = (await client.get("/openapi.json")).json()
        assert served == json.loads(json.dumps(openapi_document()))
        posted = await client.post("/v1/submissions", content=sample("plain-goods.xml"),
                                   headers={"Content-Type": "application/xml"})
        _conforms(posted, "/v1/submissions", "post")
        sid = posted.json()["submission_id"]
        again = await client.post("/v1/submissions", content=sample("plain-goods.xml"),
                                  headers={"Content-Type": "application/xml"})
        _conforms(again, "/v1/submissions", "post")
        avro = await client.post("/v1/submissions", content=(SAMPLES / "export-laptops.avro").read_bytes(),
                                 headers={"Content-Type": "avro/binary"})
        assert avro.status_code in (200, 202), avro.text
        _conforms(avro, "/v1/submissions", "post")
        refused = await client.post("/v1/submissions", content=b"<Declaration", headers={"Content-Type": "text/xml"})
        assert refused.status_code == 400
        _conforms(refused, "/v1/submissions", "post")

        async def final() -> httpx.Response | None:
            got = await client.get(f"/v1/submissions/{sid}/response", params={"wait": "5"})
            return got if got.status_code == 200 else None

        answered = await poll(final, timeout=60, what="the release response")
        _conforms(answered, "/v1/submissions/{submission_id}/response")
        for accept in ("application/xml", "application/jose"):
            got = await client.get(f"/v1/submissions/{sid}/response", headers={"Accept": accept})
            assert got.headers["content-type"].startswith(accept)
            _conforms(got, "/v1/submissions/{submission_id}/response")
        _conforms(await client.get(f"/v1/submissions/{sid}"), "/v1/submissions/{submission_id}")
        _conforms(await client.get(f"/v1/submissions/{sid}/timeline"), "/v1/submissions/{submission_id}/timeline")
        _conforms(await client.get("/v1/submissions/nope"), "/v1/submissions/{submission_id}")
        for path in ("/healthz", "/readyz", "/.well-known/jwks.json"):
            _conforms(await client.get(path), path)
        assert (await client.get("/metrics")).status_code == 200
        decision = await client.post("/v1/agencies/sps/decisions", json={"submission_id": sid, "version": 1,
                                                                         "request_id": "x", "items": []},
                                     headers=await agency_key(hub, "sps"))
        assert decision.status_code == 422
        _conforms(decision, "/v1/agencies/{agency}/decisions", "post")
        hook = await client.put("/v1/webhooks/dev-trader", json={"url": "http://127.0.0.1/x", "secret": "s" * 20})
        assert hook.status_code == 422
        _conforms(hook, "/v1/webhooks/{trader}", "put")


def _fuzz(document: dict[str, Any], base_url: str, trader: dict[str, str], agency: dict[str, str], *,
          known: dict[str, str], examples: int = EXAMPLES) -> tuple[int, list[str]]:
    """Every operation, ``examples`` valid and ``examples`` invalid requests each, with generated path parameters
    and again with ``known`` ones (a real submission, the trader itself): (requests sent, findings)."""
    tokens = {"traderKey": trader, "agencyKey": agency}
    config = schemathesis.Config.from_dict({"auth": {"openapi": {
        scheme: {"bearer": header["Authorization"].removeprefix("Bearer ")} for scheme, header in tokens.items()
        if header}}})
    schema = schemathesis.openapi.from_dict(document, config=config)
    sent: list[int] = []
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()  # type: ignore[union-attr]  # an invalid operation raises here: a test failure
        names = [p["name"] for p in operation.definition.raw.get("parameters", []) if p["in"] == "path"]
        fixed = [None, {name: known[name] for name in names}] if names else [None]
        for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):
            if mode is schemathesis.GenerationMode.NEGATIVE and not _has_inputs(operation):
                continue  # nothing to make invalid
            for path_parameters in fixed:
                strategy = operation.as_strategy(generation_mode=mode, path_parameters=path_parameters)
                label = f"{operation.method.upper()} {operation.path} ({mode.value})"
                _checker(strategy, examples, base_url, label, sent=sent, failures=failures)()
        for strategy in schema.get_strategies_from_examples(operation, path_parameters=fixed[-1]):
            label = f"{operation.method.upper()} {operation.path} (the document's examples)"
            _checker(strategy, 3, base_url, label, sent=sent, failures=failures)()
    return len(sent), failures


def _checker(strategy: Any, examples: int, base_url: str, label: str, *, sent: list[int],
             failures: list[str]) -> Callable[[], None]:
    """A Hypothesis test sending ``examples`` cases of ``strategy``; what the checks find goes to ``failures``."""

    @hypothesis.settings(max_examples=examples, deadline=None, database=None, derandomize=True,
                         suppress_health_check=list(hypothesis.HealthCheck), phases=[hypothesis.Phase.generate],
                         print_blob=False)
    @hypothesis.given(case=strategy)
    def check(case: schemathesis.Case[Any]) -> None:
        sent.append(1)
        response = case.call(base_url=base_url, timeout=10)
        try:
            case.validate_response(response, checks=CHECKS)
        except FailureGroup as found:  # every finding is collected; the test reports them all
            failures.append(f"{label}: {found}"[:2000])

    return check


def _has_inputs(operation: schemathesis.APIOperation[Any, Any, Any, Any]) -> bool:
    return bool(operation.definition.raw.get("parameters") or operation.definition.raw.get("requestBody"))


async def _known(hub: Hub) -> dict[str, str]:
    """Path parameters of real resources: a lodged submission of the development trader, the trader, an agency."""
    async with httpx.AsyncClient(base_url=f"http://{hub.config.host}:{hub.config.port}", headers=auth(hub.config),
                                 timeout=30) as client:
        posted = await client.post("/v1/submissions", content=sample("plain-goods.xml"),
                                   headers={"Content-Type": "application/xml"})
        assert posted.status_code in (200, 202), posted.text
    return {"submission_id": posted.json()["submission_id"], "trader": DEV_TRADER, "agency": "sps"}


@pytest.mark.integration
@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.filterwarnings("ignore:Do not use the `random` module inside strategies")
async def test_the_fuzzer_reports_an_answer_the_description_does_not_have(hub: Hub) -> None:
    """The check itself can fail: with the 404 left out of the description, unknown submissions are findings."""
    document = copy.deepcopy(openapi_document())
    document["paths"] = {"/v1/submissions/{submission_id}": document["paths"]["/v1/submissions/{submission_id}"]}
    del document["paths"]["/v1/submissions/{submission_id}"]["get"]["responses"]["404"]
    base = f"http://{hub.config.host}:{hub.config.port}"
    known = {"submission_id": "never-lodged"}
    sent, failures = await asyncio.to_thread(_fuzz, document, base, auth(hub.config), {}, known=known, examples=5)
    assert sent > 0
    assert failures, "no finding although every answer was an undocumented 404"
    assert all("404" in failure for failure in failures), failures[0]


@pytest.mark.integration
@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.timeout(300)
# Schemathesis 4.32's own strategies call the random module; Hypothesis warns about that (not about our code).
@pytest.mark.filterwarnings("ignore:Do not use the `random` module inside strategies")
async def test_fuzzing_every_operation_finds_nothing(hub: Hub) -> None:
    base = f"http://{hub.config.host}:{hub.config.port}"
    agency = await agency_key(hub, "sps")
    started = time.monotonic()
    # Schemathesis is synchronous (requests): it runs in a thread while this loop serves the hub.
    known = await _known(hub)
    sent, failures = await asyncio.to_thread(_fuzz, openapi_document(), base, auth(hub.config), agency, known=known)
    elapsed = time.monotonic() - started
    print(f"fuzzed {len(OPERATIONS)} operations with {sent} requests in {elapsed:.1f} s")
    assert sent >= len(OPERATIONS) * 2
    assert failures == [], "\n\n".join(failures)
