"""EPATH (CIP Vol. 1 Appendix C): what a request path, connection path or route path addresses.

A path is a run of segments, each sized by its first byte: logical (class, instance, attribute, member,
connection point, electronic key), symbolic (Logix tag names, with member segments as array elements),
port (the route to another module), and data and network segments, which are stepped over. The walk stops
at the first segment it cannot size; ``Path.complete`` says whether it reached the end.
"""

from __future__ import annotations

import struct

from ..layout import Layout

_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_KEY = Layout("<", ("segment", "B"), ("key_format", "B"), ("vendor_id", "H"), ("device_type", "H"),
              ("product_code", "H"), ("major_revision", "B"), ("minor_revision", "B"))  # fmt: skip
_LOGICAL_KEYS = ("class_id", "instance_id", "member_id", "connection_point", "attribute_id")
_LOGICAL_WORDS = ("class", "instance", "member", "connection point", "attribute")
# what the segment before was, for a member segment after a tag name (an array element, not a member id)
_NOT_SYMBOL, _SYMBOL, _ELEMENT = 0, 1, 2


class Path:
    """What a padded EPATH addresses: the last class/instance/attribute/member/connection point, the
    symbolic tag, port segments (the route), and the text form used as ``target``."""

    __slots__ = ("class_id", "complete", "fields", "parts", "route", "tag", "text")

    def __init__(self) -> None:
        self.fields: dict[str, int | str] = {}
        self.parts: list[str] = []  # logical segments as text, in path order
        self.tag = ""  # symbolic segments and their element indexes: "Program:Main.Tag[2,3].Member"
        self.route: list[str] = []  # port segments: "port 1 address 0"
        self.complete = True
        self.class_id: int | None = None  # the last class segment
        self.text: str | None = None  # the target

    def target(self) -> str | None:
        return self.text


def parse_path(b: bytes, pos: int, end: int) -> Path:
    """Decode the padded EPATH in b[pos:end]; stops at the first segment it cannot size."""
    p = Path()
    before = _NOT_SYMBOL
    while pos < end:
        seg = b[pos]
        kind = seg & 0xE0
        if kind == 0x20:
            at, before = _logical(b, pos, end, p, before)
        elif seg == 0x91 or kind == 0x60:
            at, before = _symbolic(b, pos, end, p), _SYMBOL
        elif kind == 0x00:
            at, before = _port(b, pos, end, p), _NOT_SYMBOL
        elif kind in (0x40, 0x80):
            at = _stepped_over(b, pos, end)
        else:
            break
        if at is None:
            break
        pos = at
    p.complete = pos == end
    fields = p.fields
    if p.tag:
        fields["symbol"] = p.tag
    if p.route:
        fields["route"] = ", ".join(p.route)
    p.class_id = fields.get("class_id")  # type: ignore[assignment]
    p.text = p.tag or " ".join(p.parts) or None
    return p


def _logical(b: bytes, pos: int, end: int, p: Path, before: int) -> tuple[int | None, int]:
    """A logical segment: (where the next segment starts, or None, and what this one was)."""
    seg = b[pos]
    ltype, fmt = (seg >> 2) & 7, seg & 3
    if ltype == 5:  # special: electronic key
        if fmt != 0 or pos + _KEY.size > end or b[pos + 1] != 4:
            return None, before
        _seg, _format, vendor, dev, prod, major, minor = _KEY.unpack_from(b, pos)
        p.fields["electronic_key"] = (
            f"vendor {vendor} device type {dev} product code {prod} revision {major & 0x7F}.{minor}"
        )
        return pos + _KEY.size, before
    if ltype > 5:  # service id / extended logical: not part of an application path
        return (pos + 2 if fmt == 0 and pos + 2 <= end else None), before
    if fmt == 0 and pos + 2 <= end:
        value, size = b[pos + 1], 2
    elif fmt == 1 and pos + 4 <= end:
        value, size = _U16.unpack_from(b, pos + 2)[0], 4
    elif fmt == 2 and pos + 6 <= end:
        value, size = _U32.unpack_from(b, pos + 2)[0], 6
    else:
        return None, before
    if ltype == 2 and before != _NOT_SYMBOL:  # array element of the tag just named
        p.tag = p.tag[:-1] + f",{value}]" if before == _ELEMENT else p.tag + f"[{value}]"
        return pos + size, _ELEMENT
    p.fields[_LOGICAL_KEYS[ltype]] = value
    p.parts.append(f"class 0x{value:02x}" if ltype == 0 else f"{_LOGICAL_WORDS[ltype]} {value}")
    return pos + size, _NOT_SYMBOL


def _symbolic(b: bytes, pos: int, end: int, p: Path) -> int | None:
    """A tag name: ANSI extended symbolic (0x91, then its length) or symbolic (its length in the low bits)."""
    if b[pos] == 0x91:
        if pos + 2 > end:
            return None
        at, n = pos + 2, b[pos + 1]
    else:
        at, n = pos + 1, b[pos] & 0x1F
        if n == 0:
            return None
    if at + n > end:
        return None
    name = b[at : at + n].decode("latin-1")
    p.tag = f"{p.tag}.{name}" if p.tag else name
    return at + n + ((at + n - pos) & 1)  # padded to a word


def _port(b: bytes, pos: int, end: int, p: Path) -> int | None:
    """A port segment: a hop of the route, "port 1 address 0"; port 15 means a 16-bit port number follows."""
    seg = b[pos]
    port = seg & 0x0F
    if pos + 2 > end:
        return None
    if seg & 0x10:  # extended link address: its size, [port], the address, padded to a word
        n, at = b[pos + 1], pos + 2
        if port == 0x0F:
            if at + 2 > end:
                return None
            port = _U16.unpack_from(b, at)[0]
            at += 2
        if at + n > end:
            return None
        address = b[at : at + n].rstrip(b"\0").decode("latin-1")
        at += n + ((at + n - pos) & 1)
    else:
        address, at = str(b[pos + 1]), pos + 2
        if port == 0x0F:  # the port number takes the next word, the address the byte after it
            if at + 2 > end:
                return at if at == end else None  # cut there: the walk ends after the first word, as it always has
            port, address, at = _U16.unpack_from(b, pos + 1)[0], str(b[pos + 3]), at + 2
    p.route.append(f"port {port} address {address}")
    return at


def _stepped_over(b: bytes, pos: int, end: int) -> int | None:
    """A data (simple data: word count, words) or network segment: sized, not decoded."""
    seg = b[pos]
    if seg & 0xE0 == 0x40 and not seg & 0x10:
        return pos + 2
    if (seg & 0xE0 == 0x80 and seg != 0x80) or pos + 2 > end:
        return None
    return pos + 2 + 2 * b[pos + 1]


_PATHS: dict[bytes, Path] = {}  # request paths repeat a lot: decode each once (a Path is not changed after)


def request_path(b: bytes, pos: int, end: int) -> Path:
    key = b[pos:end]
    p = _PATHS.get(key)
    if p is None:
        if len(_PATHS) >= 4096:
            _PATHS.clear()
        p = _PATHS[key] = parse_path(key, 0, len(key))
    return p
