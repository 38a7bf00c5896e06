"""The properties each fuzz target checks, as plain functions of the input bytes.

A dissector must turn any bytes into records of the declared types: no exception escapes (bad bytes are
Anomaly records), every Operation has an access class from ACCESS_CLASSES, its integers fit the store's
INTEGER columns and its details serialise with details_json. The bulk decoders must give what parse() gives.
The capture readers may raise only CaptureError, and every record they find lies inside the bytes read.
A failed property raises; under atheris that is a crash, in a regression test a failure.
"""

from __future__ import annotations

import gzip
import io
import os

import atheris

from dissectors import (
    ACCESS_CLASSES,
    DNP3,
    IDENTITY_FIELDS,
    Anomaly,
    CipIO,
    EtherNetIP,
    Identity,
    ModbusTCP,
    Operation,
    S7comm,
)
from dissectors.base import REQUEST, RESPONSE, FramedStream
from dissectors.bulk import PduBatch
from sensor.capture import CaptureError, ReadState, _records
from sensor.store import details_json
from sensor.walk import walk
from tests.helpers.bulk_harness import candidate, reference

DISSECTORS = {"modbus": ModbusTCP, "dnp3": DNP3, "s7comm": S7comm, "enip": EtherNetIP, "cip_io": CipIO}
BULK = (ModbusTCP, DNP3, S7comm, EtherNetIP, CipIO)  # the classes with a bulk decoder, chosen by the first byte
INT32 = range(-(1 << 31), 1 << 31)  # the store's INTEGER columns (sensor/store.py)
MAX_CHUNK = 600  # bytes of one feed() / datagram() call in a sequence


class PropertyFailed(AssertionError):
    """A record, or the records of a path, break the dissector contract."""


# ------------------------------------------------------------------ records
def _text(value: object, what: str) -> None:
    if value is None:
        return
    if not isinstance(value, str):
        raise PropertyFailed(f"{what} is {type(value).__name__}, not str: {value!r}")
    value.encode()  # a lone surrogate cannot go into DuckDB or JSON


def check_record(rec: object) -> None:
    """One record is a declared type, with fields the store can write."""
    if isinstance(rec, Operation):
        if rec.access_class not in ACCESS_CLASSES:
            raise PropertyFailed(f"access class {rec.access_class!r} of {rec}")
        if rec.direction not in (REQUEST, RESPONSE):
            raise PropertyFailed(f"direction {rec.direction!r} of {rec}")
        for name in ("protocol", "function_name", "access_class", "status", "target"):
            _text(getattr(rec, name), name)
        if not rec.protocol or not rec.function_name:
            raise PropertyFailed(f"empty protocol or function name: {rec}")
        for name in ("function_code", "transaction_id", "unit_id", "address", "quantity"):
            value = getattr(rec, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value not in INT32):
                raise PropertyFailed(f"{name} {value!r} does not fit the store: {rec}")
        if rec.details is not None:
            if not isinstance(rec.details, dict):
                raise PropertyFailed(f"details are {type(rec.details).__name__}: {rec}")
            details_json(rec.details)
    elif isinstance(rec, Identity):
        _text(rec.protocol, "protocol")
        _text(rec.role, "role")
        for key, value in rec.fields.items():
            if key not in IDENTITY_FIELDS or not isinstance(value, str | int):
                raise PropertyFailed(f"identity field {key!r}={value!r}")
            if isinstance(value, str):
                _text(value, key)
    elif isinstance(rec, Anomaly):
        for name in ("protocol", "kind", "detail"):
            _text(getattr(rec, name), name)
    else:
        raise PropertyFailed(f"{type(rec).__name__} is not a record type: {rec!r}")


def check_records(records: object) -> list:
    if not isinstance(records, list):
        raise PropertyFailed(f"a dissector call returned {type(records).__name__}, not a list")
    for rec in records:
        check_record(rec)
    return records


# ------------------------------------------------------------------ dissectors
def is_whole_pdu(d, data: bytes, from_orig: bool) -> bool:
    """Would framing hand ``data`` to parse() as one PDU? (parse's input is a framed PDU, not any bytes.)"""
    if not isinstance(d, FramedStream):
        return True
    return len(data) >= d.header_len and d.pdu_length(data, 0, from_orig, False) == len(data)


def check_dissector(cls, data: bytes) -> None:
    """parse() of the whole input (when it frames as one PDU), feed() and datagram() of it on fresh
    dissectors, then a sequence of calls on both directions that the input spells out."""
    for from_orig in (True, False):
        d = cls()
        if is_whole_pdu(d, data, from_orig):
            check_records(d.parse(data, from_orig))
        check_records(cls().feed(data, from_orig))
        check_records(cls().datagram(data, from_orig))
    check_sequence(cls, data)


def check_sequence(cls, data: bytes) -> None:
    """One fresh dissector fed as a flow would be: a TCP flow gets feed() and gap() calls, a UDP flow
    datagram() calls, on either side, in pieces the input chooses."""
    fdp = atheris.FuzzedDataProvider(data)
    d = cls()
    d.client_is_orig = fdp.ConsumeBool()
    udp = "udp" in cls.transports and ("tcp" not in cls.transports or fdp.ConsumeBool())
    while fdp.remaining_bytes():
        action = fdp.ConsumeIntInRange(0, 7)
        from_orig = fdp.ConsumeBool()
        if udp:
            check_records(d.datagram(fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, MAX_CHUNK)), from_orig))
        elif action == 7:
            check_records(d.gap(from_orig))
        else:
            check_records(d.feed(fdp.ConsumeBytes(fdp.ConsumeIntInRange(1, MAX_CHUNK)), from_orig))
        d.idle(from_orig)


# ------------------------------------------------------------------ bulk vs parse
def bulk_flow(data: bytes) -> tuple[type, bool, list[tuple[bool, bytes]]]:
    """(class, client_is_orig, PDUs) from the input: a selector byte, a byte for the client's side, then PDUs
    each after a side byte, framed by the class's non-strict pdu_length (CipIO: a length byte before each)."""
    if len(data) < 2:
        return ModbusTCP, True, []
    cls, client_is_orig = BULK[data[0] % len(BULK)], bool(data[1] & 1)
    d = cls()
    pdus, pos = [], 2
    while pos < len(data):
        from_orig, pos = bool(data[pos] & 1), pos + 1
        if cls is CipIO:
            n, pos = (data[pos] if pos < len(data) else 0), pos + 1
        elif len(data) - pos >= d.header_len:
            n = d.pdu_length(data, pos, from_orig, False)
        else:
            break
        if n <= 0 or pos + n > len(data):
            break
        pdus.append((from_orig, data[pos : pos + n]))
        pos += n
    return cls, client_is_orig, pdus


def check_bulk(data: bytes) -> None:
    """dissectors.bulk.dissect on a one-flow batch gives, PDU by PDU, what parse() in order gives."""
    cls, client_is_orig, pdus = bulk_flow(data)
    if not pdus:
        return
    batch = _batch(cls, client_is_orig, pdus)
    want = reference(batch, cls)
    got, _ = candidate(_batch(cls, client_is_orig, pdus), cls)
    for i, (w, g) in enumerate(zip(want, got, strict=True)):
        if g != w:
            raise PropertyFailed(f"{cls.__name__} PDU {i} ({pdus[i][1].hex()}): bulk {g} != parse {w}")


def _batch(cls, client_is_orig: bool, pdus: list[tuple[bool, bytes]]) -> PduBatch:
    import numpy as np

    d = cls()
    d.client_is_orig = client_is_orig
    lengths = np.array([len(p) for _, p in pdus], np.int64)
    return PduBatch(np.frombuffer(b"".join(p for _, p in pdus), np.uint8), np.cumsum(lengths) - lengths, lengths,
                    np.zeros(len(pdus), np.int64), np.array([fo for fo, _ in pdus], bool), [d])  # fmt: skip


# ------------------------------------------------------------------ capture readers
def window_size(data: bytes) -> int:
    """Bytes the walk reads at once: small, and chosen by the input's last byte, to cross window ends."""
    return 16 + 16 * (data[-1] if data else 0)


def check_reader(data: bytes) -> None:
    """sensor.walk over the bytes as a plain file (an in-memory file with a descriptor: the walk preads)
    and gzip-compressed (a GzipFile over a BytesIO), reading each window's fields as sensor.capture does."""
    fd = os.memfd_create("fuzz-capture")
    try:
        os.write(fd, data)
        os.lseek(fd, 0, os.SEEK_SET)
        with os.fdopen(os.dup(fd), "rb") as f:
            plain = _walk(f, data)
    finally:
        os.close(fd)
    with gzip.GzipFile(fileobj=io.BytesIO(gzip.compress(data, 1)), mode="rb") as g:
        packed = _walk(g, data)
    if plain != packed:
        raise PropertyFailed(f"plain and gzip walks differ: {plain} != {packed}")


def _walk(stream, data: bytes) -> tuple:
    """(records found, damage) of one walk; a reader exception other than CaptureError escapes."""
    state = ReadState()
    found = []
    try:
        for w in walk(stream, stream.read(4), state, window_size(data)):
            chunk = _records(w.buf, w)
            for start, n, orig in zip(chunk.data.tolist(), chunk.incl.tolist(), chunk.orig.tolist(), strict=True):
                if start < 0 or n < 0 or start + n > len(w.buf) or w.base + start + n > len(data):
                    raise PropertyFailed(f"record at {start} of {n} bytes outside its window ({len(w.buf)} bytes)")
                found.append((w.base + start, n, orig))
    except CaptureError as exc:
        return tuple(found), f"CaptureError: {exc}"
    return tuple(found), state.damage and state.damage.describe()
