"""Check a protocol's bulk decoder against its parse(), PDU by PDU, on real captures.

The PDUs are the ones today's stream path hands to ``parse`` while ingesting a
capture (recorded by wrapping the class's parse). The reference is a fresh
dissector per flow parsing them in order; the candidate is ``dissectors.bulk.dissect``
(bulk units where the flow is idle, parse for the rest) on fresh dissectors.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from dissectors.base import Operation
from dissectors.bulk import ROW_FIELDS, BulkRows, Dissected, PduBatch, dissect
from sensor.ingest import ingest_file
from sensor.store import Store, details_json, details_text
from tests.helpers.paths import ROOT

MAKE_BENCH = ROOT / "captures" / "make_bench.py"


def bench_capture(path: Path, packets: int) -> Path:
    """Write the first ``packets`` packets of the benchmark capture (captures/make_bench.py) to ``path``."""
    subprocess.run(
        [sys.executable, str(MAKE_BENCH), "--packets", str(packets), str(path)], check=True, capture_output=True
    )
    return path


def recorded_batch(path, cls, monkeypatch, tmp_path) -> PduBatch:
    """Every PDU the stream path parses with ``cls`` in ``path``, grouped by flow."""
    calls: list[tuple[object, bytes, bool]] = []
    original = cls.parse

    def recording(self, pdu, from_orig):
        calls.append((self, bytes(pdu), from_orig))
        return original(self, pdu, from_orig)

    monkeypatch.setattr(cls, "parse", recording)
    store = Store(str(tmp_path / f"record-{len(list(tmp_path.iterdir()))}.duckdb"))
    try:
        ingest_file(store, str(path), columnar=False)  # every PDU through parse(), none through bulk
    finally:
        store.close()
    monkeypatch.setattr(cls, "parse", original)

    flows: dict[int, int] = {}
    order: list[list[tuple[bytes, bool]]] = []
    statics: list[object] = []
    for d, pdu, from_orig in calls:
        k = flows.setdefault(id(d), len(flows))
        if k == len(order):
            order.append([])
            statics.append(d)
        order[k].append((pdu, from_orig))
    pdus = [(k, pdu, fo) for k, seq in enumerate(order) for pdu, fo in seq]
    data = b"".join(p for _, p, _ in pdus)
    lengths = np.array([len(p) for _, p, _ in pdus], np.int64)
    starts = np.concatenate(([0], np.cumsum(lengths)[:-1])).astype(np.int64) if len(pdus) else np.zeros(0, np.int64)
    dissectors = []
    for d in statics:
        fresh = cls()
        fresh.client_is_orig = d.client_is_orig
        dissectors.append(fresh)
    return PduBatch(
        data=np.frombuffer(data, np.uint8),
        start=starts,
        length=lengths,
        flow=np.array([k for k, _, _ in pdus], np.int64),
        from_orig=np.array([fo for _, _, fo in pdus], bool),
        dissectors=dissectors,
    )


def _row(rec) -> tuple:
    if isinstance(rec, Operation):
        values = [getattr(rec, f) for f in ROW_FIELDS]
        values[-1] = details_json(rec.details) if rec.details else None
        return ("op", *values)
    return (type(rec).__name__, repr(rec))


def stored(rows: BulkRows | Dissected) -> dict[str, list]:
    """Bulk rows' columns as the store writes them, by ROW_FIELDS name (details as text)."""
    return {k: v.to_pylist() for k, v in rows.columns.items()} | {"details": details_text(rows.details).to_pylist()}


def reference(batch: PduBatch, cls) -> list[list[tuple]]:
    """Rows per PDU from parse() in order on fresh dissectors."""
    fresh = []
    for d in batch.dissectors:
        f = cls()
        f.client_is_orig = d.client_is_orig
        fresh.append(f)
    return [[_row(r) for r in fresh[int(batch.flow[i])].parse(batch.pdu(i), bool(batch.from_orig[i]))]
            for i in range(len(batch.start))]  # fmt: skip


def candidate(batch: PduBatch, cls) -> tuple[list[list[tuple]], int]:
    """Rows per PDU from dissect(); and how many PDUs got bulk rows."""
    out = dissect(batch, cls.bulk)
    rows: list[list[tuple]] = [[] for _ in range(len(batch.start))]
    cols = stored(out)
    for j, i in enumerate(out.pdu.tolist()):
        rows[i].append(("op", *(cols[f][j] for f in ROW_FIELDS)))
    bulk_pdus = len(set(out.pdu.tolist()))
    for i, records in out.parsed:
        rows[i].extend(_row(r) for r in records)
    return rows, bulk_pdus


def assert_bulk_matches(batch: PduBatch, cls) -> int:
    """Assert candidate == reference for every PDU; return how many PDUs bulk decoded."""
    want = reference(batch, cls)
    got, bulk_pdus = candidate(batch, cls)
    for i, (w, g) in enumerate(zip(want, got, strict=True)):
        assert g == w, f"PDU {i} (flow {int(batch.flow[i])}, {batch.pdu(i).hex()}): bulk {g} != parse {w}"
    return bulk_pdus


def bulk_share(path, cls, monkeypatch, tmp_path, more_than: int = 0) -> float:
    """Record the PDUs ``cls`` parses in ``path`` (more than ``more_than``), check dissect()
    against parse() on every one; the share of them that got bulk rows."""
    batch = recorded_batch(path, cls, monkeypatch, tmp_path)
    assert len(batch.start) > more_than
    return assert_bulk_matches(batch, cls) / len(batch.start)


def bench_share(cls, monkeypatch, tmp_path, more_than: int) -> float:
    """bulk_share on a generated 20,000-packet benchmark capture."""
    return bulk_share(bench_capture(tmp_path / "bench-20k.pcap", 20000), cls, monkeypatch, tmp_path, more_than)


def hand_batch(cls, *flows: list[tuple[bool, bytes]], client_is_orig: bool = True) -> PduBatch:
    """Flows of (from_orig, PDU), each with a fresh ``cls()`` whose client opened the connection (or not)."""
    pdus = [(k, fo, p) for k, flow in enumerate(flows) for fo, p in flow]
    dissectors = [cls() for _ in flows]
    for d in dissectors:
        d.client_is_orig = client_is_orig
    lengths = np.array([len(p) for _, _, p in pdus], np.int64)
    return PduBatch(
        data=np.frombuffer(b"".join(p for _, _, p in pdus), np.uint8),
        start=np.cumsum(lengths) - lengths,
        length=lengths,
        flow=np.array([k for k, _, _ in pdus], np.int64),
        from_orig=np.array([fo for _, fo, _ in pdus], bool),
        dissectors=dissectors,
    )


def bulk_pdus(cls, *flows: list[tuple[bool, bytes]], client_is_orig: bool = True) -> list[int]:
    """Check dissect() against parse() on these flows (see ``hand_batch``); the PDUs that got bulk rows."""
    assert_bulk_matches(hand_batch(cls, *flows, client_is_orig=client_is_orig), cls)
    return sorted(set(dissect(hand_batch(cls, *flows, client_is_orig=client_is_orig), cls.bulk).pdu.tolist()))
