"""CIP implicit I/O bulk decoder (CipIO.bulk): the same rows as parse(), on every capture with CIP I/O, on the
benchmark capture, and on hand-built datagrams at the edges of the shape it decodes."""

from __future__ import annotations

import struct

import pytest

from dissectors.enip import CipIO
from tests.helpers import bulk_harness as harness
from tests.helpers.bulk_harness import assert_bulk_matches, bench_share, recorded_batch
from tests.helpers.paths import ROOT, SHARED, manifest

CAPTURES = [SHARED / row["path"] for row in manifest() if int(row["cipio"])] + [ROOT / "captures" / "demo-plant.pcap"]


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.name)
def test_captures(path, monkeypatch, tmp_path):
    batch = recorded_batch(path, CipIO, monkeypatch, tmp_path)
    assert assert_bulk_matches(batch, CipIO) == len(batch.start)  # the demo plant has none


def test_bench_capture(monkeypatch, tmp_path):
    assert bench_share(CipIO, monkeypatch, tmp_path, more_than=1000) >= 0.99  # measured: 1.0


# --- hand-built datagrams ------------------------------------------------------------------------------------------


def cpf(*items: tuple[int, bytes], count: int | None = None) -> bytes:
    body = b"".join(struct.pack("<HH", t, len(d)) + d for t, d in items)
    return struct.pack("<H", len(items) if count is None else count) + body


def io(connection: int = 0x004B0603, sequence: int = 4166875, data: bytes = bytes.fromhex("a587e80f0300")) -> bytes:
    return cpf((0x8002, struct.pack("<II", connection, sequence)), (0x00B1, data))


def bulk_pdus(*datagrams: bytes, client_is_orig: bool = True) -> list[int]:
    """Check dissect() against parse() on these datagrams (one flow, alternating sides): those that got bulk rows."""
    flow = [(i % 2 == 0, d) for i, d in enumerate(datagrams)]
    return harness.bulk_pdus(CipIO, flow, client_is_orig=client_is_orig)


def test_class_1_datagrams():
    datagrams = [io(), io(0xFFFFFFFF, 0xFFFFFFFF, b"\xff\xff"), io(0, 0, b"\x00\x00"), io(data=bytes(500))]
    assert bulk_pdus(*datagrams) == [0, 1, 2, 3]
    assert bulk_pdus(*datagrams, client_is_orig=False) == [0, 1, 2, 3]
    assert bulk_pdus(io() + b"\x01\x02\x03") == [0]  # bytes after the items: parse ignores them too


def test_other_shapes_are_parsed():
    others = [
        io(data=b"\x01"),  # no CIP sequence count
        io(data=b""),
        io()[:-1],  # the data item is cut short: an anomaly
        cpf((0x00A1, struct.pack("<I", 7)), (0x00B1, b"\x01\x00\x02")),  # connected address, no sequence number
        cpf((0x00B1, b"\x01\x00"), (0x8002, struct.pack("<II", 1, 2))),  # data item first
        cpf((0x8002, struct.pack("<II", 1, 2)), (0x00B1, b"\x01\x00"), (0x00B1, b"\x02\x00")),  # three items
        cpf((0x8002, struct.pack("<II", 1, 2)), (0x00B1, b"\x01\x00"), count=3),  # a third item announced
        cpf((0x8002, struct.pack("<III", 1, 2, 3)), (0x00B1, b"\x01\x00")),  # a longer address item
        io()[:19],  # shorter than the shape
        b"",
    ]
    assert bulk_pdus(*others) == []
    assert bulk_pdus(io()[:-1], io(), b"\x00") == [1]  # parse keeps no state: well-formed between malformed


def test_idle_always():
    d = CipIO()
    d.parse(io()[:-1], True)
    assert d.idle(True) and d.idle(False)
