"""The EtherNet/IP encapsulation on TCP/UDP 44818: one ``enip`` operation per PDU (HEADER + data), and the CIP
messages of its SendRRData/SendUnitData items handed to the flow's CipSession (dissectors/cip/session.py)."""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from ..base import REQUEST, RESPONSE, Anomaly, FramedStream, Identity, Operation, Record
from ..bulk import gather
from ..cip.identity import IDENTITY, identity_attributes, identity_fields
from ..cip.session import CipSession, Context
from .bulk import tag_polls
from .consts import (
    CIP_IDENTITY,
    COMMANDS,
    CONNECTED_ADDRESS,
    CONNECTED_DATA,
    LIST_SERVICES_ITEM,
    MAX_LENGTH,
    SEQUENCED_ADDRESS,
    STATUSES,
    UNCONNECTED_DATA,
)
from .wire import CONNECTED, HEADER, LIST_SERVICE, REGISTER, SEND_DATA, SEQUENCE_COUNT, SEQUENCED, SOCKADDR, cpf_items

_U16 = struct.Struct("<H")  # the command, then the length, of a header cut short
_IS_COMMAND = np.zeros(1 << 16, bool)  # COMMANDS as a lookup table, for pdu_lengths
_IS_COMMAND[list(COMMANDS)] = True


@dataclass
class EtherNetIP(FramedStream):
    name = "enip"
    transports: ClassVar[frozenset[str]] = frozenset({"tcp", "udp"})
    ports: ClassVar[frozenset[int]] = frozenset({44818})
    header_len: ClassVar[int] = HEADER.size
    max_buffer: ClassVar[int] = HEADER.size + MAX_LENGTH
    cip: CipSession = field(default_factory=CipSession)
    bulk = staticmethod(tag_polls)

    @classmethod
    def probe(cls, payload: bytes, by_port: bool) -> bool:
        if len(payload) < HEADER.size:  # the start of a split header: judge what is there
            if not by_port or len(payload) < 2:
                return by_port
            command = _U16.unpack_from(payload)[0]
            return command in COMMANDS and (len(payload) < 4 or _U16.unpack_from(payload, 2)[0] <= MAX_LENGTH)
        command, length, _session, status, _ctx, options = HEADER.unpack_from(payload)
        if command not in COMMANDS or length > MAX_LENGTH:
            return False
        whole = len(payload) == HEADER.size + length
        return by_port or (options == 0 and (status == 0 or status in STATUSES) and whole)

    @staticmethod
    def pdu_lengths(data: np.ndarray, start: np.ndarray, length: np.ndarray) -> np.ndarray:
        """pdu_length (not strict) at many starts at once: -1 where it would be, or
        where fewer than header_len bytes are there."""
        h = gather(data, start, HEADER.size).view(HEADER.dtype)
        command, size, status = h["command"], h["length"].astype(np.int64), h["status"]
        ok = (length >= HEADER.size) & _IS_COMMAND[command] & (size <= MAX_LENGTH)
        failed = status != 0
        if failed.any():
            ok[failed] &= np.isin(status[failed], list(STATUSES))
        return np.where(ok, HEADER.size + size, -1)

    def pdu_length(self, buf: bytes | bytearray, pos: int, from_orig: bool, strict: bool) -> int:
        command, length, _session, status, _ctx, options = HEADER.unpack_from(buf, pos)
        if command not in COMMANDS or length > MAX_LENGTH or (status and status not in STATUSES):
            return -1
        if strict and (
            options != 0 or (command in (0x006F, 0x0070) and length < 10) or (command == 0x0065 and length != 4)
        ):
            return -1  # found by scanning: the rest of the header must look right too
        return HEADER.size + length

    def idle(self, from_orig: bool) -> bool:
        """No CIP request waiting for its reply: then a bulk unit's replies pair with its own requests only, and
        popping their entries empties ``pending`` again (the unit touches no other state)."""
        return not self.cip.pending

    def parse(self, pdu: bytes, from_orig: bool) -> list[Record]:
        command, length, session, status, context, options = HEADER.unpack_from(pdu)
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
                items, problem = cpf_items(pdu, HEADER.size, end)
                details["items"] = [{"type_id": t, "length": n} for t, _, n in items]
                if problem:
                    out.append(Anomaly("enip", "malformed_pdu", f"{name}: {problem}"))
                for type_id, pos, n in items:
                    if type_id == CIP_IDENTITY:
                        self._identity(pdu, pos, pos + n, details, out)
                    elif type_id == LIST_SERVICES_ITEM and n >= LIST_SERVICE.size:
                        version, flags, sname = LIST_SERVICE.unpack_from(pdu, pos)
                        service = {"name": sname.split(b"\0", 1)[0].decode("latin-1"), "capability_flags": flags,
                                   "version": version}  # fmt: skip
                        details.setdefault("services", []).append(service)
        elif command == 0x0065:  # RegisterSession: the reply carries the handle the target assigned
            op.direction = RESPONSE if session else REQUEST
            if length >= 4:
                details["protocol_version"], details["options_flags"] = REGISTER.unpack_from(pdu, HEADER.size)
        elif command in (0x0000, 0x0066):  # NOP and UnRegisterSession have no reply
            op.direction = REQUEST
        if status:  # only a target reports a status
            op.direction = RESPONSE
        return out

    def _send_data(self, pdu: bytes, name: str, context: bytes, op: Operation, out: list[Record]) -> None:
        """SendRRData / SendUnitData: interface handle, timeout, CPF items with the CIP messages."""
        details: dict = op.details  # type: ignore[assignment]
        end = len(pdu)
        items_at = HEADER.size + SEND_DATA.size
        if end <= items_at and op.status:  # an error reply may carry no items
            if end == items_at:
                details["interface_handle"], details["timeout"] = SEND_DATA.unpack_from(pdu, HEADER.size)
            return
        if end < items_at:
            text = f"{name} of {end - HEADER.size} bytes: no interface handle and timeout"
            out.append(Anomaly("enip", "malformed_pdu", text))
            return
        details["interface_handle"], details["timeout"] = SEND_DATA.unpack_from(pdu, HEADER.size)
        items, problem = cpf_items(pdu, items_at, end)
        details["items"] = [{"type_id": t, "length": n} for t, _, n in items]
        if problem:
            out.append(Anomaly("enip", "malformed_pdu", f"{name}: {problem}"))
        connection_id = None
        direction = None
        cip = self.cip
        for type_id, pos, n in items:
            if (type_id == CONNECTED_ADDRESS and n >= CONNECTED.size) or (
                type_id == SEQUENCED_ADDRESS and n >= SEQUENCED.size
            ):
                connection_id = f"0x{CONNECTED.unpack_from(pdu, pos)[0]:08x}"
                details["connection_id"] = connection_id
            elif type_id == UNCONNECTED_DATA:
                if n and direction is None:
                    direction = RESPONSE if pdu[pos] & 0x80 else REQUEST
                ctx = Context(name, False, None, None, ("rr", context))
                out.extend(cip.message(pdu, pos, pos + n, ctx))
            elif type_id == CONNECTED_DATA:
                if n < SEQUENCE_COUNT.size:
                    out.append(Anomaly("enip", "malformed_pdu", f"{name}: connected data item of {n} bytes"))
                    continue
                sequence = SEQUENCE_COUNT.unpack_from(pdu, pos)[0]
                message = pos + SEQUENCE_COUNT.size
                if message < pos + n and direction is None:
                    direction = RESPONSE if pdu[message] & 0x80 else REQUEST
                ctx = Context(name, True, connection_id, sequence, ("ud", sequence))
                op.transaction_id = sequence  # as on the cip rows: pairs a connected request with its reply
                ctx.routed = cip.routed_connections.get(connection_id, True) if connection_id else True
                out.extend(cip.message(pdu, message, pos + n, ctx))
        if direction is not None:
            op.direction = direction

    @staticmethod
    def _identity(b: bytes, pos: int, end: int, details: dict, out: list[Record]) -> None:
        """A ListIdentity CIP Identity item: an Identity record for the device that sent it."""
        head = pos + SOCKADDR.size  # IDENTITY, then the name
        attrs = identity_attributes(b, head, end)
        if attrs is None:
            out.append(Anomaly("enip", "malformed_pdu", f"CIP Identity item of {end - pos} bytes"))
            return
        version, port, addr = SOCKADDR.unpack_from(b, pos)
        fields = identity_fields(attrs)
        port = (port >> 8) | ((port & 0xFF) << 8)  # sin_port is big endian
        fields["address"] = f"{socket.inet_ntoa(addr)}:{port}"
        item = dict(fields)
        item.update({"encapsulation_version": version, "device_status": f"0x{attrs[5]:04x}"})
        state = head + IDENTITY.size + b[head + IDENTITY.offset["name_length"]]  # after the name
        if state < end:
            item["device_state"] = f"0x{b[state]:04x}"
        details.setdefault("identity", []).append(item)
        out.append(Identity("enip", fields))
