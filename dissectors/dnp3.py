"""DNP3 (IEEE 1815) over TCP and UDP: link frames, transport reassembly, application layer.

Layers, as the sensor sees them:

- Link frames (0x05 0x64, LEN, CTRL, DST, SRC, header CRC, then user data in
  16-byte blocks each followed by its CRC). Over TCP they are framed with
  FramedStream (several per segment, split across segments); over UDP each
  datagram may hold several. Every CRC is checked (CRC-16/DNP); a frame with a
  bad CRC is reported as an ``bad_crc`` anomaly and not used further.
- Transport segments (FIN, FIR, 6-bit sequence), reassembled into application
  fragments per direction and per (source, destination) link address pair, up
  to MAX_FRAGMENT bytes.
- Application fragments: one Operation each, with function code, IIN on
  responses, object headers, and the contents of control (CROB, analog output),
  file and authentication objects where they tell what was done.

Function names are Zeek ICSNPP's (consts.zeek); control-block field names are
those of ICSNPP's dnp3_control.log, object names those of dnp3_objects.log.
"""

from __future__ import annotations

import struct
from typing import ClassVar

import numpy as np
import pyarrow as pa

from .base import REQUEST, RESPONSE, Anomaly, FramedStream, Identity, Operation, Record, details_json
from .bulk import BulkRows, PduBatch, gather, headers

# --- function codes ------------------------------------------------------------------------------------------------
# application function code -> (ICSNPP name, access class); IEEE 1815-2012 table 4-1
FUNCTIONS: dict[int, tuple[str, str]] = {
    0x00: ("CONFIRM", "other"),
    0x01: ("READ", "read"),
    0x02: ("WRITE", "write"),
    0x03: ("SELECT", "control"),
    0x04: ("OPERATE", "control"),
    0x05: ("DIRECT_OPERATE", "control"),
    0x06: ("DIRECT_OPERATE_NR", "control"),
    0x07: ("IMMED_FREEZE", "control"),
    0x08: ("IMMED_FREEZE_NR", "control"),
    0x09: ("FREEZE_CLEAR", "control"),
    0x0A: ("FREEZE_CLEAR_NR", "control"),
    0x0B: ("FREEZE_AT_TIME", "control"),
    0x0C: ("FREEZE_AT_TIME_NR", "control"),
    0x0D: ("COLD_RESTART", "control"),
    0x0E: ("WARM_RESTART", "control"),
    0x0F: ("INITIALIZE_DATA", "control"),
    0x10: ("INITIALIZE_APPL", "control"),
    0x11: ("START_APPL", "control"),
    0x12: ("STOP_APPL", "control"),
    0x13: ("SAVE_CONFIG", "program"),
    0x14: ("ENABLE_UNSOLICITED", "control"),
    0x15: ("DISABLE_UNSOLICITED", "control"),
    0x16: ("ASSIGN_CLASS", "write"),  # changes which event class points report in: a setting
    0x17: ("DELAY_MEASURE", "diagnostic"),  # measures the link delay, step one of time synchronisation
    0x18: ("RECORD_CURRENT_TIME", "control"),  # the device latches its clock now, like a freeze
    0x19: ("OPEN_FILE", "program"),
    0x1A: ("CLOSE_FILE", "program"),
    0x1B: ("DELETE_FILE", "program"),
    0x1C: ("GET_FILE_INFO", "program"),
    0x1D: ("AUTHENTICATE_FILE", "program"),
    0x1E: ("ABORT_FILE", "program"),
    0x1F: ("ACTIVATE_CONFIG", "program"),
    0x20: ("AUTHENTICATE_REQ", "session"),
    0x21: ("AUTHENTICATE_REQ_NR", "session"),
    0x81: ("RESPONSE", "other"),  # takes the access class of the request it answers
    0x82: ("UNSOLICITED_RESPONSE", "read"),  # event data the outstation reports on its own
    0x83: ("AUTHENTICATE_RESP", "session"),
}
CONFIRM, RESPONSE_FC, UNSOLICITED_FC = 0x00, 0x81, 0x82

# requests whose object headers carry no data (besides time objects, group 50)
HEADERS_ONLY = frozenset((0x01, 0x07, 0x08, 0x09, 0x0A, 0x0B, 0x0C, 0x14, 0x15, 0x16))

# link-layer function codes, for anomaly details: (PRM, function) -> name
LINK_FUNCTIONS = {
    (1, 0): "RESET_LINK_STATES", (1, 2): "TEST_LINK_STATES", (1, 3): "CONFIRMED_USER_DATA",
    (1, 4): "UNCONFIRMED_USER_DATA", (1, 9): "REQUEST_LINK_STATUS",
    (0, 0): "ACK", (0, 1): "NACK", (0, 11): "LINK_STATUS", (0, 15): "NOT_SUPPORTED",
}  # fmt: skip

# --- internal indications ------------------------------------------------------------------------------------------
# bit of the 16-bit IIN (IIN1 << 8 | IIN2, as Zeek's dnp3.log iin and Wireshark's dnp3.al.iin) -> name
IIN_BITS: tuple[tuple[int, str], ...] = (
    (0x8000, "DEVICE_RESTART"), (0x4000, "DEVICE_TROUBLE"), (0x2000, "LOCAL_CONTROL"), (0x1000, "NEED_TIME"),
    (0x0800, "CLASS_3_EVENTS"), (0x0400, "CLASS_2_EVENTS"), (0x0200, "CLASS_1_EVENTS"), (0x0100, "BROADCAST"),
    (0x0080, "RESERVED_2"), (0x0040, "RESERVED_1"), (0x0020, "CONFIG_CORRUPT"), (0x0010, "ALREADY_EXECUTING"),
    (0x0008, "EVENT_BUFFER_OVERFLOW"), (0x0004, "PARAMETER_ERROR"), (0x0002, "OBJECT_UNKNOWN"),
    (0x0001, "NO_FUNC_CODE_SUPPORT"),
)  # fmt: skip
# the bits that say something about the device or the request (not routine event-class polling): the status column
IIN_NOTABLE = 0x8000 | 0x4000 | 0x2000 | 0x1000 | 0x0020 | 0x0010 | 0x0008 | 0x0004 | 0x0002 | 0x0001
_IIN_CACHE: dict[int, tuple[list[str], str | None]] = {}


def iin_names(iin: int) -> tuple[list[str], str | None]:
    """(names of every set bit, '|'-joined names of the notable ones or None)."""
    hit = _IIN_CACHE.get(iin)
    if hit is None:
        names = [n for bit, n in IIN_BITS if iin & bit]
        notable = [n for bit, n in IIN_BITS if iin & bit & IIN_NOTABLE]
        hit = _IIN_CACHE[iin] = (names, "|".join(notable) or None)
    return hit


# --- control blocks ------------------------------------------------------------------------------------------------
# ICSNPP dnp3_control.log values
TRIP_CODES = {0: "Nul", 1: "Close", 2: "Trip", 3: "Reserved"}
OPERATION_TYPES = {0: "Nul", 1: "Pulse On", 2: "Pulse Off", 3: "Latch On", 4: "Latch Off"}
# control status (IEEE 1815-2012 table 11-4) -> (ICSNPP-style name, status column name)
CONTROL_STATUS = {
    0: ("Success", "SUCCESS"), 1: ("Timeout", "TIMEOUT"), 2: ("No Select", "NO_SELECT"),
    3: ("Format Error", "FORMAT_ERROR"), 4: ("Not Supported", "NOT_SUPPORTED"), 5: ("Already Active", "ALREADY_ACTIVE"),
    6: ("Hardware Error", "HARDWARE_ERROR"), 7: ("Local", "LOCAL"), 8: ("Too Many Objs", "TOO_MANY_OBJS"),
    9: ("Not Authorized", "NOT_AUTHORIZED"), 10: ("Automation Inhibit", "AUTOMATION_INHIBIT"),
    11: ("Processing Limited", "PROCESSING_LIMITED"), 12: ("Out of Range", "OUT_OF_RANGE"),
    126: ("Non Participating", "NON_PARTICIPATING"), 127: ("Undefined", "UNDEFINED"),
}  # fmt: skip
# file command status (g70v4), IEEE 1815-2012 table 11-9
FILE_STATUS = {
    0: "SUCCESS", 1: "PERMISSION_DENIED", 2: "INVALID_MODE", 3: "FILE_NOT_FOUND", 4: "FILE_LOCKED",
    5: "TOO_MANY_OPEN", 6: "INVALID_HANDLE", 7: "WRITE_BLOCK_SIZE", 8: "COMM_LOST", 9: "CANNOT_ABORT",
    16: "NOT_OPENED", 17: "HANDLE_EXPIRED", 18: "BUFFER_OVERRUN", 19: "FATAL", 20: "BLOCK_SEQ", 255: "UNDEFINED",
}  # fmt: skip
MAX_CONTROLS = 32  # control blocks listed in details per operation
MAX_OBJECTS = 32  # object headers listed in details per operation

# --- objects -------------------------------------------------------------------------------------------------------
# (group << 8 | variation) -> octets per object (IEEE 1815-2012 annex A); groups/variations not here have no
# fixed size: they are read through a size prefix, as packed bits (PACKED_BITS), or not at all.
OBJECT_SIZES: dict[int, int] = {}


def _sizes(group: int, sizes: tuple[int, ...]) -> None:
    for var, size in enumerate(sizes, 1):
        OBJECT_SIZES[group << 8 | var] = size


OBJECT_SIZES[1 << 8 | 2] = 1  # v1: packed bits
_sizes(2, (1, 7, 3))
OBJECT_SIZES[3 << 8 | 2] = 1  # v1: packed bits
_sizes(4, (1, 7, 3))
OBJECT_SIZES[10 << 8 | 2] = 1  # v1: packed bits
_sizes(11, (1, 7))
_sizes(12, (11, 11))  # v3 packed
_sizes(13, (1, 7))
_sizes(20, (5, 3, 5, 3, 4, 2, 4, 2))
_sizes(21, (5, 3, 5, 3, 11, 9, 11, 9, 4, 2, 4, 2))
_sizes(22, (5, 3, 5, 3, 11, 9, 11, 9))
_sizes(23, (5, 3, 5, 3, 11, 9, 11, 9))
_sizes(30, (5, 3, 4, 2, 5, 9))
_sizes(31, (5, 3, 11, 9, 4, 2, 5, 9))
_sizes(32, (5, 3, 11, 9, 5, 9, 11, 15))
_sizes(33, (5, 3, 11, 9, 5, 9, 11, 15))
_sizes(34, (2, 4, 4))
_sizes(40, (5, 3, 5, 9))
_sizes(41, (5, 3, 5, 9))
_sizes(42, (5, 3, 11, 9, 5, 9, 11, 15))
_sizes(43, (5, 3, 11, 9, 5, 9, 11, 15))
_sizes(50, (6, 10, 6, 11))
_sizes(51, (6, 6))
_sizes(52, (2, 2))
_sizes(101, (2, 4, 8))
_sizes(102, (1,))
_sizes(120, (0, 0, 6, 2))  # v3 aggressive mode request, v4 session key status request; the rest size-prefixed
del OBJECT_SIZES[120 << 8 | 1], OBJECT_SIZES[120 << 8 | 2]
_sizes(121, (7,))
_sizes(122, (7, 13))
for _v in (1, 2, 3, 4):
    OBJECT_SIZES[60 << 8 | _v] = 0  # class data: headers only
for _v in range(256):  # octet strings and virtual terminal: the variation is the length
    for _g in (110, 111, 112, 113):
        OBJECT_SIZES[_g << 8 | _v] = _v
PACKED_BITS = {1 << 8 | 1: 1, 3 << 8 | 1: 2, 10 << 8 | 1: 1, 12 << 8 | 3: 1, 80 << 8 | 1: 1}

# ICSNPP dnp3_objects.log object_type names (consts.zeek dnp3_objects)
OBJECT_NAMES: dict[int, str] = {
    0x0100: "Binary Input Default Variation", 0x0101: "Single-bit Binary Input", 0x0102: "Binary Input With Status",
    0x0200: "Binary Input Change Default Variation", 0x0201: "Binary Input Change Without Time",
    0x0202: "Binary Input Change With Time", 0x0203: "Binary Input Change With Relative Time",
    0x0300: "Double-bit Input Default Variation", 0x0301: "Double-bit Input No Flags",
    0x0302: "Double-bit Input With Status", 0x0400: "Double-bit Input Change Default Variation",
    0x0401: "Double-bit Input Change Without Time", 0x0402: "Double-bit Input Change With Time",
    0x0403: "Double-bit Input Change With Relative Time", 0x0A00: "Binary Output Default Variation",
    0x0A01: "Binary Output", 0x0A02: "Binary Output Status", 0x0B00: "Binary Output Change Default Variation",
    0x0B01: "Binary Output Change Without Time", 0x0B02: "Binary Output Change With Time",
    0x0C01: "Control Relay Output Block", 0x0C02: "Pattern Control Block", 0x0C03: "Pattern Mask",
    0x1400: "Binary Counter Default Variation", 0x1401: "32-Bit Binary Counter", 0x1402: "16-Bit Binary Counter",
    0x1403: "32-Bit Delta Counter", 0x1404: "16-Bit Delta Counter", 0x1405: "32-Bit Binary Counter Without Flag",
    0x1406: "16-Bit Binary Counter Without Flag", 0x1407: "32-Bit Delta Counter Without Flag",
    0x1408: "16-Bit Delta Counter Without Flag", 0x1500: "Frozen Binary Counter Default Variation",
    0x1501: "32-Bit Frozen Counter", 0x1502: "16-Bit Frozen Counter", 0x1503: "32-Bit Frozen Delta Counter",
    0x1504: "16-Bit Frozen Delta Counter", 0x1505: "32-Bit Frozen Counter w/ Time of Freeze",
    0x1506: "16-Bit Frozen Counter w/ Time of Freeze", 0x1507: "32-Bit Frozen Delta Counter w/ Time of Freeze",
    0x1508: "16-Bit Frozen Delta Counter w/ Time of Freeze", 0x1509: "32-Bit Frozen Counter Without Flag",
    0x150A: "16-Bit Frozen Counter Without Flag", 0x150B: "32-Bit Frozen Delta Counter Without Flag",
    0x150C: "16-Bit Frozen Delta Counter Without Flag", 0x1600: "Counter Change Event Default Variation",
    0x1601: "32-Bit Counter Change Event w/o Time", 0x1602: "16-Bit Counter Change Event w/o Time",
    0x1603: "32-Bit Delta Counter Change Event w/o Time", 0x1604: "16-Bit Delta Counter Change Event w/o Time",
    0x1605: "32-Bit Counter Change Event with Time", 0x1606: "16-Bit Counter Change Event with Time",
    0x1607: "32-Bit Delta Counter Change Event with Time", 0x1608: "16-Bit Delta Counter Change Event with Time",
    0x1700: "Frozen Binary Counter Change Event Default Variation", 0x1701: "32-Bit Frozen Counter Change Event",
    0x1702: "16-Bit Frozen Counter Change Event", 0x1703: "32-Bit Frozen Delta Counter Change Event",
    0x1704: "16-Bit Frozen Delta Counter Change Event", 0x1705: "32-Bit Frozen Counter Change Event w/ Time of Freeze",
    0x1706: "16-Bit Frozen Counter Change Event w/ Time of Freeze",
    0x1707: "32-Bit Frozen Delta Counter Change Event w/ Time of Freeze",
    0x1708: "16-Bit Frozen Delta Counter Change Event w/ Time of Freeze", 0x1E00: "Analog Input Default Variation",
    0x1E01: "32-Bit Analog Input", 0x1E02: "16-Bit Analog Input", 0x1E03: "32-Bit Analog Input Without Flag",
    0x1E04: "16-Bit Analog Input Without Flag", 0x1E05: "32-Bit Floating Point Input",
    0x1E06: "64-Bit Floating Point Input", 0x1F01: "32-Bit Frozen Analog Input", 0x1F02: "16-Bit Frozen Analog Input",
    0x1F03: "32-Bit Frozen Analog Input w/ Time of Freeze", 0x1F04: "16-Bit Frozen Analog Input w/ Time of Freeze",
    0x1F05: "32-Bit Frozen Analog Input Without Flag", 0x1F06: "16-Bit Frozen Analog Input Without Flag",
    0x1F07: "32-Bit Frozen Floating Point Input", 0x1F08: "64-Bit Frozen Floating Point Input",
    0x2000: "Analog Input Change Default Variation", 0x2001: "32-Bit Analog Change Event w/o Time",
    0x2002: "16-Bit Analog Change Event w/o Time", 0x2003: "32-Bit Analog Change Event w/ Time",
    0x2004: "16-Bit Analog Change Event w/ Time", 0x2005: "32-Bit Floating Point Change Event w/o Time",
    0x2006: "64-Bit Floating Point Change Event w/o Time", 0x2007: "32-Bit Floating Point Change Event w/ Time",
    0x2008: "64-Bit Floating Point Change Event w/ Time", 0x2101: "32-Bit Frozen Analog Event w/o Time",
    0x2102: "16-Bit Frozen Analog Event w/o Time", 0x2103: "32-Bit Frozen Analog Event w/ Time",
    0x2104: "16-Bit Frozen Analog Event w/ Time", 0x2105: "32-Bit Floating Point Frozen Change Event w/o Time",
    0x2106: "64-Bit Floating Point Frozen Change Event w/o Time",
    0x2107: "32-Bit Floating Point Frozen Change Event w/ Time",
    0x2108: "64-Bit Floating Point Frozen Change Event w/ Time", 0x2800: "Analog Output Default Variation",
    0x2801: "32-Bit Analog Output Status", 0x2802: "16-Bit Analog Output Status",
    0x2803: "32-Bit Floating Point Output Status", 0x2804: "64-Bit Floating Point Output Status",
    0x2901: "32-Bit Analog Output Block", 0x2902: "16-Bit Analog Output Block",
    0x2903: "32-Bit Floating Point Output Block", 0x2904: "64-Bit Floating Point Output Block",
    0x2A00: "Analog Output Event Default Variation", 0x2A01: "32-Bit Analog Output Event w/o Time",
    0x2A02: "16-Bit Analog Output Event w/o Time", 0x2A03: "32-Bit Analog Output Event w/ Time",
    0x2A04: "16-Bit Analog Output Event w/ Time", 0x2A05: "32-Bit Floating Point Output Event w/o Time",
    0x2A06: "64-Bit Floating Point Output Event w/o Time", 0x2A07: "32-Bit Floating Point Output Event w/ Time",
    0x2A08: "64-Bit Floating Point Output Event w/ Time", 0x3C01: "Class 0 Data", 0x3C02: "Class 1 Data",
    0x3C03: "Class 2 Data", 0x3C04: "Class 3 Data",
}  # fmt: skip

# --- CRC-16/DNP (poly 0x3D65 reflected = 0xA6BC, init 0, xorout 0xFFFF) ----------------------------------------------


def _crc_tables() -> tuple[np.ndarray, np.ndarray]:
    """The byte table, and the two-byte one: for a reflected 16-bit CRC, crc' = t16[crc ^ (b0 | b1 << 8)].
    Built with numpy: the 65536 entries cost 5 ms of start-up in a Python loop."""
    t8 = np.arange(256, dtype=np.uint16)
    for _ in range(8):
        t8 = np.where(t8 & 1, (t8 >> 1) ^ 0xA6BC, t8 >> 1)
    w = np.arange(65536, dtype=np.uint16)
    low = t8[w & 0xFF]
    return t8, (low >> 8) ^ t8[(low ^ (w >> 8)) & 0xFF]


_t8, _T16_ARRAY = _crc_tables()
_T8, _T16 = _t8.tolist(), _T16_ARRAY.tolist()  # lists for crc_dnp: indexing one is faster than an array
_WORDS = [struct.Struct(f"<{n}H") for n in range(9)]


def crc_dnp(data: bytes, start: int = 0, end: int | None = None) -> int:
    """CRC-16/DNP of data[start:end], as it is sent (little-endian after the bytes)."""
    if end is None:
        end = len(data)
    n = end - start
    crc = 0
    t16 = _T16
    pos = start
    while n >= 16:
        for w in _WORDS[8].unpack_from(data, pos):
            crc = t16[crc ^ w]
        pos += 16
        n -= 16
    if n >= 2:
        for w in _WORDS[n >> 1].unpack_from(data, pos):
            crc = t16[crc ^ w]
        pos += n & ~1
    if n & 1:
        crc = (crc >> 8) ^ _T8[(crc ^ data[pos]) & 0xFF]
    return crc ^ 0xFFFF


# --- framing -------------------------------------------------------------------------------------------------------
HEADER = struct.Struct("<HBBHHH")  # start (bytes 05 64), len, ctrl, dst, src, header crc
MAX_FRAGMENT = 4096  # reassembled application fragment; IEEE 1815 devices use 2048 (the usual maximum) or less
MAX_PENDING = 256  # requests remembered to pair responses with
MAX_PARTIALS = 64  # link address pairs with a fragment in reassembly, per flow
MAX_ROLES = 256  # (side, role, address) facts reported per flow


def frame_length(length: int) -> int:
    """Bytes on the wire of a link frame whose LEN field is ``length`` (>= 5)."""
    n = length - 5
    return 10 + n + 2 * ((n + 15) >> 4)


_U16 = struct.Struct("<H")
_I32 = struct.Struct("<i")
_I16 = struct.Struct("<h")
_F32 = struct.Struct("<f")
_F64 = struct.Struct("<d")
_RANGE = {0: struct.Struct("<BB"), 1: struct.Struct("<HH"), 2: struct.Struct("<II"),
          3: struct.Struct("<BB"), 4: struct.Struct("<HH"), 5: struct.Struct("<II")}  # fmt: skip
_COUNT = {7: struct.Struct("<B"), 8: struct.Struct("<H"), 9: struct.Struct("<I"), 11: struct.Struct("<B")}
_PREFIX = {1: struct.Struct("<B"), 2: struct.Struct("<H"), 3: struct.Struct("<I"),
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


class _Parsed:
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


def parse_objects(data: bytes, pos: int, fc: int, response: bool) -> _Parsed:
    """Walk the object headers of an application fragment from ``pos``."""
    out = _Parsed()
    headers_only = not response and fc in HEADERS_ONLY
    end = len(data)
    while pos < end:
        if end - pos < 3:
            out.error = f"{end - pos} trailing bytes after the objects"
            break
        group, var, qual = data[pos], data[pos + 1], data[pos + 2]
        pos += 3
        code = group << 8 | var
        opc, rsc = (qual >> 4) & 7, qual & 0x0F
        obj: dict = {"object": f"g{group}v{var}", "qualifier": qual}
        start = None
        if rsc <= 5:
            st = _RANGE[rsc]
            if end - pos < st.size:
                out.error = f"g{group}v{var}: range truncated"
                break
            start, stop = st.unpack_from(data, pos)
            pos += st.size
            if stop < start:
                out.error = f"g{group}v{var}: range {start}-{stop} is reversed"
                break
            count = stop - start + 1
            obj["range_low"], obj["range_high"] = start, stop
        elif rsc == 6:
            count = 0
        elif rsc in _COUNT:
            st = _COUNT[rsc]
            if end - pos < st.size:
                out.error = f"g{group}v{var}: count truncated"
                break
            (count,) = st.unpack_from(data, pos)
            pos += st.size
        else:
            if len(out.codes) < MAX_OBJECTS:
                out.objects.append(obj)
            out.codes.append(code)
            out.error = f"g{group}v{var}: reserved range code 0x{rsc:x}"
            break
        if rsc != 6:
            obj["object_count"] = count
        name = OBJECT_NAMES.get(code)
        if name is not None:
            obj["object_type"] = name
        if len(out.codes) < MAX_OBJECTS:
            out.objects.append(obj)
        out.codes.append(code)
        if out.address is None:
            out.address = start
            out.quantity = count if rsc != 6 else None
        if opc == 7:
            out.error = f"g{group}v{var}: reserved prefix code 7"
            break
        if rsc == 6 or count == 0 or (headers_only and opc < 4 and group != 50):
            continue  # no data: READ and the like name objects, only time and size-prefixed objects carry data
        # the objects' data
        if opc >= 4:  # each object has a size prefix
            pst = _PREFIX[opc]
            for i in range(count):
                if end - pos < pst.size:
                    out.error = f"g{group}v{var}: object {i} size truncated"
                    return out
                (size,) = pst.unpack_from(data, pos)
                pos += pst.size
                if end - pos < size:
                    out.error = f"g{group}v{var}: object {i} of {size} bytes truncated"
                    return out
                if group == 70 or group == 120:
                    _special(out, group, var, data[pos : pos + size], fc, response)
                pos += size
            continue
        isize = _PREFIX[opc].size if opc else 0
        if group == 0:  # device attributes: data type, length, value
            for i in range(count):
                pos += isize
                if end - pos < 2:
                    out.error = f"g0v{var}: attribute {i} truncated"
                    return out
                pos += 2 + data[pos + 1]
            if pos > end:
                out.error = f"g0v{var}: attribute value truncated"
                break
            continue
        size = OBJECT_SIZES.get(code)
        if size is None:
            bits = PACKED_BITS.get(code)
            if bits is None or opc:
                out.incomplete = True  # size unknown: the rest cannot be walked
                break
            total = (count * bits + 7) >> 3
        else:
            total = count * (size + isize)
        if end - pos < total:
            if group == 12 or group == 41:
                _controls(out, data, pos, end, group, var, opc, isize, size or 0, count, start, fc, response)
            out.error = f"g{group}v{var}: {count} objects need {total} bytes, {end - pos} left"
            break
        if (group == 12 and var <= 2) or (group == 41 and var <= 4):
            _controls(out, data, pos, pos + total, group, var, opc, isize, size or 0, count, start, fc, response)
        pos += total
    return out


def _controls(out: _Parsed, data: bytes, pos: int, end: int, group: int, var: int, opc: int, isize: int, size: int,
              count: int, start: int | None, fc: int, response: bool) -> None:  # fmt: skip
    """Control relay output blocks (g12v1, g12v2) and analog output blocks (g41): one dict each."""
    if size == 0:
        return
    pst = _PREFIX[opc] if opc else None
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
                label = sname[1] if sname else f"CONTROL_STATUS_{st}"
                if label not in out.status:
                    out.status.append(label)
        if len(out.controls) < MAX_CONTROLS:
            out.controls.append(ctl)
        pos += size


def _special(out: _Parsed, group: int, var: int, obj: bytes, fc: int, response: bool) -> None:
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
                label = "FILE_" + FILE_STATUS.get(st, f"STATUS_{st}")
                if label not in out.status:
                    out.status.append(label)
    elif group == 120 and var == 7 and len(obj) >= 9:  # authentication error
        label = f"AUTH_ERROR_{obj[8]}"
        if label not in out.status:
            out.status.append(label)


def _target(parsed: _Parsed) -> str | None:
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


# --- bulk decoding (dissectors/bulk.py) ----------------------------------------------------------------------------
# The polling exchange, decoded for a whole batch at once: a READ answered by the flow's next frame, a RESPONSE from
# the other side with the same application sequence and the link addresses swapped. Both are single-frame fragments
# (transport and application FIR FIN, no CON, no UNS, not broadcast) with good CRCs, whose object headers parse_objects
# walks without reading the objects: qualifier prefix codes 0-3 (no size prefix), READ headers carry no data, RESPONSE
# objects are fixed-size or packed bits. Groups whose objects parse reads, or that set the access class, are left out.
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
    if _opc > 3 or not (_rsc in _RANGE or _rsc in _COUNT or _rsc == 6):
        continue
    _PREFIXED[_q] = _PREFIX[_opc].size if _opc else 0
    _FIELD[_q] = _RANGE[_rsc].size if _rsc in _RANGE else _COUNT[_rsc].size if _rsc in _COUNT else 0
    _RANGED[_q] = _rsc in _RANGE
    _VALUE_BITS[_q] = 8 * (_FIELD[_q] // 2 if _RANGED[_q] else _FIELD[_q])
    _VALUE_MASK[_q] = (1 << int(_VALUE_BITS[_q])) - 1
_FRAME = np.array([frame_length(n) if n >= 5 else -1 for n in range(256)])  # bytes on the wire by LEN
# CRC-16/DNP of a 16-byte block a word at a time: _CRC_AT[j, w] is the CRC (before the final XOR) of word w at word j
# of the block, zeros elsewhere. The CRC is linear and leading zeros keep it 0, so a block is the XOR of its words,
# and a shorter block right-aligned in zeros has the CRC of its own bytes.
_CRC_AT = np.empty((8, 65536), np.uint16)
_CRC_AT[7] = _T16_ARRAY
for _j in range(6, -1, -1):
    _CRC_AT[_j] = _CRC_AT[7][_CRC_AT[_j + 1]]
# 16-byte masks, as single items for gathering rows at once: by length, its last bytes (a block right-aligned); by
# offset in a block, the bytes before the block's end (the rest follows its CRC)
_LAST = np.where(np.arange(16) >= 16 - np.arange(17)[:, None], 0xFF, 0).astype(np.uint8).view("V16")[:, 0]
_BEFORE = np.where(np.arange(16) < 16 - np.arange(16)[:, None], 0xFF, 0).astype(np.uint8).view("V16")[:, 0]
_DIRECTIONS = pa.array([REQUEST, RESPONSE], pa.string())
_READ, _RESPONSE = FUNCTIONS[0x01], FUNCTIONS[RESPONSE_FC]


def _crc_ok(data: np.ndarray, start: np.ndarray, user: np.ndarray, head: np.ndarray) -> np.ndarray:
    """Do all CRCs of each link frame check out? (at ``start`` in data, its first 16 bytes ``head``, ``user`` bytes
    of user data)"""
    words = np.ascontiguousarray(head[:, :8].view("<u2").T)  # the header: the last 8 bytes of a 16-byte block
    crc = _CRC_AT[4].take(words[0])
    for j in range(1, 4):
        crc ^= _CRC_AT[4 + j].take(words[j])
    ok = crc ^ 0xFFFF == head[:, 8:10].view("<u2")[:, 0]
    for block in range((int(user.max(initial=0)) + 15) >> 4):
        rows = np.flatnonzero(user > 16 * block)
        size = np.minimum(16, user[rows] - 16 * block)
        at = start[rows] + (10 + 18 * block - 16) + size
        w = gather(data, at, 24).view("<u8").reshape(-1, 3)  # the block right-aligned, then its CRC
        words = np.ascontiguousarray((w[:, :2] & _LAST[size].view("<u8").reshape(-1, 2)).view("<u2").T)
        crc = _CRC_AT[0].take(words[0])
        for j in range(1, 8):
            crc ^= _CRC_AT[j].take(words[j])
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


def _bulk(batch: PduBatch) -> BulkRows:
    """READ / RESPONSE pairs (see above), with rows equal to parse's from an idle dissector (``DNP3.idle``).

    The roles: parse reports each (side, role, address) once. So the first pair of each (flow, sides, addresses)
    in the batch is left to parse, which records both roles for good, unless the flow's ``roles`` has them (or is
    full) already: it only grows, so what it holds before the batch holds for the whole batch. Later pairs of the
    same flow and addresses have the roles by then."""
    n = len(batch.start)
    unit = np.full(n, -1, np.int64)
    none = BulkRows(unit, np.zeros(0, np.int64), {})
    i = np.flatnonzero(batch.length >= 15)  # header, transport header, application control and function code
    if len(i) < 2:
        return none
    flow, from_orig = batch.flow[i], batch.from_orig[i]
    start = batch.start[i]
    head = gather(batch.data, start, 16).view(np.uint8).reshape(-1, 16)
    ctrl, ac, fc = head[:, 3] & 0x4F, head[:, 11], head[:, 12]
    dst, src = head[:, 4:8].view("<u2").astype(np.int64).T
    user = head[:, 2].astype(np.int64) - 5
    good = (
        (head[:, 0] == 0x05) & (head[:, 1] == 0x64) & (batch.length[i] == _FRAME[head[:, 2]])
        & ((ctrl == 0x43) | (ctrl == 0x44))  # PRM, CONFIRMED or UNCONFIRMED_USER_DATA
        & ((head[:, 10] & 0xC0) == 0xC0) & ((ac & 0xF0) == 0xC0) & (dst < 0xFFFD)
    )  # fmt: skip
    request = good & (fc == 0x01)
    response = good & (fc == RESPONSE_FC) & (user >= 5)
    # a request and the next frame of its flow answering it
    a = np.flatnonzero(
        request[:-1] & response[1:] & (i[1:] == i[:-1] + 1) & (flow[1:] == flow[:-1])
        & (from_orig[1:] != from_orig[:-1]) & (src[1:] == dst[:-1]) & (dst[1:] == src[:-1])
        & ((ac[1:] & 0x0F) == (ac[:-1] & 0x0F))
    )  # fmt: skip
    m = len(a)
    both = np.concatenate((a, a + 1))
    crc = _crc_ok(batch.data, start[both], user[both], head[both])
    a = a[crc[:m] & crc[m:]]
    # the first pair of each (flow, request side, addresses) is parsed, unless the flow has reported both roles
    key = flow[a] << 34 | from_orig[a].astype(np.int64) << 32 | src[a] << 16 | dst[a]
    seed = np.zeros(len(a), bool)
    for j in np.unique(key, return_index=True)[1].tolist():
        roles, fo = batch.dissectors[int(flow[a[j]])].roles, bool(from_orig[a[j]])
        known = (fo, "dnp3_master", int(src[a[j]])) in roles and (not fo, "dnp3_outstation", int(dst[a[j]])) in roles
        seed[j] = len(roles) < MAX_ROLES and not known
    rows = np.column_stack((a[~seed], a[~seed] + 1)).ravel()  # into i: each request, then its response
    walked, sig = _walk_objects(batch.data, start[rows] + 10, user[rows], response[rows])
    walked = np.repeat(walked[0::2] & walked[1::2], 2)
    rows, sig = rows[walked], sig[walked]
    # rows alike in IIN, addresses and object headers differ in their sequence only: their strings are made once,
    # from one of them (grouped by a hash, then checked)
    iin = np.where(response[rows], head[rows, 13].astype(np.int64) << 8 | head[rows, 14], -1)  # -1: the READ
    alike = (iin + 1) << 32 | src[rows] << 16 | dst[rows]
    h = alike
    for col in sig.T:
        h = h * 0x1E3779B97F4A7C15 + col  # wraps around
    _, combo = np.unique(h, return_inverse=True)
    one = np.empty(combo.max(initial=-1) + 1, np.int64)  # a row of each group
    one[combo] = np.arange(len(rows))
    same = (alike == alike[one[combo]]) & (sig == sig[one[combo]]).all(axis=1)
    same = np.repeat(same[0::2] & same[1::2], 2)
    if not same.any():
        return none
    shapes: dict[tuple, tuple] = {}
    table = []
    for r in one.tolist():
        shape = (int(iin[r]), *sig[r].tolist())
        if shape not in shapes:
            shapes[shape] = _facts(batch.pdu(int(i[rows[r]])), shape[0])
        status, address, quantity, target, rest = shapes[shape]
        table.append((status, address, quantity, target, f'{{"src":{src[rows[r]]},"dst":{dst[rows[r]]}{rest}'))
    status, address, quantity, target, details = zip(*table)
    rows, combo = rows[same], pa.array(combo[same].astype(np.int32))
    pdus = i[rows]
    unit[pdus] = pdus[np.arange(len(pdus)) & ~1]
    is_resp = response[rows]
    is_resp8 = pa.array(is_resp.astype(np.int8))
    columns = {
        "protocol": pa.repeat(pa.scalar("dnp3", pa.string()), len(pdus)),
        "direction": _DIRECTIONS.take(is_resp8),
        "function_code": pa.array(fc[rows].astype(np.int32)),
        "function_name": pa.array([_READ[0], _RESPONSE[0]], pa.string()).take(is_resp8),
        "access_class": pa.repeat(pa.scalar(_READ[1], pa.string()), len(pdus)),  # the response inherits the READ's
        "status": pa.array(status, pa.string()).take(combo),
        "transaction_id": pa.array((ac[rows] & 0x0F).astype(np.int32)),
        "unit_id": pa.array(np.where(is_resp, src[rows], dst[rows]).astype(np.int32)),
        "address": pa.array(address, pa.int64()).take(combo),
        "quantity": pa.array(quantity, pa.int64()).take(combo),
        "target": pa.array(target, pa.string()).take(combo),
        "details": pa.array(details, pa.string()).take(combo),
    }
    return BulkRows(unit, pdus, columns)


def _facts(pdu: bytes, iin: int) -> tuple[str | None, int | None, int | None, str | None, str]:
    """What application() makes of one frame of a bulk pair (iin -1: the READ), besides src, dst and sequence:
    status, address, quantity, target, and the details JSON after "dst"."""
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
    address = quantity = target = None
    parsed = parse_objects(frag, pos, frag[1], iin >= 0) if len(frag) > pos else None
    if parsed and parsed.objects:
        details["objects"] = parsed.objects
        target, address, quantity = _target(parsed), parsed.address, parsed.quantity
    text = details_json(details)
    return status, address, quantity, target, "," + text[1:] if details else "}"


class DNP3(FramedStream):
    """One flow of DNP3 over TCP (a stream of link frames) or UDP (datagrams of link frames)."""

    name: ClassVar[str] = "dnp3"
    transports: ClassVar[frozenset[str]] = frozenset({"tcp", "udp"})
    ports: ClassVar[frozenset[int]] = frozenset({20000})
    heuristic: ClassVar[bool] = True
    magic: ClassVar[tuple[int, bytes]] = (0, b"\x05\x64")  # the link layer's start bytes
    header_len: ClassVar[int] = 10
    header_magic: ClassVar[tuple[int, bytes]] = (0, b"\x05\x64")  # the link frame start

    def __init__(self) -> None:
        super().__init__()
        # (from_orig, src, dst) -> [next expected transport seq, bytearray, segments]; None: discarding to next FIR
        self.segments: dict[tuple, list | None] = {}
        # (outstation, master, app seq) -> (request fc, access)
        self.pending: dict[tuple[int, int, int], tuple[int, str]] = {}
        self.roles: set[tuple[bool, str, int]] = set()

    bulk = staticmethod(_bulk)

    def idle(self, from_orig: bool) -> bool:
        """A bulk pair files its READ in ``pending`` and pops it for the RESPONSE, and pops its (side, addresses) from
        ``segments``: neutral when both are empty. Its roles are known by then (see _bulk)."""
        return not self.pending and not self.segments

    @classmethod
    def probe(cls, payload: bytes, by_port: bool) -> bool:
        if len(payload) < 10:
            return by_port and (b"\x05\x64"[: len(payload)] == payload[:2]) and (len(payload) < 3 or payload[2] >= 5)
        if payload[0] == 0x05 and payload[1] == 0x64 and payload[2] >= 5:
            return by_port or crc_dnp(payload, 0, 8) == _U16.unpack_from(payload, 8)[0]
        if not by_port:
            return False
        # on the DNP3 port, a capture that starts mid-frame: a valid header further on will do
        i = payload.find(b"\x05\x64")
        while 0 <= i <= len(payload) - 10:
            if payload[i + 2] >= 5 and crc_dnp(payload, i, i + 8) == _U16.unpack_from(payload, i + 8)[0]:
                return True
            i = payload.find(b"\x05\x64", i + 1)
        return False

    @staticmethod
    def pdu_lengths(data: np.ndarray, start: np.ndarray, length: np.ndarray) -> np.ndarray:
        """pdu_length (not strict) at many starts at once: -1 where it would be, or
        where fewer than header_len bytes are there."""
        h, whole = headers(data, start, length, 3)
        n = h[:, 2] - 5
        ok = whole & (length >= 10) & (h[:, 0] == 0x05) & (h[:, 1] == 0x64) & (n >= 0)
        return np.where(ok, 10 + n + 2 * ((n + 15) >> 4), -1)

    def pdu_length(self, buf: bytearray, pos: int, from_orig: bool, strict: bool) -> int:
        if buf[pos] != 0x05 or buf[pos + 1] != 0x64 or buf[pos + 2] < 5:
            return -1
        if strict and crc_dnp(buf, pos, pos + 8) != _U16.unpack_from(buf, pos + 8)[0]:
            return -1
        return frame_length(buf[pos + 2])

    def datagram(self, data: bytes, from_orig: bool) -> list[Record]:
        """Link frames one after the other; garbage or a cut frame is reported, never carried over."""
        out: list[Record] = []
        pos, end = 0, len(data)
        while pos < end:
            if end - pos < 10 or data[pos] != 0x05 or data[pos + 1] != 0x64 or data[pos + 2] < 5:
                out.append(
                    Anomaly(
                        "dnp3",
                        "bad_header",
                        f"{end - pos} bytes in a datagram that are not a DNP3 link frame: {data[pos : pos + 10].hex()}",
                    )
                )
                break
            n = frame_length(data[pos + 2])
            if end - pos < n:
                out.append(
                    Anomaly(
                        "dnp3", "truncated", f"link frame of {n} bytes cut at {end - pos} by the end of the datagram"
                    )
                )
                break
            out.extend(self.parse(data[pos : pos + n], from_orig))
            pos += n
        return out

    def gap(self, from_orig: bool) -> list[Record]:
        for key in [k for k in self.segments if k[0] == from_orig]:
            del self.segments[key]
        return super().gap(from_orig)

    # --- link layer ---
    def parse(self, pdu: bytes, from_orig: bool) -> list[Record]:
        _start, length, ctrl, dst, src, hcrc = HEADER.unpack_from(pdu)
        if crc_dnp(pdu, 0, 8) != hcrc:
            return [self._bad_crc("header", length, ctrl, dst, src)]
        n = length - 5
        out: list[Record] = []
        if n:
            pos, end = 10, len(pdu)
            chunks = []
            while pos < end:
                blk = min(16, end - pos - 2)
                if crc_dnp(pdu, pos, pos + blk) != _U16.unpack_from(pdu, pos + blk)[0]:
                    return [self._bad_crc(f"data block {(pos - 10) // 18}", length, ctrl, dst, src)]
                chunks.append(pdu[pos : pos + blk])
                pos += blk + 2
            user = b"".join(chunks)
        prm = ctrl & 0x40
        func = ctrl & 0x0F
        if not (prm and func in (3, 4) and n):
            role = "dnp3_master" if ctrl & 0x80 else "dnp3_outstation"  # link-only frame: the DIR bit tells
            if (from_orig, role, src) not in self.roles and len(self.roles) < MAX_ROLES:
                self.roles.add((from_orig, role, src))
                out.append(Identity("dnp3", {"address": src}, role))
            return out
        # transport layer
        th = user[0]
        fin, fir, seq = th & 0x80, th & 0x40, th & 0x3F
        key = (from_orig, src, dst)
        if fir:
            if self.segments.get(key):
                out.append(
                    Anomaly(
                        "dnp3",
                        "transport_incomplete",
                        f"{src}->{dst}: a new first segment (seq {seq}) abandons an unfinished fragment",
                    )
                )
            if fin:
                self.segments.pop(key, None)
                out.extend(self.application(user[1:], src, dst, ctrl, from_orig, 1))
                return out
            if len(self.segments) >= MAX_PARTIALS and key not in self.segments:
                self.segments.clear()
                out.append(
                    Anomaly(
                        "dnp3",
                        "buffer_overflow",
                        f"fragments in reassembly for over {MAX_PARTIALS} link address pairs; dropped",
                    )
                )
            self.segments[key] = [(seq + 1) & 0x3F, bytearray(user[1:]), 1]
            return out
        partial = self.segments.get(key, False)
        if not partial:
            if partial is False:  # not already discarding
                if len(self.segments) < MAX_PARTIALS:
                    self.segments[key] = None
                out.append(
                    Anomaly(
                        "dnp3",
                        "transport_sequence",
                        f"{src}->{dst}: segment seq {seq} without a first segment; discarded up to the next one",
                    )
                )
            return out
        if seq != partial[0]:
            if seq == (partial[0] - 1) & 0x3F:
                return out  # a repeat of the previous segment (link-layer retry): ignored
            self.segments[key] = None
            out.append(
                Anomaly(
                    "dnp3",
                    "transport_sequence",
                    f"{src}->{dst}: segment seq {seq}, expected {partial[0]}; fragment discarded",
                )
            )
            return out
        buf = partial[1]
        buf += user[1:]
        partial[2] += 1
        if len(buf) > MAX_FRAGMENT:
            self.segments[key] = None
            out.append(
                Anomaly(
                    "dnp3",
                    "too_long",
                    f"{src}->{dst}: fragment reassembly over {MAX_FRAGMENT} bytes after {partial[2]} segments; "
                    "the rest is discarded",
                )
            )
            # the application header was in the first segment: the operation is recorded from what was reassembled,
            # so that a fragment made too long cannot hide it (docs/protocols/dnp3.md, damaged PDUs)
            out.extend(self.application(bytes(buf), src, dst, ctrl, from_orig, partial[2], cut=True))
            return out
        partial[0] = (seq + 1) & 0x3F
        if fin:
            del self.segments[key]
            out.extend(self.application(bytes(buf), src, dst, ctrl, from_orig, partial[2]))
        return out

    @staticmethod
    def _bad_crc(where: str, length: int, ctrl: int, dst: int, src: int) -> Anomaly:
        func = LINK_FUNCTIONS.get((ctrl >> 6 & 1, ctrl & 0x0F), f"function {ctrl & 0x0F}")
        return Anomaly(
            "dnp3",
            "bad_crc",
            f"bad {where} CRC in link frame len={length} ctrl=0x{ctrl:02x} ({func}) src={src} dst={dst}; frame not used",
        )

    # --- application layer ---
    def application(self, frag: bytes, src: int, dst: int, ctrl: int, from_orig: bool, segments: int,
                    cut: bool = False) -> list[Record]:  # fmt: skip
        """One Operation for an application fragment. ``cut``: only its first bytes were reassembled (too_long);
        the objects are walked as far as they go, and the walk stopping at the cut is no anomaly of its own."""
        if len(frag) < 2:
            return [Anomaly("dnp3", "truncated", f"{src}->{dst}: application fragment of {len(frag)} bytes")]
        ac, fc = frag[0], frag[1]
        response = fc >= 0x80
        out: list[Record] = []
        entry = FUNCTIONS.get(fc)
        name, access = entry if entry is not None else (f"UNKNOWN_{fc}", "other")
        details: dict = {"src": src, "dst": dst}
        op = Operation("dnp3", RESPONSE if response else REQUEST, fc, name, access, transaction_id=ac & 0x0F,
                       unit_id=src if response else dst, details=details)  # fmt: skip
        if ac & 0x20:
            details["con"] = True
        if segments > 1:
            details["segments"] = segments
        if cut:
            details["too_long"] = True
        if not ac & 0x80 or not ac & 0x40:
            details["fir"], details["fin"] = bool(ac & 0x80), bool(ac & 0x40)
        if dst >= 0xFFFD:
            details["broadcast"] = True
        status: list[str] = []
        pos = 2
        if response:
            if len(frag) < 4:
                out.append(Anomaly("dnp3", "truncated", f"{src}->{dst}: {name} without internal indications"))
            else:
                details["iin"] = iin = frag[2] << 8 | frag[3]
                names, notable = iin_names(iin)
                if names:
                    details["iin_flags"] = names
                if notable:
                    status.append(notable)
            pos = 4
            if fc == UNSOLICITED_FC or ac & 0x10:
                details["unsolicited"] = True
            if fc == RESPONSE_FC:
                req = self.pending.pop((src, dst, ac & 0x0F), None)
                if req is not None:
                    details["fc_request"] = FUNCTIONS[req[0]][0]
                    op.access_class = req[1]
                    if not ac & 0x40:  # more fragments follow, each with the next sequence number
                        self.pending[(src, dst, (ac + 1) & 0x0F)] = req
        if len(frag) > pos:
            parsed = parse_objects(frag, pos, fc, response)
            if fc == 0x01 or fc == 0x02:
                groups = {c >> 8 for c in parsed.codes}
                if 70 in groups:
                    op.access_class = "program"  # file transfer: reading or writing g70 file transport objects
                elif groups == {120}:
                    op.access_class = "session"  # secure authentication objects only
            if parsed.objects:
                details["objects"] = parsed.objects
                op.target = _target(parsed)
                op.address, op.quantity = parsed.address, parsed.quantity
            if parsed.controls:
                details["controls"] = parsed.controls
            if parsed.file_name is not None:
                details["file_name"] = parsed.file_name
            if parsed.user_name is not None:
                details["user_name"] = parsed.user_name
            if parsed.incomplete or cut:
                details["objects_incomplete"] = True
            status.extend(parsed.status)
            if parsed.error is not None and not cut:
                out.append(Anomaly("dnp3", "malformed_objects", f"{src}->{dst} {name}: {parsed.error}"))
        if not response and fc != CONFIRM and entry is not None:
            if len(self.pending) >= MAX_PENDING:
                self.pending.clear()
            self.pending[(dst, src, ac & 0x0F)] = (fc, op.access_class)
        if status:
            op.status = "|".join(status)
        out.append(op)
        role = "dnp3_outstation" if response else "dnp3_master"
        if entry is not None and (from_orig, role, src) not in self.roles and len(self.roles) < MAX_ROLES:
            self.roles.add((from_orig, role, src))
            out.append(Identity("dnp3", {"address": src}, role))
        return out
