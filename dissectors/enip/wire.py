"""EtherNet/IP wire layouts, each declared once for parse and for the bulk decoders, and the CPF item list.

Every encapsulation PDU is HEADER and ``length`` bytes of data; SendRRData and SendUnitData data is SEND_DATA
and then a Common Packet Format item list (an item count, then items of ITEM and ``length`` bytes), which is
also the whole of a CIP implicit I/O datagram.
"""

from __future__ import annotations

from ..layout import Layout

HEADER = Layout("<", ("command", "H"), ("length", "H"), ("session_handle", "I"), ("status", "I"),
                ("sender_context", "8s"), ("options", "I"))  # fmt: skip
SEND_DATA = Layout("<", ("interface_handle", "I"), ("timeout", "H"))
COUNT = Layout("<", ("item_count", "H"))
ITEM = Layout("<", ("type_id", "H"), ("length", "H"))
SEQUENCED = Layout("<", ("connection_id", "I"), ("sequence_number", "I"))  # a Sequenced Address item's data
CONNECTED = Layout("<", ("connection_id", "I"))  # a Connected Address item's data (and a Sequenced one's start)
SEQUENCE_COUNT = Layout("<", ("cip_sequence_count", "H"))  # the start of a Connected Data item (class 1 and 3)
REGISTER = Layout("<", ("protocol_version", "H"), ("options_flags", "H"))  # RegisterSession data
LIST_SERVICE = Layout("<", ("version", "H"), ("capability_flags", "H"), ("name", "16s"))  # a ListServices item
# a ListIdentity CIP Identity item up to the Identity attributes (dissectors/cip/identity.py's IDENTITY): the
# encapsulation version, then a sockaddr_in whose port is big endian
SOCKADDR = Layout("<", ("encapsulation_version", "H"), (None, "2x"), ("sin_port", "H"), ("sin_addr", "4s"),
                  (None, "8x"))  # fmt: skip
MAX_ITEMS = 32  # items decoded in one list


def cpf_items(b: bytes, pos: int, end: int, keep_cut: bool = True) -> tuple[list[tuple[int, int, int]], str | None]:
    """Common Packet Format: [(type id, data offset, length)], and what is wrong with it, if anything. With
    ``keep_cut``, an item that runs past the end is kept with the bytes that are there."""
    if pos + COUNT.size > end:
        return [], "no item count"
    count = COUNT.unpack_from(b, pos)[0]
    pos += COUNT.size
    items: list[tuple[int, int, int]] = []
    for i in range(min(count, MAX_ITEMS)):
        if pos + ITEM.size > end:
            return items, f"item {i + 1} of {count} missing"
        type_id, length = ITEM.unpack_from(b, pos)
        pos += ITEM.size
        if pos + length > end:  # cut: the item is kept with what is there, so its message header is still read
            if keep_cut:
                items.append((type_id, pos, end - pos))
            return items, f"item {i + 1} (type 0x{type_id:04x}) claims {length} bytes, {end - pos} left"
        items.append((type_id, pos, length))
        pos += length
    if count > MAX_ITEMS:
        return items, f"{count} items, only {MAX_ITEMS} decoded"
    return items, None


def prefixed(prefix: str, layout: Layout) -> Layout:
    """``layout`` with its field names prefixed: for one layout twice in a bulk decoder's prefix (two CPF items)."""
    return Layout(layout.order, *((name and prefix + name, code) for name, code in layout.fields))
