"""Serving while an ingest writes (sensor/snapshot.py, analyser/serve.py; docs/api.md).

DuckDB lets one process hold a database file: a server that kept it open would stop
the ingest, and an ingest in progress would stop the server. These tests run the real
`sorf serve` and `sorf ingest` processes side by side, and check the snapshot protocol
step by step in-process.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import httpx
import pytest

from analyser.serve import Source
from sensor import snapshot
from sensor.ingest import ingest
from tests.helpers.net import free_port
from tests.helpers.paths import ROOT, SHARED

ZONES = str(ROOT / "captures" / "demo-zones.yaml")
# distinct captures of a few hundred kB to 1.5 MB: each takes a moment to ingest
CAPTURES = [
    SHARED / "modbus" / "modbus_test.pcap",
    SHARED / "s7comm" / "s7comm_clean.pcap",
    SHARED / "mixed" / "zeek_modbusBig.pcap",
    SHARED / "modbus" / "iti_ModbusTCP_large.pcap",
    SHARED / "enip" / "quickdraw_CL5000EIP-Lock_PLC_Attempt.pcap",
    SHARED / "s7comm" / "s7comm_varservice_libnodavedemo_bench.pcap",
]


def _captures_in(path: str) -> int:
    con = duckdb.connect(path, read_only=True)
    try:
        return con.execute("SELECT count(*) FROM captures WHERE status <> 'ingesting'").fetchone()[0]
    finally:
        con.close()


def test_ingest_publishes_a_snapshot_after_each_capture_while_a_server_holds_the_lock(tmp_path):
    db = str(tmp_path / "site.duckdb")
    seen: list[tuple[str, int]] = []

    def progress(path, done, total, packets):  # called while a capture is read: the previous ones are committed
        if not seen or seen[-1][0] != path:
            snap = snapshot.snapshot_path(db)
            seen.append((path, _captures_in(snap) if os.path.exists(snap) else 0))

    held = snapshot.hold_serving(db)
    try:
        assert snapshot.server_watching(db)
        ingest([str(p) for p in CAPTURES[:3]], db, progress=progress)
    finally:
        held.close()
    assert [n for _, n in seen] == [0, 1, 2]
    assert _captures_in(snapshot.snapshot_path(db)) == 3
    assert not snapshot.server_watching(db)


def test_no_snapshot_without_a_server(tmp_path):
    db = str(tmp_path / "site.duckdb")
    ingest([str(CAPTURES[0])], db)
    assert not os.path.exists(snapshot.snapshot_path(db))


def test_server_copies_a_free_database_and_waits_for_a_missing_one(tmp_path):
    db = str(tmp_path / "site.duckdb")
    src = Source(db, ZONES, poll_s=60)
    try:
        assert src.state.source is None and src.state.rows["captures"] == 0  # nothing yet: an empty database
        ingest([str(CAPTURES[0])], db)  # the server's lock is held: the ingest published for it
        assert src.refresh()
        assert src.state.rows["captures"] == 1
        assert not src.refresh()  # nothing changed since
    finally:
        src.close()
    ingest([str(CAPTURES[1])], db)  # no server: no snapshot, the database moves ahead of it
    src = Source(db, ZONES, poll_s=60)
    try:
        assert src.state.rows["captures"] == 2  # the server copied the free database itself
    finally:
        src.close()


HOLD = """
import sys
from sensor.store import Store
store = Store(sys.argv[1])
store.con.execute("UPDATE captures SET sensor = 'x'")
print("holding", flush=True)
sys.stdin.read()
store.close()
"""


def test_a_locked_database_is_served_from_the_last_snapshot(tmp_path):
    db = str(tmp_path / "site.duckdb")
    ingest([str(CAPTURES[0])], db)
    src = Source(db, ZONES, poll_s=60)
    try:
        # another process, as an ingest is, holds the file and has made it newer than the snapshot
        writer = subprocess.Popen([sys.executable, "-c", HOLD, db], cwd=ROOT, stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True)  # fmt: skip
        try:
            assert writer.stdout.readline() == "holding\n"
            os.utime(db, ns=(time.time_ns() + 10**9,) * 2)
            assert not src.refresh()
            assert src.state.rows["captures"] == 1
            assert src.problems == []  # waiting for an ingest is not a problem
        finally:
            writer.communicate("")
        assert writer.returncode == 0
        assert src.refresh()  # free again, and newer: copied
        assert src.state.analysis.window.sensors == ["x"]
    finally:
        src.close()


def test_an_edited_zone_file_is_reloaded_and_a_broken_one_reported(tmp_path):
    db = str(tmp_path / "site.duckdb")
    zones = tmp_path / "zones.yaml"
    shutil.copy(ZONES, zones)
    ingest([str(CAPTURES[0])], db)
    src = Source(db, str(zones), poll_s=60)
    try:
        assert src.state.analysis.site == "Demo Water Works"
        zones.write_text(zones.read_text().replace("site: Demo Water Works", "site: Renamed Works"))
        os.utime(zones, ns=(time.time_ns() + 10**9,) * 2)
        assert src.refresh()
        assert src.state.analysis.site == "Renamed Works"
        zones.write_text("zones: [oops")
        os.utime(zones, ns=(time.time_ns() + 2 * 10**9,) * 2)
        assert not src.refresh()
        assert src.state.analysis.site == "Renamed Works"
        assert any(str(zones) in p for p in src.problems)
    finally:
        src.close()


def test_a_retired_state_closes_after_its_last_request(tmp_path):
    db = str(tmp_path / "site.duckdb")
    ingest([str(CAPTURES[0])], db)
    src = Source(db, ZONES, poll_s=60)
    try:
        with src.current() as old:
            os.utime(db, ns=(time.time_ns() + 10**9,) * 2)
            assert src.refresh()  # a new state while a request holds the old one
            assert old.cursor().execute("SELECT count(*) FROM flows").fetchone()[0] > 0  # still usable
        with pytest.raises(duckdb.Error):
            old.con.execute("SELECT 1")  # closed once released
    finally:
        src.close()


# --- the real processes side by side ----------------------------------------------------------------------------------


def _sorf(*args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "sorf", *args], cwd=ROOT, **kw)


@pytest.fixture
def server(tmp_path):
    db = str(tmp_path / "site.duckdb")
    port = free_port()
    proc = _sorf("serve", "--db", db, "--zones", ZONES, "--port", str(port), stdout=subprocess.PIPE,
                 stderr=subprocess.PIPE)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{base}/api/v1/health", timeout=5).status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline, "sorf serve did not answer"
        time.sleep(0.2)
    yield db, base
    proc.terminate()
    proc.wait(timeout=30)


def _poll_while(proc: subprocess.Popen, base: str, client: httpx.Client) -> list[int]:
    """Query in a loop until the ingest ends; every answer must be a 200. Returns the capture counts seen."""
    counts = []
    while True:
        done = proc.poll() is not None
        for path in ("/api/v1/health", "/api/v1/deltas?limit=5", "/api/v1/flows?limit=5&protocol=modbus",
                     "/api/v1/operations?limit=5&access=write", "/api/v1/conduits/observed"):  # fmt: skip
            r = client.get(base + path)
            assert r.status_code == 200, (path, r.status_code, r.text)
            if path == "/api/v1/health":
                counts.append(r.json()["rows"]["captures"])
        if done:
            return counts
        time.sleep(0.05)


def _wait_for(base: str, client: httpx.Client, captures: int) -> dict:
    deadline = time.monotonic() + 60
    while True:
        health = client.get(base + "/api/v1/health").json()
        if health["rows"]["captures"] == captures:
            return health
        assert time.monotonic() < deadline, health
        time.sleep(0.2)


def test_queries_never_fail_while_ingests_commit_captures(server):
    db, base = server
    with httpx.Client(timeout=30) as client:
        assert client.get(base + "/api/v1/health").json()["status"] == "waiting"  # no database yet
        counts = []
        # one capture per ingest, then several in one ingest, serial and in parallel workers
        for k, batch, jobs in ((1, CAPTURES[:1], "1"), (2, CAPTURES[1:2], "1"), (4, CAPTURES[2:4], "1"),
                               (6, CAPTURES[4:6], "2")):  # fmt: skip
            proc = _sorf("ingest", *map(str, batch), "--db", db, "--jobs", jobs, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE)  # fmt: skip
            counts += _poll_while(proc, base, client)
            assert proc.wait() == 0, proc.stderr.read().decode()
            health = _wait_for(base, client, k)
            counts.append(k)
            assert health["status"] == "ok"
            assert health["window"]["captures"] == k
        assert counts == sorted(counts), counts  # results only grow
        assert set(counts) >= {1, 2, 4, 6}
        flows = client.get(base + "/api/v1/flows?limit=1").json()["total"]
        con = duckdb.connect(db, read_only=True)
        try:
            assert flows == con.execute("SELECT count(*) FROM flows").fetchone()[0]
        finally:
            con.close()
    assert Path(snapshot.serving_path(db)).exists()
