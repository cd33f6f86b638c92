"""Read a trader's Avro submission (``avro/binary``) into the canonical Submission.

Wire format: Avro single-object encoding, ``C3 01`` + the 8-byte little-endian CRC-64-AVRO
fingerprint of the writer schema + the binary body. The writer schema is found by fingerprint
among the trader schemas the hub knows (``schemas/avro/trader/v*.avsc``), and the body is read
with Avro schema resolution into the hub's current reader schema
(``schemas/avro/DeclarationSubmission.avsc``, identical to the newest trader version). So a trader
on an older schema (missing a field the reader has with a default) and a trader on a newer one
(with extra fields the reader ignores) are both read; a writer schema that resolution cannot
bridge is refused before the body is read, naming the field.

Resolution is checked for every value the writer schema can produce, not only the ones in this
body: a writer union with a branch the reader cannot take is incompatible even when this body
does not use it. The check runs once per writer schema and is cached.

The mapping is the identity on the trader fields (the trader schema is the canonical content of a
Submission without ``submission_id``, ``version``, ``received_at``, ``bundle`` and ``kind``), so
an Avro declaration and the equivalent XML declaration give the same Submission, ``bundle``
included: both are the ``nsw`` profile, only the syntax differs. ``kind`` comes from the content as
in XML: ``declaration_type`` ``INV`` is a cancellation, ``function_code`` 9 a declaration, 13 an
amendment. The business rules are the XML profile's (unique item numbers, 6 to 10 digit commodity
codes known to the HS nomenclature, CAS check digits), reported with field paths such as
``/items[2]/commodity_code`` (``items`` indexed from 1 in the order sent) and no line.
"""

from __future__ import annotations

import io
import json
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Final

import fastavro
from fastavro.read import SchemaResolutionError
from fastavro.schema import expand_schema, fingerprint, parse_schema

from refdata import hs_nomenclature
from schemas._canonical import canonical_form, named_types
from schemas._context import with_context
from schemas._document import DocumentError, DocumentErrorType, ErrorDetail, ErrorList, limited
from schemas._limits import limit_errors
from schemas._mapping import BUNDLE
from schemas._records import Authorisation, Document, Item, Party, Submission, SubmissionKind
from schemas._xml import DEFAULT_MAX_BYTES, read_declaration

MAGIC: Final = b"\xc3\x01"
HEADER_LEN: Final = 10
TRADER_SCHEMA_NAME: Final = "nsw.v1.DeclarationSubmission"
#: Trader schema versions the hub ships, oldest first; the last is the reader schema.
VERSIONS: Final = ("v1", "v2")
CURRENT_VERSION: Final = VERSIONS[-1]

#: Submission fields that the hub sets, not the trader.
_HUB_FIELDS: Final = frozenset({"submission_id", "version", "received_at", "bundle", "kind"})
_FUNCTION_CODES: Final[dict[str, SubmissionKind]] = {"9": "DECLARATION", "13": "AMENDMENT"}
_CANCELLATION_TYPE: Final = "INV"
_COMMODITY_CODE: Final = re.compile(r"\d{6,10}")
_CAS: Final = re.compile(r"(\d{2,7})-(\d{2})-(\d)")
_PROMOTIONS: Final[dict[str, frozenset[str]]] = {
    "int": frozenset({"long", "float", "double"}),
    "long": frozenset({"float", "double"}),
    "float": frozenset({"double"}),
    "string": frozenset({"bytes"}),
    "bytes": frozenset({"string"}),
}
_DECODE_ERRORS: Final = (EOFError, ValueError, TypeError, IndexError, KeyError, OverflowError, MemoryError)


# --------------------------------------------------------------------------- schemas


@dataclass(frozen=True, slots=True)
class TraderSchema:
    """One trader writer schema: its version label, parsed form and fingerprint."""

    version: str
    parsed: Any = field(repr=False)
    expanded: Any = field(repr=False)
    fingerprint: bytes  # 8 bytes, little-endian CRC-64-AVRO of the parsing canonical form


def trader_schema(version: str, raw: Mapping[str, Any]) -> TraderSchema:
    """Parse a trader schema (a fresh name space each, so versions never clash)."""
    parsed = parse_schema(dict(raw), named_schemas={})
    expanded = expand_schema(parsed)
    # The specification's canonical form of the self-contained schema (what a trader's Avro library hashes).
    canonical = canonical_form(raw, named_types(raw))
    return TraderSchema(version, parsed, expanded, bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO")))


def _packaged_raw(*parts: str) -> dict[str, Any]:
    node = resources.files("schemas").joinpath("avro")
    for part in parts:
        node = node.joinpath(part)
    loaded: dict[str, Any] = json.loads(node.read_text(encoding="utf-8"))
    return loaded


class TraderSchemas:
    """The trader writer schemas the hub knows (by fingerprint) and the reader schema."""

    def __init__(self, writers: Iterable[TraderSchema], reader: TraderSchema) -> None:
        self.reader = reader
        self._writers = {schema.fingerprint: schema for schema in writers}
        self._by_version = {schema.version: schema for schema in self._writers.values()}
        self._problems: dict[bytes, str | None] = {}

    @classmethod
    def packaged(cls) -> TraderSchemas:
        writers = [trader_schema(v, _packaged_raw("trader", f"{v}.avsc")) for v in VERSIONS]
        return cls(writers, trader_schema("current", _packaged_raw("DeclarationSubmission.avsc")))

    def with_writer(self, version: str, raw: Mapping[str, Any]) -> TraderSchemas:
        """A copy that also knows ``raw`` as writer schema ``version`` (registering a new version)."""
        return TraderSchemas([*self._writers.values(), trader_schema(version, raw)], self.reader)

    @property
    def writers(self) -> tuple[TraderSchema, ...]:
        return tuple(self._writers.values())

    def get(self, version: str) -> TraderSchema:
        try:
            return self._by_version[version]
        except KeyError:
            known = ", ".join(self._by_version)
            raise KeyError(f"no trader schema version {version!r}; known: {known}") from None

    def by_fingerprint(self, fp: bytes) -> TraderSchema | None:
        return self._writers.get(fp)

    def incompatibility(self, writer: TraderSchema) -> str | None:
        """Why ``writer`` cannot be resolved into the reader schema, or None (cached)."""
        if writer.fingerprint not in self._problems:
            self._problems[writer.fingerprint] = _problem(writer.expanded, self.reader.expanded, "")
        return self._problems[writer.fingerprint]


_PACKAGED: TraderSchemas | None = None


def trader_schemas() -> TraderSchemas:
    """The packaged trader schemas, parsed once per process."""
    global _PACKAGED  # noqa: PLW0603 - a lazily built, immutable singleton
    if _PACKAGED is None:
        _PACKAGED = TraderSchemas.packaged()
    return _PACKAGED


# --------------------------------------------------------------------------- resolution check


def _kind(schema: Any) -> str:
    if isinstance(schema, str):
        return schema
    if isinstance(schema, list):
        return "union"
    return str(schema["type"])


def _describe(schema: Any) -> str:
    kind = _kind(schema)
    if kind == "union":
        return "union [" + ", ".join(_describe(branch) for branch in schema) + "]"
    if kind in ("record", "enum", "fixed"):
        return f"{kind} {schema['name']}"
    return kind


def _names(schema: Mapping[str, Any]) -> set[str]:
    name = str(schema["name"])
    namespace = name.rpartition(".")[0]
    aliases = {alias if "." in alias else f"{namespace}.{alias}".lstrip(".") for alias in schema.get("aliases", ())}
    return {name, *aliases}


def _where(path: str) -> str:
    return f"field {path}" if path else "the top-level record"


def _problem(writer: Any, reader: Any, path: str) -> str | None:  # noqa: PLR0912 - one case per Avro rule
    wkind, rkind = _kind(writer), _kind(reader)
    if wkind == "union":
        for branch in writer:
            problem = _problem(branch, reader, path)
            if problem is not None:
                return problem
        return None
    if rkind == "union":
        if any(_problem(writer, branch, path) is None for branch in reader):
            return None
        return f"{_where(path)}: the writer's {_describe(writer)} matches no branch of the reader's {_describe(reader)}"
    if wkind == rkind and wkind not in ("record", "enum", "fixed", "array", "map"):
        return None
    if rkind in _PROMOTIONS.get(wkind, frozenset()):
        return None
    if wkind != rkind:
        return f"{_where(path)}: the writer's {_describe(writer)} cannot be read as the reader's {_describe(reader)}"
    if wkind in ("record", "enum", "fixed") and str(writer["name"]) not in _names(reader):
        return f"{_where(path)}: the writer's {_describe(writer)} is not the reader's {_describe(reader)}"
    if wkind == "array":
        return _problem(writer["items"], reader["items"], f"{path}[]")
    if wkind == "map":
        return _problem(writer["values"], reader["values"], f"{path}{{}}")
    if wkind == "fixed":
        same = writer["size"] == reader["size"]
        return None if same else f"{_where(path)}: fixed sizes {writer['size']} and {reader['size']} differ"
    if wkind == "enum":
        missing = [s for s in writer["symbols"] if s not in reader["symbols"]]
        if missing and "default" not in reader:
            return f"{_where(path)}: the reader's enum lacks symbols {', '.join(missing)} and has no default"
        return None
    written = {f["name"]: f for f in writer["fields"]}
    for reader_field in reader["fields"]:
        name = reader_field["name"]
        candidates = [name, *reader_field.get("aliases", ())]
        writer_field = next((written[c] for c in candidates if c in written), None)
        if writer_field is None:
            if "default" not in reader_field:
                return (
                    f"field {path}/{name}: the hub's schema requires it (no default) "
                    "and the writer schema does not have it"
                )
            continue
        problem = _problem(writer_field["type"], reader_field["type"], f"{path}/{name}")
        if problem is not None:
            return problem
    return None


# --------------------------------------------------------------------------- reading


def _fail(type_: DocumentErrorType, message: str, path: str | None = None) -> DocumentError:
    return DocumentError(type_, (ErrorDetail(message, None, path),))


def _decode(data: bytes, schemas: TraderSchemas) -> dict[str, Any]:
    if len(data) < HEADER_LEN or data[:2] != MAGIC:
        raise _fail(
            "corrupt-avro",
            "not Avro single-object encoding: the body must start with C3 01 and the writer "
            "schema's 8-byte CRC-64-AVRO fingerprint",
        )
    writer = schemas.by_fingerprint(data[2:HEADER_LEN])
    if writer is None:
        known = ", ".join(f"{w.version} ({w.fingerprint.hex()})" for w in schemas.writers)
        raise _fail(
            "unknown-schema",
            f"writer schema fingerprint {data[2:HEADER_LEN].hex()} is not one the hub knows; known: {known}",
        )
    problem = schemas.incompatibility(writer)
    if problem is not None:
        raise _fail("schema-incompatible", f"trader schema {writer.version}: {problem}")
    body = io.BytesIO(data[HEADER_LEN:])
    try:
        record = fastavro.schemaless_reader(body, writer.parsed, schemas.reader.parsed)
    except SchemaResolutionError as exc:  # pragma: no cover - the check above runs first
        raise _fail("schema-incompatible", f"trader schema {writer.version}: {exc}") from None
    except _DECODE_ERRORS as exc:
        raise _fail("corrupt-avro", f"the body is not a {writer.version} record: {exc!r}") from None
    left = len(data) - HEADER_LEN - body.tell()
    if left:
        raise _fail("corrupt-avro", f"{left} bytes follow the end of the record")
    if not isinstance(record, dict):  # pragma: no cover - the reader schema is a record
        raise _fail("corrupt-avro", "the body is not a record")
    return record


def _cas_ok(number: str) -> bool:
    match = _CAS.fullmatch(number)
    if match is None:
        return False
    digits = (match.group(1) + match.group(2))[::-1]
    return sum(int(d) * weight for weight, d in enumerate(digits, start=1)) % 10 == int(match.group(3))


def rule_errors(record: Mapping[str, Any]) -> list[ErrorDetail]:
    """The NSW profile's business rules over a decoded trader record, with field paths."""
    errors = ErrorList()  # details for the first ones only; the rest are counted
    first_seen: dict[int, int] = {}
    nomenclature = hs_nomenclature()
    for index, item in enumerate(record["items"], start=1):
        at = f"/items[{index}]"
        sequence = item["sequence"]
        if sequence in first_seen:
            if errors.wants():
                message = f"sequence {sequence} is used by more than one item (first at /items[{first_seen[sequence]}])"
                errors.append(ErrorDetail(message, None, f"{at}/sequence"))
        else:
            first_seen[sequence] = index
        code = item["commodity_code"]
        if _COMMODITY_CODE.fullmatch(code) is None:
            if errors.wants():
                message = f"commodity_code {code!r} must be a commodity code of 6 to 10 digits"
                errors.append(ErrorDetail(message, None, f"{at}/commodity_code"))
        elif (problem := nomenclature.problem(code)) is not None and errors.wants():
            errors.append(ErrorDetail(f"{problem} (unknown HS code)", None, f"{at}/commodity_code"))
        for position, number in enumerate(item.get("cas_numbers", []), start=1):
            if not _cas_ok(number) and errors.wants():
                message = f"{number!r} is not a CAS registry number (check digit)"
                errors.append(ErrorDetail(message, None, f"{at}/cas_numbers[{position}]"))
    return errors


def _submission_kind(record: Mapping[str, Any]) -> SubmissionKind:
    if record["declaration_type"] == _CANCELLATION_TYPE:
        return "CANCELLATION"
    kind = _FUNCTION_CODES.get(record["function_code"])
    if kind is None:
        raise _fail(
            "unknown-message-kind",
            f"function_code {record['function_code']!r} is not 9 (declaration) or 13 (amendment)",
            "/function_code",
        )
    return kind


def _to_submission(
    record: Mapping[str, Any], *, kind: SubmissionKind, submission_id: str, received_at: int, version: int
) -> Submission:
    items = sorted(
        (
            Item(
                sequence=item["sequence"],
                description=item["description"],
                commodity_code=item["commodity_code"],
                origin_country=item["origin_country"],
                cas_numbers=list(item["cas_numbers"]),
                documents=[
                    Document(category_code=d["category_code"], type_code=d["type_code"], id=d["id"])
                    for d in item["documents"]
                ],
                quantity=item["quantity"],
                quantity_unit=item["quantity_unit"],
                net_mass_kg=item["net_mass_kg"],
                value=item["value"],
                currency=item["currency"],
            )
            for item in record["items"]
        ),
        key=lambda item: item["sequence"],
    )
    return Submission(
        submission_id=submission_id,
        version=version,
        kind=kind,
        received_at=received_at,
        bundle=BUNDLE,
        function_code=record["function_code"],
        trader_reference=record["trader_reference"],
        declaration_type=record["declaration_type"],
        declarant_id=record["declarant_id"],
        parties=[Party(role=p["role"], id=p["id"], name=p["name"], country=p["country"]) for p in record["parties"]],
        authorisations=[
            Authorisation(category_code=a["category_code"], holder_id=a["holder_id"]) for a in record["authorisations"]
        ],
        export_country=record["export_country"],
        destination_country=record["destination_country"],
        items=items,
        trader="anonymous",  # the ingress sets the authenticated trader
    )


def read_avro_submission(
    data: bytes,
    *,
    submission_id: str,
    received_at: int,
    version: int = 1,
    max_bytes: int = DEFAULT_MAX_BYTES,
    schemas: TraderSchemas | None = None,
) -> Submission:
    """The canonical Submission for a posted Avro submission; raise DocumentError when refused."""
    if len(data) > max_bytes:
        raise _fail("too-large", f"the submission has {len(data)} bytes; the limit is {max_bytes}")
    record = _decode(data, trader_schemas() if schemas is None else schemas)
    too_much = limit_errors(record)  # before anything walks the lists
    if too_much:
        raise DocumentError("limit-exceeded", limited(too_much))
    kind = _submission_kind(record)
    errors = rule_errors(record)
    if errors:
        raise DocumentError("business-rule", limited(errors))
    return with_context(_to_submission(record, kind=kind, submission_id=submission_id, received_at=received_at,
                                       version=version))


# --------------------------------------------------------------------------- writing


#: What the hub derives from a declaration (``schemas._context``): never the trader's to send.
_DERIVED: Final = frozenset({"direction", "additional_type", "base_currency", "rates_date", "base_value"})
#: Context the trader schemas up to v3 do not carry: left out when empty, refused otherwise.
_CONTEXT_EMPTY: Final[dict[str, Any]] = {"statements": [], "invoice_currency": None, "cus_code": None,
                                         "procedure_codes": [], "status": None}


def _without_context(record: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in record.items()
            if key not in _DERIVED and not (key in _CONTEXT_EMPTY and value == _CONTEXT_EMPTY[key])}


def trader_record(submission: Mapping[str, Any]) -> dict[str, Any]:
    """The trader-facing content of a Submission (the hub's own and derived fields left out)."""
    record = _without_context({key: value for key, value in submission.items() if key not in _HUB_FIELDS})
    if isinstance(record.get("items"), list):
        record["items"] = [
            {**_without_context(item), "documents": [_without_context(d) for d in item.get("documents", [])]}
            if isinstance(item, dict) else item
            for item in record["items"]
        ]
    return record


def encode_avro_submission(
    record: Mapping[str, Any], schema_version: str = CURRENT_VERSION, *, schemas: TraderSchemas | None = None
) -> bytes:
    """Single-object encoding of a Submission (or its trader content) with a trader schema version.

    Raises ValueError when the version cannot carry the content (v1 has no ``cas_numbers``).
    """
    writer = (trader_schemas() if schemas is None else schemas).get(schema_version)
    content = trader_record(record)
    items_field = next(f for f in writer.expanded["fields"] if f["name"] == "items")
    known = {f["name"] for f in items_field["type"]["items"]["fields"]}
    for index, item in enumerate(content.get("items", []), start=1):
        lost = [key for key, value in item.items() if key not in known and value not in (None, [], "")]
        if lost:
            raise ValueError(f"trader schema {schema_version} cannot carry /items[{index}]/{lost[0]}")
    buf = io.BytesIO()
    buf.write(MAGIC)
    buf.write(writer.fingerprint)
    fastavro.schemaless_writer(buf, writer.parsed, content)
    return buf.getvalue()


# --------------------------------------------------------------------------- sample files


def sample_avro(xml: bytes, schema_version: str = CURRENT_VERSION) -> bytes:
    """The Avro form of an NSW XML sample (via the XML mapping), as ``schemas/samples/*.avro``."""
    submission = read_declaration(xml, submission_id="sample", received_at=0)
    return encode_avro_submission(submission, schema_version)


def write_samples(directory: Path, names: Sequence[str]) -> list[Path]:
    """Write ``NAME.avro`` beside each ``NAME.xml`` sample; return the files written."""
    written: list[Path] = []
    for name in names:
        source = directory / name
        target = source.with_suffix(".avro")
        target.write_bytes(sample_avro(source.read_bytes()))
        written.append(target)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m schemas._avro_submission [SAMPLES_DIR]``: regenerate the .avro samples."""
    args = list(sys.argv[1:] if argv is None else argv)
    directory = Path(args[0]) if args else Path(__file__).resolve().parent / "samples"
    manifest = json.loads((directory / "expected.json").read_text(encoding="utf-8"))
    valid = sorted(name for name, entry in manifest.items() if entry.get("outcome") is not None)
    for path in write_samples(directory, valid):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
