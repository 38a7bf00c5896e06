"""Modbus/TCP dissector on byte strings (sans-IO); the corpus against tshark and ICSNPP: oracle/test_modbus_corpus.py"""

from __future__ import annotations

import struct

import pytest

from dissectors import REGISTRY, Anomaly, Identity, ModbusTCP, Operation
from dissectors.modbus import DIAGNOSTICS, EXCEPTIONS, FUNCTIONS, UMAS

EXCEPTION_CODES = {name: code for code, name in EXCEPTIONS.items()}


def adu(tid: int, unit: int, pdu: bytes) -> bytes:
    return struct.pack("!HHHB", tid, 0, len(pdu) + 1, unit) + pdu


def test_read_request_and_response_are_paired():
    d = ModbusTCP()
    (req,) = d.feed(adu(7, 1, bytes([3]) + struct.pack("!HH", 100, 4)), True)
    (resp,) = d.feed(adu(7, 1, bytes([3, 8]) + bytes(8)), False)
    assert (req.direction, req.function_name, req.access_class, req.address, req.quantity) == (
        "request", "READ_HOLDING_REGISTERS", "read", 100, 4)  # fmt: skip
    assert req.target == "holding_registers 100-103"
    assert (resp.direction, resp.transaction_id, resp.address, resp.quantity, resp.status) == (
        "response",
        7,
        100,
        4,
        None,
    )


def test_writes_carry_their_values():
    d = ModbusTCP()
    (single,) = d.feed(adu(1, 1, bytes([6]) + struct.pack("!HH", 40, 1234)), True)
    (coil,) = d.feed(adu(2, 1, bytes([5]) + struct.pack("!HH", 7, 0xFF00)), True)
    (multi,) = d.feed(adu(3, 1, bytes([16]) + struct.pack("!HHB", 10, 2, 4) + struct.pack("!HH", 5, 6)), True)
    (coils,) = d.feed(adu(4, 1, bytes([15]) + struct.pack("!HHB", 0, 4, 1) + bytes([0b1001])), True)
    assert [op.access_class for op in (single, coil, multi, coils)] == ["write"] * 4
    assert single.details == {"values": [1234]} and single.target == "holding_registers 40"
    assert coil.details == {"values": [1]} and coil.target == "coils 7"
    assert multi.details == {"values": [5, 6]} and (multi.address, multi.quantity) == (10, 2)
    assert coils.details == {"values": [1, 0, 0, 1]}


def test_a_write_cut_mid_register_keeps_the_flow():
    """fc 16 whose value bytes stop inside a register (7 bytes for 4 registers): the whole
    registers are kept, and the flow's next PDUs are still dissected."""
    d = ModbusTCP()
    (cut,) = d.feed(adu(1, 1, bytes([16]) + struct.pack("!HHB", 10, 4, 7) + bytes(range(1, 8))), True)
    (read,) = d.feed(adu(2, 1, bytes([3]) + struct.pack("!HH", 0, 1)), True)
    assert cut.details == {"values": [0x0102, 0x0304, 0x0506]} and (cut.address, cut.quantity) == (10, 4)
    assert read.function_name == "READ_HOLDING_REGISTERS"


def test_exception_response():
    d = ModbusTCP()
    d.feed(adu(9, 1, bytes([3]) + struct.pack("!HH", 600, 10)), True)
    (resp,) = d.feed(adu(9, 1, bytes([0x83, 0x02])), False)
    assert (resp.function_code, resp.status, resp.address) == (3, "ILLEGAL_DATA_ADDRESS", 600)


@pytest.mark.parametrize(
    ("pdu", "name", "access"),
    [
        (bytes([90, 0x00, 0x41]), "STOP_PLC", "control"),
        (bytes([90, 0x00, 0x40]), "START_PLC", "control"),
        (bytes([90, 0x12, 0x34]) + bytes(6), "DOWNLOAD_BLOCK", "program"),
        (bytes([90, 0x00, 0x10]) + b"HMI", "TAKE_PLC_RESERVATION", "session"),
        (bytes([8]) + struct.pack("!HH", 1, 0), "RESTART_COMMUNICATIONS_OPTION", "control"),
        (bytes([8]) + struct.pack("!HH", 4, 0), "FORCE_LISTEN_ONLY_MODE", "control"),
        (bytes([43, 0x0E, 1, 0]), "READ_DEVICE_IDENTIFICATION", "diagnostic"),
    ],
)
def test_subfunctions_set_the_access_class(pdu, name, access):
    d = ModbusTCP()
    (req,) = d.feed(adu(1, 0, pdu), True)
    (resp,) = d.feed(adu(1, 0, pdu[:1] + bytes([0, 0xFE]) if pdu[0] == 90 else pdu), False)
    assert req.details["subfunction_name"] == name
    assert req.access_class == resp.access_class == access


def test_device_identification_becomes_identity():
    objects = b"".join(
        bytes([i, len(v)]) + v for i, v in ((0, b"Schneider Electric"), (1, b"BMX P34 2020"), (2, b"v3.10"))
    )
    response = bytes([43, 0x0E, 1, 0x01, 0, 0, 3]) + objects
    d = ModbusTCP()
    d.feed(adu(5, 1, bytes([43, 0x0E, 1, 0])), True)
    out = d.feed(adu(5, 1, response), False)
    (ident,) = [r for r in out if isinstance(r, Identity)]
    assert ident.fields == {"vendor": "Schneider Electric", "product_code": "BMX P34 2020", "revision": "v3.10"}
    assert ident.role == "modbus_server"


def test_server_port_on_the_originator_side_flips_request_and_response():
    """A device that connects out from port 502 is still the Modbus server."""
    d = REGISTRY.claim("tcp", 4446, 502, adu(1, 1, bytes([1, 0x02])))
    assert isinstance(d, ModbusTCP) and d.client_is_orig is False
    (resp,) = d.feed(adu(1, 1, bytes([0x81, 0x06])), True)
    assert (resp.direction, resp.status) == ("response", "SLAVE_DEVICE_BUSY")


def test_heuristic_claims_modbus_on_other_ports_only_for_a_whole_adu():
    request = adu(1, 1, bytes([3]) + struct.pack("!HH", 0, 2))
    assert isinstance(REGISTRY.claim("tcp", 5020, 40000, request), ModbusTCP)
    assert REGISTRY.claim("tcp", 5020, 40000, request + b"x") is None
    assert REGISTRY.claim("tcp", 5020, 40000, b"GET / HTTP/1.1\r\nHost: plc\r\n\r\n") is None


def test_every_table_entry_has_a_known_access_class():
    for table in (FUNCTIONS, DIAGNOSTICS, UMAS):
        assert {access for _, access in table.values()} <= {
            "read",
            "write",
            "control",
            "program",
            "diagnostic",
            "session",
            "other",
        }
    assert set(FUNCTIONS) >= {1, 2, 3, 4, 5, 6, 7, 8, 11, 12, 15, 16, 17, 20, 21, 22, 23, 24, 43}


def test_garbage_between_pdus_is_an_anomaly_and_parsing_resumes():
    d = ModbusTCP()
    out = d.feed(b"\xde\xad\xbe\xef\x01\x02\x03\x04\x05" + adu(1, 1, bytes([1]) + struct.pack("!HH", 0, 1)), True)
    assert [type(r) for r in out] == [Anomaly, Operation]
