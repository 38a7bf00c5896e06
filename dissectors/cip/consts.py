"""CIP tables: services and their access classes, statuses, object classes, vendors and device types.

Names follow Zeek ICSNPP (cisagov/icsnpp-enip scripts/consts.zeek) in upper snake case where ICSNPP has one,
else Wireshark's (packet-cip.c); the service table is keyed by (class, service) for the object-specific range
0x4B-0x63, whose meaning depends on the object class. The lookups over these tables are in names.py.
"""

from __future__ import annotations

import re


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
