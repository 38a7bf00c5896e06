"""The DNP3 flow: link frames (every CRC checked), transport reassembly, one Operation per application fragment."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..base import REQUEST, RESPONSE, Anomaly, FramedStream, Identity, Operation, Record
from ..bulk import gather
from .bulk import decode
from .consts import CONFIRM, FUNCTIONS, LINK_FUNCTIONS, RESPONSE_FC, UNSOLICITED_FC
from .crc import crc_dnp
from .link import FRAME_LENGTH, LINK, START, frame_length
from .objects import iin_names, parse_objects, target

MAX_FRAGMENT = 4096  # reassembled application fragment; IEEE 1815 devices use 2048 (the usual maximum) or less
MAX_PENDING = 256  # requests remembered to pair responses with
MAX_PARTIALS = 64  # link address pairs with a fragment in reassembly, per flow
MAX_ROLES = 256  # (side, role, address) facts reported per flow
_U16 = struct.Struct("<H")
_START = int.from_bytes(START, "little")


@dataclass(slots=True)
class _Partial:
    """An application fragment in transport reassembly."""

    seq: int  # the next expected transport sequence number
    buf: bytearray  # the fragment so far
    segments: int  # transport segments in it


class DNP3(FramedStream):
    """One flow of DNP3 over TCP (a stream of link frames) or UDP (datagrams of link frames)."""

    name = "dnp3"
    transports: ClassVar[frozenset[str]] = frozenset({"tcp", "udp"})
    ports: ClassVar[frozenset[int]] = frozenset({20000})
    heuristic: ClassVar[bool] = True
    magic: ClassVar[tuple[int, bytes]] = (0, START)  # the link layer's start bytes
    header_len: ClassVar[int] = 10
    header_magic: ClassVar[tuple[int, bytes]] = (0, START)  # the link frame start

    def __init__(self) -> None:
        super().__init__()
        # (from_orig, src, dst) -> the fragment in reassembly; None: discarding to the next FIR
        self.segments: dict[tuple[bool, int, int], _Partial | None] = {}
        # (outstation, master, app seq) -> (request fc, access)
        self.pending: dict[tuple[int, int, int], tuple[int, str]] = {}
        self.roles: set[tuple[bool, str, int]] = set()

    bulk = staticmethod(decode)

    def idle(self, from_orig: bool) -> bool:
        """A bulk pair files its READ in ``pending`` and pops it for the RESPONSE, and pops its (side, addresses) from
        ``segments``: neutral when both are empty. Its roles are known by then (see knows_roles)."""
        return not self.pending and not self.segments

    @classmethod
    def probe(cls, payload: bytes, by_port: bool) -> bool:
        if len(payload) < 10:
            return by_port and (START[: len(payload)] == payload[:2]) and (len(payload) < 3 or payload[2] >= 5)
        if payload[0] == 0x05 and payload[1] == 0x64 and payload[2] >= 5:
            return by_port or crc_dnp(payload, 0, 8) == _U16.unpack_from(payload, 8)[0]
        if not by_port:
            return False
        # on the DNP3 port, a capture that starts mid-frame: a valid header further on will do
        i = payload.find(START)
        while 0 <= i <= len(payload) - 10:
            if payload[i + 2] >= 5 and crc_dnp(payload, i, i + 8) == _U16.unpack_from(payload, i + 8)[0]:
                return True
            i = payload.find(START, i + 1)
        return False

    @staticmethod
    def pdu_lengths(data: np.ndarray, start: np.ndarray, length: np.ndarray) -> np.ndarray:
        """pdu_length (not strict) at many starts at once: -1 where it would be, or
        where fewer than header_len bytes are there."""
        head = gather(data, start, LINK.size).view(LINK.dtype)
        ok = (length >= LINK.size) & (head["start"] == _START)
        return np.where(ok, FRAME_LENGTH[head["length"]], -1)

    def pdu_length(self, buf: bytes | bytearray, pos: int, from_orig: bool, strict: bool) -> int:
        if buf[pos] != 0x05 or buf[pos + 1] != 0x64 or buf[pos + 2] < 5:
            return -1
        if strict and crc_dnp(buf, pos, pos + 8) != _U16.unpack_from(buf, pos + 8)[0]:
            return -1
        return frame_length(buf[pos + 2])

    def datagram(self, data: bytes, from_orig: bool) -> list[Record]:
        """Link frames one after the other; garbage or a cut frame is reported, never carried over."""
        out: list[Record] = []
        pos, end = 0, len(data)
        while pos < end:
            if end - pos < 10 or data[pos] != 0x05 or data[pos + 1] != 0x64 or data[pos + 2] < 5:
                out.append(
                    Anomaly(
                        "dnp3",
                        "bad_header",
                        f"{end - pos} bytes in a datagram that are not a DNP3 link frame: {data[pos : pos + 10].hex()}",
                    )
                )
                break
            n = frame_length(data[pos + 2])
            if end - pos < n:
                out.append(
                    Anomaly(
                        "dnp3", "truncated", f"link frame of {n} bytes cut at {end - pos} by the end of the datagram"
                    )
                )
                break
            out.extend(self.parse(data[pos : pos + n], from_orig))
            pos += n
        return out

    def gap(self, from_orig: bool) -> list[Record]:
        for key in [k for k in self.segments if k[0] == from_orig]:
            del self.segments[key]
        return super().gap(from_orig)

    def knows_roles(self, from_orig: bool, master: int, outstation: int) -> bool:
        """Would parse report no role for a READ from ``master`` on side ``from_orig`` and the RESPONSE of
        ``outstation``? Both roles known, or no room for more: ``roles`` only grows, so a bulk batch can ask first."""
        roles = self.roles
        known = (from_orig, "dnp3_master", master) in roles and (not from_orig, "dnp3_outstation", outstation) in roles
        return known or len(roles) >= MAX_ROLES

    def _role(self, from_orig: bool, role: str, address: int) -> list[Record]:
        """The Identity of a (side, role, address) the first time it shows, up to MAX_ROLES of them."""
        if (from_orig, role, address) in self.roles or len(self.roles) >= MAX_ROLES:
            return []
        self.roles.add((from_orig, role, address))
        return [Identity("dnp3", {"address": address}, role)]

    # --- link layer ---
    def parse(self, pdu: bytes, from_orig: bool) -> list[Record]:
        _start, length, ctrl, dst, src, hcrc = LINK.unpack_from(pdu)
        if crc_dnp(pdu, 0, 8) != hcrc:
            return [self._bad_crc("header", length, ctrl, dst, src)]
        n = length - 5
        if n:
            pos, end = 10, len(pdu)
            chunks = []
            while pos < end:
                blk = min(16, end - pos - 2)
                if crc_dnp(pdu, pos, pos + blk) != _U16.unpack_from(pdu, pos + blk)[0]:
                    return [self._bad_crc(f"data block {(pos - 10) // 18}", length, ctrl, dst, src)]
                chunks.append(pdu[pos : pos + blk])
                pos += blk + 2
            user = b"".join(chunks)
        if not (ctrl & 0x40 and (ctrl & 0x0F) in (3, 4) and n):  # not PRM with CONFIRMED or UNCONFIRMED_USER_DATA
            return self._role(from_orig, "dnp3_master" if ctrl & 0x80 else "dnp3_outstation", src)  # the DIR bit
        return self._transport(user, (from_orig, src, dst), ctrl)

    @staticmethod
    def _bad_crc(where: str, length: int, ctrl: int, dst: int, src: int) -> Anomaly:
        func = LINK_FUNCTIONS.get((ctrl >> 6 & 1, ctrl & 0x0F), f"function {ctrl & 0x0F}")
        return Anomaly(
            "dnp3",
            "bad_crc",
            f"bad {where} CRC in link frame len={length} ctrl=0x{ctrl:02x} ({func}) src={src} dst={dst}; "
            "frame not used",
        )

    # --- transport layer ---
    def _transport(self, user: bytes, key: tuple[bool, int, int], ctrl: int) -> list[Record]:
        """A transport segment of ``key`` (side, source, destination): the application fragment once it is whole."""
        th = user[0]
        fin, fir, seq = th & 0x80, th & 0x40, th & 0x3F
        from_orig, src, dst = key
        if fir:
            return self._first_segment(user, key, ctrl, fin, seq)
        if key not in self.segments:
            if len(self.segments) < MAX_PARTIALS:
                self.segments[key] = None
            return [
                Anomaly(
                    "dnp3",
                    "transport_sequence",
                    f"{src}->{dst}: segment seq {seq} without a first segment; discarded up to the next one",
                )
            ]
        partial = self.segments[key]
        if partial is None:  # already discarding
            return []
        if seq != partial.seq:
            if seq == (partial.seq - 1) & 0x3F:
                return []  # a repeat of the previous segment (link-layer retry): ignored
            self.segments[key] = None
            return [
                Anomaly(
                    "dnp3",
                    "transport_sequence",
                    f"{src}->{dst}: segment seq {seq}, expected {partial.seq}; fragment discarded",
                )
            ]
        buf = partial.buf
        buf += user[1:]
        partial.segments += 1
        if len(buf) > MAX_FRAGMENT:
            self.segments[key] = None
            too_long = Anomaly(
                "dnp3",
                "too_long",
                f"{src}->{dst}: fragment reassembly over {MAX_FRAGMENT} bytes after {partial.segments} segments; "
                "the rest is discarded",
            )
            # the application header was in the first segment: the operation is recorded from what was reassembled,
            # so that a fragment made too long cannot hide it (docs/protocols/dnp3.md, damaged PDUs)
            return [too_long, *self.application(bytes(buf), src, dst, ctrl, from_orig, partial.segments, cut=True)]
        partial.seq = (seq + 1) & 0x3F
        if not fin:
            return []
        del self.segments[key]
        return self.application(bytes(buf), src, dst, ctrl, from_orig, partial.segments)

    def _first_segment(self, user: bytes, key: tuple[bool, int, int], ctrl: int, fin: int, seq: int) -> list[Record]:
        """A FIR segment: a whole fragment (FIN too), or the start of one, abandoning any unfinished one."""
        from_orig, src, dst = key
        out: list[Record] = []
        if self.segments.get(key):
            out.append(
                Anomaly(
                    "dnp3",
                    "transport_incomplete",
                    f"{src}->{dst}: a new first segment (seq {seq}) abandons an unfinished fragment",
                )
            )
        if fin:
            self.segments.pop(key, None)
            out.extend(self.application(user[1:], src, dst, ctrl, from_orig, 1))
            return out
        if len(self.segments) >= MAX_PARTIALS and key not in self.segments:
            self.segments.clear()
            out.append(
                Anomaly(
                    "dnp3",
                    "buffer_overflow",
                    f"fragments in reassembly for over {MAX_PARTIALS} link address pairs; dropped",
                )
            )
        self.segments[key] = _Partial((seq + 1) & 0x3F, bytearray(user[1:]), 1)
        return out

    # --- application layer ---
    def application(self, frag: bytes, src: int, dst: int, ctrl: int, from_orig: bool, segments: int,
                    cut: bool = False) -> list[Record]:  # fmt: skip
        """One Operation for an application fragment. ``cut``: only its first bytes were reassembled (too_long);
        the objects are walked as far as they go, and the walk stopping at the cut is no anomaly of its own."""
        if len(frag) < 2:
            return [Anomaly("dnp3", "truncated", f"{src}->{dst}: application fragment of {len(frag)} bytes")]
        ac, fc = frag[0], frag[1]
        response = fc >= 0x80
        entry = FUNCTIONS.get(fc)
        name, access = entry if entry is not None else (f"UNKNOWN_{fc}", "other")
        details: dict = {"src": src, "dst": dst}
        op = Operation("dnp3", RESPONSE if response else REQUEST, fc, name, access, transaction_id=ac & 0x0F,
                       unit_id=src if response else dst, details=details)  # fmt: skip
        if ac & 0x20:
            details["con"] = True
        if segments > 1:
            details["segments"] = segments
        if cut:
            details["too_long"] = True
        if not ac & 0x80 or not ac & 0x40:
            details["fir"], details["fin"] = bool(ac & 0x80), bool(ac & 0x40)
        if dst >= 0xFFFD:
            details["broadcast"] = True
        status: list[str] = []
        out = self._response(op, details, frag, status) if response else []
        if len(frag) > (4 if response else 2):
            out.extend(self._objects(op, details, frag, 4 if response else 2, status, cut))
        if not response and fc != CONFIRM and entry is not None:
            if len(self.pending) >= MAX_PENDING:
                self.pending.clear()
            self.pending[(dst, src, ac & 0x0F)] = (fc, op.access_class)
        if status:
            op.status = "|".join(status)
        out.append(op)
        if entry is not None:
            out.extend(self._role(from_orig, "dnp3_outstation" if response else "dnp3_master", src))
        return out

    def _response(self, op: Operation, details: dict, frag: bytes, status: list[str]) -> list[Record]:
        """A response's internal indications, and the request it answers: its access class is the request's.
        ``details`` is op's, src and dst already in."""
        ac, fc, src, dst = frag[0], frag[1], details["src"], details["dst"]
        out: list[Record] = []
        if len(frag) < 4:
            out.append(Anomaly("dnp3", "truncated", f"{src}->{dst}: {op.function_name} without internal indications"))
        else:
            details["iin"] = iin = frag[2] << 8 | frag[3]
            names, notable = iin_names(iin)
            if names:
                details["iin_flags"] = names
            if notable:
                status.append(notable)
        if fc == UNSOLICITED_FC or ac & 0x10:
            details["unsolicited"] = True
        if fc == RESPONSE_FC:
            req = self.pending.pop((src, dst, ac & 0x0F), None)
            if req is not None:
                details["fc_request"] = FUNCTIONS[req[0]][0]
                op.access_class = req[1]
                if not ac & 0x40:  # more fragments follow, each with the next sequence number
                    self.pending[(src, dst, (ac + 1) & 0x0F)] = req
        return out

    @staticmethod
    def _objects(op: Operation, details: dict, frag: bytes, pos: int, status: list[str], cut: bool) -> list[Record]:
        """The objects from ``pos``: what they say goes into ``op`` and its ``details``; a malformed_objects
        anomaly, unless ``cut``."""
        fc = frag[1]
        parsed = parse_objects(frag, pos, fc, fc >= 0x80)
        if fc == 0x01 or fc == 0x02:
            groups = {c >> 8 for c in parsed.codes}
            if 70 in groups:
                op.access_class = "program"  # file transfer: reading or writing g70 file transport objects
            elif groups == {120}:
                op.access_class = "session"  # secure authentication objects only
        if parsed.objects:
            details["objects"] = parsed.objects
            op.target = target(parsed)
            op.address, op.quantity = parsed.address, parsed.quantity
        if parsed.controls:
            details["controls"] = parsed.controls
        if parsed.file_name is not None:
            details["file_name"] = parsed.file_name
        if parsed.user_name is not None:
            details["user_name"] = parsed.user_name
        if parsed.incomplete or cut:
            details["objects_incomplete"] = True
        status.extend(parsed.status)
        if parsed.error is None or cut:
            return []
        return [
            Anomaly(
                "dnp3", "malformed_objects", f"{details['src']}->{details['dst']} {op.function_name}: {parsed.error}"
            )
        ]
