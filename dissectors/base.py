"""The sans-IO contract every protocol dissector implements.

A dissector is a per-flow state machine: the sensor feeds it the bytes of one
direction of a stream (already reassembled, in order) or one datagram, and it
returns typed records. It never sees packets, frame numbers, sockets or the
database: the sensor stamps each record with the frame that completed it, and
with the flow and the side (originator or responder) that sent it.

Records:
- Operation: one PDU (one row per embedded service too), with its access class.
- Identity: what the sending device says about itself (vendor, product, serial),
  or the role it plays (dnp3_outstation); the sensor ties it to the sender's IP.
- Anomaly: bytes that do not make sense; evidence, never an exception.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, Protocol

import numpy as np

if TYPE_CHECKING:
    from .bulk import BulkRows, PduBatch

ACCESS_CLASSES = ("read", "write", "control", "program", "diagnostic", "session", "other")
REQUEST, RESPONSE = "request", "response"


@dataclass(slots=True)
class Operation:
    """One protocol PDU: what was asked or answered, and its access class."""

    protocol: str
    direction: str  # REQUEST or RESPONSE
    function_code: int | None
    function_name: str
    access_class: str
    status: str | None = None  # exception / error, None when the PDU reports success
    transaction_id: int | None = None
    unit_id: int | None = None
    address: int | None = None
    quantity: int | None = None
    target: str | None = None  # what it acts on, as a user would write it: "DB1.DBW4", "g12v1", "Tank1_Level"
    details: dict | None = None  # protocol-specific fields, named as in Zeek ICSNPP or Wireshark


# field names for Identity.fields, shared by all protocols (docs/schema.md, assets.identity)
IDENTITY_FIELDS = (
    "vendor", "vendor_id", "device_type", "product_code", "product_name", "revision", "serial_number",
    "order_number", "module_name", "system_name", "plant_id", "firmware", "hardware", "address",
)  # fmt: skip


@dataclass(slots=True)
class Identity:
    """What the device that sent this PDU says about itself, or the role it plays."""

    protocol: str
    fields: dict[str, str | int] = field(default_factory=dict)  # keys from IDENTITY_FIELDS
    role: str | None = None  # "dnp3_outstation", "s7_plc", ...


@dataclass(slots=True)
class Anomaly:
    """Something the dissector could not make sense of; kept as evidence."""

    protocol: str
    kind: str
    detail: str


Record = Operation | Identity | Anomaly


class BulkDecoder(Protocol):
    """A columnar decoder (dissectors/bulk.py). A Protocol, not a Callable: mypy would bind a Callable
    class attribute as a method, and ``Dissector.bulk`` is a staticmethod."""

    def __call__(self, batch: PduBatch, /) -> BulkRows: ...


class Dissector:
    """Base class: one instance per flow.

    Subclasses declare how they are found (transports, ports, ``probe``) and
    implement ``feed``; ``gap`` tells them bytes were lost so they can resync.
    """

    name: str  # class attribute; an instance may refine it (s7comm -> s7comm_plus)
    app_protocols: ClassVar[tuple[str, ...]] = ()  # the names an instance may refine ``name`` to
    transports: ClassVar[frozenset[str]] = frozenset({"tcp"})
    ports: ClassVar[frozenset[int]] = frozenset()
    heuristic: ClassVar[bool] = False  # also probe flows on other ports
    # (offset, bytes) found in every payload a heuristic probe accepts: lets the
    # columnar path skip payloads no heuristic could claim without calling probe
    magic: ClassVar[tuple[int, bytes] | None] = None
    # False when the protocol's server port is on the side that opened the
    # connection; protocols whose PDUs do not say request or response use it
    client_is_orig: bool = True
    # datagram() is parse() of the whole datagram (no framing): the columnar path may hand it datagrams as PDUs
    datagram_is_pdu: ClassVar[bool] = False
    # optional columnar decoder for the common PDU shapes (dissectors/bulk.py): a staticmethod
    bulk: ClassVar[BulkDecoder | None] = None

    @classmethod
    def probe(cls, payload: bytes, by_port: bool) -> bool:
        """Does this payload (an early one in the flow, either direction) look like
        this protocol? With ``by_port`` the port already vouches for it, so a
        short segment that is merely consistent with the protocol is enough."""
        raise NotImplementedError

    def feed(self, data: bytes, from_orig: bool) -> list[Record]:
        """Consume the next in-order bytes of one direction of a stream."""
        raise NotImplementedError

    def datagram(self, data: bytes, from_orig: bool) -> list[Record]:
        """Consume one whole datagram; a partial PDU never carries over to the next."""
        records = self.feed(data, from_orig)
        records.extend(self.gap(from_orig))
        return records

    def gap(self, from_orig: bool) -> list[Record]:
        """Bytes of this direction were lost: drop partial state and resync."""
        return []

    def idle(self, from_orig: bool) -> bool:
        """Would a bulk unit starting with a PDU from this side parse the same from
        here as from a fresh flow, and leave the state as it is? (dissectors/bulk.py)"""
        return False


@dataclass
class FramedStream(Dissector):
    """Buffering and framing for length-prefixed PDUs over a byte stream.

    Handles PDUs split across segments and several PDUs in one segment. After a
    gap or garbage, skips ahead to the next offset where ``pdu_length`` accepts
    a header, and reports an anomaly once for the skipped bytes.
    """

    max_buffer: ClassVar[int] = 1 << 16
    header_len: ClassVar[int]
    # while resyncing, a header at the first byte of a segment is judged as at the start of a stream (not strict):
    # senders start a PDU with a segment, so there the header alone is evidence enough, whatever its function code
    resync_at_segment: ClassVar[bool] = False
    # (offset, bytes) in every header pdu_length accepts: a scan for the next header jumps to where they are,
    # not one byte a turn (20 MB of garbage after a header took 7 s)
    header_magic: ClassVar[tuple[int, bytes] | None] = None
    buffers: dict[bool, bytearray] = field(default_factory=lambda: {True: bytearray(), False: bytearray()})
    resyncing: dict[bool, bool] = field(default_factory=lambda: {True: False, False: False})

    def pdu_length(self, buf: bytes | bytearray, pos: int, from_orig: bool, strict: bool) -> int:
        """Length of the PDU starting at buf[pos] (which holds a whole header),
        or -1 when the header there is not plausible. ``strict`` is set while
        resyncing, where a header found by scanning needs more evidence."""
        raise NotImplementedError

    def parse(self, pdu: bytes, from_orig: bool) -> list[Record]:
        raise NotImplementedError

    def feed(self, data: bytes, from_orig: bool) -> list[Record]:
        buf = self.buffers[from_orig]
        # the common case, one whole PDU in one segment: no buffering, no copy
        whole = not buf and len(data) >= self.header_len and not self.resyncing[from_orig]
        if whole and self.pdu_length(data, 0, from_orig, False) == len(data):
            return self.parse(data, from_orig)
        out: list[Record] = []
        for unit in self.split(data, from_orig):
            if isinstance(unit, bytes):
                out.extend(self.parse(unit, from_orig))
            else:
                out.append(unit)
        return out

    def split(self, data: bytes, from_orig: bool) -> list[bytes | Anomaly]:
        """Frame the next in-order bytes into whole PDUs, keeping a partial one for
        later; framing anomalies come in stream order. Framing reads no parse state,
        so framing first and parsing after is the same as interleaving them."""
        buf = self.buffers[from_orig]
        segment = len(buf) if self.resync_at_segment else -1  # where this segment's bytes start in buf
        buf += data
        out: list[bytes | Anomaly] = []
        pos = 0
        hlen = self.header_len
        while len(buf) - pos >= hlen:
            n = self.pdu_length(buf, pos, from_orig, self.resyncing[from_orig] and pos != segment)
            if n < 0:
                if not self.resyncing[from_orig]:
                    self.resyncing[from_orig] = True
                    out.append(
                        Anomaly(
                            self.name,
                            "bad_header",
                            f"implausible {self.name} header: {bytes(buf[pos : pos + hlen]).hex()}",
                        )
                    )
                pos = self._next_candidate(buf, pos)
                continue
            if len(buf) - pos < n:
                break
            self.resyncing[from_orig] = False
            out.append(bytes(buf[pos : pos + n]))
            pos += n
        del buf[:pos]
        if len(buf) > self.max_buffer:
            out.append(Anomaly(self.name, "buffer_overflow", f"{len(buf)} bytes without a complete PDU; dropped"))
            buf.clear()
        return out

    def _next_candidate(self, buf: bytearray, pos: int) -> int:
        """The next offset after ``pos`` where a header could start: where header_magic is next, or where
        it could begin in bytes still to come (the scan stops there until they do)."""
        if self.header_magic is None:
            return pos + 1
        at, magic = self.header_magic
        found = buf.find(magic, pos + 1 + at)
        return found - at if found >= 0 else max(pos + 1, len(buf) - at - len(magic) + 1)

    def datagram(self, data: bytes, from_orig: bool) -> list[Record]:
        """Frame one datagram on its own: it starts with a header (so garbage is
        reported), and a PDU cut by its end is reported, never carried over."""
        buf = self.buffers[from_orig]
        buf.clear()
        self.resyncing[from_orig] = False
        out = self.feed(data, from_orig)
        if buf:
            out.append(Anomaly(self.name, "truncated_pdu", f"datagram ends {len(buf)} bytes into a {self.name} PDU"))
            buf.clear()
        return out

    def gap(self, from_orig: bool) -> list[Record]:
        self.buffers[from_orig].clear()
        self.resyncing[from_orig] = True  # the next bytes may start mid-PDU: skip quietly
        return []

    def mid_pdu(self, from_orig: bool) -> bool:
        """Does a side's next byte continue something, a partial PDU held or a resync, rather than start a PDU?"""
        return bool(self.buffers[from_orig]) or self.resyncing[from_orig]

    def held(self, from_orig: bool) -> bytes | None:
        """The partial PDU a side holds (None while it resyncs)."""
        return None if self.resyncing[from_orig] else bytes(self.buffers[from_orig])

    def hold(self, from_orig: bool, partial: bytes) -> None:
        """Bytes framed elsewhere in bulk (the columnar path) as ``split`` would have framed them, at a PDU
        boundary: the side now holds ``partial``, the start of its next PDU."""
        self.buffers[from_orig][:] = partial


class Registry:
    """Finds the dissector that claims a flow: by port first, then by heuristics."""

    def __init__(self, dissectors: list[type[Dissector]]):
        self.dissectors = dissectors
        self.by_port: dict[tuple[str, int], list[type[Dissector]]] = {}
        for d in dissectors:
            for t in d.transports:
                for p in d.ports:
                    self.by_port.setdefault((t, p), []).append(d)
        self.heuristics = [d for d in dissectors if d.heuristic]

    def claim(self, transport: str, resp_port: int, orig_port: int, payload: bytes) -> Dissector | None:
        """A dissector instance for the flow, or None. The server port is looked
        for on the responder first, then on the originator: a device that opens
        connections from its well-known port is still the server of the protocol."""
        for port, client_is_orig in ((resp_port, True), (orig_port, False)):
            for d in self.by_port.get((transport, port), ()):
                if d.probe(payload, True):
                    dissector = d()
                    dissector.client_is_orig = client_is_orig
                    return dissector
        for d in self.heuristics:
            if transport in d.transports and d.probe(payload, False):
                return d()
        return None

    def might_claim(self, transport: str, resp_port: np.ndarray, orig_port: np.ndarray, data: np.ndarray,
                    start: np.ndarray, length: np.ndarray) -> np.ndarray:  # fmt: skip
        """``claim`` for many payloads at once, loosely: False only where it would
        surely return None (no dissector on either port, no heuristic's magic)."""
        ports = [p for t, p in self.by_port if t == transport]
        maybe = np.isin(resp_port, ports) | np.isin(orig_port, ports)
        last = len(data) - 1
        for d in self.heuristics:
            if transport not in d.transports:
                continue
            if d.magic is None:
                return np.ones(len(start), bool)
            offset, magic = d.magic
            hit = length >= offset + len(magic)
            for k, byte in enumerate(magic):
                hit &= data[np.minimum(start + offset + k, last)] == byte
            maybe |= hit
        return maybe
