"""``nsw bench validate`` on the CDS fixtures: the report's shape (a benchmark, never a timed test)."""

from __future__ import annotations

import pytest

from broker._cli import main
from ops._bench_validate import accepted_documents, bench_validate
from tests.conftest import CDS_EXAMPLES, hub_bundles


def test_bench_validate_reports_both_rates() -> None:
    documents = accepted_documents(CDS_EXAMPLES, hub_bundles())
    assert documents
    report = bench_validate(documents, hub_bundles(), rounds=1)
    assert report["documents"] == len(documents)
    assert report["bare_lxml_per_s"] > 0
    assert report["hub_validate_map_per_s"] > 0
    assert report["cost_ratio"] > 0


def test_cli_refuses_an_empty_corpus(tmp_path: object, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "validate", "--corpus", str(tmp_path)]) == 2
    assert "no accepted document" in capsys.readouterr().err
