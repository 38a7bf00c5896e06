"""PDUs split across TCP segments, framed in bulk (sensor/columnar.py, ``_frame`` and
``_spans``), must come out exactly as ``FramedStream.feed`` frames them segment by
segment: the same PDUs in the same order, each from the segment that completes it,
the same anomalies, and the same bytes held at the end of every chunk."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dissectors import REGISTRY, Anomaly
from dissectors.base import FramedStream
from sensor import columnar
from sensor.columnar import _Aux, _frame

BODY = bytes(range(256)) * 258  # PDU contents: varied bytes, enough for any length
FRAMED = [cls for cls in REGISTRY.dissectors if issubclass(cls, FramedStream) and hasattr(cls, "pdu_lengths")]


def pdu(name: str, size: int, tag: int = 0) -> bytes:
    """A PDU that framing accepts, of about ``size`` bytes (never shorter than a header)."""
    body = BODY[tag & 0xFF :]
    if name == "modbus":
        n = min(max(size - 6, 2), 2048)
        head = (tag & 0xFFFF).to_bytes(2, "big") + b"\0\0" + n.to_bytes(2, "big")
        return head + body[:n]
    if name == "s7comm":
        n = min(max(size, 7), 0xFFFF)
        return b"\x03\x00" + n.to_bytes(2, "big") + b"\x02\xf0\x80" + body[: n - 7]
    if name == "dnp3":
        length = min(max(size // 2, 5), 255)
        n = length - 5
        return b"\x05\x64" + bytes([length]) + body[: 7 + n + 2 * ((n + 15) >> 4)]
    if name == "enip":
        n = max(size - 24, 0)
        return b"\x6f\x00" + n.to_bytes(2, "little") + bytes(20) + body[:n]
    raise AssertionError(name)


def cut(data: bytes, at: list[int]) -> list[bytes]:
    at = sorted({a for a in at if 0 < a < len(data)})
    return [data[i:j] for i, j in zip([0, *at], [*at, len(data)], strict=True)]


class Recorder:
    def __init__(self):
        self.records = []

    def record(self, flow, from_orig, frame, ts, rec):
        self.records.append((flow.key, from_orig, frame, rec))


def bulk(cls, chunks: list[list[tuple[int, bool, bytes]]]) -> tuple[list, list]:
    """Frame each chunk's segments (flow, from originator, payload) with ``_frame``;
    returns (flow, side, row, PDU) in delivery order, anomalies, and what each dissector
    holds after each chunk."""
    flows: dict[int, SimpleNamespace] = {}
    out, held = [], []
    writer = Recorder()
    for segs in chunks:
        segs = sorted(segs, key=lambda s: s[0])  # the plan's rows: by flow, then in order
        for g, _, _ in segs:
            flows.setdefault(g, SimpleNamespace(key=g, dissector=cls()))
        groups = sorted(flows)
        buf = b"xx" + b"".join(s[2] for s in segs) + b"yy"  # payloads away from the ends of the chunk
        ends = np.cumsum([2] + [len(s[2]) for s in segs])
        n = len(segs)
        plan = SimpleNamespace(
            ch=SimpleNamespace(a=np.frombuffer(buf, np.uint8), buf=buf, o=SimpleNamespace(writer=writer)),
            pay=ends[:-1].astype(np.int64), plen=np.diff(ends).astype(np.int64),
            gid=np.array([groups.index(s[0]) for s in segs], np.int64),
            from_orig=np.array([s[1] for s in segs], bool),
            flow=[flows[g] for g in groups], fr=np.arange(n, dtype=np.int64), ts=np.zeros(n, np.int64),
        )  # fmt: skip
        writer.records = []
        aux = _Aux(len(buf))
        pdus = _frame(plan, cls, np.arange(n), aux)
        data = aux.data(plan.ch.a)
        rows, start, length = pdus.arrays()
        for r, s, k in zip(rows.tolist(), start.tolist(), length.tolist(), strict=True):
            out.append((segs[r][0], segs[r][1], r, data[s : s + k].tobytes()))
        out.extend((f, side, row, rec) for f, side, row, rec in writer.records)
        held.append(
            {
                (g, side): (bytes(f.dissector.buffers[side]), f.dissector.resyncing[side])
                for g, f in flows.items()
                for side in (True, False)
            }
        )
    return out, held


def reference(cls, chunks) -> tuple[list, list]:
    """The same, through FramedStream.feed one segment at a time."""
    ds: dict[int, FramedStream] = {}
    out, held = [], []
    for segs in chunks:
        segs = sorted(segs, key=lambda s: s[0])
        for r, (g, side, data) in enumerate(segs):
            d = ds.setdefault(g, cls())
            d.parse = lambda p, _: [bytes(p)]
            out.extend((g, side, r, rec) for rec in d.feed(data, side))
        held.append(
            {(g, side): (bytes(d.buffers[side]), d.resyncing[side]) for g, d in ds.items() for side in (True, False)}
        )
    return out, held


def ordered(items: list) -> list:
    """PDUs of a segment in order, anomalies after them: _frame hands the two out separately."""
    return sorted(items, key=lambda x: (x[0], x[1], x[2], isinstance(x[3], Anomaly)))


def check(cls, chunks, monkeypatch) -> int:
    """Bulk framing equals feed; returns how many segments still went through FramedStream.split."""
    calls = []
    original = FramedStream.split

    def counted(self, data, from_orig):
        calls.append(len(data))
        return original(self, data, from_orig)

    with monkeypatch.context() as m:
        m.setattr(FramedStream, "split", counted)
        m.setattr(columnar, "SPAN_MIN", 1)  # every chunk in bulk, however few segments it has
        got, got_held = bulk(cls, chunks)
    want, want_held = reference(cls, chunks)
    assert ordered(got) == ordered(want)
    assert got_held == want_held
    return len(calls)


@pytest.mark.parametrize("cls", FRAMED, ids=lambda c: c.name)
def test_split_at_every_offset(cls, monkeypatch):
    """Two PDUs cut once at every offset (inside the first's header too), then cut twice
    so that the second spans three segments; one stream per cut, all in one chunk."""
    a, b = pdu(cls.name, 40, 1), pdu(cls.name, 70, 2)
    assert cls().pdu_length(bytearray(a), 0, True, False) == len(a)
    stream = a + b
    segs = []
    for g, at in enumerate(range(1, len(stream))):
        segs += [(g, True, s) for s in cut(stream, [at])]
    base = len(segs) // 2
    for g, at in enumerate(range(len(a) + 1, len(stream) - 2), start=base + 1):
        segs += [(g, False, s) for s in cut(stream, [len(a) - 3, at, at + 2])]
    assert check(cls, [segs], monkeypatch) == 0


@pytest.mark.parametrize("cls", FRAMED, ids=lambda c: c.name)
def test_truncated_tail_and_held_bytes(cls, monkeypatch):
    """A stream cut inside a header or a body at the chunk's end holds exactly those
    bytes, and the next chunk finishes the PDU, at every offset."""
    a, b, c = pdu(cls.name, 30, 1), pdu(cls.name, 50, 2), pdu(cls.name, 26, 3)
    first, second = [], []
    for g, at in enumerate(range(len(a) + 1, len(a) + len(b))):
        first += [(g, True, a), (g, True, b[: at - len(a)])]
        second += [(g, True, s) for s in cut(b[at - len(a) :] + c, [len(b) - (at - len(a)) + 5])]
    assert check(cls, [first, second], monkeypatch) == 0


@pytest.mark.parametrize("cls", FRAMED, ids=lambda c: c.name)
def test_many_pdus_per_segment_and_long_runs(cls, monkeypatch):
    """Several PDUs per segment, segments that never end with a PDU (a run longer than
    MAX_SPAN_DEPTH goes on through split), and spans of many small segments."""
    pdus = [pdu(cls.name, 20 + 13 * i % 90, i) for i in range(3 * columnar.MAX_SPAN_DEPTH)]
    stream = b"".join(pdus)
    ends = np.cumsum([len(p) for p in pdus]).tolist()
    misaligned = cut(stream, [e + 3 for e in ends])
    packed = cut(stream, ends[4::5])
    tiny = cut(stream[:300], list(range(0, 300, 3)))
    segs = [(0, True, s) for s in misaligned] + [(1, False, s) for s in packed] + [(2, True, s) for s in tiny]
    assert check(cls, [segs[: len(segs) // 2], segs[len(segs) // 2 :]], monkeypatch)  # the long run


@pytest.mark.parametrize("cls", FRAMED, ids=lambda c: c.name)
def test_garbage_falls_back_to_split(cls, monkeypatch):
    """A bad header inside a run, and garbage held from the last chunk: split takes the
    stream on from that segment, with its anomalies; other streams stay in bulk."""
    a, b = pdu(cls.name, 40, 1), pdu(cls.name, 60, 2)
    junk = b"\xee" * 7
    segs = [(0, True, s) for s in cut(a + junk + b + a, [10, len(a) + 3, len(a) + 20])]
    segs += [(1, True, s) for s in cut(a + b, [len(a) - 2])]
    assert check(cls, [segs, [(0, True, b + a[:5]), (1, True, a)], [(0, True, a[5:])]], monkeypatch)


@pytest.mark.parametrize("cls", FRAMED, ids=lambda c: c.name)
def test_a_stopped_run_ends_where_the_run_before_it_ends(cls, monkeypatch):
    """A run that ends with its segment, then, on the next stream, a run that stops at
    once (garbage first): the stopped stream's whole PDU after the garbage segment is
    still delivered. (Found by test_random_cuts: both run ends marked the same piece.)"""
    a = pdu(cls.name, 30, 1)
    several = a * (columnar.MAX_PIPELINED + 1)  # one segment, too many PDUs to be framed as pipelined
    segs = [(0, True, several), (0, False, b"\x00" + a), (0, False, a)]
    assert check(cls, [segs], monkeypatch)


def stream(name: str):
    """Valid PDUs end to end (sometimes with garbage inside), cut at random offsets."""
    one_pdu = st.tuples(st.integers(1, 400), st.integers(0, 255)).map(lambda t: pdu(name, *t))

    @st.composite
    def build(draw):
        raw = b"".join(draw(st.lists(one_pdu, min_size=1, max_size=12)))
        if draw(st.booleans()):
            at = draw(st.integers(0, len(raw)))
            raw = raw[:at] + draw(st.binary(min_size=1, max_size=12)) + raw[at:]
        return cut(raw, draw(st.lists(st.integers(1, max(1, len(raw) - 1)), max_size=20)))

    return build()


@pytest.mark.parametrize("cls", FRAMED, ids=lambda c: c.name)
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_random_cuts(cls, data):
    """Up to three flows, each with one or two stream directions, their segments
    interleaved in time and the capture cut into one to three chunks."""
    streams = data.draw(st.lists(stream(cls.name), min_size=1, max_size=6))
    timed = []
    for i, parts in enumerate(streams):  # stream i: flow i // 2, the originator's when i is even
        times = sorted(data.draw(st.lists(st.integers(0, 100), min_size=len(parts), max_size=len(parts))))
        timed += [(t, i, (i // 2, i % 2 == 0, part)) for t, part in zip(times, parts, strict=True)]
    segs = [s for _, _, s in sorted(timed, key=lambda x: x[:2])]
    bounds = sorted(data.draw(st.lists(st.integers(0, len(segs)), max_size=2)))
    chunks = [segs[lo:hi] for lo, hi in zip([0, *bounds], [*bounds, len(segs)], strict=True)]
    check(cls, [c for c in chunks if c], pytest.MonkeyPatch())  # a chunk has packets
