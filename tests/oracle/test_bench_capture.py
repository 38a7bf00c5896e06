"""The benchmark capture generator (captures/make_bench.py): deterministic, decoded cleanly by tshark,
and counted the same by sorf and tshark. No timing here: `make bench` measures, tests do not."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from collections import Counter

import duckdb
import pytest

from tests.helpers.paths import ROOT
from tests.helpers.tshark import run
from tests.oracle.test_dissectors_vs_tshark import PROTOCOLS, tshark_counts

GENERATOR = ROOT / "captures" / "make_bench.py"
PACKETS = 5000


def generate(out, packets: int = PACKETS, hash_seed: str = "0") -> bytes:
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}  # nothing may depend on str hashing
    subprocess.run([sys.executable, str(GENERATOR), "--packets", str(packets), str(out)], check=True, env=env,
                   capture_output=True)  # fmt: skip
    return out.read_bytes()


@pytest.fixture(scope="module")
def bench_capture(tmp_path_factory):
    path = tmp_path_factory.mktemp("bench") / "bench-5k.pcap"
    generate(path)
    return path


@pytest.fixture(scope="module")
def bench_db(bench_capture, tmp_path_factory):
    from sorf.cli import main

    db = tmp_path_factory.mktemp("bench-db") / "bench.duckdb"
    assert main(["ingest", str(bench_capture), "--db", str(db)]) == 0
    return db


def test_generator_is_deterministic(tmp_path):
    a = generate(tmp_path / "a.pcap", hash_seed="1")
    b = generate(tmp_path / "b.pcap", hash_seed="2")
    assert a == b
    assert not list(tmp_path.glob("*.part*"))  # written under a temporary name, then renamed


def test_exact_packet_count_and_monotonic_time(bench_capture):
    from sensor.capture import ReadState, read_packets

    state = ReadState()
    stamps = [ts for _, ts, _, _ in read_packets(str(bench_capture), state)]
    assert len(stamps) == PACKETS
    assert state.fmt == "pcap" and state.link_types == [1]
    assert all(a < b for a, b in itertools.pairwise(stamps))


def test_tshark_decodes_it_cleanly(bench_capture):
    path = str(bench_capture)
    assert run(["-n", "-r", path, "-Y", "_ws.malformed || _ws.expert.severity >= error"]) == ""
    phs = run(["-n", "-r", path, "-q", "-z", "io,phs"])
    protocols = {line.split()[0] for line in phs.splitlines() if "frames:" in line}
    # the four ICS protocols, CIP explicit and implicit, the noise, and the VLAN tags
    assert {"mbtcp", "modbus", "s7comm", "dnp3", "enip", "cip", "cipio", "dns", "ntp", "tls", "vlan"} <= protocols
    assert "data" not in protocols  # every TCP/UDP payload is decoded by its protocol's dissector


def test_the_quirks_are_there(bench_capture):
    """Several PDUs in one segment, PDUs split across segments, retransmissions, TCP timestamps, VLANs."""
    fields = ["frame.number", "vlan.id", "tcp.options.timestamp.tsval", "tcp.analysis.retransmission",
              "tcp.segment.count", "modbus.func_code", "s7comm.header.rosctr", "enip.command", "tcp.flags.syn",
              "tcp.flags.fin"]  # fmt: skip
    out = run(["-n", "-r", str(bench_capture), "-T", "fields", "-E", "occurrence=a", "-E", "aggregator=|",
               *(x for f in fields for x in ("-e", f))])  # fmt: skip
    seen: Counter = Counter()
    for line in out.splitlines():
        f = dict(zip(fields, line.split("\t"), strict=True))
        seen["vlan"] += bool(f["vlan.id"])
        seen["timestamps"] += bool(f["tcp.options.timestamp.tsval"])
        seen["retransmission"] += bool(f["tcp.analysis.retransmission"])
        seen["reassembled"] += bool(f["tcp.segment.count"])
        seen["pipelined"] += any(f[k].count("|") >= 1 for k in ("modbus.func_code", "s7comm.header.rosctr",
                                                                   "enip.command"))  # fmt: skip
        seen["syn"] += f["tcp.flags.syn"] == "1"
        seen["fin"] += f["tcp.flags.fin"] == "1"
    assert all(seen[k] > 0 for k in ("vlan", "timestamps", "retransmission", "reassembled", "pipelined")), seen
    assert seen["fin"] == seen["syn"]  # every session opened (SYN, SYN-ACK) is closed (FIN, FIN)


@pytest.mark.parametrize("protocol", ["modbus", "s7comm", "dnp3", "enip", "cip", "cip_io"])
def test_sorf_counts_equal_tshark(bench_capture, bench_db, protocol):
    spec = PROTOCOLS[protocol]
    with duckdb.connect(str(bench_db), read_only=True) as con:
        ours = Counter(tuple(r) for r in con.execute(spec.sorf_sql, [1]).fetchall())
    ref = tshark_counts(str(bench_capture), spec)
    assert sum(ref.values()) > 0
    assert {k: ours[k] - ref[k] for k in ours.keys() | ref.keys() if ours[k] != ref[k]} == {}


def test_sorf_reads_it_whole(bench_db):
    with duckdb.connect(str(bench_db), read_only=True) as con:
        assert con.execute("SELECT packets, malformed, status FROM captures").fetchall() == [(PACKETS, 0, "ok")]
        assert con.execute("SELECT kind, count(*) FROM anomalies GROUP BY 1").fetchall() == []


def test_bench_reports_the_median_of_its_rounds_and_what_sorf_wrote(bench_capture):
    """`make bench`'s script on a small capture: the report's shape, not its times."""
    out = subprocess.run([sys.executable, "-m", "sensor.bench", str(bench_capture), "--runs", "2"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert f"{PACKETS:,} packets in 1 file; each tool in its own process, median of 2 runs" in out
    rounds = next(line for line in out.splitlines() if "each round:" in line).split("each round:")[1].split()
    assert len(rounds) == 2 and all(r.endswith("x") and float(r[:-1]) > 0 for r in rounds)
    assert f"sorf wrote   {PACKETS:,} packets" in out
