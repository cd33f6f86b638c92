"""The committed HS table is what ``ops/hs_table.py`` generates from the shared HS data (datasets/harmonized-system)."""

from __future__ import annotations

import os

from ops import hs_table
from tests.conformance.conftest import SHARED_DATA

SOURCE = SHARED_DATA / "harmonized-system"


def test_committed_table_is_what_the_script_generates_from_the_shared_data() -> None:
    assert os.path.normpath(hs_table.DEFAULT_SOURCE) == os.path.normpath(
        hs_table.PROJECT_ROOT.parent / "shared" / "data" / "harmonized-system")
    committed = hs_table.DEFAULT_OUTPUT.read_text(encoding="utf-8")
    assert hs_table.generate(SOURCE) == committed
    assert committed.startswith("# Derived from datasets/harmonized-system@905e5a0")
    assert hs_table.main([str(SOURCE), "--check"]) == 0
