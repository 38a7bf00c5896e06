"""The record walk: where each record of a capture starts. Standard library only.

A record's length says where the next one starts, so finding them is a loop in
Python over every record (about 0.2 µs each); sensor.capture then reads their
fields in bulk. `sorf ingest` starts walking its first capture, if it is a big
plain file, in a child process before it imports numpy, pyarrow and DuckDB (0.2 s
in which the second core idles): the child runs this file as a script, without
site-packages (python -I -S), and records where each window's records start; the
parent reads the windows' bytes itself. Anything else, and whatever is left if that
process dies, is walked in-process with the same code.

Frames are numbered from 1 over packet blocks only, as Wireshark numbers them.
"""

from __future__ import annotations

import gzip
import os
import pickle
import struct
import sys
import zlib
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, BinaryIO, Self

if TYPE_CHECKING:  # a child walks before numpy is imported; capture.py joins its windows' arrays in numpy
    import numpy as np

MAX_TS_US = (1 << 63) - 1
MAX_TS_UNITS = 10**18  # if_tsresol: a finer unit does not fit a timestamp in 64 bits (found by fuzzing)
MAX_RECORD = 1 << 24  # no real frame is this large; a bigger length is corruption
# bytes read at once; the columnar path decodes a window's records together (its numpy working set is ~10x this)
CHUNK = 4 << 20
WALK_APART = 16 << 20  # bytes: a plain capture this big is walked by a child process, from the start of `sorf ingest`
CHILD_WINDOW = 1 << 20  # bytes the child reads at once; the parent joins its windows into CHUNKs (4 MB: +10 MB RSS)

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


@dataclass(slots=True)
class Window:
    """The records the walk found in one window of the stream: they lie in the
    window's first ``size`` bytes, which start at stream offset ``base``."""

    base: int
    size: int
    frame: int  # frames before the window's first
    offsets: array | np.ndarray  # 'q': where each record (pcap) or packet block (pcapng) starts, from base
    endian: str
    link: int = 0  # pcap: the file's link type
    ts_div: int = 1  # pcap: 1000 in a nanosecond file
    ifaces: array | np.ndarray | None = None  # pcapng: each block's interface
    odd: dict[int, tuple[int, int, int, int]] | None = None  # pcapng: index -> (data, incl, orig, ts) of SPB / PB
    interfaces: list[tuple[int, int]] | None = None  # pcapng: (link_type, units per second) as of the window's end
    buf: bytes | None = None  # the window's bytes (in-process; the child's parent reads them itself)

    def resume_at(self) -> int:
        return self.base + self.size

    def data(self) -> bytes:
        """The window's bytes, which only a walk in this process keeps."""
        if self.buf is None:
            raise ValueError("a window walked in a child process carries no bytes: its parent reads them")
        return self.buf


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
                kind = magic_kind(inner)
                return kind + ".gz" if kind else None
            return magic_kind(head)
    except OSError:
        return None


def magic_kind(head: bytes) -> str | None:
    """'pcap' or 'pcapng' from a file's first 4 bytes, else None."""
    if head in PCAP_MAGICS:
        return "pcap"
    if head == PCAPNG_SHB:
        return "pcapng"
    return None


def open_stream(path: str) -> BinaryIO:
    f = open(path, "rb")  # noqa: SIM115 (returned open: the caller closes it)
    if f.read(2) == GZIP_MAGIC:
        f.close()
        return gzip.GzipFile(path, "rb")  # type: ignore[return-value]  # opened by name: closing it closes the file
    f.seek(0)
    return f


class _Chunks:
    """A sliding window over a stream, so records can be parsed with unpack_from.

    A plain file is read with pread from the first byte not yet parsed, so a window
    is one read into one new buffer. A gzip stream cannot go back: its unparsed tail
    is joined to what is read next (a copy of the whole window)."""

    __slots__ = ("base", "buf", "eof", "error", "fd", "pos", "size", "stream")

    def __init__(self, stream: BinaryIO, head: bytes, size: int, base: int = 0):
        self.stream = stream
        self.fd = None if isinstance(stream, gzip.GzipFile) else stream.fileno()
        self.size = size  # bytes read at once
        self.buf = head
        self.pos = 0  # position in buf
        self.base = base  # stream offset of buf[0]
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
        # drops everything it had decompressed in that call (up to a window of
        # good records); read1 hands each decompressed piece over before that.
        parts = [self.buf[self.pos :]]
        want = max(self.size, need)
        got = 0
        while got < want:
            try:
                more = self.stream.read1(want - got)
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
        want = max(self.size, need)
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


def walk(stream: BinaryIO, head: bytes, state: ReadState, size: int) -> Iterator[Window]:
    """The windows of a capture stream whose first 4 bytes (``head``) were read.

    Raises CaptureError if it is not a capture. Damage met after the first record
    does not raise: it is recorded in ``state.damage`` and the walk ends, with
    every record before it delivered."""
    if head in PCAP_MAGICS:
        state.fmt = "pcap"
        endian, ts_div = PCAP_MAGICS[head]
        c = _Chunks(stream, head, size)
        if not c.fill(24):
            state.damage = Damage(c.offset, 1, "pcap file header truncated")
            return
        link = struct.unpack_from(endian + "I", c.buf, 20)[0] & 0x0FFFFFFF
        state.link_types.append(link)
        c.pos += 24
        yield from walk_pcap(c, state, endian, ts_div, link, 0)
    elif head == PCAPNG_SHB:
        state.fmt = "pcapng"
        yield from walk_pcapng(_Chunks(stream, head, size), state, "<", [], 0)
    else:
        raise CaptureError(f"not a pcap or pcapng file (no capture magic at byte 0: 0x{head.hex()})")


def walk_after(stream: BinaryIO, last: Window, state: ReadState, size: int) -> Iterator[Window]:
    """The windows after ``last`` (a plain file: where a walk elsewhere stopped)."""
    c = _Chunks(stream, b"", size, last.resume_at())
    frame = last.frame + len(last.offsets)
    if state.fmt == "pcap":
        return walk_pcap(c, state, last.endian, last.ts_div, last.link, frame)
    return walk_pcapng(c, state, last.endian, list(last.interfaces or ()), frame)


def walk_pcap(c: _Chunks, state: ReadState, endian: str, ts_div: int, link: int, frame: int) -> Iterator[Window]:
    """The records of a pcap stream from c's position (a record header), window by window."""
    incl_at = struct.Struct(endian + "8xI").unpack_from  # a record header's captured length
    while True:
        if not c.fill(max(c.size, 16)) and c.remaining() < 16:
            if c.remaining() or c.error:
                state.damage = Damage(
                    c.offset, frame + 1, c.error or f"truncated record header ({c.remaining()} of 16 bytes)"
                )
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
            yield Window(c.base, pos, frame, offsets, endian, link, ts_div, buf=buf)
            frame += len(offsets)
        if damaged is not None:
            state.damage = Damage(c.offset, frame + 1, damaged)
            return
        if not offsets and c.eof:  # a record cut by the end of the data
            (incl,) = incl_at(buf, pos)
            state.damage = Damage(
                c.offset, frame + 1, c.error or f"truncated record ({c.remaining() - 16} of {incl} bytes)"
            )
            return
        if not offsets:  # one record larger than a window
            c.fill(16 + incl_at(buf, pos)[0])


def walk_pcapng(
    c: _Chunks, state: ReadState, endian: str, interfaces: list[tuple[int, int]], frame: int
) -> Iterator[Window]:
    """The packet blocks of a pcapng stream from c's position (a block), window by
    window: a packet block costs the loop only its type, lengths and interface."""
    return _Pcapng(c, state, endian, interfaces, frame).windows()


class _Pcapng:
    """A pcapng walk's state across windows: the section's byte order and its interfaces."""

    def __init__(self, c: _Chunks, state: ReadState, endian: str, interfaces: list[tuple[int, int]], frame: int):
        self.c, self.state, self.interfaces, self.frame = c, state, interfaces, frame
        self._byte_order(endian)

    def _byte_order(self, endian: str) -> None:
        self.endian = endian
        self.two = struct.Struct(endian + "II").unpack_from  # a block's type and length
        self.one = struct.Struct(endian + "I").unpack_from
        self.epb = struct.Struct(endian + "8xI8xI").unpack_from  # an enhanced packet block's interface, captured length

    def windows(self) -> Iterator[Window]:
        c, state = self.c, self.state
        while True:
            if not c.fill(max(c.size, 12)) and c.remaining() < 12:
                if c.remaining() or c.error:
                    state.damage = Damage(c.offset, self.frame + 1, c.error or "truncated block header")
                return
            buf = c.buf
            blocks, ifaces = array("q"), array("q")
            odd: dict[int, tuple[int, int, int, int]] = {}
            end, damage_at, damaged, new_section = self._scan(buf, c.pos, blocks, ifaces, odd)
            c.pos = end
            state.bytes_read = c.base + end  # before the yield: progress reports it
            if blocks:
                yield Window(c.base, end, self.frame, blocks, self.endian, ifaces=ifaces, odd=odd,
                             interfaces=list(self.interfaces), buf=buf)  # fmt: skip
                self.frame += len(blocks)
            if damaged is not None:
                state.damage = Damage(c.base + damage_at, self.frame + 1, damaged)
                return
            if not blocks and not new_section and end + 12 <= len(buf):
                btype, blen = self.two(buf, end)
                if c.eof:  # a block cut by the end of the data
                    reason = c.error or f"truncated block (type 0x{btype:x}, {c.remaining()} of {blen} bytes)"
                    state.damage = Damage(c.offset, self.frame + 1, reason)
                    return
                c.fill(blen)  # one block larger than a window

    def _scan(
        self, buf: bytes, pos: int, blocks: array, ifaces: array, odd: dict[int, tuple[int, int, int, int]]
    ) -> tuple[int, int, str | None, bool]:
        """The blocks of one window from pos: packet blocks' offsets and interfaces into blocks and ifaces, an SPB's
        or obsolete PB's fields into odd (index -> (data offset, incl, orig, ts)). Returns where the window ends,
        where damage was met and what it is (None), and whether it ends at a new section."""
        two, one, epb, interfaces = self.two, self.one, self.epb, self.interfaces
        add_block, add_iface = blocks.append, ifaces.append
        size = len(buf)
        while pos + 12 <= size:  # the pcapng hot loop: one block a turn
            btype, blen = two(buf, pos)
            if btype == SHB:  # its type reads the same in either byte order
                if blocks:  # a section may change byte order: end the window before it
                    return pos, pos, None, True
                if (damaged := self._section(buf, pos)) is not None:
                    return pos, pos, damaged, False
                two, one, epb, interfaces = self.two, self.one, self.epb, self.interfaces
                btype, blen = two(buf, pos)
            if blen & 3 or blen < 12 or blen > MAX_RECORD:
                return pos, pos, f"corrupt block (type 0x{btype:x}, length {blen})", False
            if pos + blen > size:
                break
            (trailer,) = one(buf, pos + blen - 4)
            if trailer != blen:
                return pos, pos, f"corrupt block (type 0x{btype:x}, lengths {blen} and {trailer} differ)", False
            if btype == EPB:
                if blen < 32:
                    return pos, pos, "corrupt enhanced packet block (too short)", False
                iface, incl = epb(buf, pos)
                if incl > blen - 32:
                    return pos, pos, f"corrupt enhanced packet block (captured length {incl})", False
            elif btype in (SPB, PB_OBSOLETE):
                found = self._odd_packet(buf, pos, btype, blen)
                if isinstance(found, str):
                    return pos, pos, found, False
                iface, odd[len(blocks)] = found
            else:
                if btype == IDB and (damaged := self._interface(buf, pos, blen)) is not None:
                    return pos, pos, damaged, False
                pos += blen
                continue
            if iface >= len(interfaces):
                odd.pop(len(blocks), None)  # the block is not one of the window's: nor are its fields
                return pos + blen, pos, f"packet on undeclared interface {iface}", False
            add_block(pos)
            add_iface(iface)
            pos += blen
        return pos, pos, None, False

    def _section(self, buf: bytes, pos: int) -> str | None:
        """A section header block: its byte order from here on, no interfaces yet; or what is wrong with it."""
        bom = buf[pos + 8 : pos + 12]
        if bom not in (b"\x4d\x3c\x2b\x1a", b"\x1a\x2b\x3c\x4d"):
            return "corrupt section header (bad byte-order magic)"
        self._byte_order("<" if bom == b"\x4d\x3c\x2b\x1a" else ">")
        self.interfaces = []
        return None

    def _interface(self, buf: bytes, pos: int, blen: int) -> str | None:
        """An interface description block: its link type and timestamp unit; or what is wrong with it."""
        if blen < 20:
            return "corrupt interface description block (too short)"
        body = pos + 8
        link, _res, _snap = struct.unpack_from(self.endian + "HHI", buf, body)
        units = _tsresol_units(bytes(buf[body + 8 : pos + blen - 4]), self.endian)
        if units > MAX_TS_UNITS:
            return f"interface description block with a timestamp unit of 1/{units} s (if_tsresol)"
        self.interfaces.append((link, units))
        self.state.link_types.append(link)
        return None

    def _odd_packet(self, buf: bytes, pos: int, btype: int, blen: int) -> tuple[int, tuple[int, int, int, int]] | str:
        """A simple or obsolete packet block: (interface, (data offset, incl, orig, ts)); or what is wrong with it."""
        body = pos + 8
        if btype == SPB:
            if blen < 16:
                return "corrupt simple packet block (too short)"
            (orig,) = self.one(buf, body)
            return 0, (body + 4, min(orig, blen - 16), orig, 0)
        if blen < 32:
            return "corrupt packet block (too short)"
        iface, _drops, hi, lo, incl, orig = struct.unpack_from(self.endian + "HHIIII", buf, body)
        if incl > blen - 32:
            return f"corrupt packet block (captured length {incl})"
        interfaces = self.interfaces
        ts = _ts_us((hi << 32) | lo, interfaces[iface][1]) if iface < len(interfaces) else 0
        return iface, (body + 20, incl, orig, ts)


def _ts_us(ts: int, units: int) -> int:
    """A block's timestamp in µs, within int64: a 64-bit count of seconds (or ms) times 10^6 is past it
    (a garbage timestamp, found by fuzzing), and the chunk's timestamps are an int64 array."""
    us = ts if units == 1_000_000 else ts * 1_000_000 // units
    return min(us, MAX_TS_US)


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
            units = 2 ** (r & 0x7F) if r & 0x80 else 10**r
        pos += 4 + ((length + 3) & ~3)
    return units


# ------------------------------------------------------------------ the walk apart
# The child writes each window's arrays (offsets, then pcapng's interfaces) to a file
# the parent gave it, and a note per window to its stdout: a pickled tuple of plain
# values (this file runs as __main__ there: its classes would not unpickle by name),
# ("window", fields but the arrays, where the arrays are, state), then ("end", state)
# or ("error", message). The notes are small, so the child never waits for the parent
# until the end: it walks on while the parent imports numpy, pyarrow and DuckDB.


class Apart:
    """A capture walked by a child process; the parent reads the notes as it goes."""

    def __init__(self, path: str, size: int):
        import subprocess  # here, not at the top: the child does without them (2 MB less)
        import tempfile

        self.path, self.size = path, size  # size: the bytes of the parent's chunks
        self.ended = False  # the child noted the end of the walk
        self.arrays = tempfile.TemporaryFile()  # noqa: SIM115 (closed by close())
        argv = [sys.executable, "-I", "-S", __file__, path, str(min(size, CHILD_WINDOW)), str(self.arrays.fileno())]
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, pass_fds=(self.arrays.fileno(),))  # fmt: skip

    def notes(self, state: ReadState) -> Iterator[Window]:
        """The child's windows (without their bytes) as it sends them; ends at its
        end, or early if it died (the caller walks on from the last window)."""
        fd = self.arrays.fileno()
        while True:
            try:
                kind, *note = pickle.load(self.proc.stdout)  # type: ignore[arg-type]
            except (EOFError, pickle.UnpicklingError, ValueError, TypeError, AttributeError, IndexError):
                return  # the child died
            if kind == "error":
                raise CaptureError(note[0])
            set_state(state, note[-1])
            if kind == "end":
                self.ended = True
                return
            fields, at, count = note[0], note[1], note[2]
            w = Window(*fields)
            pcapng = w.interfaces is not None
            arrays = os.pread(fd, (16 if pcapng else 8) * count, at)
            w.offsets = array("q", arrays[: 8 * count])
            if pcapng:
                w.ifaces = array("q", arrays[8 * count :])
            yield w

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.proc.stdout.close()  # type: ignore[union-attr]
        self.arrays.close()


class EarlyWalks:
    """The walks `sorf ingest` starts before it imports the engine, one per capture, for the capture's
    reader to take up (``take``); the command passes this object down and closes it when done."""

    def __init__(self) -> None:
        self._walks: dict[str, Apart] = {}  # path -> the walk started for it

    def start(self, path: str) -> None:
        """Start walking a plain capture of WALK_APART bytes or more in a child process, now.
        Anything else is left alone."""
        try:
            if path in self._walks or not os.path.isfile(path) or os.path.getsize(path) < WALK_APART:
                return
            with open(path, "rb") as f:
                if magic_kind(f.read(4)) is None:  # gzip, or not a capture: read in-process, which reports it
                    return
            self._walks[path] = Apart(path, CHUNK)
        except (OSError, ValueError):  # no child (a sandbox without fork, no temporary file): the walk stays here
            pass

    def take(self, path: str) -> Apart | None:
        """The walk started for ``path``, now the caller's to close; None if there is none."""
        return self._walks.pop(path, None)

    def close(self) -> None:
        """Stop walks nobody took up (the command is over)."""
        while self._walks:
            self._walks.popitem()[1].close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def state_fields(state: ReadState) -> tuple:
    damage = state.damage
    return (state.fmt, state.compressed, state.link_types, state.bytes_read,
            None if damage is None else (damage.offset, damage.frame, damage.reason))  # fmt: skip


def set_state(state: ReadState, fields: tuple) -> None:
    state.fmt, state.compressed, state.link_types, state.bytes_read, damage = fields
    state.damage = None if damage is None else Damage(*damage)


def main(argv: list[str]) -> int:
    """The child: walk the plain capture argv[1] in windows of argv[2] bytes; the
    arrays go to file descriptor argv[3], a note per window to stdout."""
    path, size, arrays = argv[1], int(argv[2]), int(argv[3])
    out = sys.stdout.buffer
    state = ReadState()
    at = 0
    try:
        with open(path, "rb") as stream:
            for w in walk(stream, stream.read(4), state, size):
                data = w.offsets.tobytes() + (w.ifaces.tobytes() if w.ifaces is not None else b"")
                os.pwrite(arrays, data, at)
                fields = tuple(
                    None if name in ("buf", "offsets", "ifaces") else getattr(w, name) for name in Window.__slots__
                )
                pickle.dump(("window", fields, at, len(w.offsets), state_fields(state)), out, pickle.HIGHEST_PROTOCOL)
                out.flush()
                at += len(data)
        pickle.dump(("end", state_fields(state)), out, pickle.HIGHEST_PROTOCOL)
        out.flush()
    except BrokenPipeError:  # the parent stopped reading (a duplicate, an interrupt)
        return 0
    except (CaptureError, OSError) as exc:
        pickle.dump(("error", str(exc)), out, pickle.HIGHEST_PROTOCOL)
        out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
