"""The columnar path (sensor/columnar.py) against the packet-at-a-time path: the same
tables, row for row, on every pcap of the shared corpus, the demo, a generated benchmark
capture and damaged cuts of them. The packet path is the one tests/oracle/test_corpus.py and
the tshark comparisons hold to; this keeps the fast path equal to it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import duckdb
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sensor.capture import pcap_kind
from sensor.flows import sender_initiates, senders_initiate
from sensor.ingest import ingest_file
from sensor.store import Store
from tests.helpers.bulk_harness import bench_capture
from tests.helpers.paths import ROOT, SHARED

# labelled, privileged and ephemeral ports, and 0
PORTS = [0, 53, 80, 102, 123, 443, 502, 1023, 1024, 2222, 20000, 44818, 49152, 65535]

TABLES = {
    "flows": "*",
    "operations": "*",
    "identities": "*",
    "anomalies": "*",
    "captures": "* EXCLUDE (ingested_at)",
    "assets": "*",
}


def _tables(path, db, columnar: bool) -> dict[str, list]:
    store = Store(str(db))
    try:
        ingest_file(store, str(path), columnar=columnar)
        store.rebuild_assets()
    finally:
        store.close()
    con = duckdb.connect(str(db), read_only=True)
    try:
        return {t: sorted(map(repr, con.execute(f"SELECT {cols} FROM {t}").fetchall())) for t, cols in TABLES.items()}
    finally:
        con.close()


def assert_same(path, tmp_path) -> dict[str, list]:
    packet = _tables(path, tmp_path / "packet.duckdb", False)
    columnar = _tables(path, tmp_path / "columnar.duckdb", True)
    for table in TABLES:
        only_packet = sorted(set(packet[table]) - set(columnar[table]))[:3]
        only_columnar = sorted(set(columnar[table]) - set(packet[table]))[:3]
        assert packet[table] == columnar[table], (
            f"{table}: packet path only {only_packet}; columnar only {only_columnar}"
        )
    return columnar


CORPUS = sorted(p for p in SHARED.rglob("*") if p.is_file() and pcap_kind(str(p)))  # pcap and pcapng


@pytest.mark.parametrize("path", CORPUS, ids=[str(p.relative_to(SHARED)) for p in CORPUS])
def test_corpus_capture(path, tmp_path):
    assert_same(path, tmp_path)


def test_demo_capture(tmp_path):
    tables = assert_same(ROOT / "captures" / "demo-plant.pcap", tmp_path)
    assert len(tables["operations"]) > 100


@pytest.fixture(scope="module")
def benches(tmp_path_factory) -> dict[str, Path]:
    """The bench capture, and the same as pcapng written by editcap (Wireshark)."""
    folder = tmp_path_factory.mktemp("bench")
    pcap = bench_capture(folder / "bench-30k.pcap", 30000)
    pcapng = folder / "bench-30k.pcapng"
    subprocess.run(["editcap", "-F", "pcapng", str(pcap), str(pcapng)], check=True, capture_output=True)
    return {"pcap": pcap, "pcapng": pcapng}


@pytest.fixture
def bench(benches) -> Path:
    return benches["pcap"]


@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
def test_bench_capture(benches, tmp_path, fmt):
    tables = assert_same(benches[fmt], tmp_path)
    assert len(tables["operations"]) > 25000


@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
@pytest.mark.parametrize("cut", [0.37, 0.81])
def test_truncated_capture(benches, tmp_path, fmt, cut):
    """A file cut mid-record: both paths keep the same frames and report the same damage."""
    data = benches[fmt].read_bytes()
    path = tmp_path / f"cut.{fmt}"
    path.write_bytes(data[: int(len(data) * cut)])
    tables = assert_same(path, tmp_path)
    assert any("damaged_file" in row for row in tables["anomalies"])


def test_small_chunks(bench, tmp_path, monkeypatch):
    """Flows, streams and PDUs that straddle chunk boundaries (many small chunks)."""
    import sensor.walk

    packet = _tables(bench, tmp_path / "packet.duckdb", False)
    monkeypatch.setattr(sensor.walk, "CHUNK", 1 << 16)
    columnar = _tables(bench, tmp_path / "columnar.duckdb", True)
    for table in TABLES:
        assert packet[table] == columnar[table], table


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([6, 17]), st.integers(0, 255),
                          st.sampled_from(PORTS), st.sampled_from(PORTS)),
                min_size=1, max_size=20))  # fmt: skip
def test_senders_initiate_is_sender_initiates_in_bulk(heads):
    """The columnar path decides who opened its new flows in bulk."""
    proto, flags, sport, dport = (np.array(x, np.int64) for x in zip(*heads, strict=True))
    got = senders_initiate(proto, flags, sport, dport).tolist()
    assert got == [sender_initiates(*h) for h in heads]
