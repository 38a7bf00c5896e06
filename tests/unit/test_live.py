"""The live sensor's loop (sensor/live.py) driven by a stand-in interface that hands over a capture file's packets in
batches, as libpcap's next_batch does: commits, the rows of open flows, segments, drop counters, the analysis of
drops. The real interface is tested in tests/live (namespaces, real peers)."""

from __future__ import annotations

import os
import threading
from itertools import pairwise

import duckdb
import numpy as np

from sensor.capture import read_packets
from sensor.live import BATCH, LiveSource, Ring, SenseOptions, Sensor
from sensor.store import Store
from sensor.walk import ReadState
from sorf.cli import main as sorf
from tests.helpers.paths import ROOT

DEMO = str(ROOT / "captures" / "demo-plant.pcap")
ZONES = str(ROOT / "captures" / "demo-zones.yaml")


class FileInterface:
    """Batches of a capture's packets, then empty batches (a quiet link); libpcap's counters made up: ``drops``
    packets dropped by the kernel per batch handed over, and the stop event set once ``quiet`` empty batches went by.
    ``after_batch`` runs after each batch is handed over (to commit in between, say)."""

    def __init__(self, path: str, per_batch: int = 50, drops: int = 0, quiet: int = 3):
        packets = list(read_packets(path, ReadState()))
        self.link = packets[0][0]
        self.snaplen = 65535
        self.batches = [packets[i : i + per_batch] for i in range(0, len(packets), per_batch)]
        self.drops, self.quiet = drops, quiet
        self.handed = 0
        self.stop = threading.Event()

    def batch(self) -> tuple[bytes, np.ndarray]:
        if self.handed >= len(self.batches):
            self.quiet -= 1
            if self.quiet <= 0:
                self.stop.set()
            return b"", np.zeros((0, 4), np.uint32)
        group = self.batches[self.handed]
        self.handed += 1
        meta, at = [], 0
        for _, ts, _, data in group:
            meta.append((ts // 1_000_000, ts % 1_000_000, at, len(data)))
            at += len(data)
        return b"".join(p[3] for p in group), np.array(meta, np.uint32)

    def counters(self) -> tuple[int, int, int]:
        return self.handed * 50, self.handed * self.drops, 0


def _sense(db, interface: FileInterface, **options) -> Sensor:
    store = Store(str(db), live=True)
    try:
        sensor = Sensor(store, LiveSource(interface, interface.stop), SenseOptions("box", **options))
        sensor.run()
    finally:
        store.close()
    return sensor


def _rows(db, query: str) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(query).fetchall()
    finally:
        con.close()


def test_a_live_run_records_what_an_ingest_of_the_same_packets_records(tmp_path):
    _sense(tmp_path / "live.duckdb", FileInterface(DEMO))
    assert sorf(["ingest", DEMO, "--db", str(tmp_path / "file.duckdb")]) == 0
    for table in ("flows", "operations", "identities", "anomalies"):
        query = f"SELECT * EXCLUDE (capture_id) FROM {table} ORDER BY ALL"
        live, offline = _rows(tmp_path / "live.duckdb", query), _rows(tmp_path / "file.duckdb", query)
        assert live == offline and (live or table == "anomalies"), table
    ((status, path, packets),) = _rows(tmp_path / "live.duckdb", "SELECT status, path, packets FROM captures")
    assert (status, path, packets) == ("ok", None, 239)


def test_open_flows_are_written_at_each_commit_and_replaced_when_they_change(tmp_path):
    """Committing after every batch: a flow still open is in `flows` as it stands, once, with its packets so far."""
    db = tmp_path / "live.duckdb"
    interface = FileInterface(DEMO, per_batch=40)
    seen: list[list[tuple]] = []
    store = Store(str(db), live=True)
    try:
        sensor = Sensor(store, LiveSource(interface, interface.stop), SenseOptions("box", commit_s=1e-6))
        query = "SELECT flow_id, packets_orig + packets_resp FROM flows ORDER BY flow_id"
        sensor.on_commit.append(lambda: seen.append(store.con.execute(query).fetchall()))
        sensor.run()
        final = store.con.execute(query).fetchall()
    finally:
        store.close()
    assert len(seen) >= len(interface.batches)
    for rows in seen:
        ids = [flow_id for flow_id, _ in rows]
        assert len(ids) == len(set(ids)), "a flow's open row is replaced, never duplicated"
    growing = [dict(rows) for rows in seen]
    assert any(a.get(k, 0) < b[k] for a, b in pairwise(growing) for k in b), "updated"
    assert dict(final) == growing[-1] and len(final) == 17


def test_the_kernels_drops_are_summed_per_interval_and_named_by_analyse(tmp_path, capsys):
    db = tmp_path / "live.duckdb"
    _sense(db, FileInterface(DEMO, drops=7), commit_s=1e-6)
    rows = _rows(db, "SELECT sum(packets), sum(kernel_drops), count(*), min(rss_bytes) FROM sensor_stats")
    ((packets, drops, intervals, rss),) = rows
    assert packets == 239 and intervals >= 5 and rss > 10 << 20
    assert drops == 7 * 5, "libpcap's totals are differenced: 5 batches of 7 drops each"
    assert sorf(["analyse", "--db", str(db), "--zones", ZONES, "--format", "table"]) == 0
    out = capsys.readouterr().out
    assert "drops      box: 35 packets dropped by the kernel and 0 by the interface beside 239 sensed" in out


def test_frames_restart_in_a_new_capture_when_a_segment_ends(tmp_path, monkeypatch):
    """Past the flow-id space a capture ends and the next begins at frame 1 (here after 100 frames, not 2^32)."""
    monkeypatch.setattr("sensor.live.MAX_FRAMES", 100 + BATCH)
    db = tmp_path / "live.duckdb"
    _sense(db, FileInterface(DEMO, per_batch=50))
    captures = _rows(db, "SELECT capture_id, packets, status FROM captures ORDER BY 1")
    assert captures == [(1, 100, "ok"), (2, 100, "ok"), (3, 39, "ok")]
    frames = _rows(db, "SELECT capture_id, min(frame), max(frame) FROM operations GROUP BY 1 ORDER BY 1")
    assert all(low >= 1 and high <= 100 for _, low, high in frames) and len(frames) == 3
    ids = _rows(db, "SELECT count(*), count(DISTINCT flow_id), bool_and(flow_id >> 32 = capture_id) FROM flows")
    assert ids[0][0] == ids[0][1] and ids[0][2]


def test_a_run_left_open_is_marked_interrupted_by_the_next(tmp_path, capsys):
    db = tmp_path / "live.duckdb"
    store = Store(str(db), live=True)
    store.begin_live(None, "box")  # as a sensor killed before it closed its capture leaves it
    store.close()
    sensor = _sense(db, FileInterface(DEMO))
    assert sensor.interrupted == [1]
    assert _rows(db, "SELECT capture_id, status FROM captures ORDER BY 1") == [(1, "interrupted"), (2, "ok")]


def test_a_ring_keeps_its_newest_files_and_leaves_another_sensors_alone(tmp_path):
    other = tmp_path / "box-2-20261208T000000Z-000009.pcap"
    other.write_bytes(b"")
    ring = Ring(str(tmp_path), size=1, files=2, sensor="box", link=1, snaplen=65535)
    first = ring.path
    removed = [ring.rotate() for _ in range(3)]
    assert removed[0] == [] and removed[1] == [first] and len(removed[2]) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [other.name, *(os.path.basename(p) for p in ring.paths())]
    )
    assert ring.path.endswith("-000004.pcap") and other.exists()
    ring.close()
    again = Ring(str(tmp_path), size=1, files=2, sensor="box", link=1, snaplen=65535)
    assert again.path.endswith("-000005.pcap"), "numbering goes on from an earlier run's files"
    again.close()
