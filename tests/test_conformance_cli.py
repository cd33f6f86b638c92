"""``nsw conformance`` on the project's own samples: every declaration answered as the hub would."""

from __future__ import annotations

import argparse
import json
from datetime import date
from pathlib import Path

import pytest

from ops._conformance import corpus_dir, missing_corpus, run_conformance, verdict_of
from schemas import BundleSet
from tests.conftest import SAMPLES, expected_outcomes


def test_each_sample_gets_the_answer_the_hub_gives(capsys: pytest.CaptureFixture[str]) -> None:
    args = argparse.Namespace(corpus=SAMPLES, bundle=[], on=None, json=True)
    assert run_conformance(args) == 0
    lines = capsys.readouterr().out.splitlines()
    verdicts = {}
    for line in lines:
        if line.startswith("{\"file\""):
            verdict = json.loads(line)
            verdicts[verdict["file"]] = verdict
    expected = {name: want for name, want in expected_outcomes().items() if want.get("outcome")}
    answered = {name: v for name, v in verdicts.items() if v["status"] == "answered"}
    assert set(expected) <= set(answered)
    for name, want in expected.items():
        assert answered[name]["outcome"] == want["outcome"], name
        assert sorted(answered[name]["agencies"]) == sorted(want["agencies"]), name
    assert verdicts["invalid-missing-commodity-code.xml"]["status"] == "refused"


def test_a_document_the_ingress_refuses_is_listed_with_its_problem() -> None:
    verdict = verdict_of("broken.xml", b"<MetaData><oops></MetaData>", bundles=BundleSet.default(),
                         on=date(2026, 12, 1))
    assert (verdict.status, verdict.problem.split(":")[0]) == ("refused", "not-well-formed")


def test_a_missing_corpus_is_a_clear_error(tmp_path: Path) -> None:
    args = argparse.Namespace(corpus=tmp_path / "absent", bundle=[], on=None, json=False)
    assert run_conformance(args) == 2


def test_the_corpus_is_found_from_nsw_corpus(tmp_path: Path) -> None:
    assert corpus_dir({"NSW_CORPUS": str(tmp_path)}) == tmp_path
    default = corpus_dir({})
    assert default.parts[-2:] == ("shared", "corpus")
    assert default.parent.parent == Path(__file__).resolve().parents[2]  # beside the clone


def test_an_absent_corpus_says_what_to_fetch(tmp_path: Path) -> None:
    problem = missing_corpus(tmp_path / "corpus")
    assert problem is not None
    assert "NSW_CORPUS" in problem
    assert "github.com/hmrc/customs-declarations" in problem
    assert "github.com/datasets/harmonized-system" in problem
    (tmp_path / "corpus" / "hmrc-cds").mkdir(parents=True)
    problem = missing_corpus(tmp_path / "corpus")
    assert problem is not None
    assert "hmrc/customs-declarations" not in problem  # only what is still missing
    (tmp_path / "data" / "harmonized-system").mkdir(parents=True)
    (tmp_path / "data" / "cwc").mkdir(parents=True)
    assert missing_corpus(tmp_path / "corpus") is None
