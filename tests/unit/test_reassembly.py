"""TCP reassembly, built byte by byte: segments go through the flow table to the
Modbus dissector exactly as the sensor feeds them, with no capture file involved."""

from __future__ import annotations

import struct

import pytest

from dissectors import REGISTRY, Anomaly, Operation
from sensor.decode import TCP, Packet
from sensor.flows import ACK, SYN, FlowTable
from sensor.reassembly import PENDING_CAP, StreamDirection

CLIENT, SERVER = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])
ISN = 1000
ACKED = b""  # a segment entry (offset, ACKED) is the server's ACK of client bytes up to offset


def read_request(tid: int, address: int = 0, count: int = 10) -> bytes:
    """A Modbus/TCP Read Holding Registers request (12 bytes)."""
    return struct.pack("!HHHBBHH", tid, 0, 6, 1, 3, address, count)


class ListSink:
    def __init__(self):
        self.records: list[tuple[int, object]] = []
        self.flows = []

    def flow(self, flow):
        self.flows.append(flow)

    def record(self, flow, from_orig, frame, ts, record):
        self.records.append((frame, record))

    def operations(self):
        return [(frame, r) for frame, r in self.records if isinstance(r, Operation)]

    def anomalies(self):
        return [r for _, r in self.records if isinstance(r, Anomaly)]


@pytest.fixture
def run():
    """Feed (seq offset, payload) client segments after a handshake; return the sink."""

    def feed(segments: list[tuple[int, bytes]]) -> ListSink:
        sink = ListSink()
        table = FlowTable(1, REGISTRY, sink)
        ts = 1_000_000
        table.packet(Packet(0, None, None, CLIENT, SERVER, TCP, 40000, 502, SYN, ISN, 0, b""), 1, ts, 60)
        table.packet(Packet(0, None, None, SERVER, CLIENT, TCP, 502, 40000, SYN | ACK, 5000, ISN + 1, b""), 2, ts, 60)
        table.packet(Packet(0, None, None, CLIENT, SERVER, TCP, 40000, 502, ACK, ISN + 1, 5001, b""), 3, ts, 60)
        for frame, (offset, payload) in enumerate(segments, 4):
            if payload is ACKED:  # the server acknowledges client bytes up to offset
                pkt = Packet(0, None, None, SERVER, CLIENT, TCP, 502, 40000, ACK, 5001, ISN + 1 + offset, b"")
            else:
                pkt = Packet(0, None, None, CLIENT, SERVER, TCP, 40000, 502, ACK, ISN + 1 + offset, 5001, payload)
            table.packet(pkt, frame, ts + frame, 60 + len(payload))
        table.close()
        return sink

    return feed


def test_pdu_split_across_segments_is_one_operation_at_the_completing_frame(run):
    pdu = read_request(7, address=100, count=4)
    sink = run([(0, pdu[:5]), (5, pdu[5:9]), (9, pdu[9:])])
    ops = sink.operations()
    assert len(ops) == 1
    frame, op = ops[0]
    assert frame == 6  # the third data segment completed it
    assert (op.transaction_id, op.function_code, op.address, op.quantity) == (7, 3, 100, 4)
    assert op.access_class == "read" and op.direction == "request"
    assert not sink.anomalies()


def test_three_pdus_in_one_segment(run):
    sink = run([(0, read_request(1) + read_request(2) + read_request(3))])
    assert [op.transaction_id for _, op in sink.operations()] == [1, 2, 3]
    assert {frame for frame, _ in sink.operations()} == {4}


def test_retransmission_is_not_counted_twice(run):
    a, b = read_request(1), read_request(2)
    sink = run([(0, a), (0, a), (12, b), (6, (a + b)[6:18])])  # exact and overlapping retransmits
    assert [op.transaction_id for _, op in sink.operations()] == [1, 2]
    assert "T" in sink.flows[0].history
    assert not sink.anomalies()


def test_out_of_order_segments_are_reordered(run):
    a, b, c = read_request(1), read_request(2), read_request(3)
    sink = run([(12, b), (24, c), (0, a)])
    ops = sink.operations()
    assert [op.transaction_id for _, op in ops] == [1, 2, 3]
    # parsed once the hole filled, each is evidenced by the frame that carried it
    assert [frame for frame, _ in ops] == [6, 4, 5]
    assert not sink.anomalies()


def test_bytes_acknowledged_but_never_captured_are_a_gap_at_once(run):
    """A SPAN port dropped a segment the server did receive: its ACK says so, and
    the PDUs behind the hole come out then, not when the flow ends."""
    a, _lost, c, d = (read_request(i) for i in (1, 2, 3, 4))
    sink = run([(0, a), (24, c), (36, d), (48, ACKED), (48, read_request(5))])
    assert [(frame, op.transaction_id) for frame, op in sink.operations()] == [(4, 1), (5, 3), (6, 4), (8, 5)]
    (gap,) = sink.anomalies()
    assert gap.kind == "reassembly_gap"
    assert [frame for frame, r in sink.records if r is gap] == [5]  # where the stream resumed


def test_gap_resyncs_at_next_pdu_and_records_anomaly(run):
    a, b, c, d = (read_request(i) for i in (1, 2, 3, 4))
    # b's second half is lost for good; c and d wait, then the flow ends
    sink = run([(0, a), (12, b[:6]), (24, c), (36, d)])
    assert [op.transaction_id for _, op in sink.operations()] == [1, 3, 4]
    gaps = [x for x in sink.anomalies() if x.kind == "reassembly_gap"]
    assert len(gaps) == 1 and gaps[0].protocol == "modbus"
    assert "G" in sink.flows[0].history


def test_gap_mid_pdu_resyncs_on_the_next_plausible_header(run):
    a, b, c = read_request(1), read_request(2), read_request(3)
    # the hole swallows the start of b: the stream resumes 3 bytes into b
    sink = run([(0, a), (15, b[3:]), (24, c)])
    assert [op.transaction_id for _, op in sink.operations()] == [1, 3]


def data_of(pieces) -> list:
    return [p[0] for p in pieces]


def test_pending_bytes_are_capped_and_the_hole_is_skipped():
    s = StreamDirection()
    s.syn(0)
    assert data_of(s.push(1, b"x" * 10, 1, 0)) == [b"x" * 10]
    chunk = b"y" * 1000
    out: list = []
    seq, frame = 100, 2  # a hole from 11 to 100 that never fills
    while not out:
        out = s.push(seq, chunk, frame, 0)
        seq += len(chunk)
        frame += 1
        assert s.pending_bytes <= PENDING_CAP
    assert out[0] == (None, 2, 0)  # the gap shows where the stream resumed
    assert s.gaps == 1 and s.gap_bytes == 89
    assert b"".join(data_of(out[1:])) == chunk * ((seq - 100) // 1000)
    assert [p[1] for p in out[1:]] == list(range(2, frame))


def test_sequence_numbers_wrap():
    s = StreamDirection()
    s.syn(2**32 - 5)
    assert data_of(s.push(2**32 - 4, b"abcd", 1, 0)) == [b"abcd"]
    assert data_of(s.push(0, b"efgh", 2, 0)) == [b"efgh"]
    assert s.push(2**32 - 2, b"cdef", 3, 0) == []  # all old bytes: a retransmission
    assert s.retransmitted == 1
    assert data_of(s.push(2, b"ghij", 4, 0)) == [b"ij"]  # overlaps: only the new bytes
