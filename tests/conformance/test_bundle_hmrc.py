"""The UK CDS bundle over the real HMRC corpus (``$NSW_CORPUS/hmrc-cds``, read in place).

Which files are what, from the corpus README: declarations and amendments (root ``MetaData`` in
the DocumentMetaData-DMS namespace with a DEC-DMS ``Declaration``), cancellations (TypeCode INV),
namespaced DMS notifications (a RES-DMS ``Response``: kind "response", not a submission), one
invalid declaration, two files that are not well-formed, two raw files (one broken encoding).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from lxml import etree

from ops._conformance import corpus_dir
from schemas._bundle import BundleSet, read_submission, validate_file_result
from schemas._document import DocumentError
from schemas._hmrc import DEC_NAMESPACE, METADATA_NAMESPACE, RES_NAMESPACE
from schemas._records import Submission
from schemas.errors import BundleError

CORPUS = corpus_dir() / "hmrc-cds"
SCHEMAS = CORPUS / "schemas"
NOT_WELL_FORMED = ("examples/TT_EX022a/TT_EX022a_Declaration1_(Step1).xml", "examples/TT_IM084a/TT_IM084a.xml")
INVALID_400 = "examples/example_submission_declaration_400.xml"


def _envelope(path: Path) -> str:
    """Classify a corpus file by its envelope with a plain lxml parse (independent of the hub)."""
    try:
        root = etree.parse(str(path), etree.XMLParser(resolve_entities=False, no_network=True)).getroot()
    except etree.XMLSyntaxError:
        return "not-xml"
    if root.tag != f"{{{METADATA_NAMESPACE}}}MetaData":
        return "other"
    if root.find(f"{{{RES_NAMESPACE}}}Response") is not None:
        return "response"
    declaration = root.find(f"{{{DEC_NAMESPACE}}}Declaration")
    if declaration is None:
        return "other"
    if declaration.findtext(f"{{{DEC_NAMESPACE}}}TypeCode") == "INV":
        return "cancellation"
    return {"9": "declaration", "13": "amendment"}.get(
        declaration.findtext(f"{{{DEC_NAMESPACE}}}FunctionCode") or "", "other"
    )


def _corpus_files() -> list[Path]:
    files = [p for p in sorted((CORPUS / "examples").rglob("*")) if p.is_file() and p.suffix.lower() == ".xml"]
    return [*files, CORPUS / "raw" / "valid_xml.raw"]


FILES = _corpus_files()
BY_KIND: dict[str, list[Path]] = {}
for _path in FILES:
    BY_KIND.setdefault(_envelope(_path), []).append(_path)
SUBMISSIONS = sorted(
    p
    for kind in ("declaration", "amendment", "cancellation")
    for p in BY_KIND.get(kind, [])
    if p != CORPUS / INVALID_400
)


@pytest.fixture(scope="module")
def bundles() -> BundleSet:
    return BundleSet.from_specs([f"hmrc-cds={SCHEMAS}"])


def _read(data: bytes, bundles: BundleSet) -> Submission:
    return read_submission(data, bundles=bundles, submission_id="sub-1", received_at=7, max_bytes=5_000_000)


def _refused(data: bytes, bundles: BundleSet) -> DocumentError:
    with pytest.raises(DocumentError) as caught:
        _read(data, bundles)
    return caught.value


def test_corpus_has_the_documented_population() -> None:
    counts = Counter({kind: len(paths) for kind, paths in BY_KIND.items()})
    assert counts["declaration"] + counts["amendment"] >= 210  # README: about 210
    assert counts["cancellation"] == 3
    assert counts["response"] == 5  # TT_EX039a's namespaced notifications
    assert len(SUBMISSIONS) > 150


def test_every_valid_declaration_amendment_and_cancellation_validates_and_maps(bundles: BundleSet) -> None:
    kinds: Counter[str] = Counter()
    failures: list[str] = []
    for path in SUBMISSIONS:
        data = path.read_bytes()
        result = validate_file_result(data, bundles)
        if not result["valid"]:
            failures.append(f"{path.relative_to(CORPUS)}: {result['errors'][0]}")
            continue
        record = _read(data, bundles)
        assert record["bundle"] == "hmrc-cds"
        assert record["kind"] == {"declaration": "DECLARATION", "amendment": "AMENDMENT"}.get(
            str(result["kind"]), "CANCELLATION"
        )
        assert record["trader_reference"], path
        kinds[record["kind"]] += 1
    assert failures == []
    assert kinds["DECLARATION"] > 150
    assert kinds["AMENDMENT"] >= 10
    assert kinds["CANCELLATION"] == 3
    assert sum(kinds.values()) == len(SUBMISSIONS)


def test_every_declaration_item_has_a_known_hs_subheading_or_no_code(bundles: BundleSet) -> None:
    coded = 0
    for path in BY_KIND["declaration"]:
        if path == CORPUS / INVALID_400:
            continue
        for item in _read(path.read_bytes(), bundles)["items"]:
            code = item["commodity_code"]
            assert code == "" or (code.isdigit() and 6 <= len(code) <= 10), (path, code)
            coded += code != ""
    assert coded > 150


def test_a_frontier_import_maps_field_by_field(bundles: BundleSet) -> None:
    record = _read((CORPUS / "examples/TT_IM001a/Step1_TT_IM001a.xml").read_bytes(), bundles)
    assert record["kind"] == "DECLARATION"
    assert (record["function_code"], record["trader_reference"]) == ("9", "7847767E1WB6")
    assert (record["declaration_type"], record["declarant_id"]) == ("IMA", "GB603202734852")
    assert [p["role"] for p in record["parties"]] == ["DECLARANT", "EXPORTER", "IMPORTER"]
    assert record["parties"][1] == {"role": "EXPORTER", "id": None, "name": "US Clipper Inc.", "country": "US"}
    assert [a["category_code"] for a in record["authorisations"]] == ["CGU", "DPO"]
    assert (record["export_country"], record["destination_country"]) == ("US", "GB")
    (item,) = record["items"]
    assert item["commodity_code"] == "8510900000"  # TSP 85109000 + TRC 00
    assert item["origin_country"] == "US"
    assert [d["category_code"] + d["type_code"] for d in item["documents"]] == ["C506", "N935", "C505"]
    assert (item["net_mass_kg"], item["value"], item["currency"]) == (100.0, 1000.0, "GBP")
    assert item["cas_numbers"] == []


def test_aeo_authorisations_are_mapped(bundles: BundleSet) -> None:
    holders = [
        a["category_code"]
        for path in BY_KIND["declaration"][:80]
        for a in _read(path.read_bytes(), bundles)["authorisations"]
    ]
    assert {"AEOC", "AEOS"} & set(holders)


def test_a_cancellation_has_its_reference_submitter_and_no_items(bundles: BundleSet) -> None:
    record = _read((CORPUS / "examples/TT_EX010a/TT_EX010a_Cancellation.xml").read_bytes(), bundles)
    assert record["kind"] == "CANCELLATION"
    assert (record["function_code"], record["declaration_type"]) == ("13", "INV")
    assert record["trader_reference"] == "U.7867523JNCOL"
    assert record["declarant_id"] == "GB150454489082"
    assert record["parties"] == [{"role": "SUBMITTER", "id": "GB150454489082", "name": None, "country": None}]
    assert record["items"] == []


def test_an_amendment_is_recognised_by_function_code_13(bundles: BundleSet) -> None:
    record = _read((CORPUS / "examples/TT_Add_Item_Scenario_v1/Step2_Amendment.xml").read_bytes(), bundles)
    assert (record["kind"], record["function_code"], record["declaration_type"]) == ("AMENDMENT", "13", "COR")
    assert [item["sequence"] for item in record["items"]] == [3]
    assert record.get("amends_id") is not None  # the MRN of the declaration it amends (Declaration/ID)


def test_a_declaration_amends_nothing(bundles: BundleSet) -> None:
    record = _read((CORPUS / "examples/TT_IM002b/TT_IM002a.xml").read_bytes(), bundles)
    assert (record["kind"], record.get("amends_id")) == ("DECLARATION", None)


def test_the_400_example_is_refused_naming_element_and_line(bundles: BundleSet) -> None:
    data = (CORPUS / INVALID_400).read_bytes()
    error = _refused(data, bundles)
    assert (error.type, error.status) == ("schema-violation", 422)
    (detail,) = error.errors
    assert "'unknown'" in detail.message
    assert detail.path == "/MetaData/Declaration/unknown"
    assert detail.line == data[: data.index(b"<unknown")].count(b"\n") + 1
    assert validate_file_result(data, bundles)["kind"] == "declaration"


@pytest.mark.parametrize("name", NOT_WELL_FORMED)
def test_samples_with_double_hyphen_comments_are_not_well_formed(name: str, bundles: BundleSet) -> None:
    error = _refused((CORPUS / name).read_bytes(), bundles)
    assert (error.type, error.status) == ("not-well-formed", 400)
    assert "hyphen" in error.errors[0].message.lower()
    assert error.errors[0].line is not None


def test_raw_files_one_valid_one_broken_encoding(bundles: BundleSet) -> None:
    assert _read((CORPUS / "raw" / "valid_xml.raw").read_bytes(), bundles)["kind"] == "DECLARATION"
    broken = (CORPUS / "raw" / "invalid_xml.raw").read_bytes()
    error = _refused(broken, bundles)
    assert (error.type, error.status) == ("wrong-encoding", 400)
    assert error.errors[0].line == 33
    result = validate_file_result(broken, bundles)
    message = error.errors[0].message
    assert result == {"valid": False, "kind": None, "errors": [{"message": message, "line": 33, "path": None}]}


def test_dms_notifications_validate_as_responses_but_are_not_submissions(bundles: BundleSet) -> None:
    for path in BY_KIND["response"]:
        data = path.read_bytes()
        assert validate_file_result(data, bundles) == {"valid": True, "kind": "response", "errors": []}
        error = _refused(data, bundles)
        assert error.type == "unknown-message-kind"
        assert "response" in error.errors[0].message


def test_notifications_without_namespace_are_an_unknown_namespace(bundles: BundleSet) -> None:
    data = next((CORPUS / "examples" / "Example_DMS_notifications").glob("*.xml")).read_bytes()
    error = _refused(data, bundles)
    assert error.type == "unknown-namespace"
    assert "no namespace" in error.errors[0].message
    assert METADATA_NAMESPACE in error.errors[0].message  # lists what the hub knows
    assert "(hmrc-cds)" in error.errors[0].message


def test_without_the_bundle_cds_documents_are_an_unknown_namespace() -> None:
    error = _refused((CORPUS / "examples/TT_IM001a/Step1_TT_IM001a.xml").read_bytes(), BundleSet.default())
    assert error.type == "unknown-namespace"
    assert "(nsw)" in error.errors[0].message


def _edited(path: str, old: bytes, new: bytes) -> bytes:
    data = (CORPUS / path).read_bytes()
    assert old in data
    return data.replace(old, new, 1)


def test_an_unknown_hs_code_is_a_business_rule_naming_the_classification(bundles: BundleSet) -> None:
    data = _edited("examples/TT_IM001a/Step1_TT_IM001a.xml", b"<ID>85109000</ID>", b"<ID>85199900</ID>")
    error = _refused(data, bundles)
    assert (error.type, error.status) == ("business-rule", 422)
    (detail,) = error.errors
    assert "851999" in detail.message
    assert "unknown HS code" in detail.message
    assert detail.path == "/MetaData/Declaration/GoodsShipment/GovernmentAgencyGoodsItem/Commodity/Classification[1]/ID"
    assert detail.line == data[: data.index(b"<ID>85199900")].count(b"\n") + 1


def test_an_unknown_function_code_is_an_unknown_message_kind(bundles: BundleSet) -> None:
    data = _edited("examples/TT_IM001a/Step1_TT_IM001a.xml", b"<FunctionCode>9<", b"<FunctionCode>7<")
    error = _refused(data, bundles)
    # The CDS schema enumerates FunctionCode: the schema names it first.
    assert error.type in {"schema-violation", "unknown-message-kind"}
    assert "FunctionCode" in (error.errors[0].path or "") + error.errors[0].message


# --------------------------------------------------------------------------- configuration


def test_bundle_specs_from_env_and_cli() -> None:
    from_env = BundleSet.from_env({"NSW_BUNDLES": f"hmrc-cds={SCHEMAS}"})
    assert from_env.names == ("nsw", "hmrc-cds")
    assert BundleSet.from_env({}).names == ("nsw",)
    cli = BundleSet.from_env({"NSW_BUNDLES": "hmrc-cds=/nowhere"}, specs=[f"hmrc-cds={CORPUS}"])
    assert cli.get("hmrc-cds").schema_dir == SCHEMAS.resolve()  # corpus root accepted, CLI wins


@pytest.mark.parametrize(
    ("specs", "needle"),
    [
        (["hmrc-cds"], "NAME=DIR"),
        (["=dir"], "NAME=DIR"),
        (["nope=/tmp"], "unknown bundle"),
        (["nsw=/tmp"], "built in"),
        (["hmrc-cds=/nowhere/at/all"], "does not exist"),
        (["hmrc-cds=/tmp"], "cannot read"),
        ([f"hmrc-cds={SCHEMAS}", f"hmrc-cds={SCHEMAS}"], "twice"),
    ],
)
def test_bad_bundle_specs_are_configuration_errors(specs: list[str], needle: str) -> None:
    with pytest.raises(BundleError, match=needle):
        BundleSet.from_specs(specs)
