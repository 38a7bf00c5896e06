"""Columnar dissection of the common case, with exactly the rows ``parse`` would give.

ICS polling repeats the same few PDU shapes millions of times. A protocol may
offer ``bulk``: numpy over a whole batch of PDUs at once, for the shapes it can
decode without reading or changing the dissector's state. Everything else still
goes through ``parse``, one PDU at a time and in order, so the per-flow state
machines stay the reference.

The unit of bulk work is a *unit*: one PDU, or a run of consecutive PDUs of one
flow (a request and its response) whose parse, started from an *idle* dissector
(``Dissector.idle``), leaves it idle again. So bulk rows are only taken for a
unit whose flow is idle just before it; otherwise its PDUs are parsed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Protocol, cast

import numpy as np
import pyarrow as pa

from .base import Anomaly, Dissector, Operation, Record

# the Operation fields, in order: what a bulk decoder returns for each row (the store's operations columns)
ROW_FIELDS = tuple(f.name for f in fields(Operation))
COLUMN_FIELDS = ROW_FIELDS[:-1]  # all but details, which are values (``Details``)


@dataclass(slots=True)
class PduBatch:
    """Whole PDUs of one protocol, grouped by flow, in delivery order within a flow."""

    data: np.ndarray  # uint8: the bytes the PDUs sit in
    start: np.ndarray  # int64: offset of each PDU in data
    length: np.ndarray  # int64
    flow: np.ndarray  # int64: index into ``dissectors``; a flow's PDUs are contiguous
    from_orig: np.ndarray  # bool: sent by the flow's originator
    dissectors: list[Dissector]  # one per flow index; bulk may read static attributes (client_is_orig)

    def pdu(self, i: int) -> bytes:
        s = int(self.start[i])
        return self.data[s : s + int(self.length[i])].tobytes()


@dataclass(slots=True)
class Details:
    """The details of bulk rows as values: the store alone encodes them (sensor/store.py's ``details_text``).

    Polling repeats a few details many times, so they come dictionary-encoded: the distinct dicts of the batch
    (what ``parse`` puts in Operation.details; None for none) and each row's index into them. A key whose value
    differs on every row (a PDU reference, a session handle) is in ``values`` instead: one value a row, an
    integer or string Arrow array, taken by the rows whose dict holds that key (at its place, with any value).
    The keys of ``values`` come in the same order in every dict that holds them."""

    dicts: list[dict | None]
    index: np.ndarray  # int64 per row: its dict
    values: dict[str, pa.Array] = field(default_factory=dict)

    def filter(self, keep: np.ndarray) -> Details:
        """The rows where ``keep`` is True."""
        mask = pa.array(keep)
        return Details(self.dicts, self.index[keep], {k: v.filter(mask) for k, v in self.values.items()})

    @classmethod
    def empty(cls) -> Details:
        return cls([], np.zeros(0, np.int64))


@dataclass(slots=True)
class BulkRows:
    """What a bulk decoder made of a batch.

    ``unit[i]`` is the index of the first PDU of the unit PDU i belongs to, or -1
    when PDU i must go through ``parse``. Rows are listed PDU by PDU (``pdu``),
    each PDU's rows in the order ``parse`` returns them; ``columns`` holds one
    Arrow array per name in COLUMN_FIELDS, and ``details`` the rows' details."""

    unit: np.ndarray
    pdu: np.ndarray
    columns: dict[str, pa.Array]
    details: Details = field(default_factory=Details.empty)

    @classmethod
    def none(cls, n: int) -> BulkRows:
        return cls(np.full(n, -1, np.int64), np.zeros(0, np.int64), {})


BulkDecoder = Callable[[PduBatch], BulkRows]


class Parses(Protocol):
    """A dissector with a bulk decoder parses whole PDUs too (FramedStream, or a datagram_is_pdu dissector)."""

    name: str

    def idle(self, from_orig: bool) -> bool: ...

    def parse(self, pdu: bytes, from_orig: bool) -> list[Record]: ...


def gather(data: np.ndarray, at: np.ndarray, width: int) -> np.ndarray:
    """The ``width`` bytes at each offset of data as one numpy void item each (a row is copied at once, not
    gathered byte by byte); bytes outside data read as zeros. ``data`` is often a whole chunk of a capture,
    megabytes: it is not copied to pad it, the few rows that cross its ends are read byte by byte."""
    n = len(data)
    rows = np.ndarray((max(n - width + 1, 0),), f"V{width}", data, strides=(1,))
    inside = (at >= 0) & (at <= n - width)
    if inside.all():
        return rows[at]
    out = np.zeros(len(at), f"V{width}")
    out[inside] = rows[at[inside]]
    edge = np.flatnonzero(~inside)
    idx = at[edge, None] + np.arange(width)
    there = (idx >= 0) & (idx < n)
    cut = np.zeros(idx.shape, np.uint8)
    cut[there] = data[idx[there]]
    out[edge] = cut.view(f"V{width}")[:, 0]
    return out


def headers(data: np.ndarray, start: np.ndarray, length: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``size`` bytes at each start as an int64 matrix, and which rows
    have that many bytes (``pdu_lengths`` of a framed protocol reads them)."""
    return gather(data, start, size).view(np.uint8).reshape(-1, size).astype(np.int64), length >= size


@dataclass(slots=True)
class Dissected:
    """Every PDU of a batch accounted for: bulk rows kept, and parse's records."""

    pdu: np.ndarray  # bulk rows kept: the PDU each row belongs to
    columns: dict[str, pa.Array]
    details: Details
    parsed: list[tuple[int, list[Record]]] = field(default_factory=list)  # (PDU index, records) in order per flow
    failed: set[int] = field(default_factory=set)  # flows whose dissector raised: it is dropped, like the stream path


def dissect(batch: PduBatch, bulk: BulkDecoder | None) -> Dissected:
    """Rows for every PDU of ``batch``, equal to calling ``parse`` on each in order."""
    n = len(batch.start)
    rows = bulk(batch) if bulk is not None and n else BulkRows.none(n)
    unit = rows.unit
    by_parse = np.zeros(n, bool)
    parsed: list[tuple[int, list[Record]]] = []
    failed: set[int] = set()
    if n:
        # flows made of bulk units only, with an idle dissector, need no walk: each
        # unit leaves the flow idle. The others are walked PDU by PDU.
        bounds = np.flatnonzero(np.diff(batch.flow)) + 1
        starts = np.concatenate(([0], bounds))
        ends = np.concatenate((bounds, [n]))
        not_bulk = np.concatenate(([0], np.cumsum(unit < 0)))
        walk = (not_bulk[ends] - not_bulk[starts]) > 0
        idle = np.flatnonzero(~walk)
        heads = starts[idle]
        dissectors = batch.dissectors
        sides = zip(idle.tolist(), batch.flow[heads].tolist(), batch.from_orig[heads].tolist(), strict=True)
        walk[[k for k, f, side in sides if not dissectors[f].idle(side)]] = True
        if walk.any():
            # where a walk must look again after an idle check: a PDU to parse, or a
            # unit starting on the other side (idle may depend on the side)
            head = unit == np.arange(n)
            stops = (np.flatnonzero((unit < 0) | (head & batch.from_orig)),  # after a responder-side unit
                     np.flatnonzero((unit < 0) | (head & ~batch.from_orig)))  # fmt: skip
            for k in np.flatnonzero(walk):
                _walk(batch, unit, stops, int(starts[k]), int(ends[k]), by_parse, parsed, failed)
    keep = ~by_parse[rows.pdu] if len(rows.pdu) else np.zeros(0, bool)
    if failed and len(rows.pdu):
        keep &= ~np.isin(batch.flow[rows.pdu], np.fromiter(failed, np.int64))
    if len(rows.pdu) and not keep.all():
        mask = pa.array(keep)
        columns = {k: v.filter(mask) for k, v in rows.columns.items()}
        return Dissected(rows.pdu[keep], columns, rows.details.filter(keep), parsed, failed)
    return Dissected(rows.pdu, rows.columns, rows.details, parsed, failed)


def _walk(batch: PduBatch, unit: np.ndarray, stops: tuple[np.ndarray, np.ndarray], i: int, end: int,
          by_parse: np.ndarray, parsed: list[tuple[int, list[Record]]], failed: set[int]) -> None:  # fmt: skip
    """One flow's PDUs in order: a bulk unit met while the dissector is idle keeps
    its bulk rows, and so do the units after it up to the next stop (each leaves
    the dissector idle); any other PDU is parsed."""
    flow = int(batch.flow[i])
    d = cast(Parses, batch.dissectors[flow])
    from_orig = batch.from_orig
    while i < end:
        side = bool(from_orig[i])
        if unit[i] == i and d.idle(side):
            at = stops[side]
            k = int(np.searchsorted(at, i, "right"))
            i = min(int(at[k]), end) if k < len(at) else end
            continue
        by_parse[i] = True
        try:
            records = d.parse(batch.pdu(i), bool(from_orig[i]))
        except Exception as exc:  # noqa: BLE001 - a dissector bug must not stop the capture: the flow loses it
            failed.add(flow)
            parsed.append((i, [Anomaly(d.name, "dissector_error", f"{type(exc).__name__}: {exc}")]))
            by_parse[i:end] = True
            return
        parsed.append((i, records))
        i += 1
