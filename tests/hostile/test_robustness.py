"""Arbitrary bytes never crash the decoder or a dissector: they become Malformed or anomalies."""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from dissectors import Anomaly, ModbusTCP, Operation
from sensor.decode import LINK_ETHERNET, LINK_NAMES, Decoder, Malformed, Packet

ETH_IP_TCP = bytes.fromhex("0011223344550066778899aa0800 45000028000100004006 0000 0a000001 0a000002") + struct.pack(
    "!HHIIBBHHH", 40000, 502, 1, 0, 0x50, 0x18, 1024, 0, 0
)


@settings(max_examples=400)
@given(link=st.sampled_from(sorted(LINK_NAMES)), data=st.binary(max_size=200))
def test_decoder_on_random_frames(link, data):
    try:
        out = Decoder().decode(link, data, 0)
    except Malformed:
        return
    assert out is None or isinstance(out, Packet)


@settings(max_examples=400)
@given(pos=st.integers(0, len(ETH_IP_TCP) - 1), value=st.integers(0, 255), cut=st.integers(0, len(ETH_IP_TCP)))
def test_decoder_on_mutated_tcp_frames(pos, value, cut):
    frame = bytearray(ETH_IP_TCP)
    frame[pos] = value
    try:
        out = Decoder().decode(LINK_ETHERNET, bytes(frame[:cut]), 0)
    except Malformed:
        return
    assert out is None or isinstance(out, Packet)


@settings(max_examples=400)
@given(chunks=st.lists(st.binary(max_size=300), max_size=8), from_orig=st.booleans())
def test_modbus_on_random_streams(chunks, from_orig):
    d = ModbusTCP()
    for chunk in chunks:
        for rec in d.feed(chunk, from_orig):
            assert isinstance(rec, (Operation, Anomaly))
            if isinstance(rec, Operation):
                assert rec.access_class in ("read", "write", "control", "program", "diagnostic", "session", "other")
    assert len(d.buffers[from_orig]) <= ModbusTCP.max_buffer
