"""Many sensors: `sorf export` and `--data` (docs/fleet.md).

Two sensors' databases (a: the demo capture; b: two corpus captures, both numbered from 1), exported into one
folder, analyse, serve and copy evidence exactly as one database that ingested a's captures and then b's: the
analysis output differs only in its "database" field, which names what was read. Files are renamed into place
(a reader never sees half a file), a re-export replaces a sensor's files and another sensor's adds beside them,
and a folder that is not an export says so in one line.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from fastapi.testclient import TestClient

from analyser.api import create_app
from analyser.serve import ExportFeed, Source
from sensor.export import PART, export, placeholder
from sorf.cli import main as sorf
from tests.helpers.paths import ROOT, SHARED

DEMO = ROOT / "captures" / "demo-plant.pcap"
ZONES = str(ROOT / "captures" / "demo-zones.yaml")
B_CAPTURES = [SHARED / "modbus" / "modbus_test.pcap", SHARED / "enip" / "cip-multiple-1.pcap"]


def _ingest(db: Path, captures: list[Path], sensor: str | None) -> None:
    named = ["--sensor", sensor] if sensor else []
    assert sorf(["ingest", *map(str, captures), "--db", str(db), "--jobs", "1", "--json", *named]) == 0


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    """a.duckdb, b.duckdb, one.duckdb (a's captures, then b's) and their export, DIR."""
    tmp = tmp_path_factory.mktemp("fleet")
    _ingest(tmp / "a.duckdb", [DEMO], "a")
    _ingest(tmp / "b.duckdb", B_CAPTURES, "b")
    _ingest(tmp / "one.duckdb", [DEMO], "a")
    _ingest(tmp / "one.duckdb", B_CAPTURES, "b")
    for name in ("b", "a"):  # the order of the exports does not matter
        export(str(tmp / f"{name}.duckdb"), str(tmp / "data"))
    return tmp


def _run(capsys, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = sorf(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def _analysis(capsys, *site: str) -> str:
    """`sorf analyse --format json`, without the line naming the database or folder read."""
    code, out, err = _run(capsys, "analyse", *site, "--zones", ZONES, "--format", "json")
    assert code == 0, err
    lines = out.splitlines(keepends=True)
    assert sum(line.startswith('  "database": ') for line in lines) == 1
    return "".join(line for line in lines if not line.startswith('  "database": '))


def test_data_equals_one_database_of_the_same_captures(fleet, capsys):
    one = _analysis(capsys, "--db", str(fleet / "one.duckdb"))
    assert _analysis(capsys, "--data", str(fleet / "data")) == one
    assert '"sensors": [\n      "a",\n      "b"\n    ]' in one  # both sensors are in it
    export(str(fleet / "one.duckdb"), str(fleet / "from-one"))  # one database of two sensors exports the same
    assert _analysis(capsys, "--data", str(fleet / "from-one")) == one


def test_capture_and_flow_ids_are_those_of_one_database(fleet):
    from analyser.observe import connect, connect_export

    queries = [
        "SELECT capture_id, sensor, path, sha256 FROM captures ORDER BY ALL",
        "SELECT flow_id, capture_id, first_frame, src_ip, dst_ip FROM flows ORDER BY ALL",
        "SELECT capture_id, frame, flow_id, function_name FROM operations ORDER BY ALL",
        "SELECT * FROM assets ORDER BY ip",
    ]
    one, data = connect(str(fleet / "one.duckdb")), connect_export(str(fleet / "data"))
    try:
        for sql in queries:
            assert data.execute(sql).fetchall() == one.execute(sql).fetchall(), sql
    finally:
        one.close()
        data.close()


def test_evidence_from_data_equals_evidence_from_the_database(fleet, capsys):
    from analyser.deltas import analyse
    from analyser.zones import load_zone_file

    deltas = analyse(str(fleet / "one.duckdb"), load_zone_file(ZONES)).deltas
    with_frames = [d for d in deltas if d.traffic.first is not None][:3]
    assert with_frames
    for delta in with_frames:
        outs = []
        for n, site in enumerate((["--db", str(fleet / "one.duckdb")], ["--data", str(fleet / "data")])):
            out = fleet / f"evidence-{delta.id}-{n}.pcapng"
            code, _, err = _run(capsys, "evidence", delta.id, *site, "--zones", ZONES, "--out", str(out))
            assert code == 0, err
            outs.append(out.read_bytes())
        assert outs[0] == outs[1], delta.id


def _same_captures(page: dict) -> dict:
    """A page without the captures' ingested_at: the time each box ingested them, not that of one database."""
    for item in page.get("items", []):
        item.pop("ingested_at", None)
    return page


def test_serve_data_answers_as_the_database(fleet):
    paths = ["/api/v1/deltas", "/api/v1/conduits/observed", "/api/v1/captures", "/api/v1/flows?limit=1000",
             "/api/v1/assets?limit=1000", "/api/v1/operations?limit=50&offset=100"]  # fmt: skip
    data = str(fleet / "data")
    with TestClient(create_app(str(fleet / "one.duckdb"), ZONES)) as one:
        expected = {p: _same_captures(one.get(p).json()) for p in paths}
    with TestClient(create_app(data, ZONES, source=Source(data, ZONES, feed=ExportFeed(data)))) as c:
        for p in paths:
            r = c.get(p)
            assert r.status_code == 200, (p, r.text)
            assert _same_captures(r.json()) == expected[p], p
        health = c.get("/api/v1/health").json()
    assert health["status"] == "ok" and health["database"] == data and health["database_bytes"] > 0


def test_a_changed_export_is_served_anew(fleet, tmp_path):
    data = tmp_path / "data"
    export(str(fleet / "a.duckdb"), str(data))
    src = Source(str(data), ZONES, poll_s=60, feed=ExportFeed(str(data)))
    try:
        assert src.state.analysis.window.sensors == ["a"]
        assert not src.refresh()  # nothing changed
        export(str(fleet / "b.duckdb"), str(data))
        assert src.refresh()
        assert src.state.analysis.window.sensors == ["a", "b"]
    finally:
        src.close()


def _files(folder: Path) -> dict[str, int]:
    """Every file under an export, hidden ones too -> its inode (a file renamed into place is a new one)."""
    return {str(p.relative_to(folder)): p.stat().st_ino for p in sorted(folder.rglob("*")) if p.is_file()}


def test_layout_reexport_replaces_and_another_sensor_adds_beside(fleet, tmp_path):
    data = tmp_path / "data"
    export(str(fleet / "a.duckdb"), str(data))
    first = _files(data)
    assert "flows/sensor=a/day=2026-01-05/" + PART in first
    assert "captures/sensor=a/" + PART in first and "meta/sensor=a/" + PART in first
    assert not any("assets" in f for f in first)  # derived: rebuilt on reading
    assert not any(Path(f).name.startswith(".") for f in first)
    export(str(fleet / "a.duckdb"), str(data))
    again = _files(data)
    assert again.keys() == first.keys()  # the same files, each replaced
    assert all(again[f] != first[f] for f in first)
    export(str(fleet / "b.duckdb"), str(data))
    both = _files(data)
    assert {f: both[f] for f in first} == again  # a's untouched
    assert any("sensor=b" in f for f in both) and all("sensor=" in f for f in both)


def test_files_the_export_did_not_write_go_and_other_sensors_stay(fleet, tmp_path):
    data = tmp_path / "data"
    export(str(fleet / "a.duckdb"), str(data))
    old_day = data / "flows" / "sensor=a" / "day=1999-01-01"
    old_day.mkdir()
    shutil.copy(data / "flows" / "sensor=a" / "day=2026-01-05" / PART, old_day / PART)
    killed = data / "flows" / "sensor=a" / "day=2026-01-05" / f".{PART}.99999.tmp"
    killed.write_bytes(b"half a file")
    other = data / "flows" / "sensor=z" / "day=2026-01-05"
    other.mkdir(parents=True)
    shutil.copy(old_day / PART, other / PART)
    assert export(str(fleet / "a.duckdb"), str(data)).removed == 2
    assert not old_day.exists() and not killed.exists() and (other / PART).exists()


def test_a_temporary_file_is_not_read(fleet, capsys, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(fleet / "data", data)
    for part in data.glob(f"*/sensor=*/**/{PART}"):
        (part.parent / f".{PART}.12345.tmp").write_bytes(b"PAR1 half written")
    assert _analysis(capsys, "--data", str(data)) == _analysis(capsys, "--data", str(fleet / "data"))


KILLED_EXPORT = """
import os, signal, sys
import pyarrow.parquet as pq

write = pq.ParquetWriter.write_batch


def write_then_die(self, *args, **kwargs):
    write(self, *args, **kwargs)
    if sys.argv[3] in str(self.where):
        os.kill(os.getpid(), signal.SIGKILL)


pq.ParquetWriter.write_batch = write_then_die
from sensor.export import export

export(sys.argv[1], sys.argv[2])
"""


def test_a_killed_export_leaves_no_partial_file_under_a_final_name(fleet, capsys, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(fleet / "data", data)
    before = {p: p.read_bytes() for p in data.rglob(PART)}
    command = [sys.executable, "-c", KILLED_EXPORT, str(fleet / "b.duckdb"), str(data), "operations"]
    run = subprocess.run(command, check=False, cwd=ROOT, capture_output=True)
    assert run.returncode == -9, run.stderr
    left = [p for p in data.rglob("*.tmp") if p.stat().st_size]
    assert len(left) == 1 and left[0].name.startswith(".") and "operations/sensor=b" in str(left[0])
    final = left[0].with_name(PART)
    assert final.read_bytes() == before[final]  # the earlier export's file, whole
    assert _analysis(capsys, "--data", str(data)) == _analysis(capsys, "--data", str(fleet / "data"))
    export(str(fleet / "b.duckdb"), str(data))
    assert not list(data.rglob("*.tmp"))


def test_a_capture_without_a_sensor_is_exported_under_the_database_stem(fleet, tmp_path):
    db = tmp_path / "substation 7.duckdb"
    _ingest(db, [DEMO], None)
    assert placeholder(str(db)) == "substation_7"
    done = export(str(db), str(tmp_path / "data"))
    assert done.sensors == ["substation_7"]
    assert (tmp_path / "data" / "captures" / "sensor=substation_7" / PART).exists()
    con = duckdb.connect()
    try:
        rows = con.execute("SELECT * FROM read_parquet(?, hive_partitioning = true)",
                           [str(tmp_path / "data" / "captures" / "*" / PART)]).fetchall()  # fmt: skip
    finally:
        con.close()
    assert len(rows) == 1


def _one_line_error(code: int, out: str, err: str, path: str) -> None:
    assert code == 2 and out == ""
    assert len(err.splitlines()) == 1 and err.startswith("sorf: ") and path in err, err
    assert "Traceback" not in err


def _free_port() -> str:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return str(s.getsockname()[1])


@pytest.mark.parametrize("command", ["analyse", "serve", "evidence"])
def test_an_empty_folder_is_not_an_export(command, capsys, tmp_path):
    extra = {"evidence": ["deadbeef0000", "--out", str(tmp_path / "e.pcapng")], "serve": ["", "--port", _free_port()]}
    extra = extra.get(command, [])
    head, tail = [command, *extra[:1]] if command == "evidence" else [command], extra[1:]
    code, out, err = _run(capsys, *head, "--data", str(tmp_path), "--zones", ZONES, *tail)
    if command == "serve":  # it says what it reads first
        assert err.startswith("sorf: analysing ")
        err = err.split("\n", 1)[1]
    _one_line_error(code, out, err, str(tmp_path))
    assert "not a sorf export" in err


def test_a_file_that_is_not_parquet_is_named(fleet, capsys, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(fleet / "data", data)
    bad = next(iter(sorted(data.glob(f"flows/sensor=b/*/{PART}"))))
    bad.write_text("flows, but as text\n" * 10)
    code, out, err = _run(capsys, "analyse", "--data", str(data), "--zones", ZONES)
    _one_line_error(code, out, err, str(bad))


def test_a_missing_table_is_named(fleet, capsys, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(fleet / "data", data)
    shutil.rmtree(data / "operations")
    code, out, err = _run(capsys, "analyse", "--data", str(data), "--zones", ZONES)
    _one_line_error(code, out, err, str(data))
    assert "no operations table" in err


def test_export_of_what_is_not_a_database_says_so(capsys, tmp_path):
    for db in (tmp_path / "none.duckdb", DEMO):
        code, out, err = _run(capsys, "export", "--db", str(db), "--out", str(tmp_path / "data"))
        _one_line_error(code, out, err, str(db))
    assert not (tmp_path / "data").exists()


def test_a_sensor_name_that_is_not_a_folder_name_is_refused(capsys, tmp_path):
    db = tmp_path / "x.duckdb"
    _ingest(db, [DEMO], "north/7")
    code, out, err = _run(capsys, "export", "--db", str(db), "--out", str(tmp_path / "data"))
    _one_line_error(code, out, err, str(db))
    assert "'north/7'" in err and not (tmp_path / "data").exists()


def test_db_and_data_exclude_each_other(capsys, tmp_path):
    with pytest.raises(SystemExit) as exc:
        sorf(["analyse", "--db", "x.duckdb", "--data", str(tmp_path), "--zones", ZONES])
    assert exc.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_the_export_leaves_the_database_as_it_was(fleet, tmp_path):
    db = tmp_path / "a.duckdb"
    shutil.copy(fleet / "a.duckdb", db)
    before = (db.read_bytes(), db.stat().st_mtime_ns)
    export(str(db), str(tmp_path / "data"))
    assert (db.read_bytes(), db.stat().st_mtime_ns) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.duckdb", "data"]  # no .wal, nothing beside it


HOLD = "import duckdb, sys, time; con = duckdb.connect(sys.argv[1]); print('held', flush=True); time.sleep(60)"


def test_a_database_another_process_writes_is_exported_from_its_snapshot(fleet, capsys, tmp_path):
    db = tmp_path / "a.duckdb"
    shutil.copy(fleet / "a.duckdb", db)
    writer = subprocess.Popen([sys.executable, "-c", HOLD, str(db)], stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout is not None and writer.stdout.readline() == "held\n"
        code, out, err = _run(capsys, "export", "--db", str(db), "--out", str(tmp_path / "data"))
        _one_line_error(code, out, err, str(db))
        assert "another process writes it" in err
        shutil.copy(fleet / "a.duckdb", str(db) + ".snapshot")  # as a server's lock makes the writer publish
        done = export(str(db), str(tmp_path / "data"))
    finally:
        writer.kill()
        writer.wait()
    assert done.source == str(db) + ".snapshot" and done.sensors == ["a"]
    assert _analysis(capsys, "--data", str(tmp_path / "data")) == _analysis(capsys, "--db", str(fleet / "a.duckdb"))


def test_sensor_stats_are_renumbered_with_their_captures(fleet, tmp_path):
    from analyser.observe import connect_export

    db = tmp_path / "b.duckdb"
    shutil.copy(fleet / "b.duckdb", db)
    con = duckdb.connect(str(db))
    try:
        sql = "INSERT INTO sensor_stats (sensor, capture_id, ts, packets) VALUES ('b', 2, ?, 10), ('b', NULL, ?, 20)"
        con.execute(sql, ["2026-12-08 01:00:00", "2026-12-08 02:00:00"])
    finally:
        con.close()
    export(str(fleet / "a.duckdb"), str(tmp_path / "data"))
    export(str(db), str(tmp_path / "data"))
    assert (tmp_path / "data" / "sensor_stats" / "sensor=b" / "day=2026-12-08" / PART).exists()
    data = connect_export(str(tmp_path / "data"))
    try:
        rows = data.execute("SELECT sensor, capture_id, packets FROM sensor_stats ORDER BY packets").fetchall()
    finally:
        data.close()
    assert rows == [("b", 3, 10), ("b", None, 20)]  # b's capture 2 follows a's one capture
