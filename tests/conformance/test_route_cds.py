"""``nsw route`` on a UK CDS declaration of the shared corpus: refused without its bundle, routed with it."""

from __future__ import annotations

import pytest

from tests.conformance.conftest import HMRC_SCHEMAS
from tests.test_route_cli import routed


def test_unknown_namespace_without_its_bundle_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    corpus_file = HMRC_SCHEMAS.parent / "examples" / "TT_IM188a" / "Step1_TT_IM188a.xml"
    assert corpus_file.exists(), "the HMRC corpus ($NSW_CORPUS/hmrc-cds) is part of the conformance data"
    code, answer = routed(capsys, corpus_file)
    assert code == 1
    assert answer["type"].endswith("/unknown-namespace")
    code, answer = routed(capsys, corpus_file, bundle=[f"hmrc-cds={HMRC_SCHEMAS}"])
    assert code == 0
    assert list(answer["agencies"]) == ["customs", "sps"]
    assert answer["agencies"]["sps"][0]["rule"].startswith("SPS-")
