"""Capture file readers: pcap and pcapng, plain or gzip-compressed.

Hand-written rather than dpkt's readers because this is the hot path and because a
damaged file must be read up to the damage and the damage located by byte offset
and frame number, so a user can open the same file in Wireshark and look.

Frames are numbered from 1 over packet blocks only, as Wireshark numbers them.
Timestamps are integer microseconds since the epoch (UTC).
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from array import array
from dataclasses import dataclass, field
from typing import BinaryIO, Iterator

import numpy as np

from dissectors.bulk import gather

CHUNK = 4 << 20  # bytes read at once; the columnar path decodes a chunk's records together (its numpy working set is ~10x this)
MAX_RECORD = 1 << 24  # no real frame is this large; a bigger length is corruption

PCAP_MAGICS = {
    b"\xd4\xc3\xb2\xa1": ("<", 1),  # microseconds, little-endian
    b"\xa1\xb2\xc3\xd4": (">", 1),
    b"\x4d\x3c\xb2\xa1": ("<", 1000),  # nanoseconds, divide by 1000 for µs
    b"\xa1\xb2\x3c\x4d": (">", 1000),
}
PCAPNG_SHB = b"\x0a\x0d\x0d\x0a"
GZIP_MAGIC = b"\x1f\x8b"

# pcapng block types
SHB, IDB, PB_OBSOLETE, SPB, EPB = 0x0A0D0D0A, 1, 2, 3, 6


class CaptureError(Exception):
    """The file cannot be read as a capture at all (not a capture, empty)."""


@dataclass(slots=True)
class Damage:
    """Where reading stopped early: the records before it were all delivered."""

    offset: int
    frame: int  # the frame that could not be read (1-based)
    reason: str

    def describe(self) -> str:
        return f"{self.reason} at byte {self.offset} (frame {self.frame})"


@dataclass(slots=True)
class ReadState:
    """What a reader learned while reading; filled in as it goes."""

    fmt: str = ""
    compressed: bool = False
    link_types: list[int] = field(default_factory=list)  # per interface
    bytes_read: int = 0  # position in the (decompressed) stream
    damage: Damage | None = None


def sniff(path: str) -> str | None:
    """Return 'pcap', 'pcapng', 'pcap.gz' or 'pcapng.gz' from the magic, else None."""
    try:
        with open(path, "rb") as f:
            head = f.read(4)
            if head[:2] == GZIP_MAGIC:
                f.seek(0)
                try:
                    with gzip.GzipFile(fileobj=f) as g:
                        inner = g.read(4)
                except (OSError, EOFError, zlib.error):
                    return None
                kind = _kind(inner)
                return kind + ".gz" if kind else None
            return _kind(head)
    except OSError:
        return None


def _kind(head: bytes) -> str | None:
    if head in PCAP_MAGICS:
        return "pcap"
    if head == PCAPNG_SHB:
        return "pcapng"
    return None


def open_stream(path: str) -> BinaryIO:
    f = open(path, "rb")
    if f.read(2) == GZIP_MAGIC:
        f.close()
        return gzip.GzipFile(path, "rb")  # type: ignore[return-value]  # opened by name: closing it closes the file
    f.seek(0)
    return f


def read_packets(path: str, state: ReadState) -> Iterator[tuple[int, int, int, bytes]]:
    """Yield (link_type, ts_us, orig_len, data) for every packet in the file, one at
    a time (the packet path, and tools); read_chunks does the reading."""
    for chunk in read_chunks(path, state):
        buf = chunk.buf
        fields = (chunk.link, chunk.ts, chunk.orig, chunk.data, chunk.incl)
        for link, ts, orig, start, n in zip(*(x.tolist() for x in fields)):
            yield link, ts, orig, buf[start : start + n]


class _Chunks:
    """A sliding window over a stream, so records can be parsed with unpack_from.

    A plain file is read with pread from the first byte not yet parsed, so a window
    is one read into one new buffer. A gzip stream cannot go back: its unparsed tail
    is joined to what is read next (a copy of the whole window)."""

    __slots__ = ("stream", "fd", "buf", "pos", "base", "eof", "error")

    def __init__(self, stream: BinaryIO, head: bytes):
        self.stream = stream
        self.fd = None if isinstance(stream, gzip.GzipFile) else stream.fileno()
        self.buf = head
        self.pos = 0  # position in buf
        self.base = 0  # stream offset of buf[0]
        self.eof = False
        self.error: str | None = None

    def fill(self, need: int) -> bool:
        """Make at least ``need`` bytes available from pos; False at end of data."""
        if len(self.buf) - self.pos >= need:
            return True
        if self.eof:
            return False
        if self.fd is not None:
            return self._pread(need)
        # read1, not read: when a gzip stream turns out damaged, read() raises and
        # drops everything it had decompressed in that call (up to CHUNK bytes of
        # good records); read1 hands each decompressed piece over before that.
        parts = [self.buf[self.pos :]]
        want = max(CHUNK, need)
        got = 0
        while got < want:
            try:
                more = self.stream.read1(want - got)  # type: ignore[attr-defined]
            except (OSError, EOFError, zlib.error) as exc:
                self.error = f"compressed stream damaged ({exc})"
                more = b""
            if not more:
                self.eof = True
                break
            parts.append(more)
            got += len(more)
        self.base += self.pos
        self.buf = b"".join(parts)
        self.pos = 0
        return len(self.buf) >= need

    def _pread(self, need: int) -> bool:
        want = max(CHUNK, need)
        start = self.base + self.pos
        try:
            data = os.pread(self.fd, want, start)
        except OSError as exc:
            self.error = f"read failed ({exc.strerror or exc})"
            data = self.buf[self.pos :]
        if len(data) < want:  # a regular file returns less only at its end
            self.eof = True
        self.base, self.buf, self.pos = start, data, 0
        return len(data) >= need

    @property
    def offset(self) -> int:
        return self.base + self.pos

    def remaining(self) -> int:
        return len(self.buf) - self.pos


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



def read_chunks(path: str, state: ReadState, chunk: int | None = None) -> Iterator[RecordChunk]:
    """The records of a pcap or pcapng file (plain or gzip) in chunks of about
    ``chunk`` bytes. The loop only finds where each record starts; the fields are
    read in bulk.

    Raises CaptureError if the file is not a capture. Damage met after the first
    record does not raise: it is recorded in ``state.damage`` and iteration ends,
    with every record before it delivered."""
    size = chunk or CHUNK
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
        if head in PCAP_MAGICS:
            state.fmt = "pcap"
            yield from _pcap_chunks(stream, head, state, size)
        elif head == PCAPNG_SHB:
            state.fmt = "pcapng"
            yield from _pcapng_chunks(stream, head, state, size)
        else:
            raise CaptureError(f"not a pcap or pcapng file (no capture magic at byte 0: 0x{head.hex()})")
    finally:
        stream.close()


def _pcap_chunks(stream: BinaryIO, head: bytes, state: ReadState, chunk: int) -> Iterator[RecordChunk]:
    """The records of a pcap stream after its magic, chunk by chunk."""
    endian, ts_div = PCAP_MAGICS[head]
    c = _Chunks(stream, head)
    if not c.fill(24):
        state.damage = Damage(c.offset, 1, "pcap file header truncated")
        return
    link = struct.unpack_from(endian + "I", c.buf, 20)[0] & 0x0FFFFFFF
    state.link_types.append(link)
    c.pos += 24
    incl_at = struct.Struct(endian + "8xI").unpack_from  # a record header's captured length
    frame = 0
    while True:
        if not c.fill(max(chunk, 16)) and c.remaining() < 16:
            if c.remaining() or c.error:
                state.damage = Damage(c.offset, frame + 1, c.error or f"truncated record header ({c.remaining()} of 16 bytes)")
            return
        buf, pos = c.buf, c.pos
        # records are taken up to 16 + MAX_RECORD bytes from here (a window may be longer): a
        # record whose length is corrupt ends past that, so the loop checks only where each ends
        size = min(len(buf), pos + 16 + MAX_RECORD)
        offsets = array("q")
        add = offsets.append
        damaged = None
        limit = size - 16
        while pos <= limit:  # the reader's hot loop: one record a turn
            (incl,) = incl_at(buf, pos)
            end = pos + 16 + incl
            if end > size:
                if incl > MAX_RECORD:
                    damaged = f"corrupt record header (captured length {incl})"
                break
            add(pos)
            pos = end
        c.pos = pos
        state.bytes_read = c.base + pos  # before the yield: progress reports it
        if offsets:
            a = np.frombuffer(buf, np.uint8)
            off = np.frombuffer(offsets, np.int64)
            head = _words(a, off, 4, endian)  # seconds, fraction, captured length, length on the wire
            ts = head[:, 0] * 1_000_000 + head[:, 1] // ts_div
            yield RecordChunk(buf, frame + 1, off + 16, head[:, 2], head[:, 3], ts,
                              np.full(len(off), link, np.int64))  # fmt: skip
            frame += len(offsets)
        if damaged is not None:
            state.damage = Damage(c.offset, frame + 1, damaged)
            return
        if not offsets and c.eof:  # a record cut by the end of the data
            (incl,) = incl_at(buf, pos)
            state.damage = Damage(c.offset, frame + 1, c.error or f"truncated record ({c.remaining() - 16} of {incl} bytes)")
            return
        if not offsets:  # one record larger than a chunk
            c.fill(16 + incl_at(buf, pos)[0])


def _pcapng_chunks(stream: BinaryIO, head: bytes, state: ReadState, chunk: int) -> Iterator[RecordChunk]:
    """The packets of a pcapng stream after its first magic, chunk by chunk: a packet
    block costs the loop only its type, lengths and interface; its fields are read in bulk."""
    c = _Chunks(stream, head)
    endian = "<"
    interfaces: list[tuple[int, int]] = []  # (link_type, units per second)
    frame = 0
    while True:
        if not c.fill(max(chunk, 12)) and c.remaining() < 12:
            if c.remaining() or c.error:
                state.damage = Damage(c.offset, frame + 1, c.error or "truncated block header")
            return
        buf, pos = c.buf, c.pos
        size = len(buf)
        two = struct.Struct(endian + "II").unpack_from
        one = struct.Struct(endian + "I").unpack_from
        blocks = array("q")  # packet blocks: offset in buf
        ifaces = array("q")
        odd: dict[int, tuple[int, int, int, int]] = {}  # index -> (data offset, incl, orig, ts) of SPB / old PB
        damaged = None
        new_section = False
        while pos + 12 <= size:
            if buf[pos : pos + 4] == PCAPNG_SHB:
                if blocks:  # a section may change byte order: end the chunk before it
                    new_section = True
                    break
                bom = buf[pos + 8 : pos + 12]
                if bom not in (b"\x4d\x3c\x2b\x1a", b"\x1a\x2b\x3c\x4d"):
                    damaged = "corrupt section header (bad byte-order magic)"
                    break
                endian = "<" if bom == b"\x4d\x3c\x2b\x1a" else ">"
                two = struct.Struct(endian + "II").unpack_from
                one = struct.Struct(endian + "I").unpack_from
                interfaces = []
            btype, blen = two(buf, pos)
            if blen < 12 or blen % 4 or blen > MAX_RECORD:
                damaged = f"corrupt block (type 0x{btype:x}, length {blen})"
                break
            if pos + blen > size:
                break
            (trailer,) = one(buf, pos + blen - 4)
            if trailer != blen:
                damaged = f"corrupt block (type 0x{btype:x}, lengths {blen} and {trailer} differ)"
                break
            body = pos + 8
            if btype == EPB:
                if blen < 32:
                    damaged = "corrupt enhanced packet block (too short)"
                    break
                iface, incl = one(buf, body)[0], one(buf, body + 12)[0]
                if incl > blen - 32:
                    damaged = f"corrupt enhanced packet block (captured length {incl})"
                    break
            elif btype == SPB:
                (orig,) = one(buf, body)
                iface = 0
                odd[len(blocks)] = (body + 4, min(orig, blen - 16), orig, 0)
            elif btype == PB_OBSOLETE:
                iface, _drops, hi, lo, incl, orig = struct.unpack_from(endian + "HHIIII", buf, body)
                if incl > blen - 32:
                    damaged = f"corrupt packet block (captured length {incl})"
                    break
                odd[len(blocks)] = (body + 20, incl, orig, _ts_us((hi << 32) | lo, interfaces[iface][1]) if iface < len(interfaces) else 0)
            else:
                if btype == IDB:
                    link, _res, _snap = struct.unpack_from(endian + "HHI", buf, body)
                    interfaces.append((link, _tsresol_units(bytes(buf[body + 8 : pos + blen - 4]), endian)))
                    state.link_types.append(link)
                pos += blen
                continue
            if iface >= len(interfaces):
                c.pos = pos + blen
                state.bytes_read = c.base + c.pos
                if blocks:
                    yield _ng_chunk(buf, blocks, ifaces, odd, interfaces, endian, frame)
                    frame += len(blocks)
                state.damage = Damage(pos + c.base, frame + 1, f"packet on undeclared interface {iface}")
                return
            blocks.append(pos)
            ifaces.append(iface)
            pos += blen
        c.pos = pos
        state.bytes_read = c.base + pos  # before the yield: progress reports it
        if blocks:
            yield _ng_chunk(buf, blocks, ifaces, odd, interfaces, endian, frame)
            frame += len(blocks)
        if damaged is not None:
            state.damage = Damage(c.offset, frame + 1, damaged)
            return
        if not blocks and not new_section and pos + 12 <= size:
            if c.eof:  # a block cut by the end of the data
                btype, blen = two(buf, pos)
                state.damage = Damage(c.offset, frame + 1, c.error or f"truncated block (type 0x{btype:x}, {c.remaining()} of {blen} bytes)")
                return
            c.fill(two(buf, pos)[1])  # one block larger than a chunk


def _ts_us(ts: int, units: int) -> int:
    return ts if units == 1_000_000 else ts * 1_000_000 // units


def _ng_chunk(buf: bytes, blocks: array, ifaces: array, odd: dict, interfaces: list[tuple[int, int]], endian: str,
              frame: int) -> RecordChunk:  # fmt: skip
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
        ts = np.array([_ts_us(int(r), units[i]) for r, i in zip(raw.tolist(), iface.tolist())], np.int64)
    data, incl, orig = at + 28, head[:, 2], head[:, 3]
    for i, (d, n, o, t) in odd.items():
        data[i], incl[i], orig[i], ts[i] = d, n, o, t
    return RecordChunk(buf, frame + 1, data, incl, orig, ts, links[np.minimum(iface, len(links) - 1)])


def _tsresol_units(options: bytes, endian: str) -> int:
    """Timestamp units per second from an IDB's if_tsresol option (default µs)."""
    units = 1_000_000
    pos = 0
    while pos + 4 <= len(options):
        code, length = struct.unpack_from(endian + "HH", options, pos)
        if code == 0:
            break
        if code == 9 and length >= 1:
            r = options[pos + 4]
            units = 2 ** (r & 0x7F) if r & 0x80 else 10 ** r
        pos += 4 + ((length + 3) & ~3)
    return units
