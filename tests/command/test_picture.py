"""The zone picture (analyser/picture.py): what a person must see, safe to inline under a strict CSP.

The demo capture is ingested once and compared with its zone file; the SVG is parsed with ElementTree and checked
by its class and data attributes, the hooks the web page relies on, and by the colours and geometry drawn.
"""

from __future__ import annotations

import copy
import itertools
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from analyser import bench
from analyser.deltas import analyse
from analyser.model import SEVERITIES
from analyser.picture import ALLOWED_COLOUR, CONDUIT_COLOUR, SEVERITY_COLOURS, UNUSED_COLOUR, render_svg
from analyser.report import NOT_OBSERVED
from analyser.zones import load_zone_file
from sensor.ingest import ingest
from sensor.store import Store
from tests.helpers.paths import ROOT

NS = "{http://www.w3.org/2000/svg}"
WEIRD = '<b>&"x"'
WEIRD_ZONES = """\
zones:
  - name: '<b>&"x"'
    networks: [10.1.0.0/16]
    contact: true
  - name: "it's <i>"
    networks: [10.2.0.0/16]
conduits:
  - name: 'a&b <c> "d"'
    from: '<b>&"x"'
    to: "it's <i>"
    allow: [{protocol: modbus}]
"""


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == NS + "svg"
    return root


def groups(root: ET.Element, cls: str) -> list[ET.Element]:
    return [g for g in root.iter(NS + "g") if cls in g.get("class", "").split()]


def one(root: ET.Element, cls: str, **data: str) -> ET.Element:
    found = [g for g in groups(root, cls) if all(g.get("data-" + k) == v for k, v in data.items())]
    assert len(found) == 1, (cls, data, len(found))
    return found[0]


def texts(el: ET.Element) -> list[str]:
    return [t.text or "" for t in el.iter(NS + "text")]


def box(g: ET.Element) -> tuple[float, float, float, float]:
    r = g.find(NS + "rect")
    return float(r.get("x")), float(r.get("y")), float(r.get("width")), float(r.get("height"))


def empty_db(path: Path) -> str:
    Store(str(path)).close()
    return str(path)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    db = tmp_path_factory.mktemp("picture") / "demo.duckdb"
    assert all(r.status == "ok" for r in ingest([str(ROOT / "captures" / "demo-plant.pcap")], str(db)))
    analysis = analyse(str(db), load_zone_file(ROOT / "captures" / "demo-zones.yaml"))
    return analysis, render_svg(analysis)


@pytest.fixture(scope="module")
def weird(tmp_path_factory) -> str:
    """A zone and a conduit named with markup, rendered over an empty database."""
    d = tmp_path_factory.mktemp("weird")
    (d / "zones.yaml").write_text(WEIRD_ZONES)
    return render_svg(analyse(empty_db(d / "empty.duckdb"), load_zone_file(d / "zones.yaml")))


def test_one_zone_group_per_zone(demo):
    root = parse(demo[1])
    zones = groups(root, "zone")
    assert [g.get("data-zone") for g in zones] == ["enterprise", "supervisory", "control"]
    for g in zones:
        assert g.get("data-zone") in texts(g)  # the name is drawn, not only in an attribute
        assert g.find(NS + "title").text.startswith(g.get("data-zone"))
    enterprise, control = one(root, "zone", zone="enterprise"), one(root, "zone", zone="control")
    assert "contact" in enterprise.get("class").split() and "contact" in texts(enterprise)
    assert "contact" not in control.get("class").split() and "contact" not in texts(control)
    assert "consequence: catastrophic" in texts(control)
    assert "SL 3 \u00b7 5 hosts" in texts(control)


def test_crossings_coloured_by_their_worst_delta(demo):
    analysis, svg = demo
    root = parse(svg)
    [delta] = [d for d in analysis.deltas if (d.from_zone, d.to_zone) == ("enterprise", "control")]
    g = one(root, "crossing", **{"from": "enterprise", "to": "control"})
    assert f"severity-{delta.severity}" in g.get("class").split()
    assert g.get("data-delta-ids") == delta.id
    assert g.find(NS + "path").get("stroke") == SEVERITY_COLOURS[delta.severity]
    assert g.find(NS + "polygon").get("fill") == SEVERITY_COLOURS[delta.severity]
    assert "modbus" in g.find(NS + "title").text
    # two access_exceeded deltas, both critical, on one edge; the allowed https crossing in the neutral colour
    sc = one(root, "crossing", **{"from": "supervisory", "to": "control"})
    assert len(sc.get("data-delta-ids").split()) == 2 and "severity-critical" in sc.get("class").split()
    allowed = one(root, "crossing", **{"from": "enterprise", "to": "supervisory"})
    assert allowed.get("class") == "crossing allowed" and allowed.get("data-delta-ids") == ""
    assert allowed.find(NS + "path").get("stroke") == ALLOWED_COLOUR


def test_crossing_labels_list_protocols(demo):
    root = parse(demo[1])
    label = one(root, "crossing-label", **{"from": "supervisory", "to": "control"})
    assert texts(label)[0] == "dnp3, enip, modbus, s7comm"
    assert texts(label)[1] == "critical \u00b7 2 deltas"


def test_unobserved_conduit_drawn_apart(demo):
    analysis, svg = demo
    root = parse(svg)
    unused = next(d for d in analysis.deltas if d.category == "unused_conduit")
    g = one(root, "conduit", conduit="vendor-remote")
    assert g.get("class") == "conduit not-observed" and g.get("data-delta-ids") == unused.id
    path = g.find(NS + "path")
    assert path.get("stroke") == UNUSED_COLOUR and path.get("stroke-dasharray")
    assert NOT_OBSERVED in texts(one(root, "conduit-label", conduit="vendor-remote"))
    used = one(root, "conduit", conduit="historian-web").find(NS + "path")
    assert used.get("stroke") == CONDUIT_COLOUR and used.get("stroke-dasharray") is None


def test_unzoned_node_and_its_edge(demo):
    analysis, svg = demo
    root = parse(svg)
    [delta] = [d for d in analysis.deltas if d.category == "unzoned_host"]
    node = one(root, "no-zone")
    assert "(no zone)" in texts(node) and node.get("data-hosts") == "10.20.9.50"
    edge = one(root, "crossing", to="control", hosts="10.20.9.50")
    assert edge.get("class") == f"crossing unzoned severity-{delta.severity}" and edge.get("data-from") is None
    assert edge.find(NS + "path").get("stroke") == SEVERITY_COLOURS[delta.severity]


def test_arrows_point_at_the_responder(demo):
    """Every arrowhead's tip touches the box of the edge's data-to zone, not the initiator's."""
    root = parse(demo[1])
    boxes = {g.get("data-zone"): box(g) for g in groups(root, "zone")}
    edges = groups(root, "crossing") + groups(root, "conduit")
    assert len(edges) == 4 + 3 + 1  # conduits, crossings between zones, from "(no zone)"
    for g in edges:
        tip_x, tip_y = (float(v) for v in g.find(NS + "polygon").get("points").split()[0].split(","))
        x, y, w, h = boxes[g.get("data-to")]
        assert x <= tip_x <= x + w and min(abs(tip_y - y), abs(tip_y - y - h)) < 1, g.attrib


def test_legend(demo):
    root = parse(demo[1])
    legend = texts(one(root, "legend"))
    for item in ("declared conduit", f"declared, {NOT_OBSERVED}", "observed crossing, allowed",
                 "contact zone", *SEVERITIES):  # fmt: skip
        assert item in legend


def test_root_element(demo):
    root = parse(demo[1])
    assert re.fullmatch(r"0 0 [\d.]+ [\d.]+", root.get("viewBox"))
    assert root.get("width") == root.get("viewBox").split()[2] and root.get("role") == "img"
    assert "3 zones" in root.get("aria-label") and "worst critical" in root.get("aria-label")
    assert root.find(NS + "title").text == "Zone picture: Demo Water Works"


def test_names_are_escaped(weird):
    root = parse(weird)  # well-formed despite the markup in the names
    g = one(root, "zone", zone=WEIRD)
    assert WEIRD in texts(g) and g.find(NS + "title").text.startswith(WEIRD)
    assert one(root, "zone", zone="it's <i>")
    assert one(root, "conduit", conduit='a&b <c> "d"').get("data-from") == WEIRD
    assert "<b>" not in weird and "<i>" not in weird and "<c>" not in weird


def test_control_characters_in_names(tmp_path):
    """A YAML escape can put a control character in a name; XML 1.0 cannot carry it, the picture still parses."""
    (tmp_path / "zones.yaml").write_text('zones:\n  - name: "bell\\a zone"\n    networks: [10.1.0.0/16]\n')
    root = parse(render_svg(analyse(empty_db(tmp_path / "e.duckdb"), load_zone_file(tmp_path / "zones.yaml"))))
    assert groups(root, "zone")[0].get("data-zone") == "bell\ufffd zone"


@pytest.mark.parametrize("which", ["demo", "weird"])
def test_safe_under_the_page_csp(which, request):
    """No style attribute or element (CSP style-src 'self'), no script, no reference outside, no id to clash."""
    svg = request.getfixturevalue(which)
    svg = svg[1] if isinstance(svg, tuple) else svg
    root = parse(svg)
    tags = {el.tag.removeprefix(NS) for el in root.iter()}
    assert not tags & {"style", "script", "foreignObject", "image", "use", "a", "iframe"}
    for el in root.iter():
        assert "style" not in el.attrib and "id" not in el.attrib, el.attrib
        assert not any(k.endswith("href") or k.startswith("on") for k in el.attrib), el.attrib
        assert not any("http" in v or "url(" in v for v in el.attrib.values()), el.attrib
    assert svg.startswith('<svg xmlns="http://www.w3.org/2000/svg" ')


def test_deterministic_and_pure(demo):
    analysis, svg = demo
    before = copy.deepcopy(analysis)
    assert render_svg(analysis) == svg
    assert render_svg(before) == svg  # nothing depends on object identity
    assert analysis == before  # the analysis is not changed


def test_zones_without_traffic(tmp_path):
    """An empty database: every zone, every conduit as not observed, no crossing, the legend."""
    zf = load_zone_file(ROOT / "captures" / "demo-zones.yaml")
    root = parse(render_svg(analyse(empty_db(tmp_path / "empty.duckdb"), zf)))
    assert [g.get("data-zone") for g in groups(root, "zone")] == [z.name for z in zf.zones]
    conduits = groups(root, "conduit")
    assert len(conduits) == len(zf.conduits) and all("not-observed" in g.get("class") for g in conduits)
    assert groups(root, "crossing") == [] and groups(root, "no-zone") == []
    assert one(root, "legend") is not None
    assert "0 hosts" in " ".join(texts(one(root, "zone", zone="control")))


def assert_no_overlap(root: ET.Element) -> None:
    w, h = (float(v) for v in root.get("viewBox").split()[2:])
    rects = [box(g) for g in groups(root, "zone") + groups(root, "no-zone")]
    for x, y, bw, bh in rects:
        assert x >= 0 and x + bw <= w and y >= 0 and y + bh <= h
    for (ax, ay, aw, ah), (bx, by, bw, bh) in itertools.combinations(rects, 2):
        assert ax + aw <= bx or bx + bw <= ax or ay + ah <= by or by + bh <= ay, ((ax, ay), (bx, by))


def test_zone_boxes_do_not_overlap(demo):
    assert_no_overlap(parse(demo[1]))


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """A generated site (analyser/bench.py): 60 zones, nested ones, 240 conduits, every kind of delta."""
    d = tmp_path_factory.mktemp("synthetic")
    db, zones, _ = bench.generate(d, flows=20_000, zones=60, conduits=240)
    return analyse(str(db), load_zone_file(zones))


def test_larger_site(synthetic):
    root = parse(render_svg(synthetic))
    assert_no_overlap(root)
    assert len(groups(root, "zone")) == 60 and len(groups(root, "conduit")) == 240
    pairs = {(o.from_zone, o.to_zone) for o in synthetic.observed}
    assert len([g for g in groups(root, "crossing") if "unzoned" not in g.get("class")]) == len(pairs)
    assert max(len(g.get("data-zone")) for g in groups(root, "zone")) == 5


def test_opposite_directions_do_not_overlap(synthetic):
    """bench.py has reversed crossings (z+1 -> z) along conduits z -> z+1: the two edges keep apart."""
    root = parse(render_svg(synthetic))
    crossings = {(g.get("data-from"), g.get("data-to")): g for g in groups(root, "crossing") if g.get("data-from")}
    both = [(a, b) for a, b in crossings if (b, a) in crossings and a < b]
    assert both
    for a, b in both:
        there, back = (points(crossings[p].find(NS + "path").get("d")) for p in ((a, b), (b, a)))
        assert min(abs(p[0] - q[0]) + abs(p[1] - q[1]) for p in there for q in back) > 8, (a, b)


def points(d: str) -> list[tuple[float, float]]:
    return [(float(x), float(y)) for x, y in re.findall(r"(-?[\d.]+),(-?[\d.]+)", d)]
