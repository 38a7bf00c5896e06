"""The DNP3 polling exchange, decoded for a whole batch at once (dissectors/bulk.py).

A READ answered by the flow's next frame, a RESPONSE from the other side with the same application sequence and the
link addresses swapped. Both are single-frame fragments (transport and application FIR FIN, no CON, no UNS, not
broadcast) with good CRCs, whose object headers parse_objects walks without reading the objects: qualifier prefix
codes 0-3 (no size prefix), READ headers carry no data, RESPONSE objects are fixed-size or packed bits. Groups whose
objects parse reads, or that set the access class, are left out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

import numpy as np
import pyarrow as pa

from ..base import REQUEST, RESPONSE
from ..bulk import BulkRows, Details, PduBatch, gather
from ..layout import Layout
from .consts import FUNCTIONS, OBJECT_SIZES, PACKED_BITS, RESPONSE_FC
from .crc import CRC_AT
from .link import FRAME_LENGTH, LINK, START
from .objects import COUNT, PREFIX, RANGE, iin_names, parse_objects, target

if TYPE_CHECKING:
    from .dissector import DNP3

# the first 16 bytes of a frame: its link header, then (in a frame of one segment) the transport header, the
# application header and a response's IIN; the last byte is the CRC's first
FIRST = LINK + Layout("<", ("transport", "B"), ("application", "B"), ("function", "B"), ("iin1", "B"), ("iin2", "B"),
                      (None, "x"))  # fmt: skip
_START = int.from_bytes(START, "little")
_BULK_SKIP = np.zeros(256, bool)
_BULK_SKIP[[0, 12, 41, 50, 70, 120]] = True  # device attributes, controls, time (data in a READ), files, authentication
_BULK_HEADERS = 16  # object headers walked per fragment; a longer list is parsed
_SIZE_OF = np.full(65536, -1, np.int64)  # OBJECT_SIZES and PACKED_BITS as arrays, by group << 8 | variation
_SIZE_OF[list(OBJECT_SIZES)] = list(OBJECT_SIZES.values())
_BITS_OF = np.zeros(65536, np.int64)
_BITS_OF[list(PACKED_BITS)] = list(PACKED_BITS.values())
# by qualifier: bytes of the range or count field (-1: not walked in bulk), range or count, bytes of each object's
# index prefix; and the bits of one value of the field, to read its first and second value from the 8 bytes after
# the header (little-endian)
_FIELD, _RANGED, _PREFIXED = np.full(256, -1, np.int64), np.zeros(256, bool), np.zeros(256, np.int64)
_VALUE_BITS, _VALUE_MASK = np.zeros(256, np.uint64), np.zeros(256, np.uint64)
for _q in range(256):
    _opc, _rsc = (_q >> 4) & 7, _q & 0x0F
    if _opc > 3 or not (_rsc in RANGE or _rsc in COUNT or _rsc == 6):
        continue
    _PREFIXED[_q] = PREFIX[_opc].size if _opc else 0
    _FIELD[_q] = RANGE[_rsc].size if _rsc in RANGE else COUNT[_rsc].size if _rsc in COUNT else 0
    _RANGED[_q] = _rsc in RANGE
    _VALUE_BITS[_q] = 8 * (_FIELD[_q] // 2 if _RANGED[_q] else _FIELD[_q])
    _VALUE_MASK[_q] = (1 << int(_VALUE_BITS[_q])) - 1
# 16-byte masks, as single items for gathering rows at once: by length, its last bytes (a block right-aligned); by
# offset in a block, the bytes before the block's end (the rest follows its CRC)
_LAST = np.where(np.arange(16) >= 16 - np.arange(17)[:, None], 0xFF, 0).astype(np.uint8).view("V16")[:, 0]
_BEFORE = np.where(np.arange(16) < 16 - np.arange(16)[:, None], 0xFF, 0).astype(np.uint8).view("V16")[:, 0]
_DIRECTIONS = pa.array([REQUEST, RESPONSE], pa.string())
_READ, _RESPONSE = FUNCTIONS[0x01], FUNCTIONS[RESPONSE_FC]


def decode(batch: PduBatch) -> BulkRows:
    """READ / RESPONSE pairs (see above), with rows equal to parse's from an idle dissector (``DNP3.idle``)."""
    n = len(batch.start)
    none = BulkRows.none(n)
    i = np.flatnonzero(batch.length >= 15)  # header, transport header, application control and function code
    if len(i) < 2:
        return none
    raw = gather(batch.data, batch.start[i], FIRST.size)
    first, head = raw.view(FIRST.dtype), raw.view(np.uint8).reshape(-1, FIRST.size)
    src, dst = first["source"].astype(np.int64), first["destination"].astype(np.int64)
    user = first["length"].astype(np.int64) - 5
    request, response = _polls(first, batch.length[i] == FRAME_LENGTH[first["length"]], dst, user)
    a = _pairs(batch, i, first, head, request, response, src, dst, user)
    rows = np.column_stack((a, a + 1)).ravel()  # into i: each request, then its response
    walked, sig = _walk_objects(batch.data, batch.start[i[rows]] + 10, user[rows], response[rows])
    walked = np.repeat(walked[0::2] & walked[1::2], 2)
    rows, sig = rows[walked], sig[walked]
    # rows alike in IIN, addresses and object headers differ in their sequence only: their values are made once,
    # from one of them (grouped by a hash, then checked)
    iin1, iin2 = first["iin1"][rows].astype(np.int64), first["iin2"][rows]
    iin = np.where(response[rows], iin1 << 8 | iin2, -1)  # -1: the READ
    alike = (iin + 1) << 32 | src[rows] << 16 | dst[rows]
    combo, one, same = _alike(alike, sig)
    if not same.any():
        return none
    shapes: dict[tuple, tuple] = {}
    table = []
    for r in one.tolist():
        shape = (int(iin[r]), *sig[r].tolist())
        if shape not in shapes:
            shapes[shape] = _facts(batch.pdu(int(i[rows[r]])), shape[0])
        status, address, quantity, found, rest = shapes[shape]
        table.append((status, address, quantity, found, {"src": int(src[rows[r]]), "dst": int(dst[rows[r]]), **rest}))
    rows = rows[same]
    pdus = i[rows]
    unit = np.full(n, -1, np.int64)
    unit[pdus] = pdus[np.arange(len(pdus)) & ~1]
    is_resp = response[rows]
    unit_id = np.where(is_resp, src[rows], dst[rows])
    groups = combo[same]
    columns = _columns(table, pa.array(groups.astype(np.int32)), is_resp, first[rows], unit_id)
    return BulkRows(unit, pdus, columns, Details([t[4] for t in table], groups.astype(np.int64)))


def _polls(first: np.ndarray, whole: np.ndarray, dst: np.ndarray, user: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Which frames (``whole``: their length is their LEN's) are a READ, and which a RESPONSE, that bulk can take."""
    ctrl, ac, fc = first["control"] & 0x4F, first["application"], first["function"]
    good = (
        (first["start"] == _START) & whole
        & ((ctrl == 0x43) | (ctrl == 0x44))  # PRM, CONFIRMED or UNCONFIRMED_USER_DATA
        & ((first["transport"] & 0xC0) == 0xC0) & ((ac & 0xF0) == 0xC0) & (dst < 0xFFFD)
    )  # fmt: skip
    return good & (fc == 0x01), good & (fc == RESPONSE_FC) & (user >= 5)


def _pairs(batch: PduBatch, i: np.ndarray, first: np.ndarray, head: np.ndarray, request: np.ndarray,
           response: np.ndarray, src: np.ndarray, dst: np.ndarray, user: np.ndarray) -> np.ndarray:  # fmt: skip
    """The requests (into ``i``) answered by the next frame, with good CRCs, whose flow has reported their roles.

    The roles: parse reports each (side, role, address) once. So the first pair of each (flow, sides, addresses)
    in the batch is left to parse, which records both roles for good, unless the flow knows them already
    (``DNP3.knows_roles``). Later pairs of the same flow and addresses have the roles by then."""
    flow, from_orig, seq = batch.flow[i], batch.from_orig[i], first["application"] & 0x0F
    a = np.flatnonzero(
        request[:-1] & response[1:] & (i[1:] == i[:-1] + 1) & (flow[1:] == flow[:-1])
        & (from_orig[1:] != from_orig[:-1]) & (src[1:] == dst[:-1]) & (dst[1:] == src[:-1]) & (seq[1:] == seq[:-1])
    )  # fmt: skip
    m = len(a)
    both = np.concatenate((a, a + 1))
    crc = _crc_ok(batch.data, batch.start[i[both]], user[both], head[both])
    a = a[crc[:m] & crc[m:]]
    key = flow[a] << 34 | from_orig[a].astype(np.int64) << 32 | src[a] << 16 | dst[a]
    seed = np.zeros(len(a), bool)
    for j in np.unique(key, return_index=True)[1].tolist():
        dissector = cast("DNP3", batch.dissectors[int(flow[a[j]])])
        seed[j] = not dissector.knows_roles(bool(from_orig[a[j]]), int(src[a[j]]), int(dst[a[j]]))
    return a[~seed]


def _alike(alike: np.ndarray, sig: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows grouped by ``alike`` and their signature: each row's group, a row of each group, and which rows are
    exactly like their group's row (both rows of their pair)."""
    h = alike
    for col in sig.T:
        h = h * 0x1E3779B97F4A7C15 + col  # wraps around
    _, combo = np.unique(h, return_inverse=True)
    one = np.empty(combo.max(initial=-1) + 1, np.int64)  # a row of each group
    one[combo] = np.arange(len(alike))
    same = (alike == alike[one[combo]]) & (sig == sig[one[combo]]).all(axis=1)
    return combo, one, np.repeat(same[0::2] & same[1::2], 2)


def _columns(table: list[tuple], combo: pa.Array, is_resp: np.ndarray, first: np.ndarray,
             unit_id: np.ndarray) -> dict[str, pa.Array]:  # fmt: skip
    """The COLUMN_FIELDS columns: ``table`` holds (status, address, quantity, target, details) by group
    (``combo``)."""
    status, address, quantity, found, _ = zip(*table, strict=True)
    is_resp8 = pa.array(is_resp.astype(np.int8))
    return {
        "protocol": pa.repeat(pa.scalar("dnp3", pa.string()), len(is_resp)),
        "direction": _DIRECTIONS.take(is_resp8),
        "function_code": pa.array(first["function"].astype(np.int32)),
        "function_name": pa.array([_READ[0], _RESPONSE[0]], pa.string()).take(is_resp8),
        "access_class": pa.repeat(pa.scalar(_READ[1], pa.string()), len(is_resp)),  # the response inherits the READ's
        "status": pa.array(status, pa.string()).take(combo),
        "transaction_id": pa.array((first["application"] & 0x0F).astype(np.int32)),
        "unit_id": pa.array(unit_id.astype(np.int32)),
        "address": pa.array(address, pa.int64()).take(combo),
        "quantity": pa.array(quantity, pa.int64()).take(combo),
        "target": pa.array(found, pa.string()).take(combo),
    }


def _crc_ok(data: np.ndarray, start: np.ndarray, user: np.ndarray, head: np.ndarray) -> np.ndarray:
    """Do all CRCs of each link frame check out? (at ``start`` in data, its first 16 bytes ``head``, ``user`` bytes
    of user data)"""
    words = np.ascontiguousarray(head[:, :8].view("<u2").T)  # the header: the last 8 bytes of a 16-byte block
    crc = CRC_AT[4].take(words[0])
    for j in range(1, 4):
        crc ^= CRC_AT[4 + j].take(words[j])
    ok = crc ^ 0xFFFF == head[:, 8:10].view("<u2")[:, 0]
    for block in range((int(user.max(initial=0)) + 15) >> 4):
        rows = np.flatnonzero(user > 16 * block)
        size = np.minimum(16, user[rows] - 16 * block)
        at = start[rows] + (10 + 18 * block - 16) + size
        w = gather(data, at, 24).view("<u8").reshape(-1, 3)  # the block right-aligned, then its CRC
        words = np.ascontiguousarray((w[:, :2] & _LAST[size].view("<u8").reshape(-1, 2)).view("<u2").T)
        crc = CRC_AT[0].take(words[0])
        for j in range(1, 8):
            crc ^= CRC_AT[j].take(words[j])
        ok[rows[crc ^ 0xFFFF != w[:, 2] & 0xFFFF]] = False
    return ok


def _walk_objects(data: np.ndarray, ustart: np.ndarray, user: np.ndarray, response: np.ndarray):
    """Walk the object headers of single-frame fragments (user data at ``ustart`` in data) in step, as parse_objects.

    Returns whether each walk ended exactly at the fragment's end with nothing on the way that bulk leaves to parse,
    and the signature of its headers: per header ((group << 8 | variation) << 8 | qualifier) << 32 | first << 16 |
    second, the values of its range (or first: its count), -1 past the last. parse_objects' result depends on the
    signature only. Values over 16 bits are left to parse, to keep a header's signature in 64 bits."""
    k = len(ustart)
    pos = np.where(response, 5, 3)  # past transport header, application control, function code (and IIN)
    walked = np.ones(k, bool)
    heads: list[tuple[np.ndarray, ...]] = []
    rows = np.flatnonzero(pos < user)
    for _ in range(_BULK_HEADERS):
        if not len(rows):
            break
        p, end = pos[rows], user[rows]
        # the header and the 8 bytes after it, which hold its range or count: up to a block's end, then past its CRC
        at = ustart[rows] + p + 2 * (p >> 4)
        keep = _BEFORE[p & 15].view(np.uint64)
        b = gather(data, at, 16).view(np.uint64) & keep | gather(data, at + 2, 16).view(np.uint64) & ~keep
        b = b.view(np.uint8).reshape(-1, 16)
        group, qual = b[:, 0], b[:, 2]
        code = group.astype(np.int64) << 8 | b[:, 1]
        field, ranged, prefix = _FIELD[qual], _RANGED[qual], _PREFIXED[qual]
        value, shift, mask = b[:, 3:11].view("<u8")[:, 0], _VALUE_BITS[qual], _VALUE_MASK[qual]
        first, second = (value & mask).astype(np.int64), np.where(ranged, value >> shift & mask, 0).astype(np.int64)
        count = np.where(ranged, second - first + 1, first)
        size, bits = _SIZE_OF[code], _BITS_OF[code]
        carries = response[rows] & (count > 0)  # READ headers name objects only
        nxt = (
            p + 3 + field + np.where(carries, np.where(size >= 0, count * (size + prefix), (count * bits + 7) >> 3), 0)
        )
        ok = (field >= 0) & ~_BULK_SKIP[group] & (p + 3 + field <= end) & (~ranged | (second >= first)) & (nxt <= end)
        ok &= (~carries | (size >= 0) | ((bits > 0) & (prefix == 0))) & (first <= 0xFFFF) & (second <= 0xFFFF)
        heads.append((rows, (code << 8 | qual) << 32 | first << 16 | second))
        walked[rows[~ok]] = False
        rows = rows[ok]
        pos[rows] = nxt[ok]
        rows = rows[pos[rows] < user[rows]]
    walked[rows] = False  # more headers than walked
    sig = np.full((k, len(heads)), -1, np.int64)
    for j, (r, head) in enumerate(heads):
        sig[r, j] = head
    return walked, sig


def _facts(pdu: bytes, iin: int) -> tuple[str | None, int | None, int | None, str | None, dict]:
    """What application() makes of one frame of a bulk pair (iin -1: the READ), besides src, dst and sequence:
    status, address, quantity, target, and the details after "dst"."""
    frag = b"".join(pdu[p : min(p + 16, len(pdu) - 2)] for p in range(10, len(pdu), 18))[1:]
    details: dict = {}
    status = None
    if iin >= 0:
        names, status = iin_names(iin)
        details["iin"] = iin
        if names:
            details["iin_flags"] = names
        details["fc_request"] = _READ[0]
    pos = 4 if iin >= 0 else 2
    address = quantity = found = None
    parsed = parse_objects(frag, pos, frag[1], iin >= 0) if len(frag) > pos else None
    if parsed and parsed.objects:
        details["objects"] = parsed.objects
        found, address, quantity = target(parsed), parsed.address, parsed.quantity
    return status, address, quantity, found, details
