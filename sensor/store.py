"""The DuckDB store: schema, bulk batches through Arrow, and capture bookkeeping.

Rows are gathered as Python column lists and inserted as one Arrow table per
batch: DuckDB's per-row INSERT is thousands of times slower. docs/schema.md
describes every table and column; keep the two in step.
"""

from __future__ import annotations

import contextlib
import os
import queue
import socket
import threading
import time
from collections.abc import Iterable
from datetime import UTC, datetime

import duckdb
import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from dissectors import Anomaly, Identity, Operation, Record
from dissectors.bulk import Details

from . import snapshot
from .flows import Flow
from .schema import (
    ANOMALIES,
    ASSETS,
    DDL,
    EVIDENCE,
    FLOWS,
    IDENTITIES,
    OPERATIONS,
    SCHEMA_VERSION,
    SENSOR_STATS,
    TS,
)  # fmt: skip

# rows per insert: a batch waits while one is written, so this is memory; DuckDB takes ~0.9 us a row either way
BATCH_ROWS = 24_576
ROW_GROUP = 30_720  # rows per DuckDB row group: the inserter holds one per table (DuckDB's 122,880: +30 MB RSS)
MEMORY_LIMIT = "40MB"  # DuckDB buffer pool: inserted pages are written out, not kept (32 MB ran out on the 4M bench)
REBUILD_MEMORY_MB = 80  # the assets rebuild (rebuild_assets) starts with this: a 2M-address flood needs 80, not 70
REBUILD_ATTEMPTS = 5  # doubling each time: 1,280 MB at the last
INTERRUPTED = (
    "sorf sense stopped without closing this capture (crash, kill or power loss): the records it committed, "
    "up to a few seconds before it stopped, are kept"
)
LOCK_WAIT_S = 30  # a server copying the database to its snapshot holds it for a moment: wait, then give up

FLOW_COLUMNS = FLOWS.arrow
OPERATION_COLUMNS = OPERATIONS.arrow
IDENTITY_COLUMNS = IDENTITIES.arrow
ANOMALY_COLUMNS = ANOMALIES.arrow
SENSOR_STATS_COLUMNS = SENSOR_STATS.arrow
_OPERATION_SCHEMA = pa.schema(list(OPERATION_COLUMNS.items()))
# a bulk decoder's columns: the Operation fields but details (values, which details_text encodes), the last
_BULK_COLUMNS = list(OPERATION_COLUMNS)[len(EVIDENCE) : -1]

# The assets table has no PRIMARY KEY: the rebuild's GROUP BY ip makes ip unique, and the key's index on 2M
# addresses (a scan) cost more DuckDB memory than the rebuild itself; a DELETE and INSERT of the same keys in
# one transaction even ran out at 160 MB. The rebuild drops and creates the table, so a database written by an
# older sorf loses its key there.
# Assets in two steps, both without a list per address: each address's distinct (mac, vlan, role) with
# min/max/sum, then per address min/max (one value: no list needed); lists only for the few addresses with
# several. list() per group over millions of addresses (a scan) needed over 200 MB of DuckDB memory.
# A flow's two sides count it once (flow ids are unique across captures); identity rows count no flow.
ASSETS_SELECT = """
WITH sides AS (
    SELECT src_ip AS ip, src_mac AS mac, vlan, first_ts, last_ts, 1 AS flows,
           CASE WHEN app_protocol NOT IN ('unknown', transport) THEN app_protocol || '_client' END AS role
    FROM flows
    UNION ALL  -- a flow from an address to itself counts once
    SELECT dst_ip, dst_mac, vlan, first_ts, last_ts, CASE WHEN dst_ip = src_ip THEN 0 ELSE 1 END,
           CASE WHEN app_protocol NOT IN ('unknown', transport) THEN app_protocol || '_server' END
    FROM flows
    UNION ALL
    SELECT ip, NULL, NULL, NULL, NULL, 0, role FROM identities WHERE role IS NOT NULL
),
combos AS MATERIALIZED (  -- each address's distinct (mac, vlan, role)
    SELECT ip, mac, vlan, role, min(first_ts) AS first_ts, max(last_ts) AS last_ts, sum(flows) AS flows
    FROM sides GROUP BY ip, mac, vlan, role
),
one AS (  -- no lists: most addresses have one of each, and a list per group needs memory per group
    SELECT ip, min(mac) AS mac, max(mac) <> min(mac) AS macs, min(vlan) AS vlan, max(vlan) <> min(vlan) AS vlans,
           min(role) AS role, max(role) <> min(role) AS roles,
           min(first_ts) AS first_ts, max(last_ts) AS last_ts, sum(flows) AS flows
    FROM combos GROUP BY ip
),
many AS (  -- the lists of the few addresses with more than one
    SELECT ip, list_sort(list_distinct(list(mac))) AS macs, list_sort(list_distinct(list(vlan))) AS vlans,
           list_sort(list_distinct(list(role))) AS roles
    FROM combos SEMI JOIN (SELECT ip FROM one WHERE macs OR vlans OR roles) USING (ip) GROUP BY ip
),
latest AS (  -- the most recent value of each identity field
    SELECT ip, field, arg_max(value, ts) AS value FROM identities WHERE field IS NOT NULL GROUP BY ip, field
),
identity AS (  -- a JSON object with its keys in order, whatever the thread count
    SELECT ip, '{' || string_agg(to_json(field) || ':' || to_json(value), ',' ORDER BY field) || '}' AS identity
    FROM latest GROUP BY ip
)
SELECT ip,
       CASE WHEN one.macs THEN many.macs WHEN one.mac IS NULL THEN [] ELSE [one.mac] END,
       CASE WHEN one.vlans THEN many.vlans WHEN one.vlan IS NULL THEN [] ELSE [one.vlan] END,
       one.first_ts, one.last_ts, one.flows,
       CASE WHEN one.roles THEN many.roles WHEN one.role IS NULL THEN [] ELSE [one.role] END,
       identity.identity
FROM one LEFT JOIN many USING (ip) LEFT JOIN identity USING (ip)
"""
ASSETS_REBUILD = f"DROP TABLE assets;{ASSETS.ddl(if_not_exists=False)}INSERT INTO assets {ASSETS_SELECT};"


TEXT_CACHE = 65_536  # addresses kept as text per writer: a scan from 2M sources held 2M of each (~400 MB)


def _ip_text(raw: bytes, cache: dict[bytes, str]) -> str:
    text = cache.get(raw)
    if text is None:
        if len(cache) >= TEXT_CACHE:
            cache.clear()
        text = cache[raw] = socket.inet_ntop(socket.AF_INET if len(raw) == 4 else socket.AF_INET6, raw)
    return text


def _mac_text(raw: bytes | None, cache: dict[bytes, str | None]) -> str | None:
    if not raw:
        return None
    text = cache.get(raw)
    if text is None:
        if len(cache) >= TEXT_CACHE:
            cache.clear()
        text = cache[raw] = raw.hex(":")
    return text


def details_json(details: dict) -> str:
    """Operation.details as the store keeps them: compact JSON, keys in insertion order."""
    return orjson.dumps(details, default=str, option=orjson.OPT_NON_STR_KEYS).decode()


_ESCAPED = np.zeros(256, bool)  # the bytes orjson escapes in a string: a value without them is quoted as it is
_ESCAPED[[*range(0x20), ord('"'), ord("\\")]] = True


def details_text(details: Details) -> pa.Array:
    """Bulk rows' details as the text details_json gives each row's dict (the values put in at their keys).

    Each distinct dict is encoded once, cut where the keys of ``details.values`` go (a string value's quotes in
    the cut pieces); each row's text is its dict's pieces joined with its own values, by Arrow for the whole
    column. A row whose dict lacks a key takes a null for it, which the join writes as nothing."""
    keys = list(details.values)
    values = [_value_text(details.values[key]) for key in keys]
    cuts = [_cut(d, keys, [quoted for _, quoted in values]) for d in details.dicts]
    index = pa.array(details.index)
    pieces = [pa.array([c[0][j] for c in cuts], pa.string()).take(index) for j in range(len(keys) + 1)]
    if not keys:
        return pieces[0]
    parts = [pieces[0]]
    for j, (text, _) in enumerate(values):
        has = np.array([c[1][j] for c in cuts], bool)
        parts += [text if has.all() else _masked(text, has[details.index]), pieces[j + 1]]
    # "replace", not "skip": pyarrow 26's skip drops the rows whose every input is null
    joined = pc.binary_join_element_wise(*parts, pa.scalar("", pa.string()), null_handling="replace",
                                         null_replacement="")  # fmt: skip
    some = np.array([c[0][0] is not None for c in cuts], bool)
    return joined if some.all() else _masked(joined, some[details.index])


def _cut(details: dict | None, keys: list[str], quoted: list[bool]) -> tuple[list[str | None], list[bool]]:
    """A dict's text cut where the values of ``keys`` go (the quotes of a ``quoted`` one kept in the pieces;
    empty pieces for the keys it lacks), and which keys it has; None pieces for no details (None or empty, as
    the packet path writes them). The items between those keys are encoded together by details_json."""
    if not details:
        return [None] * (len(keys) + 1), [False] * len(keys)
    pieces: list[str | None] = [""] * (len(keys) + 1)
    has = [False] * len(keys)
    items: list[str] = []  # the items since the last key's value as text, then the next key's name
    run: dict = {}
    text = "{"  # what goes before the items: "," (after a quote) once a key's value has been cut at
    for key, value in details.items():
        if key not in keys:
            run[key] = value
            continue
        j = keys.index(key)
        if any(has[j:]):
            raise ValueError(f"details key {key!r} out of the order of {keys}")
        items += [details_json(run)[1:-1]] if run else []
        items.append(orjson.dumps(key).decode() + ":")
        quote = '"' if quoted[j] else ""
        pieces[j], has[j], text, items, run = text + ",".join(items) + quote, True, quote + ",", [], {}
    items += [details_json(run)[1:-1]] if run else []
    pieces[-1] = (text + ",".join(items) if items else text[:-1]) + "}"
    return pieces, has


def _value_text(values: pa.Array) -> tuple[pa.Array, bool]:
    """Integers or strings as JSON values (null as null), and whether their quotes are left to the pieces: strings
    that need no escape, seen in their data buffer (bytes a slice leaves out may only send them the slow way)."""
    if pa.types.is_integer(values.type):
        return pc.cast(values, pa.string()).fill_null("null"), False
    if not pa.types.is_string(values.type):
        raise TypeError(f"details values of type {values.type}")
    data = values.buffers()[2]
    if not values.null_count and (data is None or not _ESCAPED[np.frombuffer(data, np.uint8)].any()):
        return values, True
    return pa.array(["null" if v is None else orjson.dumps(v).decode() for v in values.to_pylist()], pa.string()), False


def _masked(array: pa.Array, valid: np.ndarray) -> pa.Array:
    """An array without nulls, null where not ``valid``: a new validity bitmap over the same buffers."""
    bits = np.packbits(np.concatenate((np.zeros(array.offset, bool), valid)), bitorder="little")
    return pa.Array.from_buffers(
        array.type, len(array), [pa.py_buffer(bits), *array.buffers()[1:]], offset=array.offset
    )


class _Batch:
    """Rows for one table, flushed as one Arrow table: appending a tuple per row
    and transposing once at flush (zip, in C) beats appending to every column."""

    def __init__(self, table: str, columns: dict[str, pa.DataType]):
        self.table = table
        self.columns = columns
        self.rows: list[tuple] = []
        self.add = self.rows.append

    def __len__(self) -> int:
        return len(self.rows)

    def flush(self, inserter: _Inserter) -> int:
        n = len(self.rows)
        if not n:
            return 0
        data = zip(*self.rows, strict=True)
        inserter.put(
            self.table,
            pa.table({name: pa.array(col, type=t) for (name, t), col in zip(self.columns.items(), data, strict=True)}),
        )
        self.rows.clear()
        return n


class _Inserter:
    """Inserts Arrow tables from a thread of its own. DuckDB releases the GIL while
    it writes, so on two cores the insert runs beside the decoding of the next chunk.
    One table waits at most: memory stays bounded. Anyone else using the tables it
    writes calls ``drain`` first.

    Each table's rows go in through a transaction of their own, committed every
    ROW_GROUP rows: DuckDB writes a commit of at least a row group straight to the
    file, compressed, where a smaller one goes to the WAL and is written again at the
    checkpoint (0.9 against 1.3 µs a row). The open transaction holds one row group
    in memory; ``drain`` commits what is left."""

    def __init__(self, con: duckdb.DuckDBPyConnection, atomic: bool = False):
        self.con = con
        # live (`sorf sense`): one transaction for every table, committed at ``drain``, so that a crash loses the
        # rows since the last commit and nothing else; a flow's row replaces the one written while it was open
        self.atomic = atomic
        self.cursors: dict[str, duckdb.DuckDBPyConnection] = {}  # one per table (one in all if atomic)
        self.pending: dict[str, int] = {}  # rows in each open transaction
        self.queue: queue.Queue = queue.Queue(maxsize=1)
        self.error: BaseException | None = None
        self.thread: threading.Thread | None = None

    def put(self, table: str, arrow: pa.Table) -> None:
        if self.error is not None:
            self.drain()
        self._queue((table, arrow))

    def execute(self, sql: str, params: list) -> None:
        """A statement in the open transaction (atomic only): committed with the rows, or lost with them."""
        assert self.atomic, "statements go through the inserter only in its one transaction"
        if self.error is not None:
            self.drain()
        self._queue((sql, params))

    def _queue(self, item: tuple[str, pa.Table | list] | None) -> None:
        if self.thread is None:
            self.thread = threading.Thread(target=self._run, name="sorf-inserter", daemon=True)
            self.thread.start()
        self.queue.put(item)

    def _run(self) -> None:
        while True:
            item = self.queue.get()  # None: commit
            try:
                if self.error is None:
                    if item is None:
                        self._commit()
                    elif isinstance(item[1], list):
                        self._cursor().execute(*item)
                    else:
                        self._insert(*item)
            except BaseException as exc:  # noqa: BLE001 - handed to the main thread at the next drain
                self.error = exc
                self._rollback()
            finally:
                self.queue.task_done()

    def _cursor(self, table: str = "") -> duckdb.DuckDBPyConnection:
        """The cursor of ``table``'s transaction (of every table's, if atomic), begun if none is open."""
        key = "" if self.atomic else table
        cursor = self.cursors.get(key)
        if cursor is None:
            cursor = self.cursors[key] = self.con.cursor()
            cursor.execute("USE site")  # a cursor starts in the in-memory database
        if self.atomic and key not in self.pending:
            cursor.begin()
            self.pending[key] = 1
        return cursor

    def _insert(self, table: str, arrow: pa.Table) -> None:
        """Columns go in by position: the *_COLUMNS dicts are in the tables' order."""
        if self.atomic:
            cursor = self._cursor()
            if table == "flows":
                _replace_flows(cursor, arrow)
            cursor.from_arrow(arrow).insert_into(table)
            return
        cursor = self._cursor(table)
        at = 0
        while at < arrow.num_rows:
            pending = self.pending.get(table, 0)
            if not pending:
                cursor.begin()
            part = arrow.slice(at, ROW_GROUP - pending)
            cursor.from_arrow(part).insert_into(table)  # register + INSERT costs 0.7 ms more a call
            at += part.num_rows
            self.pending[table] = pending + part.num_rows
            if self.pending[table] == ROW_GROUP:
                del self.pending[table]
                cursor.commit()

    def _commit(self) -> None:
        for table in list(self.pending):
            del self.pending[table]
            self.cursors[table].commit()

    def _rollback(self) -> None:
        for table in list(self.pending):
            del self.pending[table]
            with contextlib.suppress(duckdb.Error):  # a database the failure invalidated: drain raises that failure
                self.cursors[table].rollback()

    def drain(self) -> None:
        """Wait until everything queued is in the database, committed; raise what went wrong."""
        if self.thread is None:  # nothing was ever put
            return
        self._queue(None)
        self.queue.join()
        if self.error is not None:
            error, self.error = self.error, None
            raise error


def _replace_flows(cursor: duckdb.DuckDBPyConnection, arrow: pa.Table) -> None:
    """Remove the rows these flows had (written while they were open): the range lets DuckDB skip row groups."""
    ids = arrow.select(["flow_id"])
    bounds = pc.min_max(ids.column(0)).as_py()
    cursor.register("_incoming_flows", ids)
    try:
        cursor.execute(
            "DELETE FROM flows WHERE flow_id BETWEEN ? AND ? AND flow_id IN (SELECT flow_id FROM _incoming_flows)",
            [bounds["min"], bounds["max"]],
        )
    finally:
        cursor.unregister("_incoming_flows")


class Store:
    """One DuckDB file holding every capture of a site. ``live``: written by `sorf sense`, which commits every few
    seconds (``commit``) and rewrites the rows of flows still open."""

    def __init__(self, path: str, live: bool = False):
        self.path = path
        # a small fanless box: DuckDB spills to disk rather than grow with the capture. The file is
        # attached, not opened, to set its row group size; it spills beside itself, as if opened.
        limit = os.environ.get("SORF_MEMORY_LIMIT") or MEMORY_LIMIT  # more, when DuckDB runs out at MEMORY_LIMIT
        self.con = duckdb.connect(config={"memory_limit": limit, "threads": 1, "temp_directory": path + ".tmp"})
        try:
            self._attach(path)
            self.con.execute("USE site")
            self.con.execute(DDL)
            row = self.con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            if row is None:
                self.con.execute("INSERT INTO meta VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)])
            elif int(row[0]) != SCHEMA_VERSION:
                raise RuntimeError(f"{path}: schema version {row[0]}, this sorf writes version {SCHEMA_VERSION}")
        except BaseException:  # not a database, locked, read-only, full: let go of the file at once
            self.con.close()
            raise
        self.inserter = _Inserter(self.con, atomic=live)

    def _attach(self, path: str) -> None:
        """Attach the file; while another process holds it (a server taking its snapshot), wait."""
        deadline = time.monotonic() + LOCK_WAIT_S
        while True:
            try:
                self.con.execute(f"ATTACH '{path.replace(chr(39), chr(39) * 2)}' AS site (ROW_GROUP_SIZE {ROW_GROUP})")
                return
            except duckdb.IOException as exc:
                if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def close(self) -> None:
        try:
            self.inserter.drain()
        finally:
            self.con.close()

    def committed(self) -> bool:
        """A capture is committed: publish a snapshot if a server reads this database (sensor/snapshot.py)."""
        if not snapshot.server_watching(self.path):
            return False
        self.rebuild_assets()
        self.con.execute("CHECKPOINT site")
        snapshot.publish_file(self.path)
        return True

    def find_capture(self, sha256: str) -> tuple[int, str, str | None] | None:
        """(capture_id, status, error) of the capture with these bytes, if any.

        The inserter never writes captures, so this and set_sha256 need not wait for
        it (ingest calls both while a capture's rows are being inserted)."""
        return self.con.execute("SELECT capture_id, status, error FROM captures WHERE sha256 = ?", [sha256]).fetchone()

    def interrupted(self) -> bool:
        """Is a capture left 'ingesting' by an interrupted run?"""
        self.inserter.drain()
        return self.con.execute("SELECT count(*) FROM captures WHERE status = 'ingesting'").fetchall()[0][0] > 0

    def begin_capture(self, path: str, sha256: str | None, size: int, sensor: str | None) -> int:
        """Register a capture as 'ingesting'; a leftover from an interrupted run is
        cleared: one with these bytes, or one whose sha256 was not known yet (None:
        ingest hashes the file while reading it, then calls set_sha256)."""
        self.clear_leftovers(sha256)
        ((capture_id,),) = self.con.execute("SELECT coalesce(max(capture_id), 0) + 1 FROM captures").fetchall()
        self.con.execute(
            "INSERT INTO captures (capture_id, path, sha256, bytes, sensor, status, ingested_at) "
            "VALUES (?, ?, ?, ?, ?, 'ingesting', ?)",
            [capture_id, path, sha256, size, sensor, _now()],
        )
        return capture_id

    def clear_leftovers(self, sha256: str | None) -> None:
        """Remove what an interrupted run left of a capture with these bytes, or of
        one it had not finished hashing (sha256 still NULL)."""
        self.inserter.drain()
        leftovers = self.con.execute(
            "SELECT capture_id FROM captures WHERE sha256 = ? OR (sha256 IS NULL AND status = 'ingesting')", [sha256]
        ).fetchall()
        for (found,) in leftovers:
            self.delete_capture(found)

    def begin_live(self, path: str | None, sensor: str | None) -> int:
        """Register a capture `sorf sense` is writing ('sensing'): a ring file (``path``), or the interface's
        packets with no file kept (None). Its rows are committed as it goes (``commit``)."""
        self.inserter.drain()
        ((capture_id,),) = self.con.execute("SELECT coalesce(max(capture_id), 0) + 1 FROM captures").fetchall()
        self.con.execute(
            "INSERT INTO captures (capture_id, path, format, sensor, status, ingested_at) "
            "VALUES (?, ?, ?, ?, 'sensing', ?)",
            [capture_id, path, "pcap" if path else None, sensor, _now()],
        )
        return capture_id

    def interrupted_live(self) -> list[int]:
        """Captures a `sorf sense` that died (a crash, kill -9, power) left 'sensing': what it committed is kept.
        Only one process writes a database, so none of them is being written now."""
        self.inserter.drain()
        rows = self.con.execute(
            "UPDATE captures SET status = 'interrupted', error = ? WHERE status = 'sensing' RETURNING capture_id",
            [INTERRUPTED],
        ).fetchall()
        return [capture_id for (capture_id,) in rows]

    def progress_live(self, capture_id: int, **fields) -> None:
        """A live capture's row as it stands, in the transaction of its records (committed with them)."""
        names, values = _assignments(fields)
        self.inserter.execute(f"UPDATE captures SET {names} WHERE capture_id = ?", [*values, capture_id])

    def sensor_stats(self, row: dict) -> None:
        """One interval of a live sensor's counters (schema SENSOR_STATS), committed with the records."""
        self.inserter.put(
            "sensor_stats", pa.table({k: pa.array([row[k]], type=t) for k, t in SENSOR_STATS_COLUMNS.items()})
        )

    def commit(self) -> None:
        """Everything written so far, committed at once (live): a crash after this loses nothing before it."""
        self.inserter.drain()

    def rotated_away(self, path: str, when: int, kept: int) -> None:
        """A ring file was deleted to make room: its records stay, its packets are gone (evidence says so)."""
        self.inserter.drain()
        self.con.execute(
            "UPDATE captures SET status = 'rotated', error = ? WHERE path = ?",
            [f"ring file deleted at {_iso(when)} to keep the newest {kept}: its records are kept, its packets are not",
             path],
        )  # fmt: skip

    def set_sha256(self, capture_id: int, sha256: str) -> None:
        self.con.execute("UPDATE captures SET sha256 = ? WHERE capture_id = ?", [sha256, capture_id])

    def delete_capture(self, capture_id: int) -> None:
        self.inserter.drain()
        for table in ("flows", "operations", "identities", "anomalies", "captures"):
            self.con.execute(f"DELETE FROM {table} WHERE capture_id = ?", [capture_id])

    def end_capture(self, capture_id: int, **fields) -> None:
        self.inserter.drain()
        names, values = _assignments(fields)
        self.con.execute(f"UPDATE captures SET {names} WHERE capture_id = ?", [*values, capture_id])

    def writer(self, capture_id: int) -> CaptureWriter:
        return CaptureWriter(self, capture_id)

    def rebuild_assets(self) -> None:
        """The one statement whose memory grows with the addresses (a group each), at a point where the
        inserter holds nothing. It starts with REBUILD_MEMORY_MB of DuckDB memory and doubles it each
        time that runs out (a scan from millions of addresses), up to REBUILD_ATTEMPTS times."""
        self.inserter.drain()
        ((limit,),) = self.con.execute("SELECT current_setting('memory_limit')").fetchall()
        try:
            for attempt in range(REBUILD_ATTEMPTS):
                self.con.execute("BEGIN TRANSACTION")
                try:  # setting a limit below what DuckDB holds runs out of memory too
                    self.con.execute(f"SET memory_limit = '{REBUILD_MEMORY_MB << attempt}MB'")
                    self.con.execute(ASSETS_REBUILD)
                    self.con.execute("COMMIT")
                    return
                except duckdb.OutOfMemoryException:
                    self.con.execute("ROLLBACK")
                    if attempt == REBUILD_ATTEMPTS - 1:
                        raise
        finally:
            self.con.execute(f"SET memory_limit = '{limit}'")


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _timestamp(us: int) -> datetime:
    return datetime.fromtimestamp(us / 1e6, UTC).replace(tzinfo=None)


def _iso(us: int) -> str:
    return f"{_timestamp(us):%Y-%m-%d %H:%M:%S} UTC"


def _assignments(fields: dict) -> tuple[str, list]:
    """``SET`` text and values for a captures row (column names are the callers' own, never user input); times
    in µs since the epoch become timestamps."""
    values = [_timestamp(v) if k in ("first_ts", "last_ts") and v is not None else v for k, v in fields.items()]
    return ", ".join(f"{k} = ?" for k in fields), values


class CaptureWriter:
    """The sink the flow table writes to for one capture: batches rows per table."""

    def __init__(self, store: Store, capture_id: int):
        self.inserter = store.inserter
        self.bulk: list[pa.Table] = []
        self.bulk_rows = 0
        self.capture_id = capture_id
        self.flows = _Batch("flows", FLOW_COLUMNS)
        self.operations = _Batch("operations", OPERATION_COLUMNS)
        self.anomalies = _Batch("anomalies", ANOMALY_COLUMNS)
        self.identities = _Batch("identities", IDENTITY_COLUMNS)
        # one row per fact and capture, the earliest frame's: held until the capture ends (live: until a commit,
        # since frames only grow), then its key is kept so that the fact is not written again
        self.known_identities: dict[tuple, tuple] = {}
        self.facts_written: set[tuple] = set()
        self.open_written: dict[int, int] = {}  # live: flow_id -> its packets when its open row was last written
        self.counts = {"flows": 0, "operations": 0, "identities": 0, "anomalies": 0}
        self.operations_by_protocol: dict[str, int] = {}
        self.anomalies_by_kind: dict[str, int] = {}
        self._ips: dict[bytes, str] = {}
        self._macs: dict[bytes, str | None] = {}

    def flow(self, f: Flow) -> None:
        """A finished flow's row (live: it replaces the row written while it was open)."""
        self.open_written.pop(f.flow_id, None)
        self._flow_row(f)

    def open_flows(self, flows: Iterable[Flow]) -> None:
        """Live: the rows of the flows still open that took packets since the last call, as they stand."""
        written = self.open_written
        for f in flows:
            packets = f.packets_orig + f.packets_resp
            if written.get(f.flow_id) != packets:
                written[f.flow_id] = packets
                self._flow_row(f)

    def _flow_row(self, f: Flow) -> None:
        ips, macs = self._ips, self._macs
        self.flows.add((
            f.flow_id, self.capture_id, f.vlan, f.transport,
            _ip_text(f.orig_ip, ips), f.orig_port if f.proto in (6, 17) else None,
            _ip_text(f.resp_ip, ips), f.resp_port if f.proto in (6, 17) else None,
            _mac_text(f.orig_mac, macs), _mac_text(f.resp_mac, macs),
            f.label(), f.packets_orig, f.packets_resp, f.bytes_orig, f.bytes_resp,
            f.first_ts, f.last_ts, f.first_frame, f.last_frame,
            *((f.handshake, f.reset, f.history) if f.proto == 6 else (None, None, None)),
        ))  # fmt: skip
        if len(self.flows) >= BATCH_ROWS:
            self.counts["flows"] += self.flows.flush(self.inserter)

    def record(self, flow: Flow, from_orig: bool, frame: int, ts: int, record: Record) -> None:
        if isinstance(record, Operation):
            op = record
            self.operations.add((
                self.capture_id, frame, ts, flow.flow_id, op.protocol, op.direction, op.function_code,
                op.function_name, op.access_class, op.status, op.transaction_id, op.unit_id, op.address,
                op.quantity, op.target, details_json(op.details) if op.details else None,
            ))  # fmt: skip
            self.operations_by_protocol[op.protocol] = self.operations_by_protocol.get(op.protocol, 0) + 1
            if len(self.operations) >= BATCH_ROWS:
                self.counts["operations"] += self.operations.flush(self.inserter)
        elif isinstance(record, Identity):
            self.identity(flow, from_orig, frame, ts, record)
        else:
            self.anomaly(frame, ts, flow.flow_id, record)

    def bulk_operations(self, frames, ts, flow_ids, columns: dict[str, pa.Array], details: Details) -> None:
        """Operation rows decoded in bulk (dissectors/bulk.py), inserted as they are, their details encoded."""
        n = len(frames)
        head = [pa.array(np.full(n, self.capture_id, np.int32)), pa.array(frames), pa.array(ts).cast(TS)]
        # from_arrays casts only the columns of another type (a bulk decoder's int64 address)
        arrays = head + [pa.array(flow_ids)] + [columns[name] for name in _BULK_COLUMNS] + [details_text(details)]
        table = pa.Table.from_arrays(arrays, schema=_OPERATION_SCHEMA)
        self.bulk.append(table)
        self.bulk_rows += n
        if self.bulk_rows >= BATCH_ROWS:
            self._flush_bulk()
        self.counts["operations"] += n
        for value in table.column("protocol").value_counts().to_pylist():
            name = value["values"]
            self.operations_by_protocol[name] = self.operations_by_protocol.get(name, 0) + value["counts"]

    def _flush_bulk(self) -> None:
        if self.bulk:
            self.inserter.put("operations", pa.concat_tables(self.bulk))
            self.bulk, self.bulk_rows = [], 0

    def identity(self, flow: Flow, from_orig: bool, frame: int, ts: int, ident: Identity) -> None:
        """One row per fact (the role, each field) about the IP that sent the PDU;
        a fact already written for this capture is not written again."""
        ip = _ip_text(flow.orig_ip if from_orig else flow.resp_ip, self._ips)
        facts: list[tuple[str | None, str | None, str | None]] = [(ident.role, None, None)] if ident.role else []
        facts += [(None, k, str(v)) for k, v in ident.fields.items() if v is not None and v != ""]
        known = self.known_identities
        for role, field, value in facts:
            key = (ip, ident.protocol, role, field, value)
            if key in self.facts_written:
                continue
            row = known.get(key)
            if row is None or frame < row[1]:
                known[key] = (self.capture_id, frame, ts, flow.flow_id, ip, ident.protocol, role, field, value)

    def anomaly(self, frame: int | None, ts: int | None, flow_id: int | None, a: Anomaly) -> None:
        self.anomalies.add((self.capture_id, frame, ts, flow_id, a.protocol, a.kind, a.detail))
        self.anomalies_by_kind[a.kind] = self.anomalies_by_kind.get(a.kind, 0) + 1
        if len(self.anomalies) >= BATCH_ROWS:
            self.counts["anomalies"] += self.anomalies.flush(self.inserter)

    def flush(self) -> None:
        """Write what is batched; identities only once the capture is done (``end``)."""
        for name in ("flows", "operations", "anomalies"):
            self.counts[name] += getattr(self, name).flush(self.inserter)
        self._flush_bulk()

    def identities_so_far(self) -> None:
        """Write the facts found so far (live, before a commit; ``end`` for a file): each once per capture."""
        self.identities.rows.extend(self.known_identities.values())
        self.facts_written.update(self.known_identities)
        self.known_identities.clear()
        self.counts["identities"] += self.identities.flush(self.inserter)

    def end(self) -> None:
        """The capture is read: write the identities and everything still batched."""
        self.identities_so_far()
        self.flush()
