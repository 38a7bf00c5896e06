"""`sorf sense` over weeks, in small: kill -9 keeps what was committed, the ring rotates and evidence says when its
file is gone, --serve shows live data and SIGHUP reloads the zone file. Traffic is a capture replayed (tcpreplay)
from a peer namespace through the switch, so the sensor sees it on the mirror port as it would on a SPAN port."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from sorf.cli import main as sorf
from tests.helpers import netns
from tests.helpers.paths import ROOT

from .conftest import _await_line

DEMO = str(ROOT / "captures" / "demo-plant.pcap")
ZONES = ROOT / "captures" / "demo-zones.yaml"


@pytest.fixture
def rig():
    if reason := netns.available() or (None if shutil.which("tcpreplay") else "tcpreplay is not installed"):
        pytest.fail(reason)
    with netns.Rig(["plc"]) as rig:
        yield rig


def _sense(rig: netns.Rig, db: Path, *more: str) -> subprocess.Popen:
    """sorf sense on the mirror port, once it says it captures; what it said until then is its ``said``."""
    sense = rig.start("obs", sys.executable, "-m", "sorf", "sense", "--iface", netns.OBS, "--db", str(db),
                      "--sensor", "obs", *more, stderr=subprocess.PIPE, cwd=ROOT)  # fmt: skip
    sense.said = _await_line(sense, "capturing on")  # type: ignore[attr-defined]
    return sense


def _replay(rig: netns.Rig, *options: str) -> None:
    rig.run("plc", "tcpreplay", "-q", "-i", "eth0", *options, DEMO, timeout=120)


def _stop(sense: subprocess.Popen) -> str:
    sense.send_signal(signal.SIGTERM)
    _, err = sense.communicate(timeout=60)
    assert sense.returncode == 0, err
    return err.decode()


def _rows(db: Path, query: str) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(query).fetchall()
    finally:
        con.close()


def _consistent(db: Path) -> None:
    """A database a sensor wrote, whatever happened to it: every flow once, every record's flow there."""
    ((flows, distinct),) = _rows(db, "SELECT count(*), count(DISTINCT flow_id) FROM flows")
    assert flows == distinct
    for table in ("operations", "identities"):
        orphans = _rows(db, f"SELECT count(*) FROM {table} t ANTI JOIN flows USING (flow_id)")
        assert orphans == [(0,)], table


def test_kill_9_loses_at_most_the_last_commit_and_the_next_run_marks_it(rig, tmp_path):
    db = tmp_path / "live.duckdb"
    sense = _sense(rig, db, "--commit-seconds", "0.5")
    _replay(rig, "--pps", "2000")
    time.sleep(2)  # several commits after the last packet
    sense.kill()
    sense.wait()
    ((status, packets),) = _rows(db, "SELECT status, packets FROM captures")
    assert (status, packets) == ("sensing", 239), "the capture row as of the last commit"
    _consistent(db)
    assert sorf(["ingest", DEMO, "--db", str(tmp_path / "file.duckdb")]) == 0
    query = "SELECT frame, protocol, function_code, access_class, details FROM operations ORDER BY ALL"
    assert _rows(db, query) == _rows(tmp_path / "file.duckdb", query), "everything before the kill was committed"
    # killed in the middle of a flood of packets: what is there is whole
    sense = _sense(rig, db, "--commit-seconds", "0.2")
    assert "captures 1 were left open" in sense.said
    replay = rig.start("plc", "tcpreplay", "-q", "-i", "eth0", "--loop", "5000", "--pps", "100000", DEMO,
                       stdout=subprocess.DEVNULL)  # fmt: skip
    time.sleep(2)
    sense.kill()
    sense.wait()
    replay.kill()
    _consistent(db)
    sense = _sense(rig, db)
    _stop(sense)
    assert "captures 2 were left open" in sense.said
    assert _rows(db, "SELECT capture_id, status FROM captures ORDER BY 1") == [
        (1, "interrupted"), (2, "interrupted"), (3, "ok")
    ]  # fmt: skip


def test_the_ring_rotates_and_evidence_of_a_rotated_file_says_it_is_gone(rig, tmp_path, capsys):
    db, ring = tmp_path / "live.duckdb", tmp_path / "ring"
    sense = _sense(rig, db, "--ring", str(ring), "--ring-size", "1", "--ring-files", "2")
    _replay(rig, "--loop", "120", "--pps", "20000")  # 239 x 120 packets, 2.6 MB in pcap records: three files
    _stop(sense)
    captures = _rows(db, "SELECT capture_id, path, status, error, sha256 FROM captures ORDER BY 1")
    assert len(captures) == 3
    kept = sorted(str(p) for p in ring.iterdir())
    assert [c[1] for c in captures[1:]] == kept and all(c[2] == "ok" and c[4] for c in captures[1:])
    for _, path, status, error, _ in captures[:1]:
        assert status == "rotated" and not os.path.exists(path)
        assert "ring file deleted at" in error and "to keep the newest 2" in error
    # the files kept are what sense recorded from them: ingesting them gives the same rows
    assert sorf(["ingest", *kept, "--db", str(tmp_path / "file.duckdb")]) == 0
    query = "SELECT * EXCLUDE (capture_id, flow_id) FROM operations WHERE capture_id >= {} ORDER BY ALL"
    assert _rows(db, query.format(2)) == _rows(tmp_path / "file.duckdb", query.format(1))
    analysis = _analyse_json("--db", str(db))
    delta = next(d for d in analysis["deltas"] if (d["evidence"] or {}).get("first", {}).get("capture_id") == 1)
    out = tmp_path / "evidence.pcapng"
    assert sorf(["evidence", delta["id"], "--db", str(db), "--zones", str(ZONES), "--out", str(out)]) != 0
    said = capsys.readouterr().err
    assert f"capture 1 ({captures[0][1]}) was a ring file of `sorf sense`: ring file deleted at" in said


def _health(rig: netns.Rig, port: int) -> dict:
    code = (
        f"import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:{port}/api/v1/health').read().decode())"
    )
    return json.loads(rig.run("obs", sys.executable, "-c", code))


def _all_in(health: dict) -> bool:
    """Has the page analysed every packet of the replay (its operations, and the interval that counted them)?"""
    drops = health["window"]["drops"]
    return health["rows"]["operations"] == 163 and bool(drops) and drops[0]["packets"] == 239


def test_serve_shows_live_data_and_sighup_reloads_the_zone_file(rig, tmp_path):
    db, zones, port = tmp_path / "live.duckdb", tmp_path / "zones.yaml", 8845
    zones.write_text(ZONES.read_text())
    rig.run("obs", "ip", "link", "set", "lo", "up")
    sense = _sense(rig, db, "--serve", "--zones", str(zones), "--port", str(port), "--commit-seconds", "0.5")
    try:
        _replay(rig, "--pps", "2000")
        deadline = time.monotonic() + 30
        while not _all_in(health := _health(rig, port)):
            assert time.monotonic() < deadline, health
            time.sleep(0.3)
        assert health["sensors"][0]["sensor"] == "obs" and health["sensors"][0]["rss_bytes"] > 10 << 20
        assert health["window"]["drops"][0]["kernel_drops"] == 0
        before = zones.stat()
        zones.write_text(ZONES.read_text().replace("site:", "site: reloaded-", 1))
        os.utime(zones, ns=(before.st_atime_ns, before.st_mtime_ns))  # the same time: only SIGHUP says it changed
        sense.send_signal(signal.SIGHUP)
        while not (health := _health(rig, port))["site"].startswith("reloaded-"):
            assert time.monotonic() < deadline, health
            time.sleep(0.3)
    finally:
        err = _stop(sense)
    assert "SIGHUP: reading the zone file again" in err


def test_a_sensor_exports_its_tables_for_the_fleet_as_it_goes(rig, tmp_path):
    """--export: the box writes the Parquet of `sorf export` itself (no other process may open its database)."""
    db, out = tmp_path / "live.duckdb", tmp_path / "fleet"
    sense = _sense(rig, db, "--export", str(out))
    _replay(rig, "--pps", "2000")
    assert "exported to" in _stop(sense)
    by_db, by_data = (_analyse_json(flag, str(where)) for flag, where in (("--db", db), ("--data", out)))
    assert by_db.pop("database") and by_data.pop("database")
    assert by_db == by_data and by_db["deltas"]


def _analyse_json(*where: str) -> dict:
    done = subprocess.run([sys.executable, "-m", "sorf", "analyse", *where, "--zones", str(ZONES), "--format", "json"],
                          capture_output=True, check=True, cwd=ROOT)  # fmt: skip
    return json.loads(done.stdout)
