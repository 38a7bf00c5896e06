"""CIP implicit (class 0/1) I/O on UDP 2222: one ``cip_io`` operation per datagram, a CPF item list."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pyarrow as pa

from ..base import REQUEST, RESPONSE, Anomaly, Dissector, Operation, Record
from ..bulk import BulkRows, Details, PduBatch, gather
from .consts import CONNECTED_ADDRESS, CONNECTED_DATA, SEQUENCED_ADDRESS
from .wire import CONNECTED, COUNT, ITEM, SEQUENCE_COUNT, SEQUENCED, cpf_items, prefixed

_FIRST = COUNT + ITEM  # what probe reads: the item count and the first item's header
# the class 1 datagram bulk decodes: two items, a Sequenced Address item, then Connected Data that starts with
# the CIP sequence count
_CLASS1 = COUNT + prefixed("address_", ITEM) + SEQUENCED + prefixed("data_", ITEM) + SEQUENCE_COUNT
_DATA = _CLASS1.offset["cip_sequence_count"]  # where the Connected Data item's data starts


class CipIO(Dissector):
    """CIP implicit (class 0/1) I/O on UDP 2222: one operation per datagram.

    Cyclic data exchange has no request or reply: ``direction`` is the flow side
    (request: from the client side, normally the originator), and the access class is ``other``."""

    name = "cip_io"
    transports: ClassVar[frozenset[str]] = frozenset({"udp"})
    ports: ClassVar[frozenset[int]] = frozenset({2222})
    datagram_is_pdu: ClassVar[bool] = True  # datagram() is parse(): the columnar path hands datagrams over as PDUs

    @classmethod
    def probe(cls, payload: bytes, by_port: bool) -> bool:
        if len(payload) < _FIRST.size:
            return False
        count, type_id, length = _FIRST.unpack_from(payload)
        address = (type_id == SEQUENCED_ADDRESS and length == SEQUENCED.size) or (
            type_id == CONNECTED_ADDRESS and length == CONNECTED.size
        )
        return 1 <= count <= 4 and address

    def feed(self, data: bytes, from_orig: bool) -> list[Record]:
        return self.parse(data, from_orig)

    def datagram(self, data: bytes, from_orig: bool) -> list[Record]:
        return self.parse(data, from_orig)

    def parse(self, data: bytes, from_orig: bool) -> list[Record]:
        """One datagram: the unit of CIP I/O."""
        items, problem = cpf_items(data, 0, len(data), False)  # cyclic data cut short: nothing but the anomaly
        out: list[Record] = []
        if problem:
            out.append(Anomaly("cip_io", "malformed_pdu", problem))
        details: dict = {}
        found = False
        for type_id, pos, n in items:
            if type_id == SEQUENCED_ADDRESS and n >= SEQUENCED.size:
                cid, seq = SEQUENCED.unpack_from(data, pos)
                details["connection_id"] = f"0x{cid:08x}"
                details["sequence_number"] = seq
            elif type_id == CONNECTED_ADDRESS and n >= CONNECTED.size:
                details["connection_id"] = f"0x{CONNECTED.unpack_from(data, pos)[0]:08x}"
            elif type_id == CONNECTED_DATA:
                found = True
                details["data_length"] = n
                if (
                    n >= SEQUENCE_COUNT.size
                ):  # class 1 connections start with a CIP sequence count (class 0 ones do not)
                    details["cip_sequence_count"] = SEQUENCE_COUNT.unpack_from(data, pos)[0]
        if "connection_id" not in details or not found:
            if not problem:
                out.append(Anomaly("cip_io", "malformed_pdu", f"no address and data item in {len(data)} bytes"))
            return out
        target = f"connection {details['connection_id']}"
        direction = REQUEST if from_orig == self.client_is_orig else RESPONSE
        out.append(Operation("cip_io", direction, None, "IO_DATA", "other", target=target,
                             details=details))  # fmt: skip
        return out

    def idle(self, from_orig: bool) -> bool:
        """``parse`` keeps no state: every datagram stands alone."""
        return True

    @staticmethod
    def bulk(batch: PduBatch) -> BulkRows:
        """The class 1 datagram: two items, a Sequenced Address item (connection id, sequence number), then a
        Connected Data item that starts with the CIP sequence count; bytes after the items are ignored, as by parse.
        Text is built from bytes: the hex connection id at a fixed width; every details value is the row's own."""
        n = len(batch.start)
        pdus = np.flatnonzero(batch.length >= _CLASS1.size)
        if not len(pdus):
            return BulkRows.none(n)
        h = gather(batch.data, batch.start[pdus], _CLASS1.size).view(_CLASS1.dtype)
        size = h["data_length"].astype(np.int64)
        shape = (
            (h["item_count"] == 2) & (h["address_type_id"] == SEQUENCED_ADDRESS) & (h["data_type_id"] == CONNECTED_DATA)
        )
        shape &= h["address_length"] == SEQUENCED.size
        keep = shape & (size >= SEQUENCE_COUNT.size) & (_DATA + size <= batch.length[pdus])
        pdus, h = pdus[keep], h[keep]
        unit = np.full(n, -1, np.int64)
        unit[pdus] = pdus
        m = len(pdus)

        def text(*parts: bytes | np.ndarray) -> pa.Array:
            """Fixed-width strings: byte strings (the same in every row) and (m, k) arrays of characters."""
            cells = np.hstack([np.broadcast_to(np.frombuffer(p, np.uint8), (m, len(p))) if isinstance(p, bytes) else p
                               for p in parts])  # fmt: skip
            width = cells.shape[1]
            offsets = np.arange(0, width * (m + 1), width, dtype=np.int32)
            return pa.StringArray.from_buffers(m, pa.py_buffer(offsets), pa.py_buffer(np.ascontiguousarray(cells)))

        connection = h["connection_id"]
        hex_id = np.frombuffer(b"0123456789abcdef", np.uint8)[connection[:, None] >> np.arange(28, -4, -4) & 0xF]
        client = np.fromiter((d.client_is_orig for d in batch.dissectors), bool, len(batch.dissectors))
        response = batch.from_orig[pdus] != client[batch.flow[pdus]]
        values = {"connection_id": text(b"0x", hex_id)}
        values |= {k: pa.array(h[k]) for k in ("sequence_number", "data_length", "cip_sequence_count")}
        ints = pa.nulls(m, pa.int32())
        columns = {
            "protocol": pa.repeat(pa.scalar("cip_io", pa.string()), m),
            "direction": pa.array([REQUEST, RESPONSE], pa.string()).take(pa.array(response.astype(np.int8))),
            "function_code": ints,
            "function_name": pa.repeat(pa.scalar("IO_DATA", pa.string()), m),
            "access_class": pa.repeat(pa.scalar("other", pa.string()), m),
            "status": pa.nulls(m, pa.string()),
            "transaction_id": ints,
            "unit_id": ints,
            "address": ints,
            "quantity": ints,
            "target": text(b"connection 0x", hex_id),
        }
        details = Details([dict.fromkeys(values)], np.zeros(m, np.int64), values)
        return BulkRows(unit, pdus, columns, details)
