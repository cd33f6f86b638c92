"""The compiled Avro codec (schemas/_codec.py) writes fastavro's bytes and reads fastavro's records, for the
hub's real records and for records drawn from every schema; on anything it does not take (a wrong type, a
corrupt or crafted body) the registry's answer is still fastavro's, and a hostile body is an AvroDecodeError."""

from __future__ import annotations

import asyncio
import copy
import io
import math
import struct
from collections.abc import Callable, Iterator, Mapping
from types import MappingProxyType
from typing import Any

import fastavro
import hypothesis
import pytest
from fastavro.schema import parse_schema
from hypothesis import strategies as st

from broker._config import HubConfig
from ops._bench import sample_files
from ops._bench_step import Lodger, build_core
from schemas import TOP_LEVEL, Registry, registry
from schemas._avro import HEADER_LEN, MAGIC, RecordSchema
from schemas._codec import compile_codec
from schemas.errors import AvroDecodeError

SETTINGS = hypothesis.settings(max_examples=60, deadline=None, database=None, derandomize=True,
                               suppress_health_check=list(hypothesis.HealthCheck))
SAMPLE_FILES = ("all-agencies.xml", "branded-ipr.xml", "chemical-cwc.xml", "export-laptops.xml", "plain-goods.xml",
                "plants-sps.xml")


# -- the reference: what Registry.encode and Registry.decode did with fastavro alone -----------------------------

def fastavro_encode(name: str, record: Mapping[str, Any]) -> bytes:
    schema = registry().get(name)
    body = io.BytesIO()
    fastavro.schemaless_writer(body, schema.parsed, record)
    return MAGIC + schema.fingerprint + body.getvalue()


def fastavro_decode(data: bytes) -> dict[str, Any]:
    schema = registry().by_fingerprint(data[2:HEADER_LEN])
    try:
        record = fastavro.schemaless_reader(io.BytesIO(data[HEADER_LEN:]), schema.parsed, schema.reader)
    except (EOFError, ValueError, TypeError, IndexError, UnicodeDecodeError) as exc:
        raise AvroDecodeError(str(exc)) from exc
    if not isinstance(record, dict):
        raise AvroDecodeError("not a record")
    return record


def outcome(work: Callable[[], Any]) -> tuple[str, Any]:
    try:
        return "ok", work()
    except (AvroDecodeError, ValueError, TypeError, OverflowError) as exc:
        return "error", type(exc)


def same(a: Any, b: Any) -> bool:
    """Equal values of equal types, NaN equal to NaN of the same bits, -0.0 distinct from 0.0, keys in order."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return struct.pack("<d", a) == struct.pack("<d", b)
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


# -- real records, as the hub makes them ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def hub_records() -> list[tuple[str, dict[str, Any]]]:
    """Every record the in-memory step of ``nsw bench step`` (ingress, then the fused core with every engine
    embedded, on the memory bus) encodes for the project samples."""
    seen: list[tuple[str, dict[str, Any]]] = []
    lodger = Lodger(sample_files(SAMPLE_FILES), "codec")
    core = build_core(HubConfig())

    async def drive() -> None:
        for index in range(len(SAMPLE_FILES)):
            await core.handle(lodger.lodge(index, received_at=1_767_225_600_000 + index))

    original = Registry.encode

    def capture(self: Registry, name: str, record: Mapping[str, Any]) -> bytes:
        seen.append((self.get(name).name, copy.deepcopy(dict(record))))
        return original(self, name, record)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Registry, "encode", capture)
        asyncio.run(drive())
    return seen


def test_the_hub_records_of_every_sample_encode_to_fastavros_bytes_on_the_fast_path(
        hub_records: list[tuple[str, dict[str, Any]]]) -> None:
    names = {name for name, _ in hub_records}
    assert names == {f"nsw.v1.{n}" for n in ("Submission", "AgencyRequest", "AgencyDecision", "RoutingPlan",
                                              "ReleaseResponse")}
    for name, record in hub_records:
        schema = registry().get(name)
        assert schema.codec is not None
        reference = fastavro_encode(name, record)
        assert schema.codec.encode(record, MAGIC + schema.fingerprint) == reference, name  # not left to fastavro
        assert registry().encode(name, record) == reference


def test_the_hub_records_decode_to_fastavros_records_on_the_fast_path(
        hub_records: list[tuple[str, dict[str, Any]]]) -> None:
    for name, record in hub_records:
        data = fastavro_encode(name, record)
        codec = registry().get(name).codec
        assert codec is not None
        fast = codec.decode(data, HEADER_LEN)
        assert fast is not None
        assert same(fast, fastavro_decode(data))
        assert same(registry().decode(data, name)[1], fastavro_decode(data))


def test_every_current_schema_is_compiled_and_earlier_versions_are_not() -> None:
    reg = registry()
    for short in TOP_LEVEL:
        assert reg.get(short).codec is not None, short
        for earlier in reg.published()[TOP_LEVEL.index(short)].earlier:
            old = reg.by_fingerprint(earlier)
            assert old.reader is not None
            assert old.codec is None  # schema resolution stays fastavro's


# -- records drawn from the schemas --------------------------------------------------------------------------------

INT_EDGES = {"int": (-(1 << 31), (1 << 31) - 1), "long": (-(1 << 63), (1 << 63) - 1)}


def values(schema: Any, named: Mapping[str, Any]) -> st.SearchStrategy[Any]:
    """Values of an Avro type as the hub holds them (plain dicts, lists, str, int, float, bool, None)."""
    if isinstance(schema, str) and schema in named:
        return values(named[schema], named)
    if isinstance(schema, list):
        return st.one_of(*(values(branch, named) for branch in schema))
    kind = schema if isinstance(schema, str) else schema["type"]
    if kind == "null":
        return st.none()
    if kind == "string":
        edges = ["a" * 63, "a" * 64, "é" * 32, "中" * 43, "x" * 128, "y" * 8192, ""]  # around a length's varint
        return st.text(max_size=80) | st.text(alphabet="éß中😀\u0301\x00", max_size=70) | st.sampled_from(edges)
    if kind in INT_EDGES:
        low, high = INT_EDGES[kind]
        return st.integers(low, high) | st.sampled_from([low, high, 0, -1, 63, 64, -64, -65])
    if kind == "double":
        return st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([-0.0, math.nan, -math.inf])
    if kind == "boolean":
        return st.booleans()
    if kind == "enum":
        return st.sampled_from(schema["symbols"])
    if kind == "array":
        small = kind == "array" and isinstance(schema["items"], str) and schema["items"] in ("string", "int")
        return st.lists(values(schema["items"], named), max_size=80 if small else 3)
    if kind == "record":
        required = {f["name"]: values(f["type"], named) for f in schema["fields"] if "default" not in f}
        optional = {f["name"]: values(f["type"], named) for f in schema["fields"] if "default" in f}
        return st.fixed_dictionaries(required, optional=optional)  # a missing field with a default: fastavro's
    raise AssertionError(schema)


def drawn(name: str) -> st.SearchStrategy[dict[str, Any]]:
    parsed = registry().get(name).parsed
    strategy: st.SearchStrategy[dict[str, Any]] = values(parsed, parsed["__named_schemas"])
    return strategy


@pytest.mark.parametrize("name", TOP_LEVEL)
def test_drawn_records_encode_and_decode_as_fastavro_does(name: str) -> None:
    codec = registry().get(name).codec
    assert codec is not None

    @SETTINGS
    @hypothesis.given(record=drawn(name))
    def check(record: dict[str, Any]) -> None:
        reference = fastavro_encode(name, record)
        assert codec.encode(record, reference[:HEADER_LEN]) == reference  # the fast path took it
        assert registry().encode(name, record) == reference
        decoded = codec.decode(reference, HEADER_LEN)
        assert decoded is not None
        assert same(decoded, fastavro_decode(reference))  # the codec reads fastavro's bytes
        assert same(registry().decode(reference, name)[1], decoded)

    check()


# -- inputs the fast path does not take: fastavro's answer ---------------------------------------------------------

SUBMISSION_EDITS: list[tuple[str, Callable[[dict[str, Any]], None]]] = [
    ("int as bool", lambda r: r.__setitem__("version", True)),
    ("int as float", lambda r: r.__setitem__("version", 2.0)),
    ("int out of range", lambda r: r.__setitem__("version", 1 << 31)),
    ("long out of range", lambda r: r.__setitem__("received_at", 1 << 63)),
    ("string as int", lambda r: r.__setitem__("bundle", 5)),
    ("string as bytes", lambda r: r.__setitem__("bundle", b"nsw")),
    ("lone surrogate", lambda r: r.__setitem__("bundle", "\ud800")),
    ("missing without default", lambda r: r.pop("declarant_id")),
    ("missing nullable", lambda r: r.pop("export_country")),
    ("missing with default", lambda r: r.pop("trader")),
    ("unknown symbol", lambda r: r.__setitem__("kind", "OTHER")),
    ("union of a wrong type", lambda r: r.__setitem__("export_country", 7)),
    ("union as tuple", lambda r: r.__setitem__("export_country", ("string", "NL"))),
    ("array as tuple", lambda r: r.__setitem__("parties", ())),
    ("array as string", lambda r: r.__setitem__("parties", "x")),
    ("double as int", lambda r: r["items"][0].__setitem__("quantity", 3)),
    ("double as bool", lambda r: r["items"][0].__setitem__("quantity", True)),
    ("double too big", lambda r: r["items"][0].__setitem__("quantity", 1 << 1100)),
    ("item not a dict", lambda r: r["items"].__setitem__(0, [("sequence", 1)])),
    ("extra field", lambda r: r.__setitem__("extra", object())),
]


@pytest.mark.parametrize(("case", "edit"), SUBMISSION_EDITS, ids=[case for case, _ in SUBMISSION_EDITS])
def test_a_record_the_fast_path_does_not_take_gets_fastavros_bytes_or_error(
        hub_records: list[tuple[str, dict[str, Any]]], case: str, edit: Callable[[dict[str, Any]], None]) -> None:
    record = copy.deepcopy(next(r for n, r in hub_records if n == "nsw.v1.Submission"))
    edit(record)
    expected = outcome(lambda: fastavro_encode("Submission", record))
    assert outcome(lambda: registry().encode("Submission", record)) == expected, case


def test_a_mapping_that_is_not_a_dict_gets_fastavros_bytes(hub_records: list[tuple[str, dict[str, Any]]]) -> None:
    record = next(r for n, r in hub_records if n == "nsw.v1.RoutingPlan")
    assert registry().encode("RoutingPlan", MappingProxyType(record)) == fastavro_encode("RoutingPlan", record)


# -- hostile bodies -------------------------------------------------------------------------------------------------

def assert_as_fastavro(data: bytes) -> None:
    """The registry raises AvroDecodeError exactly when fastavro's decode does, else returns its record."""
    expected = outcome(lambda: fastavro_decode(data))
    got = outcome(lambda: registry().decode(data)[1])
    assert got[0] == expected[0], data.hex()
    if got[0] == "ok":
        assert same(got[1], expected[1]), data.hex()
    else:
        assert got[1] is AvroDecodeError


@pytest.fixture(scope="module")
def bodies(hub_records: list[tuple[str, dict[str, Any]]]) -> list[bytes]:
    """One encoded record of each schema the hub wrote."""
    first: dict[str, bytes] = {}
    for name, record in hub_records:
        first.setdefault(name, fastavro_encode(name, record))
    return list(first.values())


def test_every_truncation_of_a_body_is_an_error_as_with_fastavro(bodies: list[bytes]) -> None:
    for data in bodies:
        for end in range(HEADER_LEN, len(data)):
            assert_as_fastavro(data[:end])
            assert outcome(lambda d=data[:end]: registry().decode(d))[0] == "error"  # type: ignore[misc]


def mutations(data: bytes) -> Iterator[bytes]:
    for at in range(HEADER_LEN, len(data)):
        for byte in {0x00, 0x01, 0x02, 0x7F, 0x80, 0xFF, data[at] ^ 0x01, data[at] ^ 0x80}:
            yield data[:at] + bytes([byte]) + data[at + 1:]


def test_every_single_byte_mutation_decodes_as_with_fastavro(bodies: list[bytes]) -> None:
    fast = total = 0
    for data in bodies[:3]:
        codec = registry().by_fingerprint(data[2:HEADER_LEN]).codec
        assert codec is not None
        for mutated in mutations(data):
            assert_as_fastavro(mutated)
            fast += codec.decode(mutated, HEADER_LEN) is not None
            total += 1
    assert 2 * fast > total  # most mutations are other valid records, which the fast path reads itself


def test_a_body_in_a_memoryview_reads_as_before(bodies: list[bytes]) -> None:
    for data in bodies:
        assert same(registry().decode(memoryview(data))[1], fastavro_decode(data))  # type: ignore[arg-type]


def test_trailing_bytes_are_ignored_as_fastavro_does(bodies: list[bytes]) -> None:
    for data in bodies:
        assert_as_fastavro(data + b"\x00\xff")
        assert same(registry().decode(data + b"junk")[1], fastavro_decode(data))


@SETTINGS
@hypothesis.given(name=st.sampled_from(TOP_LEVEL), body=st.binary(max_size=300))
def test_random_bodies_decode_as_with_fastavro(name: str, body: bytes) -> None:
    assert_as_fastavro(MAGIC + registry().get(name).fingerprint + body)


HUGE = b"\xfe\xff\xff\xff\xff\xff\xff\xff\x7f"  # 2**62 - 1 after zigzag
CRAFTED = {
    "huge string length": HUGE,
    "negative string length": b"\x03",
    "overlong varint": b"\x80" * 10 + b"\x01",
    "overlong zero": b"\x80\x80\x00",
    "varint above 64 bits": b"\xff" * 9 + b"\x7f",
    "endless varint": b"\xff" * 200,
}


@pytest.mark.parametrize("case", CRAFTED)
def test_crafted_varints_in_a_string_decode_as_with_fastavro(case: str) -> None:
    # AgencyRequest starts with a string; the rest of a real body follows the crafted varint.
    real = fastavro_encode("AgencyRequest", {"request_id": "S:1:sps", "submission_id": "S", "version": 1,
                                             "agency": "sps", "requested_at": 1, "trader_reference": "R",
                                             "declaration_type": "IMZ", "declarant_id": "D", "items": [],
                                             "reasons": []})
    data = real[:HEADER_LEN] + CRAFTED[case] + real[HEADER_LEN + 8:]
    assert_as_fastavro(data)


@pytest.mark.parametrize("count", [HUGE, b"\x03\x04\x02\x04\x00", b"\x81\x80\x80\x80\x80\x01", b"\x7f"])
def test_crafted_block_counts_decode_as_with_fastavro(count: bytes) -> None:
    # InspectionResult: four strings, an int, then the items array of ints.
    head = fastavro_encode("InspectionResult", {
        "result_id": "r", "agency": "sps", "submission_id": "S", "version": 1, "request_id": "q", "items": [],
        "performed": True, "finding": False, "finding_code": "", "note": "", "officer": "sps/a", "recorded_at": 1,
        "selected_by": [], "rules": [], "lane": ""})
    before = HEADER_LEN + len(b"\x02r\x06sps\x02S\x02\x02q")
    assert_as_fastavro(head[:before] + count + head[before + 1:])


def test_a_huge_length_is_refused_by_the_fast_path_without_reading_it() -> None:
    codec = registry().get("AgencyRequest").codec
    assert codec is not None
    assert codec.decode(MAGIC + bytes(8) + HUGE + b"x", HEADER_LEN) is None  # left to fastavro, nothing allocated
    with pytest.raises(AvroDecodeError):
        registry().decode(MAGIC + registry().get("AgencyRequest").fingerprint + HUGE + b"x")


def test_invalid_utf8_is_an_avro_decode_error() -> None:
    data = MAGIC + registry().get("AgencyRequest").fingerprint + b"\x04\xc3\x28" + bytes(40)
    with pytest.raises(AvroDecodeError):
        registry().decode(data)


# -- schemas the codec does not handle -----------------------------------------------------------------------------

def synthetic(field_type: Any) -> dict[str, Any]:
    return {"type": "record", "name": "Odd", "namespace": "test", "fields": [
        {"name": "id", "type": "string"}, {"name": "odd", "type": field_type}]}


UNHANDLED = {
    "map": {"type": "map", "values": "string"},
    "bytes": "bytes",
    "fixed": {"type": "fixed", "name": "F", "size": 2},
    "float": "float",
    "union of two types": ["string", "int"],
    "union with null last": ["string", "null"],
    "logical type": {"type": "long", "logicalType": "timestamp-millis"},
    "recursive": {"type": "record", "name": "Node", "fields": [
        {"name": "next", "type": ["null", "test.Node"], "default": None}]},
}
ODD_VALUES = {"map": {"a": "b"}, "bytes": b"\x00\x01", "fixed": b"ab", "float": 1.5, "union of two types": 3,
              "union with null last": None, "logical type": 5, "recursive": {"next": {"next": None}}}


@pytest.mark.parametrize("case", UNHANDLED)
def test_a_schema_with_a_type_the_codec_does_not_handle_stays_with_fastavro(case: str) -> None:
    parsed = parse_schema(synthetic(UNHANDLED[case]), named_schemas={})
    assert compile_codec(parsed) is None
    reg = Registry()
    schema = RecordSchema(name="test.Odd", parsed=parsed, fingerprint=b"\x01" * 8, canonical_json="{}")
    reg._by_name["test.Odd"] = schema  # a synthetic schema beside the hub's, for this test only
    reg._by_fingerprint[schema.fingerprint] = schema
    record = {"id": "x", "odd": ODD_VALUES[case]}
    data = reg.encode("test.Odd", record)
    body = io.BytesIO()
    fastavro.schemaless_writer(body, parsed, record)
    assert data == MAGIC + schema.fingerprint + body.getvalue()
    assert reg.decode(data, "test.Odd") == ("test.Odd", fastavro.schemaless_reader(io.BytesIO(body.getvalue()),
                                                                                  parsed, None))


def test_a_handled_synthetic_schema_is_compiled() -> None:
    parsed = parse_schema(synthetic({"type": "array", "items": ["null", "double"]}), named_schemas={})
    codec = compile_codec(parsed)
    assert codec is not None
    record = {"id": "é", "odd": [None, -0.0, math.inf]}
    body = io.BytesIO()
    fastavro.schemaless_writer(body, parsed, record)
    assert codec.encode(record) == body.getvalue()
    assert same(codec.decode(body.getvalue()), record)
