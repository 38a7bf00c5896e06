"""S7comm bulk decoder (S7comm.bulk): the same rows as parse(), on every capture the S7comm dissector sees, on the
benchmark capture, and on hand-built flows for each condition a unit relies on."""

from __future__ import annotations

import struct
from functools import partial

import numpy as np
import pytest

from dissectors.bulk import dissect
from dissectors.s7comm import S7comm, error_text
from dissectors.s7comm import bulk as s7bulk
from tests.helpers import bulk_harness as harness
from tests.helpers.bulk_harness import bench_share, bulk_share
from tests.helpers.paths import ROOT, SHARED, manifest

CAPTURES = [SHARED / row["path"] for row in manifest() if int(row["s7comm"]) or int(row["s7comm_plus"])]
CAPTURES.append(ROOT / "captures" / "demo-plant.pcap")
# polling captures: the share of their PDUs that must get bulk rows (measured: 0.998 and 0.9996; the rest is the
# connection set-up, and in s7comm_clean a first job parsed before the PLC is known and a few interleaved pipelines)
POLLING = {"s7comm_clean.pcap": 0.99, "s7comm_varservice_libnodavedemo_bench.pcap": 0.99}


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.name)
def test_captures(path, monkeypatch, tmp_path):
    assert bulk_share(path, S7comm, monkeypatch, tmp_path) >= POLLING.get(path.name, 0)


def test_bench_capture(monkeypatch, tmp_path):
    """Polling with 1-3 item reads, writes now and then, pipelined jobs, split and retransmitted segments."""
    # measured: 0.909; the rest is each connection's CR, CC and Setup Communication (70 connections)
    assert bench_share(S7comm, monkeypatch, tmp_path, more_than=2000) >= 0.9


# --- hand-built flows ----------------------------------------------------------------------------------------------
CLIENT, PLC = True, False


def dt(body: bytes, eot: bool = True, li: int = 2) -> bytes:
    """A TPKT holding one COTP DT (with ``li`` - 2 option bytes) and part or all of an S7 PDU."""
    cotp = bytes([li, 0xF0, 0x80 if eot else 0]) + bytes(li - 2)
    return struct.pack("!BBH", 3, 0, 4 + len(cotp) + len(body)) + cotp + body


def s7(rosctr: int, ref: int, param: bytes, data: bytes = b"", err: tuple[int, int] = (0, 0)) -> bytes:
    """An S7 PDU, without TPKT and COTP."""
    head = struct.pack("!BBHHHH", 0x32, rosctr, 0, ref, len(param), len(data))
    return head + (bytes(err) if rosctr == 3 else b"") + param + data


def item(tsize: int, length: int, db: int, area: int, byte: int, bit: int = 0) -> bytes:
    """An S7ANY item of a Read / Write Var job."""
    return (
        bytes([0x12, 0x0A, 0x10, tsize]) + struct.pack("!HHB", length, db, area) + (byte << 3 | bit).to_bytes(3, "big")
    )


def read(ref: int, *items: bytes) -> bytes:
    return dt(s7(1, ref, bytes([4, len(items)]) + b"".join(items)))


def values(*values: tuple[int, int, bytes]) -> bytes:
    """The data part of a Read Var answer: (return code, transport size, value) per item, fill bytes between."""
    out = b""
    for i, (rc, tsize, value) in enumerate(values):
        bits = len(value) * 8 if tsize == 4 else len(value)  # transport size 4 (BYTE/WORD/DWORD) counts bits
        out += bytes([rc, tsize]) + struct.pack("!H", bits) + value
        if len(value) % 2 and i < len(values) - 1:
            out += b"\0"
    return out


def answer(ref: int, *items: tuple[int, int, bytes], err: tuple[int, int] = (0, 0)) -> bytes:
    return dt(s7(3, ref, bytes([4, len(items)]), values(*items), err))


def write(ref: int, value: bytes) -> bytes:
    data = bytes([0, 4]) + struct.pack("!H", 8 * len(value)) + value
    return dt(s7(1, ref, bytes([5, 1]) + item(2, len(value), 1, 0x84, 16), data))


def write_ack(ref: int, rc: int = 0xFF) -> bytes:
    return dt(s7(3, ref, bytes([5, 1]), bytes([rc])))


DB1 = item(2, 4, 1, 0x84, 0)
SETUP = [(CLIENT, dt(s7(1, 0xFFFF, bytes([0xF0, 0]) + struct.pack("!HHH", 1, 1, 480)))),
         (PLC, dt(s7(3, 0xFFFF, bytes([0xF0, 0]) + struct.pack("!HHH", 1, 1, 240))))]  # fmt: skip


def poll(ref: int, value: bytes = b"\1\2\3\4") -> list[tuple[bool, bytes]]:
    return [(CLIENT, read(ref, DB1)), (PLC, answer(ref, (0xFF, 4, value)))]


batch = partial(harness.hand_batch, S7comm)  # flows of (from_orig, PDU), a fresh S7comm() each
bulk_pdus = partial(harness.bulk_pdus, S7comm)  # dissect() checked against parse(); PDUs with bulk rows


def test_polling():
    """Reads of 1-3 items (odd lengths with fill bytes, bits, counters), a write: all bulk, once the PLC is known."""
    three = (item(2, 3, 1, 0x84, 0), item(1, 1, 0, 0x83, 2, 5), item(0x1C, 2, 0, 0x1C, 0))
    flow = SETUP + poll(1) + poll(2, b"\5\6\7\x08")
    flow += [(CLIENT, read(3, *three)), (PLC, answer(3, (0xFF, 4, b"abc"), (0xFF, 3, b"\1"), (0xFF, 9, b"wxyz")))]
    flow += [(CLIENT, read(4, DB1, DB1)), (PLC, answer(4, (0xFF, 4, b"\1\2\3\4"), (0xFF, 4, b"\5\6\7\x08")))]
    flow += [(CLIENT, write(5, b"\0\0\0\1")), (PLC, write_ack(5))]
    assert bulk_pdus(flow) == list(range(2, 12))


def test_first_pair_reports_the_plc():
    """Without the set-up, the first answer says the PLC is there (an Identity): parsed; the next pair is bulk. The
    role is per side: jobs the PLC sends are answered by the other side, which is reported once too."""
    assert bulk_pdus(poll(1) + poll(2)) == [2, 3]
    reverse = [(not fo, p) for fo, p in poll(1) + poll(2)]
    assert bulk_pdus(SETUP + poll(1) + reverse) == [2, 3, 6, 7]


def test_errors_and_item_return_codes():
    """An error class in the header, a failed item, a refused write: bulk, with the status parse gives."""
    flow = [*SETUP, (CLIENT, read(1, DB1)), (PLC, answer(1, err=(0x81, 0x04)))]
    flow += [(CLIENT, read(2, DB1, DB1)), (PLC, answer(2, (0x0A, 0, b""), (0xFF, 4, b"\1\2\3\4")))]
    flow += [(CLIENT, write(3, b"\1\2\3\4")), (PLC, write_ack(3, rc=0x05))]
    assert bulk_pdus(flow) == list(range(2, 8))
    status = dissect(batch(flow), S7comm.bulk).columns["status"].to_pylist()
    assert status == [None, error_text(0x8104), None, "item 1: OBJECT_DOES_NOT_EXIST", None,
                      "item 1: INVALID_ADDRESS"]  # fmt: skip


def test_reference_mismatch():
    """An answer with another PDU reference than its job's answers nothing: parsed, and the job stays open, so the
    flow is no longer idle and its later pairs are parsed too."""
    flow = [*SETUP, (CLIENT, read(1, DB1)), (PLC, answer(2, (0xFF, 4, b"\1\2\3\4"))), *poll(3)]
    assert bulk_pdus(flow) == []


def test_pipelined_jobs():
    """Jobs sent back to back, answered in order: one unit. Answered out of order, or with a reference used twice:
    parsed (the second job with a reference takes the first one's place)."""
    jobs = [(CLIENT, read(ref, DB1)) for ref in (1, 2, 3)]
    acks = [(PLC, answer(ref, (0xFF, 4, b"\1\2\3\4"))) for ref in (1, 2, 3)]
    assert bulk_pdus(SETUP + jobs + acks + poll(4)) == list(range(2, 10))
    assert bulk_pdus(SETUP + jobs + acks[::-1] + poll(4)) == [8, 9]
    twice = [(CLIENT, read(7, DB1)), (CLIENT, read(7, DB1))] + [(PLC, answer(7, (0xFF, 4, b"\1\2\3\4")))] * 2
    assert bulk_pdus(SETUP + twice + poll(4)) == [6, 7]


def test_shapes_left_to_parse():
    """What the bulk decoder does not take, each in its own flow followed by a plain pair: parsed. The pair after
    is bulk where the flow is idle again."""
    job, ack = read(1, DB1), answer(1, (0xFF, 4, b"\1\2\3\4"))
    cut = job[:-3]
    padded = dt(s7(3, 1, bytes([4, 1]), values((0xFF, 4, b"\1\2")) + b"\0"))
    body = s7(1, 1, bytes([4, 1]) + DB1)
    flows = {  # name: (PDUs, idle after)
        "S7 lengths past the TPKT": ([(CLIENT, cut[:2] + struct.pack("!H", len(cut)) + cut[4:]), (PLC, ack)], True),
        "bytes after the items": ([(CLIENT, job), (PLC, padded)], True),
        "answer from the job's side": ([(CLIENT, job), (CLIENT, ack)], False),
        "job in two DT units": ([(CLIENT, dt(body[:9], eot=False)), (CLIENT, dt(body[9:])), (PLC, ack)], True),
        "COTP DT with an option": ([(CLIENT, dt(body, li=3)), (PLC, ack)], True),
        "set-up": (SETUP, True),
        "S7 header cut short": ([(CLIENT, dt(body[:6]))], True),
    }  # fmt: skip
    got = bulk_pdus(*(SETUP + pdus + poll(9) for pdus, _ in flows.values()))
    expected, offset = [], 0
    for pdus, idle in flows.values():
        offset += len(SETUP) + len(pdus)
        expected += [offset, offset + 1] if idle else []
        offset += 2
    assert got == expected
    assert bulk_pdus(SETUP + poll(1) + [(CLIENT, dt(body[:6]))]) == [2, 3]  # a short PDU at the end of the data


def test_hash_collisions_are_left_to_parse(monkeypatch):
    """Pairs whose keys hash alike but differ are told apart: with every hash equal, only the pairs keyed like the
    first one get bulk rows."""
    monkeypatch.setattr(s7bulk, "_MIX", np.uint64(0))
    two = [(CLIENT, read(2, DB1, DB1)), (PLC, answer(2, *[(0xFF, 4, b"\1\2\3\4")] * 2))]
    assert bulk_pdus(SETUP + poll(1) + two + poll(3)) == [2, 3, 6, 7]
