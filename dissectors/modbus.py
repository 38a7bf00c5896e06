"""Modbus/TCP: MBAP framing, function codes, exceptions, start address and quantity.

Function and exception names follow Zeek's Modbus analyzer (READ_COILS, ...), which
ICSNPP's modbus_detailed log also uses.
"""

from __future__ import annotations

import struct
from typing import ClassVar

from .base import REQUEST, RESPONSE, FramedStream, Operation, Record

# function code -> (name, access class); Modbus Application Protocol v1.1b3 section 6
FUNCTIONS: dict[int, tuple[str, str]] = {
    1: ("READ_COILS", "read"),
    2: ("READ_DISCRETE_INPUTS", "read"),
    3: ("READ_HOLDING_REGISTERS", "read"),
    4: ("READ_INPUT_REGISTERS", "read"),
    5: ("WRITE_SINGLE_COIL", "write"),
    6: ("WRITE_SINGLE_REGISTER", "write"),
    7: ("READ_EXCEPTION_STATUS", "diagnostic"),
    8: ("DIAGNOSTICS", "diagnostic"),
    11: ("GET_COMM_EVENT_COUNTER", "diagnostic"),
    12: ("GET_COMM_EVENT_LOG", "diagnostic"),
    15: ("WRITE_MULTIPLE_COILS", "write"),
    16: ("WRITE_MULTIPLE_REGISTERS", "write"),
    17: ("REPORT_SLAVE_ID", "diagnostic"),
    20: ("READ_FILE_RECORD", "read"),
    21: ("WRITE_FILE_RECORD", "write"),
    22: ("MASK_WRITE_REGISTER", "write"),
    23: ("READ_WRITE_MULTIPLE_REGISTERS", "write"),
    24: ("READ_FIFO_QUEUE", "read"),
    43: ("ENCAP_INTERFACE_TRANSPORT", "diagnostic"),
    90: ("UMAS", "other"),
}

EXCEPTIONS: dict[int, str] = {
    1: "ILLEGAL_FUNCTION",
    2: "ILLEGAL_DATA_ADDRESS",
    3: "ILLEGAL_DATA_VALUE",
    4: "SLAVE_DEVICE_FAILURE",
    5: "ACKNOWLEDGE",
    6: "SLAVE_DEVICE_BUSY",
    8: "MEMORY_PARITY_ERROR",
    10: "GATEWAY_PATH_UNAVAILABLE",
    11: "GATEWAY_TARGET_DEVICE_FAILED_TO_RESPOND",
}

# request functions whose PDU starts with (start address, quantity)
ADDRESS_QUANTITY = frozenset((1, 2, 3, 4, 15, 16))
# request functions whose PDU starts with (address, value): one item
ADDRESS_VALUE = frozenset((5, 6, 22))

_MBAP = struct.Struct("!HHHBB")
_AQ = struct.Struct("!HH")
MAX_LENGTH = 254  # unit id + 253-byte PDU


def _length_fits(fc: int, length: int, request: bool, buf: bytearray, pos: int) -> bool:
    """Does the MBAP length match what this function's PDU must be? Used to tell a
    real header from bytes that merely look like one when resyncing after a gap."""
    if fc & 0x80:
        return length == 3 and request is False
    if fc not in FUNCTIONS:
        return False
    if request:
        if fc <= 6:
            return length == 6
        if fc in (15, 16):
            return len(buf) - pos < 13 or length == 7 + buf[pos + 12]
        return True
    if fc <= 4:
        return len(buf) - pos < 9 or length == 3 + buf[pos + 8]
    if fc in (5, 6, 15, 16):
        return length == 6
    return True


class ModbusTCP(FramedStream):
    name: ClassVar[str] = "modbus"
    ports: ClassVar[frozenset[int]] = frozenset({502})
    header_len: ClassVar[int] = 8

    @classmethod
    def probe(cls, payload: bytes, by_port: bool) -> bool:
        if len(payload) < 8:  # the start of a split header: judge what is there
            head = payload + bytes(8 - len(payload))
            return by_port and head[2:4] == b"\0\0" and (len(payload) < 6 or 2 <= _MBAP.unpack_from(head)[2] <= MAX_LENGTH)
        _tid, pid, length, _uid, fc = _MBAP.unpack_from(payload)
        return pid == 0 and 2 <= length <= MAX_LENGTH and (fc & 0x7F) in FUNCTIONS

    def pdu_length(self, buf: bytearray, pos: int, from_orig: bool, strict: bool) -> int:
        _tid, pid, length, _uid, fc = _MBAP.unpack_from(buf, pos)
        if pid != 0 or not 2 <= length <= MAX_LENGTH or fc == 0:
            return -1
        if strict and not _length_fits(fc, length, from_orig, buf, pos):
            return -1
        return 6 + length

    def parse(self, pdu: bytes, from_orig: bool) -> list[Record]:
        tid, _pid, _len, uid, fc = _MBAP.unpack_from(pdu)
        code = fc & 0x7F
        name, access = FUNCTIONS.get(code, (f"UNKNOWN_{code}", "other"))
        op = Operation("modbus", REQUEST if from_orig else RESPONSE, code, name, access, transaction_id=tid, unit_id=uid)
        if fc & 0x80:
            exc = pdu[8] if len(pdu) > 8 else None
            op.status = EXCEPTIONS.get(exc, f"EXCEPTION_{exc}") if exc is not None else "EXCEPTION"
        elif from_orig and len(pdu) >= 12:
            if code in ADDRESS_QUANTITY:
                op.address, op.quantity = _AQ.unpack_from(pdu, 8)
            elif code in ADDRESS_VALUE:
                op.address, op.quantity = _AQ.unpack_from(pdu, 8)[0], 1
        return [op]
