"""Modbus/TCP: MBAP framing, functions and sub-functions, exceptions, addresses,
request/response pairing, device identification (MEI 0x0E) and Schneider UMAS.

Function and exception names follow Zeek's Modbus analyzer (READ_COILS, ...), as
ICSNPP's modbus_detailed log does. Sub-functions (diagnostics, MEI, UMAS) keep the
Modbus function name and set the access class; their own name is in details.

The package: ``consts`` (the tables), ``fields`` (the MBAP header's layout and what
parse and bulk both read), ``dissector`` (``ModbusTCP``) and ``bulk`` (polling in bulk).
"""

from .consts import DIAGNOSTICS, EXCEPTIONS, FUNCTIONS, REQUEST_SIZES, RESPONSE_SIZES, UMAS
from .dissector import ModbusTCP
from .fields import MAX_VALUES

__all__ = [
    "DIAGNOSTICS",
    "EXCEPTIONS",
    "FUNCTIONS",
    "MAX_VALUES",
    "REQUEST_SIZES",
    "RESPONSE_SIZES",
    "UMAS",
    "ModbusTCP",
]
