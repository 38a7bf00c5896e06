"""A big capture is hashed on a thread while it is read (sensor.ingest._Hashing):
when its digest says it is a duplicate, ingest has begun already, and what it wrote
must go. These tests hash small captures that way (HASH_AHEAD = 0), in tiny chunks
with rows inserted in small batches, and make the digest known late."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from types import SimpleNamespace

import duckdb
import pytest

from sensor import ingest, store, walk
from sensor.ingest import DUPLICATE, OK, ingest_file
from sensor.store import Store
from tests.helpers.paths import SHARED

CAPTURES = SHARED
MODBUS = CAPTURES / "modbus" / "modbus_test.pcap"  # 2257 frames
DNP3 = CAPTURES / "dnp3" / "zeek_dnp3.pcap"
TABLES = ("captures", "flows", "operations", "identities", "anomalies", "assets", "meta")


@pytest.fixture(autouse=True)
def hashed_while_read(monkeypatch):
    monkeypatch.setattr(ingest, "HASH_AHEAD", 0)
    monkeypatch.setattr(walk, "CHUNK", 4096)  # many chunks: the digest is looked at between them
    monkeypatch.setattr(store, "BATCH_ROWS", 16)  # rows reach the database soon after they are made


@pytest.fixture
def late(monkeypatch) -> SimpleNamespace:
    """The digest becomes known only at the ``late.at``-th look between chunks
    (None: once the file is read)."""
    real = ingest._Hashing.done
    when = SimpleNamespace(at=3, looks=0)

    def done(self) -> bool:
        when.looks += 1
        return when.at is not None and when.looks >= when.at and real(self)

    monkeypatch.setattr(ingest._Hashing, "done", done)
    return when


def dump(db: Path) -> dict[str, list[tuple]]:
    with duckdb.connect(str(db), read_only=True) as con:
        return {t: con.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall() for t in TABLES}


def test_corpus_is_there():
    assert MODBUS.is_file() and DNP3.is_file(), "the tests read ../shared/captures"


@pytest.mark.parametrize("columnar", [True, False], ids=["columnar", "packets"])
@pytest.mark.parametrize("at", [5, None], ids=["between-chunks", "at-the-end"])
def test_duplicate_found_after_ingest_began_leaves_the_database_as_it_was(tmp_path, monkeypatch, late, columnar, at):
    db = tmp_path / "site.duckdb"
    s = Store(str(db))
    assert ingest_file(s, str(DNP3)).status == OK
    assert ingest_file(s, str(MODBUS)).status == OK
    s.rebuild_assets()
    s.close()
    before = dump(db)

    copy = tmp_path / "again.pcap"  # the same bytes under another name
    shutil.copy(MODBUS, copy)
    late.at, late.looks = at, 0
    monkeypatch.setattr(ingest, "PROGRESS_EVERY", 64)  # the packet path looks at the digest this often
    written = {}  # rows of the abandoned capture in the database when it was removed
    s = Store(str(db))
    real_delete = s.delete_capture

    def delete(capture_id: int) -> None:
        s.inserter.drain()
        written.update({t: s.con.execute(f"SELECT count(*) FROM {t} WHERE capture_id = ?", [capture_id]).fetchone()[0]
                        for t in ("captures", "flows", "operations")})  # fmt: skip
        real_delete(capture_id)

    monkeypatch.setattr(s, "delete_capture", delete)
    progress = []
    result = ingest_file(s, str(copy), columnar=columnar, progress=lambda *a: progress.append(a))
    s.rebuild_assets()
    s.close()

    assert (result.status, result.capture_id) == (DUPLICATE, 2)
    assert result.message == "already ingested as capture 2 (same sha256)"
    assert written["captures"] == 1 and written["operations"] > 0  # ingest had begun, and was undone
    assert progress == []  # a duplicate shows no progress, as when it was hashed first
    assert dump(db) == before


def test_the_digest_is_stored_and_a_new_capture_numbered_as_before(tmp_path, late):
    db = tmp_path / "site.duckdb"
    s = Store(str(db))
    first = ingest_file(s, str(MODBUS))
    late.at, late.looks = None, 0
    second = ingest_file(s, str(DNP3))
    s.close()
    assert (first.status, first.capture_id, second.status, second.capture_id) == (OK, 1, OK, 2)
    with duckdb.connect(str(db), read_only=True) as con:
        stored = con.execute("SELECT capture_id, sha256, status FROM captures ORDER BY 1").fetchall()
    assert stored == [(1, hashlib.sha256(MODBUS.read_bytes()).hexdigest(), "ok"),
                      (2, hashlib.sha256(DNP3.read_bytes()).hexdigest(), "ok")]  # fmt: skip


def test_a_capture_interrupted_before_its_digest_was_known_is_replaced(tmp_path):
    """A run stopped while the file was being hashed leaves an 'ingesting' capture
    with no sha256: the next ingest clears it, as it clears one with the same bytes."""
    db = tmp_path / "site.duckdb"
    s = Store(str(db))
    assert ingest_file(s, str(MODBUS)).status == OK
    s.close()
    before = dump(db)
    with duckdb.connect(str(db)) as con:
        con.execute("UPDATE captures SET sha256 = NULL, status = 'ingesting'")
    s = Store(str(db))
    result = ingest_file(s, str(MODBUS))
    s.close()
    assert (result.status, result.capture_id) == (OK, 1)
    after = dump(db)
    when = 12  # ingested_at: the new capture's is now
    assert [r[:when] + r[when + 1 :] for r in after.pop("captures")] == [
        r[:when] + r[when + 1 :] for r in before.pop("captures")
    ]
    assert after == before


def test_a_file_that_is_not_a_capture_stops_its_hashing(tmp_path, monkeypatch):
    notes = tmp_path / "notes.pcap"
    notes.write_bytes(b"not a capture\n" * 1000)
    started = []
    real_init = ingest._Hashing.__init__

    def init(self, f):
        real_init(self, f)
        started.append(self)

    monkeypatch.setattr(ingest._Hashing, "__init__", init)
    s = Store(str(tmp_path / "site.duckdb"))
    result = ingest_file(s, str(notes))
    s.close()
    assert result.status == "unreadable" and result.capture_id is None
    (hashing,) = started
    assert hashing.cancelled
