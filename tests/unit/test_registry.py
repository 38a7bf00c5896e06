"""Registry.might_claim lets the columnar path skip ``claim`` on payloads: it must
never say no where ``claim`` would find a dissector."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dissectors import REGISTRY
from dissectors.dnp3 import crc_dnp

HEURISTICS = REGISTRY.heuristics
MODBUS_ADU = bytes.fromhex("000100000006010300000002")  # read holding registers 0-1
DNP3_HEADER = bytes.fromhex("056405c901000a00")
DNP3_HEADER += crc_dnp(DNP3_HEADER).to_bytes(2, "little")
# starts that reach each heuristic's accepting branches, and near misses
PREFIXES = [b"", b"\x05\x64", b"\x05\x64\x05", b"\x05\x65", b"\x00\x01\x00\x00", MODBUS_ADU,
            MODBUS_ADU[:2] + b"\x00\x01" + MODBUS_ADU[4:], DNP3_HEADER, b"\x05\x65" + DNP3_HEADER[2:]]  # fmt: skip
PORTS = sorted({p for _, p in REGISTRY.by_port} | {53, 123, 443, 40000})


def test_every_heuristic_declares_its_magic():
    assert HEURISTICS and all(d.magic is not None for d in HEURISTICS)


@pytest.mark.parametrize("cls", HEURISTICS, ids=lambda c: c.name)
@settings(max_examples=500, deadline=None)
@given(prefix=st.sampled_from(PREFIXES), rest=st.binary(max_size=40))
def test_a_heuristic_accepts_only_payloads_with_its_magic(cls, prefix, rest):
    payload = prefix + rest
    offset, magic = cls.magic
    if cls.probe(payload, False):
        assert payload[offset : offset + len(magic)] == magic


def test_heuristics_accept_real_first_payloads_and_their_magic_is_there():
    for cls, payload in zip(sorted(HEURISTICS, key=lambda c: c.name), (DNP3_HEADER, MODBUS_ADU), strict=True):
        offset, magic = cls.magic
        assert cls.probe(payload, False)
        assert payload[offset : offset + len(magic)] == magic


@settings(max_examples=300, deadline=None)
@given(
    payloads=st.lists(st.tuples(st.sampled_from(PREFIXES), st.binary(max_size=40)), min_size=1, max_size=12),
    ports=st.lists(st.tuples(st.sampled_from(PORTS), st.sampled_from(PORTS)), min_size=12, max_size=12),
    transport=st.sampled_from(["tcp", "udp"]),
)
def test_might_claim_never_misses_a_claim(payloads, ports, transport):
    data = [p + r for p, r in payloads]
    blob = b"".join(data)
    start = np.cumsum([0] + [len(d) for d in data[:-1]]).astype(np.int64)
    length = np.array([len(d) for d in data], np.int64)
    resp, orig = (np.array(x[: len(data)], np.int64) for x in zip(*ports, strict=True))
    maybe = REGISTRY.might_claim(transport, resp, orig, np.frombuffer(blob + b"\0", np.uint8), start, length)
    for i, payload in enumerate(data):
        if REGISTRY.claim(transport, int(resp[i]), int(orig[i]), payload) is not None:
            assert maybe[i], (transport, int(resp[i]), int(orig[i]), payload.hex())


def test_might_claim_says_no_to_dns():
    dns = bytes.fromhex("abcd01000001000000000000076578616d706c6503636f6d0000010001")
    maybe = REGISTRY.might_claim("udp", np.array([53]), np.array([40000]), np.frombuffer(dns, np.uint8),
                                 np.array([0]), np.array([len(dns)]))  # fmt: skip
    assert not maybe.any()
