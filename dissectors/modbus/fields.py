"""What a Modbus PDU's fields say, the same for parse and the bulk decoder: the MBAP header declared once, the values
a write carries, the data table a function addresses, an exception reply's status."""

from __future__ import annotations

import struct

from ..layout import Layout
from .consts import EXCEPTIONS, TABLES

# the MBAP header and the function code; its length counts the bytes from the unit id on
MBAP = Layout("!", ("transaction_id", "H"), ("protocol_id", "H"), ("length", "H"), ("unit_id", "B"), ("function", "B"))
COUNTED_FROM = MBAP.offset["unit_id"]
ADDRESSING = Layout("!", ("address", "H"), ("quantity", "H"))  # after the function code (or address and value)
MAX_PENDING = 1024  # unanswered requests remembered per flow
MAX_VALUES = 32  # written values kept in details


def exception(code: int | None) -> str:
    """Status of an exception reply, from its exception code (None: the reply ends before it)."""
    return "EXCEPTION" if code is None else EXCEPTIONS.get(code, f"EXCEPTION_{code}")


def written(code: int, pdu: bytes, quantity: int) -> list[int]:
    """The values a write request (fc 5, 6, 15, 16) carries, at most MAX_VALUES."""
    if code == 15:
        bits = int.from_bytes(pdu[13:], "little")
        return [(bits >> i) & 1 for i in range(min(quantity, MAX_VALUES, 8 * len(pdu[13:])))]
    if code == 16:  # a request cut short keeps the whole registers it has
        data = pdu[13 : 13 + 2 * min(quantity, MAX_VALUES)]
        return [v for (v,) in struct.iter_unpack("!H", data[: len(data) & ~1])]
    value = ADDRESSING.unpack_from(pdu, MBAP.size)[1]
    return [int(value == 0xFF00)] if code == 5 else [value]


def target(code: int, address: int | None, quantity: int | None) -> str | None:
    """The registers or coils a function acts on, as a user writes them: "holding_registers 100-109"."""
    table = TABLES.get(code)
    if table is None or address is None:
        return None
    if not quantity or quantity == 1:
        return f"{table} {address}"
    return f"{table} {address}-{address + quantity - 1}"
