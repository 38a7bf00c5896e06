"""EtherNet/IP bulk decoder (EtherNetIP.bulk): the same rows as parse(), on every capture with EtherNet/IP, on the
benchmark capture, and on hand-built flows for each condition a unit relies on."""

from __future__ import annotations

import struct
from functools import partial

import numpy as np
import pytest

from dissectors.bulk import dissect
from dissectors.enip import EtherNetIP
from tests.helpers import bulk_harness as harness
from tests.helpers.bulk_harness import bench_share, bulk_share, candidate, reference
from tests.helpers.enip import enip, logical, msp, reply, request, rr, symbol
from tests.helpers.paths import ROOT, SHARED, manifest

CAPTURES = [SHARED / row["path"] for row in manifest() if int(row["enip"]) or int(row["cip"])]
CAPTURES.append(ROOT / "captures" / "demo-plant.pcap")


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.name)
def test_captures(path, monkeypatch, tmp_path):
    bulk_share(path, EtherNetIP, monkeypatch, tmp_path)


def test_bench_capture(monkeypatch, tmp_path):
    """Read Tag polling with Write Tag now and then, pipelined requests, split and retransmitted segments."""
    # measured: 0.951, the rest is RegisterSession (parsed): 5% of the PDUs of a capture this short, 0.5% of a
    # 200,000-packet one
    assert bench_share(EtherNetIP, monkeypatch, tmp_path, more_than=2000) >= 0.94


# --- hand-built flows ----------------------------------------------------------------------------------------------


def ctx(k: int) -> bytes:
    return struct.pack("<Q", k)


def read(k: int, tag: str = "Filter_DP", elements: int = 1) -> bytes:
    return rr(request(0x4C, symbol(tag), struct.pack("<H", elements)), context=ctx(k))


def write(k: int, tag: str = "Setpoint", dtype: int = 0xCA, value: bytes = struct.pack("<Hf", 1, 3.5)) -> bytes:
    return rr(request(0x4D, symbol(tag), struct.pack("<H", dtype) + value), context=ctx(k))


def answer(k: int, service: int = 0x4C, status: int = 0, extended: tuple[int, ...] = (), data: bytes = b"") -> bytes:
    return rr(reply(service, status, extended, data), context=ctx(k))


def value(k: int) -> bytes:
    return answer(k, data=struct.pack("<Hf", 0xCA, 0.62))


batch = partial(harness.hand_batch, EtherNetIP)  # flows of (from_orig, PDU), a fresh EtherNetIP() each
bulk_pdus = partial(harness.bulk_pdus, EtherNetIP)  # dissect() checked against parse(); PDUs with bulk rows


def column(name: str, *flows: list[tuple[bool, bytes]]) -> list:
    return harness.stored(dissect(batch(*flows), EtherNetIP.bulk))[name]


Q, R = True, False  # from_orig of a request and of a reply


def test_read_and_write_tag():
    flow = [(Q, read(1)), (R, value(1)), (Q, write(2)), (R, answer(2, 0x4D)), (Q, read(3, "Program:Main.Pos", 8)),
            (R, answer(3, data=bytes(34)))]  # fmt: skip
    assert bulk_pdus(flow) == list(range(6))
    assert column("target", flow) == [None, "Filter_DP", None, "Filter_DP", None, "Setpoint", None, "Setpoint", None,
                                      "Program:Main.Pos", None, "Program:Main.Pos"]  # fmt: skip
    assert column("quantity", flow) == [None, 1, None, None, None, 1, None, None, None, 8, None, None]
    assert column("details", flow)[5] == '{"enip_command":"SEND_RR_DATA","symbol":"Setpoint","data_type":"0x00ca"}'


def test_plain_messages_leave_the_session_as_it_was():
    """No running number on a plain message (only containers are numbered), and its reply pops its request."""
    d = EtherNetIP()
    for pdu, from_orig in ((read(1), Q), (value(1), R)):
        (_, op) = d.parse(pdu, from_orig)
        assert "cip_index" not in op.details
    assert not d.cip.pending and d.cip.index == 0 and d.idle(True)
    (_, container, *embedded) = d.parse(rr(msp(request(0x4C, symbol("A"), b"\x01\x00"))), Q)
    assert container.details["cip_index"] == 1 and embedded[0].details["container_index"] == 1
    assert "cip_index" not in embedded[0].details and not d.idle(True)


def test_reply_must_answer_the_request():
    assert bulk_pdus([(Q, read(1)), (R, value(2))]) == []  # another sender context
    assert bulk_pdus([(Q, read(1)), (R, answer(1, 0x4D))]) == []  # another service
    assert bulk_pdus([(Q, read(1)), (Q, read(2))]) == []  # no reply
    assert bulk_pdus([(Q, read(1))], [(R, value(1))]) == []  # the reply is on another flow
    assert bulk_pdus([(R, value(7)), (Q, read(1)), (R, value(1))]) == [1, 2]  # an unpaired reply first


def test_error_replies():
    flow = [(Q, read(1)), (R, answer(1, status=0x04)), (Q, read(2)), (R, answer(2, status=0x05)),
            (Q, read(3)), (R, answer(3, status=0x77)), (Q, write(4)), (R, answer(4, 0x4D, status=0x0F))]  # fmt: skip
    assert bulk_pdus(flow) == list(range(8))
    assert column("status", flow)[3::4] == ["PATH_SEGMENT_ERROR", "PATH_DESTINATION_UNKNOWN", "UNKNOWN_STATUS_0x77",
                                            "PRIVILEGE_VIOLATION"]  # fmt: skip
    # additional status words (Logix: 0xFF with an extended code) are parsed
    assert bulk_pdus([(Q, read(1)), (R, answer(1, status=0xFF, extended=(0x2105,)))]) == []


def test_paths_and_data_without_a_bulk_shape():
    member = rr(request(0x4C, symbol("Tank") + symbol("Level"), b"\x01\x00"), context=ctx(1))
    element = rr(request(0x4C, symbol("Array") + bytes([0x28, 3]), b"\x01\x00"), context=ctx(1))
    by_class = rr(request(0x4C, logical(0x6B, 1), b"\x01\x00"), context=ctx(1))
    structure = write(1, dtype=0x02A0, value=struct.pack("<HH", 0x1234, 1) + bytes(8))
    extra_data = rr(request(0x4C, symbol("Tag"), b"\x01\x00\x00\x00"), context=ctx(1))
    for pdu in (member, element, by_class, structure, extra_data):
        assert bulk_pdus([(Q, pdu), (R, value(1))]) == [], pdu.hex()


def test_any_tag_name():
    """Name bytes are latin-1 text to parse(): quotes, backslashes, control and high bytes are escaped alike."""
    for tag in ('Say"hi"', "Back\\slash", "Temp\u00e9rature", "Tab\tbed", "\u00ff", "A" * 255):
        flow = [(Q, read(1, tag)), (R, value(1)), (Q, write(2, tag)), (R, answer(2, 0x4D))]
        assert bulk_pdus(flow) == [0, 1, 2, 3], tag


def test_many_distinct_values():
    """Tags, lengths, timeouts, interface handles, data types and statuses: each row gets its own."""
    flow = []
    for k in range(300):
        tag = f"Tag_{k}" + "x" * (k % 7)
        cip = request(0x4D, symbol(tag), struct.pack("<HHI", k % 5 + 0xC1, 1, k)) if k % 3 else request(
            0x4C, symbol(tag), struct.pack("<H", k))  # fmt: skip
        data = struct.pack("<IH", k * 7919, k % 11) + struct.pack("<HHHHH", 2, 0, 0, 0xB2, len(cip)) + cip
        flow.append((Q, enip(0x6F, data, k, context=ctx(k))))
        flow.append((R, answer(k, 0x4D if k % 3 else 0x4C, status=k % 4)))
    assert bulk_pdus(flow) == list(range(600))
    targets = column("target", flow)[1::2]
    assert targets[:4] == ["Tag_0", "Tag_0", "Tag_1x", "Tag_1x"] and targets[-1] == "Tag_299xxxxx"


def test_pdus_inside_a_larger_buffer():
    """A batch's data may be a whole chunk of a capture: PDUs anywhere in it, the last one at its very end (where
    the longest name's width, from the last request's name, runs past it)."""
    flow = [(Q, read(1, "L" * 200)), (R, value(1)), (Q, read(2, "A")), (R, value(2)), (Q, read(3, "B"))]
    b = batch(flow)
    junk, pos, starts = bytearray(b"\xff" * 7), 7, []
    for i in range(len(flow)):
        starts.append(pos)
        junk += b.pdu(i) + b"\x91" * 5
        pos += int(b.length[i]) + 5
    junk = junk[:-5]  # the last PDU ends the buffer
    b.data, b.start = np.frombuffer(bytes(junk), np.uint8), np.array(starts, np.int64)
    assert EtherNetIP.bulk(b).unit.tolist() == [0, 0, 2, 2, -1]
    got, bulk = candidate(b, EtherNetIP)
    assert got == reference(batch(flow), EtherNetIP) and bulk == 4
    b.length, b.start, b.flow, b.from_orig = b.length[:4], b.start[:4], b.flow[:4], b.from_orig[:4]
    b.data = b.data[: b.start[3] + b.length[3]]  # now the last unit's reply ends it
    b.dissectors = [EtherNetIP()]
    got, bulk = candidate(b, EtherNetIP)
    assert got == reference(batch(flow[:4]), EtherNetIP) and bulk == 4
    tail = batch([(Q, read(3, "B")), (R, value(3))])
    tail.data = tail.data[:-1]  # a reply cut short by the end of data: never taken
    tail.length[1] -= 1
    assert (EtherNetIP.bulk(tail).unit == -1).all()


def test_encapsulation_must_be_the_plain_shape():
    cip = request(0x4C, symbol("Tag"), b"\x01\x00")
    items = struct.pack("<IH", 0, 10) + struct.pack("<HHHHH", 2, 0, 0, 0xB2, len(cip)) + cip
    assert bulk_pdus([(Q, enip(0x6F, items, 1, context=ctx(1))), (R, value(1))]) == [0, 1]
    assert bulk_pdus([(Q, enip(0x6F, items, 1, status=1, context=ctx(1))), (R, value(1))]) == []
    with_options = enip(0x6F, items, 1, context=ctx(1))[:20] + b"\x01\x00\x00\x00" + items
    assert bulk_pdus([(Q, with_options), (R, value(1))]) == []
    assert bulk_pdus([(Q, enip(0x6F, items + b"\x00\x00", 1, context=ctx(1))), (R, value(1))]) == []  # trailing bytes
    three = struct.pack("<IH", 0, 10) + struct.pack("<HHHHH", 3, 0, 0, 0xB2, len(cip)) + cip + b"\x00\x01\x00\x00"
    assert bulk_pdus([(Q, enip(0x6F, three, 1, context=ctx(1))), (R, value(1))]) == []
    unit_data = enip(0x70, items, 1, context=ctx(1))
    assert bulk_pdus([(Q, unit_data), (R, value(1))]) == []


def test_shorter_than_the_shape():
    assert bulk_pdus([(Q, read(1)), (R, rr(bytes([0xCC, 0, 0]), context=ctx(1)))]) == []  # a 3-byte CIP reply
    assert bulk_pdus([(Q, rr(bytes([0x4C, 0]), context=ctx(1))), (R, value(1))]) == []  # no path
    assert bulk_pdus([(Q, read(1)[:43]), (R, value(1))]) == []  # cut inside the tag name
    assert (EtherNetIP.bulk(batch([(Q, enip(0x65, b"\x01\x00\x00\x00"))])).unit == -1).all()
    cut = rr(request(0x4C, symbol("Filter_DP"))[:-3], context=ctx(1))  # the path claims more than there is
    assert bulk_pdus([(Q, cut), (R, value(1))]) == []


def test_pipelined_requests():
    four = [(Q, read(1, "A")), (Q, read(2, "B")), (Q, write(3, "C")), (Q, read(4, "D", 2))]
    four += [(R, value(1)), (R, value(2)), (R, answer(3, 0x4D)), (R, value(4))]
    assert bulk_pdus(four) == list(range(8))
    assert column("target", four)[1::2] == ["A", "B", "C", "D"] * 2
    five = [(Q, read(k)) for k in range(5)] + [(R, value(k)) for k in range(5)]
    assert bulk_pdus(five) == []  # more than _MAX_PIPELINED
    assert bulk_pdus([(Q, read(1)), (Q, read(2)), (R, value(2)), (R, value(1))]) == []  # answered out of order
    # the same sender context on every request: replies pair first in, first out, as they do in parse()
    same = [(Q, read(0, "A")), (Q, read(0, "B")), (R, value(0)), (R, value(0)), (Q, read(0, "C")), (R, value(0))]
    assert bulk_pdus(same) == list(range(6))
    assert column("target", same)[1::2] == ["A", "B", "A", "B", "C", "C"]


def test_a_lost_reply_keeps_the_flow_on_parse():
    """An unanswered request stays pending: what follows is parsed, however well formed."""
    flow = [(Q, read(1)), (Q, read(2)), (R, value(2)), (Q, read(3)), (R, value(3))]
    assert bulk_pdus(flow) == []
    assert bulk_pdus([(Q, read(8)), (R, value(8))], flow, [(Q, read(9)), (R, value(9))]) == [0, 1, 7, 8]


def test_a_flow_that_starts_non_idle():
    """A request pending from an earlier batch: units are parsed until its reply empties ``pending``."""
    earlier = (Q, read(9, "Earlier"))
    later = [(Q, read(1)), (R, value(1)), (R, value(9)), (Q, read(2)), (R, value(2))]
    want = reference(batch([earlier, *later]), EtherNetIP)[1:]
    b = batch(later)
    b.dissectors[0].parse(earlier[1], earlier[0])
    assert not b.dissectors[0].idle(True)
    assert EtherNetIP.bulk(b).unit.tolist() == [0, 0, -1, 3, 3]
    got, bulk = candidate(b, EtherNetIP)
    assert got == want and bulk == 2
    assert want[2][1][11] == "Earlier"  # the reply inherited the earlier request's tag


def test_session_commands_are_parsed():
    register = enip(0x65, b"\x01\x00\x00\x00")
    flow = [(Q, register), (R, enip(0x65, b"\x01\x00\x00\x00", 0x1234)), (Q, read(1)), (R, value(1)),
            (Q, enip(0x66, session=0x1234))]  # fmt: skip
    assert bulk_pdus(flow) == [2, 3]
