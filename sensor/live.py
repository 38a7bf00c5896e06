"""Live capture on a SPAN or TAP port (`sorf sense`): one more source for the same engine, and the loop that keeps
a database current for weeks.

The interface is read through libpcap (pcapy-ng: the kernel's TPACKET_V3 ring, a batch of packets per call) into
the same RecordChunks a capture file gives, so decode, flows, reassembly, dissectors and store are the file path's.
What is live-only sits here: committing every few seconds (the rows of flows still open written as they stand and
replaced as they change), finishing idle flows by the clock when packets are few, the kernel's drop counters, and
the ring of pcap files that keeps the packets behind the records.

A capture row is a *segment* of the run: with --ring, one ring file (its records carry its capture_id and their
frame in that file, so evidence opens it, and `sorf ingest` of the ring files gives the same rows); without, the
run, until its frames would overflow the flow-id space. A flow that spans two segments is two flows, as when the
two files are ingested.
"""

from __future__ import annotations

import os
import re
import select
import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import BinaryIO

import numpy as np

from dissectors import REGISTRY, Anomaly, Registry

from .capture import RecordChunk
from .columnar import Columnar
from .decode import SUPPORTED_LINKS
from .flows import FlowTable, IdleTimeouts
from .ingest import link_name, report_evictions, report_fragments, sha256_of
from .store import Store
from .walk import ReadState

SNAPLEN = 262_144  # whole packets: next_batch reports only the captured length, taken as the length on the wire
BUFFER_MB = 64  # the kernel ring: at 100,000 packets/s of 100 bytes, 6 s of traffic while the engine catches up
BATCH = 32_768  # packets in one call at most: a backlog is read in chunks as large as a file's (4 MB), where
# the engine costs half what it does per packet in chunks of 4,096 (make bench-live: 200,000/s then drops nothing)
TIMEOUT_MS = 100  # a batch is handed over after this even if the ring block is not full, or none came
PACE_S = 0.5  # after a batch short of BATCH, the next is read this long after it: the engine's cost per chunk is
# then spread over ~10,000 packets at 20,000/s, not ~2,000 (what one TIMEOUT_MS brings); the kernel ring holds it
COMMIT_S = 5.0  # seconds between commits: what a crash may lose
ASSETS_EVERY_S = 300.0  # the assets table (derived: one statement over every flow, seconds on millions) is rebuilt
MAX_FRAMES = (1 << 32) - 1  # a capture's frames: flow ids are capture_id << 32 | frame
RING_NAME = re.compile(r"(\d{8}T\d{6}Z)-(\d{6})\.pcap")  # after "SENSOR-": when it was begun, its number
PCAP_HEADER = np.dtype([("magic", "<u4"), ("major", "<u2"), ("minor", "<u2"), ("zone", "<i4"), ("sigfigs", "<u4"),
                        ("snaplen", "<u4"), ("link", "<u4")])  # fmt: skip
PCAP_RECORD = np.dtype([("sec", "<u4"), ("usec", "<u4"), ("incl", "<u4"), ("orig", "<u4")])


class LiveError(RuntimeError):
    """The interface cannot be captured on: said in one line, with what to do."""


# libpcap's pcap_activate results (pcap/pcap.h): what to tell the user
ACTIVATE_ERRORS = {
    -1: "libpcap could not open it",
    -4: "it is already activated",
    -5: "no such interface",
    -6: "it cannot be put in monitor mode",
    -7: "monitor mode is not supported",
    -8: "not allowed to capture: run as root, or give the process CAP_NET_RAW (deploy/ runs it as the sorf user "
    "with that capability alone)",
    -9: "the interface is down: bring it up with no address (`ip link set IFACE up`; deploy/README.md)",
    -11: "not allowed to turn on promiscuous mode: give the process CAP_NET_RAW",
    -12: "the timestamp precision is not supported",
}


def _activate_error(iface: str, code: int) -> LiveError:
    what = ACTIVATE_ERRORS.get(code, f"libpcap error {code}").replace("IFACE", iface)
    if code == -5:
        what += f"; the interfaces here: {', '.join(interfaces()) or 'none'}"
    return LiveError(f"{iface}: cannot capture: {what}")


def interfaces() -> list[str]:
    import pcapy

    try:
        return pcapy.findalldevs()
    except pcapy.PcapError:
        return []


class Interface:
    """A promiscuous, receive-only libpcap handle with a large kernel buffer. Nothing is ever sent on it."""

    def __init__(self, iface: str, bpf: str | None = None, buffer_mb: int = BUFFER_MB, snaplen: int = SNAPLEN):
        import pcapy  # the command imports it only when it senses

        self.name = iface
        self.snaplen = snaplen
        try:
            handle = pcapy.create(iface)
            handle.set_snaplen(snaplen)
            handle.set_promisc(True)
            handle.set_buffer_size(buffer_mb << 20)
            handle.set_timeout(TIMEOUT_MS)
            code = handle.activate()
        except pcapy.PcapError as exc:
            raise LiveError(f"{iface}: cannot capture: {exc}") from None
        if code < 0:
            handle.close()
            raise _activate_error(iface, code)
        handle.setnonblock(1)  # a read returns at once; ``batch`` waits on the descriptor, so a quiet link returns too
        self.handle = handle
        self.fd = handle.getfd()
        self.link = handle.datalink()
        if self.link not in SUPPORTED_LINKS:
            handle.close()
            raise LiveError(f"{iface}: link type {self.link} ({link_name(self.link)}) is not one sorf decodes")
        if bpf:
            try:
                handle.setfilter(bpf)
            except pcapy.PcapError as exc:
                handle.close()
                raise LiveError(f"--bpf {bpf!r}: {exc}") from None

    def batch(self) -> tuple[bytes, np.ndarray]:
        """The packets the kernel has (up to BATCH; none after TIMEOUT_MS): their bytes, one after the other, and a
        (sec, usec, offset, length) row each."""
        select.select([self.fd], [], [], TIMEOUT_MS / 1000)
        buf, meta = self.handle.next_batch(BATCH)
        return buf, np.frombuffer(meta, np.uint32).reshape(-1, 4)

    def counters(self) -> tuple[int, int, int]:
        """libpcap's totals since the handle opened: packets received, dropped by the kernel, by the interface.
        (libpcap sums the kernel's counters, which reset each time they are read.)"""
        received, dropped, if_dropped = self.handle.stats()
        return received, dropped, if_dropped

    def close(self) -> None:
        self.handle.close()


@dataclass(slots=True)
class LiveSource:
    """An interface's packets as RecordChunks (the Source of sensor/source.py). A chunk with no records comes at
    least every PACE_S while the link is quiet, so that its reader can commit, rotate and stop; once stopped, what
    the kernel still holds comes last. Frames count from 1 in each capture (``restart_frames``)."""

    interface: Interface
    stop: threading.Event
    state: ReadState = field(default_factory=ReadState)
    frames: int = 0  # frames handed out in the current capture
    packets: int = 0  # since the source opened

    def __post_init__(self) -> None:
        self.state.fmt = "live"
        self.state.link_types = [self.interface.link]

    def chunks(self) -> Generator[RecordChunk]:
        while not self.stop.is_set():
            began = time.monotonic()
            chunk = self._chunk(*self.interface.batch())
            yield chunk
            if 0 < len(chunk.ts) < BATCH:
                self._pace(began + PACE_S)
        yield self._chunk(*self.interface.batch())  # what the kernel held at the stop (a batch of it, at most)

    def _pace(self, until: float) -> None:
        """Wait until then, or the stop. (Not ``stop.wait``: a signal handler sets stop, and Event.set from one
        deadlocks if the signal came while this thread held the event's lock.)"""
        while not self.stop.is_set() and (left := until - time.monotonic()) > 0:
            time.sleep(min(left, TIMEOUT_MS / 1000))

    def _chunk(self, buf: bytes, meta: np.ndarray) -> RecordChunk:
        n = len(meta)
        ts = meta[:, 0].astype(np.int64) * 1_000_000 + meta[:, 1]
        incl = meta[:, 3].astype(np.int64)
        chunk = RecordChunk(buf, self.frames + 1, meta[:, 2].astype(np.int64), incl, incl, ts,
                            np.full(n, self.interface.link, np.int64))  # fmt: skip
        self.frames += n
        self.packets += n
        self.state.bytes_read += len(buf)
        return chunk

    def restart_frames(self) -> None:
        self.frames = 0


class Ring:
    """The packets also written to a ring of pcap files in ``folder``: a new file after ``size`` bytes, the oldest
    deleted beyond ``files``. Files of an earlier run of the same sensor in the folder count towards the cap."""

    def __init__(self, folder: str, size: int, files: int, sensor: str, link: int, snaplen: int):
        os.makedirs(folder, exist_ok=True)
        self.folder, self.size, self.files, self.sensor = folder, size, files, sensor
        self.header = np.array([(0xA1B2C3D4, 2, 4, 0, 0, snaplen, link)], PCAP_HEADER).tobytes()
        self.seq = max(self._numbered(), default=0)
        self.path = ""
        self.written = 0
        self._file: BinaryIO | None = None
        self._open()

    def _numbered(self) -> dict[int, str]:
        """This sensor's ring files by number (not another's whose name starts with this one's: "box-2-...")."""
        prefix = self.sensor + "-"
        return {int(m.group(2)): n for n in os.listdir(self.folder)
                if n.startswith(prefix) and (m := RING_NAME.fullmatch(n[len(prefix) :]))}  # fmt: skip

    def paths(self) -> list[str]:
        """This sensor's ring files, oldest first."""
        found = self._numbered()
        return [os.path.join(self.folder, found[seq]) for seq in sorted(found)]

    def _open(self) -> None:
        self.seq += 1
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        self.path = os.path.abspath(os.path.join(self.folder, f"{self.sensor}-{stamp}-{self.seq:06d}.pcap"))
        self._file = f = open(self.path, "xb")  # noqa: SIM115 (open until the ring rotates)
        f.write(self.header)
        self.written = len(self.header)

    def write(self, chunk: RecordChunk) -> None:
        records = np.empty(len(chunk.ts), PCAP_RECORD)
        records["sec"], records["usec"] = np.divmod(chunk.ts, 1_000_000)
        records["incl"], records["orig"] = chunk.incl, chunk.orig
        heads, buf = records.tobytes(), chunk.buf
        parts: list[bytes] = []
        for i, (at, n) in enumerate(zip(chunk.data.tolist(), chunk.incl.tolist(), strict=True)):
            parts += (heads[16 * i : 16 * i + 16], buf[at : at + n])
        data = b"".join(parts)
        assert self._file is not None, "the ring is written only while open"
        self._file.write(data)
        self.written += len(data)

    def full(self) -> bool:
        return self.written >= self.size

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def rotate(self) -> list[str]:
        """Close the current file and start the next; the files deleted to keep ``files`` of them."""
        self.close()
        self._open()
        old = self.paths()[: -self.files]
        for path in old:
            os.remove(path)
        return [os.path.abspath(p) for p in old]


class _Segment:
    """One capture row of the run and the engine state of its packets: a flow table, its writer, the columnar
    engine. Rotating starts a new one, as a new file would."""

    def __init__(self, store: Store, path: str | None, sensor: str, registry: Registry, idle: IdleTimeouts):
        self.capture_id = store.begin_live(path, sensor)
        self.path = path
        self.writer = store.writer(self.capture_id)
        self.table = FlowTable(self.capture_id, registry, self.writer, idle)
        self.engine = Columnar(self.table, self.writer, registry, self._skip)

    def _skip(self, frame: int, link: int, ts: int) -> None:  # the interface's link type was checked at open
        self.writer.anomaly(frame, ts, None, Anomaly("capture", "unsupported_link_type", f"link type {link}"))

    def fields(self, source: LiveSource) -> dict:
        """The capture row as it stands."""
        st = self.engine.stats
        return {
            "link_types": [link_name(x) for x in source.state.link_types], "packets": st.packets,
            "ip_packets": st.ip_packets, "malformed": st.malformed, "skipped": st.skipped,
            "first_ts": st.first_ts, "last_ts": st.last_ts,
        }  # fmt: skip

    def commit_rows(self, now: int) -> None:
        """Finish what went idle by ``now``, and write everything as it stands, open flows included."""
        self.engine.sweep(now)
        self.writer.open_flows(self.table.live.values())
        self.writer.identities_so_far()
        self.writer.flush()

    def end(self) -> None:
        """The segment is over: every flow finished and written, with what the caps and fragments left."""
        report_fragments(self.engine.decoder, self.writer)
        self.table.close()
        report_evictions(self.table, self.writer)
        self.writer.end()


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@dataclass
class SenseOptions:
    """What `sorf sense` was asked for, beyond the interface and the database."""

    sensor: str
    registry: Registry = REGISTRY
    idle: IdleTimeouts = field(default_factory=IdleTimeouts)
    commit_s: float = COMMIT_S
    ring: Ring | None = None


class Sensor:
    """The run: chunks from the source through the current segment's engine; a commit every ``commit_s``; the ring
    rotated when full; at the end (``stop`` set), every flow finished and the capture closed."""

    def __init__(self, store: Store, source: LiveSource, options: SenseOptions):
        self.store, self.source, self.options = store, source, options
        self.on_commit: list[Callable[[], None]] = []  # called after each commit (the page's refresh, an export)
        self.interrupted = store.interrupted_live()
        self.segment = self._segment()
        self.counted = (0, 0, 0)  # libpcap's totals at the last commit
        self.packets_before = 0  # the source's packets then
        self.since = time.time()
        self.next_commit = time.monotonic() + options.commit_s
        self.next_assets = time.monotonic() + ASSETS_EVERY_S
        self.heard = (int(time.time() * 1e6), time.monotonic())  # the last packet's time, and when it came

    def _segment(self) -> _Segment:
        ring, o = self.options.ring, self.options
        return _Segment(self.store, ring.path if ring else None, o.sensor, o.registry, o.idle)

    def run(self) -> None:
        ring = self.options.ring
        for chunk in self.source.chunks():
            if len(chunk.ts):
                self.heard = (int(chunk.ts.max()), time.monotonic())
                self.segment.engine.chunk(chunk)
                if ring is not None:
                    ring.write(chunk)
            if time.monotonic() >= self.next_commit:
                self.commit()
            if (ring is not None and ring.full()) or self.source.frames >= MAX_FRAMES - BATCH:
                self.rotate()
        self.close()

    def commit(self) -> None:
        """Write everything as it stands and commit it at once, with the interval's counters."""
        now = time.time()
        self.segment.commit_rows(self._capture_clock())
        self._stats(now)
        self.store.progress_live(self.segment.capture_id, **self.segment.fields(self.source))
        self.store.commit()
        self.next_commit = time.monotonic() + self.options.commit_s
        if time.monotonic() >= self.next_assets:
            self.store.rebuild_assets()
            self.next_assets = time.monotonic() + ASSETS_EVERY_S
        for hook in self.on_commit:
            hook()

    def _capture_clock(self) -> int:
        """Now in capture time (µs): the last packet's time plus the time since it came. Idle flows are finished by
        the packets' clock, as in a file, even where it is not the host's (a NIC's own, a replay's)."""
        ts, at = self.heard
        return ts + int((time.monotonic() - at) * 1e6)

    def _stats(self, now: float) -> None:
        received, dropped, if_dropped = self.source.interface.counters()
        _, was_dropped, was_if_dropped = self.counted
        self.counted = (received, dropped, if_dropped)
        self.store.sensor_stats({
            "sensor": self.options.sensor, "capture_id": self.segment.capture_id,
            "since": _utc(self.since), "ts": _utc(now), "packets": self.source.packets - self.packets_before,
            "kernel_drops": dropped - was_dropped, "iface_drops": if_dropped - was_if_dropped,
            "active_flows": len(self.segment.table.live), "rss_bytes": rss_bytes(),
        })  # fmt: skip
        self.packets_before = self.source.packets
        self.since = now

    def _end_segment(self) -> None:
        """The segment's last rows, and its capture row completed: a ring file's with its size and sha256 (a later
        `sorf ingest` of the file is then a duplicate, and evidence checks the bytes)."""
        seg = self.segment
        seg.end()
        fields = seg.fields(self.source)
        if seg.path is not None:
            fields |= {"bytes": os.path.getsize(seg.path), "sha256": sha256_of(seg.path)}
        self.store.end_capture(seg.capture_id, status="ok", **fields)

    def rotate(self) -> None:
        """The segment ends (its ring file is complete, or its frames are used up) and the next one starts."""
        self._stats(time.time())
        ring = self.options.ring
        self._end_segment()
        if ring is not None:
            when = int(time.time() * 1e6)
            for path in ring.rotate():
                self.store.rotated_away(path, when, ring.files)
        self.source.restart_frames()
        self.segment = self._segment()
        self.store.commit()

    def close(self) -> None:
        """Stopped: the last interval's counters, every flow finished, the capture row completed, assets rebuilt."""
        self._stats(time.time())
        if self.options.ring is not None:
            self.options.ring.close()
        self._end_segment()
        self.store.rebuild_assets()
        self.store.commit()


def _utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC).replace(tzinfo=None)
