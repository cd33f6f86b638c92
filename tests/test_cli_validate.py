"""``nsw validate``: one JSON line per file, the ingress's validator, exit code 0 only when all are valid."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from broker._cli import main
from tests.conftest import CDS_EXAMPLES, HMRC_SCHEMAS, SAMPLES


def test_valid_samples_exit_zero(capsys: pytest.CaptureFixture[str]) -> None:
    files = sorted(str(p) for p in SAMPLES.glob("*.xml") if "invalid" not in p.name)
    assert main(["validate", *files]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["file"] for line in lines] == files
    assert all(line["valid"] and line["kind"] in {"declaration", "amendment"} for line in lines)


def test_invalid_sample_names_element_and_line(capsys: pytest.CaptureFixture[str]) -> None:
    bad = SAMPLES / "invalid-missing-commodity-code.xml"
    assert main(["validate", str(SAMPLES / "plain-goods.xml"), str(bad)]) == 1
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines[0]["valid"] is True
    assert lines[1]["valid"] is False
    assert lines[1]["errors"][0]["line"] > 0
    assert "Classification" in lines[1]["errors"][0]["message"] + (lines[1]["errors"][0]["path"] or "")


def test_hmrc_bundle_given_at_run_time(capsys: pytest.CaptureFixture[str]) -> None:
    sample = CDS_EXAMPLES / "export-cus-code.xml"
    assert main(["validate", str(sample)]) == 1  # without the bundle its namespace is unknown
    assert json.loads(capsys.readouterr().out)["errors"][0]["message"]
    assert main(["validate", "--bundle", f"hmrc-cds={HMRC_SCHEMAS}", str(sample)]) == 0
    assert json.loads(capsys.readouterr().out)["valid"] is True


def test_unreadable_file_is_reported(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(SAMPLES / "no-such-file.xml")]) == 1
    assert json.loads(capsys.readouterr().out)["valid"] is False


def test_avro_submissions_are_validated_as_the_ingress_takes_them(capsys: pytest.CaptureFixture[str],
                                                                   tmp_path: Path) -> None:
    files = sorted(str(p) for p in SAMPLES.glob("*.avro"))
    assert main(["validate", *files]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {line["kind"] for line in lines} == {"declaration", "amendment"}
    cut = tmp_path / "cut.avro"
    cut.write_bytes((SAMPLES / "plain-goods.avro").read_bytes()[:100])
    unknown = tmp_path / "unknown.avro"
    unknown.write_bytes(b"\xc3\x01" + b"\x00" * 8 + b"\x02")
    assert main(["validate", str(cut), str(unknown)]) == 1
    broken, foreign = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    assert broken["valid"] is False
    assert "record" in broken["errors"][0]["message"]
    assert "fingerprint" in foreign["errors"][0]["message"]
