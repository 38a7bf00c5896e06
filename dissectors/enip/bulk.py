"""EtherNet/IP bulk decoding (dissectors/bulk.py): Logix tag polling, the common shape on 44818.

The polling shape: SendRRData requests, each with one unconnected Logix Read Tag or Write Tag on one tag name,
and right after them in the flow their replies (no additional status) in the same order, matched by sender
context: a request and its reply, or a few pipelined requests and their replies. parse() gives two rows a PDU
and leaves the session as it found it: each reply pops the pending entry its request pushed. The details are
made once per distinct value in the batch (encapsulation tail, cip row), the session handle and sender context
given per row.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..base import REQUEST, RESPONSE
from ..bulk import BulkRows, Details, PduBatch, gather
from ..cip.consts import SYMBOL_CLASS
from ..cip.names import general_status, service_info
from ..cip.session import REPLY_HEAD, REQUEST_HEAD
from ..layout import Layout
from .consts import COMMANDS, NULL_ADDRESS, UNCONNECTED_DATA
from .wire import COUNT, HEADER, ITEM, SEND_DATA, prefixed

# the fixed prefix of the shape: the encapsulation header, handle and timeout, the CPF item count, a Null Address
# item, the Unconnected Data item's header, then the CIP message's first bytes, read as a request (service, path
# size, then the first path segment: 0x91 and the tag name's length) and as a reply
_CPF = HEADER + SEND_DATA + COUNT + prefixed("null_", ITEM) + prefixed("data_", ITEM)
_ASK = _CPF + REQUEST_HEAD + Layout("<", ("segment", "B"), ("name_length", "B"))
_ANSWER = _CPF + REPLY_HEAD
_MESSAGE = _ASK.offset["service"]  # where the CIP message starts
_ITEMS = _MESSAGE - HEADER.size  # the data's bytes that are not the CIP message
_PATH = _ASK.offset["segment"]
_NAME = _ASK.size  # where the tag name starts
_MAX_PIPELINED = 4  # requests sent before the first reply
_HEX = np.frombuffer(b"".join(f"{i:02x}".encode() for i in range(256)), np.uint16)  # a byte's two hex digits
_SESSION, _CONTEXT = HEADER.offset["session_handle"], HEADER.offset["sender_context"]
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


@dataclass(slots=True)
class _Shape:
    """Each PDU of a batch read as the polling shape: its first bytes, and whether it is a request or reply of it."""

    head: np.ndarray  # (n, _ASK.size) uint8; a PDU shorter than that reads data's first bytes, and is not taken
    at: np.ndarray  # where each head was read
    first: np.ndarray  # where a request's service data starts (Read Tag: elements; Write Tag: data type)
    name_len: np.ndarray  # a request's tag name length
    write: np.ndarray  # the service is Write Tag
    request: np.ndarray
    reply: np.ndarray


def _shape(batch: PduBatch) -> _Shape | None:
    data, size = batch.data, batch.length  # data may hold more than these PDUs (a chunk of a capture): never copied
    long = size >= _ASK.size
    if not long.any():
        return None
    at = np.where(long, batch.start, 0)
    head = gather(data, at, _ASK.size).view(np.uint8).reshape(-1, _ASK.size)
    h = head.view(_ASK.dtype)[:, 0]
    service = h["service"]
    rr = long & (h["command"] == 0x006F) & (h["length"] == size - HEADER.size) & (h["status"] == 0)
    rr &= (h["options"] == 0) & (h["item_count"] == 2) & (h["null_type_id"] == NULL_ADDRESS) & (h["null_length"] == 0)
    rr &= (h["data_type_id"] == UNCONNECTED_DATA) & (h["data_length"] == size - _MESSAGE)
    # request: service, path size, one ANSI symbolic segment (0x91, length, name, pad), then the service data
    name_len = h["name_length"].astype(np.int64)
    data_at = _PATH + 2 * h["path_words"].astype(np.int64)
    write = service == 0x4D
    request = rr & ((service == 0x4C) | write) & (h["segment"] == 0x91) & (name_len > 0)
    request &= _NAME + name_len + (name_len & 1) == data_at
    request &= np.where(write, size - data_at >= 4, size - data_at == 2)
    first = at + np.where(request, data_at, 0)
    request &= ~write | (_le(data, first, 2) != 0x02A0)  # a structure's data type is followed by its handle
    reply = rr & ((service == 0xCC) | (service == 0xCD)) & (head.view(_ANSWER.dtype)[:, 0]["status_words"] == 0)
    return _Shape(head, at, first, name_len, write, request, reply)


def _units(shape: _Shape, flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each PDU's unit (-1: none) and each reply's request (-1: none). A unit is j requests, then their j replies
    in the same order, in one flow; the longest first, so that a pipelined run is not cut into a request/reply
    pair that starts mid-run."""
    n = len(flow)
    unit = np.full(n, -1, np.int64)
    partner = np.full(n, -1, np.int64)
    h = shape.head.view(_ASK.dtype)[:, 0]
    service, context = h["service"], h["sender_context"].view("<u8")
    req, rep = shape.request, shape.reply
    for j in range(_MAX_PIPELINED, 0, -1):
        span = n - 2 * j + 1
        if span <= 0:
            continue
        pair = req[:-j] & rep[j:] & (service[j:] == service[:-j] | 0x80) & (flow[j:] == flow[:-j])
        pair &= context[j:] == context[:-j]
        block = np.logical_and.reduce([pair[i : i + span] for i in range(j)])
        taken = np.concatenate(([0], np.cumsum(unit >= 0)))
        block &= taken[2 * j :] == taken[:span]
        starts = np.flatnonzero(block)[:, None]
        unit[starts + np.arange(2 * j)] = starts
        partner[starts + j + np.arange(j)] = starts + np.arange(j)
    return unit, partner


def tag_polls(batch: PduBatch) -> BulkRows:
    """Bulk rows for the polling shape above; every other PDU is left to parse()."""
    n = len(batch.start)
    shape = _shape(batch)
    if shape is None:
        return BulkRows.none(n)
    unit, partner = _units(shape, batch.flow)
    pdus = np.flatnonzero(unit >= 0)
    if not len(pdus):
        return BulkRows(unit, np.zeros(0, np.int64), {})
    columns, details = _columns(batch.data, shape, pdus, partner[pdus])
    return BulkRows(unit, np.repeat(pdus, 2), columns, details)


def _tags(data: np.ndarray, shape: _Shape, asks: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Each request's tag as an index into the list of distinct tag names, and that list."""
    name_len = shape.name_len[asks]
    width = 1 + int(name_len.max())  # the name length, then the name, zero padded to the longest: the key
    keyed = gather(data, shape.at[asks] + _ASK.offset["name_length"], width).view(np.uint8).reshape(-1, width)
    keyed[np.arange(width) > name_len[:, None]] = 0
    tag_of_ask, names = _distinct(pa.Array.from_buffers(pa.binary(width), len(asks), [None, pa.py_buffer(keyed)]))
    return tag_of_ask, [name[1 : 1 + name[0]].decode("latin-1") for name in names]


def _columns(data: np.ndarray, shape: _Shape, pdus: np.ndarray,
             partner: np.ndarray) -> tuple[dict[str, pa.Array], Details]:  # fmt: skip
    """Two rows a PDU of the units: the enip row, then the cip row."""
    m = len(pdus)
    p_head, p_first = shape.head[pdus], shape.first[pdus]
    reply = partner >= 0
    own = np.where(reply, partner, pdus)  # the request: its tag is the reply's target too
    asks = own[~reply]
    tag_of_ask, tags = _tags(data, shape, asks)
    tag = tag_of_ask[np.searchsorted(asks, own)].astype(np.int64)
    write = shape.write
    is_write = ~reply & write[pdus]
    general = p_head.view(_ANSWER.dtype)[:, 0]["general_status"].astype(np.int64) * reply
    value = np.where(is_write, _le(data, p_first, 2), general)  # the data type of a write, the status of a reply
    service = p_head[:, _MESSAGE] & 0x7F
    kind = np.stack([np.zeros(m, np.int64), 1 + write[own]], 1).ravel()
    quantity = np.repeat(_le(data, p_first + 2 * is_write, 2), 2).astype(np.int32)
    columns = {
        "protocol": _PROTOCOLS.take(pa.array(np.tile([0, 1], m))),
        "direction": _DIRECTIONS.take(pa.array(np.repeat(reply.astype(np.int64), 2))),
        "function_code": pa.array(np.stack([np.full(m, 0x006F), service], 1).ravel().astype(np.int32)),
        "function_name": _NAMES.take(pa.array(kind)),
        "access_class": _ACCESS.take(pa.array(kind)),
        "status": _STATUS_TEXT.take(pa.array(np.stack([np.zeros(m, np.int64), general], 1).ravel())),
        "transaction_id": pa.nulls(2 * m, pa.int32()),
        "unit_id": pa.nulls(2 * m, pa.int32()),
        "address": pa.nulls(2 * m, pa.int32()),
        "quantity": pa.array(quantity, mask=np.stack([np.ones(m, bool), reply], 1).ravel()),
        "target": pa.array(tags, pa.string()).take(pa.array(np.repeat(tag, 2), mask=np.tile([True, False], m))),
    }
    return columns, _details(p_head, tags, tag, is_write, reply, value)


def _details(p_head: np.ndarray, tags: list[str], tag: np.ndarray, is_write: np.ndarray, reply: np.ndarray,
             value: np.ndarray) -> Details:  # fmt: skip
    """The details: an enip row's from its encapsulation tail (few), with its own session handle and sender
    context; a cip row's from its tag, service and value (few)."""
    hp = p_head.view(_ASK.dtype)[:, 0]
    size, timeout = hp["length"].astype(np.uint64), hp["timeout"].astype(np.uint64)
    tail_of, tails = _distinct(pa.array(size << np.uint64(48) | timeout << np.uint64(32) | hp["interface_handle"]))
    dicts: list[dict | None] = []
    for key in tails:
        length = key >> 48
        items = [{"type_id": NULL_ADDRESS, "length": 0}, {"type_id": UNCONNECTED_DATA, "length": length - _ITEMS}]
        dicts.append({"session_handle": None, "sender_context": None, "length": length,
                      "interface_handle": key & 0xFFFFFFFF, "timeout": key >> 32 & 0xFFFF, "items": items})  # fmt: skip
    cip_of, cips = _distinct(pa.array(tag << 26 | is_write << 25 | reply << 24 | value))
    for key in cips:
        cip = {"enip_command": _RR_NAME, "symbol": tags[key >> 26]}
        if key >> 25 & 1:
            cip["data_type"] = f"0x{key & 0xFFFF:04x}"
        if key >> 24 & 1:
            cip["cip_status_code"] = key & 0xFF
        dicts.append(cip)
    index = np.stack([tail_of, len(tails) + cip_of], 1).ravel().astype(np.int64)
    session = _hex(p_head[:, _SESSION : _SESSION + 4][:, ::-1])  # little-endian on the wire
    context = _hex(p_head[:, _CONTEXT : _CONTEXT + 8])  # the bytes in order, as parse shows them
    return Details(dicts, index, {"session_handle": session, "sender_context": context})


def _hex(raw: np.ndarray) -> pa.Array:
    """Each row of bytes as "0x" and their hex digits, twice (a PDU's enip row takes it, its cip row not)."""
    width = 2 + 2 * raw.shape[1]
    cells = np.empty((len(raw), 2, width), np.uint8)
    cells[:, :, :2] = np.frombuffer(b"0x", np.uint8)
    cells[:, :, 2:] = _HEX[raw].view(np.uint8)[:, None, :]
    offsets = np.arange(0, width * (2 * len(raw) + 1), width, dtype=np.int32)
    return pa.StringArray.from_buffers(2 * len(raw), pa.py_buffer(offsets), pa.py_buffer(cells))
