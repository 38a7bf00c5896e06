"""A PDU whose body cannot be decoded still records what its header says (issue 12, section 3).

Real requests from the shared captures are cut byte by byte (every length from just after the bytes that name
the function to one short of the whole PDU, the framing length rewritten to match) or grown past a reassembly
limit. Each must still give its operation, with the function code, name and access class the whole PDU has, and
an anomaly. They go through parse() on a fresh dissector and through a pcap made in tmp_path, ingested on the
columnar path and packet by packet (which must agree). docs/protocols/*.md, "Damaged PDUs".
"""

from __future__ import annotations

import struct
from pathlib import Path

import duckdb
import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether
from scapy.packet import Raw
from scapy.utils import wrpcap

from dissectors import DNP3, Anomaly, EtherNetIP, ModbusTCP, Operation, S7comm
from dissectors.dnp3 import MAX_FRAGMENT
from dissectors.enip.wire import cpf_items
from dissectors.modbus import FUNCTIONS as MODBUS_FUNCTIONS
from dissectors.modbus import REQUEST_SIZES, RESPONSE_SIZES
from dissectors.s7comm import MAX_REASSEMBLY, S7P_DIGEST_LEN, S7P_FUNCTION_END, S7P_FUNCTIONS
from sensor.ingest import ingest_file
from sensor.reassembly import StreamDirection
from sensor.store import Store
from tests.helpers.bulk_harness import recorded_batch
from tests.helpers.dnp3 import frames
from tests.helpers.paths import SHARED
from tests.helpers.tshark import run

SERVER_PORTS = {ModbusTCP: 502, S7comm: 102, EtherNetIP: 44818, DNP3: 20000}


# --- helpers -------------------------------------------------------------------------------------------------------
def real_requests(path: Path, cls, monkeypatch, tmp_path, protocol: str,
                  direction: str = "request") -> list[tuple[bytes, bool, Operation]]:  # fmt: skip
    """(PDU, from_orig, its first request operation) for the first PDU of each distinct request function (or
    reply function, with ``direction``), as the stream path hands them to parse() while ingesting ``path``;
    the operation from a fresh dissector."""
    batch = recorded_batch(path, cls, monkeypatch, tmp_path)
    out, seen = [], set()
    for i in range(len(batch.start)):
        d = cls()
        d.client_is_orig = batch.dissectors[int(batch.flow[i])].client_is_orig
        pdu, from_orig = batch.pdu(i), bool(batch.from_orig[i])
        ops = [r for r in d.parse(pdu, from_orig) if isinstance(r, Operation) and r.protocol == protocol]
        if ops and ops[0].direction == direction and ops[0].function_code not in seen:
            seen.add(ops[0].function_code)
            out.append((pdu, from_orig, ops[0]))
    return out


def parsed(cls, pdu: bytes, from_orig: bool = True, protocol: str | None = None) -> tuple[list[Operation], list[str]]:
    d = cls()
    records = d.parse(pdu, from_orig)
    ops = [r for r in records if isinstance(r, Operation) and (protocol is None or r.protocol == protocol)]
    return ops, [r.kind for r in records if isinstance(r, Anomaly)]


def facts(op: Operation) -> tuple:
    return op.function_code, op.function_name, op.access_class


def write_stream(path: Path, port: int, segments: list[bytes], from_server: bool = False) -> Path:
    """One TCP connection (handshake, then ``segments`` from the client, or the server, each ACKed), one
    segment a frame."""
    c, s = "10.0.0.1", "10.0.0.2"
    eth = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
    seq, ack = 1000, 5000
    pkts = [eth / IP(src=c, dst=s) / TCP(sport=40000, dport=port, flags="S", seq=seq - 1),
            eth / IP(src=s, dst=c) / TCP(sport=port, dport=40000, flags="SA", seq=ack - 1, ack=seq),
            eth / IP(src=c, dst=s) / TCP(sport=40000, dport=port, flags="A", seq=seq, ack=ack)]  # fmt: skip
    for data in segments:
        if from_server:
            pkts.append(eth / IP(src=s, dst=c) / TCP(sport=port, dport=40000, flags="PA", seq=ack, ack=seq) / Raw(data))
            ack += len(data)
            pkts.append(eth / IP(src=c, dst=s) / TCP(sport=40000, dport=port, flags="A", seq=seq, ack=ack))
            continue
        pkts.append(eth / IP(src=c, dst=s) / TCP(sport=40000, dport=port, flags="PA", seq=seq, ack=ack) / Raw(data))
        seq += len(data)
        pkts.append(eth / IP(src=s, dst=c) / TCP(sport=port, dport=40000, flags="A", seq=ack, ack=seq))
    for i, p in enumerate(pkts):
        p.time = 1_700_000_000 + i / 1000
    wrpcap(str(path), pkts)
    return path


def ingested(pcap: Path, tmp_path: Path) -> tuple[list[tuple], list[tuple]]:
    """(operations, anomalies) of ``pcap`` by frame, the same on the columnar path and packet by packet."""
    tables = []
    for columnar in (True, False):
        db = tmp_path / f"{pcap.stem}-{columnar}.duckdb"
        store = Store(str(db))
        try:
            ingest_file(store, str(pcap), columnar=columnar)
        finally:
            store.close()
        with duckdb.connect(str(db), read_only=True) as con:
            ops = con.execute("SELECT frame, protocol, direction, function_code, function_name, access_class, details"
                              " FROM operations ORDER BY frame, function_code").fetchall()  # fmt: skip
            anomalies = con.execute("SELECT frame, protocol, kind FROM anomalies ORDER BY frame, kind").fetchall()
        tables.append((ops, anomalies))
    assert tables[0] == tables[1], "the columnar path and the packet path disagree"
    return tables[0]


def check_stream(tmp_path: Path, cls, protocol: str, cases: list[tuple[bytes, tuple]], name: str,
                 direction: str = "request") -> None:  # fmt: skip
    """Each PDU of ``cases`` as one segment of a connection (from the client, or for replies the server): its
    frame has an operation of ``protocol`` with the expected facts (code, name, access) and an anomaly, on
    both ingest paths."""
    pcap = write_stream(tmp_path / f"{name}.pcap", SERVER_PORTS[cls], [pdu for pdu, _ in cases],
                        from_server=direction == "response")  # fmt: skip
    ops, anomalies = ingested(pcap, tmp_path)
    for k, (pdu, want) in enumerate(cases):
        frame = 4 + 2 * k
        got = [(code, fname, access) for f, p, d, code, fname, access, _ in ops
               if f == frame and p == protocol and d == direction]  # fmt: skip
        assert want in got, f"frame {frame} ({pdu.hex()}): {want} not in {got}"
        assert any(f == frame for f, _, _ in anomalies), f"frame {frame} ({pdu.hex()}): no anomaly"


# --- Modbus --------------------------------------------------------------------------------------------------------
def modbus_cut(pdu: bytes, n: int) -> bytes:
    """The first n bytes of an ADU, with the MBAP length saying so."""
    return pdu[:4] + struct.pack("!H", n - 6) + pdu[6:n]


@pytest.mark.parametrize("capture", ["modbus/zeek_modbusSmall.pcap", "modbus/icsnpp_modbus_example.pcap"])
def test_modbus_request_cut_at_every_length(capture, monkeypatch, tmp_path):
    requests = [r for r in real_requests(SHARED / capture, ModbusTCP, monkeypatch, tmp_path, "modbus")
                if r[2].function_code in REQUEST_SIZES and r[2].function_code not in (8, 43, 90)]  # fmt: skip
    assert requests  # (sub-functions set the access class of 8, 43 and 90; 7, 11, 12 and 17 have no body)
    cases = []
    for pdu, _, op in requests:
        for n in range(8, len(pdu)):  # from the MBAP header and function code on
            cut = modbus_cut(pdu, n)
            ops, kinds = parsed(ModbusTCP, cut)
            assert [facts(o) for o in ops] == [facts(op)] and kinds == ["truncated_pdu"], (n, cut.hex())
            cases.append((cut, facts(op)))
    check_stream(tmp_path, ModbusTCP, "modbus", cases, "modbus-cut")


@pytest.mark.parametrize("capture", ["modbus/zeek_modbusSmall.pcap", "modbus/icsnpp_modbus_example.pcap"])
def test_modbus_reply_cut_at_every_length(capture, monkeypatch, tmp_path):
    """A reply cut short (its MBAP length rewritten to match) is still the reply's operation, with a
    `truncated_pdu` anomaly, as a cut request is; an exception reply is whole from its function code on."""
    replies = [r for r in real_requests(SHARED / capture, ModbusTCP, monkeypatch, tmp_path, "modbus", "response")
               if r[2].function_code in RESPONSE_SIZES and r[2].function_code not in (8, 43, 90)
               and not r[2].status]  # fmt: skip
    codes = {op.function_code for _, _, op in replies}  # (8, 43 and 90 take their access class from the request)
    assert len(codes) >= 2 and codes & {1, 2, 3, 4}, codes
    cases = []
    for pdu, from_orig, op in replies:
        assert ModbusTCP().parse(pdu, from_orig)[1:] == []  # whole, it has no anomaly
        for n in range(8, len(pdu)):  # from the MBAP header and function code on
            cut = modbus_cut(pdu, n)
            ops, kinds = parsed(ModbusTCP, cut, from_orig)
            assert [facts(o) for o in ops] == [facts(op)] and kinds == ["truncated_pdu"], (n, cut.hex())
            cases.append((cut, facts(op)))
    check_stream(tmp_path, ModbusTCP, "modbus", cases, "modbus-reply-cut", direction="response")


def test_modbus_undefined_function_after_a_gap_is_an_operation():
    d = ModbusTCP()
    real = bytes.fromhex("000000000006012100000000")  # zeek_modbus_fuzz-72.pcap frame 6's MBAP, fc 33: undefined
    assert [facts(o) for o in d.feed(real, True) if isinstance(o, Operation)] == [(33, "UNKNOWN_33", "other")]
    d.gap(True)
    ops = [o for o in d.feed(real[:7] + b"\x25" + real[8:], True) if isinstance(o, Operation)]
    assert [facts(o) for o in ops] == [(37, "UNKNOWN_37", "other")]
    d.gap(True)  # inside a segment, scanning still wants a function the length fits: 6 bytes of junk, then fc 3
    records = d.feed(b"\xaa" * 6 + bytes.fromhex("000000000006012200000000")
                     + bytes.fromhex("0001000000060103006b0003"), True)  # fmt: skip
    assert [facts(o) for o in records if isinstance(o, Operation)] == [(3, "READ_HOLDING_REGISTERS", "read")]


def test_modbus_fuzz_72_requests_frame_by_frame_against_tshark(tmp_path):
    """zeek_modbus_fuzz-72.pcap: requests with undefined function codes after gaps, each MBAP header valid. Every
    request tshark dissects is recorded on its frame with its code, on both ingest paths; sorf also records
    frame 7 (fc 34), which tshark takes as the rest of frame 6 (whose MBAP length leaves 2 bytes over). The
    server's side: frame 5's exception reply (fc 32), after the stray frame 2, as tshark (frame 2 is sorf's only)."""
    path = SHARED / "modbus/zeek_modbus_fuzz-72.pcap"
    out = run(["-r", str(path), "-Y", "modbus && tcp.dstport == 502", "-T", "fields", "-e", "frame.number",
               "-e", "modbus.func_code"])  # fmt: skip
    tshark = {(int(f), int(c)) for f, c in (line.split("\t") for line in out.splitlines())}
    assert {c for _, c in tshark} >= {33, 35, 36, 37, 46, 47, 50, 52}
    ops, _ = ingested(path, tmp_path)
    ours = {(f, code) for f, p, d, code, _, _, _ in ops if p == "modbus" and d == "request"}
    assert ours == tshark | {(7, 34)}
    assert all(access == "other" for f, p, d, code, _, access, _ in ops if code not in MODBUS_FUNCTIONS)
    replies = {(f, code) for f, p, d, code, _, _, _ in ops if p == "modbus" and d == "response"}
    assert replies == {(2, 28), (5, 32)}


def test_a_stray_segment_does_not_blind_a_direction():
    """zeek_modbus_fuzz-72.pcap frame 2: a segment far from the SYN sets where the server's stream starts. Later
    segments are far out of that window; once the peer's ACKs vouch for their bytes, the stream resumes there."""
    s = StreamDirection()
    assert s.push(3_000_000_000, b"stray", 1, 0) == [(b"stray", 1, 0)]
    assert s.push(5000, b"abc", 2, 0) == []  # out of window, and nothing says the stream is there
    s.acked(4990)  # the peer acknowledges bytes around 5000
    assert s.push(5003, b"def", 3, 0) == [(None, 3, 0), (b"def", 3, 0)]
    assert s.push(5006, b"ghi", 4, 0) == [(b"ghi", 4, 0)] and s.gaps == 1
    s.acked(5009)
    assert s.push(9_000_000, b"far", 5, 0) == []  # the ACKs agree with the stream: a far segment is still ignored


# --- DNP3 ----------------------------------------------------------------------------------------------------------
def dnp3_fragment(frame: bytes) -> bytes:
    """The application fragment of a one-segment link frame (CRCs and transport header dropped)."""
    user = b"".join(frame[p : min(p + 16, len(frame) - 2)] for p in range(10, len(frame), 18))
    assert user[0] & 0xC0 == 0xC0
    return user[1:]


def dnp3_requests(monkeypatch, tmp_path) -> list[tuple[bytes, Operation]]:
    """Real one-object requests (application fragments) with the operation of the whole fragment."""
    out = []
    for capture in ("dnp3/zeek_dnp3.pcap", "dnp3/zeek_dnp3_select_operate.pcap", "dnp3/dnp3_immediate_freeze.pcap"):
        batch = recorded_batch(SHARED / capture, DNP3, monkeypatch, tmp_path)
        seen = set()
        for i in range(len(batch.start)):
            frame = batch.pdu(i)
            ops, kinds = parsed(DNP3, frame, bool(batch.from_orig[i]))
            if not ops or ops[0].direction != "request" or kinds or len((ops[0].details or {}).get("objects", [])) != 1:
                continue
            if ops[0].function_code not in seen and frame[3] & 0x40 and dnp3_fragment(frame)[1] == ops[0].function_code:
                seen.add(ops[0].function_code)
                out.append((dnp3_fragment(frame), ops[0]))
    return out


def test_dnp3_request_cut_at_every_length(monkeypatch, tmp_path):
    requests = dnp3_requests(monkeypatch, tmp_path)
    assert {op.function_name for _, op in requests} >= {"READ", "WRITE", "SELECT", "OPERATE"}
    cases = []
    for frag, op in requests:
        src, dst = op.details["src"], op.details["dst"]
        for n in range(3, len(frag)):  # application header, then every cut inside the one object
            pdu = b"".join(frames(frag[:n], src, dst))
            ops, kinds = parsed(DNP3, pdu)
            assert [facts(o) for o in ops] == [facts(op)] and kinds == ["malformed_objects"], (n, pdu.hex())
            cases.append((pdu, facts(op)))
    check_stream(tmp_path, DNP3, "dnp3", cases, "dnp3-cut")


def test_dnp3_write_made_too_long_is_still_recorded(monkeypatch, tmp_path):
    """A real WRITE (one object) followed by copies of its object until the fragment is over MAX_FRAGMENT: the
    WRITE is recorded with its access class, the objects walked as far as reassembled, and too_long."""
    frag, op = next((f, o) for f, o in dnp3_requests(monkeypatch, tmp_path) if o.function_name == "WRITE")
    obj = frag[2:]
    big = frag + obj * (MAX_FRAGMENT // len(obj) + 2)
    parts = frames(big, op.details["src"], op.details["dst"])
    d = DNP3()
    records = [r for p in parts for r in d.feed(p, True)]
    ops = [r for r in records if isinstance(r, Operation)]
    assert [facts(o) for o in ops] == [(2, "WRITE", "write")]
    assert [r.kind for r in records if isinstance(r, Anomaly)] == ["too_long"]
    assert ops[0].details["too_long"] and ops[0].details["objects_incomplete"]
    assert ops[0].details["objects"][0] == op.details["objects"][0]  # the objects before the cut, as decoded
    ops_db, anomalies = ingested(write_stream(tmp_path / "dnp3-long.pcap", 20000, parts), tmp_path)
    assert [(code, name, access) for _, p, _, code, name, access, _ in ops_db if p == "dnp3"] == [(2, "WRITE", "write")]
    assert [k for _, p, k in anomalies if p == "dnp3"] == ["too_long"]


def test_dnp3_too_long_capture_records_the_read(tmp_path):
    ops, anomalies = ingested(SHARED / "dnp3/suricata_dnp3-too-long-reassembly-request.pcap", tmp_path)
    assert [(f, d, code, name) for f, p, d, code, name, _, _ in ops if p == "dnp3"] == [(36, "request", 1, "READ")]
    assert [(f, k) for f, p, k in anomalies if p == "dnp3"] == [(36, "too_long")]


# --- S7comm --------------------------------------------------------------------------------------------------------
def tpkt_cut(pdu: bytes, n: int) -> bytes:
    return pdu[:2] + struct.pack("!H", n) + pdu[4:n]


@pytest.mark.parametrize("capture", ["s7comm/s7comm_varservice_libnodavedemo.pcap",
                                     "s7comm/s7comm_downloading_block_db1.pcap",
                                     "s7comm/s7comm_reading_setting_plc_time.pcap"])  # fmt: skip
def test_s7comm_request_cut_at_every_length(capture, monkeypatch, tmp_path):
    requests = list(real_requests(SHARED / capture, S7comm, monkeypatch, tmp_path, "s7comm"))
    assert requests
    cases = []
    for pdu, from_orig, op in requests:
        assert pdu[7] == 0x32  # TPKT, COTP DT, S7 header
        # the function: the first parameter byte of a job, group and subfunction (bytes 5, 6) of userdata
        first = 7 + 10 + (7 if pdu[8] == 7 else 1)
        pi = op.function_name == "PLC_CONTROL"  # its access class comes from the PI service name, further on
        for n in range(first, len(pdu)):
            cut = tpkt_cut(pdu, n)
            ops, kinds = parsed(S7comm, cut, from_orig, "s7comm")
            assert len(ops) == 1 and "bad_header" in kinds, (n, cut.hex())
            assert facts(ops[0])[:2] == facts(op)[:2] and (pi or ops[0].access_class == op.access_class), (n, cut.hex())
            if not pi:
                cases.append((cut, facts(op)))
    check_stream(tmp_path, S7comm, "s7comm", cases, "s7-cut")


def s7plus_function_end(pdu: bytes) -> int:
    """Where the function of the S7comm-plus PDU in a one-DT TPKT ends: after its header, the digest of a V3
    PDU, and the opcode, reserved and function fields of the data part."""
    assert pdu[4:7] == b"\x02\xf0\x80" and pdu[7] == 0x72  # TPKT, COTP DT with EOT, S7comm-plus
    digest = 1 + S7P_DIGEST_LEN if pdu[8] == 3 and pdu[11] == S7P_DIGEST_LEN else 0
    return 7 + 4 + digest + S7P_FUNCTION_END


@pytest.mark.parametrize("capture", ["s7comm_plus/S7-1511_db2_var1_HMI.pcap",
                                     "s7comm_plus/S7-1200-Uploading-OB1-TIAV12.pcap",
                                     "s7comm_plus/icsnpp_s7comm_plus.pcap"])  # fmt: skip
def test_s7comm_plus_request_cut_at_every_length(capture, monkeypatch, tmp_path):
    """A request cut after its function (the TPKT length rewritten, the S7comm-plus data length left as sent) is
    the operation with its function and a `bad_header` anomaly. Its access class is the whole request's, or
    the function's own while the bytes that refine it (session and object ids) are cut off. Cut right after
    its data part it is a first fragment (no trailer), held for the rest: the one length not recorded."""
    requests = [r for r in real_requests(SHARED / capture, S7comm, monkeypatch, tmp_path, "s7comm_plus")
                if r[2].function_code is not None]  # fmt: skip
    assert len(requests) >= 3
    cases = []
    for pdu, from_orig, op in requests:
        fragment = 7 + 4 + struct.unpack_from("!H", pdu, 9)[0]  # the TPKT of a PDU that ends with its data part
        for n in range(s7plus_function_end(pdu), len(pdu)):
            cut = tpkt_cut(pdu, n)
            ops, kinds = parsed(S7comm, cut, from_orig, "s7comm_plus")
            if n == fragment:
                assert ops == [] and kinds == [], (n, cut.hex())
                continue
            assert len(ops) == 1 and "bad_header" in kinds, (n, cut.hex())
            assert facts(ops[0])[:2] == facts(op)[:2], (n, cut.hex())
            assert ops[0].access_class in (op.access_class, S7P_FUNCTIONS[op.function_code][1]), (n, cut.hex())
            cases.append((cut, facts(ops[0])))
    check_stream(tmp_path, S7comm, "s7comm_plus", cases, "s7plus-cut")


@pytest.mark.parametrize("capture", ["s7comm_plus/S7-1511_db2_var1_HMI.pcap", "s7comm_plus/icsnpp_s7comm_plus.pcap",
                                     "s7comm_plus/S7-1511-opc-request-all-types.pcap",
                                     "s7comm/s7comm_varservice_libnodavedemo.pcap"])  # fmt: skip
def test_cotp_connection_request_cut_at_every_length(capture, monkeypatch, tmp_path):
    """A COTP CR cut short (the TPKT length rewritten, its length indicator left running past it) is the
    CONNECTION_REQUEST with a `bad_header` anomaly and whatever fields it still holds, each as in the whole CR."""
    requests = [r for r in real_requests(SHARED / capture, S7comm, monkeypatch, tmp_path, "cotp")
                if r[2].function_name == "CONNECTION_REQUEST"]  # fmt: skip
    assert len(requests) == 1
    pdu, from_orig, op = requests[0]
    assert pdu[4] == len(pdu) - 5 and pdu[5] == 0xE0  # one CR filling the TPKT
    cases = []
    for n in range(6, len(pdu)):  # from the length indicator and TPDU code on
        cut = tpkt_cut(pdu, n)
        ops, kinds = parsed(S7comm, cut, from_orig, "cotp")
        assert [facts(o) for o in ops] == [facts(op)] and "bad_header" in kinds, (n, cut.hex())
        kept = ops[0].details
        assert kept.items() <= op.details.items(), (n, cut.hex(), kept)  # what is kept is what the whole CR says
        assert n < 11 or "class" in kept, (n, cut.hex())  # references and class once their bytes are there
        if n >= 7:  # framing wants a TPKT of 7 bytes at least (a shorter one is a bad header, skipped)
            cases.append((cut, facts(op)))
    check_stream(tmp_path, S7comm, "cotp", cases, "cotp-cr-cut")


def test_s7comm_job_in_a_cotp_unit_too_long_is_still_recorded(monkeypatch, tmp_path):
    """A real WRITE_VARIABLE job in COTP DT units without EOT past MAX_REASSEMBLY: the job is recorded from its
    first units (its S7 lengths then run past: bad_header) with the overflow; the units up to EOT are dropped."""
    capture = SHARED / "s7comm/s7comm_varservice_libnodavedemo.pcap"
    pdu, from_orig, op = next(r for r in real_requests(capture, S7comm, monkeypatch, tmp_path, "s7comm")
                              if r[2].function_name == "WRITE_VARIABLE")  # fmt: skip
    s7 = pdu[7:]

    def dt(payload: bytes, eot: bool) -> bytes:
        return struct.pack("!BBHBBB", 3, 0, 7 + len(payload), 2, 0xF0, 0x80 if eot else 0) + payload

    units = [dt(s7, False)] + [dt(bytes(1000), False)] * (MAX_REASSEMBLY // 1000 + 1) + [dt(bytes(10), True)]
    d = S7comm()
    records = [r for u in units for r in d.feed(u, from_orig)]
    ops = [r for r in records if isinstance(r, Operation)]
    assert [facts(o) for o in ops] == [facts(op)] == [(5, "WRITE_VARIABLE", "write")]
    assert [r.kind for r in records if isinstance(r, Anomaly)] == ["buffer_overflow", "bad_header"]
    ops_db, anomalies = ingested(write_stream(tmp_path / "s7-long.pcap", 102, units), tmp_path)
    assert [(c, n, a) for _, p, _, c, n, a, _ in ops_db if p == "s7comm"] == [(5, "WRITE_VARIABLE", "write")]
    assert sorted(k for _, _, k in anomalies) == ["bad_header", "buffer_overflow"]


# --- EtherNet/IP + CIP ---------------------------------------------------------------------------------------------
def enip_cut(pdu: bytes, n: int) -> bytes:
    return pdu[:2] + struct.pack("<H", n - 24) + pdu[4:n]


def cip_service_offset(pdu: bytes) -> int:
    """Where the CIP message's service byte is in a SendRRData / SendUnitData PDU."""
    items, problem = cpf_items(pdu, 30, len(pdu))
    assert problem is None
    for type_id, pos, _ in items:
        if type_id == 0x00B2:
            return pos
        if type_id == 0x00B1:
            return pos + 2  # after the CIP sequence count
    raise AssertionError("no data item")


@pytest.mark.parametrize("capture", ["enip/cip_stop_plc.pcap", "enip/icsnpp_enip_cip_example.pcap",
                                     "enip/quickdraw_CL5000EIP-Change_Time_Attempt.pcap"])  # fmt: skip
def test_cip_request_cut_at_every_length(capture, monkeypatch, tmp_path):
    requests = list(real_requests(SHARED / capture, EtherNetIP, monkeypatch, tmp_path, "cip"))
    assert requests
    cases = []
    for pdu, from_orig, op in requests:
        service = cip_service_offset(pdu)
        path_end = service + 2 + 2 * pdu[service + 1]
        for n in range(service + 1, len(pdu)):
            cut = enip_cut(pdu, n)
            ops, kinds = parsed(EtherNetIP, cut, from_orig, "cip")
            assert ops and ops[0].function_code == op.function_code and kinds, (n, cut.hex())
            if n >= path_end:  # with the whole path, the class: the service's name and access class
                assert facts(ops[0]) == facts(op), (n, cut.hex())
                cases.append((cut, facts(op)))
    check_stream(tmp_path, EtherNetIP, "cip", cases, "cip-cut")
