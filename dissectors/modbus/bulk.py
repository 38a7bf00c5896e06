"""Modbus polling, decoded for a whole batch at once (dissectors/bulk.py): reads (fc 1-4) and writes (fc 5, 6, 15,
16) with their replies or exception replies."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from ..base import REQUEST, RESPONSE
from ..bulk import BulkRows, Details, PduBatch, gather
from ..layout import Layout
from .consts import FUNCTIONS
from .fields import ADDRESSING, MAX_PENDING, MAX_VALUES, MBAP, exception, target, written

# what bulk reads of each PDU: the MBAP header, a request's address and quantity (or value), fc 15 and 16's byte
# count; bytes past a PDU's end are masked by the length checks
_HEAD = MBAP + ADDRESSING + Layout("!", ("byte_count", "B"))
_AFTER = MBAP.size  # the byte after the function code: a reply's byte count, or an exception reply's code
# status by exception code (256: none given), 257 for a reply that is no exception
_STATUS = pa.array([*map(exception, range(256)), exception(None), None], pa.string())
_DIRECTION = pa.array([REQUEST, RESPONSE], pa.string())


def decode(batch: PduBatch) -> BulkRows:
    """A unit is a run of requests with distinct tids, followed by as many responses answering them in order (same
    tid, same function): from an empty ``pending`` parse files each request (at most MAX_PENDING: nothing evicted)
    and pops it for its response, which inherits what was asked."""
    n = len(batch.start)
    length, flow = batch.length, batch.flow
    raw = gather(batch.data, batch.start, _HEAD.size)
    head = raw.view(_HEAD.dtype)
    after = raw.view(np.uint8).reshape(-1, _HEAD.size)[:, _AFTER].astype(np.int64)
    tid, fc, quantity = (head[f].astype(np.int64) for f in ("transaction_id", "function", "quantity"))
    client = np.fromiter((d.client_is_orig for d in batch.dissectors), bool, len(batch.dissectors))
    request = batch.from_orig == client[flow]
    # fc 16 needs every value it keeps (an odd tail would make parse raise)
    fc16 = (fc == 16) & (length >= 13 + 2 * np.minimum(quantity, MAX_VALUES))
    # fc 15 and 16 with every byte their byte count announces (a cut one gets an anomaly from parse)
    whole = length >= 13 + head["byte_count"].astype(np.int64)
    good_request = request & (length >= 12) & ((fc >= 1) & (fc <= 6) | (fc == 15) & whole | fc16 & whole)
    # replies with every byte their function needs (a cut one gets an anomaly from parse): a read's byte count
    # of values, a write's echo; an exception reply from its function code on
    need = np.where(fc >= 0x80, 8, np.where(fc <= 4, 9 + after, 12))
    good_response = ~request & (length >= 8) & (length >= need)
    asker, answer, first = _units(flow, request, tid, fc, good_request, good_response)
    unit = np.full(n, -1, np.int64)
    unit[asker] = first
    unit[answer] = first
    pdus = np.flatnonzero(unit >= 0)
    asked = np.arange(n)
    asked[answer] = asker
    columns, details = _columns(batch, pdus, asked[pdus], request[pdus], head, fc, after)
    return BulkRows(unit, pdus, columns, details)


def _units(flow: np.ndarray, request: np.ndarray, tid: np.ndarray, fc: np.ndarray, good_request: np.ndarray,
           good_response: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """The units (see decode): each request, the response answering it, and the first PDU of their unit."""
    n = len(flow)
    # runs of requests of one flow; the PDUs right after a run of k are its candidate k responses
    change = np.ones(n, bool)
    change[1:] = (flow[1:] != flow[:-1]) | (request[1:] != request[:-1])
    runs = np.flatnonzero(change)
    size = np.diff(runs, append=n)
    keep = request[runs] & (size <= MAX_PENDING)
    runs, size = runs[keep], size[keep]
    first = np.cumsum(size) - size
    asker = np.arange(int(size.sum())) + np.repeat(runs - first, size)
    answer = asker + np.repeat(size, size)
    answer[answer >= n] = asker[answer >= n]  # past the batch: a request, so no good response
    ok = (
        good_request[asker]
        & good_response[answer]
        & (flow[answer] == flow[asker])
        & (tid[answer] == tid[asker])
        & ((fc[answer] & 0x7F) == fc[asker])
    )
    run_ok = np.logical_and.reduceat(ok, first) if len(runs) else np.zeros(0, bool)
    # distinct tids in a run: a repeated one would replace the pending entry
    several = np.repeat(size > 1, size)
    keys = np.sort(np.repeat(np.arange(len(runs)), size)[several] << 16 | tid[asker[several]])
    run_ok[keys[1:][keys[1:] == keys[:-1]] >> 16] = False
    ok = np.repeat(run_ok, size)
    return asker[ok], answer[ok], np.repeat(runs, size)[ok]


def _columns(batch: PduBatch, pdus: np.ndarray, asked: np.ndarray, is_request: np.ndarray, head: np.ndarray,
             fc: np.ndarray, after: np.ndarray) -> tuple[dict[str, pa.Array], Details]:  # fmt: skip
    """The COLUMN_FIELDS columns and the details of ``pdus``, each with the request it is or answers
    (``asked``): a write request's values (index 0: no details)."""
    code = fc[asked]
    address = head["address"][asked].astype(np.int64)
    quantity = np.where((code == 5) | (code == 6), 1, head["quantity"][asked].astype(np.int64))
    # name, access class and target only depend on what was asked: format each distinct one once
    keys, which = np.unique(code << 32 | address << 16 | quantity, return_inverse=True)
    asks = [(int(k) >> 32, int(k) >> 16 & 0xFFFF, int(k) & 0xFFFF) for k in keys]
    which = pa.array(which.astype(np.int32))
    exceptional = ~is_request & (fc[pdus] >= 0x80)
    status = np.where(exceptional, np.where(batch.length[pdus] > _AFTER, after[pdus], 256), 257)
    writes = np.flatnonzero(is_request & (code >= 5))
    index = np.zeros(len(pdus), np.int64)
    index[writes] = 1 + np.arange(len(writes))
    values = [
        {"values": written(c, batch.pdu(i), q)}
        for i, c, q in zip(pdus[writes].tolist(), code[writes].tolist(), quantity[writes].tolist(), strict=True)
    ]
    columns = {
        "protocol": pa.repeat(pa.scalar("modbus", pa.string()), len(pdus)),
        "direction": _DIRECTION.take(pa.array((~is_request).astype(np.int8))),
        "function_code": pa.array(code.astype(np.int32)),
        "function_name": pa.array([FUNCTIONS[c][0] for c, _, _ in asks], pa.string()).take(which),
        "access_class": pa.array([FUNCTIONS[c][1] for c, _, _ in asks], pa.string()).take(which),
        "status": _STATUS.take(pa.array(status.astype(np.int16))),
        "transaction_id": pa.array(head["transaction_id"][pdus].astype(np.int32)),
        "unit_id": pa.array(head["unit_id"][pdus].astype(np.int32)),
        "address": pa.array(address.astype(np.int32)),
        "quantity": pa.array(quantity.astype(np.int32)),
        "target": pa.array([target(*a) for a in asks], pa.string()).take(which),
    }
    return columns, Details([None, *values], index)
