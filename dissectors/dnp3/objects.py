"""The application fragment after its function code: internal indications, object headers and what the objects
parse reports (controls, file names and statuses, authentication errors) say."""

from __future__ import annotations

import struct

from .consts import (
    CONTROL_STATUS,
    FILE_STATUS,
    HEADERS_ONLY,
    IIN_BITS,
    IIN_NOTABLE,
    OBJECT_NAMES,
    OBJECT_SIZES,
    OPERATION_TYPES,
    PACKED_BITS,
    TRIP_CODES,
)

MAX_CONTROLS = 32  # control blocks listed in details per operation
MAX_OBJECTS = 32  # object headers listed in details per operation
_IIN_CACHE: dict[int, tuple[list[str], str | None]] = {}


def iin_names(iin: int) -> tuple[list[str], str | None]:
    """(names of every set bit, '|'-joined names of the notable ones or None)."""
    hit = _IIN_CACHE.get(iin)
    if hit is None:
        names = [n for bit, n in IIN_BITS if iin & bit]
        notable = [n for bit, n in IIN_BITS if iin & bit & IIN_NOTABLE]
        hit = _IIN_CACHE[iin] = (names, "|".join(notable) or None)
    return hit


_U16 = struct.Struct("<H")
_I32 = struct.Struct("<i")
_I16 = struct.Struct("<h")
_F32 = struct.Struct("<f")
_F64 = struct.Struct("<d")
# an object header's qualifier: by range code, the range start and stop; by count code, the count; by prefix code,
# each object's index or size
RANGE = {0: struct.Struct("<BB"), 1: struct.Struct("<HH"), 2: struct.Struct("<II"),
          3: struct.Struct("<BB"), 4: struct.Struct("<HH"), 5: struct.Struct("<II")}  # fmt: skip
COUNT = {7: struct.Struct("<B"), 8: struct.Struct("<H"), 9: struct.Struct("<I"), 11: struct.Struct("<B")}
PREFIX = {1: struct.Struct("<B"), 2: struct.Struct("<H"), 3: struct.Struct("<I"),
           4: struct.Struct("<B"), 5: struct.Struct("<H"), 6: struct.Struct("<I")}  # fmt: skip
_CROB = struct.Struct("<BBIIB")
_ANALOG_OUT = {1: (_I32, 4), 2: (_I16, 2), 3: (_F32, 4), 4: (_F64, 8)}
# name offset, name size, time, permissions, auth key, size, mode, block, req id
_FILE_CMD = struct.Struct("<HH6sHIIHHH")
_FILE_STATUS = struct.Struct("<IIHHB")  # handle, size, max block, request id, status
_FILE_AUTH = struct.Struct("<HHHHI")  # user name offset, size, password offset, size, auth key


def _name_at(obj: bytes, offset: int, size: int, header: int) -> str | None:
    """A string field of a g70 object: offset counts from the start of the object (after its size prefix)."""
    if size == 0 or offset < header or offset + size > len(obj):
        return None
    return obj[offset : offset + size].decode("latin-1")


class Parsed:
    """What the object walk found, gathered for the Operation."""

    __slots__ = ("address", "codes", "controls", "error", "file_name", "incomplete", "objects", "quantity", "status",
                 "user_name")  # fmt: skip

    def __init__(self) -> None:
        self.objects: list[dict] = []
        self.codes: list[int] = []  # group << 8 | variation of every header, in order
        self.controls: list[dict] = []
        self.address: int | None = None
        self.quantity: int | None = None
        self.error: str | None = None
        self.incomplete = False  # stopped at an object whose size is unknown
        self.file_name: str | None = None
        self.user_name: str | None = None
        self.status: list[str] = []

    def header(self, obj: dict, code: int) -> None:
        """An object header walked: listed in details up to MAX_OBJECTS, its code always."""
        if len(self.codes) < MAX_OBJECTS:
            self.objects.append(obj)
        self.codes.append(code)

    def flag(self, label: str) -> None:
        """A status the objects report, once."""
        if label not in self.status:
            self.status.append(label)


def parse_objects(data: bytes, pos: int, fc: int, response: bool) -> Parsed:
    """Walk the object headers of an application fragment from ``pos``."""
    out = Parsed()
    headers_only = not response and fc in HEADERS_ONLY
    end = len(data)
    while pos < end:
        head = _header(out, data, pos, end)
        if head is None:
            break
        pos, group, var, opc, count, start = head
        if count == 0 or (headers_only and opc < 4 and group != 50):
            continue  # no data: READ and the like name objects, only time and size-prefixed objects carry data
        if opc >= 4:  # each object has a size prefix
            pos = _size_prefixed(out, data, pos, end, group, var, count, PREFIX[opc], response)
        elif group == 0:
            pos = _attributes(out, data, pos, end, var, count, PREFIX[opc].size if opc else 0)
        else:
            pos = _fixed(out, data, pos, end, group, var, opc, count, start, response)
        if pos < 0:
            break
    return out


def _header(out: Parsed, data: bytes, pos: int, end: int) -> tuple[int, int, int, int, int, int | None] | None:
    """The object header at ``pos``, listed in ``out``: (the position after it, group, variation, prefix code,
    object count, range start or None); None where the walk stops."""
    if end - pos < 3:
        out.error = f"{end - pos} trailing bytes after the objects"
        return None
    group, var, qual = data[pos], data[pos + 1], data[pos + 2]
    pos += 3
    code = group << 8 | var
    opc, rsc = (qual >> 4) & 7, qual & 0x0F
    obj: dict = {"object": f"g{group}v{var}", "qualifier": qual}
    start = None
    if rsc <= 5:
        st = RANGE[rsc]
        if end - pos < st.size:
            out.error = f"g{group}v{var}: range truncated"
            return None
        start, stop = st.unpack_from(data, pos)
        pos += st.size
        if stop < start:
            out.error = f"g{group}v{var}: range {start}-{stop} is reversed"
            return None
        count = stop - start + 1
        obj["range_low"], obj["range_high"] = start, stop
    elif rsc == 6:
        count = 0
    elif rsc in COUNT:
        st = COUNT[rsc]
        if end - pos < st.size:
            out.error = f"g{group}v{var}: count truncated"
            return None
        (count,) = st.unpack_from(data, pos)
        pos += st.size
    else:
        out.header(obj, code)
        out.error = f"g{group}v{var}: reserved range code 0x{rsc:x}"
        return None
    if rsc != 6:
        obj["object_count"] = count
    name = OBJECT_NAMES.get(code)
    if name is not None:
        obj["object_type"] = name
    out.header(obj, code)
    if out.address is None:
        out.address = start
        out.quantity = count if rsc != 6 else None
    if opc == 7:
        out.error = f"g{group}v{var}: reserved prefix code 7"
        return None
    return pos, group, var, opc, count, start


def _size_prefixed(out: Parsed, data: bytes, pos: int, end: int, group: int, var: int, count: int,
                   prefix: struct.Struct, response: bool) -> int:  # fmt: skip
    """Objects each after its size: the position after them, -1 where the walk stops."""
    for i in range(count):
        if end - pos < prefix.size:
            out.error = f"g{group}v{var}: object {i} size truncated"
            return -1
        (size,) = prefix.unpack_from(data, pos)
        pos += prefix.size
        if end - pos < size:
            out.error = f"g{group}v{var}: object {i} of {size} bytes truncated"
            return -1
        if group == 70 or group == 120:
            _special(out, group, var, data[pos : pos + size], response)
        pos += size
    return pos


def _attributes(out: Parsed, data: bytes, pos: int, end: int, var: int, count: int, isize: int) -> int:
    """Device attributes (g0): data type, length, value each. The position after them, -1 where the walk stops."""
    for i in range(count):
        pos += isize
        if end - pos < 2:
            out.error = f"g0v{var}: attribute {i} truncated"
            return -1
        pos += 2 + data[pos + 1]
    if pos > end:
        out.error = f"g0v{var}: attribute value truncated"
        return -1
    return pos


def _fixed(out: Parsed, data: bytes, pos: int, end: int, group: int, var: int, opc: int, count: int,
           start: int | None, response: bool) -> int:  # fmt: skip
    """Objects of a fixed size (or packed bits), controls read: the position after them, -1 where the walk stops."""
    code = group << 8 | var
    isize = PREFIX[opc].size if opc else 0
    size = OBJECT_SIZES.get(code)
    if size is None:
        bits = PACKED_BITS.get(code)
        if bits is None or opc:
            out.incomplete = True  # size unknown: the rest cannot be walked
            return -1
        total = (count * bits + 7) >> 3
    else:
        total = count * (size + isize)
    if end - pos < total:
        if group == 12 or group == 41:
            _controls(out, data, pos, end, group, var, opc, isize, size or 0, count, start, response)
        out.error = f"g{group}v{var}: {count} objects need {total} bytes, {end - pos} left"
        return -1
    if (group == 12 and var <= 2) or (group == 41 and var <= 4):
        _controls(out, data, pos, pos + total, group, var, opc, isize, size or 0, count, start, response)
    return pos + total


def _controls(out: Parsed, data: bytes, pos: int, end: int, group: int, var: int, opc: int, isize: int, size: int,
              count: int, start: int | None, response: bool) -> None:  # fmt: skip
    """Control relay output blocks (g12v1, g12v2) and analog output blocks (g41): one dict each."""
    if size == 0:
        return
    pst = PREFIX[opc] if opc else None
    for i in range(count):
        if end - pos < isize + size:
            return
        if pst is not None:
            (index,) = pst.unpack_from(data, pos)
            pos += isize
        else:
            index = (start or 0) + i
        if group == 12:
            cc, n, on, off, st = _CROB.unpack_from(data, pos)
            ctl: dict = {
                "block_type": "Control Relay Output Block" if var == 1 else "Pattern Control Block",
                "index_number": index,
                "trip_control_code": TRIP_CODES[cc >> 6],
                "operation_type": OPERATION_TYPES.get(cc & 0x0F, f"unknown-{cc & 0x0F:x}"),
                "clear_bit": bool(cc & 0x20),
                "execute_count": n, "on_time": on, "off_time": off,
            }  # fmt: skip
        else:
            vst, vsize = _ANALOG_OUT[var]
            (value,) = vst.unpack_from(data, pos)
            st = data[pos + vsize]
            ctl = {"block_type": "Analog Output Block", "index_number": index, "value": value}
        st &= 0x7F
        if response:
            sname = CONTROL_STATUS.get(st)
            ctl["status_code"] = sname[0] if sname else f"unknown-{st:x}"
            if st:
                out.flag(sname[1] if sname else f"CONTROL_STATUS_{st}")
        if len(out.controls) < MAX_CONTROLS:
            out.controls.append(ctl)
        pos += size


def _special(out: Parsed, group: int, var: int, obj: bytes, response: bool) -> None:
    """File-control (g70) and authentication (g120) objects: the names and statuses they carry."""
    if group == 70:
        if var == 3 and len(obj) >= _FILE_CMD.size:  # file command: open / delete
            off, size = _U16.unpack_from(obj)[0], _U16.unpack_from(obj, 2)[0]
            out.file_name = out.file_name or _name_at(obj, off, size, _FILE_CMD.size)
        elif var == 7 and len(obj) >= 20 and not response:  # file descriptor: get file info
            off, size = _U16.unpack_from(obj)[0], _U16.unpack_from(obj, 2)[0]
            out.file_name = out.file_name or _name_at(obj, off, size, 20)
        elif var == 2 and len(obj) >= _FILE_AUTH.size:  # authentication: the user name, never the password
            uoff, usize, _poff, _psize, _key = _FILE_AUTH.unpack_from(obj)
            out.user_name = out.user_name or _name_at(obj, uoff, usize, _FILE_AUTH.size)
        elif var == 4 and len(obj) >= _FILE_STATUS.size:  # file command status
            st = obj[12]
            if st:
                out.flag("FILE_" + FILE_STATUS.get(st, f"STATUS_{st}"))
    elif group == 120 and var == 7 and len(obj) >= 9:  # authentication error
        out.flag(f"AUTH_ERROR_{obj[8]}")


def target(parsed: Parsed) -> str | None:
    """The Operation's target: the file named, or the objects' codes (the first six distinct ones)."""
    if parsed.file_name:
        return parsed.file_name
    codes = parsed.codes
    if not codes:
        return None
    first = codes[0]
    if len(codes) == 1 or all(c == first for c in codes):
        return f"g{first >> 8}v{first & 0xFF}"
    seen: list[int] = []
    for c in codes:
        if c not in seen:
            seen.append(c)
    text = ",".join(f"g{c >> 8}v{c & 0xFF}" for c in seen[:6])
    return text + ",..." if len(seen) > 6 else text
