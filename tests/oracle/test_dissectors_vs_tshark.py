"""Every dissector against tshark on the whole shared corpus.

Per capture and protocol, PDUs are counted by (direction, function) on both sides
and must be equal. Where tshark is wrong, or where sorf sees what stock tshark
does not try, the difference is listed in KNOWN_DIFFERENCES with the reason, and
the test asserts exactly that difference: a fix on either side makes it fail.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import duckdb
import pytest

from tests.helpers.paths import SHARED, manifest
from tests.helpers.tshark import run


@dataclass(frozen=True)
class Spec:
    """How to count one protocol's PDUs in tshark and in sorf's operations table."""

    display_filter: str
    fields: tuple[str, ...]  # tshark fields, all occurrences per frame
    tshark_key: Callable[[dict[str, list[str]]], list[tuple]]  # one key per PDU in a frame
    sorf_sql: str  # SELECT of one key per PDU, for capture_id = ?


def _modbus(f: dict[str, list[str]]) -> list[tuple]:
    direction = "request" if f["tcp.dstport"][0] == "502" else "response"
    return [(direction, int(fc) & 0x7F) for fc in f["modbus.func_code"]]


def _dnp3(f: dict[str, list[str]]) -> list[tuple]:
    return [("response" if int(fc) >= 0x80 else "request", int(fc)) for fc in f["dnp3.al.func"]]


_S7_JOBS: dict[tuple, int] = {}  # (client, server, PDU reference) -> function of the last S7comm job


def _s7comm(f: dict[str, list[str]]) -> list[tuple]:
    """(direction, ROSCTR, function) per S7comm PDU; userdata as 0x07GGSS (function group, subfunction),
    Wireshark 4.0's 4-bit NC group 15 as sorf's 6-bit 0x3f; a bare Ack takes the function of its job."""
    src, dst = (f["ip.src"] or f["ipv6.src"])[0], (f["ip.dst"] or f["ipv6.dst"])[0]
    sport, dport = f["tcp.srcport"][0], f["tcp.dstport"][0]
    funcs, groups, subs, types, refs = (iter(f[k]) for k in (
        "s7comm.param.func", "s7comm.param.userdata.funcgroup", "s7comm.param.userdata.subfunc",
        "s7comm.param.userdata.type", "s7comm.header.pduref"))  # fmt: skip
    keys = []
    for rosctr in map(int, f["s7comm.header.rosctr"]):
        ref = next(refs, None)
        if rosctr == 7:
            group, sub, kind = int(next(groups)), int(next(subs)), int(next(types))
            group = 0x3F if group == 15 else group
            keys.append(("request" if kind in (4, 7) else "response", 7, 0x070000 | group << 8 | sub))
        elif rosctr == 1:
            func = int(next(funcs), 16)
            _S7_JOBS[(src, sport, dst, dport, ref)] = func
            keys.append(("request", 1, func))
        elif rosctr == 3:
            keys.append(("response", 3, int(next(funcs), 16)))
        else:
            keys.append(("response", rosctr, _S7_JOBS.get((dst, dport, src, sport, ref))))
    return keys


def _s7comm_plus(f: dict[str, list[str]]) -> list[tuple]:
    """(direction, function) per COTP DT payload that starts with 0x72 (tshark has no S7comm-plus
    dissector): the opcode gives the direction, notifications and keep-alives have no function."""
    keys = []
    for hexdata in f["data.data"]:
        b = bytes.fromhex(hexdata)
        if len(b) < 5 or b[0] != 0x72:
            continue
        if b[1] in (0xFE, 0xFF):
            keys.append(("request" if f["tcp.dstport"][0] == "102" else "response", None))
            continue
        off = 4 + (33 if b[1] == 3 and b[4] == 0x20 else 0)  # V3: digest length and digest first
        opcode = b[off] if off < len(b) else None
        func = int.from_bytes(b[off + 3 : off + 5], "big") if opcode in (0x31, 0x32, 0x02) else None
        keys.append(("request" if opcode == 0x31 else "response", func))
    return keys


def _enip(f: dict[str, list[str]]) -> list[tuple]:
    direction = "request" if "44818" in f["tcp.dstport"] + f["udp.dstport"] else "response"
    return [(direction, int(c, 16)) for c in f["enip.command"]]


def _cip(f: dict[str, list[str]]) -> list[tuple]:
    """(direction, service) per CIP message header tshark decodes (cip.service keeps the 0x80 reply bit);
    embedded Multiple Service Packet and Unconnected Send messages each have their own."""
    return [("response" if int(s, 16) & 0x80 else "request", int(s, 16) & 0x7F) for s in f["cip.service"]]


def _cip_io(f: dict[str, list[str]]) -> list[tuple]:
    return [(c,) for c in f["enip.cpf.sai.connid"] + f["enip.cpf.cai.connid"]]


PROTOCOLS: dict[str, Spec] = {
    "enip": Spec(
        "enip.command",
        ("tcp.dstport", "udp.dstport", "enip.command"),
        _enip,
        "SELECT direction, function_code FROM operations WHERE protocol = 'enip' AND capture_id = ?",
    ),
    "cip": Spec(
        "cip",
        ("cip.service",),
        _cip,
        "SELECT direction, function_code FROM operations WHERE protocol = 'cip' AND capture_id = ?",
    ),
    "cip_io": Spec(
        "cipio",
        ("enip.cpf.sai.connid", "enip.cpf.cai.connid"),
        _cip_io,
        "SELECT details->>'connection_id' FROM operations WHERE protocol = 'cip_io' AND capture_id = ?",
    ),
    "dnp3": Spec(
        "dnp3",
        ("dnp3.al.func",),
        _dnp3,
        "SELECT direction, function_code FROM operations WHERE protocol = 'dnp3' AND capture_id = ?",
    ),
    "modbus": Spec(
        "mbtcp && tcp.port == 502",
        ("tcp.dstport", "modbus.func_code"),
        _modbus,
        "SELECT direction, function_code FROM operations WHERE protocol = 'modbus' AND capture_id = ?",
    ),
    "s7comm": Spec(
        "s7comm",
        (
            "ip.src",
            "ipv6.src",
            "ip.dst",
            "ipv6.dst",
            "tcp.srcport",
            "tcp.dstport",
            "s7comm.header.rosctr",
            "s7comm.header.pduref",
            "s7comm.param.func",
            "s7comm.param.userdata.funcgroup",
            "s7comm.param.userdata.subfunc",
            "s7comm.param.userdata.type",
        ),
        _s7comm,
        "SELECT direction, CAST(details->>'rosctr' AS INTEGER), function_code FROM operations"
        " WHERE protocol = 's7comm' AND capture_id = ?",
    ),
    "s7comm_plus": Spec(
        "cotp && tcp.port == 102 && data",
        ("tcp.dstport", "data.data"),
        _s7comm_plus,
        "SELECT direction, function_code FROM operations WHERE protocol = 's7comm_plus' AND capture_id = ?",
    ),
}

# (capture, protocol) -> (reason, {key: sorf count - tshark count})
KNOWN_DIFFERENCES: dict[tuple[str, str], tuple[str, dict[tuple, int]]] = {
    ("s7comm/s7comm_clean.pcap", "s7comm"): (
        (
            "frames 398, 412, 1273, 1456, 1611, 1746, 2002, 2296, 2299, 2859, 3654 and 4060 carry Read Var Ack_Data"
            " whose first transmission the capture never saw (the client ACKs them in the frame before); tshark calls"
            " them spurious retransmissions and does not dissect them, sorf sees those bytes once and decodes them"
        ),
        {("response", 3, 0x04): 12},
    ),
    ("mixed/zeek_modbusBig.pcap", "s7comm_plus"): (
        (
            "38 S7comm-plus Explore responses span two COTP DT frames (frames 496+504, 516+524, 1214+1221, ...:"
            " the first fragment has no trailer, the second has its own 0x72 header); tshark has no S7comm-plus"
            " dissector, so the frame count sees two PDUs, the second read as a (response, no function) one; sorf"
            " reassembles one PDU"
        ),
        {("response", None): -38},
    ),
    ("s7comm_plus/S7-1200-Uploading-OB1-TIAV12.pcap", "s7comm_plus"): (
        (
            "the CreateObject request of frames 127-129 spans three S7comm-plus fragments (no trailer in 127 and 128);"
            " the frame count reads the two continuation frames as PDUs without a function, sorf reassembles one PDU"
        ),
        {("response", None): -2},
    ),
    ("dnp3/icsnpp_dnp3_example.pcap", "dnp3"): (
        (
            "tshark 4.0 does not reassemble a DNP3 transport sequence that wraps from 63 to 0 (responses completed in"
            " frames 18, 114, 210 and the unsolicited response in 810), and it merges the one-segment response in"
            " frame 311 (seq 0) with the stale, never completed fragment of frame 210 in another TCP connection"
            " ('conflicting data in fragment overlap'),"
            " decoding a Confirm that is not there; Zeek ICSNPP's dnp3.log has 364 RESPONSE and 4"
            " UNSOLICITED_RESPONSE rows, as sorf"
        ),
        {("response", 129): 4, ("response", 130): 1, ("request", 0): -1},
    ),
    ("mixed/zeek_modbusBig.pcap", "modbus"): (
        (
            "frame 3150: the client had ACKed the server's response before the capture saw it (frame 3149,"
            " 'ACKed segment that wasn't captured'); tshark calls 3150 a spurious retransmission and does not"
            " dissect it, sorf has never seen those bytes, so it reports the response once"
        ),
        {("response", 1): 1},
    ),
    ("modbus/quickdraw_modbus_test_data_part1.pcap", "modbus"): (
        (
            "frame 111's response (fc 42, MBAP length 5) is followed by 3 stray bytes in its segment; frame 113"
            " sends the same 14 bytes again at the next sequence number. tshark takes frame 113 as the rest of 111,"
            " sorf reports the stray bytes (bad_header) and resyncs at frame 113's MBAP header, which starts the"
            " segment"
        ),
        {("response", 42): 1},
    ),
    ("dnp3/suricata_dnp3-too-long-reassembly-request.pcap", "dnp3"): (
        (
            "the READ whose application fragment grows past 4096 bytes (17 segments, completed in frame 36) is recorded"
            " from the bytes reassembled, with a too_long anomaly; tshark never completes the reassembly and shows none"
        ),
        {("request", 1): 1},
    ),
    ("modbus/zeek_modbus_fuzz-72.pcap", "modbus"): (
        (
            "a fuzzed trace whose TCP sequence numbers jump at random (frame 2 is 3.8e9 ahead); tshark dissects each"
            " segment on its own, sorf delivers bytes in sequence order once and resyncs after gaps at a segment that"
            " starts with an MBAP header (whatever its function code): every request tshark shows is recorded"
            " (tests/hostile/test_known_headers.py), and also frame 7's (fc 34, after the 2 bytes frame 6's MBAP length"
            " leaves over; tshark takes frame 7 as the rest of frame 6). The server's side: sorf takes frame 2 (seq"
            " 3.8e9 ahead of the SYN) as where the stream starts, so it decodes frame 2 (tshark: out of order); it"
            " resumes at frame 5 (fc 32), whose bytes the client's ACKs vouch for"
        ),
        {("request", 34): 1, ("response", 28): 1},
    ),
}


def tshark_counts(path: str, spec: Spec) -> Counter:
    out = run(["-r", path, "-Y", spec.display_filter, "-T", "fields", "-E", "occurrence=a", "-E", "aggregator=|",
               *(x for f in spec.fields for x in ("-e", f))])  # fmt: skip
    counts: Counter = Counter()
    for line in out.splitlines():
        values = {name: v.split("|") if v else [] for name, v in zip(spec.fields, line.split("\t"), strict=True)}
        counts.update(spec.tshark_key(values))
    return counts


CASES = [(row["path"], proto) for row in manifest() for proto in PROTOCOLS]


@pytest.mark.parametrize(("capture", "protocol"), CASES)
def test_pdu_counts_equal_tshark(corpus_db, capture, protocol):
    spec = PROTOCOLS[protocol]
    path = str(SHARED / capture)
    with duckdb.connect(str(corpus_db), read_only=True) as con:
        (capture_id,) = con.execute("SELECT capture_id FROM captures WHERE path = ?", [path]).fetchone()
        ours = Counter(tuple(r) for r in con.execute(spec.sorf_sql, [capture_id]).fetchall())
    ref = tshark_counts(path, spec)
    diff = {k: ours[k] - ref[k] for k in ours.keys() | ref.keys() if ours[k] != ref[k]}
    _reason, expected = KNOWN_DIFFERENCES.get((capture, protocol), ("", {}))
    assert diff == expected
