"""CRC-16/DNP (poly 0x3D65 reflected = 0xA6BC, init 0, xorout 0xFFFF): one block at a time, and a word at a time
for the bulk decoder."""

from __future__ import annotations

import struct

import numpy as np


def _crc_tables() -> tuple[np.ndarray, np.ndarray]:
    """The byte table, and the two-byte one: for a reflected 16-bit CRC, crc' = t16[crc ^ (b0 | b1 << 8)].
    Built with numpy: the 65536 entries cost 5 ms of start-up in a Python loop."""
    t8 = np.arange(256, dtype=np.uint16)
    for _ in range(8):
        t8 = np.where(t8 & 1, (t8 >> 1) ^ 0xA6BC, t8 >> 1)
    w = np.arange(65536, dtype=np.uint16)
    low = t8[w & 0xFF]
    return t8, (low >> 8) ^ t8[(low ^ (w >> 8)) & 0xFF]


_t8, _t16 = _crc_tables()
_T8, _T16 = _t8.tolist(), _t16.tolist()  # lists for crc_dnp: indexing one is faster than an array
_WORDS = [struct.Struct(f"<{n}H") for n in range(9)]


def crc_dnp(data: bytes | bytearray, start: int = 0, end: int | None = None) -> int:
    """CRC-16/DNP of data[start:end], as it is sent (little-endian after the bytes)."""
    if end is None:
        end = len(data)
    n = end - start
    crc = 0
    t16 = _T16
    pos = start
    while n >= 16:
        for w in _WORDS[8].unpack_from(data, pos):
            crc = t16[crc ^ w]
        pos += 16
        n -= 16
    if n >= 2:
        for w in _WORDS[n >> 1].unpack_from(data, pos):
            crc = t16[crc ^ w]
        pos += n & ~1
    if n & 1:
        crc = (crc >> 8) ^ _T8[(crc ^ data[pos]) & 0xFF]
    return crc ^ 0xFFFF


# CRC-16/DNP of a 16-byte block a word at a time, for the bulk decoder: CRC_AT[j, w] is the CRC (before the final XOR)
# of word w at word j of the block, zeros elsewhere. The CRC is linear and leading zeros keep it 0, so a block is the
# XOR of its words, and a shorter block right-aligned in zeros has the CRC of its own bytes.
CRC_AT = np.empty((8, 65536), np.uint16)
CRC_AT[7] = _t16
for _j in range(6, -1, -1):
    CRC_AT[_j] = CRC_AT[7][CRC_AT[_j + 1]]
