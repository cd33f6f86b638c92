"""Schema bundles: which XML profiles the hub accepts, and the one entry point that reads them.

A :class:`Bundle` is data: a name, the XSD entry point for each message kind, how to recognise the
kind from the envelope (root element, ``WCOTypeName``, ``FunctionCode``, ``TypeCode`` ``INV``,
a ``Response`` child) and the business rules and mapping to the canonical Submission. The
project's own profile is the built-in bundle ``nsw``; the UK CDS profile ``hmrc-cds`` is loaded
from a schema directory given at run time (its XSD files are not part of the project)::

    bundles = BundleSet.from_env(specs=["hmrc-cds=../shared/corpus/hmrc-cds/schemas"])
    submission = read_submission(body, bundles=bundles, submission_id=..., received_at=..., max_bytes=...)

The root element's namespace picks the bundle. Every document then goes the same way, so the
ingress and ``nsw validate`` give the same verdict: hardened parse (``schemas._xml``), envelope
recognition, XSD validation with the kind's compiled schema (compiled once per thread), business
rules (including the HS nomenclature check), mapping.

Message kinds: ``declaration`` (FunctionCode 9), ``amendment`` (FunctionCode 13), ``cancellation``
(Declaration TypeCode ``INV``, validated with its own schema) and ``response`` (a customs
notification, ``MetaData`` with a RES-DMS ``Response``). A response validates (``nsw validate``
says ``"kind": "response"``) but is not a submission: :func:`read_submission` refuses it as
``unknown-message-kind``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Final, Literal, Protocol, TypedDict

from lxml import etree

from config import ClientSettings
from schemas import _hmrc, _mapping
from schemas._document import DocumentError, ErrorDetail, limited
from schemas._limits import limit_errors
from schemas._records import Submission, SubmissionKind
from schemas._xml import (
    DEFAULT_MAX_BYTES,
    compile_schema,
    element_path,
    line_of,
    nsw_rule_errors,
    nsw_xsd,
    parse_document,
    schema_check,
)
from schemas.errors import BundleError

MessageKind = Literal["declaration", "amendment", "cancellation", "response"]

#: Environment variable with comma-separated ``NAME=DIR`` bundle specs (same syntax as ``--bundle``).
BUNDLES_ENV: Final = "NSW_BUNDLES"
DEFAULT_BUNDLE: Final = "nsw"

_SUBMISSION_KINDS: Final[dict[MessageKind, SubmissionKind]] = {
    "declaration": "DECLARATION",
    "amendment": "AMENDMENT",
    "cancellation": "CANCELLATION",
}

_Element = etree._Element


# --------------------------------------------------------------------------- bundle description


@dataclass(frozen=True, slots=True)
class XsdSource:
    """An XSD entry point: its bytes and the URL its includes and imports are resolved against."""

    key: str  # unique per bundle and file; names the compiled schema in the per-thread cache
    data: bytes = field(repr=False, compare=False)
    base_url: str | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Envelope:
    """How to recognise a message kind from the envelope, before (and after) validation.

    Element names are in Clark notation (``{namespace}local``). ``FunctionCode`` and ``TypeCode``
    are looked up in the declaration element's namespace, ``WCOTypeName`` in the root's.
    """

    root: str
    #: Accepted ``WCOTypeName`` values; None leaves them to the schema (CDS also uses ``DEC-DMS``).
    type_names: frozenset[str] | None
    declaration: str
    function_codes: Mapping[str, MessageKind]
    cancellation_type_code: str | None = None
    response: str | None = None

    @property
    def namespace(self) -> str:
        return etree.QName(self.root).namespace or ""


class RuleCheck(Protocol):
    def __call__(self, root: _Element, /) -> list[ErrorDetail]: ...


class Mapper(Protocol):
    def __call__(
        self, root: _Element, /, *, kind: SubmissionKind, submission_id: str, received_at: int, version: int
    ) -> Submission: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class Bundle:
    """One XML profile the hub accepts: schemas per message kind, recognition, rules, mapping."""

    name: str
    envelope: Envelope
    schemas: Mapping[MessageKind, XsdSource]
    rules: RuleCheck
    mapping: Mapper
    schema_dir: Path | None = None

    @property
    def namespace(self) -> str:
        return self.envelope.namespace

    @property
    def kinds(self) -> tuple[MessageKind, ...]:
        return tuple(self.schemas)

    def recognise(self, root: _Element, *, strict: bool = False) -> MessageKind:
        """The message kind the envelope announces; raise ``unknown-message-kind`` when it is none.

        Before validation (``strict=False``) a missing or unknown FunctionCode gives the
        declaration schema, so the schema names the precise problem; after validation
        (``strict=True``) a FunctionCode the bundle does not know is refused.
        """
        return self.recognise_definite(root, strict=strict)[0]

    def recognise_definite(self, root: _Element, *, strict: bool = False) -> tuple[MessageKind, bool]:
        """``recognise``, and whether the kind was announced (False: the declaration schema by default,
        worth asking again with ``strict`` once the document is valid)."""
        envelope = self.envelope
        qname = etree.QName(root)
        expected = etree.QName(envelope.root).localname
        if root.tag != envelope.root:
            raise _fail(
                "unknown-message-kind",
                f"root element is {qname.localname!r}; a {self.name} message is a {expected!r} envelope",
                root,
            )
        type_name = root.find(f"{{{envelope.namespace}}}WCOTypeName")
        accepted_names = envelope.type_names
        if accepted_names is not None and type_name is not None and _clean(type_name.text) not in accepted_names:
            accepted = ", ".join(sorted(accepted_names))
            raise _fail(
                "unknown-message-kind",
                f"WCOTypeName is {_clean(type_name.text)!r}; bundle {self.name} accepts {accepted}",
                type_name,
            )
        if envelope.response is not None and root.find(envelope.response) is not None:
            return self._supported("response", root), True
        declaration = root.find(envelope.declaration)
        if declaration is None:
            return "declaration", False  # the schema says what is missing
        ns = etree.QName(declaration).namespace
        type_code = declaration.find(f"{{{ns}}}TypeCode")
        cancellation = envelope.cancellation_type_code
        if cancellation is not None and type_code is not None and _clean(type_code.text) == cancellation:
            return self._supported("cancellation", type_code), True
        function_code = declaration.find(f"{{{ns}}}FunctionCode")
        code = None if function_code is None else _clean(function_code.text)
        kind = None if code is None else envelope.function_codes.get(code)
        if kind is not None:
            return self._supported(kind, declaration), True
        if strict and function_code is not None:
            known = ", ".join(f"{fc} ({k})" for fc, k in envelope.function_codes.items())
            raise _fail(
                "unknown-message-kind",
                f"FunctionCode {code!r} is not one bundle {self.name} accepts: {known}",
                function_code,
            )
        return "declaration", False

    def _supported(self, kind: MessageKind, element: _Element) -> MessageKind:
        if kind not in self.schemas:
            raise _fail("unknown-message-kind", f"bundle {self.name} does not accept a {kind}", element)
        return kind


#: The first bytes of an Avro single-object encoded record.
AVRO_MAGIC: Final = b"\xc3\x01"


def _clean(text: str | None) -> str:
    return " ".join((text or "").split())


def _fail(type_: Literal["unknown-message-kind"], message: str, element: _Element) -> DocumentError:
    return DocumentError(type_, (ErrorDetail(message, line_of(element), element_path(element)),))


# --------------------------------------------------------------------------- the bundles


@cache
def nsw_bundle() -> Bundle:
    """The project's own profile (``schemas/xsd/nsw-declaration.xsd``), always present."""
    ns = _mapping.NSW_NAMESPACE
    xsd = XsdSource("nsw:nsw-declaration.xsd", nsw_xsd())
    return Bundle(
        name=_mapping.BUNDLE,
        envelope=Envelope(
            root=f"{{{ns}}}MetaData",
            type_names=frozenset({"DEC"}),
            declaration=f"{{{ns}}}Declaration",
            function_codes={"9": "declaration", "13": "amendment"},
        ),
        schemas={"declaration": xsd, "amendment": xsd},
        rules=nsw_rule_errors,
        mapping=_mapping.to_submission,
    )


# The CDS response schemas have no wrapper file; this one sits (virtually) beside the others.
_HMRC_RESPONSE_WRAPPER: Final = b"""<?xml version="1.0" encoding="UTF-8"?>
<xs:schema targetNamespace="urn:wco:datamodel:WCO:DocumentMetaData-DMS:2"
           xmlns:xs="http://www.w3.org/2001/XMLSchema" elementFormDefault="qualified">
  <xs:include schemaLocation="../wco/notification/DocumentMetaData_2_DMS.xsd"/>
  <xs:import namespace="urn:wco:datamodel:WCO:RES-DMS:2"
             schemaLocation="../wco/notification/WCO_RES_2_DMS.xsd"/>
</xs:schema>
"""


def _schema_file(bundle: str, directory: Path, relative: str) -> XsdSource:
    path = directory / relative
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise BundleError(f"bundle {bundle}: cannot read {path}: {exc.strerror or exc}") from exc
    return XsdSource(f"{bundle}:{path}", data, str(path))


def _hmrc_bundle(directory: Path) -> Bundle:
    name = _hmrc.BUNDLE
    if not (directory / "customs").is_dir() and (directory / "schemas" / "customs").is_dir():
        directory = directory / "schemas"  # the corpus root was given: be kind
    submit = _schema_file(name, directory, "customs/wrapper_submit.xsd")
    cancel = _schema_file(name, directory, "customs/wrapper_cancel.xsd")
    _schema_file(name, directory, "wco/notification/WCO_RES_2_DMS.xsd")  # fail early when missing
    wrapper = directory / "customs" / "nsw-response-wrapper.xsd"  # not written: a base URL only
    response = XsdSource(f"{name}:{wrapper}", _HMRC_RESPONSE_WRAPPER, str(wrapper))
    return Bundle(
        name=name,
        envelope=Envelope(
            root=f"{{{_hmrc.METADATA_NAMESPACE}}}MetaData",
            type_names=None,
            declaration=f"{{{_hmrc.DEC_NAMESPACE}}}Declaration",
            function_codes={"9": "declaration", "13": "amendment"},
            cancellation_type_code="INV",
            response=f"{{{_hmrc.RES_NAMESPACE}}}Response",
        ),
        schemas={"declaration": submit, "amendment": submit, "cancellation": cancel, "response": response},
        rules=_hmrc.rule_errors,
        mapping=_hmrc.to_submission,
        schema_dir=directory,
    )


_LOADERS: Final = {_hmrc.BUNDLE: _hmrc_bundle}


def load_bundle(name: str, directory: Path) -> Bundle:
    """Load bundle ``name`` from its schema directory and compile its schemas (BundleError if not)."""
    loader = _LOADERS.get(name)
    if loader is None:
        if name == DEFAULT_BUNDLE:
            raise BundleError(f"bundle {name} is built in and takes no schema directory")
        raise BundleError(f"unknown bundle {name!r}; known: {', '.join(sorted(_LOADERS))}")
    if not directory.is_dir():
        raise BundleError(f"bundle {name}: schema directory {directory} does not exist")
    bundle = loader(directory.resolve())
    for source in set(bundle.schemas.values()):
        try:
            compiled_schema(source)
        except etree.XMLSchemaParseError as exc:
            raise BundleError(f"bundle {name}: {source.base_url or source.key} does not compile: {exc}") from exc
        except etree.XMLSyntaxError as exc:
            raise BundleError(f"bundle {name}: {source.base_url or source.key} is not XML: {exc}") from exc
    return bundle


def parse_bundle_spec(spec: str) -> tuple[str, Path]:
    """``NAME=DIR`` (the ``--bundle`` syntax) -> (name, directory)."""
    name, sep, directory = spec.partition("=")
    name, directory = name.strip(), directory.strip()
    if not sep or not name or not directory:
        raise BundleError(f"bundle spec {spec!r} is not NAME=DIR (e.g. hmrc-cds=/path/to/schemas)")
    return name, Path(directory).expanduser()


@dataclass(frozen=True, slots=True)
class BundleSet:
    """The bundles the hub accepts; ``nsw`` is always among them. Built once at start-up."""

    bundles: tuple[Bundle, ...]

    def __post_init__(self) -> None:
        names = [bundle.name for bundle in self.bundles]
        namespaces = [bundle.namespace for bundle in self.bundles]
        if DEFAULT_BUNDLE not in names:
            raise BundleError(f"the {DEFAULT_BUNDLE} bundle must be present")
        if len(set(names)) != len(names) or len(set(namespaces)) != len(namespaces):
            raise BundleError("two bundles share a name or a root namespace")

    @classmethod
    def default(cls) -> BundleSet:
        return cls((nsw_bundle(),))

    @classmethod
    def from_specs(cls, specs: Iterable[str]) -> BundleSet:
        """``["hmrc-cds=DIR", ...]``; a name given twice is a configuration error."""
        loaded: dict[str, Bundle] = {}
        for spec in specs:
            name, directory = parse_bundle_spec(spec)
            if name in loaded:
                raise BundleError(f"bundle {name} is given twice")
            loaded[name] = load_bundle(name, directory)
        return cls((nsw_bundle(), *loaded.values()))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, specs: Iterable[str] = ()) -> BundleSet:
        """Bundles from ``NSW_BUNDLES`` (comma-separated specs), then ``specs`` (``--bundle``), which
        replace an environment spec of the same name."""
        return cls.configured(ClientSettings.from_env(environ).bundles, specs)

    @classmethod
    def configured(cls, configured: str | None, specs: Iterable[str] = ()) -> BundleSet:
        """Bundles from the ``NSW_BUNDLES`` setting's value ``configured``, then ``specs`` (``--bundle``)."""
        chosen: dict[str, str] = {}
        for spec in [part for part in (configured or "").split(",") if part.strip()]:
            chosen[parse_bundle_spec(spec)[0]] = spec
        cli: dict[str, str] = {}
        for spec in specs:
            name = parse_bundle_spec(spec)[0]
            if name in cli:
                raise BundleError(f"bundle {name} is given twice")
            cli[name] = spec
        chosen.update(cli)
        return cls.from_specs(chosen.values())

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(bundle.name for bundle in self.bundles)

    def get(self, name: str) -> Bundle:
        for bundle in self.bundles:
            if bundle.name == name:
                return bundle
        raise BundleError(f"bundle {name!r} is not loaded; loaded: {', '.join(self.names)}")

    def for_namespace(self, namespace: str | None) -> Bundle | None:
        for bundle in self.bundles:
            if bundle.namespace == namespace:
                return bundle
        return None


# --------------------------------------------------------------------------- compiled schemas


class _Compiled(threading.local):
    # A compiled XMLSchema keeps per-call state (its error_log) and libxml2 validates without the
    # GIL, so each thread compiles its own copy, once, from bytes read once at load time.
    def __init__(self) -> None:
        self.schemas: dict[str, etree.XMLSchema] = {}


_compiled = _Compiled()


def compiled_schema(source: XsdSource) -> etree.XMLSchema:
    """This thread's compiled schema for ``source``."""
    schema = _compiled.schemas.get(source.key)
    if schema is None:
        schema = compile_schema(source.data, source.base_url)
        _compiled.schemas[source.key] = schema
    return schema


# --------------------------------------------------------------------------- reading documents


@dataclass(frozen=True, slots=True)
class Checked:
    """A document that passed every check: its bundle, parsed root and message kind."""

    bundle: Bundle
    root: _Element
    kind: MessageKind


def _bundle_for(root: _Element, bundles: BundleSet) -> Bundle:
    qname = etree.QName(root)
    bundle = bundles.for_namespace(qname.namespace)
    if bundle is not None:
        return bundle
    found = f"namespace {qname.namespace!r}" if qname.namespace else "no namespace"
    known = ", ".join(f"{b.namespace!r} ({b.name})" for b in bundles.bundles)
    message = f"root element {qname.localname!r} is in {found}; the hub knows {known}"
    raise DocumentError("unknown-namespace", (ErrorDetail(message, line_of(root), f"/{qname.localname}"),))


def _check(data: bytes, bundles: BundleSet, max_bytes: int, kinds: list[MessageKind]) -> Checked:
    root = parse_document(data, max_bytes=max_bytes)
    bundle = _bundle_for(root, bundles)
    kind, definite = bundle.recognise_definite(root)
    kinds.append(kind)
    schema_check(compiled_schema(bundle.schemas[kind]), root)
    errors = bundle.rules(root)
    if errors:
        raise DocumentError("business-rule", limited(errors))
    final = kind if definite else bundle.recognise(root, strict=True)
    kinds.append(final)
    return Checked(bundle, root, final)


def check_document(data: bytes, *, bundles: BundleSet, max_bytes: int = DEFAULT_MAX_BYTES) -> Checked:
    """Parse, recognise, validate and apply the business rules; raise DocumentError when refused."""
    return _check(data, bundles, max_bytes, [])


def read_submission(
    data: bytes,
    *,
    bundles: BundleSet,
    submission_id: str,
    received_at: int,
    version: int = 1,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> Submission:
    """The canonical Submission for a posted XML document of any loaded bundle; raise DocumentError.

    ``submission["bundle"]`` names the bundle that read it. A customs response is refused
    (``unknown-message-kind``): it is what the hub answers, not what a trader submits.
    """
    checked = _check(data, bundles, max_bytes, [])
    submission_kind = _SUBMISSION_KINDS.get(checked.kind)
    if submission_kind is None:
        raise _fail(
            "unknown-message-kind",
            f"the document is a customs {checked.kind} (WCOTypeName RES), not a declaration, amendment or cancellation",
            checked.root,
        )
    return _mapped(checked, submission_kind, submission_id=submission_id, received_at=received_at, version=version)


def _mapped(checked: Checked, kind: SubmissionKind, *, submission_id: str, received_at: int,
            version: int) -> Submission:
    """The mapped record, within the hub's content limits (what a bundle's XSD allows may exceed them)."""
    submission = checked.bundle.mapping(
        checked.root, kind=kind, submission_id=submission_id, received_at=received_at, version=version
    )
    too_much = limit_errors(submission)
    if too_much:
        raise DocumentError("limit-exceeded", limited(too_much))
    return submission


class ErrorJson(TypedDict):
    message: str
    line: int | None
    path: str | None


class ValidationResult(TypedDict):
    """One ``nsw validate`` line without ``file`` (the CLI adds it)."""

    valid: bool
    kind: MessageKind | None
    errors: list[ErrorJson]


def _validate_avro(data: bytes, max_bytes: int) -> ValidationResult:
    from schemas._avro_submission import read_avro_submission  # noqa: PLC0415 - the Avro reader imports this module

    try:
        submission = read_avro_submission(data, submission_id="", received_at=0, max_bytes=max_bytes)
    except DocumentError as error:
        details = [ErrorJson(message=e.message, line=e.line, path=e.path) for e in error.errors]
        return ValidationResult(valid=False, kind=None, errors=details)
    kind: MessageKind = {"AMENDMENT": "amendment", "CANCELLATION": "cancellation"}.get(  # type: ignore[assignment]
        submission.get("kind", "DECLARATION"), "declaration")
    return ValidationResult(valid=True, kind=kind, errors=[])


def validate_file_result(data: bytes, bundles: BundleSet, *, max_bytes: int = DEFAULT_MAX_BYTES) -> ValidationResult:
    """The verdict ``nsw validate`` prints for one file: same checks as the ingress (the hub's content
    limits on the mapped record included; the Kafka message budget is the ingress's alone).

    ``kind`` is the kind the envelope announced even when a later check failed, and None when the
    document never got that far (not XML, unknown namespace, unknown message kind). An Avro trader submission
    (single-object encoded: C3 01 and the writer schema's fingerprint) is checked as the ingress checks
    ``avro/binary`` bodies.
    """
    if data[:2] == AVRO_MAGIC:  # an Avro trader submission, as the ingress takes with Content-Type avro/binary
        return _validate_avro(data, max_bytes)
    kinds: list[MessageKind] = []
    try:
        checked = _check(data, bundles, max_bytes, kinds)
        submission_kind = _SUBMISSION_KINDS.get(checked.kind)
        if submission_kind is not None:
            _mapped(checked, submission_kind, submission_id="", received_at=0, version=1)
    except DocumentError as error:
        kind = None if error.type == "unknown-message-kind" or not kinds else kinds[-1]
        details = [ErrorJson(message=e.message, line=e.line, path=e.path) for e in error.errors]
        return ValidationResult(valid=False, kind=kind, errors=details)
    return ValidationResult(valid=True, kind=checked.kind, errors=[])
