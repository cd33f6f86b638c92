"""Hostile request bodies, built from the project's own samples (``schemas/samples``).

Each builder returns a body close to ``size`` bytes (default just under the hub's 5 MB limit) that
attacks one cost of validation: many schema errors, many business-rule errors, many attributes,
huge Avro arrays of empty strings, more items than the profile allows. They are used by the tests
(each must be refused quickly and cheaply) and by ``python -m tests.hostile`` (the CPU figures in
the README).
"""

from __future__ import annotations

import io
import re
import resource
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

import fastavro

from schemas import BundleSet, DocumentError, read_avro_submission, read_submission
from schemas._avro_submission import MAGIC, trader_schemas
from tests.conftest import CDS_EXAMPLES, HMRC_SCHEMAS, SAMPLES

#: Just under the hub's default body limit (5,000,000 bytes).
SIZE = 4_900_000

_ITEM = re.compile(r"<GovernmentAgencyGoodsItem>.*?</GovernmentAgencyGoodsItem>", re.DOTALL)
_CLASSIFICATION = re.compile(r"<Classification>.*?</Classification>", re.DOTALL)
_REFERENCE = re.compile(r"<FunctionalReferenceID>[^<]*</FunctionalReferenceID>")


def _fresh(text: str) -> str:
    return _REFERENCE.sub(f"<FunctionalReferenceID>H-{uuid.uuid4().hex[:20]}</FunctionalReferenceID>", text, count=1)


def _xml_sample(name: str = "plain-goods.xml") -> str:
    return _fresh((SAMPLES / name).read_text(encoding="utf-8"))


def _with_items(text: str, items: list[str]) -> bytes:
    first = _ITEM.search(text)
    assert first is not None
    last = list(_ITEM.finditer(text))[-1]
    return (text[: first.start()] + "".join(items) + text[last.end():]).encode()


def _item_with(item: str, sequence: int, classifications: str) -> str:
    item = re.sub(r"<SequenceNumeric>\d+</SequenceNumeric>", f"<SequenceNumeric>{sequence}</SequenceNumeric>", item)
    return _CLASSIFICATION.sub("", item, count=0).replace("</Description>", "</Description>" + classifications, 1)


def _classified_items(size: int, classification: str) -> bytes:
    """As many items (at most 999) with 99 classifications each as fit in ``size``."""
    text = _xml_sample()
    match = _ITEM.search(text)
    assert match is not None
    per_item = len(_item_with(match.group(0), 999, classification * 99))
    count = min(999, max(1, (size - len(text)) // per_item))
    return _with_items(text, [_item_with(match.group(0), n, classification * 99) for n in range(1, count + 1)])


def xml_unknown_hs(size: int = SIZE) -> bytes:
    """Schema-valid, but every classification is a commodity code the HS nomenclature does not know:
    one business-rule error per classification (about 49,000)."""
    bad = "<Classification><ID>9999999999</ID><IdentificationTypeCode>TSP</IdentificationTypeCode></Classification>"
    return _classified_items(size, bad)


def xml_bad_pattern(size: int = SIZE) -> bytes:
    """Every classification ID breaks the schema's pattern: one schema error per classification."""
    bad = "<Classification><ID>x</ID><IdentificationTypeCode>TSP</IdentificationTypeCode></Classification>"
    return _classified_items(size, bad)


def xml_attributes(size: int = SIZE) -> bytes:
    """Hundreds of thousands of attributes the schema does not allow, on one element."""
    text = _xml_sample()
    room = size - len(text)
    attributes = " ".join(f"a{n}=''" for n in range(room // 9))
    attributes = attributes[:room].rpartition(" ")[0]  # whole attributes only
    return text.replace("<Declaration>", f"<Declaration {attributes}>", 1).encode()


def xml_namespaces(size: int = SIZE) -> bytes:
    """Half the body namespace declarations on the root (about 110,000), half classification IDs breaking the
    schema: each reported error's path is resolved with the document's namespaces in scope."""
    text = xml_bad_pattern(size // 2).decode()
    room = size - len(text)
    declarations = " ".join(f'xmlns:p{n}="u{n}"' for n in range(room // 16))[:room].rpartition(" ")[0]
    root = '<MetaData xmlns="urn:nsw-broker:wco:declaration:1">'
    return text.replace(root, root[:-1] + " " + declarations + ">", 1).encode()


def xml_unexpected_elements(size: int = SIZE) -> bytes:
    """Many elements the schema does not expect, inside every item (the maximum 999 items)."""
    text = _xml_sample()
    match = _ITEM.search(text)
    assert match is not None
    room = (size - len(text)) // 999
    junk = "<x/>" * max(1, (room - len(match.group(0))) // 4)
    items = [match.group(0).replace("<SequenceNumeric>1<", f"<SequenceNumeric>{n}<").replace(
        "</GovernmentAgencyGoodsItem>", junk + "</GovernmentAgencyGoodsItem>") for n in range(1, 1000)]
    return _with_items(text, items)


def xml_over_budget(documents: int = 6) -> bytes:
    """A valid declaration (999 items, 512-character descriptions, ``documents`` documents each, about
    2 MB) whose Submission, and so the agency requests derived from it, cannot fit one Kafka message."""
    text = _xml_sample()
    match = _ITEM.search(text)
    assert match is not None
    item = match.group(0)
    description = re.search(r"<Description>([^<]*)</Description>", item)
    assert description is not None
    long = (description.group(1) + " " + "y" * 512)[:512]
    docs = "".join(f"<AdditionalDocument><CategoryCode>N</CategoryCode><ID>DOC-{n:04d}-{'z' * 25}</ID>"
                   f"<TypeCode>{851 + n}</TypeCode></AdditionalDocument>" for n in range(documents))
    items = []
    for n in range(1, 1000):
        one = item.replace("<SequenceNumeric>1<", f"<SequenceNumeric>{n}<")
        one = one.replace(description.group(0), f"<Description>{long}</Description>", 1)
        items.append(one.replace("<GoodsMeasure>", docs + "<GoodsMeasure>", 1))
    return _with_items(text, items)


def xml_valid_large(size: int = SIZE) -> bytes:
    """A valid declaration: 999 items, padded with long descriptions (about 1.2 MB, within the budget)."""
    text = _xml_sample()
    match = _ITEM.search(text)
    assert match is not None
    item = match.group(0)
    room = (size - len(text)) // 999 - len(item)
    padding = max(0, min(450, room // 4))
    items = []
    for n in range(1, 1000):
        one = item.replace("<SequenceNumeric>1<", f"<SequenceNumeric>{n}<")
        items.append(one.replace("</Description>", " " + "x" * padding + "</Description>", 1))
    return _with_items(text, items)


def cds_unknown_hs(size: int = SIZE) -> bytes:
    """A UK CDS export (the project's fixture) with as many items as fit, each with a commodity code the
    HS nomenclature does not know: the CDS bundle's business rules, one error per item."""
    path = CDS_EXAMPLES / "export-cus-code.xml"
    text = path.read_text(encoding="utf-8")
    match = _ITEM.search(text)
    assert match is not None
    item = match.group(0).replace("<ID>29349990</ID>", "<ID>99999999</ID>")
    count = min(999, (size - len(text)) // (len(item) + 2))
    items = [re.sub(r"<SequenceNumeric>\d+</SequenceNumeric>", f"<SequenceNumeric>{n}</SequenceNumeric>", item,
                    count=1) for n in range(1, count + 1)]
    return (text[: match.start()] + "".join(items) + text[match.end():]).encode()


# --------------------------------------------------------------------------- Avro


def _avro_record(name: str = "plain-goods.xml") -> dict[str, Any]:
    """The trader record of a sample (the mapping of its XML form), fresh trader reference."""
    submission = read_submission(_xml_sample(name).encode(), bundles=BundleSet.default(), submission_id="",
                                 received_at=0)
    skip = {"submission_id", "version", "received_at", "bundle", "kind", "trader", "amends_id"}
    return {key: value for key, value in submission.items() if key not in skip}


def _encode_raw(record: dict[str, Any]) -> bytes:
    """Single-object encoding with the current trader schema, no checks (a hostile client's encoder)."""
    writer = trader_schemas().get("v2")
    buf = io.BytesIO()
    buf.write(MAGIC)
    buf.write(writer.fingerprint)
    fastavro.schemaless_writer(buf, writer.parsed, record)
    return buf.getvalue()


def avro_empty_cas(size: int = SIZE) -> bytes:
    """One item with millions of empty CAS numbers (one byte each on the wire)."""
    record = _avro_record()
    record["items"][0]["cas_numbers"] = [""] * (size - 400)
    return _encode_raw(record)


def avro_empty_cas_blocks(size: int = SIZE) -> bytes:
    """Empty CAS numbers spread over the maximum 999 items, thousands in each."""
    record = _avro_record()
    item = record["items"][0]
    per_item = max(1, (size - 400) // 999 - 60)
    record["items"] = [{**item, "sequence": n, "cas_numbers": [""] * per_item} for n in range(1, 1000)]
    return _encode_raw(record)


def avro_many_items(size: int = SIZE) -> bytes:
    """Far more than the profile's 999 items, each small (the issue's 44,000-item body)."""
    record = _avro_record()
    item = record["items"][0]
    one = len(_encode_raw({**record, "items": [item]}))
    count = max(1000, (size - one) // (one - 250))
    record["items"] = [{**item, "sequence": n} for n in range(1, count + 1)]
    body = _encode_raw(record)
    while len(body) > size:
        record["items"] = record["items"][: len(record["items"]) * 9 // 10]
        body = _encode_raw(record)
    return body


def avro_unknown_hs(size: int = SIZE) -> bytes:
    """999 items whose commodity codes the nomenclature does not know, each with 99 bad CAS numbers."""
    record = _avro_record()
    item = record["items"][0]
    record["items"] = [{**item, "sequence": n, "commodity_code": "9999999999", "cas_numbers": ["1-1-1"] * 99}
                       for n in range(1, 1000)]
    return _encode_raw(record)


def avro_long_description(size: int = SIZE) -> bytes:
    """One item whose description is (nearly) the whole body."""
    record = _avro_record()
    record["items"][0]["description"] = "x" * (size - 400)
    return _encode_raw(record)


XML_BODIES: dict[str, Callable[[], bytes]] = {
    "xml-unknown-hs": xml_unknown_hs,
    "xml-bad-pattern": xml_bad_pattern,
    "xml-attributes": xml_attributes,
    "xml-namespaces": xml_namespaces,
    "xml-unexpected-elements": xml_unexpected_elements,
    "cds-unknown-hs": cds_unknown_hs,
}
AVRO_BODIES: dict[str, Callable[[], bytes]] = {
    "avro-empty-cas": avro_empty_cas,
    "avro-empty-cas-999-items": avro_empty_cas_blocks,
    "avro-many-items": avro_many_items,
    "avro-unknown-hs": avro_unknown_hs,
    "avro-long-description": avro_long_description,
}


def measure(name: str, body: bytes, *, avro: bool) -> tuple[float, float, str]:
    """(CPU seconds, wall seconds, outcome) of reading ``body`` as the ingress does."""
    bundles = BundleSet.from_specs([f"hmrc-cds={HMRC_SCHEMAS}"])
    cpu, wall = time.process_time(), time.perf_counter()
    try:
        if avro:
            read_avro_submission(body, submission_id="", received_at=0)
        else:
            read_submission(body, bundles=bundles, submission_id="", received_at=0)
        outcome = "accepted"
    except DocumentError as exc:
        outcome = f"{exc.type} ({len(exc.errors)} details)"
    return time.process_time() - cpu, time.perf_counter() - wall, outcome


def main() -> int:
    """``python -m tests.hostile [NAME...]``: CPU seconds and outcome of each hostile body, read in-process."""
    wanted = set(sys.argv[1:])
    bodies = {**{k: (v, False) for k, v in XML_BODIES.items()}, **{k: (v, True) for k, v in AVRO_BODIES.items()},
              "xml-valid-large": (xml_valid_large, False), "xml-over-budget": (xml_over_budget, False)}
    for name, (build, avro) in bodies.items():
        if wanted and name not in wanted:
            continue
        body = build()
        cpu, wall, outcome = measure(name, body, avro=avro)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"{name:28} {len(body):>9} B  cpu {cpu:6.2f} s  wall {wall:6.2f} s  peak RSS {rss:6.0f} MiB  {outcome}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
