"""Regenerate the hub's compact HS nomenclature table from the shared research data.

    python ops/hs_table.py [SOURCE_DIR] [--output FILE] [--check]

``SOURCE_DIR`` defaults to ``../shared/data/harmonized-system`` next to the project root; the
output defaults to ``refdata/hs-nomenclature.csv``. ``--check`` writes nothing and exits 1
when the committed table differs from what the sources give (the build runs it so a stale table
cannot ship).

Why a derived table instead of reading the shared CSV at run time: the shared directory is
research material outside the package; the hub ships only the codes it decides on (chapters,
headings, subheadings, no descriptions), in a form it loads in a millisecond.

Columns: ``code`` (2, 4 or 6 digits), ``level`` (2 chapter, 4 heading, 6 subheading) and
``basis``: ``hs`` for a row of the source, ``hs2017`` for an HS 2017 subheading that HS 2022
replaced and that real declarations still carry (listed in :data:`HS2017_RETIRED`; the source
mixes in a few HS 2017 codes already, those keep basis ``hs``). UN Comtrade's section ``TOTAL``
rows (the grand total, chapter 99 "not specified according to kind") are left out: no declaration
may use them. The output is deterministic.
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Final

PROJECT_ROOT: Final = Path(__file__).resolve().parents[1]
DEFAULT_SOURCE: Final = PROJECT_ROOT.parent / "shared" / "data" / "harmonized-system"
DEFAULT_OUTPUT: Final = PROJECT_ROOT / "refdata" / "hs-nomenclature.csv"
SOURCE_FILE: Final = "harmonized-system.csv"
SOURCE_NAME: Final = "datasets/harmonized-system@905e5a0 harmonized-system.csv (HS 2022, ODC-PDDL-1.0)"

#: HS 2017 subheadings that HS 2022 split, still used by real declarations (the UK CDS samples
#: declare 9702 00 00 original engravings). Source: WCO correlation table HS 2017 -> HS 2022.
HS2017_RETIRED: Final = {
    "970200": "original engravings, prints and lithographs (HS 2022: 970210, 970290)",
    "970300": "original sculptures and statuary (HS 2022: 970310, 970390)",
}


def build_rows(source_rows: Iterable[dict[str, str]]) -> list[tuple[str, int, str]]:
    """(code, level, basis) rows, sorted by code, from the source CSV's dict rows."""
    rows: dict[str, tuple[str, int, str]] = {}
    for row in source_rows:
        code = row["hscode"].strip()
        if row["section"].strip() == "TOTAL" or not code.isdigit() or len(code) not in (2, 4, 6):
            # Section TOTAL is UN Comtrade's bookkeeping (the grand total and chapter 99
            # "commodities not specified according to kind"), not HS nomenclature.
            continue
        rows[code] = (code, len(code), "hs")
    for code in HS2017_RETIRED:
        if code not in rows and code[:4] in rows:
            rows[code] = (code, 6, "hs2017")
    return sorted(rows.values())


def render(rows: Sequence[tuple[str, int, str]]) -> str:
    out = io.StringIO()
    out.write(f"# Derived from {SOURCE_NAME}; codes only.\n")
    out.write("# Regenerate with: python ops/hs_table.py   (do not edit by hand)\n")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(("code", "level", "basis"))
    writer.writerows(rows)
    return out.getvalue()


def generate(source_dir: Path) -> str:
    with (source_dir / SOURCE_FILE).open(encoding="utf-8-sig", newline="") as handle:
        return render(build_rows(csv.DictReader(handle)))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("source", nargs="?", type=Path, default=DEFAULT_SOURCE)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--check", action="store_true", help="exit 1 if the output file is stale")
    args = parser.parse_args(argv)
    text = generate(args.source)
    output: Path = args.output
    if args.check:
        current = output.read_text(encoding="utf-8") if output.exists() else ""
        if current != text:
            print(f"{output} is stale; run: python ops/hs_table.py", file=sys.stderr)
            return 1
        return 0
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text, encoding="utf-8")
    print(f"wrote {output} ({text.count(chr(10)) - 3} codes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
