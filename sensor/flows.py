"""Bidirectional flows keyed by VLAN + 5-tuple, and the hand-off to dissectors.

The flow table decides who initiated (SYN, else the well-known server port, else
the first packet), counts packets and bytes per direction, keeps a Zeek-style
state history, and for flows a dissector claims, reassembles TCP and feeds the
dissector. Finished and idle flows are handed to the sink, so memory is bounded
by the number of concurrently active flows, not by the size of the capture.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import islice
from typing import Protocol

import numpy as np

from dissectors import Anomaly, Dissector, Record, Registry

from .decode import TCP, UDP, Packet
from .ports import PORT_LABELS, TRANSPORTS, UNKNOWN, server_rank, server_ranks
from .reassembly import Piece, StreamDirection

FIN, SYN, RST, ACK = 0x01, 0x02, 0x04, 0x10

IDLE_US = 300_000_000  # a flow silent this long (capture time) is finished, by default
CLOSED_IDLE_US = 10_000_000  # after FIN or RST, only stragglers remain
SWEEP_EVERY_US = 10_000_000
MAX_FLOWS = 200_000  # active flows; beyond this the least recently seen are evicted
# active flows of one packet (a scan's SYNs, a sweep's probes): beyond this the oldest are finished. A flood
# no longer takes the table (1.2 KB a flow) from the conversations; at least twice the records the columnar
# path opens flows for at once (columnar.FLOOD_PIECE), so that a chunk's evictions leave most of them
MAX_SINGLE_PACKET = 8_192
CLAIM_TRIES = 3  # payload-bearing packets a flow may offer the registry

# history letters, Zeek conn.log style: upper case from the originator
H_SYN, H_SYNACK, H_ACK, H_DATA, H_FIN, H_RST, H_RETX, H_GAP = 1, 2, 4, 8, 16, 32, 64, 128
_LETTERS = {H_SYN: "s", H_SYNACK: "h", H_ACK: "a", H_DATA: "d", H_FIN: "f", H_RST: "r", H_RETX: "t", H_GAP: "g"}


def sender_initiates(proto: int, flags: int, sport: int, dport: int) -> bool:
    """Did the sender of a flow's first packet open the flow? A SYN says so (a SYN-ACK
    says the receiver did); otherwise the side on the more server-like port answers."""
    if proto == TCP and flags & SYN:
        return not flags & ACK
    t = TRANSPORTS.get(proto, "")
    return server_rank(t, dport) >= server_rank(t, sport)


def senders_initiate(proto: np.ndarray, flags: np.ndarray, sport: np.ndarray, dport: np.ndarray) -> np.ndarray:
    """sender_initiates of many TCP and UDP first packets at once."""
    tcp = proto == TCP
    ranked = np.where(tcp, server_ranks("tcp", dport) >= server_ranks("tcp", sport),
                      server_ranks("udp", dport) >= server_ranks("udp", sport))  # fmt: skip
    return np.where(tcp & (flags & SYN != 0), flags & ACK == 0, ranked)


@dataclass(frozen=True, slots=True)
class IdleTimeouts:
    """How long a flow may be silent before it is finished, by transport, in µs of capture time. The defaults are
    one for all (tshark's conversations, which sorf's flows equal on the corpus, never time out); a sensor on a
    busy link may shorten UDP's (`sorf sense --idle udp=60`). After a FIN or RST only stragglers remain."""

    tcp: int = IDLE_US
    udp: int = IDLE_US
    other: int = IDLE_US
    closed: int = CLOSED_IDLE_US

    def of(self, flow: Flow) -> int:
        if flow.closed:
            return self.closed
        return self.tcp if flow.proto == TCP else self.udp if flow.proto == UDP else self.other

    def shortest(self, proto: np.ndarray) -> np.ndarray:
        """The least a TCP or UDP flow of each ``proto`` may be idle: a TCP flow may close within a chunk."""
        return np.where(proto == TCP, min(self.tcp, self.closed), self.udp)


class Sink(Protocol):
    def flow(self, flow: Flow) -> None: ...
    def record(self, flow: Flow, from_orig: bool, frame: int, ts: int, record: Record) -> None: ...


Endpoint = tuple[bytes, int, bytes | None]  # IP, port, MAC (None: the link has no MACs)


class Flow:
    """One conversation. Per-direction pairs are indexed by ``not from_orig``:
    0 for the originator, 1 for the responder."""

    __slots__ = (
        "flow_id", "vlan", "proto", "orig_ip", "orig_port", "resp_ip", "resp_port", "orig_mac", "resp_mac",
        "packets_orig", "packets_resp", "bytes_orig", "bytes_resp", "first_ts", "last_ts", "first_frame",
        "last_frame", "seen_orig", "seen_resp", "history", "handshake", "closed", "isn", "app_protocol",
        "dissector", "claim_tries", "unfed", "streams", "keys",
    )  # fmt: skip

    def __init__(self, flow_id: int, vlan: int, proto: int, orig: Endpoint, resp: Endpoint, frame: int, ts: int):
        self.flow_id = flow_id
        self.vlan = vlan
        self.proto = proto
        self.orig_ip, self.orig_port, self.orig_mac = orig
        self.resp_ip, self.resp_port, self.resp_mac = resp
        self.packets_orig = self.packets_resp = self.bytes_orig = self.bytes_resp = 0
        self.first_ts = self.last_ts = ts
        self.first_frame = self.last_frame = frame
        self.seen_orig = self.seen_resp = 0
        self.history = ""
        self.handshake = False
        self.closed = False
        self.isn: list[int | None] = [None, None]  # SYN sequence numbers: originator, responder
        self.app_protocol: str | None = None
        self.dissector: Dissector | None = None
        self.claim_tries = 0
        self.unfed = [False, False]  # payload went by before a dissector claimed the flow
        self.streams: tuple[StreamDirection, StreamDirection] | None = None
        self.keys: tuple[tuple, tuple] = ((), ())

    @property
    def transport(self) -> str:
        return TRANSPORTS.get(self.proto, str(self.proto))

    @property
    def reset(self) -> bool:
        return bool((self.seen_orig | self.seen_resp) & H_RST)

    def label(self) -> str:
        """app_protocol: the claiming dissector, else a port label, else 'unknown'.

        A dissector may refine its name once it has seen the traffic (s7comm
        becomes s7comm_plus), so its current name is asked for at the end."""
        if self.dissector is not None:
            return self.dissector.name
        if self.app_protocol:
            return self.app_protocol
        t = self.transport
        if self.proto not in (TCP, UDP):
            return t
        return PORT_LABELS.get((t, self.resp_port)) or PORT_LABELS.get((t, self.orig_port)) or UNKNOWN

    def mark(self, from_orig: bool, bit: int) -> None:
        if from_orig:
            if not self.seen_orig & bit:
                self.seen_orig |= bit
                self.history += _LETTERS[bit].upper()
        elif not self.seen_resp & bit:
            self.seen_resp |= bit
            self.history += _LETTERS[bit]

    def saw_syn(self, from_orig: bool, seq: int) -> None:
        """A SYN's sequence number is the side's ISN (and its stream's start, once it has one)."""
        self.isn[not from_orig] = seq
        if self.streams is not None:
            self.streams[not from_orig].syn(seq)

    def tcp_chunk(self, letters: list[tuple[bool, int]], isn: list[int | None], closed: bool, handshake: bool) -> None:
        """A chunk's TCP packets at once (the columnar path): the history letters they add, in order, as
        (from_orig, bit); each side's last SYN sequence number (None: no SYN); whether a FIN or RST came;
        whether the originator completed the handshake."""
        for from_orig, bit in letters:
            self.mark(from_orig, bit)
        for side, seq in enumerate(isn):
            if seq is not None:
                self.saw_syn(side == 0, seq)
        if closed:
            self.closed = True
        if handshake:
            self.handshake = True

    def claim(self, dissector: Dissector) -> None:
        """A dissector claimed the flow; a TCP flow's streams start at the SYNs unless earlier bytes were never fed."""
        self.dissector = dissector
        self.app_protocol = dissector.name
        if self.proto == TCP:
            self.streams = (StreamDirection(), StreamDirection())
            for stream, isn, unfed in zip(self.streams, self.isn, self.unfed, strict=True):
                if isn is not None and not unfed:
                    stream.syn(isn)

    def offered(self, tries: int, unfed: list[bool], dissector: Dissector | None) -> None:
        """A chunk's claim tries at once (the columnar path): how many payloads were offered, the sides whose
        payload went by unclaimed, and the dissector that claimed the flow (None: none did)."""
        self.claim_tries += tries
        self.unfed = [was or now for was, now in zip(self.unfed, unfed, strict=True)]
        if dissector is not None:
            self.claim(dissector)

    def drop_dissector(self) -> None:
        """The dissector failed on the flow: its records end here, and no other dissector is offered it."""
        self.dissector = None
        self.claim_tries = CLAIM_TRIES


class FlowTable:
    """Per-capture flow state; ``packet`` is called once per decoded packet."""

    def __init__(self, capture_id: int, registry: Registry, sink: Sink, idle: IdleTimeouts | None = None):
        self.registry = registry
        self.idle = idle or IdleTimeouts()
        self.sink = sink
        self.flows: dict[tuple, tuple[Flow, bool]] = {}  # both directions' keys -> (flow, key is the originator's)
        self.live: dict[int, Flow] = {}  # flow_id -> flow: each active flow once, for sweeps
        self.single: dict[int, Flow] = {}  # the live flows of one packet, oldest first
        self.evicted = {"single_packet": 0, "least_recent": 0}  # flows finished early at MAX_SINGLE_PACKET, MAX_FLOWS
        self.first_evicted: Flow | None = None
        self.id_base = capture_id << 32
        self.next_sweep = 0
        self.flow_count = 0

    def packet(self, pkt: Packet, frame: int, ts: int, length: int) -> None:
        key = (pkt.vlan, pkt.proto, pkt.src, pkt.sport, pkt.dst, pkt.dport)
        entry = self.flows.get(key)
        if entry is None:
            flow, from_orig = self.new_flow(pkt, key, frame, ts)
        else:
            flow, from_orig = entry
            if self.reused(flow, from_orig, pkt):
                self.finish(flow)  # the ports are reused by a new connection
                flow, from_orig = self.new_flow(pkt, key, frame, ts)
        self.update(flow, from_orig, pkt, frame, ts, length)
        self.evict()
        if ts >= self.next_sweep:
            self.sweep(ts)

    @staticmethod
    def reused(flow: Flow, from_orig: bool, pkt: Packet) -> bool:
        """A new SYN on a closed flow's ports, with another sequence number: a new connection."""
        flags = pkt.tcp_flags
        return bool(flags & SYN and not flags & ACK and flow.closed and flow.isn[not from_orig] != pkt.seq)

    def update(self, flow: Flow, from_orig: bool, pkt: Packet, frame: int, ts: int, length: int) -> None:
        """Everything one packet does to its flow: counters, TCP state, reassembly, dissection."""
        if flow.packets_orig + flow.packets_resp == 1:
            self.single.pop(flow.flow_id, None)
        if from_orig:
            flow.packets_orig += 1
            flow.bytes_orig += length
        else:
            flow.packets_resp += 1
            flow.bytes_resp += length
        flow.last_ts = ts
        flow.last_frame = frame
        payload = pkt.payload
        proto = pkt.proto
        flags = pkt.tcp_flags
        if proto == TCP:
            self._tcp_state(flow, from_orig, flags, pkt.seq, payload)
            if flow.streams is not None and flags & ACK:
                self._deliver(flow, not from_orig, flow.streams[from_orig].acked(pkt.ack))
        if payload and proto in (TCP, UDP) and (flow.dissector is not None or flow.claim_tries < CLAIM_TRIES):
            self._dissect(flow, from_orig, pkt, frame, ts)

    def new_flow(self, pkt: Packet, key: tuple, frame: int, ts: int) -> tuple[Flow, bool]:
        """The flow this packet starts."""
        from_sender = sender_initiates(pkt.proto, pkt.tcp_flags, pkt.sport, pkt.dport)
        return self.open(key, from_sender, pkt.src_mac, pkt.dst_mac, frame, ts)

    def open(
        self, key: tuple, from_sender: bool, src_mac: bytes | None, dst_mac: bytes | None, frame: int, ts: int
    ) -> tuple[Flow, bool]:
        """A flow whose first packet (``key``, the MACs) is at ``frame``; its id is the
        capture's and the frame's, so it does not depend on the order in which flows
        are processed."""
        vlan, proto, src, sport, dst, dport = key
        sender, receiver = (src, sport, src_mac), (dst, dport, dst_mac)
        orig, resp = (sender, receiver) if from_sender else (receiver, sender)
        flow = Flow(self.id_base | frame, vlan, proto, orig, resp, frame, ts)
        self.flow_count += 1
        rev = (vlan, proto, dst, dport, src, sport)
        flow.keys = (key, rev) if from_sender else (rev, key)
        self.flows[key] = (flow, from_sender)
        self.flows[rev] = (flow, not from_sender)
        self.live[flow.flow_id] = flow
        self.single[flow.flow_id] = flow  # its first packet is counted next
        return flow, from_sender

    def evict(self) -> None:
        """Keep the table within MAX_SINGLE_PACKET and MAX_FLOWS. Called once the packets at hand are counted
        (after each packet; after each columnar chunk), never while a caller still holds flows it looked up."""
        if len(self.single) > MAX_SINGLE_PACKET:
            self._evict_single()
        if len(self.flows) > 2 * MAX_FLOWS:
            self._evict_oldest()

    def counted(self, flows: list[Flow], packets_orig: list[int], packets_resp: list[int], bytes_orig: list[int],
                bytes_resp: list[int], last_ts: list[int], last_frame: list[int]) -> None:  # fmt: skip
        """Many flows' packets counted at once (the columnar path): each flow's totals over a chunk, and its last
        packet's time and frame. Flows past one packet are no longer single."""
        single = self.single
        for flow, po, pr, bo, br, ts, frame in zip(flows, packets_orig, packets_resp, bytes_orig, bytes_resp,
                                                     last_ts, last_frame, strict=True):  # fmt: skip
            flow.packets_orig += po
            flow.packets_resp += pr
            flow.bytes_orig += bo
            flow.bytes_resp += br
            flow.last_ts, flow.last_frame = ts, frame
            if flow.packets_orig + flow.packets_resp > 1:
                single.pop(flow.flow_id, None)

    def _tcp_state(self, flow: Flow, from_orig: bool, flags: int, seq: int, payload: bytes) -> None:
        if flags & SYN:
            flow.mark(from_orig, H_SYNACK if flags & ACK else H_SYN)
            flow.saw_syn(from_orig, seq)
        elif flags & ACK and not payload and not flags & (FIN | RST):
            flow.mark(from_orig, H_ACK)
            if from_orig and not flow.handshake and flow.seen_orig & H_SYN and flow.seen_resp & H_SYNACK:
                flow.handshake = True
        if payload:
            flow.mark(from_orig, H_DATA)
            if from_orig and not flow.handshake and flow.seen_orig & H_SYN and flow.seen_resp & H_SYNACK:
                flow.handshake = True  # the final ACK may carry data
        if flags & FIN:
            flow.mark(from_orig, H_FIN)
            flow.closed = True
        if flags & RST:
            flow.mark(from_orig, H_RST)
            flow.closed = True

    def _dissect(self, flow: Flow, from_orig: bool, pkt: Packet, frame: int, ts: int) -> None:
        dissector = flow.dissector
        if dissector is None:
            flow.claim_tries += 1
            dissector = self.registry.claim(flow.transport, flow.resp_port, flow.orig_port, pkt.payload)
            if dissector is None:
                flow.unfed[not from_orig] = True
                return
            flow.claim(dissector)
        if flow.proto == UDP:
            self._deliver(flow, from_orig, [(pkt.payload, frame, ts)], datagram=True)
            return
        stream = flow.streams[not from_orig]  # type: ignore[index]  # claim gave a TCP flow its streams
        retx = stream.retransmitted
        self._deliver(flow, from_orig, stream.push(pkt.seq, pkt.payload, frame, ts))
        if stream.retransmitted != retx:
            flow.mark(from_orig, H_RETX)

    def _deliver(self, flow: Flow, from_orig: bool, pieces: list[Piece], datagram: bool = False) -> None:
        """Feed in-order pieces of one direction to the flow's dissector; a None
        piece is a gap. Records carry the frame of the piece that completed them."""
        dissector = flow.dissector
        if not pieces or dissector is None:
            return
        sink = self.sink
        for data, frame, ts in pieces:
            try:
                if data is None:
                    flow.mark(from_orig, H_GAP)
                    side = "originator" if from_orig else "responder"
                    detail = f"bytes missing from the {side}'s stream; resynced at the next PDU"
                    records = [Anomaly(flow.app_protocol or "tcp", "reassembly_gap", detail), *dissector.gap(from_orig)]
                elif datagram:
                    records = dissector.datagram(data, from_orig)
                else:
                    records = dissector.feed(data, from_orig)
            except Exception as exc:  # noqa: BLE001 - a dissector bug must not stop the capture
                flow.drop_dissector()
                records = [Anomaly(flow.app_protocol or "?", "dissector_error", f"{type(exc).__name__}: {exc}")]
            for rec in records:
                sink.record(flow, from_orig, frame, ts, rec)
            if flow.dissector is None:
                return

    def sweep(self, now: int, before_frame: int | None = None) -> None:
        """Finish flows that went idle (in capture time); with ``before_frame``, only
        flows last seen before that frame (a sweep replayed after later packets)."""
        self.next_sweep = now + SWEEP_EVERY_US
        idle = self.idle.of
        last = before_frame if before_frame is not None else 1 << 62
        done = [flow for flow in self.live.values() if flow.last_ts < now - idle(flow) and flow.last_frame < last]
        for flow in done:
            self.finish(flow)

    def _evict_single(self) -> None:
        """Finish the oldest one-packet flows, down to nine tenths of the cap: a later packet of one starts a new
        flow."""
        oldest = list(islice(self.single.values(), len(self.single) - MAX_SINGLE_PACKET * 9 // 10))
        self._finish_early("single_packet", oldest)

    def _evict_oldest(self) -> None:
        """Finish the least recently seen flows, down to nine tenths of the cap."""
        flows = sorted(self.live.values(), key=lambda f: f.last_ts)
        oldest = flows[: len(flows) - MAX_FLOWS * 9 // 10]
        self._finish_early("least_recent", oldest)

    def _finish_early(self, why: str, flows: list[Flow]) -> None:
        self.evicted[why] += len(flows)
        if self.first_evicted is None and flows:
            self.first_evicted = flows[0]
        for flow in flows:
            self.finish(flow)

    def evictions(self) -> tuple[int, int, str] | None:
        """(frame, ts, detail) summing up the flows finished early at the caps (the first one's last
        packet); None if none was."""
        first = self.first_evicted
        if first is None:
            return None
        single, oldest = self.evicted["single_packet"], self.evicted["least_recent"]
        detail = (f"{single + oldest} flows finished before they ended: {single} of one packet when over "
                  f"{MAX_SINGLE_PACKET} were waiting, {oldest} least recently seen when over {MAX_FLOWS} were active; "
                  "a later packet of one of them starts a new flow")  # fmt: skip
        return first.last_frame, first.last_ts, detail

    def finish(self, flow: Flow) -> None:
        for key in flow.keys:
            self.flows.pop(key, None)
        self.live.pop(flow.flow_id, None)
        self.single.pop(flow.flow_id, None)
        if flow.streams is not None:
            self._deliver(flow, True, flow.streams[0].flush())
            self._deliver(flow, False, flow.streams[1].flush())
        self.sink.flow(flow)

    def close(self) -> None:
        """End of capture: every remaining flow is finished."""
        for flow in list(self.live.values()):
            self.finish(flow)
