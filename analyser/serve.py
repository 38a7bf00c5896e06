"""What `sorf serve` serves: one analysis per database change, read from a snapshot.

The analysis of a large database takes seconds, so it runs once per change, never per
request. A State is one generation: a read-only DuckDB connection to a snapshot of the
database (sensor/snapshot.py says why a snapshot), the Analysis of it, and its JSON
pieces, built with the same serializer functions as `sorf analyse --format json`. The
Source polls for a new snapshot, a database changed without one, or an edited zone file;
it builds the next State in the background while the current one serves, then swaps.
A retired State closes once its last request is done.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import orjson

from sensor import snapshot

from . import report
from .deltas import Comparison, bound_memory
from .model import Analysis, Delta
from .observe import DatabaseError, Observer, check_schema, connect, connect_export, create_schema, live_sensors
from .queries import HOSTS_TABLE
from .zones import ZoneFile, ZoneFileError, load_zone_file

log = logging.getLogger("sorf.serve")
POLL_S = 0.5
DATA_POLL_S = 5.0  # an export folder's files, listed (ExportFeed): a fleet's holds one per sensor, table and day
ROW_TABLES = ("captures", "flows", "operations", "identities", "anomalies", "assets")
# its memory: deltas.bound_memory, as for `sorf analyse`
CONFIG: dict[str, str | bool | int | float | list[str]] = {"threads": 2}


class SourceClosed(RuntimeError):
    """A request came after the server closed its source."""


class State:
    """One analysed snapshot; requests take a cursor of it between ``acquire`` and ``release``."""

    def __init__(self, con: duckdb.DuckDBPyConnection, analysis: Analysis, source: str | None, data_as_of: datetime):
        self.con = con
        self.analysis = analysis
        self.source = source  # the snapshot file read, None for an empty database
        self.data_as_of = data_as_of
        self.analysed_at = datetime.now(UTC).replace(tzinfo=None)
        self.deltas = [report.delta_json(d) for d in analysis.deltas]
        self.delta_bytes = [orjson.dumps(d) for d in self.deltas]  # GET /deltas joins these: no encoding per request
        self.delta_by_id: dict[str, tuple[Delta, dict]] = {
            d.id: (d, j) for d, j in zip(analysis.deltas, self.deltas, strict=True)
        }
        self.summary = report.summary(analysis)
        self.rows = {t: con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0] for t in ROW_TABLES}
        ((self.last_capture_at,),) = con.execute(
            "SELECT max(ingested_at) FROM captures WHERE status <> 'ingesting'"
        ).fetchall()
        self.sensors = live_sensors(con)  # each live sensor's last interval, for /health
        self.svg: str | None = None
        self.totals = Totals()  # row counts per filter: this data never changes
        self._lock = threading.Lock()
        self._users = 0
        self._retired = False

    def cursor(self) -> duckdb.DuckDBPyConnection:
        return site_cursor(self.con)

    def acquire(self) -> bool:
        with self._lock:
            if self._retired:
                return False
            self._users += 1
            return True

    def release(self) -> None:
        with self._lock:
            self._users -= 1
            close = self._retired and not self._users
        if close:
            self.con.close()

    def retire(self) -> None:
        with self._lock:
            self._retired = True
            close = not self._users
        if close:
            self.con.close()

    def picture(self) -> str:
        """The zone picture, rendered on first use (analyser/picture.py)."""
        if self.svg is None:
            from .picture import render_svg

            self.svg = render_svg(self.analysis)
        return self.svg


class Totals(dict):
    """A bounded cache of counts: the oldest entry goes when it is full."""

    LIMIT = 4096

    def __setitem__(self, key, value) -> None:
        if len(self) >= self.LIMIT:
            del self[next(iter(self))]
        super().__setitem__(key, value)


def _signature(path: str) -> tuple | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def _mtime(path: str) -> int:
    with contextlib.suppress(OSError):
        return os.stat(path).st_mtime_ns
    return 0


def _open(path: str | None) -> duckdb.DuckDBPyConnection:
    """A connection whose `site` is the snapshot (read-only), or an empty sorf database; `memory` holds hosts."""
    con = duckdb.connect(config=CONFIG)
    if path is None:
        con.execute("ATTACH ':memory:' AS site")
        con.execute("USE site")
        create_schema(con)
    else:
        con.execute("ATTACH ? AS site (READ_ONLY)", [path])
        con.execute("USE site")
    return con


def site_cursor(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """A cursor of a connection made by `_open`, for one thread: a cursor starts in the `memory` catalog."""
    cur = con.cursor()
    cur.execute("USE site")
    return cur


def open_database(db: str) -> duckdb.DuckDBPyConnection:
    """The database itself, read-only, as `_open` gives a snapshot (for `sorf evidence`)."""
    return connect(db, _open)


def analyse_into(con: duckdb.DuckDBPyConnection, zf: ZoneFile, database: str, spill: str) -> Analysis:
    """Analyse the connection's `site` and keep the address -> zone table the queries join with; DuckDB spills
    to ``spill``, within the memory of `sorf analyse`."""
    bound_memory(con, spill)
    observer = Observer(con, zf.index())
    analysis = Comparison(zf, observer).run(database)
    # the observer's temp table, kept where every cursor of the connection sees it (temp tables are per cursor)
    con.execute(f"CREATE OR REPLACE TABLE {HOSTS_TABLE} AS SELECT ip, zone, kind FROM _hosts")
    return analysis


class SnapshotFeed:
    """`sorf serve`'s data: the snapshot of a database another process writes (sensor/snapshot.py)."""

    def __init__(self, db: str):
        self.db = db
        self._serving = snapshot.hold_serving(db)  # from now on, an ingest publishes snapshots for us
        self._loaded: tuple | None = None  # signature of the snapshot the state was built from
        self._pending: tuple | None = None  # of the one opened last: loaded once its state is built (``built``)

    def open(self) -> tuple[duckdb.DuckDBPyConnection, str | None, datetime]:
        """A connection to the snapshot as it is now (an empty database if there is none yet), its file, its time."""
        snap = snapshot.snapshot_path(self.db)
        sig = _signature(snap)
        path = snap if sig is not None else None
        con = _open(path)
        self._pending = sig
        as_of = datetime.fromtimestamp(sig[2] / 1e9, UTC).replace(tzinfo=None) if sig else _now()
        return con, path, as_of

    def changed(self) -> bool:
        """Copy the database to the snapshot if it is newer and free; True if the snapshot changed since loaded."""
        snap = snapshot.snapshot_path(self.db)
        if self._database_newer(snap):
            self._copy_database(snap)
        return _signature(snap) != self._loaded

    def built(self) -> None:
        """The state of what ``open`` gave is serving: a change is now measured from it."""
        self._loaded = self._pending

    def _database_newer(self, snap: str) -> bool:
        if not os.path.exists(self.db):
            return False
        newest = max(_mtime(self.db), _mtime(self.db + ".wal"))
        return _signature(snap) is None or newest > _mtime(snap)

    def _copy_database(self, snap: str) -> bool:
        """Copy the database to the snapshot if no ingest holds it; False if one does (it publishes itself)."""
        try:
            con = duckdb.connect(self.db, read_only=True)
        except duckdb.IOException as exc:
            if "lock" in str(exc).lower():
                return False
            raise DatabaseError(f"{self.db}: cannot open: {exc}") from None
        try:
            check_schema(con, self.db)
            if os.path.exists(self.db + ".wal"):  # what the file alone lacks: copy the tables, not the bytes
                tmp = f"{snap}.{os.getpid()}.tmp"
                con.execute("ATTACH ? AS snap", [tmp])
                con.execute(f'COPY FROM DATABASE "{_catalog(con)}" TO snap')
                con.execute("DETACH snap")
                os.replace(tmp, snap)
            else:  # held read-only, nobody writes it: the bytes are consistent
                snapshot.publish_file(self.db)
        finally:
            con.close()
        return True

    def reopen(self) -> bool:
        """After a close (a server's lifespan can end and start again): announce the server again; True if so."""
        if not self._serving.closed:
            return False
        self._serving = snapshot.hold_serving(self.db)
        self.changed()
        return True

    def close(self) -> None:
        self._serving.close()

    def stored_bytes(self) -> int:
        return _database_bytes(self.db)


class ExportFeed:
    """`sorf serve --data`'s data: a `sorf export` folder (sensor/export.py) read as one database, its tables views
    over the files. A local folder is read again when its files change (an export renames each into place; serve
    it with ``poll_s=DATA_POLL_S``); a remote location (s3://...) is read once."""

    def __init__(self, location: str):
        self.db = location
        self.remote = "://" in location
        self._loaded: tuple | None = None  # signature of the files the state was built from
        self._pending: tuple | None = None

    def open(self) -> tuple[duckdb.DuckDBPyConnection, str | None, datetime]:
        sig = None if self.remote else _files_signature(self.db)
        con = connect_export(self.db, CONFIG)
        self._pending = sig
        return con, self.db, datetime.fromtimestamp(sig[2] / 1e9, UTC).replace(tzinfo=None) if sig else _now()

    def changed(self) -> bool:
        return not self.remote and _files_signature(self.db) != self._loaded

    def built(self) -> None:
        self._loaded = self._pending

    def reopen(self) -> bool:
        return False

    def close(self) -> None:
        """Nothing is held between states."""

    def stored_bytes(self) -> int:
        return 0 if self.remote else sum(p.stat().st_size for p in _parquet_files(self.db))


def _parquet_files(folder: str) -> list[Path]:
    return sorted(Path(folder).glob("*/sensor=*/**/*.parquet"))


def _files_signature(folder: str) -> tuple:
    """(files, bytes, newest change in ns) of an export folder's Parquet files."""
    stats = [p.stat() for p in _parquet_files(folder)]
    return (len(stats), sum(st.st_size for st in stats), max((st.st_mtime_ns for st in stats), default=0))


def _database_bytes(db: str) -> int:
    return sum(os.path.getsize(p) for p in (db, db + ".wal") if os.path.exists(p))


class ConnectionFeed:
    """`sorf sense --serve`'s data: the sensor's own connection, which it commits to every few seconds. One process
    writes and reads, so no snapshot is needed; the sensor calls ``committed`` after each commit. The analysis shares
    the connection's DuckDB instance: its memory limit (deltas.bound_memory) is the instance's."""

    def __init__(self, con: duckdb.DuckDBPyConnection, db: str):
        self.con, self.db = con, db
        self.version = 0  # commits announced
        self._loaded = -1  # the version the state was built from
        self._pending = 0

    def committed(self) -> None:
        self.version += 1

    def open(self) -> tuple[duckdb.DuckDBPyConnection, str | None, datetime]:
        self._pending = self.version
        return site_cursor(self.con), self.db, _now()

    def built(self) -> None:
        self._loaded = self._pending

    def changed(self) -> bool:
        return self.version != self._loaded

    def reopen(self) -> bool:
        return False

    def close(self) -> None:
        """The connection is the sensor's: it closes it."""

    def stored_bytes(self) -> int:
        return _database_bytes(self.db)


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class Source:
    """The data and zone file being served: their current State, kept fresh by a polling thread. The data comes
    from a feed: a database's snapshot (`sorf serve`), the sensor's connection (`sorf sense --serve`), or an
    export folder (`sorf serve --data`)."""

    def __init__(self, db: str, zones: str, poll_s: float = POLL_S,
                 feed: SnapshotFeed | ConnectionFeed | ExportFeed | None = None):  # fmt: skip
        self.db = db if "://" in db else os.path.abspath(db)  # --data s3://...
        self.zones_path = zones
        self.poll_s = poll_s
        self.zone_file = load_zone_file(zones)  # ZoneFileError: the caller reports it; nothing is served
        self._spill = tempfile.TemporaryDirectory(prefix="sorf-serve-")  # DuckDB's, for every State; gone at exit
        self._zones_mtime = _mtime(zones)
        self.problems: list[str] = []  # what the last refresh could not do, for /health
        self.feed = feed or SnapshotFeed(self.db)
        self.feed.changed()
        self.state = self._build()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._reload = False  # a zone file reload asked for (SIGHUP to `sorf sense`)

    # --- generations -----------------------------------------------------------------------------------------------

    def _build(self) -> State:
        """A State of the data as it is now."""
        con, path, as_of = self.feed.open()
        try:
            check_schema(con, self.db)
            analysis = analyse_into(con, self.zone_file, self.db, self._spill.name)
        except BaseException:
            con.close()
            raise
        self.feed.built()
        return State(con, analysis, path, as_of)

    def refresh(self) -> bool:
        """Build and swap in a new State if anything changed; the old one serves until then."""
        try:
            zones_changed = self._reload_zones()
            if not self.feed.changed() and not zones_changed:
                return False
            new = self._build()
        except (DatabaseError, duckdb.Error, OSError) as exc:
            self._problem(f"still serving the data of {self.state.data_as_of:%Y-%m-%d %H:%M:%S} UTC: {exc}")
            return False
        old, self.state = self.state, new
        old.retire()
        self.problems = [p for p in self.problems if p.startswith(self.zones_path)]
        return True

    def reload_zones(self) -> None:
        """Read the zone file again at the next poll, changed or not (SIGHUP)."""
        self._reload = True

    def _reload_zones(self) -> bool:
        mtime = _mtime(self.zones_path)
        if mtime == self._zones_mtime and not self._reload:
            return False
        self._reload = False
        self._zones_mtime = mtime
        try:
            self.zone_file = load_zone_file(self.zones_path)
        except (ZoneFileError, OSError) as exc:
            self._problem(f"{self.zones_path}: not reloaded, the previous zone file is still used: {exc}")
            return False
        self.problems = []
        return True

    def _problem(self, text: str) -> None:
        if text not in self.problems:
            log.warning("%s", text)
            self.problems.append(text)

    @contextlib.contextmanager
    def current(self) -> Iterator[State]:
        """The State to answer one request from; it stays open until the request is done."""
        while True:
            state = self.state
            if state.acquire():
                break
            if state is self.state:  # retired and not replaced: the source is closed
                raise SourceClosed(f"{self.db}: the server is shutting down")
        try:
            yield state
        finally:
            state.release()

    # --- the polling thread ------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start polling; after a close (a server's lifespan can end and start again), announce and load anew."""
        if self.feed.reopen():
            self.state = self._build()
        self._stop.clear()
        self._thread = threading.Thread(target=self._poll, name="sorf-refresh", daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.wait(self.poll_s):
            self.refresh()

    def stored_bytes(self) -> int:
        """What the data takes on disk, for /health."""
        return self.feed.stored_bytes()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.state.retire()
        self.feed.close()


def _catalog(con: duckdb.DuckDBPyConnection) -> str:
    ((name,),) = con.execute("SELECT current_database()").fetchall()
    return name.replace('"', '""')
