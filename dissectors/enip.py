"""EtherNet/IP: encapsulation on TCP/UDP 44818 (with the CIP it carries) and implicit I/O on UDP 2222.

One ``enip`` operation per encapsulation PDU (24-byte header + data), one ``cip``
operation per CIP message in its SendRRData/SendUnitData items (dissectors/cip.py),
one ``cip_io`` operation per implicit I/O datagram. ListIdentity replies (and
Identity object attributes read directly from the device) become Identity records.
Command names follow Zeek ICSNPP's enip.log in upper snake case.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass, field
from typing import ClassVar

from .base import REQUEST, RESPONSE, Anomaly, Dissector, FramedStream, Identity, Operation, Record
from .cip import CipSession, Context, identity_fields

# Encapsulation commands (CIP Vol. 2 Table 2-3.2) -> (name, access class). Codes not listed are reserved for
# future expansion; the legacy ranges are Rockwell's pre-standard commands, still seen on the wire.
COMMANDS: dict[int, tuple[str, str]] = {
    0x0000: ("NOP", "other"),
    0x0004: ("LIST_SERVICES", "diagnostic"),
    0x0063: ("LIST_IDENTITY", "diagnostic"),
    0x0064: ("LIST_INTERFACES", "diagnostic"),
    0x0065: ("REGISTER_SESSION", "session"),
    0x0066: ("UNREGISTER_SESSION", "session"),
    0x006F: ("SEND_RR_DATA", "other"),  # carries CIP: the cip rows say what it does
    0x0070: ("SEND_UNIT_DATA", "other"),
    0x0072: ("INDICATE_STATUS", "diagnostic"),
    0x0073: ("CANCEL", "other"),
    0x00C8: ("START_DTLS", "session"),  # Wireshark's name; added in later editions of the spec
    **{c: (f"LEGACY_0x{c:04X}", "other") for c in (0x0001, 0x0002, 0x0003, 0x0005, *range(0x0067, 0x006F), 0x0071,
                                                    *range(0x0074, 0x00C8))},
}  # fmt: skip

# encapsulation status (Vol. 2 Table 2-3.3), named as ICSNPP does; 0 (success) is None
STATUSES: dict[int, str] = {
    0x0001: "INVALID_UNSUPPORTED_COMMAND",
    0x0002: "INSUFFICIENT_MEMORY_RESOURCES",
    0x0003: "MALFORMED_OR_INCORRECT_DATA",
    0x0064: "INVALID_SESSION_HANDLE",
    0x0065: "INVALID_LENGTH",
    0x0069: "UNSUPPORTED_PROTOCOL_VERSION",
    0x006A: "CIP_SERVICE_NOT_ALLOWED",
}

# Common Packet Format item type ids
NULL_ADDRESS, CIP_IDENTITY, CONNECTED_ADDRESS, CONNECTED_DATA, UNCONNECTED_DATA = 0x0000, 0x000C, 0x00A1, 0x00B1, 0x00B2
LIST_SERVICES_ITEM, SEQUENCED_ADDRESS = 0x0100, 0x8002

_HDR = struct.Struct("<HHII8sI")  # command, length, session handle, status, sender context, options
_H = struct.Struct("<H")
_U32 = struct.Struct("<I")
_ITEM = struct.Struct("<HH")
_RR = struct.Struct("<IH")  # interface handle, timeout
_SEQ_ADDR = struct.Struct("<II")  # connection id, encapsulation sequence number
_IDENTITY = struct.Struct("<H2xH4s8xHHHBBHIB")  # version, sockaddr (port, address: big endian), vendor .. name length
_LIST_SERVICE = struct.Struct("<HH16s")  # version, capability flags, name
MAX_LENGTH = 65511  # the largest encapsulated data length the spec allows
MAX_ITEMS = 32


def _items(b: bytes, pos: int, end: int) -> tuple[list[tuple[int, int, int]], str | None]:
    """Common Packet Format: [(type id, data offset, length)], and what is wrong with it, if anything."""
    if pos + 2 > end:
        return [], "no item count"
    count = _H.unpack_from(b, pos)[0]
    pos += 2
    items = []
    for i in range(min(count, MAX_ITEMS)):
        if pos + 4 > end:
            return items, f"item {i + 1} of {count} missing"
        type_id, length = _ITEM.unpack_from(b, pos)
        pos += 4
        if pos + length > end:
            return items, f"item {i + 1} (type 0x{type_id:04x}) claims {length} bytes, {end - pos} left"
        items.append((type_id, pos, length))
        pos += length
    if count > MAX_ITEMS:
        return items, f"{count} items, only {MAX_ITEMS} decoded"
    return items, None


@dataclass
class EtherNetIP(FramedStream):
    name: ClassVar[str] = "enip"
    transports: ClassVar[frozenset[str]] = frozenset({"tcp", "udp"})
    ports: ClassVar[frozenset[int]] = frozenset({44818})
    header_len: ClassVar[int] = 24
    max_buffer: ClassVar[int] = 24 + MAX_LENGTH
    cip: CipSession = field(default_factory=CipSession)

    @classmethod
    def probe(cls, payload: bytes, by_port: bool) -> bool:
        if len(payload) < 24:  # the start of a split header: judge what is there
            if not by_port or len(payload) < 2:
                return by_port
            command = _H.unpack_from(payload)[0]
            return command in COMMANDS and (len(payload) < 4 or _H.unpack_from(payload, 2)[0] <= MAX_LENGTH)
        command, length, _session, status, _ctx, options = _HDR.unpack_from(payload)
        if command not in COMMANDS or length > MAX_LENGTH:
            return False
        return by_port or (options == 0 and (status == 0 or status in STATUSES) and len(payload) == 24 + length)

    def pdu_length(self, buf: bytearray, pos: int, from_orig: bool, strict: bool) -> int:
        command, length, _session, status, _ctx, options = _HDR.unpack_from(buf, pos)
        if command not in COMMANDS or length > MAX_LENGTH or (status and status not in STATUSES):
            return -1
        if strict and (options != 0 or command in (0x006F, 0x0070) and length < 10 or command == 0x0065 and length != 4):
            return -1  # found by scanning: the rest of the header must look right too
        return 24 + length

    def parse(self, pdu: bytes, from_orig: bool) -> list[Record]:
        command, length, session, status, context, options = _HDR.unpack_from(pdu)
        name, access = COMMANDS.get(command, (f"UNKNOWN_0x{command:04X}", "other"))
        details: dict = {"session_handle": f"0x{session:08x}", "sender_context": "0x" + context.hex(), "length": length}
        if options:
            details["options"] = options
        direction = REQUEST if from_orig == self.client_is_orig else RESPONSE  # unless the PDU says otherwise
        op = Operation("enip", direction, command, name, access, details=details)
        if status:
            op.status = STATUSES.get(status, f"UNKNOWN_ENIP_STATUS_0x{status:02X}")
            details["enip_status_code"] = status
        out: list[Record] = [op]
        end = len(pdu)
        if command in (0x006F, 0x0070):
            self._send_data(pdu, name, context, op, out)
        elif command in (0x0001, 0x0004, 0x0063, 0x0064):
            # List*: the request has no data, the reply a CPF list (so is Rockwell's legacy 0x0001)
            op.direction = RESPONSE if length else REQUEST
            if length:
                items, problem = _items(pdu, 24, end)
                details["items"] = [{"type_id": t, "length": n} for t, _, n in items]
                if problem:
                    out.append(Anomaly("enip", "malformed_pdu", f"{name}: {problem}"))
                for type_id, pos, n in items:
                    if type_id == CIP_IDENTITY:
                        self._identity(pdu, pos, pos + n, details, out)
                    elif type_id == LIST_SERVICES_ITEM and n >= _LIST_SERVICE.size:
                        version, flags, sname = _LIST_SERVICE.unpack_from(pdu, pos)
                        service = {"name": sname.split(b"\0", 1)[0].decode("latin-1"), "capability_flags": flags,
                                   "version": version}  # fmt: skip
                        details.setdefault("services", []).append(service)
        elif command == 0x0065:  # RegisterSession: the reply carries the handle the target assigned
            op.direction = RESPONSE if session else REQUEST
            if length >= 4:
                details["protocol_version"], details["options_flags"] = _ITEM.unpack_from(pdu, 24)
        elif command in (0x0000, 0x0066):  # NOP and UnRegisterSession have no reply
            op.direction = REQUEST
        if status:  # only a target reports a status
            op.direction = RESPONSE
        return out

    def _send_data(self, pdu: bytes, name: str, context: bytes, op: Operation, out: list[Record]) -> None:
        """SendRRData / SendUnitData: interface handle, timeout, CPF items with the CIP messages."""
        details = op.details
        end = len(pdu)
        if end <= 30 and op.status:  # an error reply may carry no items
            if end == 30:
                details["interface_handle"], details["timeout"] = _RR.unpack_from(pdu, 24)  # type: ignore[index]
            return
        if end < 30:
            out.append(Anomaly("enip", "malformed_pdu", f"{name} of {end - 24} bytes: no interface handle and timeout"))
            return
        details["interface_handle"], details["timeout"] = _RR.unpack_from(pdu, 24)  # type: ignore[index]
        items, problem = _items(pdu, 30, end)
        details["items"] = [{"type_id": t, "length": n} for t, _, n in items]  # type: ignore[index]
        if problem:
            out.append(Anomaly("enip", "malformed_pdu", f"{name}: {problem}"))
        connection_id = None
        direction = None
        cip = self.cip
        for type_id, pos, n in items:
            if type_id == CONNECTED_ADDRESS and n >= 4 or type_id == SEQUENCED_ADDRESS and n >= 8:
                connection_id = f"0x{_U32.unpack_from(pdu, pos)[0]:08x}"
                details["connection_id"] = connection_id  # type: ignore[index]
            elif type_id == UNCONNECTED_DATA:
                if n and direction is None:
                    direction = RESPONSE if pdu[pos] & 0x80 else REQUEST
                ctx = Context(name, False, None, None, ("rr", context))
                out.extend(cip.message(pdu, pos, pos + n, ctx))
            elif type_id == CONNECTED_DATA:
                if n < 2:
                    out.append(Anomaly("enip", "malformed_pdu", f"{name}: connected data item of {n} bytes"))
                    continue
                sequence = _H.unpack_from(pdu, pos)[0]
                if n > 2 and direction is None:
                    direction = RESPONSE if pdu[pos + 2] & 0x80 else REQUEST
                ctx = Context(name, True, connection_id, sequence, ("ud", sequence))
                op.transaction_id = sequence  # as on the cip rows: pairs a connected request with its reply
                ctx.routed = cip.routed_connections.get(connection_id, True) if connection_id else True
                out.extend(cip.message(pdu, pos + 2, pos + n, ctx))
        if direction is not None:
            op.direction = direction

    @staticmethod
    def _identity(b: bytes, pos: int, end: int, details: dict, out: list[Record]) -> None:
        """A ListIdentity CIP Identity item: an Identity record for the device that sent it."""
        if pos + _IDENTITY.size > end:
            out.append(Anomaly("enip", "malformed_pdu", f"CIP Identity item of {end - pos} bytes"))
            return
        version, port, addr, vendor, dtype, product, major, minor, status, serial, n = _IDENTITY.unpack_from(b, pos)
        name_at = pos + _IDENTITY.size
        name = b[name_at : name_at + n].decode("latin-1") if name_at + n <= end else None
        fields = identity_fields(vendor, dtype, product, major, minor, serial, name)
        port = (port >> 8) | ((port & 0xFF) << 8)  # sin_port is big endian
        fields["address"] = f"{socket.inet_ntoa(addr)}:{port}"
        item = dict(fields)
        item.update({"encapsulation_version": version, "device_status": f"0x{status:04x}"})
        if name_at + n < end:
            item["device_state"] = f"0x{b[name_at + n]:04x}"
        details.setdefault("identity", []).append(item)
        out.append(Identity("enip", fields))


class CipIO(Dissector):
    """CIP implicit (class 0/1) I/O on UDP 2222: one operation per datagram.

    Cyclic data exchange has no request or reply: ``direction`` is the flow side
    (request: from the client side, normally the originator), and the access class is ``other``."""

    name: ClassVar[str] = "cip_io"
    transports: ClassVar[frozenset[str]] = frozenset({"udp"})
    ports: ClassVar[frozenset[int]] = frozenset({2222})

    @classmethod
    def probe(cls, payload: bytes, by_port: bool) -> bool:
        if len(payload) < 6:
            return False
        count, type_id, length = struct.unpack_from("<HHH", payload)
        address = type_id == SEQUENCED_ADDRESS and length == 8 or type_id == CONNECTED_ADDRESS and length == 4
        return 1 <= count <= 4 and address

    def feed(self, data: bytes, from_orig: bool) -> list[Record]:
        return self.parse(data, from_orig)

    def datagram(self, data: bytes, from_orig: bool) -> list[Record]:
        return self.parse(data, from_orig)

    def parse(self, data: bytes, from_orig: bool) -> list[Record]:
        """One datagram: the unit of CIP I/O."""
        items, problem = _items(data, 0, len(data))
        out: list[Record] = []
        if problem:
            out.append(Anomaly("cip_io", "malformed_pdu", problem))
        details: dict = {}
        found = False
        for type_id, pos, n in items:
            if type_id == SEQUENCED_ADDRESS and n >= 8:
                cid, seq = _SEQ_ADDR.unpack_from(data, pos)
                details["connection_id"] = f"0x{cid:08x}"
                details["sequence_number"] = seq
            elif type_id == CONNECTED_ADDRESS and n >= 4:
                details["connection_id"] = f"0x{_U32.unpack_from(data, pos)[0]:08x}"
            elif type_id == CONNECTED_DATA:
                found = True
                details["data_length"] = n
                if n >= 2:  # class 1 connections start with a CIP sequence count (class 0 ones do not)
                    details["cip_sequence_count"] = _H.unpack_from(data, pos)[0]
        if "connection_id" not in details or not found:
            if not problem:
                out.append(Anomaly("cip_io", "malformed_pdu", f"no address and data item in {len(data)} bytes"))
            return out
        target = f"connection {details['connection_id']}"
        direction = REQUEST if from_orig == self.client_is_orig else RESPONSE
        out.append(Operation("cip_io", direction, None, "IO_DATA", "other", target=target,
                             details=details))  # fmt: skip
        return out
