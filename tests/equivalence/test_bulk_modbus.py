"""Modbus/TCP bulk decoder (ModbusTCP.bulk): the same rows as parse(), on every capture with Modbus, on the
benchmark capture, and on hand-built flows for each condition a unit relies on."""

from __future__ import annotations

import struct
from functools import partial

import pytest

from dissectors.bulk import dissect
from dissectors.modbus import MAX_VALUES, ModbusTCP
from tests.helpers import bulk_harness as harness
from tests.helpers.bulk_harness import bench_share, bulk_share, candidate, reference
from tests.helpers.paths import ROOT, SHARED, manifest

CAPTURES = [SHARED / row["path"] for row in manifest() if int(row["modbus"])] + [ROOT / "captures" / "demo-plant.pcap"]
# polling captures: the share of their PDUs that must get bulk rows (measured: 0.9998 and 0.916; the rest is a
# response without its request, and pipelined requests that reuse a tid or go unanswered)
POLLING = {"zeek_modbusBig.pcap": 0.99, "iti_ModbusTCP_large.pcap": 0.9}


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.name)
def test_captures(path, monkeypatch, tmp_path):
    assert bulk_share(path, ModbusTCP, monkeypatch, tmp_path) >= POLLING.get(path.name, 0)


def test_bench_capture(monkeypatch, tmp_path):
    """Polling with pipelined requests, split and retransmitted segments, writes now and then: all bulk."""
    assert bench_share(ModbusTCP, monkeypatch, tmp_path, more_than=5000) >= 0.99  # measured: 1.0


# --- hand-built flows ----------------------------------------------------------------------------------------------


def adu(tid: int, pdu: bytes, unit: int = 1) -> bytes:
    return struct.pack("!HHHB", tid, 0, len(pdu) + 1, unit) + pdu


def read(tid: int, fc: int = 3, address: int = 100, quantity: int = 4) -> bytes:
    return adu(tid, struct.pack("!BHH", fc, address, quantity))


def reply(tid: int, fc: int = 3, data: bytes = bytes(9)) -> bytes:
    return adu(tid, bytes([fc, len(data)]) + data, unit=7)


batch = partial(harness.hand_batch, ModbusTCP)  # flows of (from_orig, PDU), a fresh ModbusTCP() each
bulk_pdus = partial(harness.bulk_pdus, ModbusTCP)  # dissect() checked against parse(); PDUs with bulk rows


Q, R = True, False  # from_orig of a request and of a response (the client opened the connection)


def test_request_and_response():
    assert bulk_pdus([(Q, read(1)), (R, reply(1)), (Q, read(2, fc=1, quantity=1)), (R, reply(2, fc=1))]) == [0, 1, 2, 3]
    assert bulk_pdus([(Q, read(1, fc=2, quantity=0)), (R, reply(1, fc=2)),
                      (Q, read(2, fc=4)), (R, reply(2, fc=4))]) == [0, 1, 2, 3]  # fmt: skip


def test_server_opened_the_connection():
    assert bulk_pdus([(R, read(1)), (Q, reply(1))], client_is_orig=False) == [0, 1]
    assert bulk_pdus([(Q, read(1)), (R, reply(1))], client_is_orig=False) == []  # a response first, then a request


def test_response_must_answer_the_request():
    assert bulk_pdus([(Q, read(1)), (R, reply(2))]) == []  # another tid
    assert bulk_pdus([(Q, read(1)), (R, reply(1, fc=4))]) == []  # another function: nothing inherited
    assert bulk_pdus([(Q, read(1)), (Q, read(2))]) == []  # no response
    assert bulk_pdus([(Q, read(1))], [(R, reply(1))]) == []  # the response is on another flow
    assert bulk_pdus([(R, reply(1)), (Q, read(2)), (R, reply(2))]) == [1, 2]  # an unanswered response first


def test_exception_replies():
    flows = [(Q, read(1)), (R, adu(1, bytes([0x83, 0x02]))),  # ILLEGAL_DATA_ADDRESS
             (Q, read(2)), (R, adu(2, bytes([0x83]))),  # no exception code: EXCEPTION
             (Q, read(3)), (R, adu(3, bytes([0x83, 0x07])))]  # fmt: skip  # not in the table: EXCEPTION_7
    assert bulk_pdus(flows) == list(range(6))
    statuses = dissect(batch(flows), ModbusTCP.bulk).columns["status"].to_pylist()
    assert statuses == [None, "ILLEGAL_DATA_ADDRESS", None, "EXCEPTION", None, "EXCEPTION_7"]


def test_writes():
    values = struct.pack("!4H", 120, 35, 4, 900)
    flows = [
        (Q, adu(1, struct.pack("!BHHB", 16, 20, 4, 8) + values)), (R, adu(1, struct.pack("!BHH", 16, 20, 4))),
        (Q, adu(2, struct.pack("!BHH", 5, 7, 0xFF00))), (R, adu(2, struct.pack("!BHH", 5, 7, 0xFF00))),
        (Q, adu(3, struct.pack("!BHH", 6, 40, 1234))), (R, adu(3, struct.pack("!BHH", 6, 40, 1234))),
        (Q, adu(4, struct.pack("!BHHB", 15, 0, 10, 2) + b"\x09\x03")), (R, adu(4, struct.pack("!BHH", 15, 0, 10))),
        (Q, adu(5, struct.pack("!BHHB", 16, 0, 0, 0))), (R, adu(5, struct.pack("!BHH", 16, 0, 0))),
    ]  # fmt: skip
    assert bulk_pdus(flows) == list(range(10))
    details = harness.stored(dissect(batch(flows), ModbusTCP.bulk))["details"]
    assert details[::2] == ['{"values":[120,35,4,900]}', '{"values":[1]}', '{"values":[1234]}',
                            '{"values":[1,0,0,1,0,0,0,0,1,1]}', '{"values":[]}']  # fmt: skip
    assert details[1::2] == [None] * 5  # the response inherits what was asked, without the values


def test_fc16_values_must_all_be_there():
    many = struct.pack("!BHHB", 16, 0, 100, 200) + bytes(200)  # whole; only MAX_VALUES of the 100 kept in details
    assert MAX_VALUES < 100
    short = struct.pack("!BHHB", 16, 0, 4, 8) + bytes(4)  # two of four values
    assert bulk_pdus([(Q, adu(1, many)), (R, adu(1, struct.pack("!BHH", 16, 0, 100)))]) == [0, 1]
    assert bulk_pdus([(Q, adu(1, short)), (R, adu(1, struct.pack("!BHH", 16, 0, 4)))]) == []
    odd = batch([(Q, adu(1, short + b"\x01")), (R, adu(1, struct.pack("!BHH", 16, 0, 4)))])
    assert (ModbusTCP.bulk(odd).unit == -1).all()  # parse raises on an odd tail: the flow's failure is its own


def test_shorter_than_the_shape():
    assert bulk_pdus([(Q, adu(1, struct.pack("!BH", 3, 100) + b"\x00")), (R, reply(1))]) == []
    odd = batch([(Q, read(1)), (R, reply(1)[:7])])  # framing never cuts a PDU this short: parse is the judge
    assert (ModbusTCP.bulk(odd).unit == -1).all()


def test_functions_without_a_bulk_shape():
    mask_write = adu(1, struct.pack("!BHHH", 22, 4, 0xF2, 0x25))
    assert bulk_pdus([(Q, mask_write), (R, mask_write)]) == []
    mei = adu(2, bytes([43, 0x0E, 1, 0]))
    assert bulk_pdus([(Q, mei), (R, adu(2, bytes([43, 0x0E, 1, 1, 0, 0, 1, 0, 3]) + b"ACME"))]) == []


def test_pipelined_requests():
    three = [(Q, read(1)), (Q, read(2, fc=1)), (Q, read(3, address=7))]
    three += [(R, reply(1)), (R, reply(2, fc=1)), (R, reply(3))]
    assert bulk_pdus(three) == list(range(6))
    assert dissect(batch(three), ModbusTCP.bulk).columns["target"].to_pylist() == [
        "holding_registers 100-103", "coils 100-103", "holding_registers 7-10",
        "holding_registers 100-103", "coils 100-103", "holding_registers 7-10"]  # fmt: skip
    # answered out of order, a tid repeated (its entry replaced), one answer missing
    assert bulk_pdus([(Q, read(1)), (Q, read(2)), (R, reply(2)), (R, reply(1))]) == []
    assert bulk_pdus([(Q, read(1)), (Q, read(1, address=9)), (R, reply(1)), (R, reply(1))]) == []
    assert bulk_pdus([(Q, read(1)), (Q, read(2)), (R, reply(1)), (Q, read(3)), (R, reply(3))]) == []


def test_a_lost_response_keeps_the_flow_on_parse():
    """An unanswered request stays pending: what follows is parsed, however well formed."""
    flow = [(Q, read(1)), (Q, read(2)), (R, reply(2)), (Q, read(3)), (R, reply(3)), (Q, read(4)), (R, reply(4))]
    assert bulk_pdus(flow) == []
    assert bulk_pdus([(Q, read(1)), (R, reply(1))], flow, [(Q, read(5)), (R, reply(5))]) == [0, 1, 9, 10]


def test_a_flow_that_starts_non_idle():
    """A request pending from an earlier batch: units are parsed until its reply empties ``pending``."""
    earlier = (Q, read(9, address=50))
    later = [(Q, read(1)), (R, reply(1)), (R, reply(9)), (Q, read(2)), (R, reply(2))]
    want = reference(batch([earlier, *later]), ModbusTCP)[1:]
    b = batch(later)
    b.dissectors[0].parse(earlier[1], earlier[0])
    assert not b.dissectors[0].idle(True)
    assert ModbusTCP.bulk(b).unit.tolist() == [0, 0, -1, 3, 3]
    got, bulk = candidate(b, ModbusTCP)
    assert got == want and bulk == 2
    assert want[2][0][9] == 50  # the reply inherited the earlier request's address
