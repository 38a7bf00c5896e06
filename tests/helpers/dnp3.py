"""DNP3 link frames with correct CRCs, and application fragments cut into them, for the tests."""

from __future__ import annotations

import struct

from dissectors.dnp3 import crc_dnp


def link_frame(src: int, dst: int, user: bytes, ctrl: int = 0xC4) -> bytes:
    """A link frame with correct CRCs: header, then user data in 16-byte blocks each followed by its CRC."""
    head = struct.pack("<BBBBHH", 0x05, 0x64, 5 + len(user), ctrl, dst, src)
    out = head + struct.pack("<H", crc_dnp(head))
    for i in range(0, len(user), 16):
        block = user[i : i + 16]
        out += block + struct.pack("<H", crc_dnp(block))
    return out


def frames(app: bytes, src: int, dst: int, seq: int = 0, ctrl: int = 0xC4, size: int = 249) -> list[bytes]:
    """An application fragment cut into transport segments (FIR, FIN, sequence), one link frame each."""
    parts = [app[i : i + size] for i in range(0, len(app), size)] or [b""]
    out = []
    for i, part in enumerate(parts):
        th = (0x40 if i == 0 else 0) | (0x80 if i == len(parts) - 1 else 0) | ((seq + i) & 0x3F)
        out.append(link_frame(src, dst, bytes([th]) + part, ctrl))
    return out
