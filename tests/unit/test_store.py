"""The store's inserter: rows go in by position, one transaction per table committed
every ROW_GROUP rows (written once, compressed, not through the WAL), the rest at
drain. Whatever the batches, the tables hold exactly the rows put, in order."""

from __future__ import annotations

import os

import duckdb
import numpy as np
import pyarrow as pa
import pytest

from dissectors.bulk import Details
from sensor.store import (
    ANOMALY_COLUMNS,
    FLOW_COLUMNS,
    IDENTITY_COLUMNS,
    OPERATION_COLUMNS,
    ROW_GROUP,
    TS,
    Store,
    details_json,
    details_text,
)


def operations(capture_id: int, first: int, n: int) -> pa.Table:
    frame = np.arange(first, first + n, dtype=np.int64)
    fields = {
        "capture_id": pa.array(np.full(n, capture_id, np.int32)), "frame": pa.array(frame),
        "ts": pa.array(frame * 1000).cast(TS), "flow_id": pa.array(frame // 7),
        "protocol": pa.array(["modbus", "dnp3", "s7comm"]).take(pa.array(frame % 3)),
        "direction": pa.array(["request", "response"]).take(pa.array(frame % 2)),
        "function_code": pa.array((frame % 256).astype(np.int32)),
        "function_name": pa.array([f"f{i % 11}" for i in frame]),
        "access_class": pa.array(["read", "write", None]).take(pa.array(frame % 3)), "status": pa.nulls(n, pa.string()),
        "transaction_id": pa.array((frame % 65536).astype(np.int32)), "unit_id": pa.array(np.ones(n, np.int32)),
        "address": pa.array((frame % 1000).astype(np.int32)), "quantity": pa.nulls(n, pa.int32()),
        "target": pa.array([f"tag{i % 97}" for i in frame]), "details": pa.array([f'{{"n":{i}}}' for i in frame]),
    }  # fmt: skip
    return pa.Table.from_pydict(fields, schema=pa.schema(list(OPERATION_COLUMNS.items())))


def rows(con, table: str) -> list[tuple]:
    return con.execute(f"SELECT * FROM {table} ORDER BY frame").fetchall()


@pytest.mark.parametrize("columns,table", [(FLOW_COLUMNS, "flows"), (OPERATION_COLUMNS, "operations"),
                                           (IDENTITY_COLUMNS, "identities"),
                                           (ANOMALY_COLUMNS, "anomalies")])  # fmt: skip
def test_column_lists_are_in_the_tables_order(tmp_path, columns, table):
    """Arrow tables are inserted by position."""
    s = Store(str(tmp_path / "site.duckdb"))
    described = s.con.execute(f"SELECT column_name FROM (DESCRIBE {table})").fetchall()
    s.close()
    assert [name for (name,) in described] == list(columns)


@pytest.mark.parametrize("batch", [1000, 7777, ROW_GROUP, ROW_GROUP + 1, 3 * ROW_GROUP + 5])
def test_rows_go_in_whole_and_in_order_whatever_the_batches(tmp_path, batch):
    db = tmp_path / "site.duckdb"
    total = 2 * ROW_GROUP + 4321
    s = Store(str(db))
    for first in range(0, total, batch):
        s.inserter.put("operations", operations(1, first, min(batch, total - first)))
    s.inserter.drain()  # commits the rest: the store's own connection sees every row
    assert s.con.execute("SELECT count(*) FROM operations").fetchone()[0] == total
    s.close()
    assert not os.path.exists(str(db) + ".wal")
    with duckdb.connect(str(db), read_only=True) as con:
        got = rows(con, "operations")
    with duckdb.connect() as con:
        con.register("expected", operations(1, 0, total))
        assert got == rows(con, "expected")


def test_whole_row_groups_skip_the_wal(tmp_path):
    """A commit of a row group is written to the file, not to the WAL; what is left
    at drain (less than a row group) goes through the WAL."""
    db = tmp_path / "site.duckdb"
    wal = str(db) + ".wal"
    s = Store(str(db))
    for first in range(0, 2 * ROW_GROUP, 5000):
        s.inserter.put("operations", operations(1, first, min(5000, 2 * ROW_GROUP - first)))
    s.inserter.drain()
    whole = os.path.getsize(wal) if os.path.exists(wal) else 0
    s.inserter.put("operations", operations(1, 2 * ROW_GROUP, 20_000))
    s.inserter.drain()
    tail = os.path.getsize(wal) - whole
    s.close()
    assert whole < 100_000 < tail  # 61,440 rows in about 8 kB of WAL; 20,000 in about 2 MB


def test_captures_one_after_another(tmp_path):
    db = tmp_path / "site.duckdb"
    s = Store(str(db))
    s.inserter.put("operations", operations(1, 0, ROW_GROUP + 10))
    s.inserter.drain()
    s.inserter.put("operations", operations(2, ROW_GROUP + 10, 500))
    s.close()  # drains
    with duckdb.connect(str(db), read_only=True) as con:
        counts = con.execute("SELECT capture_id, count(*) FROM operations GROUP BY ALL ORDER BY 1").fetchall()
    assert counts == [(1, ROW_GROUP + 10), (2, 500)]


def test_a_failed_insert_is_raised_at_drain_and_the_store_goes_on(tmp_path):
    s = Store(str(tmp_path / "site.duckdb"))
    s.inserter.put("operations", operations(1, 0, 100))
    s.inserter.put("operations", pa.table({"frame": pa.array(["not", "a", "row"])}))
    with pytest.raises(duckdb.Error):
        s.inserter.drain()
    # the open transaction was rolled back with it: its capture is abandoned, as ingest abandons it
    assert s.con.execute("SELECT count(*) FROM operations").fetchone()[0] == 0
    s.inserter.put("operations", operations(2, 0, 100))
    s.inserter.drain()
    assert s.con.execute("SELECT count(*) FROM operations WHERE capture_id = 2").fetchone()[0] == 100
    s.close()


def test_a_path_with_a_quote(tmp_path):
    db = tmp_path / "o'brien's site.duckdb"
    s = Store(str(db))
    s.inserter.put("operations", operations(1, 0, 10))
    s.close()
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM operations").fetchone()[0] == 10


def test_bulk_details_encode_as_each_rows_dict():
    """Bulk details (dissectors.bulk.Details): each row's text is details_json of its dict with its own values
    put in at their keys; a dict without a key takes no value, no details (None or empty) is NULL, and a string
    value orjson escapes is escaped."""
    dicts = [
        {"session_handle": 0, "length": 3, "context": 0, "items": [{"type_id": 0}]},  # both keys, items between
        {"symbol": "T\u00e9", "n": None},  # neither key
        None,
        {},
        {"context": 0},  # the second key only, alone
        {"length": 1, 7: "seven", "session_handle": 0},  # the first key last, a non-string key before it
    ]
    index = np.array([0, 1, 2, 3, 4, 5, 0])
    handles = pa.array(["0x0001", "-", None, "x", 'q"', "0x0002", None])
    contexts = pa.array([10, 11, 12, 13, 14, 15, -(2**40)], pa.int64())
    details = Details(dicts, index, {"session_handle": handles, "context": contexts})
    want = []
    for i, handle, context in zip(index, handles.to_pylist(), contexts.to_pylist(), strict=True):
        d = dicts[i]
        if d:
            d = {k: {"session_handle": handle, "context": context}.get(k, v) if isinstance(k, str) else v
                 for k, v in d.items()}  # fmt: skip
        want.append(details_json(d) if d else None)
    assert details_text(details).to_pylist() == want
    assert want[4] == '{"context":14}' and want[5] == '{"length":1,"7":"seven","session_handle":"0x0002"}'
    assert details_text(Details([{"a": 1}], np.zeros(2, np.int64))).to_pylist() == ['{"a":1}'] * 2
    for escaped in ('q"', "b\\", "c\n", "\x00"):
        one = Details([{"k": 0}], np.zeros(1, np.int64), {"k": pa.array([escaped])})
        assert details_text(one).to_pylist() == [details_json({"k": escaped})]


def test_bulk_details_keys_in_another_order_are_refused():
    """Each dict's per-row keys must come in the order of ``values``: the pieces are joined in that order."""
    values = {"a": pa.array([1]), "b": pa.array([2])}
    with pytest.raises(ValueError):
        details_text(Details([{"b": 0, "a": 0}], np.zeros(1, np.int64), values))
