"""S7comm polling in bulk (dissectors/bulk.py): Read / Write Var jobs answered by their Ack_Data, each in one
COTP DT unit.

A unit is a run of jobs from one side followed by their answers in the same order (more than one when
pipelined), with distinct PDU references. A job's rows and its answer's depend on the PDU reference only
through transaction_id and details["pdu_reference"], and on the values of a Read Var answer not at all.
So the pairs are keyed by every other byte parse reads, one pair per distinct key is parsed on a scratch
dissector, and its rows are repeated with each pair's reference in transaction_id and as its details' per-row
value of pdu_reference.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from ..base import Identity, Operation
from ..bulk import COLUMN_FIELDS, ROW_FIELDS, BulkRows, Details, PduBatch, gather
from .classic import ACK_HEADER, DATA_ITEM, HEADER, VAR_PARAMETER
from .consts import BIT_LENGTHS, MAX_ITEMS, MAX_PENDING, READ_VAR, WRITE_VAR
from .cotp import DT_HEADER, DT_LEN, TPKT

if TYPE_CHECKING:
    from .dissector import S7comm

JOB = TPKT + DT_HEADER + HEADER + VAR_PARAMETER  # a Read / Write Var job in one DT unit, up to its item count
ACK = TPKT + DT_HEADER + ACK_HEADER + VAR_PARAMETER  # its Ack_Data; a Read Var answer's data items follow
MAX_BULK_KEY = 256  # bytes of a job or Write Var answer the bulk decoder keys pairs on: bounds the key's width
_REF = JOB.offset["pdu_reference"]  # where it is in an answer too
_NOT_REF = ~np.uint64(0xFFFF << 8 * (_REF % 8))  # all but the PDU reference of the key word that holds it
_BYTES = np.array([(1 << 8 * k) - 1 for k in range(9)], np.uint64)  # the first k bytes of a little-endian word
_MIX = np.uint64(0x9E3779B97F4A7C15)  # odd: multiplying by it mixes a key word into the hash of a pair
_ROW_TYPES = {f: pa.int32() for f in ("function_code", "transaction_id", "unit_id", "address", "quantity")}


@dataclass(slots=True)
class _Units:
    """Candidate units: pair i is job q[i] and its answer a[i], of the unit run[i], which starts at PDU
    first[run[i]]. A unit is taken whole or left to parse whole."""

    first: np.ndarray
    run: np.ndarray
    q: np.ndarray
    a: np.ndarray

    def whole(self, ok: np.ndarray) -> np.ndarray:
        """The pairs of the units all of whose pairs are ok."""
        bad = np.zeros(len(self.first), bool)
        bad[self.run[~ok]] = True
        return ~bad[self.run]

    def take(self, keep: np.ndarray) -> _Units:
        return _Units(self.first, self.run[keep], self.q[keep], self.a[keep])


def decode(batch: PduBatch, fresh: Callable[[], S7comm]) -> BulkRows:
    """The rows of the pairs of a batch, each pair's as parse gives them on a ``fresh`` dissector of an idle
    flow; every other PDU is left to parse."""
    n = len(batch.start)
    job, ack, read_ack, ref, count, datlg = _shapes(batch)
    found = _pairs(batch, job + 2 * ack, ref)
    if found is None:
        return BulkRows.none(n)
    units, ok = found
    heads, ok = _item_heads(batch, units, ok, read_ack, count, datlg)
    keep = units.whole(ok)
    units, heads = units.take(keep), heads[keep]
    if not len(units.q):
        return BulkRows.none(n)
    rep, tmpl, same = _templates(batch, units, heads, read_ack)
    q, a, side = units.q, units.a, batch.from_orig
    rows = [_pair_rows(fresh, batch.pdu(q[r]), batch.pdu(a[r]), bool(side[q[r]])) for r in rep]
    same &= np.array([r is not None for r in rows])[tmpl]
    if not same.all():
        keep = units.whole(same)
        units, tmpl = units.take(keep), tmpl[keep]
    return _columns(n, units, tmpl, rows, ref)


def _shapes(batch: PduBatch) -> tuple[np.ndarray, ...]:
    """Which PDUs are a Read / Write Var job, an answer to one, a Read Var answer (one COTP DT with EOT holding
    an S7 PDU whose header lengths add up to the TPKT), with each one's PDU reference, item count, data length."""
    length = batch.length
    raw = gather(batch.data, batch.start, ACK.size)
    h = raw.view(ACK.dtype)
    whole = (h["length_indicator"] == 2) & (h["tpdu_code"] == 0xF0) & (h["eot_number"] >= 0x80)  # any TPDU nr
    whole &= h["protocol_id"] == 0x32
    rosctr, ref = h["rosctr"], h["pdu_reference"].astype(np.int64)
    parlg, datlg = h["parameter_length"].astype(np.int64), h["data_length"].astype(np.int64)
    whole &= parlg >= VAR_PARAMETER.size  # the function and the item count
    job = whole & (rosctr == 1) & (length == DT_LEN + HEADER.size + parlg + datlg) & (length <= MAX_BULK_KEY)
    func = raw.view(np.uint8).reshape(-1, ACK.size)[:, JOB.offset["function"]]
    job &= (func == READ_VAR) | (func == WRITE_VAR)
    func, count = h["function"], h["item_count"].astype(np.int64)
    ack = whole & (rosctr == 3) & (length == DT_LEN + ACK_HEADER.size + parlg + datlg)
    read_ack = ack & (func == READ_VAR) & (parlg == VAR_PARAMETER.size) & (count <= MAX_ITEMS)  # bounds the walk
    ack &= read_ack | (func == WRITE_VAR) & (length <= MAX_BULK_KEY)
    return job, ack, read_ack, ref, count, datlg


def _pairs(batch: PduBatch, kind: np.ndarray, ref: np.ndarray) -> tuple[_Units, np.ndarray] | None:
    """Runs of jobs (kind 1) from one side followed by as many answers (kind 2) from the other, and which pairs
    are answered by reference (a reference used twice in a run is not: the second job would take the first's
    place); None when there are none."""
    n, flow, side = len(kind), batch.flow, batch.from_orig
    new = np.ones(n, bool)
    new[1:] = (flow[1:] != flow[:-1]) | (kind[1:] != kind[:-1]) | (side[1:] != side[:-1])
    rs = np.flatnonzero(new)
    rl = np.diff(np.append(rs, n))
    rk = kind[rs]
    cand = np.flatnonzero((rk[:-1] == 1) & (rk[1:] == 2) & (rl[:-1] == rl[1:]) & (rl[:-1] <= MAX_PENDING)
                          & (flow[rs[:-1]] == flow[rs[1:]]) & (side[rs[:-1]] != side[rs[1:]]))  # fmt: skip
    if not len(cand):
        return None
    first, k = rs[cand], rl[cand]
    run = np.repeat(np.arange(len(cand)), k)
    q = first[run] + np.arange(len(run)) - np.repeat(np.cumsum(k) - k, k)  # the jobs
    a = q + k[run]  # their answers
    ok = ref[q] == ref[a]
    multi = np.flatnonzero(k[run] > 1)
    if len(multi):
        o = multi[np.lexsort((ref[q[multi]], run[multi]))]
        ok[o[1:][(run[o[1:]] == run[o[:-1]]) & (ref[q[o[1:]]] == ref[q[o[:-1]]])]] = False
    return _Units(first, run, q, a), ok


def _item_heads(batch: PduBatch, units: _Units, ok: np.ndarray, read_ack: np.ndarray, count: np.ndarray,
                datlg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """The data item headers of each Read Var answer (keyed; their values are skipped), and ok less the answers
    whose items do not tile the data part."""
    a = units.a
    items = np.where(read_ack[a], count[a], 0)
    heads = np.zeros((len(a), int(items.max())), np.uint64)
    pos, data, size = np.zeros(len(a), np.int64), batch.start[a] + ACK.size, datlg[a]
    at_size, at_length = DATA_ITEM.offset["transport_size"], DATA_ITEM.offset["length"]
    for i in range(heads.shape[1]):
        live = i < items
        ok &= ~live | (pos + DATA_ITEM.size <= size)
        head = heads[:, i] = _word(batch.data, data + pos, np.where(live, DATA_ITEM.size, 0))
        vlen = _byte(head, at_length) << 8 | _byte(head, at_length + 1)
        vlen = np.where(np.isin(_byte(head, at_size), BIT_LENGTHS), (vlen + 7) >> 3, vlen)
        pos = np.where(live, pos + DATA_ITEM.size + vlen + (vlen & 1) * (i < items - 1), pos)
    ok &= ~read_ack[a] | (pos == size)
    return heads, ok


def _templates(batch: PduBatch, units: _Units, heads: np.ndarray, read_ack: np.ndarray) -> tuple[np.ndarray, ...]:
    """The pair each pair repeats (rep[tmpl[i]]), and which pairs have exactly its key.

    The key: the lengths, the job less its reference, the answer's header and parameter (all of a Write Var
    answer) less its reference, the item headers. Pairs are grouped by a hash of it, then each pair's key is
    compared with its group's first: a pair whose key differs (a collision) is left to parse."""
    q, a, start = units.q, units.a, batch.start
    lq, la = batch.length[q], batch.length[a]
    lh = np.where(read_ack[a], ACK.size, la)
    nq, nh = -(-int(lq.max()) // 8), -(-int(lh.max()) // 8)
    key = [lq.astype(np.uint64), la.astype(np.uint64)]
    key += [_word(batch.data, start[q] + 8 * m, lq - 8 * m) for m in range(nq)]
    key += [_word(batch.data, start[a] + 8 * m, lh - 8 * m) for m in range(nh)]
    key[2 + _REF // 8] &= _NOT_REF
    key[2 + nq + _REF // 8] &= _NOT_REF
    key += list(heads.T)
    h = np.zeros(len(q), np.uint64)
    for col in key:
        h = (h ^ col) * _MIX
        h ^= h >> 29
    _, rep, tmpl = np.unique(h, return_index=True, return_inverse=True)
    same = np.ones(len(q), bool)
    for col in key:
        same &= col == col[rep][tmpl]
    return rep, tmpl, same


def _columns(n: int, units: _Units, tmpl: np.ndarray, rows: list, ref: np.ndarray) -> BulkRows:
    """Each pair's rows from its template's, with its own PDU reference in transaction_id and details."""
    q, a = units.q, units.a
    unit = np.full(n, -1, np.int64)
    unit[q] = unit[a] = units.first[units.run]
    pdu = np.flatnonzero(unit >= 0)
    which = np.zeros(n, np.int64)
    which[q], which[a] = 2 * tmpl, 2 * tmpl + 1
    take = pa.array(which[pdu])
    blank = (None,) * len(ROW_FIELDS)
    flat = [row for pair in rows for row in (pair or (blank, blank))]
    columns = {}
    for i, name in enumerate(COLUMN_FIELDS):
        if name == "transaction_id":
            columns[name] = tid = pa.array(ref[pdu], pa.int32())
        else:
            columns[name] = pa.array([r[i] for r in flat], _ROW_TYPES.get(name, pa.string())).take(take)
    details = Details([r[-1] for r in flat], which[pdu], {"pdu_reference": tid})
    return BulkRows(unit, pdu, columns, details)


def _pair_rows(fresh: Callable[[], S7comm], job: bytes, ack: bytes, from_orig: bool) -> tuple | None:
    """The rows of a job and its answer, parsed on a fresh dissector; None unless parse gives exactly their two
    operations (and the PLC role, which an idle flow has reported already), pairs them and puts the PDU reference
    in their details."""
    d = fresh()
    records = d.parse(job, from_orig), d.parse(ack, not from_orig)
    plc = Identity("s7comm", {}, role="s7_plc")
    if [len(r) for r in records] != [1, 2] or records[1][0] != plc or d.session.pending:
        return None
    rows = []
    for op in (records[0][0], records[1][1]):
        if not isinstance(op, Operation) or not op.details or op.details.get("pdu_reference") != op.transaction_id:
            return None
        rows.append(tuple(getattr(op, f) for f in ROW_FIELDS))
    return rows[0], rows[1]


def _word(data: np.ndarray, pos: np.ndarray, size: np.ndarray) -> np.ndarray:
    """The first ``size`` bytes (0-8) at each pos as a little-endian word, the others (and any past the data)
    zeroed."""
    return gather(data, pos, 8).view("<u8") & _BYTES[np.clip(size, 0, 8)]


def _byte(w: np.ndarray, i: int) -> np.ndarray:
    """Byte i of little-endian words."""
    return (w >> np.uint64(8 * i) & 0xFF).astype(np.int64)
