"""The packaged CWC schedules are exactly what ``python -m ops.refdata cwc`` makes of the shared research data."""

from __future__ import annotations

from pathlib import Path

import refdata
from ops.refdata import render_cwc
from tests.conformance.conftest import SHARED_DATA


def test_packaged_schedules_are_regenerated_identically() -> None:
    packaged = Path(refdata.__file__).parent / "cwc-schedules.csv"
    assert render_cwc(SHARED_DATA) == packaged.read_text(encoding="utf-8")
