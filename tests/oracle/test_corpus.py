"""The shared corpus of real ICS captures against tshark, the reference oracle."""

from __future__ import annotations

import duckdb
import pytest

from tests.helpers.paths import SHARED, manifest
from tests.helpers.tshark import conversations, sorf_conversations

CAPTURES = [row["path"] for row in manifest()]


def test_every_capture_ingests_with_manifest_packet_counts(corpus_db):
    con = duckdb.connect(str(corpus_db), read_only=True)
    rows = dict(con.execute("SELECT path, packets FROM captures WHERE status = 'ok'").fetchall())
    expected = {str(SHARED / r["path"]): int(r["packets"]) for r in manifest()}
    assert {p: rows.get(p) for p in expected} == expected
    internal = con.execute(
        "SELECT count(*) FROM anomalies WHERE kind IN ('internal_error', 'dissector_error')"
    ).fetchone()
    assert internal == (0,)


@pytest.mark.parametrize("capture", CAPTURES)
def test_flows_equal_tshark_conversations(corpus_db, capture):
    """Per conversation and direction: packets and bytes (frame lengths) as tshark counts them."""
    path = str(SHARED / capture)
    with duckdb.connect(str(corpus_db), read_only=True) as con:
        (capture_id,) = con.execute("SELECT capture_id FROM captures WHERE path = ?", [path]).fetchone()
        ours = sorf_conversations(con, capture_id)
    ref = conversations(path)
    assert ours == ref


def test_reingest_is_idempotent(corpus_db, tmp_path):
    import shutil

    from sorf.cli import main

    db = tmp_path / "again.duckdb"
    shutil.copy(corpus_db, db)
    counts = (
        "SELECT (SELECT count(*) FROM captures), (SELECT count(*) FROM flows), "
        "(SELECT count(*) FROM operations), (SELECT count(*) FROM assets)"
    )
    before = duckdb.connect(str(db)).execute(counts).fetchone()
    assert main(["ingest", str(SHARED / "modbus"), str(SHARED / "dnp3" / "zeek_dnp3.pcap"), "--db", str(db)]) == 0
    with duckdb.connect(str(db)) as con:
        assert con.execute(counts).fetchone() == before
