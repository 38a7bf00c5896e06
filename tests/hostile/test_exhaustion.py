"""Resource exhaustion (issue 12 §5): each hostile capture of captures/make_exhaustion.py
keeps memory within the caps, is recorded as an anomaly, and the ingest completes
with the records around it kept.

The ingest runs in a child process (`sorf ingest`, the columnar path; or ingest_file
with columnar=False, the packet path) which reports its peak RSS (VmHWM): it must
stay under the ingest's memory target (docs/performance.md), which buffering the 1M
fragment trains or allocating a 4 GB record would break. A per-flow buffer of a few
MB would not show in RSS: the stream cases also drive the capped state directly and
check it never grows past its cap. Times are bounded by a child timeout only.
"""

from __future__ import annotations

import gzip
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import make_exhaustion as mx
import pytest

from dissectors.base import FramedStream
from dissectors.dnp3 import DNP3, MAX_FRAGMENT
from dissectors.s7comm import MAX_REASSEMBLY, S7comm
from sensor import decode
from sensor.reassembly import PENDING_CAP, PENDING_SEGMENTS, StreamDirection
from tests.helpers.paths import ROOT

PEAK_MB = 300  # the ingest memory target (docs/performance.md)
TIMEOUT_S = 120
# the child: the ingest, then its peak RSS (VmHWM: of this process image only; ru_maxrss from
# os.wait4 would count the pytest process the child was forked from) to the file argv[1]
_CHILD = """import sys
def ingest(argv):
    if argv[0] == "--packet-path":
        from sensor.ingest import ingest_file, tune_process
        from sensor.store import Store
        tune_process()  # as the command does
        store = Store(argv[2])
        result = ingest_file(store, argv[1], columnar=False)
        store.close()
        return 0 if result.status in ("ok", "damaged") else 3
    from sorf.cli import main
    return main(["ingest", argv[0], "--db", argv[1], "--jobs", "1"])
try:
    rc = ingest(sys.argv[2:])
finally:
    with open("/proc/self/status") as f, open(sys.argv[1], "w") as out:
        out.write(next(line.split()[1] for line in f if line.startswith("VmHWM:")))
sys.exit(rc)
"""


def ingest(path: Path, db: Path, packet_path: bool = False) -> tuple[int, float, float]:
    """Ingest ``path`` into ``db`` in a child: (exit status, peak RSS in MB, seconds)."""
    peak = db.with_suffix(".peak")
    argv = [sys.executable, "-c", _CHILD, str(peak), *(["--packet-path"] if packet_path else []), str(path), str(db)]
    start = time.monotonic()
    try:
        done = subprocess.run(argv, check=False, cwd=ROOT, stdout=subprocess.DEVNULL, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"ingest of {path.name} still running after {TIMEOUT_S} s")
    return done.returncode, int(peak.read_text()) / 1024, time.monotonic() - start


def query(db: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def anomalies(db: Path) -> dict[str, list[tuple]]:
    """kind -> [(protocol, frame, detail)] in frame order."""
    out: dict[str, list[tuple]] = {}
    for kind, protocol, frame, detail in query(
        db, "SELECT kind, protocol, frame, detail FROM anomalies ORDER BY frame"
    ):
        out.setdefault(kind, []).append((protocol, frame, detail))
    return out


def operations(db: Path) -> list[tuple]:
    return query(db, "SELECT frame, protocol, function_name, access_class FROM operations ORDER BY frame")


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def run(tmp_path: Path, capture: Path, packet_path: bool, rc: int = 0) -> Path:
    """Ingest, check it completed within the memory target, and return the database."""
    db = tmp_path / ("packet.duckdb" if packet_path else "cli.duckdb")
    status, peak, took = ingest(capture, db, packet_path)
    print(f"{capture.name} {'packet' if packet_path else 'cli'}: peak {peak:.0f} MB, {took:.1f} s")
    assert status == rc
    assert peak < PEAK_MB, f"peak RSS {peak:.0f} MB"
    return db


PATHS = pytest.mark.parametrize("packet_path", [False, True], ids=["cli", "packet"])


# --------------------------------------------------------------------------- an endless partial PDU


@PATHS
def test_cotp_unit_without_end_is_capped(tmp_path, packet_path):
    """20 MB of COTP DT units without EOT after one whole job: the reassembly drops
    what passes MAX_REASSEMBLY (buffer_overflow), the job and the unit's header are
    recorded, and the flow is kept whole."""
    db = run(tmp_path, write(tmp_path, "s7.pcap", mx.s7_endless_dt(20)), packet_path)
    found = anomalies(db)
    assert [a[0] for a in found["buffer_overflow"]] == ["cotp"]
    assert f"over {MAX_REASSEMBLY} bytes" in found["buffer_overflow"][0][2]
    ops = operations(db)
    assert ops[0][1:] == ("s7comm", "READ_VARIABLE", "read") and len(ops) == 2
    packets = query(db, "SELECT packets FROM captures")[0][0]
    assert query(db, "SELECT packets_orig + packets_resp, app_protocol FROM flows") == [(packets, "s7comm")]


def test_cotp_reassembly_never_holds_more_than_its_cap():
    s7 = S7comm()
    held = 0
    for seg in _tcp_payloads(mx.s7_endless_dt(2)):
        s7.feed(seg, True)
        held = max(held, len(s7.dt[True]), len(s7.buffers[True]))
    assert 0 < held <= MAX_REASSEMBLY


@PATHS
def test_modbus_garbage_after_a_header_is_skipped(tmp_path, packet_path):
    """A header, then 4 MB in which no MBAP header can start: one bad_header, the
    FramedStream buffer stays under max_buffer, the poll before it is kept."""
    db = run(tmp_path, write(tmp_path, "garbage.pcap", mx.modbus_endless_garbage(4)), packet_path)
    found = anomalies(db)
    assert [(a[0], a[1]) for a in found["bad_header"]] == [("modbus", 6)]
    assert [op[1:] for op in operations(db)[:2]] == [("modbus", "READ_HOLDING_REGISTERS", "read")] * 2


def test_framed_stream_buffer_stays_under_max_buffer():
    from dissectors.modbus import ModbusTCP

    modbus = ModbusTCP()
    held = 0
    for seg in _tcp_payloads(mx.modbus_endless_garbage(1)):
        modbus.feed(seg, True)
        held = max(held, len(modbus.buffers[True]))
    assert held <= FramedStream.max_buffer and held < 2 * 1400


def _tcp_payloads(pcap: bytes, sport: int | None = None) -> list[bytes]:
    """The TCP payloads of the client's segments in a make_exhaustion capture."""
    out, pos = [], 24
    while pos < len(pcap):
        incl = int.from_bytes(pcap[pos + 8 : pos + 12], "little")
        frame = pcap[pos + 16 : pos + 16 + incl]
        pos += 16 + incl
        if frame[14 + 20 + 13] & 0x02 == 0 and frame[26:30] == mx.CLIENT and len(frame) > 54:
            out.append(frame[54:])
    return out


# --------------------------------------------------------------------------- a record claiming 4 GB


CAPTURES_4GB = {
    "pcap": lambda: mx.pcap_claiming_4gb(10),
    "pcap.gz": lambda: gzip.compress(mx.pcap_claiming_4gb(10), mtime=0),
    "pcapng": lambda: mx.pcapng_claiming_4gb(10),
    "packet.pcapng": lambda: mx.pcapng_claiming_4gb(10, where="packet"),
}


@PATHS
@pytest.mark.parametrize("kind", list(CAPTURES_4GB))
def test_record_claiming_4gb(tmp_path, kind, packet_path):
    """Reading stops at the record (no 4 GB read or allocation), which is named by
    byte and frame; the 10 polls before it are kept."""
    db = run(
        tmp_path, write(tmp_path, f"huge.{kind}", CAPTURES_4GB[kind]()), packet_path, rc=1 if not packet_path else 0
    )
    ((status, error, packets),) = query(db, "SELECT status, error, packets FROM captures")
    assert status == "damaged" and packets == 23 and "(frame 24)" in error and str(mx.HUGE) in error
    assert [(a[0], a[1]) for a in anomalies(db)["damaged_file"]] == [("capture", 24)]
    assert len(operations(db)) == 20


@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
def test_record_claiming_4gb_in_a_big_capture(tmp_path, fmt):
    """Over 16 MB: the records are walked by `sorf ingest`'s child process, which
    must stop at the record the same way."""
    data = mx.pcap_claiming_4gb(110_000) if fmt == "pcap" else mx.pcapng_claiming_4gb(110_000)
    assert len(data) > 16 << 20
    db = run(tmp_path, write(tmp_path, f"big.{fmt}", data), False, rc=1)
    ((status, packets),) = query(db, "SELECT status, packets FROM captures")
    assert status == "damaged" and packets == 220_003
    assert [(a[0], a[1]) for a in anomalies(db)["damaged_file"]] == [("capture", 220_004)]
    assert query(db, "SELECT count(*) FROM operations") == [(220_000,)]


# --------------------------------------------------------------------------- 50 nested VLAN tags


@PATHS
def test_fifty_vlan_tags(tmp_path, packet_path):
    """Frames with 50 tags are malformed (over MAX_VLAN_TAGS), one anomaly each; the
    untagged flow around them is kept whole."""
    db = run(tmp_path, write(tmp_path, "vlan.pcap", mx.vlan_nest(50)), packet_path)
    found = anomalies(db)
    assert [a[1] for a in found["malformed_packet"]] == [6, 7, 8, 9, 10]
    assert {a[2] for a in found["malformed_packet"]} == {f"more than {decode.MAX_VLAN_TAGS} 802.1Q tags"}
    assert query(db, "SELECT vlan, packets_orig, packets_resp, app_protocol FROM flows") == [(0, 4, 3, "modbus")]
    assert [op[0] for op in operations(db)] == [4, 5, 11, 12]


def test_vlan_tags_up_to_the_cap_are_decoded():
    frame = mx.ether(mx.ipv4(mx.CLIENT, mx.SERVER, 17, bytes(8)), tags=decode.MAX_VLAN_TAGS)
    assert decode.Decoder().decode(decode.LINK_ETHERNET, frame, 0).vlan == decode.MAX_VLAN_TAGS
    with pytest.raises(decode.Malformed, match=r"802\.1Q tags"):
        deeper = mx.ether(mx.ipv4(mx.CLIENT, mx.SERVER, 17, bytes(8)), tags=decode.MAX_VLAN_TAGS + 1)
        decode.Decoder().decode(decode.LINK_ETHERNET, deeper, 0)


# --------------------------------------------------------------------------- a DNP3 fragment without end


@PATHS
def test_dnp3_fragment_without_fin(tmp_path, packet_path):
    """FIR, then 10,000 transport segments that never set FIN: too_long once, at
    MAX_FRAGMENT; the DIRECT_OPERATE of the first segment is recorded as control."""
    db = run(tmp_path, write(tmp_path, "dnp3.pcap", mx.dnp3_endless_fragment(10_000)), packet_path)
    found = anomalies(db)
    assert [a[0] for a in found["too_long"]] == ["dnp3"] and f"over {MAX_FRAGMENT} bytes" in found["too_long"][0][2]
    assert [op[1:] for op in operations(db)] == [("dnp3", "DIRECT_OPERATE", "control")]
    assert query(db, "SELECT packets_orig, app_protocol FROM flows") == [(10_003, "dnp3")]


def test_dnp3_reassembly_never_holds_more_than_its_cap():
    dnp3 = DNP3()
    held = 0
    for seg in _tcp_payloads(mx.dnp3_endless_fragment(500)):
        dnp3.feed(seg, True)
        held = max([held] + [len(p.buf) for p in dnp3.segments.values() if p is not None])
    assert MAX_FRAGMENT - 249 < held <= MAX_FRAGMENT


# --------------------------------------------------------------------------- 1,000,000 fragment trains


@pytest.fixture(scope="module")
def trains(tmp_path_factory) -> Path:
    """1,000,000 first fragments (58 MB), then a Modbus poll."""
    path = tmp_path_factory.mktemp("trains") / "trains.pcap"
    path.write_bytes(mx.fragment_trains(1_000_000, tail=mx.modbus_polls(1, t0=mx.T0 + 2_000_000)))
    return path


@PATHS
def test_a_million_fragment_trains(tmp_path, trains, packet_path):
    """Never more than FRAG_MAX_DATAGRAMS trains wait; one anomaly sums them all up,
    at the first train's frame; the poll after them is kept."""
    db = run(tmp_path, trains, packet_path)
    found = anomalies(db)
    assert list(found) == ["incomplete_fragments"]
    ((protocol, frame, detail),) = found["incomplete_fragments"]
    assert protocol == "decode" and detail.startswith("1000000 fragmented IP datagrams never completed")
    assert f"{decode.FRAG_MAX_DATAGRAMS} datagrams" in detail
    assert frame == 1
    assert [op[0] for op in operations(db)] == [1_000_004, 1_000_005]


def test_fragment_memory_is_capped_by_count_and_bytes():
    """Trains of big (jumbo) fragments hit FRAG_MAX_BYTES before FRAG_MAX_DATAGRAMS."""
    d = decode.Decoder()
    piece = bytes(8000)
    for i in range(3_000):
        ip = mx.ipv4(mx.CLIENT, bytes([10, 20, 2, i >> 8 & 0xFF]), 17, piece, ident=i & 0xFF, frag=0x2000)
        assert d.decode(decode.LINK_ETHERNET, mx.ether(ip), i, i + 1) is None
        assert len(d.fragments) <= decode.FRAG_MAX_DATAGRAMS and d.fragment_bytes <= decode.FRAG_MAX_BYTES
    assert d.fragment_bytes == sum(x.size for x in d.fragments.values()) > decode.FRAG_MAX_BYTES * 0.8
    frame, ts, detail = d.incomplete()
    assert (frame, ts) == (1, 0) and detail.startswith("3000 fragmented IP datagrams")


# --------------------------------------------------------------------------- a hole every other segment


@PATHS
def test_hole_every_other_segment(tmp_path, packet_path):
    """10,000 requests, every second one missing, the server acknowledging them all:
    a gap each, and every request there and its reply recorded."""
    db = run(tmp_path, write(tmp_path, "holes.pcap", mx.modbus_hole_every_other(10_000)), packet_path)
    found = anomalies(db)
    assert list(found) == ["reassembly_gap"] and len(found["reassembly_gap"]) == 4_999
    assert len(operations(db)) == 10_000
    assert query(db, "SELECT flags LIKE '%G%' FROM flows") == [(True,)]


@PATHS
def test_hole_every_other_segment_one_way(tmp_path, packet_path):
    """200,000 requests, every second one missing, no ACK ever seen (a one-way SPAN):
    the waiting segments are given up on at PENDING_SEGMENTS, in time linear in the
    stream (it took minutes), and each request after a gap is recorded."""
    db = run(tmp_path, write(tmp_path, "oneway.pcap", mx.modbus_hole_every_other(200_000, answered=False)), packet_path)
    found = anomalies(db)
    assert list(found) == ["reassembly_gap"] and len(found["reassembly_gap"]) == 99_999
    assert query(db, "SELECT count(*) FROM operations WHERE function_name = 'READ_HOLDING_REGISTERS'") == [(100_000,)]


def test_waiting_segments_stay_within_the_caps():
    s = StreamDirection()
    s.syn(999)
    delivered, most = 0, 0
    for i in range(0, 40_000, 2):
        delivered += sum(len(p[0]) for p in s.push(1000 + 12 * i, bytes(12), i, i) if p[0])
        most = max(most, len(s.pending))
        assert s.pending_bytes <= PENDING_CAP
    delivered += sum(len(p[0]) for p in s.flush() if p[0])
    assert most == PENDING_SEGMENTS  # reached, never passed
    assert delivered == 12 * 20_000 and s.gaps == 19_999 and not s.heap
