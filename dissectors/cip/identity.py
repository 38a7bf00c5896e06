"""The CIP Identity object (class 0x01) as IDENTITY_FIELDS: from a ListIdentity item or from attributes read.

A device describes itself twice over: in the CIP Identity item of an EtherNet/IP ListIdentity reply, and in the
Identity object attributes 1-7 a client reads from it with Get_Attributes_All, Get_Attribute_Single or
Get_Attribute_List. Both end in ``identity_fields``.
"""

from __future__ import annotations

import struct

from ..base import Identity
from ..layout import Layout
from .consts import DEVICE_TYPES, VENDORS

# attributes 1-6 and the length of 7 (product name, a SHORT_STRING), as Get_Attributes_All and ListIdentity give them
IDENTITY = Layout("<", ("vendor_id", "H"), ("device_type", "H"), ("product_code", "H"), ("major_revision", "B"),
                  ("minor_revision", "B"), ("status", "H"), ("serial_number", "I"), ("name_length", "B"))  # fmt: skip
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_ATTRIBUTE = struct.Struct("<HH")  # Get_Attribute_List reply: attribute id, status


# an Identity attribute's value: a number, the revision as (major, minor), the product name (None: cut)
Attribute = int | str | tuple[int, int] | None


def identity_fields(attrs: dict[int, Attribute]) -> dict[str, str | int]:
    """IDENTITY_FIELDS from Identity attributes (id -> value)."""
    fields: dict[str, str | int] = {}
    vendor_id, device_type, product_code, revision, serial, name = (attrs.get(i) for i in (1, 2, 3, 4, 6, 7))
    if isinstance(vendor_id, int):
        fields["vendor_id"] = vendor_id
        vendor = VENDORS.get(vendor_id)
        if vendor:
            fields["vendor"] = vendor
    if isinstance(device_type, int):
        fields["device_type"] = DEVICE_TYPES.get(device_type, f"0x{device_type:04x}")
    if isinstance(product_code, int):
        fields["product_code"] = product_code
    if isinstance(revision, tuple):
        fields["revision"] = "{}.{}".format(*revision)
    if isinstance(serial, int):
        fields["serial_number"] = f"0x{serial:08x}"
    if isinstance(name, str) and name:
        fields["product_name"] = name
    return fields


def identity_attributes(b: bytes, pos: int, end: int) -> dict[int, Attribute] | None:
    """Attributes 1-7 in order at b[pos:end] (the name None when cut), or None when shorter than IDENTITY."""
    if pos + IDENTITY.size > end:
        return None
    vendor, dtype, product, major, minor, status, serial, n = IDENTITY.unpack_from(b, pos)
    name_at = pos + IDENTITY.size
    name = b[name_at : name_at + n].decode("latin-1") if name_at + n <= end else None
    return {1: vendor, 2: dtype, 3: product, 4: (major, minor), 5: status, 6: serial, 7: name}


def identity_reply(b: bytes, data: int, end: int, service: int, attribute_id: int | None,
                   attribute_list: list[int] | None) -> Identity | None:  # fmt: skip
    """Identity object attributes read directly from the device: an Identity record for the sender, if any."""
    attrs: dict[int, Attribute] | None = None
    if service == 0x01:  # Get_Attributes_All: attributes 1-7 in order
        attrs = identity_attributes(b, data, end)
    elif service == 0x0E and attribute_id is not None:
        value = _attribute(b, data, end, attribute_id)
        if value is not None:
            attrs = {attribute_id: value[0]}
    elif service == 0x03 and attribute_list and data + 2 <= end:
        attrs = _attribute_list(b, data, end, attribute_list)
    fields = identity_fields(attrs) if attrs else None
    return Identity("cip", fields) if fields else None


def _attribute_list(b: bytes, data: int, end: int, asked: list[int]) -> dict[int, Attribute]:
    """A Get_Attribute_List reply: count, then (id, status, value) each; stops where a value's size is unknown."""
    attrs: dict[int, Attribute] = {}
    pos = data + 2
    for _ in range(min(_U16.unpack_from(b, data)[0], len(asked))):
        if pos + 4 > end:
            break
        attr, status = _ATTRIBUTE.unpack_from(b, pos)
        pos += 4
        if status:
            break  # no value follows a failed attribute: its size is unknown
        value = _attribute(b, pos, end, attr)
        if value is None:
            break
        attrs[attr] = value[0]
        pos += value[1]
    return attrs


def _attribute(b: bytes, pos: int, end: int, attr: int) -> tuple[Attribute, int] | None:
    """(value, size) of Identity attribute 1-7 at b[pos], or None when unknown or truncated."""
    if attr in (1, 2, 3, 5):
        return (_U16.unpack_from(b, pos)[0], 2) if pos + 2 <= end else None
    if attr == 4:
        return ((b[pos], b[pos + 1]), 2) if pos + 2 <= end else None
    if attr == 6:
        return (_U32.unpack_from(b, pos)[0], 4) if pos + 4 <= end else None
    if attr == 7 and pos < end:
        n = b[pos]
        return (b[pos + 1 : pos + 1 + n].decode("latin-1"), 1 + n) if pos + 1 + n <= end else None
    return None
