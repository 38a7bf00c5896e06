"""The Modbus/TCP flow: MBAP framing, one Operation per PDU, requests paired with their responses."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from ..base import REQUEST, RESPONSE, Anomaly, FramedStream, Identity, Operation, Record
from ..bulk import gather
from .bulk import decode
from .consts import (
    COUNTED_RESPONSES,
    DIAGNOSTICS,
    FUNCTIONS,
    MEI_OBJECTS,
    MEI_TYPES,
    REQUEST_SIZES,
    RESPONSE_SIZES,
    UMAS,
    UMAS_RESPONSES,
)
from .fields import ADDRESSING, COUNTED_FROM, MAX_PENDING, MBAP, exception, target, written

_RW = struct.Struct("!HHHH")
MAX_LENGTH = 254  # unit id + 253-byte PDU, as the standard allows
MAX_FRAMED = 2048  # what framing accepts: some devices (UMAS) exceed the standard


def _length_fits(fc: int, length: int, request: bool, buf: bytes | bytearray, pos: int) -> bool:
    """Does the MBAP length match what this function's PDU must be? Tells a real
    header from bytes that merely look like one (resync after a gap, heuristics)."""
    if fc & 0x80:
        return length == 3 and not request
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


def _cut_request(code: int, pdu: bytes) -> str | None:
    """What a request lacks for its function, or None when it is whole."""
    n = len(pdu)
    need = REQUEST_SIZES.get(code, 8)
    if n < need:
        return f"{FUNCTIONS[code][0]} request of {n - 6} bytes after the MBAP length, {need - 6} needed"
    if code in (15, 16, 23) and n < need + pdu[need - 1]:
        return f"{FUNCTIONS[code][0]} request: byte count {pdu[need - 1]}, {n - need} bytes of values"
    return None


def _cut_response(code: int, fc: int, pdu: bytes) -> str | None:
    """What a reply lacks for its function, or None when it is whole. An exception reply cut before its
    exception code is not one: its status says so (EXCEPTION), as tests/equivalence/test_bulk_modbus.py has it."""
    n, name = len(pdu), FUNCTIONS[code][0]
    if fc & 0x80:
        return None
    need = RESPONSE_SIZES[code]
    if n < need:
        return f"{name} reply of {n - 6} bytes after the MBAP length, {need - 6} needed"
    if code in COUNTED_RESPONSES and n < need + pdu[8]:
        return f"{name} reply: byte count {pdu[8]}, {n - need} bytes of values"
    count = int.from_bytes(pdu[8:10]) if code == 24 else 0  # a 2-byte count: the FIFO count, then the values
    if n < need + count:
        return f"{name} reply: byte count {count}, {n - need} bytes"
    return None


@dataclass
class ModbusTCP(FramedStream):
    """One Modbus/TCP connection: MBAP-framed PDUs, requests from the client (the port-502 side serves)."""

    name = "modbus"
    ports: ClassVar[frozenset[int]] = frozenset({502})
    heuristic: ClassVar[bool] = True
    magic: ClassVar[tuple[int, bytes]] = (2, b"\0\0")  # the MBAP protocol identifier
    header_len: ClassVar[int] = 8
    header_magic: ClassVar[tuple[int, bytes]] = (2, b"\0\0")  # the MBAP protocol id
    # after a gap, an MBAP header starting a segment is a PDU even with an undefined function code (an `other`
    # operation, docs/protocols/modbus.md); scanning inside a segment still needs a length the function explains
    resync_at_segment: ClassVar[bool] = True

    # transaction id -> (function, address, quantity, access class, details) of unanswered requests
    pending: dict[int, tuple] = field(default_factory=dict)

    @classmethod
    def probe(cls, payload: bytes, by_port: bool) -> bool:
        """On port 502, a consistent MBAP header is enough (even the start of a
        split one); elsewhere the segment must be exactly one well-formed ADU."""
        if len(payload) < 8:
            head = payload + bytes(8 - len(payload))
            return (
                by_port and head[2:4] == b"\0\0" and (len(payload) < 6 or 2 <= MBAP.unpack_from(head)[2] <= MAX_FRAMED)
            )
        _tid, pid, length, _uid, fc = MBAP.unpack_from(payload)
        if by_port:
            return pid == 0 and 2 <= length <= MAX_FRAMED
        return (
            pid == 0
            and 2 <= length <= MAX_LENGTH
            and len(payload) == COUNTED_FROM + length
            and (_length_fits(fc, length, True, payload, 0) or _length_fits(fc, length, False, payload, 0))
        )

    @staticmethod
    def pdu_lengths(data: np.ndarray, start: np.ndarray, length: np.ndarray) -> np.ndarray:
        """pdu_length (not strict) at many starts at once: -1 where it would be, or
        where fewer than header_len bytes are there."""
        head = gather(data, start, MBAP.size).view(MBAP.dtype)
        counted = head["length"].astype(np.int64)
        ok = (length >= MBAP.size) & (head["protocol_id"] == 0) & (counted >= 2) & (counted <= MAX_FRAMED)
        return np.where(ok, COUNTED_FROM + counted, -1)

    def pdu_length(self, buf: bytes | bytearray, pos: int, from_orig: bool, strict: bool) -> int:
        _tid, pid, length, _uid, fc = MBAP.unpack_from(buf, pos)
        if pid != 0 or not 2 <= length <= MAX_FRAMED:
            return -1
        if strict and not _length_fits(fc, length, from_orig == self.client_is_orig, buf, pos):
            return -1
        return COUNTED_FROM + length

    def parse(self, pdu: bytes, from_orig: bool) -> list[Record]:
        tid, _pid, _len, uid, fc = MBAP.unpack_from(pdu)
        code = fc & 0x7F
        request = from_orig == self.client_is_orig
        name, access = FUNCTIONS.get(code, (f"UNKNOWN_{code}", "other"))
        op = Operation("modbus", REQUEST if request else RESPONSE, code, name, access, transaction_id=tid, unit_id=uid)
        out: list[Record] = [op]
        if request:
            self._request(op, pdu)
            if code in FUNCTIONS:
                cut = _cut_request(code, pdu)
                if cut is not None:
                    out.append(Anomaly("modbus", "truncated_pdu", cut))
            if len(self.pending) >= MAX_PENDING:
                del self.pending[next(iter(self.pending))]
            self.pending[tid] = (code, op.address, op.quantity, op.access_class, op.details)
        else:
            asked = self.pending.pop(tid, None)
            if asked is not None and asked[0] == code:  # the response inherits what was asked
                _, op.address, op.quantity, op.access_class, details = asked
                if details:
                    op.details = {k: v for k, v in details.items() if k != "values"}
            if fc & 0x80:
                op.status = exception(pdu[8] if len(pdu) > 8 else None)
            else:
                out.extend(self._response(op, pdu))
            if code in FUNCTIONS:
                cut = _cut_response(code, fc, pdu)
                if cut is not None:
                    out.append(Anomaly("modbus", "truncated_pdu", cut))
        op.target = target(code, op.address, op.quantity)
        return out

    def idle(self, from_orig: bool) -> bool:
        """A bulk unit fills ``pending`` and drains it again: neutral only from empty (no same-tid
        entry to replace, nothing to evict)."""
        return not self.pending

    bulk = staticmethod(decode)

    def _request(self, op: Operation, pdu: bytes) -> None:
        code, n = op.function_code, len(pdu)
        details: dict = {}
        if code in (1, 2, 3, 4, 15, 16) and n >= 12:
            op.address, op.quantity = ADDRESSING.unpack_from(pdu, MBAP.size)
            if code in (15, 16):
                details["values"] = written(code, pdu, op.quantity)
        elif code in (5, 6) and n >= 12:
            op.address, op.quantity = ADDRESSING.unpack_from(pdu, MBAP.size)[0], 1
            details["values"] = written(code, pdu, 1)
        elif code == 22 and n >= 14:
            op.address, and_mask, or_mask = struct.unpack_from("!HHH", pdu, 8)
            op.quantity = 1
            details.update(and_mask=and_mask, or_mask=or_mask)
        elif code == 23 and n >= 16:
            read_address, read_quantity, op.address, op.quantity = _RW.unpack_from(pdu, 8)
            details.update(read_address=read_address, read_quantity=read_quantity)
        elif code == 24 and n >= 10:
            op.address = ADDRESSING.unpack_from(pdu + b"\0\0", MBAP.size)[0]
        elif code == 8 and n >= 10:
            self._sub(op, details, struct.unpack_from("!H", pdu, 8)[0], DIAGNOSTICS)
        elif code == 43 and n >= 9:
            self._sub(op, details, pdu[8], MEI_TYPES)
            if pdu[8] == 0x0E and n >= 11:
                details.update(read_device_id_code=pdu[9], object_id=pdu[10])
        elif code == 90 and n >= 10:
            details["umas_session"] = pdu[8]
            self._sub(op, details, pdu[9], UMAS)
        op.details = details or None

    @staticmethod
    def _sub(op: Operation, details: dict, sub: int, table: dict[int, tuple[str, str]]) -> None:
        name, access = table.get(sub, (f"UNKNOWN_{sub}", op.access_class))
        details.update(subfunction=sub, subfunction_name=name)
        op.access_class = access

    def _response(self, op: Operation, pdu: bytes) -> list[Record]:
        code = op.function_code
        if code == 90 and len(pdu) >= 10 and pdu[9] in UMAS_RESPONSES:
            op.status = UMAS_RESPONSES[pdu[9]]
        elif code == 43 and len(pdu) >= 15 and pdu[8] == 0x0E:
            return self._device_identification(pdu)
        return []

    @staticmethod
    def _device_identification(pdu: bytes) -> list[Record]:
        """MEI 0x0E response: objects (id, length, value) describe the device."""
        fields: dict[str, str | int] = {}
        count, pos = pdu[13], 14
        for _ in range(count):
            if pos + 2 > len(pdu):
                break
            obj, size = pdu[pos], pdu[pos + 1]
            value = pdu[pos + 2 : pos + 2 + size].decode("latin-1").strip("\0 ")
            if obj in MEI_OBJECTS and value:
                fields[MEI_OBJECTS[obj]] = value
            pos += 2 + size
        if "model_name" in fields:
            fields.setdefault("product_name", fields.pop("model_name"))
        return [Identity("modbus", fields, role="modbus_server")] if fields else []
