"""``nsw route``: the project samples (XML and Avro), routed with explanations."""

from __future__ import annotations

import argparse
import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from routing._cli import add_route_parser, run_route
from tests.conftest import SAMPLES, expected_outcomes

EXPECTED = expected_outcomes()
VALID = sorted(name for name, case in EXPECTED.items() if case["outcome"] is not None)


def routed(capsys: pytest.CaptureFixture[str], file: Path, *, bundle: list[str] | None = None) -> tuple[int, Any]:
    code = run_route(argparse.Namespace(file=str(file), bundle=bundle or [], on=date(2026, 12, 1)))
    return code, json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("name", VALID)
@pytest.mark.parametrize("suffix", [".xml", ".avro"])
def test_samples_go_to_the_expected_agencies_with_reasons(
    capsys: pytest.CaptureFixture[str], name: str, suffix: str
) -> None:
    code, answer = routed(capsys, SAMPLES / name.replace(".xml", suffix))
    assert code == 0
    agencies = answer["agencies"]
    assert list(agencies) == EXPECTED[name]["agencies"]
    for reasons in agencies.values():
        assert reasons
        for reason in reasons:
            assert set(reason) == {"item", "rule", "why"}
            assert isinstance(reason["item"], int)
            assert reason["rule"]
            assert reason["why"]
    assert len(agencies["customs"]) == len({r["item"] for rs in agencies.values() for r in rs})


def test_all_agencies_sample_routes_each_item_to_its_agency(capsys: pytest.CaptureFixture[str]) -> None:
    _, answer = routed(capsys, SAMPLES / "all-agencies.xml")
    items = {agency: [r["item"] for r in reasons] for agency, reasons in answer["agencies"].items()}
    assert items == {"customs": [1, 2, 3, 4], "sps": [2], "cwc": [3], "ipr": [4]}
    assert "111-48-8" in answer["agencies"]["cwc"][0]["why"]


def test_invalid_file_prints_the_problem_and_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    name = "invalid-missing-commodity-code.xml"
    code, answer = routed(capsys, SAMPLES / name)
    assert code == 1
    assert answer["type"].endswith("/" + EXPECTED[name]["type"])
    assert answer["status"] == EXPECTED[name]["status"]
    assert EXPECTED[name]["element"] in answer["errors"][0]["message"]
    assert answer["errors"][0]["path"] == EXPECTED[name]["path"]
    assert isinstance(answer["errors"][0]["line"], int)


def test_bad_bundle_is_a_configuration_error(capsys: pytest.CaptureFixture[str]) -> None:
    code = run_route(argparse.Namespace(file=str(SAMPLES / "plain-goods.xml"), bundle=["hmrc-cds"], on=None))
    assert code == 2
    assert "NAME=DIR" in capsys.readouterr().err


def test_parser_registers_route() -> None:
    parser = argparse.ArgumentParser(prog="nsw")
    add_route_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["route", "--bundle", "a=/x", "--bundle", "b=/y", "--on", "2026-01-02", "f.xml"])
    assert (args.file, args.bundle, args.on, args.run) == ("f.xml", ["a=/x", "b=/y"], date(2026, 1, 2), run_route)


def test_route_names_the_rule_set_and_why_an_agency_is_not_asked(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    text = (SAMPLES / "plants-sps.xml").read_text(encoding="utf-8")
    assert "<TypeCode>IMA</TypeCode>" in text
    supplementary = tmp_path / "plants-supplementary.xml"
    supplementary.write_text(text.replace("<TypeCode>IMA</TypeCode>", "<TypeCode>IMZ</TypeCode>"), encoding="utf-8")
    code, answer = routed(capsys, SAMPLES / "plants-sps.xml")
    assert (code, answer["rule_set"], answer["not_routed"]) == (0, "2026.2", [])
    assert answer["agencies"]["sps"][0]["rule"] == "SPS-PH-IMPORT"
    code, answer = routed(capsys, supplementary)
    assert code == 0
    assert list(answer["agencies"]) == ["customs"]
    assert [(n["item"], n["agency"], n["rule"]) for n in answer["not_routed"]] == [(1, "sps", "SPS-PH-IMPORT")]
    assert "supplementary" in answer["not_routed"][0]["why"]
