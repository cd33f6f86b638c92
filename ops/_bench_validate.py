"""``nsw bench validate``: the hub's validate+map throughput beside bare lxml parse+validate of the same bytes.

Both run in this process, one after the other, on the same documents (every file of the corpus the bundle
accepts as a declaration, amendment or cancellation), several rounds each; the ratio is the hub's cost per
document over bare lxml's (issue target: at most 1.5).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lxml import etree

from schemas import BundleSet, DocumentError, read_submission
from schemas._xml import compile_schema

_PARSER_OPTIONS: dict[str, Any] = {"resolve_entities": False, "no_network": True, "load_dtd": False,
                                   "huge_tree": False, "remove_blank_text": False}


def accepted_documents(corpus: Path, bundles: BundleSet) -> list[tuple[bytes, etree.XMLSchema]]:
    """The corpus files the hub accepts, each with the compiled schema bare lxml validates it against."""
    found = []
    for path in sorted(corpus.rglob("*.xml")):
        data = path.read_bytes()
        try:
            read_submission(data, bundles=bundles, submission_id="", received_at=0)
        except (DocumentError, ValueError):
            continue
        root = etree.fromstring(data, etree.XMLParser(**_PARSER_OPTIONS))
        bundle = bundles.for_namespace(etree.QName(root).namespace or "")
        if bundle is None:
            continue
        source = bundle.schemas[bundle.recognise(root)]
        schema = compile_schema(source.data, source.base_url)
        found.append((data, schema))
    return found


def _rate(count: int, seconds: float) -> float:
    return round(count / seconds, 1) if seconds > 0 else 0.0


def bench_validate(documents: Sequence[tuple[bytes, etree.XMLSchema]], bundles: BundleSet, *,
                   rounds: int = 5) -> dict[str, Any]:
    """Rounds alternate between bare lxml and the hub over the whole corpus; each side's best round counts
    (as ``timeit`` does: the fastest run is the one least disturbed by the rest of the machine)."""
    parser = etree.XMLParser(**_PARSER_OPTIONS)
    bare_rounds: list[float] = []
    hub_rounds: list[float] = []
    for _ in range(rounds):
        start = time.perf_counter()
        for data, schema in documents:
            schema.validate(etree.fromstring(data, parser))
        bare_rounds.append(time.perf_counter() - start)
        start = time.perf_counter()
        for data, _schema in documents:
            read_submission(data, bundles=bundles, submission_id="", received_at=0)
        hub_rounds.append(time.perf_counter() - start)
    bare, hub = min(bare_rounds), min(hub_rounds)
    count = len(documents)
    return {"documents": len(documents), "rounds": rounds, "bare_lxml_per_s": _rate(count, bare),
            "hub_validate_map_per_s": _rate(count, hub), "cost_ratio": round(hub / bare, 2) if bare else None}
