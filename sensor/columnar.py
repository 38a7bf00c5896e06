"""Columnar ingest of pcap and pcapng files: a chunk of records at a time, in numpy.

The packet-at-a-time path (FlowTable.packet for every frame) costs about 8 µs of
Python per packet. Here a chunk's headers are decoded in bulk, packets are grouped
by flow, and each flow's packets in the chunk are applied to its state at once
when they are the common case: Ethernet (one 802.1Q tag at most), unfragmented
IPv4, TCP or UDP; no idle split or port reuse in the chunk; TCP streams in order
(whole retransmissions allowed). Their PDUs are framed in bulk and dissected by
dissectors.bulk. Any other flow of the chunk is replayed packet by packet through
FlowTable.update, the same state machine, so both paths give the same tables
(tests/equivalence/test_columnar.py compares them on every capture of the corpus).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from dissectors import Anomaly, Dissector, Registry
from dissectors.base import FramedStream
from dissectors.bulk import PduBatch, dissect, gather

from .capture import RecordChunk
from .decode import LINK_ETHERNET, SUPPORTED_LINKS, TCP, UDP, Decoder, Malformed, Packet
from .flows import (
    ACK,
    CLAIM_TRIES,
    FIN,
    H_ACK,
    H_DATA,
    H_FIN,
    H_RETX,
    H_RST,
    H_SYN,
    H_SYNACK,
    RST,
    SWEEP_EVERY_US,
    SYN,
    Flow,
    FlowTable,
    senders_initiate,
)
from .reassembly import HALF, SEQ_MOD, StreamDirection

# history letters in the order one packet marks them (FlowTable._tcp_state, then push)
_MARKS = (H_SYN, H_SYNACK, H_ACK, H_DATA, H_FIN, H_RST, H_RETX)
_NONE = np.iinfo(np.int64).max
FLOOD_PIECE = 8_192  # records applied at once while most of them open flows (Columnar.chunk)
MAX_PIPELINED = 8  # PDUs in one segment framed in bulk; a segment with more goes through FramedStream.split
# a FramedStream's optional ``pdu_lengths``: pdu_length (not strict) of many PDUs at once (data, start, length)
LengthsOf = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


@dataclass
class ChunkStats:
    packets: int = 0
    ip_packets: int = 0
    malformed: int = 0
    skipped: int = 0
    first_ts: int | None = None
    last_ts: int | None = None


class Columnar:
    """Feeds record chunks of one capture into a FlowTable and its writer."""

    def __init__(self, table: FlowTable, writer, registry: Registry, on_skip):
        self.table = table
        self.writer = writer
        self.registry = registry
        self.decoder = Decoder()
        self.on_skip = on_skip  # (frame, link, ts): a frame on a link type sorf does not decode
        self.stats = ChunkStats()
        self.next_sweep = 0
        self.flooding = True  # did the last piece open flows for most of its records?

    # ------------------------------------------------------------------ chunk
    def chunk(self, c: RecordChunk) -> None:
        """Apply a chunk of records: whole, or FLOOD_PIECE records at a time while most records open flows (a
        scan: 70,000 SYNs in 4 MB). A piece's new flows, PDUs and per-packet lists live until it is applied, and
        a flow costs 1.2 KB; pieces cost time with many flows active (+60% on the 1M bench at 8,192), so a
        chunk is cut only while the last piece showed a flood, and the first chunk is cut to find out."""
        n = len(c.ts)
        lo = 0
        while lo < n:
            hi = min(n, lo + FLOOD_PIECE) if self.flooding else n
            part = c if (lo, hi) == (0, n) else RecordChunk(
                c.buf, c.first_frame + lo, c.data[lo:hi], c.incl[lo:hi], c.orig[lo:hi], c.ts[lo:hi], c.link[lo:hi]
            )  # fmt: skip
            opened = self.table.flow_count
            self._apply(part)
            self.flooding = 2 * (self.table.flow_count - opened) > hi - lo
            lo = hi

    def sweep(self, now: int) -> None:
        """Finish the flows idle at ``now`` (a live sensor's clock, when packets are few): the next sweep a chunk
        would make is then SWEEP_EVERY_US later, as after one of its own."""
        self.table.sweep(now)
        self.next_sweep = now + SWEEP_EVERY_US

    def _apply(self, c: RecordChunk) -> None:
        a = np.frombuffer(c.buf, np.uint8)
        ts, incl, orig, data, link = c.ts, c.incl, c.orig, c.data, c.link
        n = len(ts)
        frames = c.first_frame + np.arange(n, dtype=np.int64)
        st = self.stats
        st.packets += n
        lo, hi = int(ts.min()), int(ts.max())
        st.first_ts = lo if st.first_ts is None else min(st.first_ts, lo)
        st.last_ts = hi if st.last_ts is None else max(st.last_ts, hi)
        supported = np.isin(link, list(SUPPORTED_LINKS))
        if not supported.all():
            st.skipped += int((~supported).sum())
            kinds, first = np.unique(link[~supported], return_index=True)
            where = np.flatnonzero(~supported)[first]
            for k, i in sorted(zip(kinds.tolist(), where.tolist(), strict=True), key=lambda x: x[1]):
                self.on_skip(int(frames[i]), k, int(ts[i]))
        ether = link == LINK_ETHERNET
        if ether.any():
            cols = _decode_ethernet(a, data, incl)
            cols["ok"] &= ether
        else:
            cols = {"ok": np.zeros(n, bool)}
        ok = cols["ok"]
        others = self._others(c, data, incl, ts, frames, ok, supported)
        st.ip_packets += int(ok.sum()) + len(others)
        sweeps = self._sweeps(ts, ok, frames, others)
        Chunk(self, c.buf, a, ts, orig, frames, cols, others, sweeps).run()
        self.table.evict()
        if len(sweeps[0]):  # the table's next sweep is then ours: SWEEP_EVERY_US after the last
            self.table.sweep(int(sweeps[1][-1]), before_frame=int(sweeps[0][-1]))

    def _others(self, c: RecordChunk, data, incl, ts, frames, ok, supported) -> list[tuple[int, Packet]]:
        """Packets the bulk decode does not take, decoded one by one: (index, packet)."""
        out = []
        decode = self.decoder.decode
        writer = self.writer
        links = c.link
        for i in np.flatnonzero(~ok & supported).tolist():
            s = int(data[i])
            frame, t = int(frames[i]), int(ts[i])
            try:
                pkt = decode(int(links[i]), c.buf[s : s + int(incl[i])], t, frame)
            except Malformed as exc:
                self.stats.malformed += 1
                writer.anomaly(frame, t, None, Anomaly("decode", "malformed_packet", str(exc)))
                continue
            except Exception as exc:  # noqa: BLE001 - a bug on one packet must not lose the capture
                self.stats.malformed += 1
                writer.anomaly(frame, t, None, Anomaly("sensor", "internal_error", f"{type(exc).__name__}: {exc}"))
                continue
            if pkt is not None:
                out.append((i, pkt))
        return out

    def _sweeps(self, ts, ok, frames, others) -> tuple[np.ndarray, np.ndarray]:
        """Frames and times at which FlowTable.packet would sweep idle flows in this chunk."""
        ip = ok.copy()
        for i, _ in others:
            ip[i] = True
        idx = np.flatnonzero(ip)
        sweep_frames, sweep_ts = [], []
        if len(idx):
            t = ts[idx]
            running = np.maximum.accumulate(t)  # the first t >= x is where the running max reaches x
            pos = 0
            while True:
                pos = int(np.searchsorted(running[pos:], self.next_sweep, "left")) + pos
                if pos >= len(idx):
                    break
                sweep_frames.append(int(frames[idx[pos]]))
                sweep_ts.append(int(t[pos]))
                self.next_sweep = int(t[pos]) + SWEEP_EVERY_US
                pos += 1
        return np.array(sweep_frames, np.int64), np.array(sweep_ts, np.int64)


def _decode_ethernet(a: np.ndarray, data: np.ndarray, incl: np.ndarray) -> dict[str, np.ndarray]:
    """L2-L4 fields of every frame; ``ok`` marks the ones fully decoded here
    (Ethernet, at most one 802.1Q tag, unfragmented IPv4, TCP or UDP, sane lengths).

    Each header is gathered whole, one row of bytes per frame (a copy per row, not a
    gather per byte), and its fields are read from the rows as big-endian words."""

    def rows(at: np.ndarray, width: int) -> np.ndarray:  # the width bytes at each offset; zeros past a's end
        return gather(a, at, width).view(np.uint8).reshape(-1, width)

    def u16(r: np.ndarray, k: int) -> np.ndarray:  # the big-endian word at byte 2k of each row
        return r.view(">u2")[:, k].astype(np.int64)

    def u32(r: np.ndarray, k: int) -> np.ndarray:  # at byte 4k
        return r.view(">u4")[:, k].astype(np.int64)

    end_frame = data + incl
    ok = incl >= 14
    eth = rows(data + 12, 6)  # the type; after an 802.1Q tag's, the TCI and the inner type
    et = u16(eth, 0)
    tagged = et == 0x8100
    vlan = np.where(tagged, u16(eth, 1) & 0x0FFF, 0)
    et = np.where(tagged, u16(eth, 2), et)
    l3 = data + 14 + 4 * tagged
    ok &= (et == 0x0800) & (end_frame >= l3 + 20)
    ip = rows(l3, 20)
    vihl = ip[:, 0].astype(np.int64)
    ihl = (vihl & 0x0F) * 4
    total = u16(ip, 1)
    ok &= (vihl >> 4 == 4) & (ihl >= 20) & (total >= ihl) & ((u16(ip, 3) & 0x3FFF) == 0)
    proto = ip[:, 9].astype(np.int64)
    tcp = proto == TCP
    ok &= tcp | (proto == UDP)
    end = np.minimum(l3 + total, end_frame)
    t4 = l3 + ihl
    ok &= np.where(tcp, end - t4 >= 20, end - t4 >= 8)
    l4 = rows(t4, 16)  # the ports; for TCP also sequence and ack numbers, data offset, flags
    doff = (l4[:, 12].astype(np.int64) >> 4) * 4
    ok &= ~tcp | (doff >= 20)
    pay = np.where(tcp, np.minimum(t4 + doff, end), t4 + 8)
    return {
        "ok": ok,
        "vlan": vlan,
        "mac": data,  # dst MAC at data, src MAC at data + 6
        "src": u32(ip, 3),
        "dst": u32(ip, 4),
        "proto": proto,
        "sport": u16(l4, 0),
        "dport": u16(l4, 1),
        "flags": np.where(tcp, l4[:, 13].astype(np.int64), 0),
        "seq": np.where(tcp, u32(l4, 1), 0),
        "ack": np.where(tcp, u32(l4, 2), 0),
        "pay": pay,
        "plen": np.maximum(end - pay, 0),
    }


class Chunk:
    """One chunk's packets, grouped by flow and applied to the flow table."""

    def __init__(self, owner: Columnar, buf: bytes, a, ts, orig, frames, cols, others, sweeps):
        self.o = owner
        self.table = owner.table
        self.buf = buf
        self.a = a
        self.ts = ts
        self.orig = orig
        self.frames = frames
        self.c = cols
        self.others = others
        self.sweep_frames, self.sweep_ts = sweeps

    def packets(self, rows: list[int]) -> list[Packet]:
        """The Packet tuples of bulk-decoded packets (for FlowTable: new flows, replays)."""
        if not len(rows):
            return []
        c, buf = self.c, self.buf
        names = ("vlan", "mac", "src", "dst", "proto", "sport", "dport", "flags", "seq", "ack", "pay", "plen")
        return [
            Packet(vlan, buf[m + 6 : m + 12], buf[m : m + 6], src.to_bytes(4, "big"), dst.to_bytes(4, "big"), proto,
                   sport, dport, flags, seq, ack, buf[p : p + n])
            for vlan, m, src, dst, proto, sport, dport, flags, seq, ack, p, n
            in zip(*(c[k][rows].tolist() for k in names), strict=True)
        ]  # fmt: skip

    def run(self) -> None:
        """Group the bulk-decoded packets by flow, replay the flows the bulk path does
        not model (and those with a packet decoded one at a time), apply the rest."""
        c = self.c
        ok = np.flatnonzero(c["ok"])
        packets = dict(self.others)
        merged: dict[tuple, list[int]] = {}  # canonical key -> packets of a flow replayed one by one
        if len(ok):
            e1 = (c["src"][ok] << 16) | c["sport"][ok]
            e2 = (c["dst"][ok] << 16) | c["dport"][ok]
            k1 = np.minimum(e1, e2) | ((c["proto"][ok] == TCP).astype(np.int64) << 48) | (c["vlan"][ok] << 49)
            k2 = np.maximum(e1, e2)
            order = np.lexsort((ok, k2, k1))
            k1, k2 = k1[order], k2[order]
            cut = np.flatnonzero((k1[1:] != k1[:-1]) | (k2[1:] != k2[:-1])) + 1
            bounds = np.concatenate(([0], cut, [len(ok)]))
            plan = Plan(self, ok[order], bounds)
            if self.others:
                index = {_canon(k): g for g, k in enumerate(plan.keys)}
                for i, pkt in self.others:
                    ck = _canon((pkt.vlan, pkt.proto, pkt.src, pkt.sport, pkt.dst, pkt.dport))
                    g = index.get(ck)
                    if g is not None and not plan.replay[g]:
                        plan.replay[g] = True
                        merged[ck] = plan.members(g)
                    merged.setdefault(ck, []).append(i)
            plan.decide()
            for g in np.flatnonzero(plan.replay).tolist():
                if _canon(plan.keys[g]) not in merged:
                    self.replay(plan.members(g), packets)
            plan.apply()
        else:
            for i, pkt in self.others:
                merged.setdefault(_canon((pkt.vlan, pkt.proto, pkt.src, pkt.sport, pkt.dst, pkt.dport)), []).append(i)
        for members in merged.values():
            self.replay(sorted(members), packets)

    # ---------------------------------------------------------- packet by packet
    def swept(self, flow: Flow, frame: int) -> bool:
        """Would a sweep between the flow's last packet and this frame have finished it?"""
        k = int(np.searchsorted(self.sweep_frames, frame, "left")) - 1
        if k < 0 or self.sweep_frames[k] <= flow.last_frame:
            return False
        return int(self.sweep_ts[k]) - flow.last_ts > self.table.idle.of(flow)

    def replay(self, members: list[int], packets: dict[int, Packet]) -> None:
        """One flow's packets of this chunk, one at a time, as FlowTable.packet does."""
        table = self.table
        flows = table.flows
        bulk = [i for i in members if i not in packets]
        packets = {**packets, **dict(zip(bulk, self.packets(bulk), strict=True))}
        for i in members:
            pkt = packets[i]
            frame, t, length = int(self.frames[i]), int(self.ts[i]), int(self.orig[i])
            k = (pkt.vlan, pkt.proto, pkt.src, pkt.sport, pkt.dst, pkt.dport)
            entry = flows.get(k)
            if entry is None:
                flow, from_orig = table.new_flow(pkt, k, frame, t)
            else:
                flow, from_orig = entry
                if self.swept(flow, frame) or table.reused(flow, from_orig, pkt):
                    table.finish(flow)
                    flow, from_orig = table.new_flow(pkt, k, frame, t)
            table.update(flow, from_orig, pkt, frame, t, length)


def _canon(key: tuple) -> tuple:
    vlan, proto, src, sport, dst, dport = key
    a, b = (src, sport), (dst, dport)
    return (vlan, proto, *(a + b if a <= b else b + a))


def _replayed(flow: Flow) -> bool:
    """A flow the bulk path cannot take on: its dissector has no bulk framing, or its
    streams hold out-of-order segments."""
    d = flow.dissector
    return (d is not None and not _fast_dissector(d, flow.proto)) or (
        flow.streams is not None and bool(flow.streams[0].pending or flow.streams[1].pending)
    )


def _fast_dissector(d, proto: int) -> bool:
    if proto == TCP:
        return isinstance(d, FramedStream)
    return d.datagram_is_pdu


def _fed(flow: Flow) -> Dissector:
    """The dissector of a flow the bulk path feeds (Plan.has_dissector): claimed before the chunk or in it."""
    d = flow.dissector
    assert d is not None
    return d


def _framer(flow: Flow) -> FramedStream:
    """The dissector of a flow whose segments the bulk path frames: a FramedStream (_fast_dissector)."""
    d = flow.dissector
    assert isinstance(d, FramedStream)
    return d


def _segmented_first(mask: np.ndarray, first: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Per group, the first row where ``mask`` holds, else _NONE."""
    return np.minimum.reduceat(np.where(mask, rows, _NONE), first)


@dataclass(slots=True)
class _Segments:
    """The segments Plan._streams feeds to the TCP streams of a chunk, sorted by stream (a flow's group * 2 + side),
    then in stream order; and per stream, where it starts and what the segments do to it."""

    rows: np.ndarray  # the segments' rows
    dup: np.ndarray  # bool: a whole retransmission
    keys: list[int]  # each stream fed
    base: list[int]  # its sequence number before the chunk
    front: list[int]  # how far past ``base`` the segments take it
    dups: list[int]  # whole retransmissions among them


class Plan:
    """A chunk's flows, decided and applied column-wise.

    Rows are the chunk's bulk-decoded packets sorted by flow (group) and frame.
    ``decide`` marks the groups to replay packet by packet; ``apply`` puts every
    other group's packets into its flow at once."""

    def __init__(self, ch: Chunk, ix: np.ndarray, bounds: np.ndarray):
        self.ch = ch
        self.ix = ix  # each row's packet in the chunk
        self.first = bounds[:-1]  # each group's first row, and its last
        self.last = bounds[1:] - 1
        self.G = G = len(self.first)
        self.N = N = len(ix)
        self.gid = np.repeat(np.arange(G), np.diff(bounds))  # each row's group
        self.rows = np.arange(N)
        c = ch.c  # the rows' columns
        self.src, self.sport, self.dst, self.dport = c["src"][ix], c["sport"][ix], c["dst"][ix], c["dport"][ix]
        self.proto, self.vlan = c["proto"][ix], c["vlan"][ix]
        self.flags, self.seq, self.ack = c["flags"][ix], c["seq"][ix], c["ack"][ix]
        self.pay, self.plen = c["pay"][ix], c["plen"][ix]
        self.ts = ch.ts[ix]
        self.fr = ch.frames[ix]
        self.length = ch.orig[ix]
        f = self.first
        heads = [x[f].tolist() for x in (self.vlan, self.proto, self.src, self.sport, self.dst, self.dport)]
        self.keys = [
            (v, p, s.to_bytes(4, "big"), sp, d.to_bytes(4, "big"), dp)
            for v, p, s, sp, d, dp in zip(*heads, strict=True)
        ]
        flows = ch.table.flows
        self.entries = [flows.get(k) for k in self.keys]
        self.replay = np.zeros(G, bool)  # groups replayed packet by packet
        # what ``decide`` finds, in its order
        self.new = np.array([e is None for e in self.entries], bool)  # groups that open their flow
        self.prior: list[Flow | None] = [entry and entry[0] for entry in self.entries]  # before the chunk (None: new)
        self.flow: dict[int, Flow] = {}  # the flow of each group ``apply`` takes: set there, new ones opened
        self.from_orig = np.zeros(N, bool)
        self.syn, self.ackf = (self.flags & SYN) != 0, (self.flags & ACK) != 0
        self.isn: dict[tuple[int, int], int] = {}  # (group, side) -> sequence number of the side's last SYN
        # _claims: the row and dissector each claimed flow is claimed at, the tries, the sides unfed (Flow.unfed)
        self.claim_row = np.full(G, -1, np.int64)
        self.claimed: list[Dissector | None] = [None] * G
        self.tries = np.zeros(G, np.int64)
        self.unfed = np.zeros((G, 2), bool)
        self.fed_from = np.full(G, N, np.int64)  # the row from which payload goes to the dissector (N: none)
        self.has_dissector = np.zeros(G, bool)
        self.streams_from = self.first  # the row from which a flow has streams
        # _streams: each TCP stream direction's fed segments, in stream order (None: none)
        self.seg: _Segments | None = None
        # apply: the rows that carry only an ACK; per (history bit, from_orig), each group's first row that marks it
        self.ack_only = np.zeros(N, bool)
        self.firsts: dict[tuple[int, bool], np.ndarray] = {}

    def members(self, g: int) -> list[int]:
        return self.ix[self.first[g] : self.last[g] + 1].tolist()

    def stream(self, key: int) -> StreamDirection:
        """Stream ``key`` (group * 2 + side) of a TCP flow ``apply`` feeds: claimed, so it has streams (Flow.claim)."""
        g, side = divmod(key, 2)
        streams = self.flow[g].streams
        assert streams is not None
        return streams[side]

    # ------------------------------------------------------------------ decide
    def decide(self) -> None:
        G, gid, first = self.G, self.gid, self.first
        replay = self.replay
        flags = self.flags
        new = self.new
        last_ts = np.zeros(G, np.int64)
        last_frame = np.zeros(G, np.int64)
        oip = np.zeros(G, np.int64)
        oport = np.zeros(G, np.int64)
        known = [g for g, flow in enumerate(self.prior) if flow is not None]
        if known:  # flows of earlier chunks: read column by column
            flows = [flow for flow in self.prior if flow is not None]
            last_ts[known] = [f.last_ts for f in flows]
            last_frame[known] = [f.last_frame for f in flows]
            oip[known] = [int.from_bytes(f.orig_ip, "big") for f in flows]
            oport[known] = [f.orig_port for f in flows]
            replay[[g for g, f in zip(known, flows, strict=True) if _replayed(f)]] = True
        h = first[new]
        sender = senders_initiate(self.proto[h], flags[h], self.sport[h], self.dport[h])
        oip[new] = np.where(sender, self.src[h], self.dst[h])
        oport[new] = np.where(sender, self.sport[h], self.dport[h])
        self.from_orig = (self.src == oip[gid]) & (self.sport == oport[gid])
        syn, ackf = self.syn, self.ackf
        syn_rows = np.flatnonzero(syn)
        for r, g, o in zip(syn_rows.tolist(), gid[syn_rows].tolist(), self.from_orig[syn_rows].tolist(), strict=True):
            self.isn[(g, 0 if o else 1)] = int(self.seq[r])
        pos = self.rows - first[gid]
        # a SYN starting a new flow is the only one the bulk path models (no port reuse)
        bad = syn & ~ackf & ~((pos == 0) & new[gid])
        replay |= np.logical_or.reduceat(bad, first)
        replay |= (self.src[first] == self.dst[first]) & (self.sport[first] == self.dport[first])
        sf_all = self.ch.sweep_frames
        if len(sf_all):  # an idle sweep between two packets of a flow may split it
            prev_ts = np.concatenate(([0], self.ts[:-1]))
            prev_f = np.concatenate(([0], self.fr[:-1]))
            prev_ts[first] = np.where(new, self.ts[first], last_ts)
            prev_f[first] = np.where(new, self.fr[first], last_frame)
            s = np.searchsorted(sf_all, self.fr, "left") - 1
            valid = s >= 0
            s = np.maximum(s, 0)
            idle = self.ch.table.idle.shortest(self.proto[first])[gid]
            hit = valid & (sf_all[s] > prev_f) & (self.ch.sweep_ts[s] - prev_ts > idle)
            replay |= np.logical_or.reduceat(hit, first)
        self._claims()
        self._streams()

    def _claims(self) -> None:
        """Which payload packet a dissector claims each unclaimed flow at, as
        FlowTable._dissect would, without touching any flow yet. Payloads that no
        dissector could claim (Registry.might_claim) only count as tries."""
        G, gid, first = self.G, self.gid, self.first
        # each flow before the chunk: 0 new, 1 dissected, 2 still to be claimed, 3 given up
        before = np.array([0 if f is None else 1 if f.dissector is not None else 2 if f.claim_tries < CLAIM_TRIES else 3
                           for f in self.prior], np.int8)  # fmt: skip
        has = before == 1  # a dissector before the chunk
        need = ((before == 0) | (before == 2)) & ~self.replay
        tried = np.zeros(G, np.int64)  # claim tries before the chunk
        unfed = self.unfed  # payload went by unclaimed, per side (Flow.unfed)
        for g in np.flatnonzero(before == 2).tolist():
            flow = self.prior[g]
            assert flow is not None  # a flow of earlier chunks
            tried[g] = flow.claim_tries
            unfed[g] = flow.unfed
        payload = self.plen > 0
        cs = np.cumsum(payload)
        rank = cs - 1 - (cs[first] - payload[first])[gid]
        cand = np.flatnonzero(payload & (rank < CLAIM_TRIES - tried[gid]) & need[gid])
        fo = self.from_orig
        tcp = self.proto[first] == TCP
        resp_port = np.where(fo[first], self.dport[first], self.sport[first])
        ports = resp_port, np.where(fo[first], self.sport[first], self.dport[first])  # responder's, originator's
        maybe = np.zeros(len(cand), bool)
        for transport, on in (("tcp", tcp), ("udp", ~tcp)):
            sel = on[gid[cand]]
            if sel.any():
                rows, g = cand[sel], gid[cand[sel]]
                maybe[sel] = self.ch.table.registry.might_claim(
                    transport, ports[0][g], ports[1][g], self.ch.a, self.pay[rows], self.plen[rows]
                )
        probe = np.zeros(G, bool)
        probe[gid[cand[maybe]]] = True
        # flows no dissector can claim here: every candidate is a try on its side
        quiet = cand[~probe[gid[cand]]]
        self.tries += np.bincount(gid[quiet], minlength=G)
        unfed[gid[quiet], (~fo[quiet]).astype(np.int64)] = True
        self._probe(cand[probe[gid[cand]]], tcp, *ports)
        self.fed_from = np.where(has, first, np.where(self.claim_row >= 0, self.claim_row, self.N))
        self.has_dissector = has | (self.claim_row >= 0)
        # a flow's streams exist from its claiming packet on (or from the chunk's start)
        self.streams_from = np.where(self.claim_row >= 0, self.claim_row + 1, first)

    def _probe(self, todo: np.ndarray, tcp: np.ndarray, resp_port: np.ndarray, orig_port: np.ndarray) -> None:
        """Offer the registry each flow's candidate payloads (rows ``todo``, by flow) in order, until one claims
        it: a dissector the bulk path takes, or one it does not (the flow is replayed)."""
        gid, buf, registry = self.gid, self.ch.buf, self.ch.table.registry
        cand_g, cand_rows = gid[todo].tolist(), todo.tolist()
        pay, plen, fo_c = self.pay[todo].tolist(), self.plen[todo].tolist(), self.from_orig[todo].tolist()
        j = 0
        while j < len(cand_rows):
            g = cand_g[j]
            transport = "tcp" if tcp[g] else "udp"
            rp, op = resp_port[g], orig_port[g]
            used = 0
            while j < len(cand_rows) and cand_g[j] == g:
                if self.claimed[g] is None and not self.replay[g]:
                    used += 1
                    p = pay[j]
                    found = registry.claim(transport, int(rp), int(op), buf[p : p + plen[j]])
                    if found is None:
                        self.unfed[g, not fo_c[j]] = True
                    elif not _fast_dissector(found, TCP if tcp[g] else UDP):
                        self.replay[g] = True
                    else:
                        self.claimed[g] = found
                        self.claim_row[g] = cand_rows[j]
                j += 1
            self.tries[g] = used

    def _streams(self) -> None:
        """TCP payload of dissected flows: each segment must be the next in its
        direction or a whole retransmission; the rest is replayed."""
        gid, first = self.gid, self.first
        tcp_g = (self.proto[first] == TCP) & self.has_dissector & ~self.replay
        rows = self.rows
        # a SYN after payload started to flow
        self.replay |= np.logical_or.reduceat(self.syn & (rows >= self.streams_from[gid]) & tcp_g[gid], first)
        tcp_g &= ~self.replay
        fed = np.flatnonzero(tcp_g[gid] & (self.plen > 0) & (rows >= self.fed_from[gid]))
        if not len(fed):
            return
        side = (~self.from_orig[fed]).astype(np.int64)  # 0: originator's stream
        gs = gid[fed] * 2 + side
        order = np.lexsort((fed, gs))
        fed, gs = fed[order], gs[order]
        seq = self.seq[fed]
        uniq, starts = np.unique(gs, return_index=True)
        first_seq = seq[starts].tolist()
        base = []
        for key, s0 in zip(uniq.tolist(), first_seq, strict=True):
            g, sd = divmod(key, 2)
            flow = self.prior[g]
            if flow is not None and flow.streams is not None:
                b = flow.streams[sd].next_seq
            else:
                # the last SYN of the side before the payload (SYNs after it were replayed)
                i = self.isn.get((g, sd), flow.isn[sd] if flow is not None else None)
                b = (i + 1) % SEQ_MOD if i is not None and not self.unfed[g][sd] else None
            base.append(s0 if b is None else b)
        seg_of = np.searchsorted(uniq, gs)
        base_arr = np.asarray(base, np.int64)
        rel = (seq - base_arr[seg_of]) % SEQ_MOD
        rel = np.where(rel >= HALF, rel - SEQ_MOD, rel)
        end = rel + self.plen[fed]
        lift = seg_of.astype(np.int64) << 36  # makes one running max restart at every stream
        run = np.maximum.accumulate(end + lift)
        before = np.concatenate(([0], run[:-1])) - lift
        before[starts] = 0
        before = np.maximum(before, 0)
        dup = end <= before
        bad = ~(dup | (rel == before))
        if bad.any():
            self.replay[np.unique(gid[fed[bad]])] = True
        final = np.maximum(before, end)
        last_of = np.concatenate((starts[1:], [len(fed)])) - 1
        self.seg = _Segments(fed, dup, uniq.tolist(), base, final[last_of].tolist(),
                             np.add.reduceat(dup, starts).tolist())  # fmt: skip

    # ------------------------------------------------------------------- apply
    def apply(self) -> None:
        """Open the new flows, then hand each owner the chunk's values for all the flows the bulk path takes:
        counters (FlowTable.counted), TCP state (Flow.tcp_chunk), claims (Flow.offered), streams, then PDUs."""
        fast = ~self.replay
        if not fast.any():
            return
        on = np.flatnonzero(fast)
        prior = self.prior
        self.flow = {g: flow for g in on.tolist() if (flow := prior[g]) is not None}
        self._open(np.flatnonzero(fast & self.new))
        first, last, fo, length, flows = self.first, self.last, self.from_orig, self.length, self.flow
        n_orig = np.add.reduceat(fo.astype(np.int64), first)
        b_orig = np.add.reduceat(np.where(fo, length, 0), first)
        self.ch.table.counted(
            [flows[g] for g in on.tolist()], n_orig[on].tolist(), (last - first + 1 - n_orig)[on].tolist(),
            b_orig[on].tolist(), (np.add.reduceat(length, first) - b_orig)[on].tolist(),
            self.ts[last][on].tolist(), self.fr[last][on].tolist(),
        )  # fmt: skip
        self._tcp(fast)
        tries = self.tries.tolist()
        for g in np.flatnonzero(fast & (self.tries > 0)).tolist():  # after the SYNs: a claim's streams start there
            flows[g].offered(tries[g], self.unfed[g].tolist(), self.claimed[g])
        self._apply_streams(fast)
        self._pdus(fast)

    def _open(self, born: np.ndarray) -> None:
        """The flows these groups start (FlowTable.open), with their first packet's MACs."""
        if not len(born):
            return
        at = self.first[born]
        keys, buf, table = self.keys, self.ch.buf, self.ch.table
        macs = self.ch.c["mac"][self.ix[at]].tolist()
        heads = (x[at].tolist() for x in (self.from_orig, self.fr, self.ts))
        for g, m, from_sender, frame, t in zip(born.tolist(), macs, *heads, strict=True):
            self.flow[g], _ = table.open(keys[g], from_sender, buf[m + 6 : m + 12], buf[m : m + 6], frame, t)

    def _tcp(self, fast: np.ndarray) -> None:
        """Each TCP flow's history letters, SYN sequence numbers, close and handshake in the chunk (Flow.tcp_chunk)."""
        first = self.first
        tcp_fast = (self.proto[first] == TCP) & fast
        marks = self._marks(tcp_fast)
        closed = set(np.flatnonzero(np.logical_or.reduceat((self.flags & (FIN | RST)) != 0, first) & tcp_fast).tolist())
        handshake = self._handshakes(tcp_fast)
        isn: dict[int, list[int | None]] = {}
        for (g, sd), seq in self.isn.items():
            if fast[g]:
                isn.setdefault(g, [None, None])[sd] = seq
        for g in sorted(marks.keys() | isn.keys() | closed | handshake):
            letters = [(side_orig, bit) for _, _, side_orig, bit in sorted(marks.get(g, ()))]
            self.flow[g].tcp_chunk(letters, isn.get(g, [None, None]), g in closed, g in handshake)

    def _marks(self, tcp_fast: np.ndarray) -> dict[int, list]:
        """History letters each flow gains in this chunk, with where they happen."""
        first = self.first
        fo = self.from_orig
        syn, ackf = self.syn, self.ackf
        flags = self.flags
        data = self.plen > 0
        retx = np.zeros(self.N, bool)
        if self.seg is not None:
            retx[self.seg.rows[self.seg.dup]] = True
        self.ack_only = ~syn & ackf & ~data & ((flags & (FIN | RST)) == 0)
        masks = (syn & ~ackf, syn & ackf, self.ack_only, data, (flags & FIN) != 0, (flags & RST) != 0, retx)
        on = tcp_fast[self.gid]
        on_flows, flows = tcp_fast.tolist(), self.flow
        seen = {  # the letters each side's history has
            True: np.array([flows[g].seen_orig if t else 0 for g, t in enumerate(on_flows)], np.int64),
            False: np.array([flows[g].seen_resp if t else 0 for g, t in enumerate(on_flows)], np.int64),
        }
        found: dict[int, list] = {}
        self.firsts = {}
        for rank, (bit, m) in enumerate(zip(_MARKS, masks, strict=True)):
            for side_orig in (True, False):
                firsts = _segmented_first(m & on & (fo if side_orig else ~fo), first, self.rows)
                self.firsts[(bit, side_orig)] = firsts
                for g in np.flatnonzero((firsts != _NONE) & (seen[side_orig] & bit == 0)).tolist():
                    found.setdefault(g, []).append((int(firsts[g]), rank, side_orig, bit))
        return found

    def _handshakes(self, tcp_fast: np.ndarray) -> set[int]:
        """Flows whose originator ACKs or sends data after its SYN and the SYN-ACK."""
        flows = self.flow
        todo = np.array([t and not flows[g].handshake for g, t in enumerate(tcp_fast.tolist())], bool)
        if not todo.any():
            return set()
        seen_s, seen_h = np.zeros(self.G, bool), np.zeros(self.G, bool)
        for g in np.flatnonzero(todo).tolist():
            f = self.flow[g]
            seen_s[g], seen_h[g] = f.seen_orig & H_SYN, f.seen_resp & H_SYNACK
        first_s = np.where(seen_s, -1, self.firsts[(H_SYN, True)])
        first_h = np.where(seen_h, -1, self.firsts[(H_SYNACK, False)])
        ok = todo & (first_s != _NONE) & (first_h != _NONE)
        from_ = np.maximum(first_s, first_h + 1)
        cand = self.from_orig & (self.ack_only | (self.plen > 0)) & (self.rows >= from_[self.gid]) & ok[self.gid]
        return set(np.flatnonzero(np.logical_or.reduceat(cand, self.first)).tolist())

    def _apply_streams(self, fast: np.ndarray) -> None:
        """Stream positions, retransmission counts and the peers' ACKs."""
        seg = self.seg
        if seg is not None:
            on = fast.tolist()
            for key, base, front, dups in zip(seg.keys, seg.base, seg.front, seg.dups, strict=True):
                if on[key >> 1]:
                    self.stream(key).advanced((base + front) % SEQ_MOD, dups)
        # ACKs reach a stream once the flow has streams: after the claiming packet
        gid, first = self.gid, self.first
        tcp = (self.proto[first] == TCP) & fast & self.has_dissector
        rows = np.flatnonzero(tcp[gid] & self.ackf & (self.rows >= self.streams_from[gid]))
        if not len(rows):
            return
        stream_side = self.from_orig[rows].astype(np.int64)  # an originator's ACK is about the responder's stream
        gs = gid[rows] * 2 + stream_side
        order = np.lexsort((rows, gs))
        rows, gs = rows[order], gs[order]
        acks = self.ack[rows]
        uniq, starts = np.unique(gs, return_index=True)
        streams = [self.stream(key) for key in uniq.tolist()]
        refs = []
        for stream, a0 in zip(streams, acks[starts].tolist(), strict=True):
            pa = stream.peer_ack
            refs.append(a0 if pa is None else pa)
        ref = np.asarray(refs, np.int64)[np.searchsorted(uniq, gs)]
        d = (acks - ref) % SEQ_MOD
        d = np.where(d >= HALF, d - SEQ_MOD, d)
        ahead = np.maximum.reduceat(d, starts).tolist()
        for stream, r, a in zip(
            streams, refs, ahead, strict=True
        ):  # nothing waits out of order: acked() gives no pieces
            stream.acked((r + max(a, 0)) % SEQ_MOD)

    def _pdus(self, fast: np.ndarray) -> None:
        """Hand the payload each dissector gets, grouped by dissector class."""
        gid, first = self.gid, self.first
        tcp = self.proto[first] == TCP
        parts = []
        if self.seg is not None:
            rows = self.seg.rows[~self.seg.dup]
            parts.append(rows[fast[gid[rows]]])
        udp = fast & ~tcp & self.has_dissector
        if udp.any():
            parts.append(np.flatnonzero(udp[gid] & (self.plen > 0) & (self.rows >= self.fed_from[gid])))
        if not parts:
            return
        rows = np.sort(np.concatenate(parts))
        if not len(rows):
            return
        by_class: dict[type[Dissector], list[int]] = {}
        gs = np.unique(gid[rows]).tolist()
        for g in gs:
            by_class.setdefault(type(_fed(self.flow[g])), []).append(g)
        # frame every class first: the PDUs copied out of split segments go after the
        # chunk's bytes, in one array all the batches share
        aux = _Aux(len(self.ch.a))
        framed = [
            (cls, groups, _frame(self, cls, rows[np.isin(gid[rows], groups)], aux)) for cls, groups in by_class.items()
        ]
        data = aux.data(self.ch.a)
        for cls, groups, pdus in framed:
            _dissect(self, cls, groups, pdus, data)


class _Aux:
    """PDUs copied out of segments (split across them), placed after the chunk's bytes."""

    def __init__(self, end: int):
        self.pieces: list[bytes] = []
        self.end = end

    def put(self, pdu: bytes) -> int:
        at = self.end
        self.pieces.append(pdu)
        self.end += len(pdu)
        return at

    def data(self, a: np.ndarray) -> np.ndarray:
        """The chunk's bytes, then the copied PDUs: what the batches' starts index."""
        return np.concatenate((a, np.frombuffer(b"".join(self.pieces), np.uint8))) if self.pieces else a


class _Pdus:
    """PDUs cut from a chunk's segments: where each starts (in the chunk's bytes, or
    in ``aux`` for a PDU that had to be copied), which segment (row) completed it and
    its place within that segment."""

    def __init__(self, aux: _Aux):
        self.parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []  # row, sub, start, length
        self.aux = aux
        self.copied: list[tuple[int, int, int, int]] = []

    def add(self, rows, sub, start, length) -> None:
        self.parts.append((rows, sub, start, length))

    def copy(self, row: int, sub: int, pdu: bytes) -> None:
        self.copied.append((row, sub, self.aux.put(pdu), len(pdu)))

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(row, start, length), in delivery order: by row, then place in the row."""
        parts = self.parts + (
            [tuple(np.asarray(x, np.int64) for x in zip(*self.copied, strict=True))] if self.copied else []
        )
        if not parts:
            return (np.zeros(0, np.int64),) * 3
        row, sub, start, length = (np.concatenate([p[k] for p in parts]) for k in range(4))
        order = np.lexsort((sub, row))
        return row[order], start[order], length[order]


def _pipelined(lengths_of: LengthsOf, a: np.ndarray, pay: np.ndarray, plen: np.ndarray, first_len: np.ndarray) -> tuple:
    """Segments holding several whole PDUs back to back (pipelined polling): follow
    their length fields, all segments at once, up to MAX_PIPELINED deep. Returns
    which segments they are (a mask over pay) and their PDUs, as (segment, place in
    it, start, length) arrays."""
    todo = np.flatnonzero((first_len > 0) & (first_len < plen))
    at, left, n = pay[todo] + first_len[todo], plen[todo] - first_len[todo], first_len[todo]
    found = [(todo, np.zeros(len(todo), np.int64), pay[todo], n)]
    several = np.zeros(len(pay), bool)
    for depth in range(1, MAX_PIPELINED):
        if not len(todo):
            break
        n = lengths_of(a, at, left)
        ok = (n > 0) & (n <= left)
        todo, at, left, n = todo[ok], at[ok], left[ok], n[ok]
        found.append((todo, np.full(len(todo), depth, np.int64), at, n))
        done = n == left
        several[todo[done]] = True
        todo, at, left, n = todo[~done], at[~done] + n[~done], left[~done] - n[~done], n[~done]
    seg, sub, start, length = (np.concatenate([f[k] for f in found]) for k in range(4))
    keep = several[seg]
    return several, (seg[keep], sub[keep], start[keep], length[keep])


def _split(plan: Plan, rows: np.ndarray, key: np.ndarray, flagged: np.ndarray, pdus: _Pdus) -> np.ndarray:
    """FramedStream.split, in order, for each stream direction from its first flagged
    segment on, until the dissector holds no partial PDU again. Returns the segments
    it framed (they are not framed in bulk)."""
    buf, writer = plan.ch.buf, plan.ch.o.writer
    pay, plen = plan.pay[rows], plan.plen[rows]
    by_key = np.argsort(key, kind="stable")
    keys, starts, counts = np.unique(key[by_key], return_index=True, return_counts=True)
    span = dict(zip(keys.tolist(), zip(starts.tolist(), counts.tolist(), strict=True), strict=True))
    framed = np.zeros(len(rows), bool)
    for k in np.unique(key[flagged]).tolist():
        lo, cnt = span[k]
        js = by_key[lo : lo + cnt].tolist()
        flow, from_orig = plan.flow[k >> 1], not k & 1
        d = _framer(flow)
        todo = np.flatnonzero(flagged[js]).tolist()
        n, t = todo[0], 0
        while n < len(js):
            j = js[n]
            framed[j] = True
            r, p = int(rows[j]), int(pay[j])
            sub = 0
            for unit in d.split(buf[p : p + int(plen[j])], from_orig):
                if isinstance(unit, bytes):
                    pdus.copy(r, sub, unit)
                    sub += 1
                else:
                    writer.record(flow, from_orig, int(plan.fr[r]), int(plan.ts[r]), unit)
            if d.mid_pdu(from_orig):
                n += 1  # a PDU continues into the next segment
                continue
            while t < len(todo) and todo[t] <= n:
                t += 1
            n = todo[t] if t < len(todo) else len(js)
    return framed


MAX_SPAN_DEPTH = 32  # PDUs a run of split segments is followed for in bulk; split takes a longer run on
SPAN_MIN = 32  # flagged segments worth _spans' fixed cost (~0.2 ms); fewer go through split
_ALIGNED, _TAIL, _STOP = 0, 1, 2  # how a run ends: a PDU ends with a segment, the stream ends mid-PDU, split takes over


def _spans(plan: Plan, cls: type[FramedStream], lengths_of: LengthsOf, rows: np.ndarray, key: np.ndarray,
           order: np.ndarray, heads: np.ndarray, flagged: np.ndarray, held: dict[int, bytes | None],
           pdus: _Pdus) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """The flagged segments framed in bulk, as FramedStream.split would frame them.

    A stream direction's segments are in order and contiguous: its bytes are their
    payloads end to end, after the partial PDU its dissector held (``held``: stream ->
    those bytes, None while resyncing). A run starts at each flagged segment, at a PDU
    boundary, and follows the length fields across segment ends until a PDU ends
    where a segment does; all runs at once, depth by depth. A run starting inside an
    earlier run is dropped. A PDU inside one segment points at the chunk's bytes; one
    spanning segments is copied to ``aux``, its row the segment that completes it. A
    run that meets a header split would resync on, or is deeper than MAX_SPAN_DEPTH,
    leaves its stream to split from the segment it is in, with the bytes split would
    hold there. ``order`` sorts the rows by stream (``heads``: where each starts).
    Returns the segments framed here and those left to split."""
    ks, fl = key[order], flagged[order]
    walked = np.logical_or.reduceat(fl, heads)  # streams with a flagged segment, unless resyncing
    resync = [k for k, v in held.items() if v is None]
    if resync:
        walked &= ~np.isin(ks[heads], resync)
    counts = np.empty_like(heads)
    counts[:-1], counts[-1] = heads[1:] - heads[:-1], len(rows) - heads[-1]
    on = np.flatnonzero(np.repeat(walked, counts))
    left = fl.copy()
    left[on] = False  # by stream: the segments split frames
    pc = _Pieces(plan, rows[order[on]], on, ks[on], fl[on], held)
    framed, split = np.zeros(len(rows), bool), np.zeros(len(rows), bool)
    wp = np.flatnonzero(pc.walk)  # each run's first piece
    if len(wp):
        runs = _Runs(pc, cls, lengths_of, wp)
        hold = runs.stop(left, ks, fl)
        if hold:
            lo, hi = np.array(list(hold.values()), np.int64).T
            data, at = pc.take(lo, hi), np.cumsum(hi - lo) - (hi - lo)
            for k, x, n in zip(hold, at.tolist(), (hi - lo).tolist(), strict=True):
                _framer(plan.flow[k >> 1]).hold(not k & 1, data[x : x + n])
        framed[order[runs.framed()]] = True
        runs.add_pdus(pdus, rows[order])
    split[order] = left
    return framed, split


class _Pieces:
    """The bytes of the stream directions _spans walks, end to end, in pieces: each stream's segments (``seg``:
    their places in the rows sorted by stream), after the partial PDU its dissector held (a piece with seg -1,
    its bytes in ``extra``, addressed as if after the chunk's). Piece i is stream positions [vstart[i], vend[i])."""

    def __init__(self, plan: Plan, rows: np.ndarray, seg: np.ndarray, pk: np.ndarray, walk: np.ndarray, held: dict):
        self.a, self.buf = plan.ch.a, plan.ch.buf
        self.na = na = len(self.a)
        src, size = plan.pay[rows], plan.plen[rows]
        self.kept = kept = sorted(k for k, v in held.items() if v)  # the streams that held bytes
        self.extra = b"".join(held[k] for k in kept)
        if kept:
            at = np.searchsorted(pk, kept)
            lens = np.array([len(held[k]) for k in kept], np.int64)
            src, size = np.insert(src, at, na + np.cumsum(lens) - lens), np.insert(size, at, lens)
            seg, pk = np.insert(seg, at, -1), np.insert(pk, at, kept)
            walk = np.insert(walk, at, True)  # a held stream's run starts at the held bytes
            walk[at + np.arange(len(at)) + 1] = False
        self.seg, self.src, self.pk, self.walk = seg, src, pk, walk  # walk: the pieces a run starts at
        self.vend = np.cumsum(size)
        self.vstart = self.vend - size
        self.last = np.flatnonzero(np.append(pk[1:] != pk[:-1], True))  # each stream's last piece

    def piece(self, v):
        """The pieces holding stream positions v."""
        return np.searchsorted(self.vstart, v, "right") - 1

    def fetch(self, v: np.ndarray) -> np.ndarray:
        """The stream bytes at positions v."""
        a, na = self.a, self.na
        pc = self.piece(v)
        addr = self.src[pc] + v - self.vstart[pc]
        got = a[np.minimum(addr, na - 1)]
        if not self.kept:
            return got
        extra = np.frombuffer(self.extra, np.uint8)
        return np.where(addr < na, got, extra[np.clip(addr - na, 0, len(extra) - 1)])

    def take(self, lo: np.ndarray, hi: np.ndarray) -> bytes:
        """The stream bytes [lo, hi) of each range, end to end."""
        first = self.piece(lo)
        cnt = self.piece(hi - 1) - first + 1
        pp = np.repeat(first - np.cumsum(cnt) + cnt, cnt) + np.arange(int(cnt.sum()))
        base = self.src[pp] - self.vstart[pp]
        s = (base + np.maximum(np.repeat(lo, cnt), self.vstart[pp])).tolist()
        e = (base + np.minimum(np.repeat(hi, cnt), self.vend[pp])).tolist()
        buf, na, extra = self.buf, self.na, self.extra
        if not self.kept:
            return b"".join([buf[x:y] for x, y in zip(s, e, strict=True)])
        return b"".join([buf[x:y] if x < na else extra[x - na : y - na] for x, y in zip(s, e, strict=True)])


class _Runs:
    """The runs _spans follows over _Pieces, one from each piece in ``wp``: how each ends, and its PDUs."""

    def __init__(self, pc: _Pieces, cls: type[FramedStream], lengths_of: LengthsOf, wp: np.ndarray):
        self.pc, self.wp = pc, wp
        self.wlast = pc.last[np.searchsorted(pc.last, wp)]  # the last piece of each run's stream
        self.v0, self.end = pc.vstart[wp], pc.vend[self.wlast]  # where each run starts, where its stream ends
        self.status = np.full(len(wp), _STOP)
        self.stop_at = self.v0.copy()  # where a run that does not end with a segment stopped
        self.end_piece = np.zeros(len(wp), np.int64)  # the piece an _ALIGNED run ends with
        # each PDU found: its run, depth, stream position, length, first piece and last piece
        self.fw, self.fd, self.fp, self.fn, self.fa, self.fb = self._walk(cls, lengths_of)
        self.true = self._chain()
        self.upto = np.where(self.status == _ALIGNED, self.end_piece, self.wlast)  # each run's last piece

    def _walk(self, cls: type[FramedStream], lengths_of: LengthsOf) -> tuple[np.ndarray, ...]:
        """Follow the length fields of all runs at once, depth by depth, and note how each run ends."""
        pc, hlen, status, stop_at = self.pc, cls.header_len, self.status, self.stop_at
        ids, p, e = np.arange(len(self.wp)), self.v0, self.end
        found = []
        for depth in range(MAX_SPAN_DEPTH):
            if not len(ids):
                break
            avail = e - p
            head = pc.fetch(np.minimum(p[:, None] + np.arange(hlen), e[:, None] - 1).ravel())  # may straddle segments
            n = lengths_of(head, np.arange(0, len(head), hlen), avail)
            short = avail < hlen
            bad = ~short & ((n < 0) | (n > cls.max_buffer))
            done = ~short & ~bad & (n <= avail)
            status[ids[~bad & ~done]] = _TAIL  # the stream ends inside this PDU (or its header)
            stop_at[ids[~done]] = p[~done]
            ids, p, e, n = ids[done], p[done], e[done], n[done]
            q = p + n
            pe = pc.piece(q - 1)
            found.append((ids, np.full(len(ids), depth), p, n, pc.piece(p), pe))
            aligned = q == pc.vend[pe]
            status[ids[aligned]], self.end_piece[ids[aligned]] = _ALIGNED, pe[aligned]
            ids, p, e = ids[~aligned], q[~aligned], e[~aligned]
        stop_at[ids] = p  # too deep: status stays _STOP
        return tuple(np.concatenate([f[k] for f in found]) for k in range(6))

    def _chain(self) -> np.ndarray:
        """The runs that start at a PDU boundary: the first one, then each first one past the end of the last."""
        W = len(self.wp)
        nxt = np.searchsorted(self.v0, np.where(self.status == _ALIGNED, self.pc.vend[self.end_piece], self.end))
        true = np.ones(W, bool)
        if (nxt != np.arange(1, W + 1)).any():
            chain, w, nxt = [], 0, nxt.tolist()
            while w < W:
                chain.append(w)
                w = nxt[w]
            true[:] = False
            true[chain] = True
        return true

    def stop(self, left: np.ndarray, ks: np.ndarray, fl: np.ndarray) -> dict[int, tuple[int, int]]:
        """End the runs that do not end with a segment: a _STOP run gives its stream to split from the segment it
        stopped in (``left``, by stream, gains them; its PDUs from there are dropped). Returns the stream range
        [lo, hi) each stream's dissector holds at the chunk's end, for the streams where that changes."""
        pc = self.pc
        hold = dict.fromkeys(pc.kept, (0, 0))
        for w in np.flatnonzero(self.true & (self.status != _ALIGNED)).tolist():
            k, at_v = int(pc.pk[self.wp[w]]), int(self.stop_at[w])
            if self.status[w] != _STOP:
                hold[k] = (at_v, int(self.end[w]))
                continue
            f = int(pc.piece(at_v))
            f += pc.seg[f] < 0  # stopped in the held bytes: from the first segment
            mine = self.fw == w
            ends = self.fp[mine] + self.fn[mine]
            self.fw = np.where(mine & (self.fb >= f), -1, self.fw)
            at_v = max([int(self.v0[w]), *ends[ends <= pc.vstart[f]].tolist()])
            self.upto[w] = f - 1
            s, t = int(pc.seg[f]), int(np.searchsorted(ks, k, "right"))
            left[s:t] |= fl[s:t]
            left[s] = True
            hold[k] = (at_v, int(pc.vstart[f]))
        return hold

    def framed(self) -> np.ndarray:
        """The segments the true runs cover (places in the rows sorted by stream)."""
        pc, true = self.pc, self.true
        cover = np.zeros(len(pc.vend) + 1, np.int64)
        np.add.at(cover, self.wp[true], 1)
        # a stopped run may end where the run before it ends: add.at counts both
        np.add.at(cover, self.upto[true] + 1, -1)
        seg = pc.seg[np.flatnonzero(np.cumsum(cover[:-1]) > 0)]
        return seg[seg >= 0]

    def add_pdus(self, pdus: _Pdus, rows: np.ndarray) -> None:
        """The true runs' PDUs, each at the segment (of ``rows``, sorted by stream) that completes it."""
        pc, fw = self.pc, self.fw
        keep = (fw >= 0) & self.true[np.maximum(fw, 0)]
        fd, fp, fn, fa, fb = self.fd[keep], self.fp[keep], self.fn[keep], self.fa[keep], self.fb[keep]
        row = rows[pc.seg[fb]]
        inside = (fa == fb) & (pc.seg[fa] >= 0)
        pdus.add(row[inside], fd[inside], pc.src[fa[inside]] + fp[inside] - pc.vstart[fa[inside]], fn[inside])
        if not inside.all():
            cn = fn[~inside]
            start = pdus.aux.put(pc.take(fp[~inside], fp[~inside] + cn))
            pdus.add(row[~inside], fd[~inside], start + np.cumsum(cn) - cn, cn)


def _frame(plan: Plan, cls: type[Dissector], rows: np.ndarray, aux: _Aux) -> _Pdus:
    """Cut the rows' payload into PDUs as ``feed`` would: in bulk where a segment is
    one or several whole PDUs and the stream holds no partial one, and where PDUs
    span segments (_spans, given SPAN_MIN such segments); through FramedStream.split
    elsewhere (resync, few split segments). A datagram dissector's datagram is one PDU."""
    a = plan.ch.a
    pdus = _Pdus(aux)
    pay, plen = plan.pay[rows], plan.plen[rows]
    if not issubclass(cls, FramedStream):
        pdus.add(rows, np.zeros(len(rows), np.int64), pay, plen)
        return pdus
    lengths_of: LengthsOf | None = getattr(cls, "pdu_lengths", None)
    if lengths_of is not None:
        first_len = lengths_of(a, pay, plen)
        whole = first_len == plen
        several, piped = _pipelined(lengths_of, a, pay, plen, first_len)
    else:
        whole = several = np.zeros(len(rows), bool)
        piped = None
    key = plan.gid[rows] * 2 + (~plan.from_orig[rows]).astype(np.int64)  # one stream direction
    order = np.argsort(key, kind="stable")  # by stream, in stream order
    ks = key[order]
    heads = np.flatnonzero(np.concatenate(([True], ks[1:] != ks[:-1])))
    flagged = ~(whole | several)
    held: dict[int, bytes | None] = {}  # a partial PDU left from the last chunk; None: resyncing
    dissectors = [_framer(plan.flow[g]) for g in (ks[heads] >> 1).tolist()]
    for k, j, d in zip(ks[heads].tolist(), order[heads].tolist(), dissectors, strict=True):
        if d.mid_pdu(not k & 1):
            flagged[j] = True
            held[k] = d.held(not k & 1)
    framed = np.zeros(len(rows), bool)
    if lengths_of is not None and flagged.sum() >= SPAN_MIN:
        framed, flagged = _spans(plan, cls, lengths_of, rows, key, order, heads, flagged, held, pdus)
    if flagged.any():
        framed |= _split(plan, rows, key, flagged, pdus)
    one = whole & ~framed
    pdus.add(rows[one], np.zeros(int(one.sum()), np.int64), pay[one], plen[one])
    if piped is not None:  # unless the segment is part of a run of split PDUs
        seg, sub, start, length = piped
        keep = ~framed[seg]
        pdus.add(rows[seg[keep]], sub[keep], start[keep], length[keep])
    return pdus


def _dissect(plan: Plan, cls: type[Dissector], groups: list[int], pdus: _Pdus, data: np.ndarray) -> None:
    """Dissect one class's PDUs of the chunk as one batch and write what they give."""
    writer = plan.ch.o.writer
    rr, start, length = pdus.arrays()
    if not len(rr):
        return
    flow_k = np.searchsorted(np.asarray(groups, np.int64), plan.gid[rr])
    batch = PduBatch(data, start, length, flow_k, plan.from_orig[rr], [_fed(plan.flow[g]) for g in groups])
    out = dissect(batch, cls.bulk)
    if len(out.pdu):
        r = rr[out.pdu]
        flow_ids = np.array([plan.flow[g].flow_id for g in groups], np.int64)[flow_k[out.pdu]]
        writer.bulk_operations(plan.fr[r], plan.ts[r], flow_ids, out.columns, out.details)
    for j, records in out.parsed:
        flow = plan.flow[groups[int(flow_k[j])]]
        r = int(rr[j])
        frame, t = int(plan.fr[r]), int(plan.ts[r])
        from_orig = bool(batch.from_orig[j])
        for rec in records:
            writer.record(flow, from_orig, frame, t, rec)
    for k in out.failed:
        plan.flow[groups[k]].drop_dissector()
