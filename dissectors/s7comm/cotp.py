"""ISO-on-TCP framing (RFC 1006 TPKT, ISO 8073 COTP class 0) and the COTP TPDUs other than DT.

The framing checks read the TPKT and the COTP length indicator and TPDU code, one header by
``struct`` (``pdu_length``) or a batch of them through numpy (``pdu_lengths``), from one layout.
"""

from __future__ import annotations

import numpy as np

from ..base import REQUEST, Anomaly, Operation, Record
from ..bulk import gather
from ..layout import Layout
from .consts import COTP_TPDUS, DT, IS_TPDU, TPDU_SIZES, TSAP_CONNECTION_TYPES

TPKT = Layout("!", ("version", "B"), ("reserved", "B"), ("length", "H"))
COTP = Layout("!", ("length_indicator", "B"), ("tpdu_code", "B"))  # the code is the high nibble
FRAME = TPKT + COTP  # what framing reads: FramedStream.header_len
DT_HEADER = COTP + Layout("!", ("eot_number", "B"))  # class 0 DT: 02 f0, then the EOT bit and the TPDU number
DT_LEN = (TPKT + DT_HEADER).size  # bytes before the S7 PDU in a TPKT of one DT unit
_REF = Layout("!", ("reference", "H"))


def probe(payload: bytes, by_port: bool) -> bool:
    """Does a flow's first payload start like a TPKT holding a known COTP TPDU?"""
    if len(payload) < FRAME.size:  # the start of a split TPKT header: judge what is there
        return by_port and payload[:1] == b"\x03" and payload[1:2] in (b"", b"\0")
    version, reserved, length, li, code = FRAME.unpack_from(payload)
    code >>= 4
    # on port 102 a connection TPDU cut short (its length indicator past the TPKT) is still the flow's start
    fits = li < length - 4 or (by_port and code != DT)
    return version == 3 and reserved == 0 and length >= 7 and li >= 2 and fits and code in COTP_TPDUS


def pdu_lengths(data: np.ndarray, start: np.ndarray, length: np.ndarray) -> np.ndarray:
    """pdu_length (not strict) at many starts at once: -1 where it would be, or where fewer than
    FRAME.size bytes are there."""
    h = gather(data, start, FRAME.size).view(FRAME.dtype)
    tpkt, li = h["length"].astype(np.int64), h["length_indicator"].astype(np.int64)
    code = h["tpdu_code"] >> 4
    ok = (length >= FRAME.size) & (h["version"] == 3) & (h["reserved"] == 0) & (tpkt >= 7) & (li >= 2)
    ok &= ((li <= tpkt - 5) | (code != DT)) & IS_TPDU[code]
    return np.where(ok, tpkt, -1)


def pdu_length(buf: bytes | bytearray, pos: int, strict: bool) -> int:
    """The TPKT length of the header at buf[pos], or -1 when it is not plausible (``strict``: found by scanning)."""
    version, reserved, length, li, tpdu = FRAME.unpack_from(buf, pos)
    if version != 3 or reserved != 0 or length < 7:
        return -1
    code = tpdu >> 4
    if li < 2 or code not in COTP_TPDUS or (li > length - 5 and (strict or code == DT)):
        return -1  # a connection TPDU cut short is a PDU (parse keeps what it holds), unless found by scanning
    if strict and code == DT and (li != 2 or tpdu != 0xF0):
        return -1  # class 0 DT, the only one ISO-on-TCP uses: a scanned header needs to be exactly that
    return length


def tpdu(pdu: bytes, off: int, li: int, code: int) -> list[Record]:
    """A COTP TPDU other than DT: connection set-up and tear-down, errors. A unit cut short (its length
    indicator runs past the TPKT) keeps the fields it holds."""
    name, direction, access = COTP_TPDUS.get(code, (f"UNKNOWN_0x{code:x}", REQUEST, "other"))
    op = Operation("cotp", direction, code, name, access)
    details: dict = {"pdu_code": f"0x{code:02x}"}
    out: list[Record] = []
    end = min(off + 1 + li, len(pdu))
    held = end - off - 1  # bytes of the unit there are, from its TPDU code on
    if held >= 3:
        details["dst_ref"] = _REF.unpack_from(pdu, off + 2)[0]
    if held >= 5 and code in (0xE, 0xD, 0x8, 0xC):  # the TPDUs that carry a source reference
        details["src_ref"] = _REF.unpack_from(pdu, off + 4)[0]
    if code in (0xE, 0xD) and held >= 6:  # CR, CC: class and options, then parameters
        details["class"] = pdu[off + 6] >> 4
        out.extend(_parameters(pdu, off + 7, end, details))
        if "dst_tsap" in details:
            op.target = details["dst_tsap"]
    elif code == 0x8 and held >= 6:  # DR: reason
        details["reason"] = pdu[off + 6]
    elif code == 0x7 and held >= 4:  # ER: reject cause after the destination reference
        details["reject_cause"] = pdu[off + 4]
        op.status = f"TPDU error, cause {pdu[off + 4]}"
    op.details = details
    out.append(op)
    return out


def _parameters(pdu: bytes, p: int, end: int, details: dict) -> list[Record]:
    """The parameters of a CR or CC (TSAPs, TPDU size) into details; one that runs past the unit is an anomaly."""
    while p + 2 <= end:
        pcode, plen = pdu[p], pdu[p + 1]
        if p + 2 + plen > end:
            return [Anomaly("cotp", "bad_header", f"COTP parameter 0x{pcode:02x} of {plen} bytes runs past the unit")]
        value = pdu[p + 2 : p + 2 + plen]
        if pcode == 0xC1:
            details["src_tsap"] = tsap_text(value)
        elif pcode == 0xC2:
            details["dst_tsap"] = tsap_text(value)
            if len(value) == 2 and value[0] in TSAP_CONNECTION_TYPES:
                details["connection_type"] = TSAP_CONNECTION_TYPES[value[0]]
                details["rack"], details["slot"] = value[1] >> 5, value[1] & 0x1F
        elif pcode == 0xC0 and plen == 1:
            if value[0] in TPDU_SIZES:
                details["tpdu_size"] = TPDU_SIZES[value[0]]
            else:
                details["tpdu_size_code"] = value[0]
        p += 2 + plen
    return []


def tsap_text(value: bytes) -> str:
    """TSAP as tshark shows it: the text when it is all printable, else 0x and hex."""
    if len(value) > 2 and all(0x20 <= c < 0x7F for c in value):
        return value.decode("ascii")
    return "0x" + value.hex()
