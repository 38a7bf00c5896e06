"""The DNP3 link frame: its header, declared once for parse and the bulk decoder, and its length on the wire.

A frame is the 10-byte header (start bytes 05 64, LEN, CTRL, DST, SRC, header CRC), then LEN - 5 bytes of user
data in 16-byte blocks, each followed by its CRC.
"""

from __future__ import annotations

import numpy as np

from ..layout import Layout

START = b"\x05\x64"  # a link frame's first bytes
LINK = Layout("<", ("start", "H"), ("length", "B"), ("control", "B"), ("destination", "H"), ("source", "H"),
              ("crc", "H"))  # fmt: skip


def frame_length(length: int) -> int:
    """Bytes on the wire of a link frame whose LEN field is ``length`` (>= 5)."""
    n = length - 5
    return 10 + n + 2 * ((n + 15) >> 4)


FRAME_LENGTH = np.array([frame_length(n) if n >= 5 else -1 for n in range(256)])  # frame_length by LEN, -1 below 5
