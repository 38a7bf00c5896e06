"""S7comm and S7comm-plus over ISO-on-TCP (RFC 1006: TPKT + ISO 8073 COTP class 0), TCP 102.

One dissector per flow frames TPKT, records the COTP connection set-up (CR/CC with
their TSAPs) and tear-down, reassembles COTP DT data units up to the one with the
EOT bit, and dispatches the S7 PDU on its protocol id: 0x32 S7comm, 0x72 S7comm-plus.
A flow that carries S7comm-plus is renamed ``s7comm_plus``.

Names follow Zeek ICSNPP (cisagov/icsnpp-s7comm) where it has them, else Wireshark's
packet-s7comm.c and the s7comm_plus plugin, upper-snake-cased. Codes follow Wireshark.
"""

from __future__ import annotations

import struct
from typing import ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .base import REQUEST, RESPONSE, Anomaly, FramedStream, Identity, Operation, Record, details_json
from .bulk import ROW_FIELDS, BulkRows, PduBatch, gather, headers

# ---------------------------------------------------------------- COTP (ISO 8073)
# TPDU code (high nibble of the type byte) -> (name, direction, access class); ICSNPP cotp.log pdu_name
COTP_TPDUS: dict[int, tuple[str, str, str]] = {
    0x1: ("EXPEDITED_DATA", REQUEST, "other"),
    0x2: ("EXPEDITED_DATA_ACKNOWLEDGEMENT", RESPONSE, "other"),
    0x5: ("REJECT", RESPONSE, "session"),
    0x6: ("DATA_ACKNOWLEDGEMENT", RESPONSE, "session"),
    0x7: ("TPDU_ERROR", RESPONSE, "session"),
    0x8: ("DISCONNECT_REQUEST", REQUEST, "session"),
    0xC: ("DISCONNECT_CONFIRM", RESPONSE, "session"),
    0xD: ("CONNECTION_CONFIRM", RESPONSE, "session"),
    0xE: ("CONNECTION_REQUEST", REQUEST, "session"),
    0xF: ("DATA", REQUEST, "other"),  # DT: carries the S7 PDUs, never an operation of its own
}
_IS_TPDU = np.isin(np.arange(16), list(COTP_TPDUS))  # COTP_TPDUS by code, for pdu_lengths
DT = 0xF
# S7 connection types in the first byte of a 2-byte TSAP (the second is rack * 32 + slot)
TSAP_CONNECTION_TYPES = {1: "PG", 2: "OP", 3: "S7_BASIC"}
# CR / CC parameter 0xC0, TPDU size: code -> bytes (ISO 8073 13.3.4 b: 0x07 128 bytes up to 0x0D 8192)
TPDU_SIZES = {code: 1 << code for code in range(0x07, 0x0E)}

# ---------------------------------------------------------------- S7comm (protocol id 0x32)
# ROSCTR -> (ICSNPP rosctr_name, direction)
ROSCTR: dict[int, tuple[str, str]] = {
    1: ("JOB_REQUEST", REQUEST),
    2: ("ACK", RESPONSE),
    3: ("ACK_DATA", RESPONSE),
    7: ("USER_DATA", REQUEST),  # the direction of userdata comes from its type (request/response/push)
}

# parameter function of Job / Ack_Data -> (name, access class); ICSNPP s7comm_functions, Wireshark param_functionnames
FUNCTIONS: dict[int, tuple[str, str]] = {
    0x00: ("CPU_SERVICES", "other"),
    0x01: ("MODE_TRANSITION", "diagnostic"),  # newer Wireshark only; the PLC announcing its operating mode
    0x04: ("READ_VARIABLE", "read"),
    0x05: ("WRITE_VARIABLE", "write"),
    0x1A: ("REQUEST_DOWNLOAD", "program"),
    0x1B: ("DOWNLOAD_BLOCK", "program"),
    0x1C: ("DOWNLOAD_ENDED", "program"),
    0x1D: ("START_UPLOAD", "program"),
    0x1E: ("UPLOAD", "program"),
    0x1F: ("END_UPLOAD", "program"),
    0x28: ("PLC_CONTROL", "program"),  # PI service: the access class comes from the service name (PI_SERVICES)
    0x29: ("PLC_STOP", "control"),
    0xF0: ("SETUP_COMMUNICATION", "session"),
}
READ_VAR, WRITE_VAR, PI_SERVICE, PLC_STOP = 0x04, 0x05, 0x28, 0x29
# jobs that the PLC sends to the programming device during a download: their Ack_Data comes from the PG
PLC_SENT_JOBS = frozenset((0x1B, 0x1C))

# PI service name (Wireshark pi_service_names, ICSNPP s7comm_plc_control_services) -> access class
PI_SERVICES: dict[str, str] = {
    "_INSE": "program",  # activate (link in) downloaded blocks
    "_INS2": "program",
    "_DELE": "program",  # delete blocks
    "P_PROGRAM": "control",  # PLC start / stop
    "_MODU": "program",  # copy RAM to ROM
    "_GARB": "program",  # compress memory
    "_N_LOGIN_": "session",
    "_N_LOGOUT": "session",
    "_N_NEWPWD": "session",
    "_N_CANCEL": "control",
    "_N_DASAVE": "program",
    "_N_DIGIOF": "control",
    "_N_DIGION": "control",
    "_N_DZERO_": "write",
    "_N_ENDEXT": "control",
    "_N_F_OPER": "program",
    "_N_OST_OF": "control",
    "_N_OST_ON": "control",
    "_N_SCALE_": "write",
    "_N_SETUFR": "write",
    "_N_STRTLK": "control",
    "_N_STRTUL": "control",
    "_N_TMRASS": "write",
    "_N_F_DELE": "program",
    "_N_EXTERN": "control",
    "_N_EXTMOD": "control",
    "_N_F_DELR": "program",
    "_N_F_XFER": "program",
    "_N_LOCKE_": "program",
    "_N_SELECT": "control",
    "_N_SRTEXT": "program",
    "_N_F_CLOS": "program",
    "_N_F_OPEN": "program",
    "_N_F_SEEK": "program",
    "_N_ASUP__": "write",
    "_N_CHEKDM": "diagnostic",
    "_N_CHKDNO": "diagnostic",
    "_N_CONFIG": "program",
    "_N_CRCEDN": "write",
    "_N_DELECE": "write",
    "_N_CREACE": "write",
    "_N_CREATO": "write",
    "_N_DELETO": "write",
    "_N_CRTOCE": "write",
    "_N_DELVAR": "program",
    "_N_F_COPY": "program",
    "_N_F_DMDA": "program",
    "_N_F_PROR": "program",
    "_N_F_PROT": "program",
    "_N_F_RENA": "program",
    "_N_FINDBL": "control",
    "_N_IBN_SS": "write",
    "_N_MMCSEM": "other",
    "_N_NCKMOD": "control",
    "_N_SEL_BL": "control",
    "_N_SETTST": "write",
    "_N_TMAWCO": "write",
    "_N_TMCRTC": "write",
    "_N_TMCRTO": "write",
    "_N_TMFDPL": "read",
    "_N_TMFPBP": "read",
    "_N_TMGETT": "read",
    "_N_TMMVTL": "control",
    "_N_TMPCIT": "write",
    "_N_TMPOSM": "control",
    "_N_TRESMO": "write",
    "_N_TSEARC": "read",
}
# PI services whose parameter block is a list of 8-character block names ("0A00001P")
PI_BLOCK_LIST = frozenset(("_INSE", "_INS2", "_DELE"))

# userdata function group -> (ICSNPP group name, {subfunction: (name, access class)}, access of unknown subfunctions)
# groups and subfunctions: Wireshark packet-s7comm.c (4.0 and newer); names: ICSNPP where it has them
USERDATA_GROUPS: dict[int, tuple[str, dict[int, tuple[str, str]], str]] = {
    0x00: ("MODE_TRANSITION", {}, "diagnostic"),  # the subfunction is the new mode (MODES); PLC indication
    0x01: ("PROGRAMMER_COMMANDS", {
        0x01: ("BLOCK_STATUS", "diagnostic"),
        0x02: ("VARIABLE_STATUS", "read"),
        0x03: ("OUTPUT_ISTACK", "diagnostic"),
        0x04: ("OUTPUT_BSTACK", "diagnostic"),
        0x05: ("OUTPUT_LSTACK", "diagnostic"),
        0x06: ("TIME_MEASUREMENT", "diagnostic"),
        0x07: ("FORCE_SELECTION", "diagnostic"),
        0x08: ("MODIFY_VARIABLE", "write"),
        0x09: ("FORCE", "write"),
        0x0A: ("BREAKPOINT", "control"),
        0x0B: ("EXIT_HOLD", "control"),
        0x0C: ("MEMORY_RESET", "control"),
        0x0D: ("DISABLE_JOB", "diagnostic"),
        0x0E: ("ENABLE_JOB", "diagnostic"),
        0x0F: ("DELETE_JOB", "diagnostic"),
        0x10: ("READ_JOB_LIST", "diagnostic"),
        0x11: ("READ_JOB", "diagnostic"),
        0x12: ("REPLACE_JOB", "diagnostic"),
        0x13: ("BLOCK_STATUS_V2", "diagnostic"),
        0x16: ("FLASH_LED", "diagnostic"),
    }, "diagnostic"),
    0x02: ("CYCLIC_SERVICES", {
        0x01: ("CYCLIC_TRANSFER", "read"),
        0x04: ("UNSUBSCRIBE", "read"),
        0x05: ("CHANGE_DRIVEN_TRANSFER", "read"),
        0x07: ("CHANGE_DRIVEN_TRANSFER_MODIFY", "read"),
        0x08: ("RDREC", "read"),
    }, "read"),
    0x03: ("BLOCK_FUNCTIONS", {
        0x01: ("LIST_BLOCKS", "diagnostic"),
        0x02: ("LIST_BLOCKS_OF_TYPE", "diagnostic"),
        0x03: ("GET_BLOCK_INFO", "diagnostic"),
    }, "diagnostic"),
    0x04: ("CPU_FUNCTIONS", {
        0x01: ("READ_SZL", "diagnostic"),
        0x02: ("MESSAGE_SERVICE", "diagnostic"),
        0x03: ("DIAGNOSTIC_MESSAGE", "diagnostic"),
        0x05: ("ALARM_8_INDICATION", "diagnostic"),
        0x06: ("NOTIFY_INDICATION", "diagnostic"),
        0x07: ("ALARM_8_LOCK", "control"),
        0x08: ("ALARM_8_UNLOCK", "control"),
        0x09: ("SCAN_INDICATION", "diagnostic"),
        0x0B: ("ALARM_ACK", "control"),
        0x0C: ("ALARM_ACK_INDICATION", "diagnostic"),
        0x0D: ("ALARM_LOCK_INDICATION", "diagnostic"),
        0x0E: ("ALARM_UNLOCK_INDICATION", "diagnostic"),
        0x10: ("AR_SEND_INDICATION", "diagnostic"),
        0x11: ("ALARM_SQ_INDICATION", "diagnostic"),
        0x12: ("ALARM_S_INDICATION", "diagnostic"),
        0x13: ("ALARM_QUERY", "diagnostic"),
        0x16: ("NOTIFY_8_INDICATION", "diagnostic"),
    }, "diagnostic"),
    0x05: ("SECURITY", {0x01: ("PLC_PASSWORD", "session")}, "session"),
    0x06: ("PBC_BSEND_BRECV", {}, "write"),  # programmed block communication between PLCs; no subfunction names
    0x07: ("TIME_FUNCTIONS", {
        0x01: ("READ_CLOCK", "diagnostic"),
        0x02: ("SET_CLOCK", "write"),
        0x03: ("READ_CLOCK_FOLLOWING", "diagnostic"),
        0x04: ("SET_CLOCK_2", "write"),
    }, "diagnostic"),
    0x20: ("DR_ROUTING", {  # data record routing to PROFIBUS (field device parameters), newer Wireshark
        0x01: ("DRR_INIT", "write"),
        0x02: ("DRR_FINISH", "write"),
        0x03: ("DRR_DATA", "write"),
    }, "write"),
    0x3F: ("NC_PROGRAMMING", {  # Sinumerik NC file transfer; 4-bit group 15 in Wireshark 4.0
        0x01: ("NC_REQUEST_DOWNLOAD", "program"),
        0x02: ("NC_DOWNLOAD_BLOCK", "program"),
        0x03: ("NC_CONTINUE_DOWNLOAD", "program"),
        0x04: ("NC_DOWNLOAD_ENDED", "program"),
        0x06: ("NC_START_UPLOAD", "program"),
        0x07: ("NC_UPLOAD", "program"),
        0x08: ("NC_CONTINUE_UPLOAD", "program"),
    }, "program"),
}  # fmt: skip
USERDATA_TYPES = {0: "push", 1: "request", 2: "response", 3: "push"}  # top two bits of the type/group byte
MODES = {
    0: "STOP", 1: "WARM_RESTART", 2: "RUN", 3: "HOT_RESTART", 4: "HOLD", 6: "COLD_RESTART", 9: "RUN_R", 11: "LINK_UP",
    12: "UPDATE",
}  # fmt: skip
SZL, READ_SZL = 0x04, 0x01
BLOCK_GROUP, TIME_GROUP = 0x03, 0x07
LAST_DATA_UNIT_NO = 0x01


def userdata_code(group: int, subfunction: int) -> int:
    """function_code of a userdata operation: 0x07GGSS (ROSCTR 7, function group, subfunction)."""
    return 0x070000 | group << 8 | subfunction


# item areas (Wireshark item_areanames_short)
AREAS: dict[int, str] = {
    0x01: "RECORD", 0x03: "SI200", 0x05: "SF200", 0x06: "AI200", 0x07: "AO", 0x80: "P", 0x81: "I", 0x82: "Q",
    0x83: "M", 0x84: "DB", 0x85: "DI", 0x86: "L", 0x87: "V", 0x1C: "C", 0x1D: "T", 0x1E: "C200", 0x1F: "T200",
}  # fmt: skip
AREA_DB, AREA_DI = 0x84, 0x85
COUNTER_TIMER_AREAS = frozenset((0x1C, 0x1D, 0x1E, 0x1F))
BIT_LENGTHS = (3, 4, 5)  # transport sizes of a data item whose length counts bits, not bytes
TRANSPORT_SIZES: dict[int, str] = {
    1: "BIT", 2: "BYTE", 3: "CHAR", 4: "WORD", 5: "INT", 6: "DWORD", 7: "DINT", 8: "REAL", 9: "DATE", 10: "TOD",
    11: "TIME", 12: "S5TIME", 15: "DATE_AND_TIME", 28: "COUNTER", 29: "TIMER", 30: "IEC_TIMER", 31: "IEC_COUNTER",
    32: "HS_COUNTER",
}  # fmt: skip
# size letter of a single element in S7 address notation (DBX, DBB, DBW, DBD)
SIZE_LETTERS = {1: "X", 2: "B", 3: "B", 4: "W", 5: "W", 6: "D", 7: "D", 8: "D", 9: "W", 10: "D", 11: "D", 12: "W"}
SYNTAX_IDS: dict[int, str] = {
    0x10: "S7ANY", 0x11: "PARAMETER_SHORT", 0x12: "PARAMETER_EXTENDED", 0x13: "PBC_R_ID", 0x15: "ALARM_LOCKFREE",
    0x16: "ALARM_IND", 0x19: "ALARM_ACK", 0x1A: "ALARM_QUERYREQ", 0x1C: "NOTIFY_IND", 0x82: "NCK", 0x83: "NCK_M",
    0x84: "NCK_I", 0xA2: "DRIVEESANY", 0xB2: "1200SYM", 0xB0: "DBREAD",
}  # fmt: skip
S7ANY, DBREAD, SYM1200, DRIVEESANY = 0x10, 0xB0, 0xB2, 0xA2
NCK_SYNTAX = frozenset((0x82, 0x83, 0x84))
# return code of a data item (Wireshark s7comm_item_return_valuenames)
RETURN_CODES: dict[int, str] = {
    0x00: "RESERVED", 0x01: "HARDWARE_ERROR", 0x03: "ACCESS_NOT_ALLOWED", 0x05: "INVALID_ADDRESS",
    0x06: "DATA_TYPE_NOT_SUPPORTED", 0x07: "DATA_TYPE_INCONSISTENT", 0x0A: "OBJECT_DOES_NOT_EXIST", 0xFF: "SUCCESS",
}  # fmt: skip
RETURN_SUCCESS = 0xFF
# header error class (ICSNPP s7comm_error_class, Wireshark errcls_names)
ERROR_CLASSES: dict[int, str] = {
    0x00: "No error", 0x81: "Application relationship error", 0x82: "Object definition error",
    0x83: "No resources available error", 0x84: "Error on service processing", 0x85: "Error on supplies",
    0x87: "Access error",
}  # fmt: skip
BLOCK_TYPES: dict[bytes, str] = {
    b"08": "OB", b"09": "CMod", b"0A": "DB", b"0B": "SDB", b"0C": "FC", b"0D": "SFC", b"0E": "FB", b"0F": "SFB",
}  # fmt: skip
# SZL partial list number (low byte of the SZL id) -> ICSNPP s7comm_szl_id name
SZL_NAMES: dict[int, str] = {
    0x00: "List of all the SZL-IDs of a module", 0x11: "Module identification", 0x12: "CPU characteristics",
    0x13: "User memory areas", 0x14: "System areas", 0x15: "Block types", 0x16: "Priority classes",
    0x17: "List of the permitted SDBs with a number < 1000", 0x18: "Maximum S7-300 I/O configuration",
    0x19: "Status of the module LEDs", 0x1C: "Component Identification", 0x21: "Interrupt / error assignment",
    0x22: "Interrupt status", 0x23: "Priority classes", 0x24: "Modes",
    0x25: "Assignment between process image partitions and OBs", 0x31: "Communication capability parameters",
    0x32: "Communication status data", 0x33: "Diagnostics: device logon list", 0x37: "Ethernet - Details of a Module",
    0x71: "H CPU group information", 0x74: "Status of the module LEDs", 0x75: "Switched DP slaves in the H-system",
    0x81: "Start information list", 0x82: "Start event list", 0x91: "Module status information",
    0x92: "Rack / station status information", 0x94: "Rack / station status information",
    0x95: "Extended DP master system information",
    0x96: "Module status information, PROFINET IO and PROFIBUS DP", 0xA0: "Diagnostic buffer of the CPU",
    0xB1: "Module diagnostic information (data record 0)",
    0xB2: "Module diagnostic information (data record 1), geographical address",
    0xB3: "Module diagnostic information (data record 1), logical address", 0xB4: "Diagnostic data of a DP slave",
}  # fmt: skip
SZL_MODULE_ID, SZL_COMPONENT_ID = 0x11, 0x1C
SIEMENS_MANUFACTURER_ID = 0x2A

# error code of the parameter part and of the header (class << 8 | code): Wireshark param_errcode_names
PARAM_ERRORS: dict[int, str] = {
    0x0000: "No error",
    0x0110: "Invalid block number",
    0x0111: "Invalid request length",
    0x0112: "Invalid parameter",
    0x0113: "Invalid block type",
    0x0114: "Block not found",
    0x0115: "Block already exists",
    0x0116: "Block is write-protected",
    0x0117: "The block/operating system update is too large",
    0x0118: "Invalid block number",
    0x0119: "Incorrect password entered",
    0x011A: "PG resource error",
    0x011B: "PLC resource error",
    0x011C: "Protocol error",
    0x011D: "Too many blocks (module-related restriction)",
    0x011E: "There is no longer a connection to the database, or S7DOS handle is invalid",
    0x011F: "Result buffer too small",
    0x0120: "End of block list",
    0x0140: "Insufficient memory available",
    0x0141: "Job cannot be processed because of a lack of resources",
    0x8001: "The requested service cannot be performed while the block is in the current status",
    0x8003: "S7 protocol error: Error occurred while transferring the block",
    0x8100: "Application, general error: Service unknown to remote module",
    0x8104: "This service is not implemented on the module or a frame error was reported",
    0x8204: "The type specification for the object is inconsistent",
    0x8205: "A copied block already exists and is not linked",
    0x8301: "Insufficient memory space or work memory on the module, or specified storage medium not accessible",
    0x8302: "Too few resources available or the processor resources are not available",
    0x8304: "No further parallel upload possible. There is a resource bottleneck",
    0x8305: "Function not available",
    0x8306: "Insufficient work memory (for copying, linking, loading AWP)",
    0x8307: "Not enough retentive work memory (for copying, linking, loading AWP)",
    0x8401: "S7 protocol error: Invalid service sequence (for example, loading or uploading a block)",
    0x8402: "Service cannot execute owing to status of the addressed object",
    0x8404: "S7 protocol: The function cannot be performed",
    0x8405: "Remote block is in DISABLE state (CFB). The function cannot be performed",
    0x8500: "S7 protocol error: Wrong frames",
    0x8503: "Alarm from the module: Service canceled prematurely",
    0x8701: "Error addressing the object on the communications partner (for example, area length error)",
    0x8702: "The requested service is not supported by the module",
    0x8703: "Access to object refused",
    0x8704: "Access error: Object damaged",
    0xD001: "Protocol error: Illegal job number",
    0xD002: "Parameter error: Illegal job variant",
    0xD003: "Parameter error: Debugging function not supported by module",
    0xD004: "Parameter error: Illegal job status",
    0xD005: "Parameter error: Illegal job termination",
    0xD006: "Parameter error: Illegal link disconnection ID",
    0xD007: "Parameter error: Illegal number of buffer elements",
    0xD008: "Parameter error: Illegal scan rate",
    0xD009: "Parameter error: Illegal number of executions",
    0xD00A: "Parameter error: Illegal trigger event",
    0xD00B: "Parameter error: Illegal trigger condition",
    0xD011: "Parameter error in path of the call environment: Block does not exist",
    0xD012: "Parameter error: Wrong address in block",
    0xD014: "Parameter error: Block being deleted/overwritten",
    0xD015: "Parameter error: Illegal tag address",
    0xD016: "Parameter error: Test jobs not possible, because of errors in user program",
    0xD017: "Parameter error: Illegal trigger number",
    0xD025: "Parameter error: Invalid path",
    0xD026: "Parameter error: Illegal access type",
    0xD027: "Parameter error: This number of data blocks is not permitted",
    0xD031: "Internal protocol error",
    0xD032: "Parameter error: Wrong result buffer length",
    0xD033: "Protocol error: Wrong job length",
    0xD03F: "Coding error: Error in parameter section (for example, reserve bytes not equal to 0)",
    0xD041: "Data error: Illegal status list ID",
    0xD042: "Data error: Illegal tag address",
    0xD043: "Data error: Referenced job not found, check job data",
    0xD044: "Data error: Illegal tag value, check job data",
    0xD045: "Data error: Exiting the ODIS control is not allowed in HOLD",
    0xD046: "Data error: Illegal measuring stage during run-time measurement",
    0xD047: "Data error: Illegal hierarchy in 'Read job list'",
    0xD048: "Data error: Illegal deletion ID in 'Delete job'",
    0xD049: "Invalid substitute ID in 'Replace job'",
    0xD04A: "Error executing 'program status'",
    0xD05F: "Coding error: Error in data section (for example, reserve bytes not equal to 0, ...)",
    0xD061: "Resource error: No memory space for job",
    0xD062: "Resource error: Job list full",
    0xD063: "Resource error: Trigger event occupied",
    0xD064: "Resource error: Not enough memory space for one result buffer element",
    0xD065: "Resource error: Not enough memory space for several  result buffer elements",
    0xD066: "Resource error: The timer available for run-time measurement is occupied by another job",
    0xD067: "Resource error: Too many 'modify tag' jobs active (in particular multi-processor operation)",
    0xD081: "Function not permitted in current mode",
    0xD082: "Mode error: Cannot exit HOLD mode",
    0xD0A1: "Function not permitted in current protection level",
    0xD0A2: "Function not possible at present, because a function is running that modifies memory",
    0xD0A3: "Too many 'modify tag' jobs active on the I/O (in particular multi-processor operation)",
    0xD0A4: "'Forcing' has already been established",
    0xD0A5: "Referenced job not found",
    0xD0A6: "Job cannot be disabled/enabled",
    0xD0A7: "Job cannot be deleted, for example because it is currently being read",
    0xD0A8: "Job cannot be replaced, for example because it is currently being read or deleted",
    0xD0A9: "Job cannot be read, for example because it is currently being deleted",
    0xD0AA: "Time limit exceeded in processing operation",
    0xD0AB: "Invalid job parameters in process operation",
    0xD0AC: "Invalid job data in process operation",
    0xD0AD: "Operating mode already set",
    0xD0AE: "The job was set up over a different connection and can only be handled over this connection",
    0xD0C1: "At least one error has been detected while accessing the tag(s)",
    0xD0C2: "Change to STOP/HOLD mode",
    0xD0C3: "At least one error was detected while accessing the tag(s). Mode change to STOP/HOLD",
    0xD0C4: "Timeout during run-time measurement",
    0xD0C5: "Display of block stack inconsistent, because blocks were deleted/reloaded",
    0xD0C6: "Job was automatically deleted as the jobs it referenced have been deleted",
    0xD0C7: "The job was automatically deleted because STOP mode was exited",
    0xD0C8: "'Block status' aborted because of inconsistencies between test job and running program",
    0xD0C9: "Exit the status area by resetting OB90",
    0xD0CA: "Exiting the status range by resetting OB90 and access error reading tags before exiting",
    0xD0CB: "The output disable for the peripheral outputs has been activated again",
    0xD0CC: "The amount of data for the debugging functions is restricted by the time limit",
    0xD201: "Syntax error in block name",
    0xD202: "Syntax error in function parameters",
    0xD205: "Linked block already exists in RAM: Conditional copying is not possible",
    0xD206: "Linked block already exists in EPROM: Conditional copying is not possible",
    0xD208: "Maximum number of copied (not linked) blocks on module exceeded",
    0xD209: "(At least) one of the given blocks not found on the module",
    0xD20A: "The maximum number of blocks that can be linked with one job was exceeded",
    0xD20B: "The maximum number of blocks that can be deleted with one job was exceeded",
    0xD20C: "OB cannot be copied because the associated priority class does not exist",
    0xD20D: "SDB cannot be interpreted (for example, unknown number)",
    0xD20E: "No (further) block available",
    0xD20F: "Module-specific maximum block size exceeded",
    0xD210: "Invalid block number",
    0xD212: "Incorrect header attribute (run-time relevant)",
    0xD213: "Too many SDBs. Note the restrictions on the module being used",
    0xD216: "Invalid user program - reset module",
    0xD217: "Protection level specified in module properties not permitted",
    0xD218: "Incorrect attribute (active/passive)",
    0xD219: "Incorrect block lengths (for example, incorrect length of first section or of the whole block)",
    0xD21A: "Incorrect local data length or write-protection code faulty",
    0xD21B: "Module cannot compress or compression was interrupted early",
    0xD21D: "The volume of dynamic project data transferred is illegal",
    0xD21E: "Unable to assign parameters to a module (such as FM, CP). The system data could not be linked",
    0xD220: "Invalid programming language. Note the restrictions on the module being used",
    0xD221: "The system data for connections or routing are not valid",
    0xD222: "The system data of the global data definition contain invalid parameters",
    0xD223: "Error in instance data block for communication function block or maximum number of instance DBs exceeded",
    0xD224: "The SCAN system data block contains invalid parameters",
    0xD225: "The DP system data block contains invalid parameters",
    0xD226: "A structural error occurred in a block",
    0xD230: "A structural error occurred in a block",
    0xD231: "At least one loaded OB cannot be copied because the associated priority class does not exist",
    0xD232: "At least one block number of a loaded block is illegal",
    0xD234: "Block exists twice in the specified memory medium or in the job",
    0xD235: "The block contains an incorrect checksum",
    0xD236: "The block does not contain a checksum",
    0xD237: "You are about to load the block twice, i.e. a block with the same time stamp already exists on the CPU",
    0xD238: "At least one of the blocks specified is not a DB",
    0xD239: "At least one of the DBs specified is not available as a linked variant in the load memory",
    0xD23A: "At least one of the specified DBs is considerably different from the copied and linked variant",
    0xD240: "Coordination rules violated",
    0xD241: "The function is not permitted in the current protection level",
    0xD242: "Protection violation while processing F blocks",
    0xD250: "Update and module ID or version do not match",
    0xD251: "Incorrect sequence of operating system components",
    0xD252: "Checksum error",
    0xD253: "No executable loader available; update only possible using a memory card",
    0xD254: "Storage error in operating system",
    0xD280: "Error compiling block in S7-300 CPU",
    0xD2A1: "Another block function or a trigger on a block is active",
    0xD2A2: "A trigger is active on a block. Complete the debugging function first",
    0xD2A3: "The block is not active (linked), the block is occupied or the block is currently marked for deletion",
    0xD2A4: "The block is already being processed by another block function",
    0xD2A6: "It is not possible to save and change the user program simultaneously",
    0xD2A7: "The block has the attribute 'unlinked' or is not processed",
    0xD2A8: "An active debugging function is preventing parameters from being assigned to the CPU",
    0xD2A9: "New parameters are being assigned to the CPU",
    0xD2AA: "New parameters are currently being assigned to the modules",
    0xD2AB: "The dynamic configuration limits are currently being changed",
    0xD2AC: "A running active or deactivate assignment (SFC 12) is temporarily preventing R-KiR process",
    0xD2B0: "An error occurred while configuring in RUN (CiR)",
    0xD2C0: "The maximum number of technological objects has been exceeded",
    0xD2C1: "The same technology data block already exists on the module",
    0xD2C2: "Downloading the user program or downloading the hardware configuration is not possible",
    0xD401: "Information function unavailable",
    0xD402: "Information function unavailable",
    0xD403: "Service has already been logged on/off (Diagnostics/PMC)",
    0xD404: "Maximum number of nodes reached. No more logons possible for diagnostics/PMC",
    0xD405: "Service not supported or syntax error in function parameters",
    0xD406: "Required information currently unavailable",
    0xD407: "Diagnostics error occurred",
    0xD408: "Update aborted",
    0xD409: "Error on DP bus",
    0xD601: "Syntax error in function parameter",
    0xD602: "Incorrect password entered",
    0xD603: "The connection has already been legitimized",
    0xD604: "The connection has already been enabled",
    0xD605: "Legitimization not possible because password does not exist",
    0xD801: "At least one tag address is invalid",
    0xD802: "Specified job does not exist",
    0xD803: "Illegal job status",
    0xD804: "Illegal cycle time (illegal time base or multiple)",
    0xD805: "No more cyclic read jobs can be set up",
    0xD806: "The referenced job is in a state in which the requested function cannot be performed",
    0xD807: "Function aborted due to overload, meaning executing the read cycle takes longer than the set scan cycle"
    " time",
    0xDC01: "Date and/or time invalid",
    0xE201: "CPU is already the master",
    0xE202: "Connect and update not possible due to different user program in flash module",
    0xE203: "Connect and update not possible due to different firmware",
    0xE204: "Connect and update not possible due to different memory configuration",
    0xE205: "Connect/update aborted due to synchronization error",
    0xE206: "Connect/update denied due to coordination violation",
    0xEF01: "S7 protocol error: Error at ID2; only 00H permitted in job",
    0xEF02: "S7 protocol error: Error at ID2; set of resources does not exist",
}

# ---------------------------------------------------------------- S7comm-plus (protocol id 0x72)
# protocol version byte (Wireshark s7comm_plus plugin protocolversion_names)
S7P_VERSIONS = {0x01: "V1", 0x02: "V2", 0x03: "V3", 0xFE: "EXTENDED_KEEP_ALIVE", 0xFF: "KEEP_ALIVE"}
S7P_KEEPALIVE, S7P_EXT_KEEPALIVE, S7P_V3 = 0xFF, 0xFE, 0x03
# opcode -> (ICSNPP opcode_name, direction)
S7P_OPCODES: dict[int, tuple[str, str]] = {
    0x31: ("REQUEST", REQUEST),
    0x32: ("RESPONSE", RESPONSE),
    0x33: ("NOTIFICATION", RESPONSE),  # pushed by the PLC: subscribed values, alarms
    0x02: ("RESPONSE2", RESPONSE),
}
S7P_REQUEST, S7P_NOTIFICATION = 0x31, 0x33
# function -> (name, access class): ICSNPP s7comm_plus_functions names, else the Wireshark plugin's.
# The plugin documents what is known of each; the access class is the best known mapping (docs/protocols/s7comm.md),
# refined per PDU for the objects of the session itself and the CPU's operating state (S7comm._s7plus_access).
S7P_FUNCTIONS: dict[int, tuple[str, str]] = {
    0x04B1: ("ERROR", "other"),
    0x04BB: ("EXPLORE", "read"),  # browse the object tree (program structure, tag descriptions)
    0x04CA: ("CREATE_OBJECT", "program"),  # creates objects in the PLC; the session itself when opening (session)
    0x04D4: ("DELETE_OBJECT", "program"),  # deletes objects; the session itself when closing (session)
    0x04F2: ("SET_VARIABLE", "write"),  # on the CPU execution unit: operating state, start/stop (control)
    0x04FC: ("GET_VARIABLE", "read"),
    0x0506: ("ADD_LINK", "other"),
    0x051A: ("REMOVE_LINK", "other"),
    0x0524: ("GET_LINK", "read"),
    0x0542: ("SET_MULTI_VARIABLES", "write"),  # on the session object: session set-up (session)
    0x054C: ("GET_MULTI_VARIABLES", "read"),
    0x0556: ("BEGIN_SEQUENCE", "program"),  # brackets a download / configuration change
    0x0560: ("END_SEQUENCE", "program"),
    0x056B: ("INVOKE", "control"),  # calls a method on a PLC object
    0x057C: ("SET_VARIABLE_SUB_STREAMED", "program"),  # streams blobs (block code) into the PLC
    0x0586: ("GET_VARIABLE_SUB_STREAMED", "read"),  # streams blobs out of the PLC (block upload, identity)
    0x0590: ("GET_VARIABLES_ADDRESS", "read"),
    0x059A: ("ABORT", "session"),
}
S7P_CREATE_OBJECT, S7P_DELETE_OBJECT, S7P_SET_VARIABLE, S7P_SET_MULTI = 0x04CA, 0x04D4, 0x04F2, 0x0542
S7P_GET_MULTI, S7P_ERROR = 0x054C, 0x04B1
S7P_SESSION_CONTAINER = 0x120  # ObjectServerSessionContainer: the session id of the request that opens a session
S7P_CPU_EXEC_UNIT = 52  # NativeObjects.theCPUexecUnit_Rid: holds the CPU operating state (RUN/STOP)
S7P_DIGEST_LEN = 32  # V3 integrity part: digest length byte (32) + SHA-256 digest, before the data part
# a few object ids of the plugin's id_number_names, for readable targets
S7P_OBJECTS: dict[int, str] = {
    1: "NativeObjects.theASRoot_Rid", 3: "NativeObjects.thePLCProgram_Rid", 48: "NativeObjects.theCPU_Rid",
    50: "NativeObjects.theCPUcommon_Rid", 52: "NativeObjects.theCPUexecUnit_Rid", 80: "NativeObjects.theIArea_Rid",
    81: "NativeObjects.theQArea_Rid", 82: "NativeObjects.theMArea_Rid", 83: "NativeObjects.theS7Counters_Rid",
    84: "NativeObjects.theS7Timers_Rid",
}  # fmt: skip
S7P_AREAS = {80: "I", 81: "Q", 82: "M", 83: "C", 84: "T"}

_TPKT = struct.Struct("!BBH")
_S7 = struct.Struct("!BBHHHH")  # protocol id, ROSCTR, redundancy id, PDU reference, parameter length, data length
_S7ANY = struct.Struct("!BHHB")  # transport size, length, DB number, area (the 3-byte address follows)
_H = struct.Struct("!H")
_I = struct.Struct("!I")
_S7P_DATA = struct.Struct("!BHHHH")  # opcode, reserved, function, reserved, sequence number
S7P_FUNCTION_END = 5  # bytes of the data part up to its function
S7P_TRAILER_LEN = 4  # 0x72, version, 2 zero bytes: ends the last fragment of a PDU

MAX_REASSEMBLY = 1 << 16  # bytes of COTP DT / S7 userdata / S7comm-plus fragments held per direction
MAX_PENDING = 512  # unanswered requests remembered per flow to pair responses with them
MAX_ITEMS = 64  # items listed in details; the item count is always given
DT_LEN = 7  # TPKT (4) and COTP DT (3) before the S7 PDU
MAX_BULK_KEY = 256  # bytes of a job or Write Var answer the bulk decoder keys pairs on: bounds the key's width
_BYTES = np.array([(1 << 8 * k) - 1 for k in range(9)], np.uint64)  # the first k bytes of a little-endian word
_NOT_REF = np.uint64(0xFFFF_FF00_00FF_FFFF)  # all but the PDU reference (bytes 11-12) of the word at byte 8
_MIX = np.uint64(0x9E3779B97F4A7C15)  # odd: multiplying by it mixes a key word into the hash of a pair
_ROW_TYPES = {f: pa.int32() for f in ("function_code", "transaction_id", "unit_id", "address", "quantity")}


class Malformed(Exception):
    """A field runs past the end of its PDU."""


def _u8(b: bytes, off: int) -> int:
    if off >= len(b):
        raise Malformed
    return b[off]


def _u16(b: bytes, off: int) -> int:
    if off + 2 > len(b):
        raise Malformed
    return (b[off] << 8) | b[off + 1]


def _text(b: bytes) -> str:
    return b.split(b"\0", 1)[0].decode("latin-1").strip()


def _vlq(b: bytes, off: int, max_octets: int = 5) -> tuple[int, int]:
    """S7comm-plus variable-length integer: 7 bits per octet, high bit = more; the last octet
    of a full-length value carries 8 bits. Returns (value, next offset)."""
    value = 0
    for i in range(max_octets):
        octet = _u8(b, off + i)
        if i == max_octets - 1:
            return (value << 8) | octet, off + i + 1
        value = (value << 7) | (octet & 0x7F)
        if not octet & 0x80:
            return value, off + i + 1
    raise Malformed  # not reached


def _byte(w: np.ndarray, i: int) -> np.ndarray:
    """Byte i of little-endian words."""
    return (w >> np.uint64(8 * i) & 0xFF).astype(np.int64)


def error_text(code: int) -> str:
    """Status text for an S7 error code (header class << 8 | code, or the parameter error code)."""
    text = PARAM_ERRORS.get(code)
    if text is None:
        text = ERROR_CLASSES.get(code >> 8, "Unknown error")
    return f"{text} (0x{code:04x})"


def tsap_text(value: bytes) -> str:
    """TSAP as tshark shows it: the text when it is all printable, else 0x and hex."""
    if len(value) > 2 and all(0x20 <= c < 0x7F for c in value):
        return value.decode("ascii")
    return "0x" + value.hex()


def s7any_address(area: int, db: int, address: int, tsize: int, length: int) -> str:
    """An S7ANY item in S7 notation: DB1.DBW4, M0.0, IB3, C5; a range as an ANY pointer: P#DB1.DBX0.0 BYTE 10."""
    tname = TRANSPORT_SIZES.get(tsize, f"0x{tsize:02x}")
    if area in COUNTER_TIMER_AREAS:
        single = f"{AREAS[area]}{address}"
        return single if length == 1 else f"P#{single} {tname} {length}"
    byte, bit = address >> 3, address & 7
    if area == AREA_DB:
        word, bitword = f"DB{db}.DB", f"DB{db}.DBX"
    elif area == AREA_DI:
        word, bitword = f"DI{db}.DI", f"DI{db}.DIX"
    else:
        word = bitword = AREAS.get(area, f"AREA_0x{area:02x}_")
    letter = SIZE_LETTERS.get(tsize)
    if length == 1 and letter is not None:
        return f"{bitword}{byte}.{bit}" if letter == "X" else f"{word}{letter}{byte}"
    return f"P#{bitword}{byte}.{bit} {tname} {length}"


def block_name(raw: bytes) -> tuple[str | None, int | None]:
    """('DB', 1) from the block type and number of a PLC file name ('0A' '00001')."""
    btype = BLOCK_TYPES.get(raw[:2].upper())
    num = raw[2:7]
    return btype, int(num) if len(num) == 5 and num.isdigit() else None


def bcd(b: int) -> int:
    return (b >> 4) * 10 + (b & 0x0F)


def s7_timestamp(b: bytes, off: int) -> str | None:
    """S7 DATE_AND_TIME (BCD, 8 bytes after a reserved byte and the year's high byte) as ISO 8601."""
    if off + 10 > len(b):
        return None
    year, month, day, hour, minute, sec, ms_hi = (bcd(x) for x in b[off + 2 : off + 9])
    year += 2000 if year < 90 else 1900
    ms = ms_hi * 10 + (b[off + 9] >> 4)
    if not (1 <= month <= 12 and 1 <= day <= 31 and hour < 24 and minute < 60 and sec < 60):
        return None
    return f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{sec:02d}.{ms:03d}"


class S7comm(FramedStream):
    """TPKT/COTP on TCP 102 carrying S7comm (0x32) or S7comm-plus (0x72)."""

    name: ClassVar[str] = "s7comm"  # the instance becomes "s7comm_plus" once it sees S7comm-plus
    app_protocols: ClassVar[tuple[str, ...]] = ("s7comm_plus",)
    ports: ClassVar[frozenset[int]] = frozenset({102})
    header_len: ClassVar[int] = 6  # TPKT (4) + COTP length indicator and TPDU code
    header_magic: ClassVar[tuple[int, bytes]] = (0, b"\x03\x00")  # TPKT version 3, reserved 0

    def __init__(self) -> None:
        super().__init__()
        self.dt: dict[bool, bytearray] = {True: bytearray(), False: bytearray()}  # COTP DT units until EOT
        self.pending: dict[tuple, tuple] = {}  # open requests: S7 (side, PDU ref), S7+ ("+", side, seq)
        self.szl_frags: dict[bool, bytearray | None] = {True: None, False: None}  # SZL answer spanning userdata PDUs
        self.plus_frags: dict[bool, tuple | None] = {True: None, False: None}  # S7comm-plus PDU spanning fragments
        self.plc_sides: set[tuple] = set()  # (protocol, side) already reported as s7_plc
        self.unknown_payload = False
        self.dt_dropping: dict[bool, bool] = {True: False, False: False}  # DT units after an overflow, up to EOT

    # ------------------------------------------------------------ framing
    @classmethod
    def probe(cls, payload: bytes, by_port: bool) -> bool:
        if len(payload) < 6:  # the start of a split TPKT header: judge what is there
            return by_port and payload[:1] == b"\x03" and payload[1:2] in (b"", b"\0")
        version, reserved, length = _TPKT.unpack_from(payload)
        li, code = payload[4], payload[5] >> 4
        # on port 102 a connection TPDU cut short (its length indicator past the TPKT) is still the flow's start
        fits = li < length - 4 or by_port and code != DT
        return version == 3 and reserved == 0 and length >= 7 and li >= 2 and fits and code in COTP_TPDUS

    @staticmethod
    def pdu_lengths(data: np.ndarray, start: np.ndarray, length: np.ndarray) -> np.ndarray:
        """pdu_length (not strict) at many starts at once: -1 where it would be, or
        where fewer than header_len bytes are there."""
        h, whole = headers(data, start, length, 6)
        tpkt = (h[:, 2] << 8) | h[:, 3]
        li, code = h[:, 4], h[:, 5] >> 4
        ok = whole & (h[:, 0] == 3) & (h[:, 1] == 0) & (tpkt >= 7) & (li >= 2) & ((li <= tpkt - 5) | (code != DT))
        ok &= _IS_TPDU[code]
        return np.where(ok, tpkt, -1)

    def pdu_length(self, buf: bytearray, pos: int, from_orig: bool, strict: bool) -> int:
        version, reserved, length = _TPKT.unpack_from(buf, pos)
        if version != 3 or reserved != 0 or length < 7:
            return -1
        li, code = buf[pos + 4], buf[pos + 5] >> 4
        if li < 2 or code not in COTP_TPDUS or li > length - 5 and (strict or code == DT):
            return -1  # a connection TPDU cut short is a PDU (parse keeps what it holds), unless found by scanning
        if strict and code == DT and (li != 2 or buf[pos + 5] != 0xF0):
            return -1  # class 0 DT, the only one ISO-on-TCP uses: a scanned header needs to be exactly that
        return length

    def gap(self, from_orig: bool) -> list[Record]:
        self.dt[from_orig].clear()
        self.dt_dropping[from_orig] = False
        self.szl_frags[from_orig] = None
        self.plus_frags[from_orig] = None
        return super().gap(from_orig)

    def parse(self, pdu: bytes, from_orig: bool) -> list[Record]:
        out: list[Record] = []
        off, end = 4, len(pdu)
        while off < end:  # several TPDUs may be concatenated; a DT is always the last
            li = pdu[off]
            if li < 1 or off + 1 + li > end:
                out.append(
                    Anomaly("cotp", "bad_header", f"COTP length indicator {li} runs past the TPKT ({end} bytes)")
                )
                if li >= 1 and off + 1 < end and pdu[off + 1] >> 4 != DT:  # a cut CR, CC, DR...: what is there
                    out.extend(self._cotp(pdu, off, li, pdu[off + 1] >> 4, from_orig))
                break
            code = pdu[off + 1] >> 4
            if code == DT:
                if li < 2:
                    out.append(Anomaly("cotp", "bad_header", f"COTP DT with length indicator {li}"))
                    break
                out.extend(self._dt(pdu[off + 1 + li :], pdu[off + 2] & 0x80, from_orig))
                break
            out.extend(self._cotp(pdu, off, li, code, from_orig))
            off += 1 + li
        return out

    def _cotp(self, pdu: bytes, off: int, li: int, code: int, from_orig: bool) -> list[Record]:
        """A COTP TPDU other than DT: connection set-up and tear-down, errors. A unit cut short (its length
        indicator runs past the TPKT) keeps the fields it holds."""
        name, direction, access = COTP_TPDUS.get(code, (f"UNKNOWN_0x{code:x}", REQUEST, "other"))
        op = Operation("cotp", direction, code, name, access)
        details: dict = {"pdu_code": f"0x{code:02x}"}
        out: list[Record] = []
        end = min(off + 1 + li, len(pdu))
        held = end - off - 1  # bytes of the unit there are, from its TPDU code on
        if held >= 3:
            details["dst_ref"] = _H.unpack_from(pdu, off + 2)[0]
        if held >= 5 and code in (0xE, 0xD, 0x8, 0xC):  # the TPDUs that carry a source reference
            details["src_ref"] = _H.unpack_from(pdu, off + 4)[0]
        if code in (0xE, 0xD) and held >= 6:  # CR, CC: class and options, then parameters
            details["class"] = pdu[off + 6] >> 4
            out.extend(self._cotp_parameters(pdu, off + 7, end, details))
            if "dst_tsap" in details:
                op.target = details["dst_tsap"]
        elif code == 0x8 and held >= 6:  # DR: reason
            details["reason"] = pdu[off + 6]
        elif code == 0x7 and held >= 4:  # ER: reject cause after the destination reference
            details["reject_cause"] = pdu[off + 4]
            op.status = f"TPDU error, cause {pdu[off + 4]}"
        op.details = details
        out.append(op)
        return out

    @staticmethod
    def _cotp_parameters(pdu: bytes, p: int, end: int, details: dict) -> list[Record]:
        """The parameters of a CR or CC (TSAPs, TPDU size) into details; one that runs past the unit is an anomaly."""
        while p + 2 <= end:
            pcode, plen = pdu[p], pdu[p + 1]
            if p + 2 + plen > end:
                problem = f"COTP parameter 0x{pcode:02x} of {plen} bytes runs past the unit"
                return [Anomaly("cotp", "bad_header", problem)]
            value = pdu[p + 2 : p + 2 + plen]
            if pcode == 0xC1:
                details["src_tsap"] = tsap_text(value)
            elif pcode == 0xC2:
                details["dst_tsap"] = tsap_text(value)
                if len(value) == 2 and value[0] in TSAP_CONNECTION_TYPES:
                    details["connection_type"] = TSAP_CONNECTION_TYPES[value[0]]
                    details["rack"], details["slot"] = value[1] >> 5, value[1] & 0x1F
            elif pcode == 0xC0 and plen == 1:
                if value[0] in TPDU_SIZES:
                    details["tpdu_size"] = TPDU_SIZES[value[0]]
                else:
                    details["tpdu_size_code"] = value[0]
            p += 2 + plen
        return []

    def _dt(self, seg: bytes, eot: int, from_orig: bool) -> list[Record]:
        """A COTP data unit: the S7 PDU is complete at the unit with the EOT bit."""
        buf = self.dt[from_orig]
        if self.dt_dropping[from_orig]:  # the rest of a data unit too long to reassemble
            self.dt_dropping[from_orig] = not eot
            return []
        if not eot:
            if len(buf) + len(seg) > MAX_REASSEMBLY:
                head = bytes(buf + seg)
                buf.clear()
                self.dt_dropping[from_orig] = True
                out: list[Record] = [
                    Anomaly("cotp", "buffer_overflow",
                            f"over {MAX_REASSEMBLY} bytes of COTP DT without EOT; the rest up to EOT dropped")
                ]  # fmt: skip
                # the S7 header and function were in the first units: the operation is recorded from them
                # (its lengths run past what is kept: a bad_header anomaly), so size cannot hide it
                if head[:1] == b"\x32":
                    out.extend(self._s7(head, from_orig))
                elif head[:1] == b"\x72" and len(head) > 4 and head[1] not in (S7P_KEEPALIVE, S7P_EXT_KEEPALIVE):
                    version, off = head[1], 4
                    if version == S7P_V3 and head[off] == S7P_DIGEST_LEN:
                        off += 1 + S7P_DIGEST_LEN
                    details = {"version": version, "version_name": S7P_VERSIONS.get(version, f"0x{version:02x}")}
                    out.extend(self._s7plus_op(head[off:], details, from_orig))
                return out
            buf += seg
            return []
        if buf:
            buf += seg
            seg = bytes(buf)
            buf.clear()
        if not seg:
            return []
        first = seg[0]
        if first == 0x32:
            return self._s7(seg, from_orig)
        if first == 0x72:
            return self._s7plus(seg, from_orig)
        if self.unknown_payload:
            return []
        self.unknown_payload = True  # once per flow: another ISO-on-TCP protocol (MMS, ...) is not an S7 error
        return [
            Anomaly(
                "cotp", "bad_header", f"COTP payload is neither S7comm (0x32) nor S7comm-plus (0x72): 0x{first:02x}"
            )
        ]

    def _plc(self, protocol: str, from_orig: bool, out: list[Record]) -> None:
        """The side that answers S7 jobs is the PLC: say so once per flow and side."""
        if (protocol, from_orig) not in self.plc_sides:
            self.plc_sides.add((protocol, from_orig))
            out.append(Identity(protocol, {}, role="s7_plc"))

    def _remember(self, key: tuple, value: tuple) -> None:
        pending = self.pending
        if len(pending) >= MAX_PENDING:
            del pending[next(iter(pending))]
        pending[key] = value

    # ------------------------------------------------------------ bulk (dissectors/bulk.py)
    def idle(self, from_orig: bool) -> bool:
        """No open job, no COTP DT unit held, and the answering side already reported as the PLC: a unit of
        ``bulk`` then parses as on a fresh flow, less the PLC role, and leaves the state as it found it."""
        held = self.dt[True] or self.dt[False] or self.dt_dropping[True] or self.dt_dropping[False]
        return not self.pending and not held and ("s7comm", not from_orig) in self.plc_sides

    @staticmethod
    def bulk(batch: PduBatch) -> BulkRows:
        """Read / Write Var jobs answered by their Ack_Data, each in one COTP DT unit: the steady state of polling.

        A unit is a run of jobs from one side followed by their answers in the same order (more than one when
        pipelined), with distinct PDU references. A job's rows and its answer's depend on the PDU reference only
        through transaction_id and details["pdu_reference"], and on the values of a Read Var answer not at all.
        So the pairs are keyed by every other byte parse reads, one pair per distinct key is parsed on a scratch
        dissector, and its rows are repeated with each pair's reference spliced in."""
        n = len(batch.start)
        start, length, flow, side = batch.start, batch.length, batch.flow, batch.from_orig

        def words(pos: np.ndarray) -> np.ndarray:
            """The 8 bytes at each pos, the first lowest (zeros past the data: a short PDU's header words)."""
            return gather(batch.data, pos, 8).view("<u8")

        def word(pos: np.ndarray, size: np.ndarray) -> np.ndarray:
            """The first ``size`` bytes (0-8) at pos, the others zeroed."""
            return words(pos) & _BYTES[np.clip(size, 0, 8)]

        # one COTP DT with EOT holding an S7 PDU whose header lengths add up to the TPKT
        w0, w8, w16 = words(start), words(start + 8), words(start + 16)
        whole = (w0 >> 32 & 0xFF80FFFF) == 0x3280F002  # bytes 4-7: length indicator 2, DT, EOT (any TPDU nr), 0x32
        rosctr, ref = _byte(w8, 0), _byte(w8, 3) << 8 | _byte(w8, 4)
        parlg, datlg = _byte(w8, 5) << 8 | _byte(w8, 6), _byte(w8, 7) << 8 | _byte(w16, 0)
        whole &= parlg >= 2  # the function and the item count
        func = _byte(w16, 1)
        job = whole & (rosctr == 1) & (length == DT_LEN + 10 + parlg + datlg) & (length <= MAX_BULK_KEY)
        job &= (func == READ_VAR) | (func == WRITE_VAR)
        func, count = _byte(w16, 3), _byte(w16, 4)
        ack = whole & (rosctr == 3) & (length == DT_LEN + 12 + parlg + datlg)
        read_ack = ack & (func == READ_VAR) & (parlg == 2) & (count <= MAX_ITEMS)  # MAX_ITEMS bounds the item walk
        ack &= read_ack | (func == WRITE_VAR) & (length <= MAX_BULK_KEY)

        # runs of jobs from one side followed by as many answers from the other
        kind = job + 2 * ack
        new = np.ones(n, bool)
        new[1:] = (flow[1:] != flow[:-1]) | (kind[1:] != kind[:-1]) | (side[1:] != side[:-1])
        rs = np.flatnonzero(new)
        rl = np.diff(np.append(rs, n))
        rk = kind[rs]
        cand = np.flatnonzero((rk[:-1] == 1) & (rk[1:] == 2) & (rl[:-1] == rl[1:]) & (rl[:-1] <= MAX_PENDING)
                              & (flow[rs[:-1]] == flow[rs[1:]]) & (side[rs[:-1]] != side[rs[1:]]))  # fmt: skip
        if not len(cand):
            return BulkRows.none(n)
        first, k = rs[cand], rl[cand]
        run = np.repeat(np.arange(len(cand)), k)
        q = first[run] + np.arange(len(run)) - np.repeat(np.cumsum(k) - k, k)  # the jobs
        a = q + k[run]  # their answers
        ok = ref[q] == ref[a]
        multi = np.flatnonzero(k[run] > 1)
        if len(multi):  # a reference used twice in a run: the second job would take the first one's place
            o = multi[np.lexsort((ref[q[multi]], run[multi]))]
            ok[o[1:][(run[o[1:]] == run[o[:-1]]) & (ref[q[o[1:]]] == ref[q[o[:-1]]])]] = False

        # the items of a Read Var answer: their headers are keyed, their values skipped; they tile the data part
        items = np.where(read_ack[a], count[a], 0)
        heads = np.zeros((len(q), int(items.max())), np.uint64)
        pos, data, size = np.zeros(len(q), np.int64), start[a] + DT_LEN + 14, datlg[a]
        for i in range(heads.shape[1]):
            live = i < items
            ok &= ~live | (pos + 4 <= size)
            head = heads[:, i] = word(data + pos, np.where(live, 4, 0))  # return code, transport size, length
            vlen = _byte(head, 2) << 8 | _byte(head, 3)
            vlen = np.where(np.isin(_byte(head, 1), BIT_LENGTHS), (vlen + 7) >> 3, vlen)
            pos = np.where(live, pos + 4 + vlen + (vlen & 1) * (i < items - 1), pos)
        ok &= ~read_ack[a] | (pos == size)

        def keep_runs(ok: np.ndarray) -> np.ndarray:
            bad = np.zeros(len(cand), bool)
            bad[run[~ok]] = True
            return ~bad[run]

        keep = keep_runs(ok)
        q, a, run, heads = q[keep], a[keep], run[keep], heads[keep]
        if not len(q):
            return BulkRows.none(n)

        # the key: the lengths, the job less its reference, the answer's header and parameter (all of a Write
        # Var answer) less its reference, the item headers. Pairs are grouped by a hash of it, then each pair's
        # key is compared with its group's first: a pair whose key differs (a collision) is left to parse.
        lq, la = length[q], length[a]
        lh = np.where(read_ack[a], DT_LEN + 14, la)
        nq, nh = -(-int(lq.max()) // 8), -(-int(lh.max()) // 8)
        key = [lq.astype(np.uint64), la.astype(np.uint64)]
        key += [word(start[q] + 8 * m, lq - 8 * m) for m in range(nq)]
        key += [word(start[a] + 8 * m, lh - 8 * m) for m in range(nh)]
        key[3] &= _NOT_REF
        key[3 + nq] &= _NOT_REF
        key += list(heads.T)
        h = np.zeros(len(q), np.uint64)
        for col in key:
            h = (h ^ col) * _MIX
            h ^= h >> 29
        _, rep, tmpl = np.unique(h, return_index=True, return_inverse=True)
        same = np.ones(len(q), bool)
        for col in key:
            same &= col == col[rep][tmpl]
        rows = [S7comm._pair_rows(batch.pdu(q[r]), batch.pdu(a[r]), bool(side[q[r]])) for r in rep]
        same &= np.array([r is not None for r in rows])[tmpl]
        if not same.all():
            keep = keep_runs(same)
            q, a, run, tmpl = q[keep], a[keep], run[keep], tmpl[keep]

        unit = np.full(n, -1, np.int64)
        unit[q] = unit[a] = first[run]
        pdu = np.flatnonzero(unit >= 0)
        which = np.zeros(n, np.int64)
        which[q], which[a] = 2 * tmpl, 2 * tmpl + 1
        take = pa.array(which[pdu])
        blank = (None,) * (len(ROW_FIELDS) + 1)
        flat = [row for pair in rows for row in (pair or (blank, blank))]
        columns = {}
        for i, name in enumerate(ROW_FIELDS):
            if name == "transaction_id":
                columns[name] = tid = pa.array(ref[pdu], pa.int32())
            elif name == "details":
                text = [pa.array([r[i + j] for r in flat], pa.string()).take(take) for j in (0, 1)]
                columns[name] = pc.binary_join_element_wise(text[0], pc.cast(tid, pa.string()), text[1], "")
            else:
                columns[name] = pa.array([r[i] for r in flat], _ROW_TYPES.get(name, pa.string())).take(take)
        return BulkRows(unit, pdu, columns)

    @staticmethod
    def _pair_rows(job: bytes, ack: bytes, from_orig: bool) -> tuple[tuple, tuple] | None:
        """The rows of a job and its answer, parsed on a scratch dissector, with details as the JSON text before
        and after the PDU reference; None unless parse gives exactly their two operations (and the PLC role, which
        an idle flow has reported already) and pairs them."""
        d = S7comm()
        records = d.parse(job, from_orig), d.parse(ack, not from_orig)
        if [len(r) for r in records] != [1, 2] or records[1][0] != Identity("s7comm", {}, role="s7_plc") or d.pending:
            return None
        rows = []
        mark = '"pdu_reference":'
        for op in (records[0][0], records[1][1]):
            if not isinstance(op, Operation) or not op.details or op.details.get("pdu_reference") != op.transaction_id:
                return None
            head, found, tail = details_json(op.details).partition(f"{mark}{op.transaction_id}")
            if not found:
                return None
            rows.append(tuple(getattr(op, f) for f in ROW_FIELDS[:-1]) + (head + mark, tail))
        return rows[0], rows[1]

    # ------------------------------------------------------------ S7comm
    def _s7(self, pdu: bytes, from_orig: bool) -> list[Record]:
        n = len(pdu)
        if n < 10:
            return [Anomaly("s7comm", "bad_header", f"S7comm header truncated: {n} bytes")]
        _pid, rosctr, _redid, pduref, parlg, datlg = _S7.unpack_from(pdu)
        if rosctr not in ROSCTR:
            return [Anomaly("s7comm", "bad_header", f"unknown S7comm ROSCTR 0x{rosctr:02x}")]
        hlen = 12 if rosctr in (2, 3) else 10
        out: list[Record] = []
        if hlen + parlg + datlg != n:
            out.append(
                Anomaly(
                    "s7comm",
                    "bad_header",
                    f"S7comm lengths (header {hlen} + parameter {parlg} + data {datlg}) != PDU {n} bytes",
                )
            )
            if n < hlen:
                return out
        param = pdu[hlen : hlen + parlg]
        data = pdu[hlen + parlg : hlen + parlg + datlg]
        rosctr_name, direction = ROSCTR[rosctr]
        details: dict = {"rosctr": rosctr, "rosctr_name": rosctr_name, "pdu_reference": pduref}
        if rosctr == 7:
            op = self._userdata(param, data, details, from_orig, out)
        else:
            op = self._job(rosctr, direction, param, data, details, from_orig, out)
            if hlen == 12:
                errcls, errcod = pdu[10], pdu[11]
                details["error_class"], details["error_code"] = errcls, errcod
                if errcls or errcod:
                    op.status = error_text(errcls << 8 | errcod)
        out.append(op)
        return out

    def _job(self, rosctr: int, direction: str, param: bytes, data: bytes, details: dict, from_orig: bool,
             out: list[Record]) -> Operation:  # fmt: skip
        """Job, Ack and Ack_Data: one operation per PDU, paired by PDU reference."""
        func = param[0] if param else None
        request = rosctr == 1
        key = (from_orig if request else not from_orig, details["pdu_reference"])
        paired = None if request else self.pending.pop(key, None)
        if func is None and paired is not None:  # a bare Ack answers the job it acknowledges
            func = paired[0]
        if func is None:
            return Operation("s7comm", direction, None, details["rosctr_name"], "other", transaction_id=details[
                "pdu_reference"], details=details)  # fmt: skip
        name, access = FUNCTIONS.get(func, (f"UNKNOWN_0x{func:02x}", "other"))
        op = Operation(
            "s7comm", direction, func, name, access, transaction_id=details["pdu_reference"], details=details
        )
        try:
            if request:
                self._job_request(func, param, data, op, details)
            else:
                self._job_response(func, param, data, op, details)
        except (Malformed, IndexError, struct.error, ValueError):
            out.append(Anomaly("s7comm", "bad_header", f"{name} parameters truncated or malformed"))
        if request:
            self._remember(key, (func, op.target, op.access_class, details.get("pi_service"), op.address, op.quantity))
        else:
            if paired is not None and paired[0] == func:  # the answer acts on what its job asked for
                op.target = op.target or paired[1]
                op.access_class = paired[2]
                if paired[3] is not None:
                    details["pi_service"] = paired[3]
                op.address, op.quantity = paired[4], paired[5]
            if func not in PLC_SENT_JOBS:
                self._plc("s7comm", from_orig, out)
        return op

    def _job_request(self, func: int, param: bytes, data: bytes, op: Operation, details: dict) -> None:
        if func in (READ_VAR, WRITE_VAR):
            count = details["item_count"] = _u8(param, 1)
            items, pos = [], 2
            for i in range(count):
                item, size = self._item(param, pos)
                pos += size + (1 if size % 2 and i < count - 1 else 0)
                if i < MAX_ITEMS:
                    items.append(item)
                if i == 0:
                    op.target = item.get("address")
                    op.address, op.quantity = item.get("byte", item.get("number")), item.get("length")
            details["items"] = items
            if count > 1 and op.target:
                op.target += f" (+{count - 1} items)"
            if func == WRITE_VAR and data:
                self._write_values(data, count, items)
        elif func == 0xF0:
            details["max_amq_calling"], details["max_amq_called"] = _u16(param, 2), _u16(param, 4)
            details["pdu_length"] = _u16(param, 6)
        elif func in (0x1A, 0x1B, 0x1C, 0x1D):  # function status, 2 unknown, 4 (upload id / unknown), file name
            if func == 0x1C:
                details["error_code"] = _u16(param, 2)
            if func == 0x1D:
                details["session_id"] = struct.unpack_from("!I", param, 4)[0]
            self._filename(param, 8, op, details)
            if func == 0x1A and len(param) > 18:  # length part 2: '1', load memory length (6), MC7 length (6)
                p = 9 + param[8]
                details["load_memory_length"] = _text(param[p + 2 : p + 8])
                details["mc7_code_length"] = _text(param[p + 8 : p + 14])
        elif func == 0x1E:  # upload: function status, 2 unknown, upload id
            details["session_id"] = struct.unpack_from("!I", param, 4)[0]
        elif func == 0x1F:  # end upload: function status, error code, upload id
            details["error_code"] = _u16(param, 2)
            details["session_id"] = struct.unpack_from("!I", param, 4)[0]
        elif func == PI_SERVICE:
            self._pi_service(param, op, details)
        elif func == PLC_STOP:  # 5 unknown bytes, then the service name
            length = _u8(param, 6)
            service = _text(param[7 : 7 + length])
            details["pi_service"] = service
            op.target = service or None

    def _job_response(self, func: int, param: bytes, data: bytes, op: Operation, details: dict) -> None:
        if func == READ_VAR and len(param) >= 2:  # read var: per item return code, transport size, length, data
            count = details["item_count"] = param[1]
            errors, pos = [], 0
            for i in range(count):
                if pos + 4 > len(data):
                    break
                rc, tsize, length = data[pos], data[pos + 1], _u16(data, pos + 2)
                if tsize in BIT_LENGTHS:
                    length = (length + 7) >> 3
                if rc != RETURN_SUCCESS:
                    errors.append({"item": i + 1, "return_code": RETURN_CODES.get(rc, f"0x{rc:02x}")})
                pos += 4 + length + (1 if length % 2 and i < count - 1 else 0)
            self._item_errors(errors, op, details)
        elif func == WRITE_VAR and len(param) >= 2:  # write var: one return code per item
            count = details["item_count"] = param[1]
            errors = [{"item": i + 1, "return_code": RETURN_CODES.get(rc, f"0x{rc:02x}")}
                      for i, rc in enumerate(data[:count]) if rc != RETURN_SUCCESS]  # fmt: skip
            self._item_errors(errors, op, details)
        elif func == 0xF0 and len(param) >= 8:
            details["max_amq_calling"], details["max_amq_called"] = _u16(param, 2), _u16(param, 4)
            details["pdu_length"] = _u16(param, 6)
        elif func in (0x1A, 0x1B, 0x1C, 0x1D, 0x1E, 0x1F) and len(param) >= 2:
            details["function_status"] = param[1]  # bit 0: more data follows
            if func == 0x1D and len(param) > 8:  # start upload: upload id, then the block length as text
                details["session_id"] = struct.unpack_from("!I", param, 4)[0]
                length = param[8]
                text = _text(param[9 : 9 + length])
                details["blocklength"] = int(text) if text.isdigit() else text
            elif func in (0x1B, 0x1E) and len(data) >= 4:
                details["data_length"] = _u16(data, 0)

    @staticmethod
    def _item_errors(errors: list, op: Operation, details: dict) -> None:
        if errors:
            details["item_errors"] = errors[:MAX_ITEMS]
            if op.status is None:
                op.status = f"item {errors[0]['item']}: {errors[0]['return_code']}"

    @staticmethod
    def _item(param: bytes, pos: int) -> tuple[dict, int]:
        """One variable specification of a read/write var request; returns (item, its size)."""
        spec, vlen, syntax = _u8(param, pos), _u8(param, pos + 1), _u8(param, pos + 2)
        if pos + 2 + vlen > len(param):
            raise Malformed
        item: dict = {"syntax_id": SYNTAX_IDS.get(syntax, f"0x{syntax:02x}")}
        if spec == 0x12 and syntax == S7ANY and vlen == 10:
            tsize, length, db, area = _S7ANY.unpack_from(param, pos + 3)
            addr = param[pos + 9] << 16 | param[pos + 10] << 8 | param[pos + 11]
            item["area"] = AREAS.get(area, f"0x{area:02x}")
            if area in (AREA_DB, AREA_DI):
                item["db"] = db
            if area in COUNTER_TIMER_AREAS:
                item["number"] = addr
            else:
                item["byte"], item["bit"] = addr >> 3, addr & 7
            item["transport_size"] = TRANSPORT_SIZES.get(tsize, f"0x{tsize:02x}")
            item["length"] = length
            item["address"] = s7any_address(area, db, addr, tsize, length)
        elif spec == 0x12 and syntax == DBREAD and vlen >= 7:
            count = param[pos + 3]
            areas, p = [], pos + 4
            for _ in range(count):
                length, db, start = param[p], _u16(param, p + 1), _u16(param, p + 3)
                areas.append(f"P#DB{db}.DBX{start}.0 BYTE {length}")
                p += 5
            item["areas"] = areas
            item["address"] = areas[0] if areas else None
        elif spec == 0x12 and syntax in NCK_SYNTAX and vlen == 8:
            au, column, line, module, lines = param[pos + 3], _u16(param, pos + 4), _u16(param, pos + 6), \
                param[pos + 8], param[pos + 9]  # fmt: skip
            item.update(nck_area=au >> 5, nck_unit=au & 0x1F, nck_column=column, nck_line=line, nck_module=module,
                        nck_linecount=lines)  # fmt: skip
            item["address"] = f"NCK area {au >> 5} unit {au & 0x1F} module 0x{module:02x} column {column} line {line}"
        elif spec == 0x12 and syntax == DRIVEESANY and vlen == 10:
            nr, idx = _u16(param, pos + 8), _u16(param, pos + 10)
            item["parameter_number"], item["parameter_index"] = nr, idx
            item["address"] = f"DriveES parameter {nr}[{idx}]"
        elif spec == 0x12 and syntax == SYM1200:
            item["address"] = "S7-1200 symbolic"
        return item, 2 + vlen

    @staticmethod
    def _write_values(data: bytes, count: int, items: list) -> None:
        """The values of a write var request, as hex (the first 32 bytes of each)."""
        pos = 0
        for i in range(min(count, len(items))):
            if pos + 4 > len(data):
                break
            tsize, length = data[pos + 1], _u16(data, pos + 2)
            if tsize in BIT_LENGTHS:
                length = (length + 7) >> 3
            items[i]["value"] = data[pos + 4 : pos + 4 + min(length, 32)].hex()
            pos += 4 + length + (1 if length % 2 and i < count - 1 else 0)

    @staticmethod
    def _filename(param: bytes, off: int, op: Operation, details: dict) -> None:
        """The file name of an upload/download job: _0A00001P is block DB1 in the passive file system."""
        length = _u8(param, off)
        raw = param[off + 1 : off + 1 + length]
        if len(raw) < length:
            raise Malformed
        details["filename"] = raw.decode("latin-1")
        if length == 9 and raw[:1] in (b"_", b"$"):
            btype, num = block_name(raw[1:8])
            if btype is not None:
                details["block_type"] = btype
                details["block_number"] = num
                details["destination_filesystem"] = chr(raw[8])
                op.target = f"{btype}{num}" if num is not None else btype

    def _pi_service(self, param: bytes, op: Operation, details: dict) -> None:
        """PI service: 7 unknown bytes, parameter block (length-prefixed), service name (length-prefixed)."""
        plen = _u16(param, 8)
        block = param[10 : 10 + plen]
        nlen = _u8(param, 10 + plen)
        service = _text(param[11 + plen : 11 + plen + nlen])
        details["pi_service"] = service
        op.access_class = PI_SERVICES.get(service, "program")
        if service in PI_BLOCK_LIST and len(block) >= 2:
            blocks = []
            for i in range(min(block[0], (len(block) - 2) // 8)):
                raw = block[2 + 8 * i : 10 + 8 * i]
                btype, num = block_name(raw)
                blocks.append(f"{btype}{num}" if btype and num is not None else raw.decode("latin-1"))
            details["blocks"] = blocks
            if blocks:
                op.target = blocks[0] if len(blocks) == 1 else f"{blocks[0]} (+{len(blocks) - 1} blocks)"
        elif service.startswith("_N_"):
            args, p = [], 0
            while p < len(block):  # length-prefixed strings, each padded to an even length
                length = block[p]
                args.append(block[p + 1 : p + 1 + length].decode("latin-1"))
                p += 1 + length + (length % 2 == 0)
            details["arguments"] = args
            op.target = service
        else:
            if block:
                details["argument"] = block.decode("latin-1")
            op.target = service or None

    # ------------------------------------------------------------ S7comm userdata
    def _userdata(self, param: bytes, data: bytes, details: dict, from_orig: bool, out: list[Record]) -> Operation:
        """Userdata: function group and subfunction, SZL reads, clock, block functions."""
        if len(param) < 8:
            out.append(Anomaly("s7comm", "bad_header", f"userdata parameter of {len(param)} bytes"))
            if len(param) < 7 or param[0] == 0x01 or param[4] == 0x13:
                direction = REQUEST if from_orig == self.client_is_orig else RESPONSE
                return Operation("s7comm", direction, None, "USER_DATA", "other", details=details)
            # cut in the sequence number: type, group and subfunction are there, so is the operation
        last_unit = 0
        if param[0] == 0x01:  # mode transition indication (newer Wireshark): 4 unknown bytes, then the mode
            kind, group, sub, seq = 0, 0, param[6], None
        elif param[4] == 0x13:  # PBC USEND indication: no type/group byte
            kind, group, sub, seq = 0, 0x06, 0, None
        else:
            kind, group, sub = param[5] >> 6, param[5] & 0x3F, param[6]
            seq = param[7] if len(param) > 7 else None
            if param[4] == 0x12 and len(param) >= 12:
                details["data_unit_reference"], last_unit = param[8], param[9]
                details["last_data_unit"] = last_unit == 0
                err = _u16(param, 10)
                if err:
                    details["error_code"] = err
        group_name, subs, default = USERDATA_GROUPS.get(group, (f"UNKNOWN_GROUP_0x{group:02x}", {}, "other"))
        if group == 0:
            name, access = "MODE_TRANSITION", default
            details["mode"] = MODES.get(sub, f"0x{sub:02x}")
        else:
            name, access = subs.get(sub) or (f"{group_name}_0x{sub:02x}", default)
        type_name = USERDATA_TYPES[kind]
        direction = REQUEST if type_name == "request" else RESPONSE
        details.update(type=type_name, function_group=group, function_group_name=group_name, subfunction=sub,
                       subfunction_name=name)  # fmt: skip
        if seq is not None:
            details["sequence_number"] = seq
        op = Operation("s7comm", direction, userdata_code(group, sub), name, access, transaction_id=details[
            "pdu_reference"], details=details)  # fmt: skip
        if "error_code" in details:
            op.status = error_text(details["error_code"])
        if direction == RESPONSE:
            self._plc("s7comm", from_orig, out)
        if data and data[0] != RETURN_SUCCESS:  # 0x0a with no data is how many answers say "nothing to return"
            details["return_code"] = RETURN_CODES.get(data[0], f"0x{data[0]:02x}")
        try:
            if group == SZL and sub == READ_SZL:
                self._szl(data, kind, last_unit, op, details, from_orig, out)
            elif group == BLOCK_GROUP and kind == 1 and len(data) >= 6:
                btype = BLOCK_TYPES.get(data[4:6].upper())
                if btype is not None:
                    details["block_type"] = btype
                    op.target = btype
                    if sub == 0x03 and len(data) >= 12:
                        _t, num = block_name(data[4:11])
                        details["block_number"], details["filesystem"] = num, chr(data[11])
                        op.target = f"{btype}{num}" if num is not None else btype
            elif group == TIME_GROUP and len(data) >= 14:
                stamp = s7_timestamp(data, 4)
                if stamp is not None:
                    details["timestamp"] = stamp
        except (Malformed, IndexError, struct.error, ValueError):
            out.append(Anomaly("s7comm", "bad_header", f"{name} data truncated or malformed"))
        return op

    def _szl(self, data: bytes, kind: int, last_unit: int, op: Operation, details: dict, from_orig: bool,
             out: list[Record]) -> None:  # fmt: skip
        """Read SZL: the id and index asked for; the module identity in the PLC's answer (SZL 0x0011, 0x001C)."""
        if len(data) < 4:
            return
        payload = data[4 : 4 + _u16(data, 2)]
        frags = self.szl_frags
        if kind == 1:  # request; a follow-up request for the rest of a long answer carries no id
            if len(payload) >= 4:
                szl_id, index = _u16(payload, 0), _u16(payload, 2)
                details.update(szl_id=szl_id, szl_index=index, szl_id_name=SZL_NAMES.get(szl_id & 0xFF, "Unknown"))
                op.target = f"SZL 0x{szl_id:04x} index 0x{index:04x}"
            return
        held = frags[from_orig]
        if held is not None:  # the next part of an answer spanning several PDUs
            held += payload
            if len(held) > MAX_REASSEMBLY:
                frags[from_orig] = None
                out.append(Anomaly("s7comm", "buffer_overflow", "SZL answer over 64 KiB; dropped"))
                return
            if last_unit == LAST_DATA_UNIT_NO:
                return
            frags[from_orig] = None
            payload = bytes(held)
        elif last_unit == LAST_DATA_UNIT_NO and data[0] == RETURN_SUCCESS:
            frags[from_orig] = bytearray(payload)  # the SZL id and its records come with the last part
            details["fragment"] = True
            return
        if len(payload) < 8 or data[0] != RETURN_SUCCESS:
            return
        szl_id, index, entry_len, count = struct.unpack_from("!HHHH", payload)
        details.update(szl_id=szl_id, szl_index=index, szl_id_name=SZL_NAMES.get(szl_id & 0xFF, "Unknown"),
                       list_length=entry_len, list_count=count)  # fmt: skip
        op.target = f"SZL 0x{szl_id:04x} index 0x{index:04x}"
        part = szl_id & 0xFF
        if part in (SZL_MODULE_ID, SZL_COMPONENT_ID) and entry_len >= 4:
            fields, records = self._identity(payload, part, entry_len, count)
            if records:
                details["szl_records"] = records
            if fields:
                out.append(Identity("s7comm", fields, role="s7_plc"))

    @staticmethod
    def _identity(payload: bytes, part: int, entry_len: int, count: int) -> tuple[dict, dict]:
        """Identity fields from SZL 0x0011 (module identification) and 0x001C (component identification)."""
        fields: dict = {}
        records: dict = {}
        for i in range(count):
            e = 8 + i * entry_len
            entry = payload[e : e + entry_len]
            if len(entry) < entry_len:
                break
            index = (entry[0] << 8) | entry[1]
            if part == SZL_MODULE_ID and entry_len >= 28:  # index, MlfB (20), BGTyp, Ausbg, Ausbe
                order = _text(entry[2:22])
                ausbg, ausbe = (entry[24] << 8) | entry[25], (entry[26] << 8) | entry[27]
                if index == 0x0001 and order:
                    fields["order_number"] = records["order_number"] = order
                elif index == 0x0006:
                    if order:
                        fields.setdefault("order_number", order)
                    fields["hardware"] = records["hardware"] = str(ausbg)
                elif index == 0x0007 and ausbg >> 8 == ord("V"):
                    fields["firmware"] = records["firmware"] = f"V{ausbg & 0xFF}.{ausbe >> 8}.{ausbe & 0xFF}"
            elif part == SZL_COMPONENT_ID:
                value = entry[2:]
                if index == 0x0001:
                    fields["system_name"] = records["automation_system_name"] = _text(value[:24])
                elif index == 0x0002:
                    fields["module_name"] = records["module_name"] = _text(value[:24])
                elif index == 0x0003:
                    fields["plant_id"] = records["plant_name"] = _text(value[:32])
                elif index == 0x0004:
                    records["copyright"] = _text(value[:26])
                elif index == 0x0005:
                    fields["serial_number"] = records["module_serial"] = _text(value[:24])
                elif index == 0x0007:
                    fields["product_name"] = records["module_type_name"] = _text(value[:32])
                elif index == 0x0008:
                    records["memory_card_serial"] = _text(value[:32])
                elif index == 0x0009 and len(value) >= 6:
                    vendor_id = (value[0] << 8) | value[1]
                    fields["vendor_id"] = records["manufacturer_id"] = vendor_id
                    if vendor_id == SIEMENS_MANUFACTURER_ID:
                        fields["vendor"] = "Siemens"
                elif index == 0x000B:
                    records["location_id"] = _text(value[:32])
        return {k: v for k, v in fields.items() if v not in ("", None)}, records

    # ------------------------------------------------------------ S7comm-plus
    def _s7plus(self, pdu: bytes, from_orig: bool) -> list[Record]:
        """S7comm-plus: version, opcode, function; one operation per PDU, fragments reassembled."""
        self.name = "s7comm_plus"
        n = len(pdu)
        if n < 4:
            return [Anomaly("s7comm_plus", "bad_header", f"S7comm-plus header truncated: {n} bytes")]
        version = pdu[1]
        details: dict = {"version": version, "version_name": S7P_VERSIONS.get(version, f"0x{version:02x}")}
        if version in (S7P_KEEPALIVE, S7P_EXT_KEEPALIVE):
            name = S7P_VERSIONS[version]
            direction = REQUEST if from_orig == self.client_is_orig else RESPONSE
            return [Operation("s7comm_plus", direction, None, name, "session", details=details)]
        dlength = _H.unpack_from(pdu, 2)[0]
        has_trailer = n > dlength + 4
        off = 4
        if version == S7P_V3 and n > off + S7P_DIGEST_LEN and pdu[off] == S7P_DIGEST_LEN:
            details["integrity_protected"] = True  # V3: digest over the PDU, keyed by the session
            off += 1 + S7P_DIGEST_LEN
        cut = self._s7plus_cut(n, dlength)
        held = self.plus_frags[from_orig]
        if held is not None:  # inner or last fragment of a PDU that began earlier
            first_body, first_details = held
            first_details["fragments"] += 1
            if not has_trailer and not cut:
                return []
            self.plus_frags[from_orig] = None
            return [*cut, *self._s7plus_op(first_body, first_details, from_orig)]
        if cut:  # the data part runs past the PDU: what the header and the bytes there say, with the anomaly
            return [*cut, *self._s7plus_op(pdu[off : 4 + dlength], details, from_orig)]
        if not has_trailer:  # first fragment: the opcode and function are in it, the PDU ends later
            details["fragments"] = 1
            self.plus_frags[from_orig] = (pdu[off:], details)
            return []
        return self._s7plus_op(pdu[off : 4 + dlength], details, from_orig)

    @staticmethod
    def _s7plus_cut(n: int, dlength: int) -> list[Record]:
        """The anomaly of an S7comm-plus PDU of n bytes cut short: in its data part (the header's length runs
        past it) or in its trailer. A PDU that ends right after its data part is a first fragment, not cut."""
        if n < 4 + dlength:
            problem = f"S7comm-plus data length {dlength} runs past the PDU ({n - 4} bytes after the header)"
            return [Anomaly("s7comm_plus", "bad_header", problem)]
        if 4 + dlength < n < 4 + dlength + S7P_TRAILER_LEN:
            return [Anomaly("s7comm_plus", "bad_header", f"S7comm-plus trailer cut at {n - 4 - dlength} bytes")]
        return []

    def _s7plus_op(self, body: bytes, details: dict, from_orig: bool) -> list[Record]:
        out: list[Record] = []
        if not body:
            out.append(Anomaly("s7comm_plus", "bad_header", "S7comm-plus PDU without a data part"))
            return out
        opcode = body[0]
        opname, direction = S7P_OPCODES.get(opcode, (f"UNKNOWN_OPCODE_0x{opcode:02x}", RESPONSE))
        details["opcode"], details["opcode_name"] = opcode, opname
        if opcode not in S7P_OPCODES:
            direction = REQUEST if from_orig == self.client_is_orig else RESPONSE
            out.append(Operation("s7comm_plus", direction, None, opname, "other", details=details))
            return out
        if direction == RESPONSE:
            self._plc("s7comm_plus", from_orig, out)
        if opcode == S7P_NOTIFICATION:
            if len(body) >= 5:
                details["subscription_object_id"] = _I.unpack_from(body, 1)[0]
            out.append(Operation("s7comm_plus", direction, None, "NOTIFICATION", "read", details=details))
            return out
        if len(body) < S7P_FUNCTION_END:
            out.append(Anomaly("s7comm_plus", "bad_header", f"S7comm-plus {opname} of {len(body)} bytes"))
            out.append(Operation("s7comm_plus", direction, None, opname, "other", details=details))
            return out
        func = _H.unpack_from(body, 3)[0]
        name, access = S7P_FUNCTIONS.get(func, (f"UNKNOWN_0x{func:04x}", "other"))
        if len(body) < _S7P_DATA.size:  # cut in the sequence number: still the function's operation
            out.append(Anomaly("s7comm_plus", "bad_header", f"S7comm-plus {name} of {len(body)} bytes"))
            out.append(Operation("s7comm_plus", direction, func, name, access, details=details))
            return out
        _op, _r1, func, _r2, seq = _S7P_DATA.unpack_from(body)
        details["sequence_number"] = seq
        op = Operation("s7comm_plus", direction, func, name, access, transaction_id=seq, details=details)
        try:
            if opcode == S7P_REQUEST:
                self._s7plus_request(body, func, op, details)
                self._remember(("+", from_orig, seq), (func, op.target, op.access_class))
            else:
                paired = self.pending.pop(("+", not from_orig, seq), None)
                if paired is not None and paired[0] == func:
                    op.target, op.access_class = paired[1], paired[2]
                if len(body) > 10:  # transport flags, then the return value (64-bit VLQ, low 16 bits: error code)
                    value, _next = _vlq(body, 10, 9)
                    code = value & 0xFFFF
                    code = code - 0x10000 if code & 0x8000 else code
                    if code < 0 or func == S7P_ERROR:
                        details["return_value"] = value
                        op.status = f"error code {code}"
        except (Malformed, IndexError, struct.error, ValueError):
            out.append(Anomaly("s7comm_plus", "bad_header", f"S7comm-plus {name} truncated or malformed"))
        out.append(op)
        return out

    @staticmethod
    def _s7plus_request(body: bytes, func: int, op: Operation, details: dict) -> None:
        """Session id and the object or variables a request acts on; refines the access class."""
        if len(body) < 14:
            return
        session = _I.unpack_from(body, 9)[0]
        details["session_id"] = session
        p = 14  # after the transport flags
        if func == S7P_CREATE_OBJECT and session == S7P_SESSION_CONTAINER:
            op.access_class = "session"  # opening the session
            op.target = "session"
        elif func in (S7P_SET_VARIABLE, S7P_DELETE_OBJECT, S7P_SET_MULTI) and len(body) >= p + 4:
            obj = _I.unpack_from(body, p)[0]
            if obj:
                details["object_id"] = obj
                op.target = S7P_OBJECTS.get(obj, f"object 0x{obj:08x}")
                if obj == session and func != S7P_SET_VARIABLE:
                    op.access_class = "session"  # setting up or closing the session object itself
                    op.target = "session"
                elif obj == S7P_CPU_EXEC_UNIT and func != S7P_DELETE_OBJECT:
                    op.access_class = "control"  # operating state of the CPU: start / stop
            elif func in (S7P_SET_MULTI,):
                op.target = S7comm._s7plus_address(body, p + 4)
        elif func == S7P_GET_MULTI and len(body) >= p + 4 and _I.unpack_from(body, p)[0] == 0:
            op.target = S7comm._s7plus_address(body, p + 4)

    @staticmethod
    def _s7plus_address(body: bytes, p: int) -> str | None:
        """The first item address of a Get/SetMultiVariables request, as the plugin shows it (DB2, M)."""
        count, p = _vlq(body, p)
        if not count:
            return None
        _fields, p = _vlq(body, p)
        _crc, p = _vlq(body, p)
        area, p = _vlq(body, p)
        if 0x8A0E0000 <= area <= 0x8A0EFFFF:
            first = f"DB{area & 0xFFFF}"
        else:
            first = S7P_AREAS.get(area) or S7P_OBJECTS.get(area) or f"object {area}"
        return first if count == 1 else f"{first} (+{count - 1} items)"
