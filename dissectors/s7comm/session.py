"""What one S7 connection remembers across PDUs, shared by its S7comm and S7comm-plus decoders."""

from __future__ import annotations

from ..base import Identity, Record
from .consts import MAX_PENDING


class Session:
    """Open requests to pair answers with, and the sides already reported as the PLC."""

    def __init__(self) -> None:
        self.pending: dict[tuple, tuple] = {}  # open requests: S7 (side, PDU ref), S7+ ("+", side, seq)
        self.plc_sides: set[tuple] = set()  # (protocol, side) already reported as s7_plc

    def remember(self, key: tuple, value: tuple) -> None:
        """An open request; the oldest is forgotten past MAX_PENDING."""
        pending = self.pending
        if len(pending) >= MAX_PENDING:
            del pending[next(iter(pending))]
        pending[key] = value

    def answer(self, key: tuple) -> tuple | None:
        """The request an answer pairs with, no longer open."""
        return self.pending.pop(key, None)

    def plc(self, protocol: str, from_orig: bool, out: list[Record]) -> None:
        """The side that answers S7 jobs is the PLC: say so once per flow and side."""
        if (protocol, from_orig) not in self.plc_sides:
            self.plc_sides.add((protocol, from_orig))
            out.append(Identity(protocol, {}, role="s7_plc"))

    def settled(self, plc_side: bool) -> bool:
        """No open request, and the S7comm PLC on ``plc_side`` already reported."""
        return not self.pending and ("s7comm", plc_side) in self.plc_sides
