"""The S7comm dissector: ISO-on-TCP on TCP 102, carrying S7comm (0x32) or S7comm-plus (0x72).

One dissector per flow frames TPKT, records the COTP connection set-up (CR/CC with
their TSAPs) and tear-down, reassembles COTP DT data units up to the one with the
EOT bit, and dispatches the S7 PDU on its protocol id to the S7comm or the S7comm-plus
decoder, which share the flow's Session. A flow that carries S7comm-plus is renamed
``s7comm_plus``.
"""

from __future__ import annotations

from typing import ClassVar

from ..base import Anomaly, FramedStream, Record
from ..bulk import BulkRows, PduBatch
from . import cotp
from .bulk import decode
from .classic import S7Classic
from .consts import DT, MAX_REASSEMBLY
from .s7plus import S7Plus
from .session import Session


class S7comm(FramedStream):
    """TPKT/COTP on TCP 102 carrying S7comm (0x32) or S7comm-plus (0x72)."""

    name = "s7comm"  # the instance becomes "s7comm_plus" once it sees S7comm-plus
    app_protocols: ClassVar[tuple[str, ...]] = ("s7comm_plus",)
    ports: ClassVar[frozenset[int]] = frozenset({102})
    header_len: ClassVar[int] = cotp.FRAME.size  # TPKT (4) + COTP length indicator and TPDU code
    header_magic: ClassVar[tuple[int, bytes]] = (0, b"\x03\x00")  # TPKT version 3, reserved 0
    probe = staticmethod(cotp.probe)
    pdu_lengths = staticmethod(cotp.pdu_lengths)

    def __init__(self) -> None:
        super().__init__()
        self.dt: dict[bool, bytearray] = {True: bytearray(), False: bytearray()}  # COTP DT units until EOT
        self.dt_dropping: dict[bool, bool] = {True: False, False: False}  # DT units after an overflow, up to EOT
        self.unknown_payload = False
        self.session = Session()
        self.classic = S7Classic(self.session)
        self.plus = S7Plus(self.session)

    def pdu_length(self, buf: bytes | bytearray, pos: int, from_orig: bool, strict: bool) -> int:
        return cotp.pdu_length(buf, pos, strict)

    def gap(self, from_orig: bool) -> list[Record]:
        self.dt[from_orig].clear()
        self.dt_dropping[from_orig] = False
        self.classic.gap(from_orig)
        self.plus.gap(from_orig)
        return super().gap(from_orig)

    def parse(self, pdu: bytes, from_orig: bool) -> list[Record]:
        out: list[Record] = []
        off, end = cotp.TPKT.size, len(pdu)
        while off < end:  # several TPDUs may be concatenated; a DT is always the last
            li = pdu[off]
            if li < 1 or off + 1 + li > end:
                out.append(
                    Anomaly("cotp", "bad_header", f"COTP length indicator {li} runs past the TPKT ({end} bytes)")
                )
                if li >= 1 and off + 1 < end and pdu[off + 1] >> 4 != DT:  # a cut CR, CC, DR...: what is there
                    out.extend(cotp.tpdu(pdu, off, li, pdu[off + 1] >> 4))
                break
            code = pdu[off + 1] >> 4
            if code == DT:
                if li < 2:
                    out.append(Anomaly("cotp", "bad_header", f"COTP DT with length indicator {li}"))
                    break
                out.extend(self._dt(pdu[off + 1 + li :], pdu[off + 2] & 0x80, from_orig))
                break
            out.extend(cotp.tpdu(pdu, off, li, code))
            off += 1 + li
        return out

    def _dt(self, seg: bytes, eot: int, from_orig: bool) -> list[Record]:
        """A COTP data unit: the S7 PDU is complete at the unit with the EOT bit."""
        buf = self.dt[from_orig]
        if self.dt_dropping[from_orig]:  # the rest of a data unit too long to reassemble
            self.dt_dropping[from_orig] = not eot
            return []
        if not eot:
            if len(buf) + len(seg) > MAX_REASSEMBLY:
                head = bytes(buf + seg)
                buf.clear()
                self.dt_dropping[from_orig] = True
                return self._overflow(head, from_orig)
            buf += seg
            return []
        if buf:
            buf += seg
            seg = bytes(buf)
            buf.clear()
        return self._payload(seg, from_orig) if seg else []

    def _payload(self, pdu: bytes, from_orig: bool) -> list[Record]:
        """A whole S7 PDU, to the decoder of its protocol id."""
        first, from_client = pdu[0], from_orig == self.client_is_orig
        if first == 0x32:
            return self.classic.pdu(pdu, from_orig, from_client)
        if first == 0x72:
            self.name = "s7comm_plus"
            return self.plus.pdu(pdu, from_orig, from_client)
        if self.unknown_payload:
            return []
        self.unknown_payload = True  # once per flow: another ISO-on-TCP protocol (MMS, ...) is not an S7 error
        problem = f"COTP payload is neither S7comm (0x32) nor S7comm-plus (0x72): 0x{first:02x}"
        return [Anomaly("cotp", "bad_header", problem)]

    def _overflow(self, head: bytes, from_orig: bool) -> list[Record]:
        """A PDU too long to reassemble: the S7 header and function were in its first units, so its operation
        is recorded from them (its lengths run past what is kept: a bad_header anomaly), and size cannot hide it."""
        problem = f"over {MAX_REASSEMBLY} bytes of COTP DT without EOT; the rest up to EOT dropped"
        out: list[Record] = [Anomaly("cotp", "buffer_overflow", problem)]
        from_client = from_orig == self.client_is_orig
        if head[:1] == b"\x32":
            out.extend(self.classic.pdu(head, from_orig, from_client))
        elif head[:1] == b"\x72":
            out.extend(self.plus.head(head, from_orig, from_client))
        return out

    # ------------------------------------------------------------ bulk (dissectors/bulk.py)
    def idle(self, from_orig: bool) -> bool:
        """No open job, no COTP DT unit held, and the answering side already reported as the PLC: a unit of
        ``bulk`` then parses as on a fresh flow, less the PLC role, and leaves the state as it found it."""
        held = self.dt[True] or self.dt[False] or self.dt_dropping[True] or self.dt_dropping[False]
        return not held and self.session.settled(not from_orig)

    @staticmethod
    def bulk(batch: PduBatch) -> BulkRows:
        """Read / Write Var jobs answered by their Ack_Data, each in one COTP DT unit (s7comm/bulk.py)."""
        return decode(batch, S7comm)
