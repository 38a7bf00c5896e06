"""Capture file readers: pcap and pcapng, plain or gzip-compressed.

Hand-written rather than dpkt's readers because this is the hot path and because a
damaged file must be read up to the damage and the damage located by byte offset
and frame number, so a user can open the same file in Wireshark and look.

sensor.walk finds where each record starts; this module reads their fields in bulk.
Frames are numbered from 1 over packet blocks only, as Wireshark numbers them.
Timestamps are integer microseconds since the epoch (UTC).
"""

from __future__ import annotations

import gzip
import os
import zlib
from array import array
from collections.abc import Generator, Iterator
from dataclasses import dataclass

import numpy as np

from dissectors.bulk import gather

from . import walk as walker
from .walk import CaptureError, Damage, ReadState, Window, _ts_us, open_stream, sniff

__all__ = [
    "CaptureError", "Damage", "ReadState", "RecordChunk",
    "packets_of", "pcap_kind", "read_chunks", "read_packets", "sniff",
]  # fmt: skip


def read_packets(path: str, state: ReadState) -> Iterator[tuple[int, int, int, bytes]]:
    """Yield (link_type, ts_us, orig_len, data) for every packet in the file, one at
    a time (the packet path, and tools); read_chunks does the reading."""
    return packets_of(read_chunks(path, state))


def packets_of(chunks: Iterator[RecordChunk]) -> Iterator[tuple[int, int, int, bytes]]:
    """(link_type, ts_us, orig_len, data) for every record of the chunks, one at a time: the packet path."""
    for chunk in chunks:
        buf = chunk.buf
        fields = (chunk.link, chunk.ts, chunk.orig, chunk.data, chunk.incl)
        for link, ts, orig, start, n in zip(*(x.tolist() for x in fields), strict=True):
            yield link, ts, orig, buf[start : start + n]


@dataclass(slots=True)
class RecordChunk:
    """Consecutive packet records in one buffer: what the columnar path reads at once."""

    buf: bytes
    first_frame: int  # frame number of the first record (1-based)
    data: np.ndarray  # int64 per record: where its packet bytes start in buf
    incl: np.ndarray  # captured length
    orig: np.ndarray  # length on the wire
    ts: np.ndarray  # microseconds since the epoch
    link: np.ndarray  # link type


def _words(a: np.ndarray, at: np.ndarray, count: int, endian: str) -> np.ndarray:
    """``count`` 32-bit words at each offset, as int64 columns: each record's header
    is copied out whole (dissectors.bulk.gather), not gathered byte by byte."""
    return gather(a, at, 4 * count).view(endian + "u4").reshape(-1, count).astype(np.int64)


def pcap_kind(path: str) -> str | None:
    """'pcap' or 'pcapng' (plain or gzip): the formats the chunked readers take."""
    kind = sniff(path)
    return kind.removesuffix(".gz") if kind else None


def read_chunks(
    path: str, state: ReadState, chunk: int | None = None, early: walker.Apart | None = None
) -> Generator[RecordChunk]:
    """The records of a pcap or pcapng file (plain or gzip) in chunks of about
    ``chunk`` bytes (default: sensor.walk.CHUNK). The walk only finds where each
    record starts; the fields are read in bulk. ``early`` is a walk of this file a
    child process started (sensor.walk.EarlyWalks): taken up, and closed here.

    Raises CaptureError if the file is not a capture. Damage met after the first
    record does not raise: it is recorded in ``state.damage`` and iteration ends,
    with every record before it delivered."""
    try:
        yield from _read(path, state, chunk or walker.CHUNK, early)
    finally:
        if early is not None:
            early.close()


def _read(path: str, state: ReadState, size: int, apart: walker.Apart | None) -> Iterator[RecordChunk]:
    if os.path.getsize(path) == 0:
        raise CaptureError("empty file (0 bytes)")
    stream = open_stream(path)
    state.compressed = isinstance(stream, gzip.GzipFile)
    try:
        try:
            head = stream.read(4)
        except (OSError, EOFError, zlib.error) as exc:
            raise CaptureError(f"gzip stream unreadable: {exc}") from None
        if len(head) < 4:
            raise CaptureError(f"file too short to be a capture ({len(head)} bytes)")
        if apart is not None and not state.compressed and walker.magic_kind(head):
            yield from _walked_apart(apart, stream, state)
        else:
            yield from _in_process(walker.walk(stream, head, state, size))
    finally:
        stream.close()


def _walked_apart(apart: walker.Apart, stream, state: ReadState) -> Iterator[RecordChunk]:
    """The records of a plain capture a child process walks (sensor.walk.Apart); the
    windows' bytes are read here. If the child dies, the walk goes on here from the
    end of the last window it noted: the records are the same either way."""
    fd = stream.fileno()
    last: Window | None = None
    for group in _groups(apart.notes(state), apart.size):
        if (chunk := _chunk_of(fd, group, state)) is None:
            return
        yield chunk
        last = group[-1]
    if apart.ended:
        return
    if last is None:
        stream.seek(0)
        windows = walker.walk(stream, stream.read(4), state, apart.size)
    else:
        windows = walker.walk_after(stream, last, state, apart.size)
    yield from _in_process(windows)


def _in_process(windows: Iterator[Window]) -> Iterator[RecordChunk]:
    """The records of windows walked in this process, which keep their bytes."""
    for w in windows:
        yield _records(w.data(), w)


def _groups(windows: Iterator[Window], size: int) -> Iterator[list[Window]]:
    """The child's windows, consecutive ones joined up to ``size`` bytes where they may be."""
    group: list[Window] = []
    for w in windows:
        if group and not _joins(group[-1], w):
            yield group
            group = []
        group.append(w)
        if w.resume_at() - group[0].base >= size:
            yield group
            group = []
    if group:
        yield group


def _joins(a: Window, b: Window) -> bool:
    """Can window b's records go into one chunk with a's? The same byte order and
    link, and in pcapng the same section: b's interfaces extend a's."""
    if (a.endian, a.link, a.ts_div) != (b.endian, b.link, b.ts_div) or (a.interfaces is None) != (b.interfaces is None):
        return False
    return a.interfaces is None or (b.interfaces is not None and b.interfaces[: len(a.interfaces)] == a.interfaces)


def _chunk_of(fd: int, group: list[Window], state: ReadState) -> RecordChunk | None:
    """One chunk of consecutive windows: their bytes read at once, their arrays
    shifted to that buffer. None if the file no longer holds them (the damage says where)."""
    base, end = group[0].base, group[-1].resume_at()
    buf = os.pread(fd, end - base, base)
    if len(buf) < end - base:  # the file shrank under us
        state.damage = Damage(base + len(buf), group[0].frame + 1, "file changed while it was read")
        return None
    w = group[-1]
    if len(group) > 1:
        offsets = np.concatenate([np.frombuffer(g.offsets, np.int64) + (g.base - base) for g in group])
        ifaces, odd = None, None
        if w.interfaces is not None:
            parts, odd, count = [], {}, 0
            for g in group:
                assert g.ifaces is not None, "every window of a pcapng walk lists its blocks' interfaces"
                parts.append(np.frombuffer(g.ifaces, np.int64))
                odd.update({count + i: (d + g.base - base, incl, orig, ts)
                            for i, (d, incl, orig, ts) in (g.odd or {}).items()})  # fmt: skip
                count += len(g.offsets)
            ifaces = np.concatenate(parts)
        w = Window(base, end - base, group[0].frame, offsets, w.endian, w.link, w.ts_div, ifaces, odd, w.interfaces)
    return _records(buf, w)


def _records(buf: bytes, w: Window) -> RecordChunk:
    """The fields of a window's records, read at once."""
    if w.ifaces is not None:
        return _ng_chunk(buf, w.offsets, w.ifaces, w.odd or {}, w.interfaces or [], w.endian, w.frame)
    a = np.frombuffer(buf, np.uint8)
    off = np.frombuffer(w.offsets, np.int64)
    head = _words(a, off, 4, w.endian)  # seconds, fraction, captured length, length on the wire
    ts = head[:, 0] * 1_000_000 + head[:, 1] // w.ts_div
    return RecordChunk(buf, w.frame + 1, off + 16, head[:, 2], head[:, 3], ts, np.full(len(off), w.link, np.int64))


def _ng_chunk(buf: bytes, blocks: array | np.ndarray, ifaces: array | np.ndarray, odd: dict,
              interfaces: list[tuple[int, int]], endian: str, frame: int) -> RecordChunk:  # fmt: skip
    """The packet fields of a chunk's blocks, read at once (enhanced packet blocks)
    or as the walk found them (simple and obsolete packet blocks)."""
    a = np.frombuffer(buf, np.uint8)
    at = np.frombuffer(blocks, np.int64)
    iface = np.frombuffer(ifaces, np.int64)
    links = np.array([link for link, _ in interfaces] or [0], np.int64)
    units = [u for _, u in interfaces] or [1_000_000]
    head = _words(a, at + 12, 4, endian)  # timestamp high and low, captured length, length on the wire
    raw = (head[:, 0] << 32) | head[:, 1]
    if all(u == 1_000_000 for u in units):
        ts = raw
    elif all(u % 1_000_000 == 0 or 1_000_000 % u == 0 for u in units):
        up = np.array([1_000_000 // u if 1_000_000 % u == 0 else 1 for u in units], np.int64)[iface]
        down = np.array([u // 1_000_000 if u % 1_000_000 == 0 else 1 for u in units], np.int64)[iface]
        ts = raw * up // down
    else:  # binary resolutions: exact, in Python integers
        ts = np.array([_ts_us(int(r), units[i]) for r, i in zip(raw.tolist(), iface.tolist(), strict=True)], np.int64)
    data, incl, orig = at + 28, head[:, 2], head[:, 3]
    for i, (d, n, o, t) in odd.items():
        data[i], incl[i], orig[i], ts[i] = d, n, o, t
    return RecordChunk(buf, frame + 1, data, incl, orig, ts, links[np.minimum(iface, len(links) - 1)])
