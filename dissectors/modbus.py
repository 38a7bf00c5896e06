"""Modbus/TCP: MBAP framing, functions and sub-functions, exceptions, addresses,
request/response pairing, device identification (MEI 0x0E) and Schneider UMAS.

Function and exception names follow Zeek's Modbus analyzer (READ_COILS, ...), as
ICSNPP's modbus_detailed log does. Sub-functions (diagnostics, MEI, UMAS) keep the
Modbus function name and set the access class; their own name is in details.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import pyarrow as pa

from .base import REQUEST, RESPONSE, Anomaly, FramedStream, Identity, Operation, Record, details_json
from .bulk import BulkRows, PduBatch, gather, headers

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

# function 8 sub-function -> (name, access class); standard section 6.8.1
DIAGNOSTICS: dict[int, tuple[str, str]] = {
    0x00: ("RETURN_QUERY_DATA", "diagnostic"),
    0x01: ("RESTART_COMMUNICATIONS_OPTION", "control"),
    0x02: ("RETURN_DIAGNOSTIC_REGISTER", "diagnostic"),
    0x03: ("CHANGE_ASCII_INPUT_DELIMITER", "write"),
    0x04: ("FORCE_LISTEN_ONLY_MODE", "control"),
    0x0A: ("CLEAR_COUNTERS_AND_DIAGNOSTIC_REGISTER", "diagnostic"),
    0x0B: ("RETURN_BUS_MESSAGE_COUNT", "diagnostic"),
    0x0C: ("RETURN_BUS_COMMUNICATION_ERROR_COUNT", "diagnostic"),
    0x0D: ("RETURN_BUS_EXCEPTION_ERROR_COUNT", "diagnostic"),
    0x0E: ("RETURN_SLAVE_MESSAGE_COUNT", "diagnostic"),
    0x0F: ("RETURN_SLAVE_NO_RESPONSE_COUNT", "diagnostic"),
    0x10: ("RETURN_SLAVE_NAK_COUNT", "diagnostic"),
    0x11: ("RETURN_SLAVE_BUSY_COUNT", "diagnostic"),
    0x12: ("RETURN_BUS_CHARACTER_OVERRUN_COUNT", "diagnostic"),
    0x14: ("CLEAR_OVERRUN_COUNTER_AND_FLAG", "diagnostic"),
}

# function 43 MEI type -> (name, access class)
MEI_TYPES: dict[int, tuple[str, str]] = {
    0x0D: ("CANOPEN_GENERAL_REFERENCE", "other"),
    0x0E: ("READ_DEVICE_IDENTIFICATION", "diagnostic"),
}

# Schneider UMAS (function 90) function -> (name, access class), as published by
# the researchers who documented it (Kaspersky ICS CERT, Armis)
UMAS: dict[int, tuple[str, str]] = {
    0x01: ("INIT_COMM", "session"),
    0x02: ("READ_ID", "diagnostic"),
    0x03: ("READ_PROJECT_INFO", "diagnostic"),
    0x04: ("READ_PLC_INFO", "diagnostic"),
    0x06: ("READ_CARD_INFO", "diagnostic"),
    0x0A: ("REPEAT", "diagnostic"),
    0x10: ("TAKE_PLC_RESERVATION", "session"),
    0x11: ("RELEASE_PLC_RESERVATION", "session"),
    0x12: ("KEEP_ALIVE", "session"),
    0x20: ("READ_MEMORY_BLOCK", "read"),
    0x22: ("READ_VARIABLES", "read"),
    0x23: ("WRITE_VARIABLES", "write"),
    0x24: ("READ_COILS_REGISTERS", "read"),
    0x25: ("WRITE_COILS_REGISTERS", "write"),
    0x26: ("DATA_DICTIONARY", "read"),
    0x30: ("INITIALIZE_UPLOAD", "program"),
    0x31: ("UPLOAD_BLOCK", "program"),
    0x32: ("END_STRATEGY_UPLOAD", "program"),
    0x33: ("INITIALIZE_DOWNLOAD", "program"),
    0x34: ("DOWNLOAD_BLOCK", "program"),
    0x35: ("END_STRATEGY_DOWNLOAD", "program"),
    0x36: ("READ_ETH_MASTER_DATA", "read"),
    0x39: ("READ_ETH_SLAVE_DATA", "read"),
    0x40: ("START_PLC", "control"),
    0x41: ("STOP_PLC", "control"),
    0x50: ("MONITOR_PLC", "read"),
    0x58: ("CHECK_PLC", "diagnostic"),
    0x70: ("READ_IO_OBJECT", "read"),
    0x71: ("WRITE_IO_OBJECT", "write"),
    0x73: ("GET_STATUS_MODULE", "diagnostic"),
}
UMAS_RESPONSES = {0xFE: None, 0xFD: "UMAS_ERROR"}  # response code -> status

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

# data table each addressing function acts on (for `target`)
TABLES = {
    1: "coils", 2: "discrete_inputs", 3: "holding_registers", 4: "input_registers", 5: "coils",
    6: "holding_registers", 15: "coils", 16: "holding_registers", 22: "holding_registers",
    23: "holding_registers", 24: "holding_registers",
}  # fmt: skip

# device identification object id -> identity field
MEI_OBJECTS = {0: "vendor", 1: "product_code", 2: "revision", 4: "product_name", 5: "model_name"}

_MBAP = struct.Struct("!HHHBB")
_AQ = struct.Struct("!HH")
_RW = struct.Struct("!HHHH")
MAX_LENGTH = 254  # unit id + 253-byte PDU, as the standard allows
MAX_FRAMED = 2048  # what framing accepts: some devices (UMAS) exceed the standard
MAX_PENDING = 1024  # unanswered requests remembered per flow
MAX_VALUES = 32  # written values kept in details


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


# function -> bytes of its request's fixed part (MBAP header and function code included): a request cut before
# its end is still the operation, with a `truncated_pdu` anomaly (docs/protocols/modbus.md, damaged PDUs)
REQUEST_SIZES = {1: 12, 2: 12, 3: 12, 4: 12, 5: 12, 6: 12, 8: 12, 15: 13, 16: 13, 20: 9, 21: 9, 22: 14, 23: 17, 24: 10,
                 43: 9, 90: 10}  # fmt: skip


def _cut_request(code: int, pdu: bytes) -> str | None:
    """What a request lacks for its function, or None when it is whole."""
    n = len(pdu)
    need = REQUEST_SIZES.get(code, 8)
    if n < need:
        return f"{FUNCTIONS[code][0]} request of {n - 6} bytes after the MBAP length, {need - 6} needed"
    if code in (15, 16, 23) and n < need + pdu[need - 1]:
        return f"{FUNCTIONS[code][0]} request: byte count {pdu[need - 1]}, {n - need} bytes of values"
    return None


# function -> bytes of its response's fixed part (MBAP header and function code included), and the functions whose
# response then has as many bytes as the byte count at offset 8 says: a reply cut before its end is still the
# operation, with a `truncated_pdu` anomaly, as a cut request is (docs/protocols/modbus.md, damaged PDUs)
RESPONSE_SIZES = {1: 9, 2: 9, 3: 9, 4: 9, 5: 12, 6: 12, 7: 9, 8: 12, 11: 12, 12: 9, 15: 12, 16: 12, 17: 9, 20: 9,
                  21: 9, 22: 14, 23: 9, 24: 10, 43: 9, 90: 10}  # fmt: skip
COUNTED_RESPONSES = frozenset({1, 2, 3, 4, 12, 17, 20, 21, 23})


def _cut_response(code: int, fc: int, pdu: bytes) -> str | None:
    """What a reply lacks for its function, or None when it is whole. An exception reply cut before its
    exception code is not one: its status says so (EXCEPTION), as tests/test_bulk_modbus.py has it."""
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


def _exception(code: int | None) -> str:
    """Status of an exception reply, from its exception code (None: the reply ends before it)."""
    return "EXCEPTION" if code is None else EXCEPTIONS.get(code, f"EXCEPTION_{code}")


# bulk decoding: status by exception code (256: none given), 257 for a reply that is no exception
_STATUS = pa.array([*map(_exception, range(256)), _exception(None), None], pa.string())
_DIRECTION = pa.array([REQUEST, RESPONSE], pa.string())


def _written(code: int, pdu: bytes, quantity: int) -> list[int]:
    """The values a write request (fc 5, 6, 15, 16) carries, at most MAX_VALUES; shared by parse and bulk."""
    if code == 15:
        bits = int.from_bytes(pdu[13:], "little")
        return [(bits >> i) & 1 for i in range(min(quantity, MAX_VALUES, 8 * len(pdu[13:])))]
    if code == 16:  # a request cut short keeps the whole registers it has
        data = pdu[13 : 13 + 2 * min(quantity, MAX_VALUES)]
        return [v for (v,) in struct.iter_unpack("!H", data[: len(data) & ~1])]
    value = _AQ.unpack_from(pdu, 8)[1]
    return [int(value == 0xFF00)] if code == 5 else [value]


def _target(code: int, address: int | None, quantity: int | None) -> str | None:
    table = TABLES.get(code)
    if table is None or address is None:
        return None
    if not quantity or quantity == 1:
        return f"{table} {address}"
    return f"{table} {address}-{address + quantity - 1}"


@dataclass
class ModbusTCP(FramedStream):
    name: ClassVar[str] = "modbus"
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
                by_port and head[2:4] == b"\0\0" and (len(payload) < 6 or 2 <= _MBAP.unpack_from(head)[2] <= MAX_FRAMED)
            )
        _tid, pid, length, _uid, fc = _MBAP.unpack_from(payload)
        if by_port:
            return pid == 0 and 2 <= length <= MAX_FRAMED
        return (
            pid == 0
            and 2 <= length <= MAX_LENGTH
            and len(payload) == 6 + length
            and (_length_fits(fc, length, True, payload, 0) or _length_fits(fc, length, False, payload, 0))
        )

    @staticmethod
    def pdu_lengths(data: np.ndarray, start: np.ndarray, length: np.ndarray) -> np.ndarray:
        """pdu_length (not strict) at many starts at once: -1 where it would be, or
        where fewer than header_len bytes are there."""
        h, whole = headers(data, start, length, 6)
        mbap = (h[:, 4] << 8) | h[:, 5]
        ok = whole & (h[:, 2] == 0) & (h[:, 3] == 0) & (mbap >= 2) & (mbap <= MAX_FRAMED)
        return np.where(ok & (length >= 8), 6 + mbap, -1)

    def pdu_length(self, buf: bytearray, pos: int, from_orig: bool, strict: bool) -> int:
        _tid, pid, length, _uid, fc = _MBAP.unpack_from(buf, pos)
        if pid != 0 or not 2 <= length <= MAX_FRAMED:
            return -1
        if strict and not _length_fits(fc, length, from_orig == self.client_is_orig, buf, pos):
            return -1
        return 6 + length

    def parse(self, pdu: bytes, from_orig: bool) -> list[Record]:
        tid, _pid, _len, uid, fc = _MBAP.unpack_from(pdu)
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
                op.status = _exception(pdu[8] if len(pdu) > 8 else None)
            else:
                out.extend(self._response(op, pdu))
            if code in FUNCTIONS:
                cut = _cut_response(code, fc, pdu)
                if cut is not None:
                    out.append(Anomaly("modbus", "truncated_pdu", cut))
        op.target = _target(code, op.address, op.quantity)
        return out

    def idle(self, from_orig: bool) -> bool:
        """A bulk unit fills ``pending`` and drains it again: neutral only from empty (no same-tid
        entry to replace, nothing to evict)."""
        return not self.pending

    @staticmethod
    def bulk(batch: PduBatch) -> BulkRows:
        """Polling: reads (fc 1-4) and writes (fc 5, 6, 15, 16) with their replies or exception replies.
        A unit is a run of requests with distinct tids, followed by as many responses answering them in
        order (same tid, same function): from an empty ``pending`` parse files each request (at most
        MAX_PENDING: nothing evicted) and pops it for its response, which inherits what was asked."""
        n = len(batch.start)
        data, start, length, flow = batch.data, batch.start, batch.length, batch.flow
        # the MBAP header, address and quantity (bytes past a PDU's end are masked by the length checks)
        header = gather(data, start, 13).view(np.uint8).reshape(-1, 13)
        # tid, protocol, length, unit + function, address, quantity
        words = np.ascontiguousarray(header[:, :12]).view(">u2").astype(np.int64)
        tid, address, quantity = words[:, 0], words[:, 4], words[:, 5]
        fc = header[:, 7].astype(np.int64)
        client = np.fromiter((d.client_is_orig for d in batch.dissectors), bool, len(batch.dissectors))
        request = batch.from_orig == client[flow]
        # fc 16 needs every value it keeps (an odd tail would make parse raise)
        fc16 = (fc == 16) & (length >= 13 + 2 * np.minimum(quantity, MAX_VALUES))
        # fc 15 and 16 with every byte their byte count announces (a cut one gets an anomaly from parse)
        whole = length >= 13 + header[:, 12].astype(np.int64)
        good_request = request & (length >= 12) & ((fc >= 1) & (fc <= 6) | (fc == 15) & whole | fc16 & whole)
        # replies with every byte their function needs (a cut one gets an anomaly from parse): a read's byte count
        # of values, a write's echo; an exception reply from its function code on
        need = np.where(fc >= 0x80, 8, np.where(fc <= 4, 9 + header[:, 8].astype(np.int64), 12))
        good_response = ~request & (length >= 8) & (length >= need)

        # runs of requests of one flow; the PDUs right after a run of k are its candidate k responses
        change = np.ones(n, bool)
        change[1:] = (flow[1:] != flow[:-1]) | (request[1:] != request[:-1])
        runs = np.flatnonzero(change)
        size = np.diff(runs, append=n)
        keep = request[runs] & (size <= MAX_PENDING)
        runs, size = runs[keep], size[keep]
        first = np.cumsum(size) - size
        asker = np.arange(int(size.sum())) + np.repeat(runs - first, size)
        answer = asker + np.repeat(size, size)
        answer[answer >= n] = asker[answer >= n]  # past the batch: a request, so no good response
        ok = (
            good_request[asker]
            & good_response[answer]
            & (flow[answer] == flow[asker])
            & (tid[answer] == tid[asker])
            & ((fc[answer] & 0x7F) == fc[asker])
        )
        run_ok = np.logical_and.reduceat(ok, first) if len(runs) else np.zeros(0, bool)
        # distinct tids in a run: a repeated one would replace the pending entry
        several = np.repeat(size > 1, size)
        keys = np.sort(np.repeat(np.arange(len(runs)), size)[several] << 16 | tid[asker[several]])
        run_ok[keys[1:][keys[1:] == keys[:-1]] >> 16] = False
        ok = np.repeat(run_ok, size)
        asker, answer, head = asker[ok], answer[ok], np.repeat(runs, size)[ok]
        unit = np.full(n, -1, np.int64)
        unit[asker] = head
        unit[answer] = head

        pdus = np.flatnonzero(unit >= 0)
        asked = np.arange(n)
        asked[answer] = asker
        asked = asked[pdus]
        is_request = request[pdus]
        code = fc[asked]
        address = address[asked]
        quantity = np.where((code == 5) | (code == 6), 1, quantity[asked])
        # name, access class and target only depend on what was asked: format each distinct one once
        keys, which = np.unique(code << 32 | address << 16 | quantity, return_inverse=True)
        asks = [(int(k) >> 32, int(k) >> 16 & 0xFFFF, int(k) & 0xFFFF) for k in keys]
        which = pa.array(which.astype(np.int32))
        exception = ~is_request & (fc[pdus] >= 0x80)
        status = np.where(exception, np.where(length[pdus] > 8, header[pdus, 8].astype(np.int64), 256), 257)
        written = np.flatnonzero(is_request & (code >= 5))
        details = np.full(len(pdus), -1, np.int32)
        details[written] = np.arange(len(written))
        writes = zip(pdus[written].tolist(), code[written].tolist(), quantity[written].tolist())
        values = [details_json({"values": _written(c, batch.pdu(i), q)}) for i, c, q in writes]
        columns = {
            "protocol": pa.repeat(pa.scalar("modbus", pa.string()), len(pdus)),
            "direction": _DIRECTION.take(pa.array((~is_request).astype(np.int8))),
            "function_code": pa.array(code.astype(np.int32)),
            "function_name": pa.array([FUNCTIONS[c][0] for c, _, _ in asks], pa.string()).take(which),
            "access_class": pa.array([FUNCTIONS[c][1] for c, _, _ in asks], pa.string()).take(which),
            "status": _STATUS.take(pa.array(status.astype(np.int16))),
            "transaction_id": pa.array(tid[pdus].astype(np.int32)),
            "unit_id": pa.array(header[pdus, 6].astype(np.int32)),
            "address": pa.array(address.astype(np.int32)),
            "quantity": pa.array(quantity.astype(np.int32)),
            "target": pa.array([_target(*a) for a in asks], pa.string()).take(which),
            "details": pa.array(values, pa.string()).take(pa.array(details, mask=details < 0)),
        }
        return BulkRows(unit, pdus, columns)

    def _request(self, op: Operation, pdu: bytes) -> None:
        code, n = op.function_code, len(pdu)
        details: dict = {}
        if code in (1, 2, 3, 4, 15, 16) and n >= 12:
            op.address, op.quantity = _AQ.unpack_from(pdu, 8)
            if code in (15, 16):
                details["values"] = _written(code, pdu, op.quantity)
        elif code in (5, 6) and n >= 12:
            op.address, op.quantity = _AQ.unpack_from(pdu, 8)[0], 1
            details["values"] = _written(code, pdu, 1)
        elif code == 22 and n >= 14:
            op.address, and_mask, or_mask = struct.unpack_from("!HHH", pdu, 8)
            op.quantity = 1
            details.update(and_mask=and_mask, or_mask=or_mask)
        elif code == 23 and n >= 16:
            read_address, read_quantity, op.address, op.quantity = _RW.unpack_from(pdu, 8)
            details.update(read_address=read_address, read_quantity=read_quantity)
        elif code == 24 and n >= 10:
            op.address = _AQ.unpack_from(pdu + b"\0\0", 8)[0]
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
