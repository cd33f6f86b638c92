"""The HS nomenclature table: built by ``ops/hs_table.py`` (from the shared data: tests/conformance), loaded by the hub,
and enforced as a business rule with the element path and line."""

from __future__ import annotations

import io
from contextlib import redirect_stderr
from pathlib import Path

import pytest

from ops import hs_table
from refdata._hs import HsNomenclature, hs_nomenclature, load_nomenclature
from schemas._document import DocumentError
from schemas._xml import read_declaration

ROOT = Path(__file__).resolve().parents[1]
PLAIN = (ROOT / "schemas" / "samples" / "plain-goods.xml").read_bytes()


def _source(folder: Path) -> Path:
    """A small HS source in the shared data's shape (written here): a chapter, a heading, subheadings, the
    UN Comtrade TOTAL rows the table leaves out, and heading 9702 whose HS 2017 subheading is kept."""
    folder.mkdir()
    (folder / hs_table.SOURCE_FILE).write_text(
        "section,hscode,description,parent,level\n"
        "XV,73,Iron or steel articles,TOTAL,2\n"
        "XV,7318,\"Screws, bolts, nuts\",73,4\n"
        "XV,731815,\"Screws and bolts; threaded\",7318,6\n"
        "XXI,9702,\"Engravings, prints and lithographs; original\",97,4\n"
        "TOTAL,TOTAL,Total of all HS commodities,TOTAL,0\n"
        "TOTAL,99,Commodities not specified according to kind,TOTAL,2\n",
        encoding="utf-8")
    return folder


def test_the_table_keeps_codes_and_drops_the_totals(tmp_path: Path) -> None:
    text = hs_table.generate(_source(tmp_path / "hs"))
    assert text.startswith("# Derived from datasets/harmonized-system@905e5a0")
    rows = text.splitlines()[3:]
    assert rows == ["73,2,hs", "7318,4,hs", "731815,6,hs", "9702,4,hs", "970200,6,hs2017"]


def test_check_mode_reports_a_stale_table(tmp_path: Path) -> None:
    source = _source(tmp_path / "hs")
    stale = tmp_path / "hs.csv"
    stale.write_text("code,level,basis\n", encoding="utf-8")
    with redirect_stderr(io.StringIO()) as err:
        assert hs_table.main([str(source), "--output", str(stale), "--check"]) == 1
    assert "stale" in err.getvalue()
    assert hs_table.main([str(source), "--output", str(stale)]) == 0
    assert hs_table.main([str(source), "--output", str(stale), "--check"]) == 0


def test_packaged_table_has_every_level() -> None:
    table = hs_nomenclature()
    assert len(table.chapters) >= 96
    assert len(table.headings) > 1200
    assert len(table.subheadings) > 5600
    assert {"73", "7318", "731815"} <= table.chapters | table.headings | table.subheadings


@pytest.mark.parametrize(
    ("code", "known"),
    [
        ("73181500", True),
        ("731815", True),
        ("0602905000", True),
        ("020500", True),  # heading without subheadings, declared as XXXX00
        ("292112", True),  # HS 2022 CWC family member
        ("97020000", True),  # HS 2017 code real declarations use (basis hs2017)
        ("97021000", True),  # its HS 2022 successor
        ("73189900", False),
        ("999999", False),
        ("731800", False),  # 7318 has subheadings: 731800 is not a code
    ],
)
def test_known_codes(code: str, known: bool) -> None:
    assert hs_nomenclature().knows(code) is known


def test_undivided_heading_rule_and_messages() -> None:
    table = load_nomenclature("# c\ncode,level,basis\n01,2,hs\n0101,4,hs\n0102,4,hs\n010210,6,hs\n")
    assert table == HsNomenclature.from_codes(["01", "0101", "0102", "010210"])
    assert table.knows("010100")
    assert table.knows("01010000")
    assert not table.knows("010200")
    assert table.problem("01029900") == "commodity code 01029900: 010299 is not a subheading of HS heading 0102"
    assert table.problem("01990000") == "commodity code 01990000: 0199 is not a heading of HS chapter 01"
    assert table.problem("99000000") == "commodity code 99000000: 99 is not an HS chapter"
    assert table.problem("01021000") is None


def test_unknown_hs_code_in_an_nsw_declaration_is_a_business_rule_with_path_and_line() -> None:
    data = PLAIN.replace(b"<ID>73181500</ID>", b"<ID>73189900</ID>")
    with pytest.raises(DocumentError) as caught:
        read_declaration(data, submission_id="s", received_at=1)
    error = caught.value
    assert (error.type, error.status) == ("business-rule", 422)
    (detail,) = error.errors
    assert "731899" in detail.message
    assert "unknown HS code" in detail.message
    assert detail.path == "/MetaData/Declaration/GoodsShipment/GovernmentAgencyGoodsItem/Commodity/Classification/ID"
    assert detail.line == data[: data.index(b"<ID>73189900")].count(b"\n") + 1
