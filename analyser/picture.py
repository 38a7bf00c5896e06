"""The zone picture: an Analysis drawn as a self-contained SVG, zones as boxes, conduits and crossings as lines.

It is inserted inline into the web page under a strict Content-Security-Policy and reused by reports, so it is a
pure function of the Analysis: no style attributes or elements, no scripts, no ids, no external references; looks
are presentation attributes, and ``class``/``data-*`` names are the hooks for the page (see render_svg).

Layout is layered, in plain Python (no graphviz): contact zones on top, then zones by their distance from a
contact zone over the declared conduits (so an undeclared crossing visibly skips layers), then over the observed
crossings, then by security level. Long edges get dummy nodes, a few barycentre sweeps order each layer, and all
edges between two zones share one route split into parallel lanes, so opposite directions never overlap.
"""

from __future__ import annotations

import functools
import heapq
import math
import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import pairwise
from xml.sax.saxutils import escape

from .model import SEVERITIES, Analysis, Delta, severity_rank
from .report import NOT_OBSERVED

SVG_NS = "http://www.w3.org/2000/svg"
FONT = "Helvetica, Arial, sans-serif"
CROSSING_CATEGORIES = frozenset({"undeclared_conduit", "protocol_not_allowed", "access_exceeded", "reversed_initiator"})
SEVERITY_COLOURS = {"critical": "#8e0c3a", "high": "#d62828", "medium": "#e8850c", "low": "#c4a000", "info": "#3f74c9"}
ALLOWED_COLOUR = "#129c86"
CONDUIT_COLOUR, UNUSED_COLOUR = "#7b8494", "#a9b1bd"
TEXT, MUTED = "#1f2937", "#5b6472"
CONTACT_BORDER, CONTACT_FILL = "#c2410c", "#fff4e8"

NODE_W_MIN, NODE_W_MAX, NODE_H = 176.0, 290.0, 74.0
NODE_GAP, DUMMY_GAP, LAYER_GAP, MARGIN = 56.0, 14.0, 150.0, 24.0
LANE = 20.0  # distance between parallel edges of one pair of zones
MAX_ROW = 10  # zones per row before a layer wraps
SWEEPS = 4
CHAR_W, BOLD_W = 0.55, 0.6  # average glyph width per font size: deterministic text sizes without font metrics
LABEL_FONT, LINE_H = 11.0, 13.0
FRACTIONS = (0.5, 0.4, 0.6, 0.3, 0.7, 0.22, 0.78)

UNZONED: tuple = ("u", "")  # node keys are tuples: ("z", name), ("u", ""), ("d", pair, i), never confused
_BAD_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")

Point = tuple[float, float]
Seg = tuple[Point, Point, Point, Point]  # a cubic Bezier segment


@dataclass(slots=True)
class _Node:
    key: tuple
    w: float
    h: float
    layer: int = 0
    x: float = 0.0  # centre
    y: float = 0.0


@dataclass(slots=True)
class _Edge:
    kind: str  # conduit | crossing
    src: tuple
    dst: tuple
    colour: str
    width: float
    dash: str | None
    cls: str
    data: dict[str, str]
    title: str
    label: list[str]
    rank: int  # label placement priority, lowest first
    segs: list[Seg] = field(default_factory=list)


@dataclass(slots=True)
class _Scene:
    analysis: Analysis
    nodes: dict[tuple, _Node]
    edges: list[_Edge]
    rows: list[list[tuple]] = field(default_factory=list)
    chains: dict[tuple, list[tuple]] = field(default_factory=dict)  # pair -> node keys, upper end first
    pairs: dict[tuple, list[_Edge]] = field(default_factory=dict)  # pair -> its edges in lane order


def render_svg(analysis: Analysis) -> str:
    """The zone picture of an analysis as an SVG document (a string, byte-identical for the same analysis).

    Hooks for the page: ``g.zone[data-zone]`` (``.contact`` for contact zones), the "(no zone)"
    node (``g.no-zone[data-hosts]``); ``g.conduit[data-conduit][data-from][data-to]`` (``.observed`` or
    ``.not-observed``);
    ``g.crossing[data-from][data-to][data-delta-ids]`` with ``.allowed`` or ``.severity-SEV`` (``.unzoned`` and
    ``data-hosts`` for edges from the "(no zone)" node, which have no data-from); ``g.edge-label`` (with
    ``.crossing-label`` or ``.conduit-label``) with the data-conduit/-from/-to of its edge; ``g.legend``.
    """
    scene = _Scene(analysis, _nodes(analysis), [])
    scene.edges = _conduit_edges(analysis, scene.nodes) + _crossing_edges(analysis, scene.nodes)
    scene.edges += _unzoned_edges(analysis, scene.nodes)
    _layout(scene)
    return _draw(scene)


# --- what is drawn ---------------------------------------------------------------------------------------------------


def _clean(text: object) -> str:
    """Text as XML 1.0 can carry it: a YAML name may hold control characters that would break the document."""
    return _BAD_XML.sub("\ufffd", str(text))


def _text_w(text: str, size: float, bold: bool = False) -> float:
    return len(text) * size * (BOLD_W if bold else CHAR_W)


def _fit(text: str, width: float, size: float, bold: bool = False) -> str:
    """Cut a text to a width with an ellipsis; the full text stays in the tooltip."""
    limit = max(int(width / (size * (BOLD_W if bold else CHAR_W))), 2)
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _wrap(text: str, width: float, size: float) -> list[str]:
    lines = [""]
    for word in text.split():
        if lines[-1] and _text_w(f"{lines[-1]} {word}", size) > width:
            lines.append(word)
        else:
            lines[-1] = f"{lines[-1]} {word}".strip()
    return lines


def _plural(n: int, what: str) -> str:
    return f"{n:,} {what}{'' if n == 1 else 's'}"


def _clip(text: str, n: int = 200) -> str:
    return text if len(text) <= n else text[: n - 1] + "\u2026"


def _worst(deltas: list[Delta]) -> str | None:
    return max((d.severity for d in deltas), key=severity_rank, default=None)


def _zone_lines(z) -> list[str]:
    """Name, consequence and size: what the severity of anything reaching the zone depends on."""
    consequence = f"consequence: {z.consequence}" if z.consequence else "consequence: moderate (assumed)"
    size = _plural(z.hosts, "host")
    return [z.name, consequence, f"SL {z.security_level} \u00b7 {size}" if z.security_level is not None else size]


def _unzoned_hosts(a: Analysis) -> list[Delta]:
    return [d for d in a.deltas if d.category == "unzoned_host"]


def _unzoned_lines(a: Analysis) -> list[str]:
    hosts = [d.host or "?" for d in _unzoned_hosts(a)]
    more = f" +{len(hosts) - 1} more" if len(hosts) > 1 else ""
    return ["(no zone)", _plural(len(hosts), "unzoned host"), hosts[0] + more]


def _node_w(lines: list[str]) -> float:
    widest = max([_text_w(lines[0], 15, True) + 64] + [_text_w(t, 12) + 24 for t in lines[1:]])
    return min(max(widest, NODE_W_MIN), NODE_W_MAX)


def _nodes(a: Analysis) -> dict[tuple, _Node]:
    nodes = {("z", z.name): _Node(("z", z.name), _node_w(_zone_lines(z)), NODE_H) for z in a.zones}
    if _unzoned_hosts(a):
        nodes[UNZONED] = _Node(UNZONED, _node_w(_unzoned_lines(a)), NODE_H)
    return nodes


def _conduit_edges(a: Analysis, nodes: dict[tuple, _Node]) -> list[_Edge]:
    """One line per declared conduit: grey when traffic matched it, light and dotted when none did."""
    unused = {c: d.id for d in a.deltas if d.category == "unused_conduit" for c in d.conduits}
    out = []
    for c in a.conduits:
        src, dst = ("z", c.from_zone), ("z", c.to_zone)
        if src not in nodes or dst not in nodes or src == dst:
            continue
        seen = f"observed: {_plural(c.flows, 'flow')} ({', '.join(c.protocols)})" if c.observed else NOT_OBSERVED
        title = f"declared conduit {c.name}: {c.from_zone} \u2192 {c.to_zone}\nallows: {'; '.join(c.allow)}\n{seen}"
        data = {"data-conduit": c.name, "data-from": c.from_zone, "data-to": c.to_zone}
        if c.name in unused:
            data["data-delta-ids"] = unused[c.name]
        out.append(_Edge(
            "conduit", src, dst, CONDUIT_COLOUR if c.observed else UNUSED_COLOUR, 1.6, None if c.observed else "2 5",
            "conduit observed" if c.observed else "conduit not-observed", data, title,
            [c.name] if c.observed else [c.name, NOT_OBSERVED], 2 if c.observed else 1,
        ))  # fmt: skip
    return out


def _protocols(names: list[str], n: int = 4) -> str:
    return ", ".join(names[:n]) + (f" +{len(names) - n}" if len(names) > n else "")


def _crossing_edges(a: Analysis, nodes: dict[tuple, _Node]) -> list[_Edge]:
    """One edge per (initiator zone, responder zone), coloured by its worst delta, neutral when all was allowed."""
    observed: dict[tuple[str, str], list] = {}
    for o in a.observed:
        observed.setdefault((o.from_zone, o.to_zone), []).append(o)
    deltas: dict[tuple[str, str], list[Delta]] = {}
    for d in a.deltas:
        if d.category in CROSSING_CATEGORIES and d.from_zone is not None and d.to_zone is not None:
            deltas.setdefault((d.from_zone, d.to_zone), []).append(d)
    out = []
    for f, t in sorted(set(observed) | set(deltas)):
        if ("z", f) in nodes and ("z", t) in nodes and f != t:
            out.append(_crossing(f, t, observed.get((f, t), []), deltas.get((f, t), [])))
    return out


def _crossing(f: str, t: str, obs: list, ds: list[Delta]) -> _Edge:
    protocols = sorted({o.protocol for o in obs} | {d.protocol for d in ds if d.protocol})
    worst = _worst(ds)
    lines = [f"observed crossing {f} \u2192 {t}"]
    lines += [f"{o.protocol}{'' if o.port is None else f' port {o.port}'}: {_plural(o.traffic.flows, 'flow')}, "
              f"{o.status.replace('_', ' ')}" for o in obs]  # fmt: skip
    lines += [f"[{d.severity}] {d.category}: {_clip(d.message)}" for d in ds]
    data = {"data-from": f, "data-to": t, "data-delta-ids": " ".join(d.id for d in ds)}
    label = [_protocols(protocols)] + ([f"{worst} \u00b7 {_plural(len(ds), 'delta')}"] if ds else [])
    colour = SEVERITY_COLOURS[worst] if worst else ALLOWED_COLOUR
    cls = f"crossing severity-{worst}" if worst else "crossing allowed"
    return _Edge("crossing", ("z", f), ("z", t), colour, 3.4, None, cls, data, "\n".join(lines), label,
                 0 if ds else 1)  # fmt: skip


def _unzoned_edges(a: Analysis, nodes: dict[tuple, _Node]) -> list[_Edge]:
    """From the "(no zone)" node to every zone its hosts talked to, coloured by the worst of those hosts."""
    by_peer: dict[str, list[Delta]] = {}
    for d in _unzoned_hosts(a):
        for z in d.peer_zones:
            by_peer.setdefault(z, []).append(d)
    out = []
    for zone, ds in sorted(by_peer.items()):
        if ("z", zone) not in nodes:
            continue
        worst = _worst(ds)
        assert worst is not None, "a peer zone is listed only with the hosts that reached it"
        protocols = sorted({p for d in ds for p in d.protocols})
        title = "\n".join([f"unzoned hosts \u2194 {zone}"] + [f"[{d.severity}] {_clip(d.message)}" for d in ds])
        data = {"data-to": zone, "data-hosts": " ".join(d.host or "" for d in ds),
                "data-delta-ids": " ".join(d.id for d in ds)}  # fmt: skip
        label = [_protocols(protocols), f"{worst} \u00b7 {_plural(len(ds), 'unzoned host')}"]
        out.append(_Edge("crossing", UNZONED, ("z", zone), SEVERITY_COLOURS[worst], 3.4, None,
                         f"crossing unzoned severity-{worst}", data, title, label, 0))  # fmt: skip
    return out


# --- layout ----------------------------------------------------------------------------------------------------------


def _pair(e: _Edge) -> tuple:
    return (e.src, e.dst) if e.src <= e.dst else (e.dst, e.src)


def _adjacency(edges: list[_Edge], keep) -> dict[tuple, set[tuple]]:
    adj: dict[tuple, set[tuple]] = {}
    for e in edges:
        if keep(e):
            adj.setdefault(e.src, set()).add(e.dst)
            adj.setdefault(e.dst, set()).add(e.src)
    return adj


def _bfs(adj: dict[tuple, set[tuple]], seeds: dict[tuple, int]) -> dict[tuple, int]:
    """Unit-weight distances to the nodes not seeded, from seeds that keep theirs (a heap, as seeds differ)."""
    dist = dict(seeds)
    heap = sorted((d, k) for k, d in seeds.items())
    while heap:
        d, k = heapq.heappop(heap)
        for n in sorted(adj.get(k, ())):
            if n not in dist:
                dist[n] = d + 1
                heapq.heappush(heap, (d + 1, n))
    return dist


def _assign_layers(scene: _Scene) -> None:
    """Contact zones first, then distance over declared conduits, then over crossings, then by security level."""
    a, nodes, edges = scene.analysis, scene.nodes, scene.edges
    zoned = [e for e in edges if e.src != UNZONED]
    layer = _bfs(_adjacency(zoned, lambda e: e.kind == "conduit"), {("z", z.name): 0 for z in a.zones if z.contact})
    layer = _bfs(_adjacency(zoned, lambda e: True), layer)
    base = max(layer.values(), default=-1) + 1
    levels = sorted({z.security_level for z in a.zones if ("z", z.name) not in layer and z.security_level is not None})
    for z in a.zones:
        if ("z", z.name) not in layer:
            layer[("z", z.name)] = base + (levels.index(z.security_level) if z.security_level is not None
                                           else len(levels))  # fmt: skip
    for k, n in nodes.items():
        n.layer = layer.get(k, 0)


def _rows(nodes: dict[tuple, _Node]) -> list[list[tuple]]:
    """Layers as rows, compacted, a wide layer wrapped into several rows so the picture stays readable."""
    by_layer: dict[int, list[tuple]] = {}
    for k in sorted(nodes.keys() - {UNZONED}):
        by_layer.setdefault(nodes[k].layer, []).append(k)
    rows = []
    for li in sorted(by_layer):
        keys = by_layer[li]
        rows += [keys[i : i + MAX_ROW] for i in range(0, len(keys), MAX_ROW)]
    for r, keys in enumerate(rows):
        for k in keys:
            nodes[k].layer = r
    return rows


def _lanes(scene: _Scene) -> dict[tuple, list[_Edge]]:
    """The edges of each pair of nodes in lane order: crossings outside, declared conduits in the middle."""
    pairs: dict[tuple, list[_Edge]] = {}
    for e in scene.edges:
        pairs.setdefault(_pair(e), []).append(e)
    for (lo, _hi), es in pairs.items():
        es.sort(key=lambda e: (e.src != lo) * 2 + ((e.kind == "conduit") == (e.src == lo)))
    return pairs


def _add_dummies(scene: _Scene, pairs: dict[tuple, list[_Edge]]) -> None:
    """A chain of dummy nodes for each pair spanning several rows: its edges then route between the boxes."""
    nodes = scene.nodes
    for pair, es in sorted(pairs.items()):
        if UNZONED in pair:
            continue
        upper, lower = sorted(pair, key=lambda k: (nodes[k].layer, k))
        chain = [upper]
        for r in range(nodes[upper].layer + 1, nodes[lower].layer):
            key = ("d", pair, r)
            nodes[key] = _Node(key, LANE * len(es), NODE_H, r)
            scene.rows[r].append(key)
            chain.append(key)
        scene.chains[pair] = [*chain, lower]


def _order_rows(scene: _Scene) -> None:
    """A few barycentre sweeps, down and up, so that lines cross less."""
    up: dict[tuple, list[tuple]] = {}
    down: dict[tuple, list[tuple]] = {}
    for chain in scene.chains.values():
        for a, b in pairwise(chain):
            if scene.nodes[a].layer != scene.nodes[b].layer:
                down.setdefault(a, []).append(b)
                up.setdefault(b, []).append(a)
    pos = {k: float(i) for row in scene.rows for i, k in enumerate(row)}
    sweep = [(r, up) for r in range(1, len(scene.rows))] + [(r, down) for r in range(len(scene.rows) - 2, -1, -1)]
    for _ in range(SWEEPS):
        for r, ref in sweep:
            row = scene.rows[r]
            bary = {k: (sum(pos[n] for n in ref[k]) / len(ref[k]) if ref.get(k) else pos[k]) for k in row}
            row.sort(key=lambda k: (bary[k], pos[k]))
            pos.update({k: float(i) for i, k in enumerate(row)})


def _gap(a: _Node, b: _Node) -> float:
    return (a.w + b.w) / 2 + (DUMMY_GAP if a.key[0] == "d" or b.key[0] == "d" else NODE_GAP)


def _place(scene: _Scene, neighbours: dict[tuple, list[tuple]]) -> None:
    """x by packing each row, then a few passes pulling nodes toward their neighbours, order and gaps kept."""
    nodes = scene.nodes
    for r, row in enumerate(scene.rows):
        x = 0.0
        for i, k in enumerate(row):
            x += _gap(nodes[row[i - 1]], nodes[k]) if i else 0.0
            nodes[k].x, nodes[k].y = x, r * (NODE_H + LAYER_GAP) + NODE_H / 2
        _centre(scene, row, 0.0)
    for _ in range(SWEEPS):
        for row in scene.rows + scene.rows[::-1]:
            want = {k: sum(nodes[n].x for n in neighbours[k]) / len(neighbours[k]) if neighbours.get(k) else nodes[k].x
                    for k in row}  # fmt: skip
            _spread(scene, row, want)


def _centre(scene: _Scene, row: list[tuple], at: float) -> None:
    nodes = scene.nodes
    shift = at - (nodes[row[0]].x + nodes[row[-1]].x) / 2
    for k in row:
        nodes[k].x += shift


def _spread(scene: _Scene, row: list[tuple], want: dict[tuple, float]) -> None:
    """Put a row's nodes at their wanted x, pushed apart left to right, then shifted as a whole toward the wish."""
    nodes = scene.nodes
    for i, k in enumerate(row):
        nodes[k].x = want[k] if i == 0 else max(want[k], nodes[row[i - 1]].x + _gap(nodes[row[i - 1]], nodes[k]))
    shift = sum(want[k] - nodes[k].x for k in row) / len(row)
    for k in row:
        nodes[k].x += shift


def _layout(scene: _Scene) -> None:
    _assign_layers(scene)
    scene.rows = _rows(scene.nodes)
    pairs = _lanes(scene)
    _add_dummies(scene, pairs)
    _order_rows(scene)
    neighbours: dict[tuple, list[tuple]] = {}
    for chain in scene.chains.values():
        for a, b in pairwise(chain):
            neighbours.setdefault(a, []).append(b)
            neighbours.setdefault(b, []).append(a)
    _place(scene, neighbours)
    _gutter(scene)
    scene.pairs = pairs
    left = min((n.x - n.w / 2 for n in scene.nodes.values()), default=0.0)
    for n in scene.nodes.values():
        n.x -= left


def _move(scene: _Scene, dx: float, dy: float) -> None:
    """Put the laid-out graph at its place in the picture, then route the edges there."""
    for n in scene.nodes.values():
        n.x += dx
        n.y += dy
    for pair, es in scene.pairs.items():
        if UNZONED in pair:
            for e in es:
                e.segs = _bus_segs(scene.nodes[UNZONED], scene.nodes[e.dst])
        else:
            _route(scene, scene.chains[pair], es)


def _gutter(scene: _Scene) -> None:
    """The "(no zone)" node left of every row, at the top: its hosts are outside the zone hierarchy, and may talk
    to every zone (a bus down the gutter then reaches each one without crossing a box)."""
    if UNZONED in scene.nodes:
        n = scene.nodes[UNZONED]
        others = [m for m in scene.nodes.values() if m is not n]
        n.x = min((m.x - m.w / 2 for m in others), default=0.0) - NODE_GAP - n.w / 2
        n.y = NODE_H / 2


# --- routes ----------------------------------------------------------------------------------------------------------


def _vertical(p: Point, q: Point) -> Seg:
    """A cubic from p down (or up) to q leaving and arriving vertically: smooth through the dummy nodes."""
    my = (p[1] + q[1]) / 2
    return (p, (p[0], my), (q[0], my), q)


def _anchor(n: _Node, toward: float, off: float) -> float:
    """Where on a box side an edge attaches: toward the other end, shifted by its lane, inside the box."""
    half = n.w / 2 - 8
    base = max(min((toward - n.x) * 0.3, half - 16), -half + 16)
    return n.x + max(min(base + off, half), -half)


def _chain_segs(nodes: dict[tuple, _Node], chain: list[tuple], off: float) -> list[Seg]:
    first, last = nodes[chain[0]], nodes[chain[-1]]
    points: list[Point] = [(_anchor(first, nodes[chain[1]].x, off), first.y + first.h / 2)]
    for k in chain[1:-1]:
        n = nodes[k]
        points += [(n.x + off, n.y - n.h / 2), (n.x + off, n.y + n.h / 2)]
    points.append((_anchor(last, nodes[chain[-2]].x, off), last.y - last.h / 2))
    segs = []
    for i, (p, q) in enumerate(pairwise(points)):
        segs.append(_vertical(p, q) if i % 2 == 0 else (p, p, q, q))
    return segs


def _arc_segs(a: _Node, b: _Node, off: float) -> list[Seg]:
    """Two boxes in one row: an arc over the row from the top of the left one to the right one, lanes nested."""
    if (a.x, a.key) > (b.x, b.key):
        a, b = b, a
    p = (a.x + a.w / 4 + off, a.y - a.h / 2)
    q = (b.x - b.w / 4 - off, b.y - b.h / 2)
    lift = min(max(min(LAYER_GAP * 0.3, 24 + 0.1 * (q[0] - p[0])) - off, 10.0), LAYER_GAP * 0.45)  # within the gap
    return [(p, (p[0], p[1] - lift * 1.33), (q[0], q[1] - lift * 1.33), q)]


def _bus_segs(u: _Node, peer: _Node) -> list[Seg]:
    """Down the gutter from the "(no zone)" node to the gap above the peer's row, then over to its top."""
    if peer.layer == u.layer:
        return _arc_segs(u, peer, 0.0)
    top = peer.y - peer.h / 2
    turn = (u.x, top - LAYER_GAP * 0.55)
    end = (_anchor(peer, u.x, 0.0), top)
    return [(p := (u.x, u.y + u.h / 2), p, turn, turn), _vertical(turn, end)]


def _route(scene: _Scene, chain: list[tuple], es: list[_Edge]) -> None:
    nodes = scene.nodes
    same_row = nodes[chain[0]].layer == nodes[chain[-1]].layer
    first = min(chain[0], chain[-1], key=lambda k: (nodes[k].x, k)) if same_row else chain[0]
    for i, e in enumerate(es):
        off = (i - (len(es) - 1) / 2) * LANE
        segs = _arc_segs(nodes[chain[0]], nodes[chain[-1]], off) if same_row else _chain_segs(nodes, chain, off)
        e.segs = segs if e.src == first else [(s[3], s[2], s[1], s[0]) for s in reversed(segs)]


# --- drawing ---------------------------------------------------------------------------------------------------------


def _n(v: float) -> str:
    return f"{v:.1f}".removesuffix(".0")


@functools.cache
def _attr(name: str) -> str:
    return name.rstrip("_").replace("_", "-")


ATTR_ESCAPES = {'"': "&quot;", "\n": "&#10;", "\r": "&#13;", "\t": "&#9;"}
_SPECIAL = re.compile('[&<>"\n\r\t]')


def _attrs(attrs: dict[str, str]) -> str:
    """Attributes escaped as ElementTree would; most values are our numbers and colours, with nothing to escape."""
    return "".join(f' {k}="{escape(v, ATTR_ESCAPES) if _SPECIAL.search(v) else v}"' for k, v in attrs.items())


class _Svg:
    """The document as strings written in order: an ElementTree and its serializer took a third of the time."""

    def __init__(self) -> None:
        self.parts: list[str] = []

    def leaf(self, tag: str, text: str | None = None, **attrs: str) -> None:
        """An element; attribute names use _ for -; text (names from the zone file) is cleaned and escaped."""
        a = _attrs({_attr(k): v for k, v in attrs.items()})
        self.parts.append(f"<{tag}{a} />" if text is None else f"<{tag}{a}>{escape(_clean(text))}</{tag}>")

    @contextmanager
    def group(self, cls: str, data: dict[str, str] | None = None, title: str | None = None):
        self.parts.append(f"<g{_attrs({'class': cls, **{k: _clean(v) for k, v in (data or {}).items()}})}>")
        if title is not None:
            self.leaf("title", title)
        yield
        self.parts.append("</g>")


def _path_d(segs: list[Seg]) -> str:
    (x, y) = segs[0][0]
    parts = [f"M{_n(x)},{_n(y)}"]
    for _, c1, c2, q in segs:
        parts.append("C" + " ".join(f"{_n(px)},{_n(py)}" for px, py in (c1, c2, q)))
    return " ".join(parts)


def _arrow(segs: list[Seg], width: float) -> tuple[list[Seg], str]:
    """Shorten the last segment by the arrowhead and return the head as polygon points (no markers: no ids)."""
    p0, c1, c2, tip = segs[-1]
    base = next((p for p in (c2, c1, p0) if p != tip), (tip[0], tip[1] - 1))
    dx, dy = tip[0] - base[0], tip[1] - base[1]
    norm = math.hypot(dx, dy) or 1.0
    ux, uy = dx / norm, dy / norm
    length, half = 8 + width * 2, 3.5 + width
    back = (tip[0] - ux * length, tip[1] - uy * length)
    left = (back[0] - uy * half, back[1] + ux * half)
    right = (back[0] + uy * half, back[1] - ux * half)
    short = (p0, c1, c2 if c2 != tip else back, (tip[0] - ux * length * 0.8, tip[1] - uy * length * 0.8))
    return [*segs[:-1], short], " ".join(f"{_n(x)},{_n(y)}" for x, y in (tip, left, right))


def _draw_edge(svg: _Svg, e: _Edge) -> None:
    body, head = _arrow(e.segs, e.width)
    attrs = {"stroke_dasharray": e.dash} if e.dash else {}
    with svg.group(e.cls, e.data, e.title):
        svg.leaf("path", d=_path_d(body), fill="none", stroke=e.colour, stroke_width=_n(e.width),
                 stroke_linecap="round", **attrs)  # fmt: skip
        svg.leaf("polygon", points=head, fill=e.colour)


def _draw_zone(svg: _Svg, z, n: _Node) -> None:
    lines = _zone_lines(z)
    title = (f"{z.name}{' (contact zone)' if z.contact else ''}\nnetworks: {', '.join(z.networks)}\n"
             f"security level: {'not set' if z.security_level is None else z.security_level}\n{lines[1]}\n"
             f"hosts: {z.hosts:,}")  # fmt: skip
    x, y = n.x - n.w / 2, n.y - n.h / 2
    with svg.group("zone contact" if z.contact else "zone", {"data-zone": z.name}, title):
        svg.leaf("rect", x=_n(x), y=_n(y), width=_n(n.w), height=_n(n.h), rx="10",
                 fill=CONTACT_FILL if z.contact else "#f7f9fc", stroke=CONTACT_BORDER if z.contact else "#4b5563",
                 stroke_width="2.6" if z.contact else "1.3")  # fmt: skip
        if z.contact:
            svg.leaf("rect", x=_n(x + n.w - 58), y=_n(y - 8), width="50", height="16", rx="8", fill=CONTACT_BORDER)
            svg.leaf("text", "contact", x=_n(x + n.w - 33), y=_n(y + 4), text_anchor="middle", font_size="10",
                     font_weight="bold", fill="#ffffff")  # fmt: skip
        _node_text(svg, n, lines, assumed=z.consequence is None)


def _node_text(svg: _Svg, n: _Node, lines: list[str], assumed: bool = False) -> None:
    top = n.y - n.h / 2
    svg.leaf("text", _fit(lines[0], n.w - 20, 15, True), x=_n(n.x), y=_n(top + 24), text_anchor="middle",
        font_size="15", font_weight="bold", fill=TEXT)  # fmt: skip
    italic = {"font_style": "italic"} if assumed else {}
    svg.leaf("text", _fit(lines[1], n.w - 16, 12), x=_n(n.x), y=_n(top + 44), text_anchor="middle", font_size="12",
        fill=MUTED if assumed else TEXT, **italic)  # fmt: skip
    svg.leaf("text", _fit(lines[2], n.w - 16, 12), x=_n(n.x), y=_n(top + 61), text_anchor="middle", font_size="12",
        fill=MUTED)  # fmt: skip


def _draw_unzoned(svg: _Svg, a: Analysis, n: _Node) -> None:
    ds = _unzoned_hosts(a)
    title = "\n".join(["(no zone): addresses in no declared zone"] + [_clip(d.message) for d in ds[:20]]
                      + ([f"... and {len(ds) - 20} more"] if len(ds) > 20 else []))  # fmt: skip
    with svg.group("no-zone", {"data-hosts": " ".join(d.host or "" for d in ds)}, title):
        svg.leaf("rect", x=_n(n.x - n.w / 2), y=_n(n.y - n.h / 2), width=_n(n.w), height=_n(n.h), rx="10",
                 fill="#eef1f5", stroke="#5b6472", stroke_width="1.4", stroke_dasharray="6 4")  # fmt: skip
        _node_text(svg, n, _unzoned_lines(a))


# --- labels ----------------------------------------------------------------------------------------------------------


class _Free:
    """Rectangles already taken (boxes, labels), bucketed in a grid so that 4,000 labels stay fast."""

    CELL = 120.0

    def __init__(self) -> None:
        self.grid: dict[tuple[int, int], list[tuple[float, float, float, float]]] = {}

    def _cells(self, r):
        c = self.CELL
        return [
            (i, j) for i in range(int(r[0] // c), int(r[2] // c) + 1) for j in range(int(r[1] // c), int(r[3] // c) + 1)
        ]

    def fits(self, r) -> bool:
        x0, y0, x1, y1 = r
        for c in self._cells(r):
            for o in self.grid.get(c, ()):
                if x0 < o[2] and o[0] < x1 and y0 < o[3] and o[1] < y1:
                    return False
        return True

    def take(self, r) -> None:
        for c in self._cells(r):
            self.grid.setdefault(c, []).append(r)


def _along(segs: list[Seg], fractions: tuple[float, ...]) -> list[Point]:
    """The points at fractions of a path's length (each segment sampled as a short polyline)."""
    pts = [segs[0][0]] + [_bezier(s, i / 4) for s in segs for i in range(1, 5)]
    lengths = [math.dist(p, q) for p, q in pairwise(pts)]
    total = sum(lengths)
    out = []
    for f in fractions:
        goal, i = total * f, 0
        while i < len(lengths) - 1 and goal > lengths[i]:
            goal -= lengths[i]
            i += 1
        t = goal / lengths[i] if lengths[i] else 0.0
        p, q = pts[i], pts[i + 1]
        out.append((p[0] + (q[0] - p[0]) * t, p[1] + (q[1] - p[1]) * t))
    return out


def _bezier(s: Seg, t: float) -> Point:
    u = 1 - t
    x, y = (u**3 * a + 3 * u * u * t * b + 3 * u * t * t * c + t**3 * d for a, b, c, d in zip(*s, strict=False))
    return x, y


def _place_label(free: _Free, e: _Edge) -> tuple[float, float, float, float]:
    """The first spot along the edge, on the line or beside it, where the label covers no box or other label."""
    w = max(_text_w(t, LABEL_FONT) for t in e.label) + 10
    h = LINE_H * len(e.label) + 4
    spots = []
    for x, y in _along(e.segs[-1:] if e.src == UNZONED else e.segs, FRACTIONS):
        spots += [(x - w / 2, y - h / 2), (x + 8, y - h / 2), (x - w - 8, y - h / 2)]
    for x, y in spots:
        r = (x, y, x + w, y + h)
        if free.fits(r):
            break
    else:
        x, y = spots[0]
        r = (x, y, x + w, y + h)
    free.take(r)
    return r


def _draw_label(svg: _Svg, e: _Edge, r) -> None:
    data = {k: v for k, v in e.data.items() if k in ("data-conduit", "data-from", "data-to")}
    colour = TEXT if e.kind == "crossing" else MUTED
    with svg.group(f"edge-label {e.kind}-label", data):
        svg.leaf("rect", x=_n(r[0]), y=_n(r[1]), width=_n(r[2] - r[0]), height=_n(r[3] - r[1]), rx="4",
                 fill="#ffffff", fill_opacity="0.88", stroke=e.colour, stroke_width="0.6")  # fmt: skip
        for i, t in enumerate(e.label):
            svg.leaf("text", t, x=_n((r[0] + r[2]) / 2), y=_n(r[1] + LINE_H * (i + 1) - 1), text_anchor="middle",
                     font_size=_n(LABEL_FONT), fill=e.colour if i and e.kind == "crossing" else colour,
                     **({"font_weight": "bold"} if i and e.kind == "crossing" else {}))  # fmt: skip


# --- header and legend -----------------------------------------------------------------------------------------------


def _header(a: Analysis) -> list[str]:
    w = a.window
    when = (f"{w.first_ts:%Y-%m-%d %H:%M} to {w.last_ts:%Y-%m-%d %H:%M}" if w.first_ts and w.last_ts
            else "no traffic")  # fmt: skip
    return [
        a.site or "Zones and conduits",
        f"Declared zones and conduits against the traffic observed ({when}, {_plural(len(w.captures), 'capture')})."
        + " No line between two zones: no crossing observed in this window, not proof that it is blocked.",
    ]


def _legend_items(has_unzoned: bool) -> list[tuple[str, str, dict]]:
    """Swatches for every look in the picture; "break" starts a row, "note" is text alone."""
    items = [
        ("line", "declared conduit", {"stroke": CONDUIT_COLOUR, "width": 1.6}),
        ("line", f"declared, {NOT_OBSERVED}", {"stroke": UNUSED_COLOUR, "width": 1.6, "dash": "2 5"}),
        ("line", "observed crossing, allowed", {"stroke": ALLOWED_COLOUR, "width": 3.4}),
        ("box", "contact zone", {"stroke": CONTACT_BORDER, "fill": CONTACT_FILL, "width": 2.6}),
    ]
    if has_unzoned:
        items.append(("box", "(no zone): unzoned hosts", {"stroke": "#5b6472", "fill": "#eef1f5", "width": 1.4,
                                                          "dash": "6 4"}))  # fmt: skip
    items += [("break", "", {}), ("note", "observed crossing with deltas, by the worst:", {})]
    return items + [("line", s, {"stroke": SEVERITY_COLOURS[s], "width": 3.4}) for s in SEVERITIES[::-1]]


def _legend(svg: _Svg, items, x0: float, y0: float, width: float) -> float:
    """The legend as rows of swatches that fit the width; returns its height."""
    x, y = x0, y0
    with svg.group("legend", title="legend"):
        for kind, text, look in items:
            step = (0 if kind == "note" else 40) + _text_w(text, 11) + 18
            if x > x0 and (kind == "break" or x + step > x0 + width):
                x, y = x0, y + 22
            if kind != "break":
                _swatch(svg, kind, look, x, y)
                svg.leaf("text", text, x=_n(x + (0 if kind == "note" else 40)), y=_n(y + 4), font_size="11", fill=TEXT)
                x += step
    return y - y0 + 14


def _swatch(svg: _Svg, kind: str, look: dict, x: float, y: float) -> None:
    dash = {"stroke_dasharray": look["dash"]} if "dash" in look else {}
    if kind == "line":
        svg.leaf("line", x1=_n(x), y1=_n(y), x2=_n(x + 26), y2=_n(y), stroke=look["stroke"],
                 stroke_width=_n(look["width"]), **dash)  # fmt: skip
        svg.leaf("polygon", points=f"{_n(x + 34)},{_n(y)} {_n(x + 25)},{_n(y - 4.5)} {_n(x + 25)},{_n(y + 4.5)}",
                 fill=look["stroke"])  # fmt: skip
    elif kind == "box":
        svg.leaf("rect", x=_n(x), y=_n(y - 7), width="34", height="14", rx="4", fill=look["fill"],
                 stroke=look["stroke"], stroke_width=_n(look["width"]), **dash)  # fmt: skip


def _draw(scene: _Scene) -> str:
    a, nodes = scene.analysis, scene.nodes
    graph_w = max((n.x + n.w / 2 for n in nodes.values()), default=0.0)
    width = max(graph_w, 800.0) + 2 * MARGIN
    head = _header(a)
    svg = _Svg()
    svg.leaf("title", f"Zone picture: {head[0]}")
    svg.leaf("rect", class_="background", x="0", y="0", width="100%", height="100%", fill="#ffffff")
    with svg.group("picture"):
        svg.leaf("text", head[0], x=_n(MARGIN), y=_n(MARGIN + 14), font_size="17", font_weight="bold", fill=TEXT)
        lines = _wrap(head[1], width - 2 * MARGIN, 11)
        for i, line in enumerate(lines):
            svg.leaf("text", line, x=_n(MARGIN), y=_n(MARGIN + 36 + 15 * i), font_size="11", fill=MUTED)
        top = MARGIN + 36 + 15 * len(lines) + 12
        legend_h = _legend(svg, _legend_items(UNZONED in nodes), MARGIN, top, width - 2 * MARGIN)
        arcs = any(nodes[a].layer == nodes[b].layer == 0 for a, b in scene.pairs)  # arcs over the first row
        oy = top + legend_h + (LAYER_GAP * 0.5 if arcs else 28.0)
        _move(scene, MARGIN + (width - 2 * MARGIN - graph_w) / 2, oy)
        _draw_graph(svg, scene)
    height = oy + (len(scene.rows) * (NODE_H + LAYER_GAP) - LAYER_GAP if scene.rows else 0.0) + MARGIN
    root = {"xmlns": SVG_NS, "viewBox": f"0 0 {_n(width)} {_n(height)}", "width": _n(width), "height": _n(height),
            "role": "img", "aria-label": _clean(_aria(a)), "font-family": FONT}  # fmt: skip
    return f"<svg{_attrs(root)}>{''.join(svg.parts)}</svg>"


def _draw_graph(svg: _Svg, scene: _Scene) -> None:
    """Lines, then boxes over their ends, then labels over everything, each layer in its own group."""
    a, nodes = scene.analysis, scene.nodes
    with svg.group("edges"):
        for e in sorted(scene.edges, key=lambda e: (e.kind != "conduit", -e.rank)):
            _draw_edge(svg, e)
    with svg.group("zones"):
        for z in a.zones:
            _draw_zone(svg, z, nodes[("z", z.name)])
        if UNZONED in nodes:
            _draw_unzoned(svg, a, nodes[UNZONED])
    free = _Free()
    for n in nodes.values():
        if n.key[0] != "d":
            free.take((n.x - n.w / 2 - 4, n.y - n.h / 2 - 12, n.x + n.w / 2 + 4, n.y + n.h / 2 + 4))
    with svg.group("edge-labels"):
        for e in sorted(scene.edges, key=lambda e: e.rank):
            _draw_label(svg, e, _place_label(free, e))


def _aria(a: Analysis) -> str:
    worst = a.worst()
    return (f"Zone picture of {a.site or 'the site'}: {_plural(len(a.zones), 'zone')}, "
            f"{_plural(len(a.conduits), 'declared conduit')}, {_plural(len(a.observed), 'observed crossing')}, "
            f"{_plural(len(a.deltas), 'delta')}{f', worst {worst}' if worst else ''}")  # fmt: skip
