"""A database as Parquet, partitioned by sensor and day, and that Parquet read back as one database.

Layout (hive style, docs/fleet.md): ``DIR/TABLE/sensor=NAME/day=YYYY-MM-DD/part-0.parquet``, and for meta and
captures ``DIR/TABLE/sensor=NAME/part-0.parquet``. The sensor of a row is its capture's ``captures.sensor``, or
the database file's stem for a capture without one; the day is that of the row's time (``ts``, a flow's
``first_ts``), 1970-01-01 for a row without one. The sensor is the partition's and not a column of the file (Spark
refuses a column that is also a partition key). Assets are derived: not exported, rebuilt when read, so an address
two sensors saw is one asset, as in one database holding both.

A file is written to a hidden temporary name beside it (not matched by ``*.parquet``) and renamed into place, so
a reader never sees half a file. Its name is fixed, so a re-export replaces it in place and a reader never sees
an old and a new version side by side; files of the sensor that this export did not write are removed after.
A sensor's files are the export of one database: two databases naming the same sensor replace each other.

Capture ids and flow ids are each database's own (every box numbers its captures from 1). The reader numbers
the captures of all sensors anew, in the order of one database that ingested them sensor by sensor (names in
byte order), each sensor's captures in its own order; a flow id keeps its low 32 bits (the flow within its
capture) under its capture's new id. So the analysis of DIR equals that of such a database.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

from . import snapshot
from .schema import ASSETS, SCHEMA_VERSION, TABLES, Table
from .store import ASSETS_SELECT

PART = "part-0.parquet"
DERIVED = (ASSETS.name,)  # rebuilt when read (ASSETS_SELECT)
BY_SENSOR = ("meta", "captures")  # small, and a capture spans days: partitioned by sensor only
OPTIONAL = ("sensor_stats",)  # a database of an older sorf has none: read as empty
NO_DAY = "1970-01-01"
SENSOR_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
BATCH_ROWS = 64 * 1024
# DuckDB's, for an export: it streams, and a buffer pool of cached pages is all a larger limit buys (3M flows and
# 8.8M operations peaked at 399 MB without one, 328 MB with it)
MEMORY_LIMIT = "64MB"
FLOW_LOW = 0xFFFFFFFF  # a flow id's low bits: the flow within its capture (sensor/flows.py)
HIVE = "hive_partitioning = true, hive_types = {{'sensor': 'VARCHAR'{day}}}"  # a sensor "007" stays text


class ExportError(RuntimeError):
    """The database cannot be exported, or a folder cannot be read as an export: one line, naming the path."""


@dataclass(frozen=True, slots=True)
class Exported:
    sensors: list[str]
    files: int
    rows: dict[str, int]
    removed: int
    source: str  # the file read: the database, or its snapshot while another process writes the database


def placeholder(db: str) -> str:
    """The sensor name of captures that have none: the database file's stem, made a safe folder name."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", Path(db).stem).lstrip("._-") or "sensor"


# --- writing ------------------------------------------------------------------------------------------------------


def export(db: str, out: str) -> Exported:
    """Every table of ``db`` but the derived ones under ``out``, each sensor's files replacing its earlier ones.
    While another process writes ``db`` (DuckDB then lets nobody else open it), its snapshot is read, if there is
    one (sensor/snapshot.py): the state of its last publication."""
    con, source = _open_database(db)
    try:
        return export_from(con, out, placeholder(db), source)
    finally:
        con.close()


def export_from(con: duckdb.DuckDBPyConnection, out: str, stem: str, source: str) -> Exported:
    """Export the connection's current database (a process that holds one open can export it itself); ``stem``:
    the sensor of captures that have none; ``source`` names it in errors."""
    named = {"names": _sensor_names(con, stem), "stem": stem}
    present = _tables(con)
    tables = [t for t in TABLES if t.name in present and t.name not in DERIVED]
    parts = {t.name: _partitions(con, t, named) for t in tables}
    sensors = sorted({sensor for found in parts.values() for sensor, _ in found}) or [stem]
    bad = [s for s in sensors if not SENSOR_NAME.fullmatch(s)]
    if bad:
        raise ExportError(f"{source}: sensor name {bad[0]!r} is not a folder name (letters, digits, '.', '_', '-')")
    written: set[Path] = set()
    rows = {t.name: _export_table(con, t, Path(out), _every_sensor(t, parts[t.name], sensors), named, written)
            for t in tables}  # fmt: skip
    return Exported(sensors, len(written), rows, _remove_stale(Path(out), sensors, written), source)


def _open_database(db: str) -> tuple[duckdb.DuckDBPyConnection, str]:
    """A read-only connection to the database, or to its snapshot while another process holds the database."""
    if not os.path.isfile(db):
        raise ExportError(f"{db}: no such database")
    source = db
    try:
        try:
            con = duckdb.connect(db, read_only=True, config={"memory_limit": MEMORY_LIMIT})
        except duckdb.IOException as exc:
            source = snapshot.snapshot_path(db)
            if "lock" not in str(exc).lower() or not os.path.isfile(source):
                raise
            con = duckdb.connect(source, read_only=True, config={"memory_limit": MEMORY_LIMIT})
        con.execute("SET enable_progress_bar = false")
    except duckdb.Error as exc:
        held = " (another process writes it, and it has no snapshot: sensor/snapshot.py)" * ("lock" in str(exc).lower())
        raise ExportError(f"{db}: cannot open{held}: {str(exc).splitlines()[0]}") from None
    missing = [t for t in ("meta", "captures", "flows") if t not in _tables(con)]
    version = None if missing else con.execute("SELECT max(value) FROM meta WHERE key = 'schema_version'").fetchone()
    if missing or version is None or version[0] != str(SCHEMA_VERSION):
        con.close()
        why = f"no {', '.join(missing)} table" if missing else f"schema version {version and version[0]}"
        raise ExportError(f"{source}: not a sorf database of schema version {SCHEMA_VERSION} ({why})")
    return con, source


def _tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    sql = "SELECT table_name FROM information_schema.tables WHERE table_catalog = current_database()"
    return {r[0] for r in con.execute(sql).fetchall()}


def _sensor_names(con: duckdb.DuckDBPyConnection, stem: str) -> list[str | None]:
    """Capture id -> its sensor (``stem`` for none), as a list: element N is capture N's (the store numbers
    captures from 1), NULL where there is no such capture. A lookup by index keeps each scan a plain filtered
    scan, streamed in the table's order; a join would not."""
    rows = con.execute("SELECT capture_id, coalesce(sensor, ?) FROM captures WHERE capture_id > 0", [stem]).fetchall()
    names: list[str | None] = [None] * max((i for i, _ in rows), default=0)
    for capture_id, sensor in rows:
        names[capture_id - 1] = sensor
    return names


def _sensor(table: Table) -> str:
    """The sensor of a row: its capture's, else its own (sensor_stats has one), else the placeholder $stem."""
    return f"coalesce(list_extract($names, t.capture_id), {'t.sensor, ' * ('sensor' in table.names)}$stem)"


def _key(table: Table) -> str:
    """The partition day of a row: of its time, NO_DAY without one; NULL for the tables partitioned by sensor only."""
    when = "ts" if "ts" in table.names else "first_ts"
    return "NULL::DATE" if table.name in BY_SENSOR else f"coalesce(CAST(t.{when} AS DATE), DATE '{NO_DAY}')"


def _partitions(con, table: Table, named: dict) -> list[tuple[str, str | None]]:
    """(sensor, day) of every partition that has rows; meta has none of its own (every sensor gets it)."""
    if table.name == "meta":
        return []
    sql = f"SELECT DISTINCT {_sensor(table)}, {_key(table)}::VARCHAR FROM {table.name} t ORDER BY ALL"
    return [tuple(r) for r in con.execute(sql, named).fetchall()]


def _every_sensor(table: Table, parts: list, sensors: list[str]) -> list[tuple[str, str | None]]:
    """The partitions plus one for each sensor without rows (an empty file), so every table of every sensor is found."""
    have = {sensor for sensor, _ in parts}
    return parts + [(s, None if table.name in BY_SENSOR else NO_DAY) for s in sensors if s not in have]


def _export_table(con, table: Table, out: Path, parts: list, named: dict, written: set[Path]) -> int:
    """One table, a file per partition; the rows written."""
    cols = ", ".join(f"t.{name}" for name in table.names if name != "sensor")
    if table.name == "meta":
        select = f"SELECT {cols} FROM meta t"
    else:
        select = (f"SELECT {cols} FROM {table.name} t "
                  f"WHERE {_sensor(table)} = $sensor AND {_key(table)} IS NOT DISTINCT FROM $day::DATE")  # fmt: skip
    total = 0
    for sensor, day in parts:
        folder = out / table.name / f"sensor={sensor}"
        folder = folder if day is None else folder / f"day={day}"
        params = {} if table.name == "meta" else {**named, "sensor": sensor, "day": day}
        total += write_atomically(con.sql(select, params=params).to_arrow_reader(BATCH_ROWS), folder / PART)
        written.add(folder / PART)
    return total


def write_atomically(batches, path: Path) -> int:
    """Write a record batch reader to ``path`` through a hidden temporary file renamed over it; the rows written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    rows = 0
    try:
        with pq.ParquetWriter(tmp, batches.schema, compression="zstd") as writer:
            for batch in batches:
                writer.write_batch(batch)
                rows += batch.num_rows
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return rows


def _remove_stale(out: Path, sensors: list[str], written: set[Path]) -> int:
    """Files (and temporary files of a killed export) under these sensors' partitions that this export did not
    write: a day that is no longer there, or a table that is not."""
    removed = 0
    for sensor in sensors:
        for path in sorted(out.glob(f"*/sensor={sensor}/**/*")):
            if path.is_file() and path not in written and (path.suffix == ".parquet" or path.name.endswith(".tmp")):
                path.unlink()
                removed += 1
        for folder in sorted(out.glob(f"*/sensor={sensor}/day=*")):
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
    return removed


# --- reading ------------------------------------------------------------------------------------------------------


def open_export(location: str, config: dict) -> duckdb.DuckDBPyConnection:
    """A connection whose `site` catalog reads ``location`` (a folder, or any location DuckDB reads, s3://...) as
    one sorf database: views over the Parquet files with capture and flow ids renumbered, assets rebuilt."""
    con = duckdb.connect(config=config)
    try:
        con.execute("SET enable_progress_bar = false")  # the assets rebuild takes seconds: no bar on the terminal
        con.execute("ATTACH ':memory:' AS site")
        con.execute("USE site")
        for table in TABLES:
            if table.name not in DERIVED:
                _view(con, table, location.rstrip("/"))
        _check_versions(con, location)
        con.execute(ASSETS.ddl())
        con.execute(f"INSERT INTO assets {ASSETS_SELECT}")
    except BaseException:
        con.close()
        raise
    return con


def _check_versions(con: duckdb.DuckDBPyConnection, location: str) -> None:
    """Every sensor's export of the schema version this sorf reads (check_schema sees one row of meta)."""
    versions = sorted(
        r[0] for r in con.execute("SELECT DISTINCT value FROM meta WHERE key = 'schema_version'").fetchall()
    )
    if versions != [str(SCHEMA_VERSION)]:
        raise ExportError(f"{location}: schema version {', '.join(versions) or 'unknown'}; "
                          f"this sorf reads version {SCHEMA_VERSION} (export each database again)")  # fmt: skip


def _view(con: duckdb.DuckDBPyConnection, table: Table, location: str) -> None:
    """A table of the export as a view; captures first, with the new capture ids (`_capture_ids`) all others use."""
    depth = "*" if table.name in BY_SENSOR else "*/*"
    files = _literal(f"{location}/{table.name}/{depth}/{PART}")
    hive = HIVE.format(day="" if table.name in BY_SENSOR else ", 'day': 'DATE'")
    raw = f"read_parquet({files}, {hive})"
    try:
        con.execute(f"SELECT * FROM {raw} LIMIT 0")
    except duckdb.IOException as exc:
        if table.name in OPTIONAL and "No files found" in str(exc):
            con.execute(table.ddl())
            return
        raise ExportError(_read_failure(exc, location, table.name)) from None
    except duckdb.Error as exc:
        raise ExportError(_read_failure(exc, location, table.name)) from None
    if table.name == "meta":
        con.execute(f"CREATE VIEW meta AS SELECT DISTINCT key, value FROM {raw}")
        return
    if table.name == "captures":
        con.execute(f"CREATE TABLE _capture_ids AS SELECT sensor, capture_id AS exported, "
                    f"row_number() OVER (ORDER BY sensor, capture_id)::INTEGER AS capture_id FROM {raw}")  # fmt: skip
        duplicated = con.execute("SELECT sensor, exported FROM _capture_ids GROUP BY ALL HAVING count(*) > 1 "
                                 "ORDER BY ALL LIMIT 1").fetchall()  # fmt: skip
        if duplicated:
            raise ExportError(f"{location}: capture {duplicated[0][1]} of sensor {duplicated[0][0]} twice")
    renamed = {"capture_id": "m.capture_id", "flow_id": f"(m.capture_id::BIGINT << 32) | (t.flow_id & {FLOW_LOW})"}
    cols = ", ".join(f"{renamed.get(name, 't.' + name)} AS {name}" for name in table.names)
    if table.name not in BY_SENSOR:  # the API pages rows by rowid, which a view has not: one unique per row read
        cols += ", (t.file_index::BIGINT << 40) | t.file_row_number AS rowid"
    con.execute(f"CREATE VIEW {table.name} AS SELECT {cols} FROM {raw} t "
                "LEFT JOIN _capture_ids m ON m.sensor = t.sensor AND m.exported = t.capture_id")  # fmt: skip


def _literal(text: str) -> str:
    """A SQL string literal: a view's definition cannot take parameters."""
    return "'" + text.replace("'", "''") + "'"


def _read_failure(exc: duckdb.Error, location: str, table: str) -> str:
    first = str(exc).splitlines()[0]
    if "No files found" in first:
        if table == "meta":
            return f"{location}: not a sorf export (no {table}/sensor=*/{PART}; write one with `sorf export`)"
        return f"{location}: no {table} table in the export (no {table}/sensor=*/.../{PART})"
    return f"{location}: cannot read the {table} table: {first}"
