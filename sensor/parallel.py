"""`sorf ingest --jobs N`: several captures at once, one process each, merged into
one database with the same result as a serial run.

The parent hashes every file, in order, and sends each capture that is new (its
sha256 not in the database, not sent already) to a worker process. A worker
ingests its one capture with the ordinary serial code (ingest_file) into a
temporary DuckDB file of its own, where it is capture 1. The parent then goes
through the files in input order and does what the serial run would do at that
point: a file whose bytes are in the database by now (a capture merged earlier in
this run included) is a duplicate; a file the worker could not read is
unreadable; any other gets the next capture_id (max + 1) and the worker's rows
are copied in, in one transaction, with capture_id set and flow_id (capture_id *
2^32 + n) moved to it. A capture under SMALL bytes is not worth a process and a
merge: the parent reads it itself with ingest_file when its turn comes. Assets are
rebuilt once at the end.

Why capture_ids are given at merge time and not before: only then is it known
which files could be read at all (an unreadable file uses no capture_id), so the
numbering is the serial one even when a worker fails.

Workers are started with 'spawn', never forked from a process holding a DuckDB
connection. A worker that raises reports its file as unreadable, unless DuckDB failed
for want of memory, disk space or permission (sensor/failures.py): then
the run stops at that capture's turn, as the serial run would. A worker process
that dies (killed, out of memory) breaks the pool: its file is tried again alone,
the others in a new pool, so one bad file costs only itself.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import signal
import tempfile
from collections.abc import Iterable
from concurrent.futures import Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import replace

import duckdb

from .failures import WorkerDatabaseError, known_failure, one_line
from .ingest import UNREADABLE, CaptureResult, Progress, duplicate_of, expand, ingest_file, sha256_of, tune_process
from .ingest import ingest as serial_ingest
from .store import Store
from .walk import EarlyWalks

TABLES = ("captures", "flows", "operations", "identities", "anomalies")  # assets are rebuilt, not merged
WORKER_CAPTURE_ID = 1  # the only capture in a worker's database
SMALL = 1 << 20  # bytes: a smaller capture is read by the parent itself, in its turn (a worker costs ~0.1 s)
POLL_S = 0.25  # how often the overall progress is refreshed while waiting for a worker

_progress_queue = None  # in a worker: where packet counts go, when the parent shows progress


def ingest(
    paths: Iterable[str], db: str, *, sensor: str | None = None, jobs: int | None = None,
    progress: Progress | None = None, overall: Progress | None = None, early: EarlyWalks | None = None,
) -> list[CaptureResult]:  # fmt: skip
    """`sorf ingest`: like sensor.ingest.ingest, with up to ``jobs`` captures at
    once (default: one per CPU). ``progress`` is per file, for the serial path;
    ``overall`` is called as (label, captures done, captures, packets) in parallel.
    ``early``: walks the command started, taken up by the serial path."""
    requested = jobs or os.cpu_count() or 1
    files, results = expand(paths)
    if requested < 2 or len(files) < 2:  # nothing to share out: each file is hashed as it is read
        return results + serial_ingest(files, db, sensor=sensor, progress=progress, early=early)
    store = Store(db)
    try:
        digests = [_digest(path) for path in files]
        new: dict[str, int] = {}  # sha256 -> index of its first file, for each new capture
        for i, digest in enumerate(digests):
            if isinstance(digest, str) and digest not in new and duplicate_of(store, files[i], digest) is None:
                new[digest] = i
        todo = {digest: i for digest, i in new.items() if _size(files[i]) >= SMALL}  # for the workers
        jobs = min(requested, len(todo))
        if jobs < 1 or len(new) < 2:  # nothing to share out: the serial path
            for path, digest in zip(files, digests, strict=True):  # each file hashed once
                known = digest if isinstance(digest, str) else None
                results.append(ingest_file(store, path, sensor=sensor, progress=progress, digest=known, early=early))
                store.committed()
        else:
            results += _Run(store, files, new, todo, jobs, sensor, overall).results(digests)
        store.rebuild_assets()
    finally:
        store.close()
    return results


def _digest(path: str) -> str | CaptureResult:
    try:
        digest = sha256_of(path)
        os.path.getsize(path)
    except OSError as exc:  # as ingest_file reports it
        return CaptureResult(path, UNREADABLE, exc.strerror or str(exc))
    return digest


def _failed(path: str, exc: BaseException) -> CaptureResult:
    return CaptureResult(path, UNREADABLE, f"could not be ingested: {getattr(exc, 'kind', type(exc).__name__)}: "
                         f"{one_line(str(exc))}")  # fmt: skip


def _worker_failed(path: str, exc: BaseException) -> CaptureResult:
    """A worker's exception as its file's result; raised again if it was the database failing, not the file."""
    if isinstance(exc, WorkerDatabaseError) and known_failure(exc.message):
        raise exc
    return _failed(path, exc)


# --------------------------------------------------------------------------- in a worker process


def _init_worker(queue) -> None:
    global _progress_queue
    _progress_queue = queue
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the parent, which stops the workers
    tune_process()


def _work(index: int, path: str, digest: str, db: str, sensor: str | None) -> CaptureResult:
    """Ingest one capture into a new database of its own; raises only WorkerDatabaseError."""
    queue = _progress_queue
    progress = None if queue is None else lambda _path, _done, _total, packets: queue.put((index, packets))
    try:
        store = Store(db)
        try:
            return ingest_file(store, path, sensor=sensor, progress=progress, digest=digest)
        finally:
            store.close()
    except duckdb.Error as exc:  # the parent decides: the database failing, or this file
        raise WorkerDatabaseError(type(exc).__name__, str(exc)) from None
    except BaseException as exc:  # noqa: BLE001 - a bug must cost only this file
        return _failed(path, exc)


# --------------------------------------------------------------------------- in the parent


class _Run:
    def __init__(
        self, store: Store, files: list[str], new: dict[str, int], todo: dict[str, int], jobs: int,
        sensor: str | None, overall: Progress | None,
    ):  # fmt: skip
        self.store, self.files, self.new, self.todo = store, files, new, todo
        self.jobs, self.sensor, self.overall = jobs, sensor, overall
        self.read_here: set[str] = set()  # small captures the parent read itself
        self.ctx = multiprocessing.get_context("spawn")
        self.queue = self.ctx.Queue() if overall is not None else None
        self.packets: dict[int, int] = {}  # file index -> packets read so far
        self.futures: dict[str, Future] = {}
        self.dbs: dict[str, str] = {}  # sha256 -> the worker database of its latest attempt
        self.attempts = 0
        self.label = f"{len(new)} captures, {jobs} worker{'s' * (jobs > 1)}"

    def _pool(self, workers: int) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(workers, mp_context=self.ctx, initializer=_init_worker, initargs=(self.queue,))

    def _submit(self, pool: ProcessPoolExecutor, digest: str) -> Future:
        index = self.todo[digest]
        self.attempts += 1
        db = self.dbs[digest] = os.path.join(self.tmp, f"{index}.{self.attempts}.duckdb")
        self.packets[index] = 0
        future = self.futures[digest] = pool.submit(_work, index, self.files[index], digest, db, self.sensor)
        return future

    def results(self, digests: list[str | CaptureResult]) -> list[CaptureResult]:
        where = os.path.dirname(os.path.abspath(self.store.path))
        with tempfile.TemporaryDirectory(prefix=".sorf-ingest-", dir=where) as self.tmp:
            self.pool = self._pool(self.jobs)
            try:
                for new in self.todo:  # in input order, so that captures are merged (committed) as they come
                    self._submit(self.pool, new)
                out = []
                for path, digest in zip(self.files, digests, strict=True):
                    out.append(self._one(path, digest))
                    self.store.committed()
                self._show()
                return out
            except BaseException:
                _terminate(self.pool)
                raise
            finally:
                self.pool.shutdown(wait=True, cancel_futures=True)
                if self.queue is not None:
                    self.queue.close()

    def _one(self, path: str, digest: str | CaptureResult) -> CaptureResult:
        """What the serial run would have done with this file, at this point of the run."""
        if isinstance(digest, CaptureResult):
            return digest
        duplicate = duplicate_of(self.store, path, digest)
        if duplicate is not None:
            return duplicate
        if digest not in self.todo:  # a small one: read here, exactly as the serial run does
            result = ingest_file(self.store, path, sensor=self.sensor, digest=digest)
            self.read_here.add(digest)
            self.packets[self.new[digest]] = result.packets
            self._show()
            return result
        result = self._result(digest)
        if result.capture_id is None:  # unreadable: no capture, no capture_id used
            return replace(result, path=path)
        return replace(result, path=path, capture_id=self._merge(digest))

    def _result(self, digest: str) -> CaptureResult:
        index = self.todo[digest]
        path = self.files[index]
        future = self.futures[digest]
        self._wait(future)
        try:
            return future.result()
        except BrokenProcessPool:
            pass
        except Exception as exc:  # noqa: BLE001 - whatever the worker raised costs only this file
            return _worker_failed(path, exc)
        # A worker process died, and with it the pool. Try this file again alone: if
        # it dies again it was the cause. The others go to a new pool.
        self.pool.shutdown(wait=True)
        alone = self._pool(1)
        try:
            future = self._submit(alone, digest)
            self._wait(future)
            try:
                result = future.result()
            except BrokenProcessPool:
                result = CaptureResult(
                    path,
                    UNREADABLE,
                    "could not be ingested: the process reading it ended abruptly (killed, or out of memory?)",
                )
            except Exception as exc:  # noqa: BLE001 - as above
                result = _worker_failed(path, exc)
        except BaseException:
            _terminate(alone)
            raise
        finally:
            alone.shutdown(wait=True)
        self.pool = self._pool(self.jobs)
        for other, f in list(self.futures.items()):
            if other != digest and f.done() and isinstance(f.exception(), BrokenProcessPool):
                self._submit(self.pool, other)
        return result

    def _wait(self, future: Future) -> None:
        if self.queue is None:
            wait([future])
            return
        while not wait([future], timeout=POLL_S).done:
            self._show()

    def _show(self) -> None:
        if self.queue is None or self.overall is None:
            return
        while not self.queue.empty():
            try:
                index, packets = self.queue.get_nowait()
            except queue.Empty:  # empty() said otherwise, but it is only a hint
                break
            self.packets[index] = packets
        done = len(self.read_here) + sum(f.done() for f in self.futures.values())
        self.overall(self.label, done, len(self.new), sum(self.packets.values()))

    def _merge(self, digest: str) -> int:
        """Copy the worker's capture in as the next capture_id, as begin_capture numbers them."""
        store, con, db = self.store, self.store.con, self.dbs[digest]
        store.clear_leftovers(digest)  # from an interrupted ingest: replaced, as begin_capture does
        ((capture_id,),) = con.execute("SELECT coalesce(max(capture_id), 0) + 1 FROM captures").fetchall()
        shift = (capture_id - WORKER_CAPTURE_ID) << 32
        con.execute(f"ATTACH '{db.replace(chr(39), chr(39) * 2)}' AS worker (READ_ONLY)")
        try:
            con.execute("BEGIN TRANSACTION")
            try:
                for table in TABLES:
                    moved = "CAST(? AS INTEGER) AS capture_id" + (
                        ", flow_id + ? AS flow_id" if table != "captures" else ""
                    )
                    params = [capture_id] + ([shift] if table != "captures" else [])
                    con.execute(f"INSERT INTO {table} BY NAME SELECT * REPLACE ({moved}) FROM worker.{table}", params)
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        finally:
            con.execute("DETACH worker")
        for leftover in (db, db + ".wal"):
            if os.path.exists(leftover):
                os.remove(leftover)
        return capture_id


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def _terminate(pool: ProcessPoolExecutor) -> None:
    """Stop the workers now (Ctrl-C, or an error in the parent): a capture being read is not waited for."""
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        process.terminate()
