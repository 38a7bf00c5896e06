"""The database failing (issue 12, section 2): out of memory, the disk full, a file size
limit, the file locked by another process, a file that is not a DuckDB database, a
read-only folder. Each gives one line naming the database, what happened and what to
do, and exit 2; nothing committed is lost, and running the same command again (once
the cause is gone) gives what a clean ingest gives, without duplicates.

The disk and read-only cases mount a tmpfs or a read-only bind mount, and so need root
(they are skipped otherwise); the permission cases run `sorf` as nobody with setpriv.
A kill -9 during an ingest is tests/equivalence/test_parallel.py's and test_walk_apart.py's.
"""

from __future__ import annotations

import contextlib
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import duckdb
import pytest

import sensor.store
from sensor.failures import DATABASE_FAILURES, database_failure
from sorf.cli import main as sorf
from tests.helpers.net import free_port
from tests.helpers.paths import ROOT

CAPTURES = ROOT.parent / "shared" / "captures"
GOOD = CAPTURES / "modbus" / "zeek_modbusSmall.pcap"  # 15 kB
MODBUS = CAPTURES / "modbus" / "modbus_test.pcap"  # 198 kB, 2257 frames
BIG = CAPTURES / "mixed" / "zeek_modbusBig.pcap"  # 1.2 MB: big enough for a worker (sensor/parallel.py SMALL)
LARGE = CAPTURES / "modbus" / "iti_ModbusTCP_large.pcap"  # 1.5 MB
ZONES = ROOT / "captures" / "demo-zones.yaml"
RUN = [MODBUS, BIG, LARGE]
TABLES = ("captures", "flows", "operations", "identities", "anomalies", "assets")
RAW = ("Error:", "Possible solutions", "duckdb.org", "Traceback", "SET ")  # DuckDB's own words, not sorf's line


def one_line(err: str, db: Path | str) -> str:
    """The one line sorf printed about the database: nothing raw, nothing else."""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    (line,) = lines
    assert line.startswith(f"sorf: {db}: "), line
    assert not any(raw in line for raw in RAW), line
    return line


def ingest(capsys, db, paths, jobs: int = 1) -> tuple[int, str]:
    rc = sorf(["ingest", *map(str, paths), "--db", str(db), "--jobs", str(jobs)])
    return rc, capsys.readouterr().err


def counts(db) -> dict[str, int]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        found = {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}
        found["distinct sha256"] = con.execute("SELECT count(DISTINCT sha256) FROM captures").fetchone()[0]
        found["not ok"] = con.execute("SELECT count(*) FROM captures WHERE status <> 'ok'").fetchone()[0]
        return found
    finally:
        con.close()


def kept(db) -> dict[str, int]:
    """Packets per capture path of the captures committed (not left 'ingesting')."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        return dict(con.execute("SELECT path, packets FROM captures WHERE status <> 'ingesting'").fetchall())
    finally:
        con.close()


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    """What a clean ingest of some captures gives, computed once per set of captures."""
    cache: dict[tuple, tuple[dict, dict]] = {}

    def of(paths) -> tuple[dict[str, int], dict[str, int]]:
        key = tuple(map(str, paths))
        if key not in cache:
            db = tmp_path_factory.mktemp("clean") / "clean.duckdb"
            assert sorf(["ingest", *key, "--db", str(db), "--jobs", "1"]) == 0
            cache[key] = counts(db), kept(db)
        return cache[key]

    return of


def assert_rerun_is_clean(capsys, db, paths, clean, jobs: int = 1) -> None:
    rc, err = ingest(capsys, db, paths, jobs)
    assert rc == 0, err
    assert counts(db) == clean(paths)[0]


def test_corpus_is_there():
    for path in (GOOD, *RUN, ZONES):
        assert path.is_file(), f"missing {path}"


# --------------------------------------------------------------------------- the table itself


def test_every_failure_has_a_pattern_and_the_last_takes_anything():
    for pattern, *_ in DATABASE_FAILURES:
        re.compile(pattern)
    assert DATABASE_FAILURES[-1][0] == ""


def test_an_unknown_duckdb_error_is_one_line_without_its_hints():
    exc = duckdb.InternalException(
        "INTERNAL Error: something odd\n\nPossible solutions:\n* Reducing the number of threads (SET threads=X)\n\n"
        "See also https://duckdb.org/docs/current/guides/performance/how_to_tune_workloads"
    )
    line = database_failure(exc, "site.duckdb", True)
    assert line == (
        "site.duckdb: DuckDB failed: INTERNAL Error: something odd; the captures committed before it are kept; "
        "run the same command again; if it fails again, report it with this line"
    )


def test_other_errors_are_not_the_databases():
    assert (
        database_failure(FileNotFoundError(2, "No such file or directory", "zones.yaml"), "site.duckdb", True) is None
    )
    assert database_failure(BrokenPipeError(32, "Broken pipe"), "site.duckdb", True) is None
    assert database_failure(ValueError("x"), "site.duckdb", True) is None


def test_the_failure_is_said_not_a_cleanup_that_failed_after_it():
    try:
        try:
            raise duckdb.IOException('IO Error: Could not write file "site.duckdb.wal": No space left on device')
        finally:
            raise duckdb.TransactionException("TransactionContext Error: cannot rollback: no transaction is active")
    except duckdb.Error as exc:
        line = database_failure(exc, "site.duckdb", True)
    assert line.startswith('site.duckdb: the disk is full (Could not write file "site.duckdb.wal": No space left on')


def test_file_system_errors_about_the_database():
    full = OSError(28, "No space left on device")  # a write that names no file: the snapshot copy, say
    assert database_failure(full, "site.duckdb", True).startswith("site.duckdb: the disk is full (No space left on")
    denied = PermissionError(13, "Permission denied", "/x/.sorf-ingest-abc")  # a parallel run's folder beside it
    assert database_failure(denied, "/x/site.duckdb", True).startswith(
        "/x/site.duckdb: this user may not use it or its folder (/x/.sorf-ingest-abc: Permission denied); "
    )


# --------------------------------------------------------------------------- not a DuckDB database

NOT_DATABASES = {
    "random": (lambda p: p.write_bytes(os.urandom(5000)), "not a DuckDB database (no DuckDB magic at byte 8: 0x"),
    "text": (lambda p: p.write_text("site: plant\nzones: []\n" * 50), "not a DuckDB database but a text file"),
    "pcap": (lambda p: p.write_bytes(GOOD.read_bytes()), "not a DuckDB database but a pcap capture (given as --db"),
    "empty": (lambda p: p.write_bytes(b""), "not a DuckDB database but an empty file"),
    "folder": (lambda p: p.mkdir(), "a folder, not a database"),
}


@pytest.mark.parametrize("kind", NOT_DATABASES)
def test_ingest_into_what_is_not_a_database(tmp_path, capsys, kind):
    make, said = NOT_DATABASES[kind]
    db = tmp_path / ("site.pcap" if kind == "pcap" else "site.duckdb")
    make(db)
    before = sorted(os.listdir(tmp_path))
    rc, err = ingest(capsys, db, [GOOD])
    assert rc == 2
    line = one_line(err, db)
    assert said in line and "nothing was written; give --db" in line
    assert sorted(os.listdir(tmp_path)) == before  # not even a .wal or a .tmp beside it


def read_commands(db, out) -> dict[str, list[str]]:
    return {
        "analyse": ["analyse", "--db", str(db), "--zones", str(ZONES)],
        "evidence": ["evidence", "X", "--db", str(db), "--zones", str(ZONES), "--out", str(out)],
        "serve": ["serve", "--db", str(db), "--zones", str(ZONES), "--port", str(free_port())],
    }


@pytest.mark.parametrize("command", ["analyse", "evidence", "serve"])
@pytest.mark.parametrize("kind", ["random", "text", "pcap", "empty"])
def test_reading_what_is_not_a_database(tmp_path, capsys, kind, command):
    make, said = NOT_DATABASES[kind]
    db = tmp_path / "site.duckdb"
    make(db)
    rc = sorf(read_commands(db, tmp_path / "out.pcapng")[command])
    captured = capsys.readouterr()
    assert rc == 2 and captured.out == ""
    line = one_line(captured.err, db)
    assert said in line and line.endswith("give --db a database written by `sorf ingest`")
    assert not (tmp_path / "out.pcapng").exists()


def test_serving_a_folder(tmp_path, capsys):
    db = tmp_path / "site.duckdb"
    db.mkdir()
    assert sorf(read_commands(db, tmp_path / "out.pcapng")["serve"]) == 2
    assert one_line(capsys.readouterr().err, db).endswith("a folder, not a database; give --db the database file")


# --------------------------------------------------------------------------- locked by another process


@contextlib.contextmanager
def held(db):
    """Another process holding the database, as an ingest does: until the block ends."""
    code = (
        "import sys; from sensor.store import Store; s = Store(sys.argv[1]); print('held', flush=True); "
        "sys.stdin.read()"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, str(db)], cwd=ROOT, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert proc.stdout.readline() == "held\n"
        yield proc.pid
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)


def test_locked_database(tmp_path, capsys, monkeypatch, clean):
    db = tmp_path / "site.duckdb"
    assert ingest(capsys, db, [GOOD])[0] == 0
    monkeypatch.setattr(sensor.store, "LOCK_WAIT_S", 0.5)  # 30 s in use: a server's snapshot copy takes a moment
    with held(db) as pid:
        rc, err = ingest(capsys, db, RUN)
        assert rc == 2
        assert one_line(err, db) == (
            f"sorf: {db}: in use by another process (pid {pid}: an ingest, or a server copying it), still after "
            "waiting 0.5 s; nothing was written; run this again once it has finished"
        )
        for command in ("analyse", "evidence"):
            rc = sorf(read_commands(db, tmp_path / "out.pcapng")[command])
            err = capsys.readouterr().err
            assert rc == 2
            assert one_line(err, db) == (
                f"sorf: {db}: in use by another process (pid {pid}: an ingest, or a server copying it); run this "
                "again once it has finished (`sorf serve` can read while an ingest writes)"
            )
    assert counts(db) == clean([GOOD])[0]
    assert_rerun_is_clean(capsys, db, [GOOD, *RUN], clean)


# --------------------------------------------------------------------------- out of memory


# 1MB: "Out of Memory Error"; 4MB: "Failed to commit: failed to pin block"
@pytest.mark.parametrize("limit", ["1MB", "4MB"])
def test_out_of_memory(tmp_path, capsys, monkeypatch, clean, limit):
    db = tmp_path / "site.duckdb"
    monkeypatch.setattr(sensor.store, "MEMORY_LIMIT", limit)
    rc, err = ingest(capsys, db, RUN)
    assert rc == 2
    line = one_line(err, db)
    assert line.startswith(f"sorf: {db}: DuckDB ran out of memory at its {limit} limit (")
    assert line.endswith(
        "; the captures committed before it are kept; give it more with SORF_MEMORY_LIMIT=1GB (or more), then run "
        "the same command again (what is in already is skipped)"
    )
    monkeypatch.undo()
    committed = kept(db)
    assert committed.items() <= clean(RUN)[1].items()
    assert_rerun_is_clean(capsys, db, RUN, clean)


def test_out_of_memory_in_a_worker_stops_the_run_as_it_would_serially(tmp_path, capsys, monkeypatch, clean):
    db = tmp_path / "site.duckdb"
    monkeypatch.setenv("SORF_MEMORY_LIMIT", "4MB")  # what the line says to raise; the workers get it too
    rc, err = ingest(capsys, db, RUN, jobs=2)
    assert rc == 2
    assert one_line(err, db).startswith(f"sorf: {db}: DuckDB ran out of memory at its 4MB limit (")
    assert not [name for name in os.listdir(tmp_path) if name.startswith(".sorf-ingest-")]
    monkeypatch.delenv("SORF_MEMORY_LIMIT")
    assert kept(db).items() <= clean(RUN)[1].items()
    assert_rerun_is_clean(capsys, db, RUN, clean, jobs=2)


def test_the_memory_limit_can_be_raised(tmp_path, capsys, monkeypatch, clean):
    monkeypatch.setattr(sensor.store, "MEMORY_LIMIT", "4MB")
    monkeypatch.setenv("SORF_MEMORY_LIMIT", "200MB")
    db = tmp_path / "site.duckdb"
    assert ingest(capsys, db, RUN)[0] == 0
    assert counts(db) == clean(RUN)[0]


# --------------------------------------------------------------------------- the disk full, a file size limit


@contextlib.contextmanager
def mounted(where: Path, *options: str, source: str = "tmpfs"):
    """A mount for the length of the block (root, as CI is: a failure to mount fails the test)."""
    where.mkdir(exist_ok=True)
    args = ["mount", *options, source, str(where)]
    res = subprocess.run(args, capture_output=True, text=True, check=False)
    assert res.returncode == 0, f"cannot mount here ({' '.join(args)}: {res.stderr.strip()})"
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=True)


@pytest.mark.parametrize("jobs", [1, 2])
def test_disk_full(tmp_path, capsys, clean, jobs):
    with mounted(tmp_path / "disk", "-t", "tmpfs", "-o", "size=1m") as disk:
        db = disk / "site.duckdb"
        rc, err = ingest(capsys, db, RUN, jobs)
        assert rc == 2
        line = one_line(err, db)
        assert line.startswith(f"sorf: {db}: the disk is full (Could not write file ")
        assert line.endswith(
            ": No space left on device); the captures committed before it are kept; free space on it, or move the "
            "database to a bigger disk, then run the same command again (what is in already is skipped)"
        )
        committed = kept(db)
        assert committed == {str(MODBUS): clean(RUN)[1][str(MODBUS)]}  # the first fits; it is kept
        subprocess.run(["mount", "-o", "remount,size=64m", str(disk)], check=True)  # space freed
        assert_rerun_is_clean(capsys, db, RUN, clean, jobs)
        assert not [name for name in os.listdir(disk) if name.startswith(".sorf-ingest-") or name.endswith(".tmp")]


def test_file_size_limit(tmp_path, clean):
    """RLIMIT_FSIZE (ulimit -f): the write fails with EFBIG (Python ignores SIGXFSZ)."""
    db = tmp_path / "site.duckdb"
    args = [sys.executable, "-m", "sorf", "ingest", *map(str, RUN), "--db", str(db), "--jobs", "1"]

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (600_000, 600_000))

    res = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, check=False, preexec_fn=limit)
    assert res.returncode == 2, res.stderr
    line = one_line(res.stderr, db)
    assert (
        "a file grew past the largest size allowed, by the file system or by this process's limit (ulimit -f)" in line
    )
    assert "File too large); the captures committed before it are kept; raise the limit or use another disk" in line
    assert kept(db).items() <= clean(RUN)[1].items()
    res = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stderr
    assert counts(db) == clean(RUN)[0]


# --------------------------------------------------------------------------- a read-only folder


def test_read_only_file_system(tmp_path, capsys, clean):
    """A read-only bind mount: root is stopped by it (chmod would not stop root)."""
    folder = tmp_path / "site"
    folder.mkdir()
    db, new = folder / "site.duckdb", folder / "new.duckdb"
    assert ingest(capsys, db, [GOOD])[0] == 0
    with mounted(folder, "--bind", "-o", "ro", source=str(folder)):
        for target, jobs in ((db, 1), (db, 2), (new, 1)):
            rc, err = ingest(capsys, target, RUN, jobs)
            assert rc == 2
            assert one_line(err, target) == (
                f'sorf: {target}: it is on a read-only file system (Cannot open file "{target}": Read-only file '
                "system); nothing was written; remount it read-write, or give --db a file on a writable disk"
            )
        assert sorf(read_commands(db, tmp_path / "out.pcapng")["analyse"]) == 0  # reading is fine
        capsys.readouterr()
    assert counts(db) == clean([GOOD])[0] and not new.exists()
    assert_rerun_is_clean(capsys, db, [GOOD, *RUN], clean)


def test_immutable_folder(tmp_path, capsys, clean):
    """chattr +i on the folder: root may not create the .wal beside the database."""
    db = tmp_path / "site.duckdb"
    assert ingest(capsys, db, [GOOD])[0] == 0
    res = subprocess.run(["chattr", "+i", str(tmp_path)], capture_output=True, text=True, check=False)
    assert res.returncode == 0, f"chattr +i does not work here: {res.stderr.strip()}"
    try:
        rc, err = ingest(capsys, db, RUN)
    finally:
        subprocess.run(["chattr", "-i", str(tmp_path)], check=True)
    assert rc == 2
    assert one_line(err, db) == (
        f'sorf: {db}: this user may not use it or its folder (Cannot open file "{db}.wal": Operation not permitted); '
        "nothing was written; fix the permissions (of the folder too: DuckDB writes FILE.wal beside the file), or "
        "give --db another file"
    )
    assert counts(db) == clean([GOOD])[0]
    assert_rerun_is_clean(capsys, db, [GOOD, *RUN], clean)


def test_folder_the_user_may_not_write(clean):
    """chmod 0555 stops a user who is not root: `sorf` runs as nobody (setpriv; the tests run as root, as CI)."""
    assert os.geteuid() == 0 and shutil.which("setpriv"), "runs sorf as nobody through setpriv: needs root"
    folder = Path(tempfile.mkdtemp(prefix="sorf-ro-", dir="/tmp"))  # tmp_path's parent is root's only
    try:
        db, new = folder / "site.duckdb", folder / "new.duckdb"
        assert sorf(["ingest", str(GOOD), "--db", str(db)]) == 0
        db.chmod(0o666)
        folder.chmod(0o555)
        nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
        cannot = {  # a worker's folder beside the database is the first thing a parallel run makes
            (db, 1): f'Cannot open file "{db}.wal": Permission denied',
            (db, 2): re.escape(f"{folder}/.sorf-ingest-") + r"\w+: Permission denied",
            (new, 1): f'Cannot open file "{new}": Permission denied',
        }
        for (target, jobs), detail in cannot.items():
            args = [*nobody, sys.executable, "-m", "sorf", "ingest", *map(str, RUN), "--db", str(target)]
            res = subprocess.run([*args, "--jobs", str(jobs)], cwd=ROOT, capture_output=True, text=True, check=False)
            assert res.returncode == 2, res.stderr
            line = one_line(res.stderr, target)
            assert re.fullmatch(
                re.escape(f"sorf: {target}: this user may not use it or its folder (") + detail + re.escape(
                    "); nothing was written; fix the permissions (of the folder too: DuckDB writes FILE.wal beside "
                    "the file), or give --db another file"
                ), line,
            ), line  # fmt: skip
        folder.chmod(0o755)
        assert counts(db) == clean([GOOD])[0] and not new.exists()
        assert sorf(["ingest", str(GOOD), *map(str, RUN), "--db", str(db), "--jobs", "1"]) == 0
        assert counts(db) == clean([GOOD, *RUN])[0]
    finally:
        folder.chmod(0o755)
        shutil.rmtree(folder)
