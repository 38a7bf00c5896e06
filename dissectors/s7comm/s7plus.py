"""S7comm-plus (protocol id 0x72): version, opcode and function, one operation a PDU, fragments reassembled.

``S7Plus`` holds the first fragment of a PDU until its last, and pairs responses with requests by sequence
number through the connection's ``Session``; the access class of a request is refined from the object it
acts on (the session itself, the CPU's operating state).
"""

from __future__ import annotations

import struct

from ..base import REQUEST, RESPONSE, Anomaly, Operation, Record
from ..layout import Layout
from .consts import (
    S7P_AREAS,
    S7P_CPU_EXEC_UNIT,
    S7P_CREATE_OBJECT,
    S7P_DELETE_OBJECT,
    S7P_DIGEST_LEN,
    S7P_ERROR,
    S7P_EXT_KEEPALIVE,
    S7P_FUNCTIONS,
    S7P_GET_MULTI,
    S7P_KEEPALIVE,
    S7P_NOTIFICATION,
    S7P_OBJECTS,
    S7P_OPCODES,
    S7P_REQUEST,
    S7P_SESSION_CONTAINER,
    S7P_SET_MULTI,
    S7P_SET_VARIABLE,
    S7P_V3,
    S7P_VERSIONS,
)
from .fields import Malformed, u8
from .session import Session

HEADER = Layout("!", ("protocol_id", "B"), ("version", "B"), ("data_length", "H"))
TRAILER_LEN = HEADER.size  # the trailer has the header's shape (0x72, version, length 0): ends a PDU's last fragment
# the data part: opcode, function, sequence number; a request goes on with the session id and transport flags
DATA = Layout("!", ("opcode", "B"), (None, "2x"), ("function", "H"), (None, "2x"), ("sequence_number", "H"))
REQUEST_HEAD = DATA + Layout("!", ("session_id", "I"), ("transport_flags", "B"))
S7P_FUNCTION_END = DATA.offset["function"] + 2  # bytes of the data part up to its function
_FUNCTION = Layout("!", ("function", "H"))
_U32 = Layout("!", ("value", "I"))
_BROKEN = (Malformed, IndexError, struct.error, ValueError)  # a field past the end, or not what its type says


class S7Plus:
    """The S7comm-plus PDUs of one flow."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.frags: dict[bool, tuple | None] = {True: None, False: None}  # (data part, details) of a first fragment

    def gap(self, from_orig: bool) -> None:
        self.frags[from_orig] = None

    def pdu(self, pdu: bytes, from_orig: bool, from_client: bool) -> list[Record]:
        """One S7comm-plus PDU or fragment (reassembled from its COTP DT units)."""
        n = len(pdu)
        if n < HEADER.size:
            return [Anomaly("s7comm_plus", "bad_header", f"S7comm-plus header truncated: {n} bytes")]
        _pid, version, dlength = HEADER.unpack_from(pdu)
        details: dict = {"version": version, "version_name": S7P_VERSIONS.get(version, f"0x{version:02x}")}
        if version in (S7P_KEEPALIVE, S7P_EXT_KEEPALIVE):
            direction = REQUEST if from_client else RESPONSE
            return [Operation("s7comm_plus", direction, None, S7P_VERSIONS[version], "session", details=details)]
        has_trailer = n > dlength + HEADER.size
        off = HEADER.size
        if version == S7P_V3 and n > off + S7P_DIGEST_LEN and pdu[off] == S7P_DIGEST_LEN:
            details["integrity_protected"] = True  # V3: digest over the PDU, keyed by the session
            off += 1 + S7P_DIGEST_LEN
        cut = _cut(n, dlength)
        held = self.frags[from_orig]
        if held is not None:  # inner or last fragment of a PDU that began earlier
            first_body, first_details = held
            first_details["fragments"] += 1
            if not has_trailer and not cut:
                return []
            self.frags[from_orig] = None
            return [*cut, *self.operation(first_body, first_details, from_orig, from_client)]
        if cut:  # the data part runs past the PDU: what the header and the bytes there say, with the anomaly
            return [*cut, *self.operation(pdu[off : HEADER.size + dlength], details, from_orig, from_client)]
        if not has_trailer:  # first fragment: the opcode and function are in it, the PDU ends later
            details["fragments"] = 1
            self.frags[from_orig] = (pdu[off:], details)
            return []
        return self.operation(pdu[off : HEADER.size + dlength], details, from_orig, from_client)

    def head(self, head: bytes, from_orig: bool, from_client: bool) -> list[Record]:
        """The operation of a PDU too long to reassemble, from its first bytes (no keep-alive: those are short)."""
        off = HEADER.size
        if len(head) <= off or head[1] in (S7P_KEEPALIVE, S7P_EXT_KEEPALIVE):
            return []
        version = head[1]
        if version == S7P_V3 and head[off] == S7P_DIGEST_LEN:
            off += 1 + S7P_DIGEST_LEN
        details = {"version": version, "version_name": S7P_VERSIONS.get(version, f"0x{version:02x}")}
        return self.operation(head[off:], details, from_orig, from_client)

    def operation(self, body: bytes, details: dict, from_orig: bool, from_client: bool) -> list[Record]:
        """The operation of a data part: opcode, function and sequence number, paired with its request."""
        out: list[Record] = []
        if not body:
            out.append(Anomaly("s7comm_plus", "bad_header", "S7comm-plus PDU without a data part"))
            return out
        opcode = body[0]
        opname, direction = S7P_OPCODES.get(opcode, (f"UNKNOWN_OPCODE_0x{opcode:02x}", RESPONSE))
        details["opcode"], details["opcode_name"] = opcode, opname
        if opcode not in S7P_OPCODES:
            direction = REQUEST if from_client else RESPONSE
            out.append(Operation("s7comm_plus", direction, None, opname, "other", details=details))
            return out
        if direction == RESPONSE:
            self.session.plc("s7comm_plus", from_orig, out)
        if opcode == S7P_NOTIFICATION:
            if len(body) >= 1 + _U32.size:
                details["subscription_object_id"] = _U32.unpack_from(body, 1)[0]
            out.append(Operation("s7comm_plus", direction, None, "NOTIFICATION", "read", details=details))
            return out
        if len(body) < S7P_FUNCTION_END:
            out.append(Anomaly("s7comm_plus", "bad_header", f"S7comm-plus {opname} of {len(body)} bytes"))
            out.append(Operation("s7comm_plus", direction, None, opname, "other", details=details))
            return out
        func = _FUNCTION.unpack_from(body, DATA.offset["function"])[0]
        name, access = S7P_FUNCTIONS.get(func, (f"UNKNOWN_0x{func:04x}", "other"))
        if len(body) < DATA.size:  # cut in the sequence number: still the function's operation
            out.append(Anomaly("s7comm_plus", "bad_header", f"S7comm-plus {name} of {len(body)} bytes"))
            out.append(Operation("s7comm_plus", direction, func, name, access, details=details))
            return out
        _op, func, seq = DATA.unpack_from(body)
        details["sequence_number"] = seq
        op = Operation("s7comm_plus", direction, func, name, access, transaction_id=seq, details=details)
        try:
            if opcode == S7P_REQUEST:
                _request(body, func, op, details)
                self.session.remember(("+", from_orig, seq), (func, op.target, op.access_class))
            else:
                self._response(body, func, seq, op, details, from_orig)
        except _BROKEN:
            out.append(Anomaly("s7comm_plus", "bad_header", f"S7comm-plus {name} truncated or malformed"))
        out.append(op)
        return out

    def _response(self, body: bytes, func: int, seq: int, op: Operation, details: dict, from_orig: bool) -> None:
        """A response acts on what its request did; a negative return value is its error."""
        paired = self.session.answer(("+", not from_orig, seq))
        if paired is not None and paired[0] == func:
            op.target, op.access_class = paired[1], paired[2]
        if len(body) > DATA.size + 1:  # transport flags, then the return value (64-bit VLQ, low 16 bits: error code)
            value, _next = _vlq(body, DATA.size + 1, 9)
            code = value & 0xFFFF
            code = code - 0x10000 if code & 0x8000 else code
            if code < 0 or func == S7P_ERROR:
                details["return_value"] = value
                op.status = f"error code {code}"


def _cut(n: int, dlength: int) -> list[Record]:
    """The anomaly of an S7comm-plus PDU of n bytes cut short: in its data part (the header's length runs
    past it) or in its trailer. A PDU that ends right after its data part is a first fragment, not cut."""
    end = HEADER.size + dlength
    if n < end:
        problem = f"S7comm-plus data length {dlength} runs past the PDU ({n - HEADER.size} bytes after the header)"
        return [Anomaly("s7comm_plus", "bad_header", problem)]
    if end < n < end + TRAILER_LEN:
        return [Anomaly("s7comm_plus", "bad_header", f"S7comm-plus trailer cut at {n - end} bytes")]
    return []


def _request(body: bytes, func: int, op: Operation, details: dict) -> None:
    """Session id and the object or variables a request acts on; refines the access class."""
    if len(body) < REQUEST_HEAD.size:
        return
    session = REQUEST_HEAD.unpack_from(body)[-2]
    details["session_id"] = session
    p = REQUEST_HEAD.size
    if func == S7P_CREATE_OBJECT and session == S7P_SESSION_CONTAINER:
        op.access_class = "session"  # opening the session
        op.target = "session"
    elif func in (S7P_SET_VARIABLE, S7P_DELETE_OBJECT, S7P_SET_MULTI) and len(body) >= p + 4:
        obj = _U32.unpack_from(body, p)[0]
        if obj:
            details["object_id"] = obj
            op.target = S7P_OBJECTS.get(obj, f"object 0x{obj:08x}")
            if obj == session and func != S7P_SET_VARIABLE:
                op.access_class = "session"  # setting up or closing the session object itself
                op.target = "session"
            elif obj == S7P_CPU_EXEC_UNIT and func != S7P_DELETE_OBJECT:
                op.access_class = "control"  # operating state of the CPU: start / stop
        elif func in (S7P_SET_MULTI,):
            op.target = _address(body, p + 4)
    elif func == S7P_GET_MULTI and len(body) >= p + 4 and _U32.unpack_from(body, p)[0] == 0:
        op.target = _address(body, p + 4)


def _address(body: bytes, p: int) -> str | None:
    """The first item address of a Get/SetMultiVariables request, as the plugin shows it (DB2, M)."""
    count, p = _vlq(body, p)
    if not count:
        return None
    _fields, p = _vlq(body, p)
    _crc, p = _vlq(body, p)
    area, p = _vlq(body, p)
    if 0x8A0E0000 <= area <= 0x8A0EFFFF:
        first = f"DB{area & 0xFFFF}"
    else:
        first = S7P_AREAS.get(area) or S7P_OBJECTS.get(area) or f"object {area}"
    return first if count == 1 else f"{first} (+{count - 1} items)"


def _vlq(b: bytes, off: int, max_octets: int = 5) -> tuple[int, int]:
    """S7comm-plus variable-length integer: 7 bits per octet, high bit = more; the last octet
    of a full-length value carries 8 bits. Returns (value, next offset)."""
    value = 0
    for i in range(max_octets):
        octet = u8(b, off + i)
        if i == max_octets - 1:
            return (value << 8) | octet, off + i + 1
        value = (value << 7) | (octet & 0x7F)
        if not octet & 0x80:
            return value, off + i + 1
    raise Malformed  # not reached
