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

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .base import REQUEST, RESPONSE, Anomaly, Dissector, FramedStream, Identity, Operation, Record, details_json
from .bulk import BulkRows, PduBatch, gather, headers
from .cip.consts import SYMBOL_CLASS
from .cip.identity import IDENTITY, identity_attributes, identity_fields
from .cip.names import general_status, service_info
from .cip.session import CipSession, Context
from .layout import Layout

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
_IS_COMMAND = np.zeros(1 << 16, bool)  # COMMANDS as a lookup table, for pdu_lengths
_IS_COMMAND[list(COMMANDS)] = True

# Common Packet Format item type ids
NULL_ADDRESS, CIP_IDENTITY, CONNECTED_ADDRESS, CONNECTED_DATA, UNCONNECTED_DATA = 0x0000, 0x000C, 0x00A1, 0x00B1, 0x00B2
LIST_SERVICES_ITEM, SEQUENCED_ADDRESS = 0x0100, 0x8002

_HDR = struct.Struct("<HHII8sI")  # command, length, session handle, status, sender context, options
_H = struct.Struct("<H")
_U32 = struct.Struct("<I")
_ITEM = struct.Struct("<HH")
_RR = struct.Struct("<IH")  # interface handle, timeout
_SEQ_ADDR = struct.Struct("<II")  # connection id, encapsulation sequence number
# a ListIdentity CIP Identity item: encapsulation version, a sockaddr (sin_port big endian), then IDENTITY
_SOCKADDR = Layout(
    "<", ("encapsulation_version", "H"), (None, "2x"), ("sin_port", "H"), ("sin_addr", "4s"), (None, "8x")
)
_LIST_SERVICE = struct.Struct("<HH16s")  # version, capability flags, name
MAX_LENGTH = 65511  # the largest encapsulated data length the spec allows
MAX_ITEMS = 32


def _items(b: bytes, pos: int, end: int, keep_cut: bool = True) -> tuple[list[tuple[int, int, int]], str | None]:
    """Common Packet Format: [(type id, data offset, length)], and what is wrong with it, if anything. With
    ``keep_cut``, an item that runs past the end is kept with the bytes that are there."""
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
        if pos + length > end:  # cut: the item is kept with what is there, so its message header is still read
            if keep_cut:
                items.append((type_id, pos, end - pos))
            return items, f"item {i + 1} (type 0x{type_id:04x}) claims {length} bytes, {end - pos} left"
        items.append((type_id, pos, length))
        pos += length
    if count > MAX_ITEMS:
        return items, f"{count} items, only {MAX_ITEMS} decoded"
    return items, None


# --- bulk decoding (dissectors/bulk.py) -------------------------------------------------------------------------
# The polling shape: SendRRData requests, each with one unconnected Logix Read Tag or Write Tag on one tag name,
# and right after them in the flow their replies (no additional status) in the same order, matched by sender
# context: a request and its reply, or a few pipelined requests and their replies. parse() gives two rows a PDU
# and leaves the session as it found it: each reply pops the pending entry its request pushed. The details texts
# are made once per distinct value in the batch (tag, encapsulation tail, cip row), as the store encodes them.
_RR_FIELDS = np.dtype({
    "names": ["command", "length", "status", "context_lo", "context_hi", "options", "interface_handle", "timeout",
              "items", "null_item", "item", "item_length", "service", "path_words", "segment", "name_length"],
    "formats": ["<u2", "<u2", "<u4", "<u4", "<u4", "<u4", "<u4", "<u2", "<u2", "<u4", "<u2", "<u2", "u1", "u1", "u1",
                "u1"],
    "offsets": [0, 2, 8, 12, 16, 20, 24, 28, 30, 32, 36, 38, 40, 41, 42, 43],
    "itemsize": 44,
})  # fmt: skip
# the first 44 bytes: encapsulation header, handle, timeout, CPF item count, null address item, data item header,
# then the CIP service, path size, 0x91 and name length of a request (reply: service, reserved, general status,
# additional status size)
_MAX_PIPELINED = 4  # requests sent before the first reply
_HEX = np.frombuffer(b"".join(f"{i:02x}".encode() for i in range(256)), np.uint16)  # a byte's two hex digits
# an enip row's details up to the length, which has the same width on every row: the session handle's and
# sender context's hex digits go where the zeros are
_RR_HEAD = np.frombuffer(b'{"session_handle":"0x00000000","sender_context":"0x0000000000000000","length":', np.uint8)
_RR_SESSION, _RR_CONTEXT = slice(21, 29), slice(51, 67)
_RR_NAME, _RR_ACCESS = COMMANDS[0x006F]
_TAG_SERVICES = (0x4C, 0x4D)
_NAMES = pa.array([_RR_NAME, *(service_info(SYMBOL_CLASS, s)[0] for s in _TAG_SERVICES)])
_ACCESS = pa.array([_RR_ACCESS, *(service_info(SYMBOL_CLASS, s)[1] for s in _TAG_SERVICES)])
_STATUS_TEXT = pa.array([general_status(code) for code in range(256)], pa.string())
_PROTOCOLS = pa.array(["enip", "cip"])
_DIRECTIONS = pa.array([REQUEST, RESPONSE])


def _le(data: np.ndarray, at: np.ndarray, size: int) -> np.ndarray:
    """The little-endian unsigned integer of ``size`` bytes at each of ``at``."""
    return sum(data[at + i].astype(np.int64) << 8 * i for i in range(size))


def _distinct(keys: pa.Array) -> tuple[np.ndarray, list]:
    """Each key's index in the list of distinct keys, and that list: what varies in polling repeats a lot."""
    encoded = pc.dictionary_encode(keys)
    return encoded.indices.to_numpy(), encoded.dictionary.to_pylist()


def _bulk_tag_polls(batch: PduBatch) -> BulkRows:
    """Bulk rows for the polling shape above; every other PDU is left to parse()."""
    n = len(batch.start)
    unit = np.full(n, -1, np.int64)
    data, size = batch.data, batch.length  # data may hold more than these PDUs (a chunk of a capture): never copied
    long = size >= _RR_FIELDS.itemsize
    if not long.any():
        return BulkRows.none(n)
    at = np.where(long, batch.start, 0)  # a shorter PDU reads the first bytes of data instead, and is not taken
    head = gather(data, at, _RR_FIELDS.itemsize).view(np.uint8).reshape(-1, _RR_FIELDS.itemsize)
    h = head.view(_RR_FIELDS)[:, 0]
    service = h["service"]
    rr = long & (h["command"] == 0x006F) & (h["length"] == size - 24) & (h["status"] == 0) & (h["options"] == 0)
    rr &= (h["items"] == 2) & (h["null_item"] == NULL_ADDRESS) & (h["item"] == UNCONNECTED_DATA)
    rr &= h["item_length"] == size - 40
    # request: service, path size, one ANSI symbolic segment (0x91, length, name, pad), then the service data
    name_len = h["name_length"].astype(np.int64)
    data_at = 42 + 2 * h["path_words"].astype(np.int64)
    write = service == 0x4D
    req = rr & ((service == 0x4C) | write) & (h["segment"] == 0x91) & (name_len > 0)
    req &= (44 + name_len + (name_len & 1) == data_at) & np.where(write, size - data_at >= 4, size - data_at == 2)
    first = at + np.where(req, data_at, 0)  # Read Tag: elements; Write Tag: data type, elements, data
    req &= ~write | (_le(data, first, 2) != 0x02A0)  # a structure's data type is followed by its handle
    rep = rr & ((service == 0xCC) | (service == 0xCD)) & (h["name_length"] == 0)
    # units: j requests, then their j replies in the same order, in one flow; the longest first, so that a
    # pipelined run is not cut into a request/reply pair that starts mid-run
    context_lo, context_hi = h["context_lo"], h["context_hi"]
    partner = np.full(n, -1, np.int64)  # the request of each reply in a unit
    for j in range(_MAX_PIPELINED, 0, -1):
        span = n - 2 * j + 1
        if span <= 0:
            continue
        pair = req[:-j] & rep[j:] & (service[j:] == service[:-j] | 0x80) & (batch.flow[j:] == batch.flow[:-j])
        pair &= (context_lo[j:] == context_lo[:-j]) & (context_hi[j:] == context_hi[:-j])
        block = np.logical_and.reduce([pair[i : i + span] for i in range(j)])
        taken = np.concatenate(([0], np.cumsum(unit >= 0)))
        block &= taken[2 * j :] == taken[:span]
        starts = np.flatnonzero(block)[:, None]
        unit[starts + np.arange(2 * j)] = starts
        partner[starts + j + np.arange(j)] = starts + np.arange(j)
    pdus = np.flatnonzero(unit >= 0)
    m = len(pdus)
    if not m:
        return BulkRows(unit, np.zeros(0, np.int64), {})
    # two rows a PDU: the enip row, then the cip row
    p_head, p_first = head[pdus], first[pdus]
    hp = p_head.view(_RR_FIELDS)[:, 0]
    reply = partner[pdus] >= 0
    own = np.where(reply, partner[pdus], pdus)  # the request: its tag is the reply's target too
    asks = own[~reply]
    # tag names as keys: the name length, then the name, zero padded to the longest
    width = 1 + int(name_len[asks].max())
    keyed = gather(data, at[asks] + 43, width).view(np.uint8).reshape(-1, width)
    keyed[np.arange(width) > name_len[asks, None]] = 0
    tag_of_ask, names = _distinct(pa.Array.from_buffers(pa.binary(width), len(asks), [None, pa.py_buffer(keyed)]))
    tags = [name[1 : 1 + name[0]].decode("latin-1") for name in names]
    tag = tag_of_ask[np.searchsorted(asks, own)].astype(np.int64)
    is_write = ~reply & write[pdus]
    general = hp["segment"].astype(np.int64) * reply
    # details: an enip row is a head of fixed width then a tail, a cip row a text; tails and cip texts are few
    heads = np.empty((m, len(_RR_HEAD)), np.uint8)
    heads[:] = _RR_HEAD
    heads[:, _RR_SESSION] = _HEX[p_head[:, 7:3:-1]].view(np.uint8)
    heads[:, _RR_CONTEXT] = _HEX[p_head[:, 12:20]].view(np.uint8)
    offsets = (len(_RR_HEAD) * ((np.arange(2 * m + 1) + 1) // 2)).astype(np.int32)  # a cip row's head is empty
    heads = pa.Array.from_buffers(pa.string(), 2 * m, [None, pa.py_buffer(offsets), pa.py_buffer(heads)])
    tail_of, tails = _distinct(pa.array(hp["length"].astype(np.uint64) << np.uint64(48)
                                        | hp["timeout"].astype(np.uint64) << np.uint64(32) | hp["interface_handle"]))  # fmt: skip
    texts = []
    for key in tails:
        length = key >> 48
        enip = {"length": length, "interface_handle": key & 0xFFFFFFFF, "timeout": key >> 32 & 0xFFFF,
                "items": [{"type_id": NULL_ADDRESS, "length": 0}, {"type_id": UNCONNECTED_DATA, "length": length - 16}]}  # fmt: skip
        texts.append(details_json(enip)[len('{"length":') :])
    value = np.where(is_write, _le(data, p_first, 2), general)  # the data type of a write, the status of a reply
    cip_of, cips = _distinct(pa.array(tag << 26 | is_write << 25 | reply << 24 | value))
    for key in cips:
        cip = {"enip_command": _RR_NAME, "symbol": tags[key >> 26]}
        if key >> 25 & 1:
            cip["data_type"] = f"0x{key & 0xFFFF:04x}"
        if key >> 24 & 1:
            cip["cip_status_code"] = key & 0xFF
        texts.append(details_json(cip))
    text_of = pa.array(np.stack([tail_of, len(tails) + cip_of], 1).ravel())
    enip_row = np.tile([True, False], m)
    kind = np.stack([np.zeros(m, np.int64), 1 + write[own]], 1).ravel()
    quantity = np.repeat(_le(data, p_first + 2 * is_write, 2), 2).astype(np.int32)
    columns = {
        "protocol": _PROTOCOLS.take(pa.array(np.tile([0, 1], m))),
        "direction": _DIRECTIONS.take(pa.array(np.repeat(reply.astype(np.int64), 2))),
        "function_code": pa.array(np.stack([np.full(m, 0x006F), service[pdus] & 0x7F], 1).ravel().astype(np.int32)),
        "function_name": _NAMES.take(pa.array(kind)),
        "access_class": _ACCESS.take(pa.array(kind)),
        "status": _STATUS_TEXT.take(pa.array(np.stack([np.zeros(m, np.int64), general], 1).ravel())),
        "transaction_id": pa.nulls(2 * m, pa.int32()),
        "unit_id": pa.nulls(2 * m, pa.int32()),
        "address": pa.nulls(2 * m, pa.int32()),
        "quantity": pa.array(quantity, mask=np.stack([np.ones(m, bool), reply], 1).ravel()),
        "target": pa.array(tags, pa.string()).take(pa.array(np.repeat(tag, 2), mask=enip_row)),
        "details": pc.binary_join_element_wise(heads, pa.array(texts, pa.string()).take(text_of), ""),
    }
    return BulkRows(unit, np.repeat(pdus, 2), columns)


@dataclass
class EtherNetIP(FramedStream):
    name: ClassVar[str] = "enip"
    transports: ClassVar[frozenset[str]] = frozenset({"tcp", "udp"})
    ports: ClassVar[frozenset[int]] = frozenset({44818})
    header_len: ClassVar[int] = 24
    max_buffer: ClassVar[int] = 24 + MAX_LENGTH
    cip: CipSession = field(default_factory=CipSession)
    bulk = staticmethod(_bulk_tag_polls)

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

    @staticmethod
    def pdu_lengths(data: np.ndarray, start: np.ndarray, length: np.ndarray) -> np.ndarray:
        """pdu_length (not strict) at many starts at once: -1 where it would be, or
        where fewer than header_len bytes are there."""
        h, whole = headers(data, start, length, 12)
        command, size = h[:, 0] | h[:, 1] << 8, h[:, 2] | h[:, 3] << 8
        status = h[:, 8] | h[:, 9] << 8 | h[:, 10] << 16 | h[:, 11] << 24
        ok = whole & (length >= 24) & _IS_COMMAND[command] & (size <= MAX_LENGTH)
        failed = status != 0
        if failed.any():
            ok[failed] &= np.isin(status[failed], list(STATUSES))
        return np.where(ok, 24 + size, -1)

    def pdu_length(self, buf: bytearray, pos: int, from_orig: bool, strict: bool) -> int:
        command, length, _session, status, _ctx, options = _HDR.unpack_from(buf, pos)
        if command not in COMMANDS or length > MAX_LENGTH or (status and status not in STATUSES):
            return -1
        if strict and (
            options != 0 or command in (0x006F, 0x0070) and length < 10 or command == 0x0065 and length != 4
        ):
            return -1  # found by scanning: the rest of the header must look right too
        return 24 + length

    def idle(self, from_orig: bool) -> bool:
        """No CIP request waiting for its reply: then a bulk unit's replies pair with its own requests only, and
        popping their entries empties ``pending`` again (the unit touches no other state)."""
        return not self.cip.pending

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
        head = pos + _SOCKADDR.size  # IDENTITY, then the name
        attrs = identity_attributes(b, head, end)
        if attrs is None:
            out.append(Anomaly("enip", "malformed_pdu", f"CIP Identity item of {end - pos} bytes"))
            return
        version, port, addr = _SOCKADDR.unpack_from(b, pos)
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


class CipIO(Dissector):
    """CIP implicit (class 0/1) I/O on UDP 2222: one operation per datagram.

    Cyclic data exchange has no request or reply: ``direction`` is the flow side
    (request: from the client side, normally the originator), and the access class is ``other``."""

    name: ClassVar[str] = "cip_io"
    transports: ClassVar[frozenset[str]] = frozenset({"udp"})
    ports: ClassVar[frozenset[int]] = frozenset({2222})
    datagram_is_pdu: ClassVar[bool] = True  # datagram() is parse(): the columnar path hands datagrams over as PDUs

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
        items, problem = _items(data, 0, len(data), False)  # cyclic data cut short: nothing but the anomaly
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

    def idle(self, from_orig: bool) -> bool:
        """``parse`` keeps no state: every datagram stands alone."""
        return True

    @staticmethod
    def bulk(batch: PduBatch) -> BulkRows:
        """The class 1 datagram: two items, a Sequenced Address item (connection id, sequence number), then a
        Connected Data item that starts with the CIP sequence count; bytes after the items are ignored, as by parse.
        Text is built from bytes: the hex connection id at a fixed width, the numbers cast by Arrow."""
        n = len(batch.start)
        pdus = np.flatnonzero(batch.length >= 20)
        if not len(pdus):
            return BulkRows.none(n)
        # the 20 bytes of the shape as little-endian words: item count, address item type and length, connection
        # id (2 words), sequence number (2), data item type and length, CIP sequence count
        words = gather(batch.data, batch.start[pdus], 20).view("<u2").reshape(-1, 10)
        count, address, address_length, data_type, size = words[:, [0, 1, 2, 7, 8]].T
        shape = (count == 2) & (address == SEQUENCED_ADDRESS) & (address_length == 8) & (data_type == CONNECTED_DATA)
        keep = shape & (size >= 2) & (18 + size.astype(np.int64) <= batch.length[pdus])
        pdus, words = pdus[keep], words[keep].astype(np.uint32)
        unit = np.full(n, -1, np.int64)
        unit[pdus] = pdus
        m = len(pdus)

        def text(*parts: bytes | np.ndarray) -> pa.Array:
            """Fixed-width strings: byte strings (the same in every row) and (m, k) arrays of characters."""
            cells = np.hstack([np.broadcast_to(np.frombuffer(p, np.uint8), (m, len(p))) if isinstance(p, bytes) else p
                               for p in parts])  # fmt: skip
            width = cells.shape[1]
            offsets = np.arange(0, width * (m + 1), width, dtype=np.int32)
            return pa.StringArray.from_buffers(m, pa.py_buffer(offsets), pa.py_buffer(np.ascontiguousarray(cells)))

        def decimal(values: np.ndarray) -> pa.Array:
            return pc.cast(pa.array(values), pa.string())

        connection = words[:, 3] | words[:, 4] << 16
        hex_id = np.frombuffer(b"0123456789abcdef", np.uint8)[connection[:, None] >> np.arange(28, -4, -4) & 0xF]
        client = np.fromiter((d.client_is_orig for d in batch.dissectors), bool, len(batch.dissectors))
        response = batch.from_orig[pdus] != client[batch.flow[pdus]]
        sequence = words[:, 5] | words[:, 6] << 16
        pieces = (text(b'{"connection_id":"0x', hex_id, b'","sequence_number":'), decimal(sequence), ',"data_length":',
                  decimal(words[:, 8]), ',"cip_sequence_count":', decimal(words[:, 9]), "}", "")  # fmt: skip
        # the JSON pieces, then the separator; literals as Arrow scalars (pyarrow converts a str anew on every call)
        details = pc.binary_join_element_wise(*(pa.scalar(p, pa.string()) if isinstance(p, str) else p for p in pieces))
        ints = pa.nulls(m, pa.int32())
        columns = {
            "protocol": pa.repeat(pa.scalar("cip_io", pa.string()), m),
            "direction": pa.array([REQUEST, RESPONSE], pa.string()).take(pa.array(response.astype(np.int8))),
            "function_code": ints,
            "function_name": pa.repeat(pa.scalar("IO_DATA", pa.string()), m),
            "access_class": pa.repeat(pa.scalar("other", pa.string()), m),
            "status": pa.nulls(m, pa.string()),
            "transaction_id": ints,
            "unit_id": ints,
            "address": ints,
            "quantity": ints,
            "target": text(b"connection 0x", hex_id),
            "details": details,
        }
        return BulkRows(unit, pdus, columns)
