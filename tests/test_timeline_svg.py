"""The timeline picture (console/_timeline_svg.py): pure, events in, SVG out."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from console._timeline_svg import MAX_COLUMNS, Mark, elapsed, timeline_svg

SVG = "{http://www.w3.org/2000/svg}"
T0 = 1_780_000_000_000


def lodged_and_decided() -> list[Mark]:
    return [
        Mark(T0, "hub", "received", "received v1", source="trader"),
        Mark(T0, "hub", "validated", "validated"),
        Mark(T0 + 40, "hub", "routed", "routed", "to customs, sps"),
        Mark(T0 + 41, "customs", "requested", "request sent", source="hub"),
        Mark(T0 + 41, "sps", "requested", "request sent", source="hub"),
        Mark(T0 + 300, "customs", "decided", "RELEASE", tone="ok"),
        Mark(T0 + 310, "sps", "decided", "HOLD", tone="hold"),
        Mark(T0 + 320, "trader", "responded", "06 documents required", tone="hold", source="hub"),
        Mark(T0 + 7_500_320, "sps", "decided", "RELEASE", version=1, tone="ok"),
    ]


def picture(marks: list[Mark], **kwargs: object) -> ET.Element:
    svg = timeline_svg(marks, lanes=["trader", "hub", "customs", "sps"], title="Timeline", description="Events.",
                       **kwargs)  # type: ignore[arg-type]
    return ET.fromstring(svg)  # well-formed XML, or this raises


def marks_in(root: ET.Element) -> list[ET.Element]:
    return [g for g in root.iter(f"{SVG}g") if "mark" in (g.get("class") or "").split()]


def centres(root: ET.Element) -> list[tuple[float, float]]:
    """Where each mark is drawn, in document order."""
    found = []
    for group in marks_in(root):
        x, y = re.fullmatch(r"translate\((\d+) (\d+)\)", group.get("transform", "")).groups()  # type: ignore[union-attr]
        found.append((float(x), float(y)))
    return found


def test_the_picture_is_an_accessible_image_with_a_title_and_a_description() -> None:
    root = picture(lodged_and_decided(), ident="tl-S1")
    assert root.get("role") == "img"
    labelled = (root.get("aria-labelledby") or "").split()
    assert labelled == ["tl-S1-title", "tl-S1-desc"]
    title, desc = root.find(f"{SVG}title"), root.find(f"{SVG}desc")
    assert title is not None
    assert title.get("id") == "tl-S1-title"
    assert desc is not None
    assert desc.text == "Events."
    # Every mark names itself (its own <title>): time, lane, label and detail.
    titles = [g.find(f"{SVG}title").text for g in root.iter(f"{SVG}g") if "mark" in (g.get("class") or "")]  # type: ignore[union-attr]
    assert len(titles) == len(lodged_and_decided())
    assert "routed — to customs, sps" in (titles[2] or "")


def test_one_lane_per_party_in_order_and_a_mark_per_event() -> None:
    root = picture(lodged_and_decided())
    lanes = [g.find(f"{SVG}text").text for g in root.iter(f"{SVG}g") if g.get("class") == "lane"]  # type: ignore[union-attr]
    assert lanes == ["trader", "hub", "customs", "sps"]
    points = centres(root)
    assert len(points) == 9
    assert len({y for _, y in points}) == 4  # marks in all four lanes
    received, validated, routed, req_customs, req_sps, dec_customs, dec_sps, responded, released = points
    # Same lane, same moment: two columns; time runs left to right.
    assert received[1] == validated[1]
    assert validated[0] > received[0]
    assert routed[0] > validated[0]
    # Two requests at the same moment with crossing arrows take two columns (no arrow crosses a mark).
    assert req_sps[0] > req_customs[0]
    assert dec_sps[0] > dec_customs[0] > req_sps[0]
    assert responded[1] < received[1]  # the trader's lane is on top
    assert released[0] > responded[0]


def test_decisions_escalations_and_deliveries_have_their_own_shapes_and_colours() -> None:
    marks = [Mark(T0, "sps", "decided", "HOLD", tone="hold"),
             Mark(T0 + 1, "sps", "escalated", "escalated", tone="alert"),
             Mark(T0 + 2, "trader", "webhook", "webhook delivered", tone="ok"),
             Mark(T0 + 3, "customs", "decided", "REFUSE", tone="refuse")]
    svg = timeline_svg(marks, lanes=["trader", "hub"], title="t", description="d")
    root = ET.fromstring(svg)
    groups = [g for g in root.iter(f"{SVG}g") if "mark" in (g.get("class") or "")]
    shapes = [next(c.tag.removeprefix(SVG) for c in g if c.tag != f"{SVG}title") for g in groups]
    assert shapes == ["path", "path", "rect", "path"]
    assert [g.get("class") for g in groups] == ["mark hold step-decided", "mark alert step-escalated",
                                                "mark ok step-webhook", "mark refuse step-decided"]
    fills = [next(c for c in g if c.tag == f"{SVG}path").get("fill") for g in (groups[0], groups[3])]
    assert fills == ["#8a5300", "#a4161a"]
    # Lanes for agencies the caller did not name are added as their marks appear.
    lanes = [g.find(f"{SVG}text").text for g in root.iter(f"{SVG}g") if g.get("class") == "lane"]  # type: ignore[union-attr]
    assert lanes == ["trader", "hub", "sps", "customs"]


def test_messages_draw_an_arrow_from_their_source_lane() -> None:
    root = picture([Mark(T0, "sps", "requested", "request sent", source="hub"), Mark(T0 + 5, "hub", "validated", "v")])
    arrows = [line for line in root.iter(f"{SVG}line") if line.get("marker-end")]
    assert len(arrows) == 1
    assert arrows[0].get("marker-end") == "url(#timeline-arrow)"
    # From the hub above down to just over the mark (drawn around its own origin).
    assert float(arrows[0].get("y1", "0")) < float(arrows[0].get("y2", "0")) < 0
    assert any(m.get("id") == "timeline-arrow" for m in root.iter(f"{SVG}marker"))


def test_the_axis_writes_clock_times_and_the_gaps_between_moments() -> None:
    svg = timeline_svg(lodged_and_decided(), lanes=["trader", "hub"], title="t", description="d")
    texts = ["".join(t.itertext()) for t in ET.fromstring(svg).iter(f"{SVG}text")]
    assert "+40 ms" in texts
    assert "+2 h 05 min" in texts  # 7,500,000 ms after the response
    assert "20:26:40" in texts
    assert "22:31:40" in texts
    assert texts.count("version 1") == 1


def test_a_new_version_is_marked_by_a_dashed_line() -> None:
    marks = [Mark(T0, "hub", "received", "received v1", version=1), Mark(T0 + 10, "hub", "received", "received v2",
                                                                         version=2)]
    root = picture(marks)
    texts = ["".join(t.itertext()) for t in root.iter(f"{SVG}text")]
    assert "version 1" in texts
    assert "version 2" in texts
    assert [line for line in root.iter(f"{SVG}line") if line.get("stroke-dasharray")]


def test_hostile_strings_come_out_escaped() -> None:
    hostile = '<script>alert("x")</script>'
    marks = [Mark(T0, hostile, "decided", hostile, detail=f"reason {hostile} & more", tone="refuse"),
             Mark(None, "hub", 'step"><script>', "x")]
    svg = timeline_svg(marks, lanes=["trader", hostile], title=f"ref {hostile}", description=hostile,
                       ident='"><script>')
    assert "<script" not in svg
    assert "&lt;script&gt;" in svg
    root = ET.fromstring(svg)  # still well-formed
    assert root.find(f"{SVG}title").text == f"ref {hostile}"  # type: ignore[union-attr]
    assert "<" not in (root.get("aria-labelledby") or "")
    assert all(re.fullmatch(r"[a-z -]+", g.get("class") or "") for g in root.iter(f"{SVG}g"))  # letters only


def test_characters_xml_cannot_carry_are_replaced() -> None:
    svg = timeline_svg([Mark(T0, "hub", "routed", "a\x00b\x1bc")], lanes=["hub"], title="t\x07", description="d")
    ET.fromstring(svg)
    assert "\x00" not in svg
    assert "\x07" not in svg


def test_a_long_timeline_keeps_the_latest_columns_and_says_so() -> None:
    marks = [Mark(T0 + n * 1000, "sps" if n % 2 else "customs", "decided", f"d{n}") for n in range(500)]
    root = picture(marks)
    assert len(centres(root)) == MAX_COLUMNS
    labels = ["".join(t.itertext()) for t in root.iter(f"{SVG}text")]
    assert "d499" in labels
    assert "d0" not in labels
    assert f"latest {MAX_COLUMNS} of 500 moments" in (root.find(f"{SVG}desc").text or "")  # type: ignore[union-attr]


def test_no_events_still_draws_the_lanes() -> None:
    root = picture([])
    assert [g for g in root.iter(f"{SVG}g") if g.get("class") == "lane"]
    assert not centres(root)


def test_unknown_times_are_said_not_guessed() -> None:
    texts = ["".join(t.itertext()) for t in picture([Mark(None, "hub", "received", "received v2")]).iter(f"{SVG}text")]
    assert "time not known" in texts


def test_elapsed_reads_naturally() -> None:
    assert [elapsed(ms) for ms in (0, 350, 4_200, 720_000, 7_500_000, 3 * 86_400_000 + 4 * 3_600_000)] == [
        "+0 ms", "+350 ms", "+4.2 s", "+12 min", "+2 h 05 min", "+3 d 4 h"]


def test_long_labels_wrap_onto_two_lines() -> None:
    root = picture([Mark(T0, "trader", "responded", "06 documents required")])
    label = next(t for t in marks_in(root)[0].iter(f"{SVG}text"))
    assert [span.text for span in label] == ["06 documents", "required"]
