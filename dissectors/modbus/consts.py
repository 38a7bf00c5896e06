"""Modbus tables: functions, sub-functions (diagnostics, MEI types, Schneider UMAS), exceptions, the data table each
function addresses, device-identification objects, and the fixed size of each function's request and response.

Names follow Zeek's Modbus analyzer, as ICSNPP's modbus_detailed log does; the code that reads them is beside this.
"""

from __future__ import annotations

# function code -> (name, access class); Modbus Application Protocol v1.1b3 section 6
FUNCTIONS: dict[int, tuple[str, str]] = {
    1: ("READ_COILS", "read"),
    2: ("READ_DISCRETE_INPUTS", "read"),
    3: ("READ_HOLDING_REGISTERS", "read"),
    4: ("READ_INPUT_REGISTERS", "read"),
    5: ("WRITE_SINGLE_COIL", "write"),
    6: ("WRITE_SINGLE_REGISTER", "write"),
    7: ("READ_EXCEPTION_STATUS", "diagnostic"),
    8: ("DIAGNOSTICS", "diagnostic"),
    11: ("GET_COMM_EVENT_COUNTER", "diagnostic"),
    12: ("GET_COMM_EVENT_LOG", "diagnostic"),
    15: ("WRITE_MULTIPLE_COILS", "write"),
    16: ("WRITE_MULTIPLE_REGISTERS", "write"),
    17: ("REPORT_SLAVE_ID", "diagnostic"),
    20: ("READ_FILE_RECORD", "read"),
    21: ("WRITE_FILE_RECORD", "write"),
    22: ("MASK_WRITE_REGISTER", "write"),
    23: ("READ_WRITE_MULTIPLE_REGISTERS", "write"),
    24: ("READ_FIFO_QUEUE", "read"),
    43: ("ENCAP_INTERFACE_TRANSPORT", "diagnostic"),
    90: ("UMAS", "other"),
}

# function 8 sub-function -> (name, access class); standard section 6.8.1
DIAGNOSTICS: dict[int, tuple[str, str]] = {
    0x00: ("RETURN_QUERY_DATA", "diagnostic"),
    0x01: ("RESTART_COMMUNICATIONS_OPTION", "control"),
    0x02: ("RETURN_DIAGNOSTIC_REGISTER", "diagnostic"),
    0x03: ("CHANGE_ASCII_INPUT_DELIMITER", "write"),
    0x04: ("FORCE_LISTEN_ONLY_MODE", "control"),
    0x0A: ("CLEAR_COUNTERS_AND_DIAGNOSTIC_REGISTER", "diagnostic"),
    0x0B: ("RETURN_BUS_MESSAGE_COUNT", "diagnostic"),
    0x0C: ("RETURN_BUS_COMMUNICATION_ERROR_COUNT", "diagnostic"),
    0x0D: ("RETURN_BUS_EXCEPTION_ERROR_COUNT", "diagnostic"),
    0x0E: ("RETURN_SLAVE_MESSAGE_COUNT", "diagnostic"),
    0x0F: ("RETURN_SLAVE_NO_RESPONSE_COUNT", "diagnostic"),
    0x10: ("RETURN_SLAVE_NAK_COUNT", "diagnostic"),
    0x11: ("RETURN_SLAVE_BUSY_COUNT", "diagnostic"),
    0x12: ("RETURN_BUS_CHARACTER_OVERRUN_COUNT", "diagnostic"),
    0x14: ("CLEAR_OVERRUN_COUNTER_AND_FLAG", "diagnostic"),
}

# function 43 MEI type -> (name, access class)
MEI_TYPES: dict[int, tuple[str, str]] = {
    0x0D: ("CANOPEN_GENERAL_REFERENCE", "other"),
    0x0E: ("READ_DEVICE_IDENTIFICATION", "diagnostic"),
}

# Schneider UMAS (function 90) function -> (name, access class), as published by
# the researchers who documented it (Kaspersky ICS CERT, Armis)
UMAS: dict[int, tuple[str, str]] = {
    0x01: ("INIT_COMM", "session"),
    0x02: ("READ_ID", "diagnostic"),
    0x03: ("READ_PROJECT_INFO", "diagnostic"),
    0x04: ("READ_PLC_INFO", "diagnostic"),
    0x06: ("READ_CARD_INFO", "diagnostic"),
    0x0A: ("REPEAT", "diagnostic"),
    0x10: ("TAKE_PLC_RESERVATION", "session"),
    0x11: ("RELEASE_PLC_RESERVATION", "session"),
    0x12: ("KEEP_ALIVE", "session"),
    0x20: ("READ_MEMORY_BLOCK", "read"),
    0x22: ("READ_VARIABLES", "read"),
    0x23: ("WRITE_VARIABLES", "write"),
    0x24: ("READ_COILS_REGISTERS", "read"),
    0x25: ("WRITE_COILS_REGISTERS", "write"),
    0x26: ("DATA_DICTIONARY", "read"),
    0x30: ("INITIALIZE_UPLOAD", "program"),
    0x31: ("UPLOAD_BLOCK", "program"),
    0x32: ("END_STRATEGY_UPLOAD", "program"),
    0x33: ("INITIALIZE_DOWNLOAD", "program"),
    0x34: ("DOWNLOAD_BLOCK", "program"),
    0x35: ("END_STRATEGY_DOWNLOAD", "program"),
    0x36: ("READ_ETH_MASTER_DATA", "read"),
    0x39: ("READ_ETH_SLAVE_DATA", "read"),
    0x40: ("START_PLC", "control"),
    0x41: ("STOP_PLC", "control"),
    0x50: ("MONITOR_PLC", "read"),
    0x58: ("CHECK_PLC", "diagnostic"),
    0x70: ("READ_IO_OBJECT", "read"),
    0x71: ("WRITE_IO_OBJECT", "write"),
    0x73: ("GET_STATUS_MODULE", "diagnostic"),
}
UMAS_RESPONSES = {0xFE: None, 0xFD: "UMAS_ERROR"}  # response code -> status

EXCEPTIONS: dict[int, str] = {
    1: "ILLEGAL_FUNCTION",
    2: "ILLEGAL_DATA_ADDRESS",
    3: "ILLEGAL_DATA_VALUE",
    4: "SLAVE_DEVICE_FAILURE",
    5: "ACKNOWLEDGE",
    6: "SLAVE_DEVICE_BUSY",
    8: "MEMORY_PARITY_ERROR",
    10: "GATEWAY_PATH_UNAVAILABLE",
    11: "GATEWAY_TARGET_DEVICE_FAILED_TO_RESPOND",
}

# data table each addressing function acts on (for `target`)
TABLES = {
    1: "coils", 2: "discrete_inputs", 3: "holding_registers", 4: "input_registers", 5: "coils",
    6: "holding_registers", 15: "coils", 16: "holding_registers", 22: "holding_registers",
    23: "holding_registers", 24: "holding_registers",
}  # fmt: skip

# device identification object id -> identity field
MEI_OBJECTS = {0: "vendor", 1: "product_code", 2: "revision", 4: "product_name", 5: "model_name"}

# function -> bytes of its request's fixed part (MBAP header and function code included): a request cut before
# its end is still the operation, with a `truncated_pdu` anomaly (docs/protocols/modbus.md, damaged PDUs)
REQUEST_SIZES = {1: 12, 2: 12, 3: 12, 4: 12, 5: 12, 6: 12, 8: 12, 15: 13, 16: 13, 20: 9, 21: 9, 22: 14, 23: 17, 24: 10,
                 43: 9, 90: 10}  # fmt: skip

# function -> bytes of its response's fixed part (MBAP header and function code included), and the functions whose
# response then has as many bytes as the byte count at offset 8 says: a reply cut before its end is still the
# operation, with a `truncated_pdu` anomaly, as a cut request is (docs/protocols/modbus.md, damaged PDUs)
RESPONSE_SIZES = {1: 9, 2: 9, 3: 9, 4: 9, 5: 12, 6: 12, 7: 9, 8: 12, 11: 12, 12: 9, 15: 12, 16: 12, 17: 9, 20: 9,
                  21: 9, 22: 14, 23: 9, 24: 10, 43: 9, 90: 10}  # fmt: skip
COUNTED_RESPONSES = frozenset({1, 2, 3, 4, 12, 17, 20, 21, 23})
