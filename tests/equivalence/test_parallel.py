"""`sorf ingest --jobs N`: captures read in worker processes and merged into one
database give the same database, summary and exit code as a serial run, bad input
included. Nothing here measures time."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import duckdb
import pytest

from sensor import parallel
from sorf.cli import main as sorf
from tests.helpers.paths import SHARED

CAPTURES = SHARED
CORPUS = [
    CAPTURES / "modbus" / "modbus_test.pcap",
    CAPTURES / "s7comm" / "s7comm_reading_plc_status.pcap",
    CAPTURES / "s7comm" / "step7_s300_readDiagData.pcapng",  # pcapng
    CAPTURES / "s7comm_plus" / "S7-1200-Uploading-OB1-TIAV12.pcap",
    CAPTURES / "dnp3" / "zeek_dnp3.pcap",
    CAPTURES / "dnp3" / "opendnp3_conformance_6.4.2_empty.pcap",  # a valid file with no packet
    CAPTURES / "enip" / "icsnpp_enip_cip_example.pcap",
    CAPTURES / "enip" / "icsnpp_multiple_service_packet_cip.pcapng",  # pcapng
]
SPARE = [  # for the worker failures: not in CORPUS, so their copies are new captures
    CAPTURES / "modbus" / "zeek_modbusSmall.pcap",
    CAPTURES / "dnp3" / "zeek_dnp3_udp_read.pcap",
]


def test_corpus_is_there():
    for path in CORPUS + SPARE:
        assert path.is_file(), f"missing {path}: the tests read ../shared/captures"


@pytest.fixture
def inputs(tmp_path) -> list[Path]:
    """Mixed good captures, and bad input: a damaged copy and its byte-identical twin,
    a text file, an empty file, a missing path, and one file named twice."""
    bad = tmp_path / "in"
    bad.mkdir()
    data = CORPUS[0].read_bytes()
    cut = bad / "modbus_cut.pcap"
    cut.write_bytes(data[: len(data) // 2])  # truncated in the middle of a record
    twin = bad / "modbus_cut_twin.pcap"
    twin.write_bytes(cut.read_bytes())
    notes = bad / "notes.pcap"
    notes.write_text("# capture notes\nswitch port 12 mirrored to the sensor\n")
    empty = bad / "empty.pcapng"
    empty.write_bytes(b"")
    c = CORPUS
    return [c[0], cut, c[1], notes, c[2], c[3], twin, bad / "missing.pcap", c[4], c[5], empty, c[6], c[1], c[7]]


def run(capture, db: Path, paths: list[Path], *extra: str) -> tuple[int, dict, str]:
    capture.readouterr()
    rc = sorf(["ingest", *map(str, paths), "--db", str(db), "--json", *extra])
    out, err = capture.readouterr()
    assert "Traceback" not in out + err
    summary = json.loads(out)
    summary.pop("database")
    return rc, summary, err


def dump(db: Path) -> dict[str, list[tuple]]:
    """Every table, every row (but when each capture was ingested).

    assets.identity is compared as text: the order of its keys is the order in which
    json_group_object (store.ASSETS_REBUILD) meets the rows, which is the same when the
    tables hold the same rows in the same order and DuckDB runs one thread (Store
    sets threads=1). With several threads it can differ between two serial runs."""
    with duckdb.connect(str(db), read_only=True) as con:
        tables = {
            "captures": con.execute("SELECT * EXCLUDE (ingested_at) FROM captures ORDER BY capture_id").fetchall()
        }
        for table in ("flows", "operations", "identities", "anomalies", "assets", "meta"):
            tables[table] = con.execute(f"SELECT * FROM {table} ORDER BY ALL").fetchall()
        # and in the same physical order, as a serial run inserts them
        for table in ("flows", "operations", "identities", "anomalies"):
            tables[f"{table} (as stored)"] = con.execute(f"SELECT * FROM {table}").fetchall()
    return tables


@pytest.fixture(params=[0, 50_000], ids=["all-in-workers", "small-ones-in-parent"])
def small(request, monkeypatch) -> int:
    """Captures under parallel.SMALL bytes are read by the parent itself, in their
    turn; 0 sends every one to a worker, so that the corpus files exercise the merge."""
    monkeypatch.setattr(parallel, "SMALL", request.param)
    return request.param


def test_parallel_equals_serial(tmp_path, capsys, inputs, small):
    serial, par = tmp_path / "serial.duckdb", tmp_path / "parallel.duckdb"
    rc_s, sum_s, err_s = run(capsys, serial, inputs, "--jobs", "1")
    rc_p, sum_p, err_p = run(capsys, par, inputs, "--jobs", "2")
    assert rc_s == rc_p == 1
    assert sum_p == sum_s  # results in input order, capture_ids, messages, counts
    assert err_p == err_s
    assert dump(par) == dump(serial)

    statuses = [f["status"] for f in sum_p["files"]]
    # the missing path is reported first, as serial reports it
    assert statuses[0] == "unreadable" and sum_p["files"][0]["path"].endswith("missing.pcap")
    assert statuses.count("duplicate") == 2  # the damaged twin, and the file named twice
    twin = next(f for f in sum_p["files"] if f["path"].endswith("modbus_cut_twin.pcap"))
    assert twin["status"] == "duplicate" and "it was damaged then: truncated record" in twin["message"]
    assert sum_p["captures"] == len(CORPUS) + 1  # the corpus and the damaged copy
    with duckdb.connect(str(par), read_only=True) as con:
        ids = [row[0] for row in con.execute("SELECT capture_id FROM captures ORDER BY capture_id").fetchall()]
        assert ids == list(range(1, len(CORPUS) + 2))
        assert con.execute("SELECT count(*) FROM flows WHERE flow_id >> 32 != capture_id").fetchone() == (0,)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".sorf-")]  # the workers' databases are gone

    # again, into the same databases: nothing new
    before = dump(par)
    rc_s2, sum_s2, _ = run(capsys, serial, inputs, "--jobs", "1")
    rc_p2, sum_p2, _ = run(capsys, par, inputs, "--jobs", "2")
    assert (rc_p2, sum_p2) == (rc_s2, sum_s2)
    assert dump(par) == before
    assert sum_p2["captures"] == 0 and sum_p2["packets"] == 0
    assert {f["status"] for f in sum_p2["files"]} == {"duplicate", "unreadable"}

    # captures left 'ingesting' by an interrupted run are replaced, numbered as serial numbers them;
    # one was still being hashed (no sha256 yet, sensor/ingest.py)
    for db in (serial, par):
        with duckdb.connect(str(db)) as con:
            con.execute("UPDATE captures SET status = 'ingesting' WHERE capture_id IN (2, 5)")
            con.execute("UPDATE captures SET sha256 = NULL WHERE capture_id = 5")
    rc_s3, sum_s3, _ = run(capsys, serial, inputs, "--jobs", "1")
    rc_p3, sum_p3, _ = run(capsys, par, inputs, "--jobs", "2")
    assert (rc_p3, sum_p3) == (rc_s3, sum_s3)
    assert sum_p3["captures"] == 2
    assert dump(par) == dump(serial)


def test_byte_identical_files_in_one_run(tmp_path, capsys, small):
    a, b = tmp_path / "a.pcap", tmp_path / "b.pcap"
    a.write_bytes(CORPUS[0].read_bytes())
    b.write_bytes(CORPUS[0].read_bytes())
    paths = [a, CORPUS[4], b]
    rc_s, sum_s, _ = run(capsys, tmp_path / "serial.duckdb", paths, "--jobs", "1")
    rc_p, sum_p, _ = run(capsys, tmp_path / "parallel.duckdb", paths, "--jobs", "2")
    assert (rc_p, sum_p) == (rc_s, sum_s) and rc_p == 0
    assert [f["status"] for f in sum_p["files"]] == ["ok", "ok", "duplicate"]
    assert "already ingested as capture 1 (same sha256)" in sum_p["files"][2]["message"]
    assert dump(tmp_path / "parallel.duckdb") == dump(tmp_path / "serial.duckdb")


def test_default_jobs_is_parallel_and_the_same(tmp_path, capsys, inputs, monkeypatch):
    """No --jobs: one per CPU (here at least 2, so that the parallel path runs)."""
    monkeypatch.setattr(parallel, "SMALL", 0)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    rc_s, sum_s, _ = run(capsys, tmp_path / "serial.duckdb", inputs, "--jobs", "1")
    rc_p, sum_p, _ = run(capsys, tmp_path / "parallel.duckdb", inputs)
    assert (rc_p, sum_p) == (rc_s, sum_s)
    assert dump(tmp_path / "parallel.duckdb") == dump(tmp_path / "serial.duckdb")


def test_overall_progress(tmp_path, monkeypatch):
    monkeypatch.setattr(parallel, "SMALL", 0)
    calls = []
    results = parallel.ingest(
        map(str, CORPUS[:4]), str(tmp_path / "p.duckdb"), jobs=2, overall=lambda *a: calls.append(a)
    )
    assert [r.status for r in results] == ["ok"] * 4
    assert calls
    _, done, total, packets = calls[-1]
    assert (done, total, packets) == (4, 4, sum(r.packets for r in results))
    assert all(0 <= c[1] <= c[2] == 4 for c in calls)


def test_jobs_must_be_a_positive_number(tmp_path, capsys):
    for bad in ("0", "-1", "two"):
        with pytest.raises(SystemExit) as exc:
            sorf(["ingest", str(CORPUS[0]), "--db", str(tmp_path / "x.duckdb"), "--jobs", bad])
        assert exc.value.code == 2
    assert not (tmp_path / "x.duckdb").exists()


# --------------------------------------------------------------------------- a worker that fails


def test_exception_in_a_worker_is_an_unreadable_result(tmp_path, monkeypatch):
    """The worker function itself (run here, in this process) turns an exception
    raised while ingesting into an 'unreadable' result with the error's text."""

    def broken(*args, **kwargs):
        raise ValueError("a bug in a dissector")

    monkeypatch.setattr(parallel, "ingest_file", broken)
    result = parallel._work(3, str(CORPUS[0]), "0" * 64, str(tmp_path / "w.duckdb"), None)
    assert (result.path, result.status, result.capture_id) == (str(CORPUS[0]), "unreadable", None)
    assert result.message == "could not be ingested: ValueError: a bug in a dissector"


def flaky_work(index: int, path: str, digest: str, db: str, sensor: str | None):
    """Runs in the worker process in place of parallel._work: raises for a file
    named boom*, kills its own process for die*, and is the real worker otherwise."""
    name = os.path.basename(path)
    if name.startswith("boom"):
        raise RuntimeError("injected failure")
    if name.startswith("die"):
        os._exit(7)  # as the kernel's OOM killer would end it: no exception, no result
    return parallel._work(index, path, digest, db, sensor)


def test_a_failing_worker_costs_only_its_file(tmp_path, capfd, monkeypatch):
    """capfd, not capsys: what the worker processes write goes to the file descriptors."""
    monkeypatch.setattr(parallel, "SMALL", 0)
    monkeypatch.setattr(parallel, "_work", flaky_work)  # what the parent sends to the pool
    boom, die = tmp_path / "boom.pcap", tmp_path / "die.pcap"
    shutil.copy(SPARE[0], boom)
    shutil.copy(SPARE[1], die)
    good = CORPUS[:5]
    paths = [good[0], boom, good[1], good[2], die, good[3], good[4]]

    rc_p, sum_p, _ = run(capfd, tmp_path / "parallel.duckdb", paths, "--jobs", "2")  # no traceback either
    _, sum_s, _ = run(capfd, tmp_path / "serial.duckdb", good, "--jobs", "1")  # what is left without them
    assert rc_p == 1
    files = {Path(f["path"]).name: f for f in sum_p["files"]}
    assert (files["boom.pcap"]["status"], files["boom.pcap"]["message"]) == (
        "unreadable", "could not be ingested: RuntimeError: injected failure")  # fmt: skip
    assert files["die.pcap"]["status"] == "unreadable" and "ended abruptly" in files["die.pcap"]["message"]
    # every other file is in, numbered as if the two had never been given
    assert [f for f in sum_p["files"] if f["status"] != "unreadable"] == sum_s["files"]
    assert dump(tmp_path / "parallel.duckdb") == dump(tmp_path / "serial.duckdb")
