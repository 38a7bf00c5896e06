"""Bounds-checked reads shared by the S7comm and S7comm-plus decoders: a field past the end is ``Malformed``."""

from __future__ import annotations


class Malformed(Exception):
    """A field runs past the end of its PDU."""


def u8(b: bytes, off: int) -> int:
    if off >= len(b):
        raise Malformed
    return b[off]


def u16(b: bytes, off: int) -> int:
    if off + 2 > len(b):
        raise Malformed
    return (b[off] << 8) | b[off + 1]


def cstring(b: bytes) -> str:
    """A NUL-padded Latin-1 string field."""
    return b.split(b"\0", 1)[0].decode("latin-1").strip()
