"""Vectorised framing (``pdu_lengths``) must say exactly what ``pdu_length`` says, at
every start: the columnar path hands a segment to a dissector as one PDU only when
``feed`` would have parsed it as one (dissectors.base.FramedStream.feed)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dissectors import REGISTRY
from dissectors.base import FramedStream

FRAMED = [cls for cls in REGISTRY.dissectors if issubclass(cls, FramedStream) and hasattr(cls, "pdu_lengths")]

# bytes that make a header plausible, so that the valid branches are reached too
PREFIXES = [
    b"",
    b"\x00\x01\x00\x00",
    b"\x03\x00",
    b"\x05\x64",
    b"\x6f\x00",
    b"\x65\x00\x04\x00",
    b"\x03\x00\x00\x1f\x02\xf0",
]


def scalar(cls, data: bytes) -> int:
    """What feed() decides for a segment: one PDU of this length, or not."""
    if len(data) < cls.header_len:
        return -1
    return cls().pdu_length(bytearray(data), 0, True, False)


def test_some_framed_dissectors_have_pdu_lengths():
    assert {cls.name for cls in FRAMED} >= {"modbus", "s7comm"}


@pytest.mark.parametrize("cls", FRAMED, ids=lambda c: c.name)
@settings(max_examples=400, deadline=None)
@given(prefix=st.sampled_from(PREFIXES), rest=st.binary(max_size=64), lengths=st.integers(0, 0xFFFF))
def test_pdu_lengths_equal_pdu_length(cls, prefix, rest, lengths):
    data = prefix + rest
    segments = [data, data[: len(data) // 2], data + bytes(3)]
    if len(data) >= 6:  # length fields that fit the segment: TPKT, MBAP, ENIP
        for at, order, head in ((2, "big", 0), (4, "big", 6), (2, "little", 24)):
            n = max(0, min(0xFFFF, len(data) - head + (lengths % 3) - 1))
            segments.append(data[:at] + n.to_bytes(2, order) + data[at + 2 :])
    blob = b"".join(segments)
    starts = np.cumsum([0] + [len(s) for s in segments[:-1]]).astype(np.int64)
    got = cls.pdu_lengths(np.frombuffer(blob, np.uint8), starts, np.array([len(s) for s in segments], np.int64))
    assert got.tolist() == [scalar(cls, s) for s in segments]


@pytest.mark.parametrize("cls", FRAMED, ids=lambda c: c.name)
def test_pdu_lengths_on_real_segments(cls, monkeypatch, tmp_path):
    """Every PDU the demo capture's flows carry, framed both ways."""
    from tests.helpers.bulk_harness import recorded_batch

    batch = recorded_batch("captures/demo-plant.pcap", cls, monkeypatch, tmp_path)
    assert len(batch.start)
    got = cls.pdu_lengths(batch.data, batch.start, batch.length)
    assert got.tolist() == [scalar(cls, batch.pdu(i)) for i in range(len(batch.start))]
    assert (got == batch.length).all()
