"""S7comm, S7comm-plus and COTP tables: every code with its name, access class and source.

Names follow Zeek ICSNPP (cisagov/icsnpp-s7comm) where it has them, else Wireshark's
packet-s7comm.c and the s7comm_plus plugin, upper-snake-cased. Codes follow Wireshark.
Tables only, as ICSNPP keeps consts.zeek apart from main.zeek: the logic is in the
other modules of this package.
"""

from __future__ import annotations

import numpy as np

from ..base import REQUEST, RESPONSE

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
IS_TPDU = np.isin(np.arange(16), list(COTP_TPDUS))  # COTP_TPDUS by code, for pdu_lengths
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
# SZL 0x1C (component identification) text entries: index -> (identity field or None, ICSNPP-style record
# key, characters); index 9 (manufacturer id) is a number, read apart
SZL_COMPONENT_TEXTS = {
    0x0001: ("system_name", "automation_system_name", 24),
    0x0002: ("module_name", "module_name", 24),
    0x0003: ("plant_id", "plant_name", 32),
    0x0004: (None, "copyright", 26),
    0x0005: ("serial_number", "module_serial", 24),
    0x0007: ("product_name", "module_type_name", 32),
    0x0008: (None, "memory_card_serial", 32),
    0x000B: (None, "location_id", 32),
}

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

# ---------------------------------------------------------------- limits
MAX_REASSEMBLY = 1 << 16  # bytes of COTP DT / S7 userdata / S7comm-plus fragments held per direction
MAX_PENDING = 512  # unanswered requests remembered per flow to pair responses with them
MAX_ITEMS = 64  # items listed in details; the item count is always given
