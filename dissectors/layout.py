"""A wire layout declared once, read two ways: ``struct`` for one PDU, a numpy dtype for a batch of them.

A protocol's parse reads a header with ``struct.unpack_from``; its bulk decoder reads the same header at a
million offsets at once through a structured numpy dtype. Both come from one declaration here, as dpkt's
``__hdr__`` declares a header once, so a field's offset is never written twice::

    MBAP = Layout("!", ("transaction_id", "H"), ("protocol_id", "H"), ("length", "H"), ("unit_id", "B"))
    tid, pid, length, uid = MBAP.unpack_from(pdu)
    heads = gather(data, start, MBAP.size).view(MBAP.dtype)  # heads["length"]: every PDU's length

A field is a name and one ``struct`` code with its count (``"8s"``, ``"2x"``); a pad (``x``) has no name.
Layouts of one byte order add up (``HEADER + ITEM``), for the fixed prefix a bulk decoder reads.
"""

from __future__ import annotations

import struct

import numpy as np

_ORDER = {"!": ">", ">": ">", "<": "<"}
_NUMPY = {"B": "u1", "b": "i1", "H": "u2", "h": "i2", "I": "u4", "i": "i4", "Q": "u8", "q": "i8", "f": "f4", "d": "f8"}


class Layout:
    """Fixed fields at fixed offsets: ``struct``, ``size``, ``offset[name]`` and ``dtype`` from one list."""

    __slots__ = ("order", "fields", "struct", "size", "offset", "dtype", "unpack_from")

    def __init__(self, order: str, *fields: tuple[str | None, str]):
        if order not in _ORDER:
            raise ValueError(f"byte order {order!r}: one of ! > <")
        self.order = order
        self.fields = fields
        self.struct = struct.Struct(order + "".join(code for _, code in fields))
        self.size = self.struct.size
        self.unpack_from = self.struct.unpack_from
        names, formats, offsets, at = [], [], [], 0
        for name, code in fields:
            width = struct.calcsize("<" + code)
            kind = code.lstrip("0123456789")
            if (name is None) != (kind == "x"):
                raise ValueError(f"field {name!r} {code!r}: a pad (x) has no name, every other field has one")
            if name is not None:
                names.append(name)
                formats.append(f"S{width}" if kind == "s" else _ORDER[order] + _NUMPY[kind])
                offsets.append(at)
            at += width
        self.offset = dict(zip(names, offsets, strict=True))
        self.dtype = np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": self.size})

    def __add__(self, other: Layout) -> Layout:
        if _ORDER[other.order] != _ORDER[self.order]:
            raise ValueError("layouts of different byte orders do not add up")
        return Layout(self.order, *self.fields, *other.fields)

    def __repr__(self) -> str:
        return f"Layout({self.order!r}, {', '.join(map(repr, self.fields))})"
