"""DNP3 tables: function codes, internal indications, control and file statuses, object sizes and names.

Names are Zeek ICSNPP's (consts.zeek), sizes and codes IEEE 1815-2012's; the code that reads them is beside this.
"""

from __future__ import annotations

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
