"""CIP (Common Industrial Protocol): service tables, EPATH parsing and explicit messages.

CIP rides inside EtherNet/IP (dissectors/enip.py): every CIP message found in a
SendRRData or SendUnitData item becomes one ``cip`` operation, and so does every
service embedded in a Multiple Service Packet or an Unconnected Send. This module
holds the tables and the message parser; ``CipSession`` is the per-flow state that
pairs replies with requests (a CIP reply does not repeat the request path).

Names follow Zeek ICSNPP (cisagov/icsnpp-enip scripts/consts.zeek) in upper snake
case where ICSNPP has one, else Wireshark's (packet-cip.c); the service table is
keyed by (class, service) for the object-specific range 0x4B-0x63, whose meaning
depends on the object class.
"""

from __future__ import annotations

import re
import struct
from collections import deque

from .base import REQUEST, RESPONSE, Anomaly, Identity, Operation, Record


def _snake(text: str) -> str:
    return re.sub(r"[^0-9A-Za-z]+", "_", text).strip("_").upper()


# --- services ---------------------------------------------------------------------------------------------------
# Common services (CIP Vol. 1 Table ), service code -> (name, access class). Codes 0x00-0x31 the table
# does not list are reserved; 0x32-0x4A are vendor specific; 0x4B-0x63 are object-class specific (below).
COMMON_SERVICES: dict[int, tuple[str, str]] = {
    0x01: ("GET_ATTRIBUTES_ALL", "read"),
    0x02: ("SET_ATTRIBUTES_ALL", "write"),
    0x03: ("GET_ATTRIBUTE_LIST", "read"),
    0x04: ("SET_ATTRIBUTE_LIST", "write"),
    0x05: ("RESET", "control"),
    0x06: ("START", "control"),
    0x07: ("STOP", "control"),
    0x08: ("CREATE", "write"),  # creates an object instance; program on the Logix program classes (below)
    0x09: ("DELETE", "write"),
    0x0A: ("MULTIPLE_SERVICE_PACKET", "other"),  # a container: each embedded service has its own row
    0x0D: ("APPLY_ATTRIBUTES", "program"),  # activates pending configuration
    0x0E: ("GET_ATTRIBUTES_SINGLE", "read"),  # Wireshark: Get Attribute Single
    0x10: ("SET_ATTRIBUTES_SINGLE", "write"),
    0x11: ("FIND_NEXT_OBJECT_INSTANCE", "read"),
    0x14: ("ERROR_RESPONSE", "other"),  # DeviceNet only
    0x15: ("RESTORE", "program"),  # restores stored configuration
    0x16: ("SAVE", "program"),  # stores the configuration to non-volatile memory
    0x17: ("NOP", "other"),  # ICSNPP: "No Forward Open", a slip; the spec and Wireshark say NOP
    0x18: ("GET_MEMBER", "read"),
    0x19: ("SET_MEMBER", "write"),
    0x1A: ("INSERT_MEMBER", "write"),
    0x1B: ("REMOVE_MEMBER", "write"),
    0x1C: ("GROUP_SYNC", "diagnostic"),
    0x1D: ("GET_CONNECTION_POINT_MEMBER_LIST", "read"),
}

# Logix tag services (Rockwell 1756-PM020): on the Symbol object 0x6B and on paths made only of symbolic segments.
_LOGIX_TAG = {
    0x4C: ("READ_DATA", "read"),  # Wireshark: Read Tag
    0x4D: ("WRITE_DATA", "write"),  # Write Tag
    0x4E: ("READ_WRITE_MODIFY_DATA", "write"),  # Read Modify Write Tag
    0x52: ("READ_DATA_FRAGMENTED", "read"),  # Read Tag Fragmented
    0x53: ("WRITE_DATA_FRAGMENTED", "write"),  # Write Tag Fragmented
    0x55: ("GET_INSTANCE_ATTRIBUTE_LIST", "read"),
}
SYMBOL_CLASS = 0x6B
CONNECTION_MANAGER = 0x06

# Object-specific services, (class, service) -> (name, access class): CIP Vol. 1/Vol. 2 object definitions,
# Wireshark's cipcm/cipcco/cipmb/cippccc/cipsafety tables, and the Rockwell Logix objects.
OBJECT_SERVICES: dict[tuple[int, int], tuple[str, str]] = {
    (0x01, 0x4B): ("FLASH_LEDS", "other"),  # Identity
    (0x02, 0x4B): ("SYMBOLIC_TRANSLATION", "read"),  # Message Router
    (0x05, 0x4B): ("CONNECTION_BIND", "session"),  # Connection object
    (0x05, 0x4C): ("PRODUCING_APPLICATION_LOOKUP", "diagnostic"),
    (0x05, 0x4E): ("SAFETY_CLOSE", "session"),
    (0x05, 0x54): ("SAFETY_OPEN", "session"),
    (0x06, 0x4E): ("FORWARD_CLOSE", "session"),  # Connection Manager
    (0x06, 0x52): ("UNCONNECTED_SEND", "other"),  # a container: the embedded request has its own row
    (0x06, 0x54): ("FORWARD_OPEN", "session"),
    (0x06, 0x56): ("GET_CONNECTION_DATA", "diagnostic"),
    (0x06, 0x57): ("SEARCH_CONNECTION_DATA", "diagnostic"),
    (0x06, 0x5A): ("GET_CONNECTION_OWNER", "diagnostic"),
    (0x06, 0x5B): ("LARGE_FORWARD_OPEN", "session"),
    (0x0F, 0x4B): ("GET_ENUM_STRING", "read"),  # Parameter
    (0x37, 0x4B): ("INITIATE_UPLOAD", "program"),  # File object: file transfer is program access
    (0x37, 0x4C): ("INITIATE_DOWNLOAD", "program"),
    (0x37, 0x4D): ("INITIATE_PARTIAL_READ", "program"),
    (0x37, 0x4E): ("INITIATE_PARTIAL_WRITE", "program"),
    (0x37, 0x4F): ("UPLOAD_TRANSFER", "program"),
    (0x37, 0x50): ("DOWNLOAD_TRANSFER", "program"),
    (0x37, 0x51): ("CLEAR_FILE", "program"),
    (0x39, 0x4C): ("RECOVER", "control"),  # Safety Supervisor
    (0x39, 0x4E): ("PERFORM_DIAGNOSTICS", "diagnostic"),
    (0x39, 0x4F): ("CONFIGURE_REQUEST", "program"),
    (0x39, 0x50): ("VALIDATE_CONFIGURATION", "program"),
    (0x39, 0x51): ("SET_PASSWORD", "session"),
    (0x39, 0x52): ("CONFIGURATION_LOCK", "program"),  # Wireshark: Configuration (Un)Lock
    (0x39, 0x53): ("MODE_CHANGE", "control"),
    (0x39, 0x54): ("SAFETY_RESET", "control"),
    (0x39, 0x55): ("RESET_PASSWORD", "session"),
    (0x39, 0x56): ("PROPOSE_TUNID", "program"),
    (0x39, 0x57): ("APPLY_TUNID", "program"),
    (0x39, 0x58): ("PROPOSE_TUNID_LIST", "program"),
    (0x39, 0x59): ("APPLY_TUNID_LIST", "program"),
    (0x3A, 0x4B): ("RESET_ERROR", "control"),  # Safety Validator
    (0x44, 0x4B): ("READ_DISCRETE_INPUTS", "read"),  # Modbus object
    (0x44, 0x4C): ("READ_COILS", "read"),
    (0x44, 0x4D): ("READ_INPUT_REGISTERS", "read"),
    (0x44, 0x4E): ("READ_HOLDING_REGISTERS", "read"),
    (0x44, 0x4F): ("WRITE_COILS", "write"),
    (0x44, 0x50): ("WRITE_HOLDING_REGISTERS", "write"),
    (0x44, 0x51): ("MODBUS_PASSTHROUGH", "other"),
    (0x67, 0x4B): ("EXECUTE_PCCC_SERVICE", "other"),  # PCCC object: the PCCC command inside decides
    (0xF3, 0x4B): ("KICK_TIMER", "other"),  # Connection Configuration object
    (0xF3, 0x4C): ("OPEN_CONNECTION", "session"),
    (0xF3, 0x4D): ("CLOSE_CONNECTION", "session"),
    (0xF3, 0x4E): ("STOP_CONNECTION", "session"),
    (0xF3, 0x4F): ("CHANGE_START", "program"),
    (0xF3, 0x50): ("GET_STATUS", "diagnostic"),
    (0xF3, 0x51): ("CHANGE_COMPLETE", "program"),
    (0xF3, 0x52): ("AUDIT_CHANGES", "diagnostic"),
    (0xF6, 0x4C): ("GET_AND_CLEAR", "diagnostic"),  # Ethernet Link
    (0x6C, 0x4C): ("READ_TEMPLATE", "read"),  # Logix Template object
    # Logix program objects (Rockwell, unpublished; Wireshark: Unknown Service). Observed in the Quickdraw
    # ControlLogix captures: a program download creates instances of 0x68/0x6A/0x6B and sends 0x50 blocks to
    # 0x6A instances; a program upload reads 0x6A instances with 0x4F (requests offset + size, replies data).
    (0x68, 0x08): ("CREATE", "program"),
    (0x68, 0x09): ("DELETE", "program"),
    (0x6A, 0x08): ("CREATE", "program"),
    (0x6A, 0x09): ("DELETE", "program"),
    (0x6A, 0x4F): ("PROGRAM_UPLOAD_TRANSFER", "program"),
    (0x6A, 0x50): ("PROGRAM_DOWNLOAD_TRANSFER", "program"),
    (0x6B, 0x08): ("CREATE", "program"),
    (0x6B, 0x09): ("DELETE", "program"),
    **{(SYMBOL_CLASS, s): v for s, v in _LOGIX_TAG.items()},
}

# Object-specific codes on classes with no entry above: ICSNPP's class-blind names for the Logix data-table
# codes (Rockwell controllers also accept them on other vendor classes), else UNKNOWN_0xNN / other.
OBJECT_FALLBACK: dict[int, tuple[str, str]] = {s: v for s, v in _LOGIX_TAG.items() if s != 0x55}
# Classes whose object-specific services are all program access: 0xA1 is the Rockwell firmware-update object
# (the Quickdraw "Firmware Change" capture sends the firmware image in 0x4D blocks to 0xA1 instance 1).
PROGRAM_CLASSES = frozenset({0x37, 0xA1})
_SERVICE_INFO: dict[tuple[int | None, int], tuple[str, str]] = {}  # memo of service_info


def service_info(class_id: int | None, service: int) -> tuple[str, str]:
    """(name, access class) of a CIP service (0x80 bit cleared) on an object class (None: unknown)."""
    found = _SERVICE_INFO.get((class_id, service))
    if found is None:
        if len(_SERVICE_INFO) >= 4096:
            _SERVICE_INFO.clear()
        found = _SERVICE_INFO[(class_id, service)] = _service_info(class_id, service)
    return found


def _service_info(class_id: int | None, service: int) -> tuple[str, str]:
    if service < 0x4B or service > 0x63:
        found = COMMON_SERVICES.get(service)
        if found is not None:
            if service in (0x08, 0x09) and class_id is not None:
                return OBJECT_SERVICES.get((class_id, service), found)
            return found
        kind = "VENDOR_SPECIFIC" if 0x32 <= service <= 0x4A else "RESERVED"
        return f"{kind}_0x{service:02X}", "other"
    if class_id is not None:
        found = OBJECT_SERVICES.get((class_id, service))
        if found is not None:
            return found
    found = OBJECT_FALLBACK.get(service)
    if found is None:
        found = (f"UNKNOWN_0x{service:02X}", "other")
    if class_id in PROGRAM_CLASSES:
        return found[0], "program"
    return found


# --- statuses ---------------------------------------------------------------------------------------------------
_ICSNPP_GENERAL_STATUS = {
    0x01: "Connection Failure", 0x02: "Resource Unavailable", 0x03: "Invalid Parameter Value",
    0x04: "Path Segment Error", 0x05: "Path Destination Unknown", 0x06: "Partial Transfer", 0x07: "Connection Lost",
    0x08: "Service Not Supported", 0x09: "Invalid Attribute Value", 0x0A: "Attribute List Error",
    0x0B: "Already In Requested Mode/State", 0x0C: "Object State Conflict", 0x0D: "Object Already Exists",
    0x0E: "Attribute Not Settable", 0x0F: "Privilege Violation", 0x10: "Device State Conflict",
    0x11: "Reply Data Too Large", 0x12: "Fragmentation Of A Primitive Value", 0x13: "Not Enough Data",
    0x14: "Attribute Not Supported", 0x15: "Too Much Data", 0x16: "Object Does Not Exist",
    0x17: "Service Fragmentation Sequence Not In Progress", 0x18: "No Stored Attribute Data",
    0x19: "Store Operation Failure", 0x1A: "Routing Failure, Request Packet Too Large",
    0x1B: "Routing Failure, Response Packet Too Large", 0x1C: "Missing Attribute List Entry Data",
    0x1D: "Invalid Attribute Value List", 0x1E: "Embedded Service Error", 0x1F: "Vendor Specific Error",
    0x20: "Invalid Parameter", 0x21: "Write-Once Value Or Medium Already Written", 0x22: "Invalid Reply Received",
    0x23: "Buffer Overflow", 0x24: "Invalid Message Format", 0x25: "Key Failure In Path", 0x26: "Path Size Invalid",
    0x27: "Unexpected Attribute In List", 0x28: "Invalid Member ID", 0x29: "Member Not Settable",
    0x2A: "Group 2 Only Server General Failure", 0x2B: "Unknown Modbus Error", 0x2C: "Attribute Not Gettable",
    0xFF: "Still Processing",
}  # fmt: skip
# CIP general status (Vol. 1 Appendix B) -> status text; 0x00 (success) is None
GENERAL_STATUS: dict[int, str] = {code: _snake(text) for code, text in _ICSNPP_GENERAL_STATUS.items()}


def general_status(code: int) -> str | None:
    """The ``status`` of a reply with this general status code."""
    return GENERAL_STATUS.get(code, f"UNKNOWN_STATUS_0x{code:02X}") if code else None


# Connection Manager extended status (Vol. 1 Table 3-5.33), as ICSNPP and Wireshark word them
EXTENDED_STATUS: dict[int, str] = {
    0x100: "Connection in use or duplicate Forward Open",
    0x103: "Transport class and trigger combination not supported",
    0x106: "Ownership conflict", 0x107: "Target connection not found", 0x108: "Invalid network connection parameter",
    0x109: "Invalid connection size", 0x110: "Target for connection not configured", 0x111: "RPI not supported",
    0x112: "RPI value(s) not acceptable", 0x113: "Out of connections", 0x114: "Vendor ID or product code mismatch",
    0x115: "Device type mismatch", 0x116: "Revision mismatch", 0x117: "Invalid produced or consumed application path",
    0x118: "Invalid or inconsistent configuration application path", 0x119: "Non-listen only connection not opened",
    0x11A: "Target object out of connections", 0x11B: "RPI is smaller than the production inhibit time",
    0x11C: "Transport class not supported", 0x11D: "Production trigger not supported", 0x11E: "Direction not supported",
    0x11F: "Invalid O->T Fixed/Variable", 0x120: "Invalid T->O Fixed/Variable", 0x121: "Invalid O->T Priority",
    0x122: "Invalid T->O Priority", 0x123: "Invalid O->T connection type", 0x124: "Invalid T->O connection type",
    0x125: "Invalid O->T redundant owner", 0x126: "Invalid configuration size", 0x127: "Invalid O->T size",
    0x128: "Invalid T->O size", 0x129: "Invalid configuration application path",
    0x12A: "Invalid consuming application path", 0x12B: "Invalid producing application path",
    0x12C: "Configuration symbol does not exist", 0x12D: "Consuming symbol does not exist",
    0x12E: "Producing symbol does not exist", 0x12F: "Inconsistent application path combination",
    0x130: "Inconsistent consume data format", 0x131: "Inconsistent produce data format",
    0x132: "NULL ForwardOpen not supported", 0x203: "Connection timed out", 0x204: "Unconnected request timed out",
    0x205: "Parameter error in unconnected request", 0x206: "Message too large for UnconnectedSend",
    0x207: "Unconnected acknowledged without reply", 0x301: "No buffer memory available",
    0x302: "Network bandwidth not available for data", 0x303: "No consumed connection ID filter available",
    0x304: "Not configured to send scheduled priority data", 0x305: "Schedule signature mismatch",
    0x306: "Schedule signature validation not possible", 0x311: "Port not available", 0x312: "Link address not valid",
    0x315: "Invalid segment in connection path", 0x316: "ForwardClose connection path mismatch",
    0x317: "Scheduling not specified", 0x318: "Link address to self invalid", 0x319: "Secondary resources unavailable",
    0x31A: "Rack connection already established", 0x31B: "Module connection already established",
    0x31C: "Miscellaneous", 0x31D: "Redundant connection mismatch",
    0x31E: "No more user configurable link consumer resources available in the producing module",
    0x31F: "No more user configurable link consumer resources configured in the producing module",
    0x800: "Network link offline", 0x801: "Incompatible Multicast RPI", 0x802: "Invalid Safety Connection Size",
    0x803: "Invalid Safety Connection Format", 0x804: "Invalid Time Correction Connection Parameters",
    0x805: "Invalid Ping Interval EPI Multiplier", 0x806: "Time Coordination Msg Min Multiplier",
    0x807: "Network Time Expectation Multiplier", 0x808: "Timeout Multiplier", 0x809: "Invalid Max Consumer Number",
    0x80A: "Invalid CPCRC", 0x80B: "Time Correction Connection ID Invalid", 0x80C: "SCID Mismatch",
    0x80D: "TUNID not set", 0x80E: "TUNID Mismatch", 0x80F: "Configuration operation not allowed",
    0x810: "No target application data available", 0x811: "No originator application data available",
    0x812: "Node address has changed since the network was scheduled", 0x813: "Not configured for off-subnet multicast",
    0x814: "Invalid produce/consume data format",
}  # fmt: skip

# --- objects, vendors, device types -----------------------------------------------------------------------------
CLASS_NAMES: dict[int, str] = {
    0x01: "Identity", 0x02: "Message Router", 0x03: "DeviceNet", 0x04: "Assembly", 0x05: "Connection",
    0x06: "Connection Manager", 0x07: "Register", 0x08: "Discrete Input Point", 0x09: "Discrete Output Point",
    0x0A: "Analog Input Point", 0x0B: "Analog Output Point", 0x0E: "Presence Sensing", 0x0F: "Parameter",
    0x10: "Parameter Group", 0x12: "Group", 0x1D: "Discrete Input Group", 0x1E: "Discrete Output Group",
    0x1F: "Discrete Group", 0x20: "Analog Input Group", 0x21: "Analog Output Group", 0x22: "Analog Group",
    0x23: "Position Sensor", 0x24: "Position Controller Supervisor", 0x25: "Position Controller",
    0x26: "Block Sequencer", 0x27: "Command Block", 0x28: "Motor Data", 0x29: "Control Supervisor",
    0x2A: "AC/DC Drive", 0x2B: "Acknowledge Handler", 0x2C: "Overload", 0x2D: "Softstart", 0x2E: "Selection",
    0x30: "S-Device Supervisor", 0x31: "S-Analog Sensor", 0x32: "S-Analog Actuator",
    0x33: "S-Single Stage Controller", 0x34: "S-Gas Calibration", 0x35: "Trip Point", 0x37: "File",
    0x38: "S-Partial Pressure", 0x39: "Safety Supervisor", 0x3A: "Safety Validator",
    0x3B: "Safety Discrete Output Point", 0x3C: "Safety Discrete Output Group", 0x3D: "Safety Discrete Input Point",
    0x3E: "Safety Discrete Input Group", 0x3F: "Safety Dual Channel Output", 0x40: "S-Sensor Calibration",
    0x41: "Event Log", 0x42: "Motion Device Axis", 0x43: "Time Sync", 0x44: "Modbus",
    0x45: "Originator Connection List", 0x46: "Modbus Serial Link", 0x47: "Device Level Ring (DLR)", 0x48: "QoS",
    0x49: "Safety Analog Input Point", 0x4A: "Safety Analog Input Group", 0x4B: "Safety Dual Channel Analog Input",
    0x4C: "SERCOS III Link", 0x4D: "Target Connection List", 0x4E: "Base Energy", 0x4F: "Electrical Energy",
    0x50: "Non-Electrical Energy", 0x51: "Base Switch", 0x52: "SNMP", 0x53: "Power Management", 0x54: "RSTP Bridge",
    0x55: "RSTP Port", 0x56: "PRP/HSR Protocol", 0x57: "PRP/HSR Nodes Table", 0x58: "Safety Feedback",
    0x59: "Safety Dual Channel Feedback", 0x5A: "Safety Stop Functions", 0x5B: "Safety Limit Functions",
    0x5C: "Power Curtailment", 0x5D: "CIP Security", 0x5E: "EtherNet/IP Security", 0x5F: "Certificate Management",
    0x67: "PCCC Class", 0xF0: "ControlNet", 0xF1: "ControlNet Keeper", 0xF2: "ControlNet Scheduling",
    0xF3: "Connection Configuration", 0xF4: "Port", 0xF5: "TCP/IP Interface", 0xF6: "Ethernet Link",
    0xF7: "CompoNet", 0xF8: "CompoNet Repeater",
}  # fmt: skip

# a few common vendors (ICSNPP cip_vendors / ODVA vendor list); others are reported by id only
VENDORS: dict[int, str] = {
    1: "Rockwell Automation/Allen-Bradley", 3: "Honeywell Inc.", 5: "Rockwell Automation/Reliance Elec.",
    7: "SMC Corporation", 8: "Molex Incorporated", 12: "Banner Engineering Corp.", 13: "Belden Wire & Cable Company",
    26: "Festo Corporation", 40: "Wago Corporation", 43: "BALLUFF, Inc.", 44: "Yaskawa Electric America, Inc.",
    46: "ABB Industrial Systems", 47: "Omron Corporation", 48: "TURCk, Inc.", 50: "Real Time Automation (C&ID)",
    57: "Pepperl + Fuchs", 68: "Eaton Electrical", 82: "Mitsubishi Electric Automation, Inc.",
    90: "HMS Industrial Networks AB", 108: "Beckhoff Automation GmbH", 145: "Siemens Energy & Automation/Drives",
    161: "Mitsubishi Electric Corporation", 176: "Red Lion Controls", 243: "Schneider Automation, Inc.",
    283: "Hilscher GmbH", 309: "Prosoft Technology", 315: "SEW Eurodrive GmbH",
    326: "GE Fanuc Automation North America, Inc.", 345: "Endress + Hauser", 562: "Phoenix Contact",
    634: "Hirschmann, Inc.", 678: "Cognex Corporation", 808: "SICK AG", 939: "Cisco Systems",
    991: "Moxa Networking Co., Ltd.", 1006: "N-Tron", 1251: "Siemens AG", 1289: "eWON",
    1307: "Kepware Technologies",
}  # fmt: skip

# CIP device profiles (ICSNPP cip_device_types)
DEVICE_TYPES: dict[int, str] = {
    0: "Generic Device (deprecated)", 1: "Control Station (deprecated)", 2: "AC Drive Device", 3: "Motor Overload",
    4: "Limit Switch", 5: "Inductive Proximity Switch", 6: "Photoelectric Sensor", 7: "General Purpose Discrete I/O",
    8: "Encoder (deprecated)", 9: "Resolver", 10: "General Purpose Analog I/O (deprecated)",
    12: "Communications Adapter", 13: "Barcode Scanner (deprecated)", 14: "Programmable Logic Controller",
    16: "Position Controller", 17: "Weigh Scale (deprecated)", 18: "Message Display (deprecated)", 19: "DC Drive",
    20: "Servo Drives (deprecated)", 21: "Contactor", 22: "Motor Starter", 23: "Softstart Starter",
    24: "Human-Machine Interface", 25: "Pneumatic Valve(s) (deprecated)", 26: "Mass Flow Controller",
    27: "Pneumatic Valve(s)", 28: "Vacuum Pressure Gauge", 29: "Process Control Value", 30: "Residual Gas Analyzer",
    31: "DC Power Generator", 32: "RF Power Generator", 33: "Turbomolecular Vacuum Pump", 34: "Encoder",
    35: "Safety Discrete I/O Device", 36: "Fluid Flow Controller", 37: "CIP Motion Drive", 38: "CompoNet Repeater",
    39: "Mass Flow Controller Enhanced", 40: "CIP Modbus Device", 41: "CIP Modbus Translator",
    42: "Safety Analog I/O Device", 43: "Generic Device (keyable)", 44: "Managed Ethernet Switch",
    45: "CIP Motion Safety Drive Device", 46: "Safety Drive Device", 47: "CIP Motion Encoder",
    48: "CIP Motion Converter", 49: "CIP Motion I/O", 50: "ControlNet Physical Layer Component",
}  # fmt: skip


def identity_fields(vendor_id: int, device_type: int, product_code: int, major: int, minor: int, serial: int,
                    name: str | None) -> dict[str, str | int]:  # fmt: skip
    """IDENTITY_FIELDS from a CIP Identity object (ListIdentity item or Identity attributes 1-7)."""
    fields: dict[str, str | int] = {"vendor_id": vendor_id}
    vendor = VENDORS.get(vendor_id)
    if vendor is not None:
        fields["vendor"] = vendor
    fields["device_type"] = DEVICE_TYPES.get(device_type, f"0x{device_type:04x}")
    fields["product_code"] = product_code
    fields["revision"] = f"{major}.{minor}"
    fields["serial_number"] = f"0x{serial:08x}"
    if name:
        fields["product_name"] = name
    return fields


# --- EPATH --------------------------------------------------------------------------------------------------------
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_LOGICAL_KEYS = ("class_id", "instance_id", "member_id", "connection_point", "attribute_id")
_LOGICAL_WORDS = ("class", "instance", "member", "connection point", "attribute")


class Path:
    """What a padded EPATH addresses: the last class/instance/attribute/member/connection point, the
    symbolic tag, port segments (the route), and the text form used as ``target``."""

    __slots__ = ("class_id", "complete", "fields", "parts", "route", "tag", "text")

    def __init__(self) -> None:
        self.fields: dict[str, int | str] = {}
        self.parts: list[str] = []  # logical segments as text, in path order
        self.tag = ""  # symbolic segments and their element indexes: "Program:Main.Tag[2,3].Member"
        self.route: list[str] = []  # port segments: "port 1 address 0"
        self.complete = True
        self.class_id: int | None = None  # the last class segment
        self.text: str | None = None  # the target

    def target(self) -> str | None:
        return self.text


def parse_path(b: bytes, pos: int, end: int) -> Path:
    """Decode the padded EPATH in b[pos:end]; stops at the first segment it cannot size."""
    p = Path()
    fields = p.fields
    last_symbol = False  # the previous segment was symbolic (a member segment then is an array element)
    element_open = False
    while pos < end:
        seg = b[pos]
        kind = seg & 0xE0
        if kind == 0x20:  # logical segment
            ltype = (seg >> 2) & 7
            fmt = seg & 3
            if ltype == 5:  # special: electronic key
                if fmt != 0 or pos + 10 > end or b[pos + 1] != 4:
                    break
                vendor, dev, prod = struct.unpack_from("<HHH", b, pos + 2)
                revision = f"{b[pos + 8] & 0x7F}.{b[pos + 9]}"
                fields["electronic_key"] = f"vendor {vendor} device type {dev} product code {prod} revision {revision}"
                pos += 10
                continue
            if ltype > 5:  # service id / extended logical: not part of an application path
                if fmt != 0 or pos + 2 > end:
                    break
                pos += 2
                continue
            if fmt == 0 and pos + 2 <= end:
                value, size = b[pos + 1], 2
            elif fmt == 1 and pos + 4 <= end:
                value, size = _U16.unpack_from(b, pos + 2)[0], 4
            elif fmt == 2 and pos + 6 <= end:
                value, size = _U32.unpack_from(b, pos + 2)[0], 6
            else:
                break
            pos += size
            if ltype == 2 and last_symbol:  # array element of the tag just named
                p.tag = p.tag[:-1] + f",{value}]" if element_open else p.tag + f"[{value}]"
                element_open = True
                continue
            fields[_LOGICAL_KEYS[ltype]] = value
            p.parts.append(f"class 0x{value:02x}" if ltype == 0 else f"{_LOGICAL_WORDS[ltype]} {value}")
            last_symbol = element_open = False
        elif seg == 0x91:  # ANSI extended symbolic segment
            if pos + 2 > end:
                break
            n = b[pos + 1]
            if pos + 2 + n > end:
                break
            name = b[pos + 2 : pos + 2 + n].decode("latin-1")
            p.tag = f"{p.tag}.{name}" if p.tag else name
            pos += 2 + n + (n & 1)
            last_symbol, element_open = True, False
        elif kind == 0x00:  # port segment
            port = seg & 0x0F
            if seg & 0x10:  # extended link address
                if pos + 2 > end:
                    break
                n = b[pos + 1]
                start = pos + 2
                if port == 0x0F:
                    if start + 2 > end:
                        break
                    port = _U16.unpack_from(b, start)[0]
                    start += 2
                if start + n > end:
                    break
                address = b[start : start + n].rstrip(b"\0").decode("latin-1")
                pos = start + n + ((start + n - pos) & 1)
            else:
                if pos + 2 > end:
                    break
                address = str(b[pos + 1])
                pos += 2
                if port == 0x0F:
                    if pos + 2 > end:
                        break
                    port = _U16.unpack_from(b, pos - 1)[0]
                    address = str(b[pos + 1])
                    pos += 2
            p.route.append(f"port {port} address {address}")
            last_symbol = element_open = False
        elif kind == 0x80:  # data segment (simple data): word count, words
            if seg != 0x80 or pos + 2 > end:
                break
            pos += 2 + 2 * b[pos + 1]
        elif kind == 0x40:  # network segment
            if seg & 0x10:  # safety / extended: word count follows
                if pos + 2 > end:
                    break
                pos += 2 + 2 * b[pos + 1]
            else:
                pos += 2
        elif kind == 0x60:  # symbolic segment (ASCII, length in the low bits)
            n = seg & 0x1F
            if n == 0 or pos + 1 + n > end:
                break
            name = b[pos + 1 : pos + 1 + n].decode("latin-1")
            p.tag = f"{p.tag}.{name}" if p.tag else name
            pos += 1 + n + ((1 + n) & 1)
            last_symbol, element_open = True, False
        else:
            break
    p.complete = pos == end
    if p.tag:
        fields["symbol"] = p.tag
    if p.route:
        fields["route"] = ", ".join(p.route)
    p.class_id = fields.get("class_id")  # type: ignore[assignment]
    p.text = p.tag or " ".join(p.parts) or None
    return p


_PATHS: dict[bytes, Path] = {}  # request paths repeat a lot: decode each once (a Path is not changed after)


def request_path(b: bytes, pos: int, end: int) -> Path:
    key = b[pos:end]
    p = _PATHS.get(key)
    if p is None:
        if len(_PATHS) >= 4096:
            _PATHS.clear()
        p = _PATHS[key] = parse_path(key, 0, len(key))
    return p


# --- messages -----------------------------------------------------------------------------------------------------
_REQ = struct.Struct("<BB")  # service, path size (words)
_RSP = struct.Struct("<BBBB")  # service, reserved, general status, additional status size (words)
_FWD_OPEN = struct.Struct("<BBIIHHIB3xI")  # through O->T RPI
_FWD_OPEN_REPLY = struct.Struct("<IIHHIII")  # through T->O API
_FWD_CLOSE = struct.Struct("<BBHHI")
_CONN_TRIPLE = struct.Struct("<HHI")  # connection serial, originator vendor, originator serial
_UCMM = struct.Struct("<BBH")  # priority/tick, timeout ticks, embedded message size
_IDENTITY_ATTRS = struct.Struct("<HHHBBHI")  # Identity attributes 1-6
MAX_DEPTH = 3  # containers in containers
MAX_PENDING = 512  # requests waiting for a reply, per flow
MAX_LIST = 64  # attribute ids kept in details


def _connection_id(value: int) -> str:
    return f"0x{value:08x}"


class _Request:
    """What a reply needs from its request: the service, the addressed class and path, the embedded requests."""

    __slots__ = (
        "attributes",
        "children",
        "class_id",
        "connection_routed",
        "fields",
        "inner",
        "routed",
        "service",
        "target",
    )  # fmt: skip

    def __init__(self, service: int, path: Path | None):
        self.service = service
        self.class_id = path.class_id if path is not None else None
        self.fields = path.fields if path is not None else {}
        self.target = path.text if path is not None else None
        self.children: list[_Request | None] | None = None  # Multiple Service Packet
        self.inner: _Request | None = None  # Unconnected Send
        self.routed = bool(path is not None and path.route)  # sent on to another module
        self.attributes: list[int] | None = None  # Get_Attribute_List
        self.connection_routed = True  # Forward Open: the connection path leaves the device (port segment)


class Context:
    """Where a CIP message was found: set by the ENIP dissector for each CPF data item."""

    __slots__ = ("command", "connected", "connection_id", "key", "routed", "sequence")

    def __init__(self, command: str, connected: bool, connection_id: str | None, sequence: int | None, key):
        self.command = command
        self.connected = connected
        self.connection_id = connection_id
        self.sequence = sequence
        self.key = key  # pairs a reply with its request: the CIP sequence count or the ENIP sender context
        self.routed = False  # inside an Unconnected Send with a route path, or on a routed connection


class CipSession:
    """Per-flow CIP state: pending requests (to pair replies) and the running container index."""

    def __init__(self) -> None:
        self.problems: list[Record] = []  # malformed parts found while decoding the current message
        self.pending: dict[object, deque[_Request]] = {}
        self.n_pending = 0
        self.index = 0
        self.routed_connections: dict[str, bool] = {}  # connection id -> opened through a route (port segment)

    # pairing -------------------------------------------------------------------------------------------------
    def _remember(self, key, req: _Request) -> None:
        queue = self.pending.get(key)
        if queue is None:
            queue = self.pending[key] = deque()
        queue.append(req)
        self.n_pending += 1
        if self.n_pending > MAX_PENDING:  # drop the oldest waiting request
            oldest = next(iter(self.pending))
            q = self.pending[oldest]
            q.popleft()
            self.n_pending -= 1
            if not q:
                del self.pending[oldest]

    def _pair(self, key) -> _Request | None:
        queue = self.pending.get(key)
        if not queue:
            return None
        req = queue.popleft()
        self.n_pending -= 1
        if not queue:
            del self.pending[key]
        return req

    # parsing -------------------------------------------------------------------------------------------------
    def _bad(self, details: dict | None, text: str) -> None:
        """A length that does not fit: noted on the row and reported as an anomaly."""
        if details is not None:
            details["malformed"] = text
        self.problems.append(Anomaly("cip", "malformed_pdu", text))

    def message(self, b: bytes, start: int, end: int, ctx: Context) -> list[Record]:
        """Records for the CIP message in b[start:end] (a CPF data item's payload)."""
        out: list[Record] = []
        if end - start < 2 and (end <= start or b[start] & 0x80):  # a request's service byte alone is kept
            out.append(Anomaly("cip", "malformed_pdu", f"CIP message of {end - start} bytes in {ctx.command}"))
            return out
        if b[start] & 0x80:
            req = self._pair(ctx.key) if ctx.key is not None else None
            self._reply(b, start, end, ctx, req, out, None, 0)
        else:
            req = self._request(b, start, end, ctx, out, None, 0)
            if req is not None and ctx.key is not None:
                self._remember(ctx.key, req)
        if self.problems:
            out.extend(self.problems)
            self.problems = []
        return out

    def _base_details(self, ctx: Context, container: int | None, position: int, is_container: bool) -> dict:
        """The first fields of a row. Only containers get a running number (``cip_index``, which their embedded
        rows' ``container_index`` refers to): a plain message leaves no trace in the session once its reply is
        paired, so that request/reply pairs can be decoded in bulk (EtherNetIP.bulk) without the session."""
        details: dict = {}
        if is_container:
            self.index += 1
            details["cip_index"] = self.index
        if container is not None:
            details["container_index"] = container
            details["service_index"] = position
        details["enip_command"] = ctx.command
        if ctx.connection_id is not None:
            details["connection_id"] = ctx.connection_id
        return details

    def _request(self, b: bytes, start: int, end: int, ctx: Context, out: list[Record], container: int | None,
                 position: int, depth: int = 0) -> _Request | None:  # fmt: skip
        if end - start < 2 and (container is not None or end <= start):
            out.append(Anomaly("cip", "malformed_pdu", f"embedded CIP request of {end - start} bytes"))
            return None
        # a message cut after its service byte still says what was asked (docs/protocols/enip.md, damaged PDUs)
        service, words = _REQ.unpack_from(b, start) if end - start >= 2 else (b[start], 1)
        path_end = start + 2 + 2 * words
        truncated = path_end > end
        if truncated:
            path_end = end
        path = request_path(b, start + 2, path_end)
        class_id = path.class_id
        if class_id is None and path.tag:
            class_id = SYMBOL_CLASS  # a tag path addresses the Logix Symbol object
        is_container = service == 0x0A or class_id == CONNECTION_MANAGER and service == 0x52
        details = self._base_details(ctx, container, position, is_container)
        if truncated:
            self._bad(details, "request path longer than the message")
        name, access = service_info(class_id, service)
        details.update(path.fields)
        cname = CLASS_NAMES.get(path.class_id) if path.class_id is not None else None
        if cname:
            details["class_name"] = cname
        if not path.complete and "malformed" not in details:
            details["path_undecoded"] = True  # a segment type sorf does not decode; the rest of the path is skipped
        op = Operation("cip", REQUEST, service, name, access, transaction_id=ctx.sequence, target=path.text,
                       details=details)  # fmt: skip
        if ctx.sequence is not None:
            details["cip_sequence_count"] = ctx.sequence
        out.append(op)
        req = _Request(service, path)
        req.class_id = class_id
        req.routed = req.routed or ctx.routed
        data = path_end
        if service == 0x0A:
            req.children = self._msp(b, data, end, ctx, out, details["cip_index"], True, depth, op, None)
        elif class_id == CONNECTION_MANAGER:
            if service in (0x54, 0x5B):
                req.connection_routed = self._forward_open(b, data, end, service == 0x5B, details)
            elif service == 0x4E:
                self._forward_close(b, data, end, details)
            if "connection_path" in details:  # the reply is about the same connection
                req.fields = {**req.fields, "connection_path": details["connection_path"]}
            elif service == 0x52:
                req.inner = self._unconnected_send(b, data, end, ctx, out, details["cip_index"], depth, details)
        elif class_id == SYMBOL_CLASS and service in (0x4C, 0x4D, 0x52, 0x53, 0x4E):
            self._tag_request(b, data, end, service, op, details)
        elif service == 0x03 and data + 2 <= end:  # Get_Attribute_List: count, attribute ids
            count = _U16.unpack_from(b, data)[0]
            op.quantity = count
            n = min(count, (end - data - 2) // 2, MAX_LIST)
            req.attributes = list(struct.unpack_from(f"<{n}H", b, data + 2))
            details["attribute_list"] = req.attributes
        return req

    def _msp(self, b: bytes, data: int, end: int, ctx: Context, out: list[Record], index: int, request: bool,
             depth: int, op: Operation, req: _Request | None) -> list[_Request | None] | None:  # fmt: skip
        """Multiple Service Packet: count, offsets (from the count field), embedded services."""
        if data + 2 > end:
            self._bad(op.details, "Multiple Service Packet without a service count")
            return None
        count = _U16.unpack_from(b, data)[0]
        op.quantity = count
        if data + 2 + 2 * count > end:
            self._bad(op.details, f"Multiple Service Packet claims {count} services in {end - data} bytes")
            return None
        offsets = struct.unpack_from(f"<{count}H", b, data + 2)
        children: list[_Request | None] = []
        for i, off in enumerate(offsets):
            s = data + off
            e = data + offsets[i + 1] if i + 1 < count else end
            if off < 2 + 2 * count or s > end or e > end or e < s:
                self._bad(None, f"Multiple Service Packet service {i + 1}: offset {off} outside the message")
                children.append(None)
                continue
            if depth >= MAX_DEPTH:
                children.append(None)
                continue
            if request:
                children.append(self._request(b, s, e, ctx, out, index, i + 1, depth + 1))
            else:
                known = req.children if req is not None and req.children is not None else ()
                child = known[i] if i < len(known) else None
                self._reply(b, s, e, ctx, child, out, index, i + 1, depth + 1)
        return children

    def _unconnected_send(self, b: bytes, data: int, end: int, ctx: Context, out: list[Record], index: int,
                          depth: int, details: dict) -> _Request | None:  # fmt: skip
        """Unconnected Send: priority/tick, timeout ticks, message size, message, pad, route path."""
        if data + 4 > end:
            self._bad(details, "Unconnected Send too short")
            return None
        _tick, _ticks, size = _UCMM.unpack_from(b, data)
        msg = data + 4
        route = msg + size + (size & 1)
        if route + 2 <= end:
            path = parse_path(b, route + 2, min(end, route + 2 + 2 * b[route]))
            if path.route:
                details["route"] = ", ".join(path.route)
        if msg + size > end:
            self._bad(details, "Unconnected Send message longer than the request")
            return None
        if depth >= MAX_DEPTH:
            return None
        saved = ctx.routed
        ctx.routed = saved or "route" in details
        try:
            return self._request(b, msg, msg + size, ctx, out, index, 1, depth + 1)
        finally:
            ctx.routed = saved

    def _forward_open(self, b: bytes, data: int, end: int, large: bool, details: dict) -> bool:
        """Forward Open request fields; True when the connection path routes on to another module."""
        n = _FWD_OPEN.size
        if data + n + (8 if large else 4) + 6 > end:
            self._bad(details, "Forward Open too short")
            return True
        _tick, _ticks, ot_id, to_id, serial, vendor, orig_serial, _mult, ot_rpi = _FWD_OPEN.unpack_from(b, data)
        pos = data + n
        if large:
            ot_params, to_rpi, to_params = struct.unpack_from("<III", b, pos)
            pos += 12
        else:
            ot_params, to_rpi, to_params = struct.unpack_from("<HIH", b, pos)
            pos += 8
        transport, words = b[pos], b[pos + 1]
        details.update({
            "ot_connection_id": _connection_id(ot_id), "to_connection_id": _connection_id(to_id),
            "connection_serial": serial, "originator_vendor_id": vendor, "originator_serial": f"0x{orig_serial:08x}",
            "ot_rpi": ot_rpi, "to_rpi": to_rpi, "ot_net_params": ot_params, "to_net_params": to_params,
            "transport_type_trigger": transport,
        })  # fmt: skip
        path = parse_path(b, pos + 2, min(end, pos + 2 + 2 * words))
        text = path.target()
        if text:
            details["connection_path"] = text  # what the connection reaches (target stays the request path)
        if path.route:
            details["connection_route"] = ", ".join(path.route)
        if path.tag:
            details["connection_symbol"] = path.tag
        return bool(path.route) or not path.complete

    def _forward_close(self, b: bytes, data: int, end: int, details: dict) -> None:
        if data + _FWD_CLOSE.size + 2 > end:
            self._bad(details, "Forward Close too short")
            return
        _tick, _ticks, serial, vendor, orig_serial = _FWD_CLOSE.unpack_from(b, data)
        details.update({"connection_serial": serial, "originator_vendor_id": vendor,
                        "originator_serial": f"0x{orig_serial:08x}"})  # fmt: skip
        pos = data + _FWD_CLOSE.size
        path = parse_path(b, pos + 2, min(end, pos + 2 + 2 * b[pos]))
        text = path.target()
        if text:
            details["connection_path"] = text

    @staticmethod
    def _tag_request(b: bytes, data: int, end: int, service: int, op: Operation, details: dict) -> None:
        """Logix tag services: element count (quantity), data type, fragment offset."""
        if service in (0x4C, 0x52):  # Read Tag (Fragmented): elements [, offset]
            if data + 2 <= end:
                op.quantity = _U16.unpack_from(b, data)[0]
            if service == 0x52 and data + 6 <= end:
                details["offset"] = _U32.unpack_from(b, data + 2)[0]
        elif service in (0x4D, 0x53):  # Write Tag (Fragmented): type [, struct handle], elements [, offset]
            if data + 4 > end:
                return
            dtype = _U16.unpack_from(b, data)[0]
            pos = data + 2
            if dtype == 0x02A0 and pos + 2 <= end:  # structure: followed by the structure handle
                details["structure_handle"] = _U16.unpack_from(b, pos)[0]
                pos += 2
            details["data_type"] = f"0x{dtype:04x}"
            if pos + 2 <= end:
                op.quantity = _U16.unpack_from(b, pos)[0]
            if service == 0x53 and pos + 6 <= end:
                details["offset"] = _U32.unpack_from(b, pos + 2)[0]
        elif data + 2 <= end:  # Read Modify Write Tag: mask size, OR mask, AND mask
            details["mask_size"] = _U16.unpack_from(b, data)[0]

    def _reply(self, b: bytes, start: int, end: int, ctx: Context, req: _Request | None, out: list[Record],
               container: int | None, position: int, depth: int = 0) -> None:  # fmt: skip
        if end - start < 4:
            out.append(Anomaly("cip", "malformed_pdu", f"CIP reply of {end - start} bytes"))
            return
        raw, _reserved, general, words = _RSP.unpack_from(b, start)
        service = raw & 0x7F
        if req is not None and req.service != service:
            if req.inner is not None and req.inner.service == service:
                req = req.inner  # the target's reply to the request an Unconnected Send carried
            else:
                req = None  # not the reply to that request: leave the path empty
        details = self._base_details(ctx, container, position, service == 0x0A)
        class_id = req.class_id if req is not None else None
        if req is None and not ctx.connected and service in (0x4E, 0x52, 0x54, 0x5B) and container is None:
            class_id = CONNECTION_MANAGER  # unpaired unconnected reply: these codes are the Connection Manager's
        name, access = service_info(class_id, service)
        target = None
        if req is not None:
            details.update(req.fields)
            target = req.target
            cname = CLASS_NAMES.get(req.fields.get("class_id"))  # type: ignore[arg-type]
            if cname:
                details["class_name"] = cname
        elif class_id is not None:
            details["class_id"] = class_id
        details["cip_status_code"] = general
        data = start + 4 + 2 * words
        if words:
            n = min(words, (end - start - 4) // 2)
            extra = list(struct.unpack_from(f"<{n}H", b, start + 4))
            if extra:
                details["cip_extended_status_code"] = extra[0]
                text = EXTENDED_STATUS.get(extra[0])
                if text:
                    details["cip_extended_status"] = text
                if len(extra) > 1:
                    details["additional_status"] = extra
        status = general_status(general)
        if ctx.sequence is not None:
            details["cip_sequence_count"] = ctx.sequence
        op = Operation("cip", RESPONSE, service, name, access, status, transaction_id=ctx.sequence, target=target,
                       details=details)  # fmt: skip
        out.append(op)
        if data > end:
            self._bad(details, "additional status longer than the reply")
            return
        if service == 0x0A:
            if general in (0, 0x1E) and depth < MAX_DEPTH:
                self._msp(b, data, end, ctx, out, details["cip_index"], False, depth, op, req)
            return
        if class_id == CONNECTION_MANAGER and service in (0x54, 0x5B, 0x4E):
            self._connection_reply(b, data, end, service, general, details)
            if service != 0x4E and general == 0:
                self._remember_connection(details, req.connection_routed if req is not None else True)
            return
        if req is not None and req.class_id == 0x01 and general == 0 and not (ctx.routed or req.routed):
            self._identity_reply(b, data, end, service, req, out)

    def _connection_reply(self, b: bytes, data: int, end: int, service: int, general: int, details: dict) -> None:
        if service != 0x4E and general == 0:
            if data + _FWD_OPEN_REPLY.size > end:
                self._bad(details, "Forward Open reply too short")
                return
            ot_id, to_id, serial, vendor, orig_serial, ot_api, to_api = _FWD_OPEN_REPLY.unpack_from(b, data)
            details.update({
                "ot_connection_id": _connection_id(ot_id), "to_connection_id": _connection_id(to_id),
                "connection_serial": serial, "originator_vendor_id": vendor,
                "originator_serial": f"0x{orig_serial:08x}", "ot_api": ot_api, "to_api": to_api,
            })  # fmt: skip
            return
        if data + _CONN_TRIPLE.size > end:
            return
        serial, vendor, orig_serial = _CONN_TRIPLE.unpack_from(b, data)
        details.update({"connection_serial": serial, "originator_vendor_id": vendor,
                        "originator_serial": f"0x{orig_serial:08x}"})  # fmt: skip

    def _remember_connection(self, details: dict, routed: bool) -> None:
        """Remember whether a connection reaches past the device (its replies then come from another module)."""
        for key in ("ot_connection_id", "to_connection_id"):
            cid = details.get(key)
            if cid is not None:
                self.routed_connections[cid] = routed
                if len(self.routed_connections) > MAX_PENDING:
                    del self.routed_connections[next(iter(self.routed_connections))]

    @staticmethod
    def _identity_reply(b: bytes, data: int, end: int, service: int, req: _Request, out: list[Record]) -> None:
        """Identity object attributes read directly from the device: an Identity record for the sender."""
        attrs: dict[int, object] = {}
        if service == 0x01:  # Get_Attributes_All: attributes 1-7 in order
            if data + _IDENTITY_ATTRS.size + 1 > end:
                return
            vendor, dtype, product, major, minor, _status, serial = _IDENTITY_ATTRS.unpack_from(b, data)
            pos = data + _IDENTITY_ATTRS.size
            n = b[pos]
            name = b[pos + 1 : pos + 1 + n].decode("latin-1") if pos + 1 + n <= end else None
            attrs = {1: vendor, 2: dtype, 3: product, 4: (major, minor), 6: serial, 7: name}
        elif service == 0x0E and req.fields.get("attribute_id") is not None:
            value = _identity_attribute(b, data, end, req.fields["attribute_id"])  # type: ignore[arg-type]
            if value is not None:
                attrs[req.fields["attribute_id"]] = value[0]  # type: ignore[index]
        elif service == 0x03 and req.attributes and data + 2 <= end:  # count, (id, status, value)...
            pos = data + 2
            for _ in range(min(_U16.unpack_from(b, data)[0], len(req.attributes))):
                if pos + 4 > end:
                    break
                attr, status = struct.unpack_from("<HH", b, pos)
                pos += 4
                if status:
                    break  # no value follows a failed attribute: its size is unknown
                value = _identity_attribute(b, pos, end, attr)
                if value is None:
                    break
                attrs[attr] = value[0]
                pos += value[1]
        if not attrs:
            return
        fields: dict[str, str | int] = {}
        if 1 in attrs:
            fields["vendor_id"] = attrs[1]  # type: ignore[assignment]
            vendor = VENDORS.get(attrs[1])  # type: ignore[arg-type]
            if vendor:
                fields["vendor"] = vendor
        if 2 in attrs:
            fields["device_type"] = DEVICE_TYPES.get(attrs[2], f"0x{attrs[2]:04x}")  # type: ignore[arg-type]
        if 3 in attrs:
            fields["product_code"] = attrs[3]  # type: ignore[assignment]
        if 4 in attrs:
            fields["revision"] = "{}.{}".format(*attrs[4])  # type: ignore[misc]
        if 6 in attrs:
            fields["serial_number"] = f"0x{attrs[6]:08x}"
        if attrs.get(7):
            fields["product_name"] = attrs[7]  # type: ignore[assignment]
        if fields:
            out.append(Identity("cip", fields))


def _identity_attribute(b: bytes, pos: int, end: int, attr: int) -> tuple[object, int] | None:
    """(value, size) of Identity attribute 1-7 at b[pos], or None when unknown or truncated."""
    if attr in (1, 2, 3, 5):
        return (_U16.unpack_from(b, pos)[0], 2) if pos + 2 <= end else None
    if attr == 4:
        return ((b[pos], b[pos + 1]), 2) if pos + 2 <= end else None
    if attr == 6:
        return (_U32.unpack_from(b, pos)[0], 4) if pos + 4 <= end else None
    if attr == 7 and pos < end:
        n = b[pos]
        return (b[pos + 1 : pos + 1 + n].decode("latin-1"), 1 + n) if pos + 1 + n <= end else None
    return None
