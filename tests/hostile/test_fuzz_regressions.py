"""Inputs the fuzzers (tests/fuzz) found crashing, each minimised, as regression tests: each goes through the
same check its target runs (tests.fuzz.checks), and the record it broke is asserted on."""

from __future__ import annotations

import struct

from dissectors import Operation, S7comm
from sensor.capture import ReadState, read_packets
from sensor.store import details_json
from tests.fuzz import checks


def test_cotp_cr_tpdu_size_code_out_of_range():
    """s7comm target: a COTP CR whose TPDU size parameter (0xC0) has code 0x41. The size was 1 << code, a
    66-bit integer that details_json (orjson) cannot write: TypeError out of the store. The code is kept
    as sent, the size only for the codes ISO 8073 defines."""
    pdu = bytes.fromhex("0300000e09e00000000100c00141")
    checks.check_dissector(S7comm, pdu)
    checks.check_bulk(bytes([checks.BULK.index(S7comm), 1, 1]) + pdu)
    (op,) = S7comm().parse(pdu, True)
    assert isinstance(op, Operation) and op.function_name == "CONNECTION_REQUEST" and op.access_class == "session"
    assert op.details["tpdu_size_code"] == 0x41 and "tpdu_size" not in op.details
    details_json(op.details)
    (whole,) = S7comm().parse(bytes.fromhex("0300000e09e00000000100c0010a"), True)  # a defined code: the size
    assert whole.details["tpdu_size"] == 1024


def _block(kind: int, body: bytes) -> bytes:
    return struct.pack("<II", kind, 12 + len(body)) + body + struct.pack("<I", 12 + len(body))


def test_pcapng_timestamp_unit_too_fine_is_damage(tmp_path):
    """pcap target: an interface whose if_tsresol is 10^-38 s. Its unit, a 127-bit integer, went into an int64
    array: OverflowError out of the reader. A unit finer than 10^-18 s fits no 64-bit timestamp: the file is
    damaged there, read up to it, and said so."""
    shb = _block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    idb = _block(1, struct.pack("<HHI", 1, 0, 0) + struct.pack("<HHB3x", 9, 1, 38) + bytes(4))
    epb = _block(6, struct.pack("<IIIII", 0, 0, 1, 14, 14) + bytes(14) + bytes(2))
    data = shb + idb + epb
    checks.check_reader(data)
    path = tmp_path / "tsresol.pcapng"
    path.write_bytes(data)
    state = ReadState()
    assert list(read_packets(str(path), state)) == []
    assert state.damage.frame == 1 and "timestamp unit of 1/10" in state.damage.describe()


def test_pcapng_blocks_too_short_for_their_fields_are_damage(tmp_path):
    """pcapng target: an obsolete packet block (type 2) of 20 bytes, too short for its 20 bytes of fields:
    struct.error out of the reader. A simple packet block of 12 bytes gave a negative captured length, an
    interface description block of 12 bytes read past its end. Each is now damage, read up to and said so."""
    shb = _block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    idb = _block(1, struct.pack("<HHI", 1, 0, 0))
    epb = _block(6, struct.pack("<IIIII", 0, 0, 1, 14, 14) + bytes(14) + bytes(2))
    for short, name in ((_block(2, bytes(8)), "packet block"), (_block(3, b""), "simple packet block"),
                        (_block(1, b""), "interface description block")):  # fmt: skip
        data = shb + idb + epb + short + epb
        checks.check_reader(data)
        path = tmp_path / "short.pcapng"
        path.write_bytes(data)
        state = ReadState()
        assert len(list(read_packets(str(path), state))) == 1  # the packet before it
        assert state.damage.frame == 2 and f"corrupt {name} (too short)" in state.damage.describe()


def test_pcapng_timestamp_past_int64_microseconds(tmp_path):
    """pcap target: an obsolete packet block stamped 2^64 - 1 on an interface counting seconds (if_tsresol 0):
    in µs, past int64, and OverflowError out of the reader. It is a garbage time, kept at the int64 limit."""
    shb = _block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    idb = _block(1, struct.pack("<HHI", 1, 0, 0) + struct.pack("<HHB3x", 9, 1, 0) + bytes(4))
    old = _block(2, struct.pack("<HHIIII", 0, 0, 0xFFFFFFFF, 0xFFFFFFFF, 14, 14) + bytes(14) + bytes(2))
    data = shb + idb + old
    checks.check_reader(data)
    path = tmp_path / "late.pcapng"
    path.write_bytes(data)
    state = ReadState()
    ((_, ts, _, frame),) = list(read_packets(str(path), state))
    assert ts == (1 << 63) - 1 and len(frame) == 14 and state.damage is None


def test_pcapng_obsolete_block_on_an_undeclared_interface(tmp_path):
    """pcap target: an obsolete packet block on interface 5 of 1, after a packet. The walk stopped there
    (damage) but handed on the block's fields with the window: IndexError in the chunk reader."""
    shb = _block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    idb = _block(1, struct.pack("<HHI", 1, 0, 0))
    epb = _block(6, struct.pack("<IIIII", 0, 0, 1, 14, 14) + bytes(14) + bytes(2))
    old = _block(2, struct.pack("<HHIIII", 5, 0, 0, 1, 14, 14) + bytes(14) + bytes(2))
    data = shb + idb + epb + old
    checks.check_reader(data)
    path = tmp_path / "iface.pcapng"
    path.write_bytes(data)
    state = ReadState()
    assert len(list(read_packets(str(path), state))) == 1
    assert state.damage.frame == 2 and "packet on undeclared interface 5" in state.damage.describe()
