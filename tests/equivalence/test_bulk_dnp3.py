"""DNP3 bulk decoder (DNP3.bulk): the same rows as parse(), on every capture with DNP3, on the benchmark capture,
and on hand-built flows for each condition a READ / RESPONSE pair relies on."""

from __future__ import annotations

import random
import struct
from functools import partial

import pytest

from dissectors.bulk import dissect
from dissectors.dnp3 import DNP3, OBJECT_SIZES, PACKED_BITS
from tests.helpers import bulk_harness as harness
from tests.helpers.bulk_harness import bench_share, bulk_share
from tests.helpers.dnp3 import link_frame as frame
from tests.helpers.paths import ROOT, SHARED, manifest

CAPTURES = [SHARED / row["path"] for row in manifest() if int(row["dnp3"])] + [ROOT / "captures" / "demo-plant.pcap"]
MASTER, OUTSTATION = 3, 1024


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.name)
def test_captures(path, monkeypatch, tmp_path):
    bulk_share(path, DNP3, monkeypatch, tmp_path)


def test_bench_capture(monkeypatch, tmp_path):
    """Integrity and event polls with their responses, split and retransmitted segments: all bulk but the first
    pair of each flow, which reports the roles (50 flows here)."""
    # measured: 0.947 (0.995 on 200,000 packets)
    assert bench_share(DNP3, monkeypatch, tmp_path, more_than=1500) >= 0.94


# --- hand-built flows ----------------------------------------------------------------------------------------------


CLASS0, CLASS123 = b"\x3c\x01\x06", b"\x3c\x02\x06\x3c\x03\x06\x3c\x04\x06"
STATIC = (
    b"\x01\x02\x00\x00\x07" + bytes(8)  # g1v2 0-7
    + b"\x1e\x02\x00\x00\x05" + bytes(18)  # g30v2 0-5
    + b"\x0a\x02\x00\x00\x01" + bytes(2)  # g10v2 0-1
)  # fmt: skip


def read(seq: int, objects: bytes = CLASS123, ac: int = 0xC0, src: int = MASTER, dst: int = OUTSTATION) -> bytes:
    return frame(src, dst, bytes([0xC0 | seq & 0x3F, ac | seq & 0x0F, 0x01]) + objects)


def answer(seq: int, objects: bytes = b"", iin: int = 0, ac: int = 0xC0, src: int = OUTSTATION, dst: int = MASTER,
           fc: int = 0x81) -> bytes:  # fmt: skip
    return frame(src, dst, bytes([0xC0 | seq & 0x3F, ac | seq & 0x0F, fc]) + struct.pack(">H", iin) + objects, 0x44)


def poll(seq: int, request: bytes = CLASS123, response: bytes = b"", **kw) -> list[tuple[bool, bytes]]:
    return [(True, read(seq, request)), (False, answer(seq, response, **kw))]


batch = partial(harness.hand_batch, DNP3)  # flows of (from_orig, PDU), a fresh DNP3() each
bulk_pdus = partial(harness.bulk_pdus, DNP3)  # dissect() checked against parse(); PDUs with bulk rows


def test_pairs_after_the_first():
    """The first pair of a flow reports both roles: parsed. The pairs after it are bulk, in any poll shape."""
    flow = poll(1, CLASS0, STATIC) + poll(2) + poll(3, CLASS0, STATIC) + poll(4, iin=0x8000 | 0x0200 | 0x0010)
    assert bulk_pdus(flow) == [2, 3, 4, 5, 6, 7]
    assert bulk_pdus(poll(1)) == []


def test_roles_per_address_pair():
    """A second master address on the flow has its own first pair, parsed (its role is news); a second flow
    repeats its roles, which its own dissector has not reported."""
    other = [(True, read(7, src=4)), (False, answer(7, dst=4))]
    assert bulk_pdus(poll(1) + poll(2) + other + poll(3) + other + poll(4)) == [2, 3, 6, 7, 8, 9, 10, 11]
    assert bulk_pdus(poll(1) + poll(2), poll(1) + poll(2)) == [2, 3, 6, 7]


def test_roles_reported_in_an_earlier_batch():
    """A flow whose dissector reported both roles before this batch (an earlier chunk) needs no first pair
    parsed: every pair is bulk, with parse's rows. A third address on it is news again."""
    d = DNP3()
    earlier, later = batch(poll(1)), batch(poll(2) + poll(3) + [(True, read(4, src=4)), (False, answer(4, dst=4))])
    earlier.dissectors[0] = later.dissectors[0] = d
    dissect(earlier, DNP3.bulk)
    reference = DNP3()
    for fo, pdu in poll(1):
        reference.parse(pdu, fo)
    want = [[harness._row(r) for r in reference.parse(later.pdu(i), bool(later.from_orig[i]))] for i in range(6)]
    got, bulk = harness.candidate(later, DNP3)
    assert got == want
    assert sorted(set(dissect(batch(poll(2) + poll(3)), DNP3.bulk).pdu.tolist())) == [2, 3]  # a fresh flow: seeded
    assert bulk == 4 and any(r[0] != "op" for r in got[4])  # the pairs of the known roles; the new master's Identity


def test_response_must_answer_the_request():
    """Another sequence, swapped addresses that do not match, the same side, or not the next frame: parsed. (The
    READ these leave pending keeps the flow's later pairs parsed, until its sequence number comes round again.)"""
    assert bulk_pdus([*poll(1), (True, read(2)), (False, answer(3)), *poll(4)]) == []
    assert bulk_pdus([*poll(1), (True, read(2)), (False, answer(3)), *poll(4), *poll(18), *poll(5)]) == [8, 9]
    assert bulk_pdus([*poll(1), (True, read(2)), (False, answer(2, src=9))]) == []
    assert bulk_pdus([*poll(1), (True, read(2)), (True, answer(2))]) == []
    assert bulk_pdus([*poll(1), (True, read(2)), (True, read(3)), (False, answer(3)), (False, answer(2))]) == []


def test_flags_and_addresses_left_to_parse():
    """CON, UNS, a multi-fragment application header, broadcast, other functions, link functions: parsed."""
    for request, response in (
        (read(2, ac=0xE0), answer(2)),  # CON
        (read(2), answer(2, ac=0xD0)),  # UNS
        (read(2, ac=0x80), answer(2)),  # FIR without FIN
        (read(2, dst=0xFFFF), answer(2, src=0xFFFF)),  # broadcast
        (frame(MASTER, OUTSTATION, bytes([0xC2, 0xC2, 0x02]) + b"\x50\x01\x00\x07\x07\x00"), answer(2)),  # WRITE
        (frame(MASTER, OUTSTATION, bytes([0xC2, 0xC2, 0x01]) + CLASS123, ctrl=0xC9), answer(2)),  # link function 9
    ):
        assert bulk_pdus([*poll(1), (True, request), (False, response), *poll(3)]) == [4, 5]
    assert bulk_pdus([*poll(1), (False, answer(5, fc=0x82)), *poll(2), *poll(3)]) == [3, 4, 5, 6]  # unsolicited


def test_bad_crc_is_an_anomaly():
    """A frame whose header or a data block fails its CRC is an anomaly from parse: never in a unit (a lost
    RESPONSE leaves its READ pending: the next pair is parsed too)."""
    good = answer(2, STATIC)
    bad_block = bytearray(good)
    bad_block[30] ^= 1  # in the second data block
    bad_header = bytearray(good)
    bad_header[5] ^= 1  # DST
    for broken in (bytes(bad_block), bytes(bad_header)):
        assert bulk_pdus([*poll(1), (True, read(2)), (False, broken), *poll(3)]) == []
    bad_request = bytearray(read(2))
    bad_request[-3] ^= 1
    assert bulk_pdus([*poll(1), (True, bytes(bad_request)), (False, answer(2)), *poll(3)]) == [4, 5]


def test_objects():
    """Qualifiers with ranges, counts and index prefixes, packed bits, objects across data blocks; READ headers with
    ranges. What parse_objects would stop at is left to parse: truncated or trailing data, a size it does not know,
    controls, a READ of time objects, values over 16 bits."""
    events = b"\x02\x02\x28\x02\x00" + b"\x05\x00\x81" + bytes(6) + b"\x09\x00\x01" + bytes(6)  # g2v2, 2-byte index
    counters = b"\x14\x01\x17\x02" + b"\x03" + bytes(5) + b"\x07" + bytes(5)  # g20v1, count 2, 1-byte index
    bits = b"\x01\x01\x01\x00\x00\x09\x00" + b"\xff\x01"  # g1v1 packed, 16-bit range 0-9
    analog = b"\x1e\x01\x00\x00\x03" + bytes(20)  # g30v1 0-3
    header_reads = b"\x1e\x02\x00\x00\x05" + b"\x14\x00\x06" + b"\x01\x02\x07\x03"
    flow = poll(1) + poll(2, CLASS0, events + counters + bits + analog) + poll(3, header_reads, STATIC)
    assert bulk_pdus(flow) == [2, 3, 4, 5]
    for request, response in (
        (CLASS123, STATIC[:-1]),  # g10v2 data cut short
        (CLASS123, STATIC + b"\x00"),  # a trailing byte
        (CLASS123, b"\x63\x01\x00\x00\x01\x00\x00"),  # g99v1: size unknown
        (CLASS123, b"\x0c\x01\x28\x01\x00\x00\x00\x41\x01" + bytes(9)),  # g12v1 control block
        (CLASS123, b"\x1e\x02\x01\x00\x00\x00\x01" + bytes(6)),  # 16-bit range 0-256 of g30v2: too short
        (b"\x32\x01\x07\x01" + bytes(6), b""),  # READ of g50v1 time
        (b"\x1e\x02\x02\x00\x00\x00\x00\x00\x00\x01\x00", b""),  # 32-bit range up to 65536
        (b"\x46\x03\x06", b""),  # g70: file transfer, program access
        (b"\x3c\x02\x06" * 17, b""),  # more object headers than bulk walks
    ):
        assert bulk_pdus(poll(1) + poll(2, request, response) + poll(3)) == [4, 5]


def test_short_and_link_only_frames():
    """Frames too short for a fragment (link status, ACK) and an empty application fragment are parsed; the pairs
    around them stay bulk."""
    link_status = frame(MASTER, OUTSTATION, b"", ctrl=0xC9)
    ack = frame(OUTSTATION, MASTER, b"", ctrl=0x00)
    empty = frame(MASTER, OUTSTATION, b"\xc2")
    flow = [*poll(1), (True, link_status), (False, ack), *poll(2), (True, empty), *poll(3)]
    assert bulk_pdus(flow) == [4, 5, 7, 8]


def test_flow_not_idle():
    """A READ left unanswered stays pending (its sequence could come back): the flow's pairs are parsed. A
    fragment in reassembly makes the first pair with its addresses parsed (it abandons it); then bulk."""
    assert bulk_pdus([(True, read(9)), *poll(1), *poll(2), *poll(3)]) == []
    partial = frame(MASTER, OUTSTATION, bytes([0x40, 0xC0, 0x01]) + CLASS0)  # FIR, no FIN
    assert bulk_pdus([*poll(1), (True, partial), *poll(2), *poll(3)]) == [5, 6]


def test_idle():
    d = DNP3()
    assert d.idle(True)
    d.parse(read(1), True)
    assert not d.idle(False)
    d.parse(answer(1), False)
    assert d.idle(True)


def test_units():
    """A unit is a READ and its RESPONSE; seeds and everything else are -1."""
    rows = DNP3.bulk(batch(poll(1) + poll(2) + [(True, read(3))]))
    assert rows.unit.tolist() == [-1, -1, 2, 2, -1]
    assert rows.pdu.tolist() == [2, 3]
    assert harness.stored(rows)["details"][1] == ('{"src":1024,"dst":3,"iin":0,"fc_request":"READ"}')


def test_random_flows():
    """Random polls (object headers of any qualifier, sized right or off by one, IIN bits, flags, flipped bits,
    lost frames): dissect() equals parse() whatever bulk takes."""
    rng = random.Random(20000)
    codes = [*OBJECT_SIZES, *PACKED_BITS, 0x6301, 0x0C01, 0x3201, 0x4603]
    quals = [0x00, 0x01, 0x02, 0x06, 0x07, 0x08, 0x09, 0x17, 0x28, 0x39, 0x0B, 0x80, rng.randrange(256)]

    def header(response: bool) -> bytes:
        code, qual = rng.choice(codes), rng.choice(quals)
        width = {0: 1, 1: 2, 2: 4, 7: 1, 8: 2, 9: 4, 11: 1}.get(qual & 0x0F, 0)  # of a range value or a count
        count = rng.randrange(5)
        if qual & 0x0F <= 2:  # a range, sometimes past 16 bits, or reversed (count 0)
            low = rng.choice([0, 3, 65535, 70000]) % (1 << 8 * width)
            values = [low, (low + count - 1) % (1 << 8 * width)]
        else:
            values = [count] if width else []
        size = count * (OBJECT_SIZES.get(code, 1) + (0, 1, 2, 4)[qual >> 4 & 3]) + rng.choice([0] * 8 + [-1, 1])
        field = b"".join(v.to_bytes(width, "little") for v in values)
        return bytes([code >> 8, code & 0xFF, qual]) + field + (rng.randbytes(max(size, 0)) if response else b"")

    def pair(seq: int) -> list[tuple[bool, bytes]]:
        ac = rng.choice([0xC0] * 30 + [0xE0, 0xD0, 0x80])
        request = read(seq, rng.choice([CLASS0, CLASS123, b"".join(header(False) for _ in range(rng.randrange(3)))]))
        objects = b"".join(header(True) for _ in range(rng.randrange(4)))[:180]
        response = answer(seq, objects, iin=rng.choice([0, 0, rng.randrange(65536)]), ac=ac)
        out = [(True, request), (False, response)]
        for k in range(2 if rng.random() < 0.03 else 0):
            broken = bytearray(out[k][1])
            broken[rng.randrange(len(broken))] ^= 1
            out[k] = (out[k][0], bytes(broken))
        return out[: 1 if rng.random() < 0.02 else 2]

    flows = [[p for seq in range(rng.randrange(2, 40)) for p in pair(seq)] for _ in range(150)]
    assert bulk_pdus(*flows)
