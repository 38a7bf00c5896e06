"""Replay capture files into the store: the sensor's main job for site-visit captures.

Each file goes source -> decode -> flows/reassembly -> dissectors -> batches ->
DuckDB. A broken file costs only itself: it is read up to the damage, what came
before is kept, and the problem is reported with the byte offset and frame.
"""

from __future__ import annotations

import gc
import hashlib
import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from io import BufferedReader
from itertools import chain

import pyarrow as pa

from dissectors import REGISTRY, Anomaly, Registry

from .capture import CaptureError, packets_of, sniff
from .columnar import ChunkStats, Columnar
from .decode import KNOWN_LINK_NAMES, LINK_NAMES, SUPPORTED_LINKS, Decoder, Malformed
from .flows import FlowTable
from .source import FileSource
from .store import Store
from .walk import EarlyWalks

PROGRESS_EVERY = 1 << 14  # packets between progress callbacks
GC_THRESHOLD = 20_000  # allocations between young-generation collections (tune_process; Python's default is 700)
HASH_AHEAD = 16 << 20  # bytes: a bigger capture is hashed on a thread while it is read; a smaller one first (< 10 ms)
HASH_BLOCK = 4 << 20  # bytes the hashing thread reads at a time: it takes the GIL once a block
CAPTURE_SUFFIXES = (".pcap", ".pcapng", ".cap", ".pcap.gz", ".pcapng.gz")

# per-capture status, worst last
OK, DUPLICATE, DAMAGED, UNSUPPORTED, UNREADABLE = "ok", "duplicate", "damaged", "unsupported", "unreadable"


@dataclass
class CaptureResult:
    path: str
    status: str
    message: str | None = None
    capture_id: int | None = None
    packets: int = 0
    skipped: int = 0  # frames on unsupported link types
    flows: int = 0
    operations: dict[str, int] = field(default_factory=dict)
    anomalies: dict[str, int] = field(default_factory=dict)


Progress = Callable[[str, int, int | None, int], None]  # path, bytes read, total bytes, packets


def link_name(link: int) -> str:
    return LINK_NAMES.get(link) or KNOWN_LINK_NAMES.get(link) or "unknown"


def expand(paths: Iterable[str]) -> tuple[list[str], list[CaptureResult]]:
    """Files named on the command line are always tried; folders are searched
    recursively for files whose first bytes are a capture's (any name), or whose
    name says capture, so that a damaged one is reported rather than passed over."""
    files: list[str] = []
    missing: list[CaptureResult] = []
    for path in paths:
        if os.path.isdir(path):
            for root, dirs, names in os.walk(path):
                dirs.sort()
                for name in sorted(names):
                    full = os.path.join(root, name)
                    if os.path.isfile(full) and (name.lower().endswith(CAPTURE_SUFFIXES) or sniff(full)):
                        files.append(full)
        elif os.path.isfile(path):
            files.append(path)
        else:
            missing.append(CaptureResult(path, UNREADABLE, "no such file or folder"))
    return files, missing


def sha256_of(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


class _Hashing:
    """A file's sha256, computed on a thread while the capture is read: hashlib
    releases the GIL while it hashes, so on two cores the main thread does not wait."""

    def __init__(self, f: BufferedReader):
        self.digest = ""
        self.error: OSError | None = None
        self.cancelled = False
        self.thread = threading.Thread(target=self._run, args=(f,), name="sorf-sha256", daemon=True)
        self.thread.start()

    def _run(self, f: BufferedReader) -> None:
        h, block = hashlib.sha256(), bytearray(HASH_BLOCK)
        view = memoryview(block)
        try:
            with f:
                while not self.cancelled and (n := f.readinto(block)):
                    h.update(view[:n])
        except OSError as exc:
            self.error = exc
        self.digest = h.hexdigest()

    def done(self) -> bool:
        return not self.thread.is_alive()

    def cancel(self) -> None:
        """Stop hashing a file that will not be ingested."""
        self.cancelled = True

    def result(self) -> str:
        """The digest, waiting for it; OSError if the file could not be read."""
        self.thread.join()
        if self.error is not None:
            raise self.error
        return self.digest


def duplicate_of(store: Store, path: str, digest: str) -> CaptureResult | None:
    """The 'duplicate' result if a capture with these bytes is in the store (a leftover
    'ingesting' one does not count: it is replaced)."""
    found = store.find_capture(digest)
    if found is None or found[1] == "ingesting":
        return None
    capture_id, status, error = found
    earlier = f"; it was {status} then: {error}" if error else ""
    return CaptureResult(
        path, DUPLICATE, f"already ingested as capture {capture_id} (same sha256){earlier}", capture_id
    )


def ingest_file(
    store: Store,
    path: str,
    *,
    registry: Registry = REGISTRY,
    sensor: str | None = None,
    progress: Progress | None = None,
    digest: str | None = None,
    columnar: bool = True,
    early: EarlyWalks | None = None,
) -> CaptureResult:
    """Ingest one capture; ``digest`` is its sha256 when the caller has hashed it already, ``early``
    the walks the command started (this file's is taken up).

    pcap and pcapng files go through the columnar path (sensor/columnar.py);
    ``columnar=False`` reads packet by packet. Both give the same tables.

    A big capture is hashed while it is read: if it turns out to be a duplicate,
    what was written for it is removed and the result is the same as if it had
    been hashed first. Its capture row has no sha256 until the digest is known."""
    hashing = None
    try:
        size = os.path.getsize(path)
        if digest is None and size < HASH_AHEAD:
            digest = sha256_of(path)
        elif digest is None:
            hashing = _Hashing(open(path, "rb"))  # noqa: SIM115 (the thread closes it)
            if store.interrupted():  # a capture left 'ingesting' may be this file's: replaced before numbering
                digest, hashing = hashing.result(), None
    except OSError as exc:
        return CaptureResult(path, UNREADABLE, exc.strerror or str(exc))
    if digest is not None and (duplicate := duplicate_of(store, path, digest)) is not None:
        return duplicate
    source = FileSource(path, early)
    return _FileIngest(store, source, size, hashing, progress).run(registry, sensor, digest, columnar)


class _FileIngest:
    """One capture file through the engine into the store: its capture row, its records, its result.

    Between chunks (``tick``) the digest of a file hashed while it is read is settled: a
    duplicate found then stops the reading, and what was written for it is removed."""

    def __init__(self, store: Store, source: FileSource, size: int, hashing: _Hashing | None,
                 progress: Progress | None):  # fmt: skip
        self.store, self.source, self.hashing, self.progress = store, source, hashing, progress
        self.size = size
        self.given_up: CaptureResult | None = None  # what the capture turned out to be, once hashed, if not new
        self.unsupported: dict[int, int] = {}  # link type -> its first frame

    def run(self, registry: Registry, sensor: str | None, digest: str | None, columnar: bool) -> CaptureResult:
        path, state = self.source.path, self.source.state
        chunks = self.source.chunks()
        try:
            first = next(chunks, None)
        except CaptureError as exc:
            if self.hashing is not None:
                self.hashing.cancel()
            return CaptureResult(path, UNREADABLE, str(exc))
        self.capture_id = self.store.begin_capture(os.path.abspath(path), digest, self.size, sensor)
        self.writer = writer = self.store.writer(self.capture_id)
        table = FlowTable(self.capture_id, registry, writer)
        self.total = None if state.compressed else self.size
        if columnar:
            stats = _replay_chunks(first, chunks, table, writer, registry, self.skip, self.tick)
        else:
            stats = _replay_packets(packets_of(chain((first,) if first else (), chunks)), table, writer,
                                    self.skip, self.tick)  # fmt: skip
        if self.hashing is not None:
            self.given_up = self._settle()
        if self.given_up is not None:
            chunks.close()
            self.store.delete_capture(self.capture_id)
            return self.given_up
        return self._finish(table, stats)

    def skip(self, frame: int, link: int, ts: int) -> None:
        """A frame on a link type sorf does not decode: one anomaly per link type, at its first frame."""
        if link not in self.unsupported:
            self.unsupported[link] = frame
            detail = f"link type {link} ({link_name(link)})"
            self.writer.anomaly(frame, ts, None, Anomaly("capture", "unsupported_link_type", detail))

    def tick(self, packets: int) -> bool:
        """Between chunks: settle the digest if it is known, report progress; False to stop reading."""
        if self.hashing is not None and self.hashing.done():
            self.given_up = self._settle()
        if self.progress is not None and self.hashing is None and self.given_up is None:
            self.progress(self.source.path, self.source.state.bytes_read, self.total, packets)
        return self.given_up is None

    def _settle(self) -> CaptureResult | None:
        """Record the capture's digest once it is known; or the result to give instead
        (a duplicate, or a file that could not be read), the capture to be removed."""
        assert self.hashing is not None
        hashing, self.hashing = self.hashing, None
        path = self.source.path
        try:
            digest = hashing.result()
        except OSError as exc:
            return CaptureResult(path, UNREADABLE, exc.strerror or str(exc))
        duplicate = duplicate_of(self.store, path, digest)
        if duplicate is None:
            self.store.set_sha256(self.capture_id, digest)
        return duplicate

    def _finish(self, table: FlowTable, stats: ChunkStats) -> CaptureResult:
        """The flows still open written, the file's problems recorded, its capture row completed."""
        writer, state = self.writer, self.source.state
        table.close()
        report_evictions(table, writer)
        writer.end()
        if self.progress is not None:
            self.progress(self.source.path, self.total or state.bytes_read, self.total, stats.packets)
        status, message = self._status(stats)
        writer.flush()
        self.store.end_capture(
            self.capture_id,
            format=state.fmt,
            link_types=[link_name(x) for x in state.link_types],
            packets=stats.packets,
            ip_packets=stats.ip_packets,
            malformed=stats.malformed,
            skipped=stats.skipped,
            first_ts=stats.first_ts,
            last_ts=stats.last_ts,
            status=status,
            error=message,
        )
        return CaptureResult(self.source.path, status, message, self.capture_id, stats.packets, stats.skipped,
                             table.flow_count, writer.operations_by_protocol, writer.anomalies_by_kind)  # fmt: skip

    def _status(self, stats: ChunkStats) -> tuple[str, str | None]:
        """The capture's status and message: damage (recorded as an anomaly too), then frames skipped."""
        n, damage = stats.packets, self.source.state.damage
        status, message = OK, None
        if damage is not None:
            status = DAMAGED
            kept = f"the {n} frames before it were kept" if n else "no frame could be read before it"
            message = f"{damage.describe()}; {kept}"
            self.writer.anomaly(damage.frame, None, None, Anomaly("capture", "damaged_file", message))
        if self.unsupported:
            kinds = ", ".join(f"{link} ({link_name(link)}) from frame {f}" for link, f in self.unsupported.items())
            text = f"unsupported link type {kinds}: {stats.skipped} of {n} frames skipped"
            message = f"{message}; {text}" if message else text
            if status == OK:
                status = UNSUPPORTED
        return status, message


def _replay_chunks(first, chunks, table, writer, registry, skip, tick) -> ChunkStats:
    engine = Columnar(table, writer, registry, skip)
    if first is not None:
        for chunk in chain((first,), chunks):
            engine.chunk(chunk)
            if not tick(engine.stats.packets):
                break
    report_fragments(engine.decoder, writer)
    return engine.stats


def _replay_packets(packets, table, writer, skip, tick) -> ChunkStats:
    """The packet-at-a-time path (``columnar=False``): the reference the columnar one is held to."""
    decoder = Decoder()
    decode = decoder.decode
    on_packet = table.packet
    supported = SUPPORTED_LINKS
    n = ip_packets = malformed = skipped = 0
    first_ts = last_ts = None
    first = next(packets, None)
    if first is not None:
        first_ts = last_ts = first[1]
        # the per-packet loop: kept inline (no call per packet) because it runs for every frame
        for n, (link, ts, orig_len, data) in enumerate(chain((first,), packets), 1):
            if ts < first_ts:
                first_ts = ts
            elif ts > last_ts:
                last_ts = ts
            if link not in supported:
                skipped += 1
                skip(n, link, ts)
                continue
            try:
                pkt = decode(link, data, ts, n)
                if pkt is not None:
                    ip_packets += 1
                    on_packet(pkt, n, ts, orig_len)
            except Malformed as exc:
                malformed += 1
                writer.anomaly(n, ts, None, Anomaly("decode", "malformed_packet", str(exc)))
            except Exception as exc:  # noqa: BLE001 - a bug on one packet must not lose the capture
                malformed += 1
                writer.anomaly(n, ts, None, Anomaly("sensor", "internal_error", f"{type(exc).__name__}: {exc}"))
            if not n % PROGRESS_EVERY and not tick(n):
                break
    report_fragments(decoder, writer)
    return ChunkStats(n, ip_packets, malformed, skipped, first_ts, last_ts)


def report_evictions(table: FlowTable, writer) -> None:
    """One anomaly summing up the flows the table's caps finished early, if any was."""
    if (evicted := table.evictions()) is not None:
        frame, ts, detail = evicted
        writer.anomaly(frame, ts, None, Anomaly("sensor", "flow_table_full", detail))


def report_fragments(decoder: Decoder, writer) -> None:
    """One anomaly for every IP datagram of the capture that never completed: one row
    each would be a million rows for a flood of first fragments (issue 12 §5)."""
    found = decoder.incomplete()
    if found is not None:
        frame, ts, detail = found
        writer.anomaly(frame, ts, None, Anomaly("decode", "incomplete_fragments", detail))


def tune_process() -> None:
    """For a process that ingests, set by its entry point (the command, a worker), never at import.

    The cyclic collector's defaults (a young-generation pass every 700 allocations) rescanned the flows
    and dissector state hundreds of times per capture (0.08 s of 1.7 s on the 1M bench) for garbage
    ingest rarely makes: what is loaded so far is frozen out of its scans, and it runs less often.
    Arrow's default allocator (mimalloc) keeps freed pages for reuse: about 40 MB of peak RSS on the
    1M benchmark, for no measurable speed; the system one gives them back."""
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD, 10, 10)
    pa.set_memory_pool(pa.system_memory_pool())


def ingest(
    paths: Iterable[str], db: str, *, sensor: str | None = None, progress: Progress | None = None,
    early: EarlyWalks | None = None,
) -> list[CaptureResult]:  # fmt: skip
    """Ingest every capture under ``paths`` into ``db``; one result per file."""
    files, results = expand(paths)
    store = Store(db)
    try:
        for path in files:
            results.append(ingest_file(store, path, sensor=sensor, progress=progress, early=early))
            store.committed()
        store.rebuild_assets()
    finally:
        store.close()
    return results


def exit_code(results: list[CaptureResult]) -> int:
    """0 all read; 1 something skipped or damaged; 2 nothing could be read."""
    if not any(r.status in (OK, DUPLICATE) or r.packets > r.skipped for r in results):
        return 2
    return 0 if all(r.status in (OK, DUPLICATE) for r in results) else 1
