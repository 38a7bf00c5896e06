"""The frames behind a finding, copied out of the original capture files into one pcapng file.

A person opens the file in Wireshark and sees the frames exactly as captured: the original
bytes, lengths and timestamps at the source's precision, each frame with a comment naming the
capture file and frame number it came from. Which flows and frames belong to a finding is the
caller's choice (the API and the CLI ask the database: analyser.queries.delta_evidence); this
module, the sensor's as it reads capture files, only copies them out.

A capture file is trusted as evidence only while its sha256 is the one recorded at ingest: a
file that moved is an error 404, one that changed is 409. Flows are matched to frames as
sensor/flows.py keys them (VLAN, IP protocol, addresses, ports), on what sensor.decode.Decoder
makes of each frame: a flow's IP datagram that came in fragments is its completing frame, as in
`flows`. For that the decoder is offered every frame from the capture's first to the flows' last
(FlowIndex says which it decodes), so its fragment state is the one ingest had; frames after
that are only walked, up to the last frame requested.
"""

from __future__ import annotations

import os
import socket
import stat
import struct
import threading
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import BinaryIO, NamedTuple

from .decode import Decoder
from .ingest import link_name, sha256_of
from .ports import TRANSPORTS
from .walk import CHUNK, SPB, CaptureError, ReadState, Window, open_stream, walk

# ------------------------------------------------------------------ layouts
# source records (either byte order): where their fields are
PCAP_RECORD = {e: struct.Struct(e + "IIII") for e in "<>"}  # seconds, fraction, captured length, length on the wire
PCAP_HEADER = 16
NG_PACKET = {e: struct.Struct(e + "12xIIII") for e in "<>"}  # EPB and obsolete PB: ts high, ts low, captured, wire
NG_BLOCK_TYPE = {e: struct.Struct(e + "I") for e in "<>"}
NG_PACKET_DATA = 28

# the pcapng file written (little-endian): block = head, body, options, trailer
BLOCK_HEAD = struct.Struct("<II")  # block type, total length
BLOCK_TRAILER = struct.Struct("<I")  # total length again
OPTION_HEAD = struct.Struct("<HH")  # option code, value length
SHB_TYPE, IDB_TYPE, EPB_TYPE = 0x0A0D0D0A, 1, 6
SHB_BODY = struct.Struct("<IHHq")  # byte-order magic, version major, minor, section length (-1: not given)
IDB_BODY = struct.Struct("<HHI")  # link type, reserved, snap length (0: no limit)
EPB_BODY = struct.Struct("<IIIII")  # interface, timestamp high, low, captured length, length on the wire
OPT_END, OPT_COMMENT, OPT_SHB_USERAPPL, OPT_IF_DESCRIPTION, OPT_IF_TSRESOL = 0, 1, 4, 3, 9
BYTE_ORDER_MAGIC = 0x1A2B3C4D

SCREEN_PAIRS = 16  # address pairs up to which frames are screened by a byte search before they are decoded
DIGEST_CACHE_SIZE = 256  # files whose sha256 is remembered by (path, device, inode, size, mtime, ctime)
PROTOCOLS = {name: number for number, name in TRANSPORTS.items()}  # flows.transport -> IP protocol number


class EvidenceError(Exception):
    """The evidence cannot be given. ``status``: 400 inconsistent input, 404 capture file not
    found at its path (moved or deleted) or none kept (sensed without a ring), 410 a ring file `sorf sense`
    deleted to make room, 409 the file's bytes are not the ones ingested (or not
    hashed yet), 500 the file cannot be read. The message names the capture and the path."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class CaptureFile:
    """A row of the `captures` table."""

    capture_id: int
    path: str | None  # None: sensed live without a ring (`sorf sense` without --ring), no packets kept
    sha256: str | None
    status: str = "ok"
    error: str | None = None


@dataclass(frozen=True, slots=True)
class FlowKey:
    """A row of the `flows` table: its key and frame range."""

    capture_id: int
    vlan: int
    transport: str
    src_ip: str
    src_port: int | None
    dst_ip: str
    dst_port: int | None
    first_frame: int
    last_frame: int


@dataclass(frozen=True, slots=True)
class EvidenceResult:
    """What was written, and what could not be."""

    frames: int  # frames written
    truncated: bool  # frames of the flows were left out (max_frames)
    per_capture: dict[int, int]  # capture id -> frames written from it
    missing: tuple[tuple[int, int], ...]  # requested (capture id, frame) not in the file (past its end or its damage)
    damage: dict[int, str]  # capture id -> where reading stopped early, for a damaged file read to the damage


class Record(NamedTuple):
    """One frame as stored in its capture: timestamp in the interface's units."""

    frame: int
    link: int
    iface: int
    units: int  # timestamp units per second
    ts: int
    orig_len: int
    data: bytes


def write_evidence(
    captures: Mapping[int, CaptureFile], flows: Sequence[FlowKey], frames: Iterable[tuple[int, int]],
    out: BinaryIO, max_frames: int = 10_000,
) -> EvidenceResult:  # fmt: skip
    """Write the requested frames and the frames of the flows to ``out`` as pcapng, in
    (capture id, frame) order. Requested frames always go in; flow frames only while the total
    stays within ``max_frames``. Every capture file is verified before anything is written, so
    an EvidenceError comes before the first byte unless a file changes while it is read (write
    to a temporary file if a half-written output would be sent)."""
    wanted: dict[int, set[int]] = {}
    for capture_id, frame in frames:
        wanted.setdefault(capture_id, set()).add(frame)
    by_capture: dict[int, list[FlowKey]] = {}
    for flow in flows:
        by_capture.setdefault(flow.capture_id, []).append(flow)
    ids = sorted(wanted.keys() | by_capture.keys())
    verified = {i: verify(_capture(captures, i)) for i in ids}
    budget = Budget(max_frames - sum(len(s) for s in wanted.values()))
    writer = Writer(out)
    per_capture: dict[int, int] = {}
    missing: list[tuple[int, int]] = []
    damage: dict[int, str] = {}
    for i in ids:
        want = wanted.get(i, set())
        index = FlowIndex(by_capture[i]) if i in by_capture else None
        taken = _extract(captures[i], verified[i], want, index, budget, writer)
        per_capture[i] = taken.count
        missing += ((i, f) for f in sorted(want - taken.requested))
        if taken.damage is not None:
            damage[i] = taken.damage
    return EvidenceResult(sum(per_capture.values()), budget.truncated, per_capture, tuple(missing), damage)


def write_rows(
    captures: Iterable[tuple], flows: Iterable[tuple], frames: Iterable[tuple[int, int]], out: BinaryIO,
    max_frames: int = 10_000,
) -> EvidenceResult:  # fmt: skip
    """write_evidence from rows as the store keeps them: captures as (capture_id, path, sha256, status, error), flows as
    FlowKey's fields."""
    files = {row[0]: CaptureFile(*row) for row in captures}
    return write_evidence(files, [FlowKey(*row) for row in flows], frames, out, max_frames)


def _capture(captures: Mapping[int, CaptureFile], capture_id: int) -> CaptureFile:
    cap = captures.get(capture_id)
    if cap is None:
        raise EvidenceError(400, f"capture {capture_id} is not in the database")
    return cap


# ------------------------------------------------------------------ verification
_digests: dict[tuple, str] = {}
_digests_lock = threading.Lock()


def verify(cap: CaptureFile) -> tuple:
    """The file's identity (stat fields) once its sha256 is the one ingested. The digest is
    remembered by that identity, so a repeated download does not hash a large file again."""
    where = f"capture {cap.capture_id} ({cap.path})"
    if cap.path is None:
        raise EvidenceError(404, f"capture {cap.capture_id} was sensed live without a ring (`sorf sense` without "
                                 "--ring): its records are kept, its packets were not")  # fmt: skip
    if cap.status == "rotated":
        raise EvidenceError(410, f"{where} was a ring file of `sorf sense`: {cap.error}")
    if cap.status == "sensing":
        raise EvidenceError(409, f"{where} is the ring file `sorf sense` is writing: its frames are evidence once "
                                 "the ring moves on to the next file (--ring-size) or the sensor stops")  # fmt: skip
    if cap.sha256 is None:
        raise EvidenceError(409, f"{where} has no sha256 yet: it is still being ingested, or its ingest "
                                 "was interrupted (ingest it again); its frames cannot be trusted as "
                                 "evidence yet")  # fmt: skip
    st = _stat(cap.path, where)
    key = (cap.path, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    with _digests_lock:
        digest = _digests.get(key)
    if digest is None:
        digest = _hash(cap.path, where)
        with _digests_lock:
            if len(_digests) >= DIGEST_CACHE_SIZE:
                del _digests[next(iter(_digests))]
            _digests[key] = digest
    if digest != cap.sha256.lower():
        raise EvidenceError(409, f"{where} has changed since it was ingested (sha256 {cap.sha256[:12]}... now "
                                 f"{digest[:12]}...): its frames cannot be trusted as evidence")  # fmt: skip
    return key


def _stat(path: str, where: str) -> os.stat_result:
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        raise EvidenceError(404, f"{where} is not there any more (moved or deleted)") from None
    except OSError as exc:
        raise EvidenceError(500, f"{where} cannot be read: {exc.strerror or exc}") from None
    if not stat.S_ISREG(st.st_mode):
        raise EvidenceError(404, f"{where} is not a file any more")
    return st


def _hash(path: str, where: str) -> str:
    try:
        return sha256_of(path)
    except FileNotFoundError:
        raise EvidenceError(404, f"{where} is not there any more (moved or deleted)") from None
    except OSError as exc:
        raise EvidenceError(500, f"{where} cannot be read: {exc.strerror or exc}") from None


def _open(cap: CaptureFile, key: tuple) -> BinaryIO:
    """The capture's stream (sensor.walk.open_stream: gzip or plain), if it is still the file verified."""
    where = f"capture {cap.capture_id} ({cap.path})"
    assert cap.path is not None, "verify gave the key of a capture with a file"
    try:
        stream = open_stream(cap.path)
        st = os.fstat(stream.fileno())
    except FileNotFoundError:
        raise EvidenceError(404, f"{where} is not there any more (moved or deleted)") from None
    except OSError as exc:
        raise EvidenceError(500, f"{where} cannot be read: {exc.strerror or exc}") from None
    if key[1:] != (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns):
        stream.close()
        raise EvidenceError(409, f"{where} changed while the evidence was taken from it; try again")
    return stream


# ------------------------------------------------------------------ selection
class Budget:
    """How many flow frames may still go in, beside the requested ones."""

    def __init__(self, left: int):
        self.left = max(0, left)
        self.truncated = False

    def take(self) -> bool:
        if self.left:
            self.left -= 1
            return True
        self.truncated = True
        return False


class FlowIndex:
    """A capture's flows by packet key, in both directions, as sensor/flows.py keys them:
    (vlan, IP protocol, source address, port, destination address, port); no port is 0.

    Decoding is most of the time taken, so a frame that does not hold both addresses of a flow
    anywhere in its bytes (an IP header holds them: so does every fragment of a datagram) is not
    decoded; the decoder's fragment state for the flows' hosts is still the one ingest had."""

    def __init__(self, flows: list[FlowKey]):
        self.spans: dict[tuple, list[tuple[int, int]]] = {}
        pairs = set()
        for f in flows:
            proto, src, dst = _protocol(f), _address(f.src_ip), _address(f.dst_ip)
            sport, dport = f.src_port or 0, f.dst_port or 0
            for key in ((f.vlan, proto, src, sport, dst, dport), (f.vlan, proto, dst, dport, src, sport)):
                self.spans.setdefault(key, []).append((f.first_frame, f.last_frame))
            pairs.add((min(src, dst), max(src, dst)))
        self.screen = sorted(pairs) if len(pairs) <= SCREEN_PAIRS else None  # None: decode every frame
        self.last = max(f.last_frame for f in flows)
        self.decoder = Decoder()  # one per capture, as at ingest: fragments are the capture's own

    def may_hold(self, data: bytes) -> bool:
        """Can these bytes (a frame, or a window of frames) hold a frame of the flows?"""
        return self.screen is None or any(a in data and b in data for a, b in self.screen)

    def match(self, rec: Record) -> bool:
        """Is this frame one of the flows'? Every frame up to ``last`` that may hold one must be
        offered, in order."""
        data = rec.data
        if not self.may_hold(data):
            return False
        try:
            pkt = self.decoder.decode(rec.link, data, rec.ts * 1_000_000 // rec.units)
        except Exception:  # noqa: BLE001 (Malformed, or a decoder bug: as at ingest, the frame is in no flow)
            return False
        if pkt is None:
            return False
        spans = self.spans.get((pkt.vlan, pkt.proto, pkt.src, pkt.sport, pkt.dst, pkt.dport), ())
        return any(first <= rec.frame <= last for first, last in spans)


def _protocol(flow: FlowKey) -> int:
    number = PROTOCOLS.get(flow.transport)
    if number is None and not flow.transport.isdigit():
        raise EvidenceError(400, f"flow in capture {flow.capture_id} from frame {flow.first_frame}: "
                                 f"unknown transport {flow.transport!r}")  # fmt: skip
    return int(flow.transport) if number is None else number


def _address(text: str) -> bytes:
    try:
        return socket.inet_pton(socket.AF_INET6 if ":" in text else socket.AF_INET, text)
    except OSError:
        raise EvidenceError(400, f"flow address {text!r} is not an IP address") from None


@dataclass(slots=True)
class Taken:
    """What one capture gave."""

    count: int = 0  # frames written
    requested: set[int] = field(default_factory=set)  # requested frames written
    damage: str | None = None  # where the file ended early, when that was before the last frame needed


def _extract(cap: CaptureFile, key: tuple, want: set[int], flows: FlowIndex | None, budget: Budget,
             writer: Writer) -> Taken:  # fmt: skip
    """Copy one capture's frames, reading it no further than the last frame needed."""
    taken = Taken()
    flows_last = 0 if flows is None or budget.truncated else flows.last
    end = max(want, default=0)
    state = ReadState()
    window, screened = None, False
    with _open(cap, key) as stream:
        for frame, w, i in _positions(cap, stream, state):
            if frame > max(end, flows_last):
                return taken
            if w is not window:  # most windows of a long capture hold none of the flows' hosts
                window, screened = w, flows is not None and flows_last >= frame and flows.may_hold(w.data())
            requested = frame in want
            flow_frame = screened and frame <= flows_last
            if not (requested or flow_frame):
                continue
            rec = _record(w, i, frame)
            take = requested
            if flow_frame and flows is not None and flows.match(rec) and not requested:
                take = budget.take()
                flows_last = flows_last if take else 0  # truncated: no flow frame is needed any more
            if take:
                writer.packet(cap, rec)
                taken.count += 1
                if requested:
                    taken.requested.add(frame)
    taken.damage = state.damage.describe() if state.damage else None
    return taken


def _positions(cap: CaptureFile, stream: BinaryIO, state: ReadState) -> Iterator[tuple[int, Window, int]]:
    """(frame, window, index in window) of every record, as sensor.walk finds them."""
    try:
        head = stream.read(4)
        for w in walk(stream, head, state, CHUNK):
            for i in range(len(w.offsets)):
                yield w.frame + 1 + i, w, i
    except (CaptureError, OSError, EOFError, zlib.error) as exc:
        raise EvidenceError(500, f"capture {cap.capture_id} ({cap.path}) cannot be read: {exc}") from None


def _record(w: Window, i: int, frame: int) -> Record:
    """A record's fields with the timestamp as stored (sensor.capture converts it to µs)."""
    buf, at, e = w.data(), w.offsets[i], w.endian
    if w.ifaces is None:  # pcap
        sec, frac, incl, orig = PCAP_RECORD[e].unpack_from(buf, at)
        units = 1_000_000 * w.ts_div
        data = at + PCAP_HEADER
        return Record(frame, w.link, 0, units, sec * units + frac, orig, buf[data : data + incl])
    assert w.interfaces is not None and w.odd is not None, "a pcapng window lists its interfaces and odd blocks"
    iface = w.ifaces[i]
    link, units = w.interfaces[iface]
    if NG_BLOCK_TYPE[e].unpack_from(buf, at)[0] == SPB:
        data, incl, orig, _ = w.odd[i]
        ts = 0  # a simple packet block has no timestamp
    else:
        high, low, incl, orig = NG_PACKET[e].unpack_from(buf, at)
        ts, data = (high << 32) | low, at + NG_PACKET_DATA
    return Record(frame, link, iface, units, ts, orig, buf[data : data + incl])


# ------------------------------------------------------------------ output
class Writer:
    """A pcapng section: one interface per (capture, source interface, link type, resolution),
    declared before its first packet."""

    def __init__(self, out: BinaryIO):
        self.out = out
        self.interfaces: dict[tuple, int] = {}
        body = SHB_BODY.pack(BYTE_ORDER_MAGIC, 1, 0, -1)
        out.write(_block(SHB_TYPE, body, [(OPT_SHB_USERAPPL, b"sorf evidence")]))

    def packet(self, cap: CaptureFile, rec: Record) -> None:
        key = (cap.capture_id, rec.iface, rec.link, rec.units)
        index = self.interfaces.get(key)
        if index is None:
            index = self.interfaces[key] = len(self.interfaces)
            about = f"capture {cap.capture_id} ({cap.path}), interface {rec.iface} ({link_name(rec.link)})".encode()
            options = [(OPT_IF_DESCRIPTION, about), (OPT_IF_TSRESOL, bytes([_tsresol(rec.units)]))]
            self.out.write(_block(IDB_TYPE, IDB_BODY.pack(rec.link & 0xFFFF, 0, 0), options))
        body = EPB_BODY.pack(index, rec.ts >> 32, rec.ts & 0xFFFFFFFF, len(rec.data), rec.orig_len) + _pad(rec.data)
        comment = f"sorf evidence: {cap.path} frame.number == {rec.frame}".encode()
        self.out.write(_block(EPB_TYPE, body, [(OPT_COMMENT, comment)]))


def _block(btype: int, body: bytes, options: list[tuple[int, bytes]]) -> bytes:
    opts = b"".join(OPTION_HEAD.pack(code, len(value)) + _pad(value) for code, value in options)
    payload = _pad(body) + opts + OPTION_HEAD.pack(OPT_END, 0)
    total = BLOCK_HEAD.size + len(payload) + BLOCK_TRAILER.size
    return BLOCK_HEAD.pack(btype, total) + payload + BLOCK_TRAILER.pack(total)


def _pad(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 4)


def _tsresol(units: int) -> int:
    """The if_tsresol byte for units per second: 10^n is n, 2^n is 0x80 | n
    (sensor.walk reads no other kind)."""
    power = len(str(units)) - 1
    return power if units == 10**power else 0x80 | (units.bit_length() - 1)
