"""Read-only snapshots of a sorf database, for a server that reads while an ingest writes.

DuckDB lets one process write a database file, and while it does, no other process can
open the file at all, not even read-only; a reader that held it open would in turn stop
the next ingest from starting. So the server never keeps the database open. It reads a
snapshot, ``FILE.duckdb.snapshot``: a copy of the database as of its last committed
capture, replaced atomically (write a temporary file, then rename it over the old one;
a reader keeps the file it opened).

Who copies: whoever holds the database. While `sorf serve` runs it holds a shared lock
on ``FILE.duckdb.serving``; an ingest that finds that lock taken publishes a snapshot
after each capture it commits. A server that finds the database newer than its snapshot
and free (no ingest holds it) copies it itself. docs/api.md describes the design.
"""

from __future__ import annotations

import fcntl
import os
import shutil
from typing import IO


def snapshot_path(db: str) -> str:
    return db + ".snapshot"


def serving_path(db: str) -> str:
    return db + ".serving"


def hold_serving(db: str) -> IO[bytes]:
    """Announce a server reading ``db``: the lock lasts as long as the returned file is open."""
    f = open(serving_path(db), "ab")  # noqa: SIM115 (held open by the server for its lifetime)
    fcntl.flock(f, fcntl.LOCK_SH)
    return f


def server_watching(db: str) -> bool:
    """Is a `sorf serve` reading snapshots of ``db``? (Its lock cannot be taken exclusively.)"""
    try:
        f = open(serving_path(db), "rb")  # noqa: SIM115
    except OSError:
        return False
    with f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(f, fcntl.LOCK_UN)
        return False


def publish_file(db: str) -> str:
    """Copy a database file that nobody is changing (checkpointed, writes drained) to its snapshot."""
    target = snapshot_path(db)
    tmp = f"{target}.{os.getpid()}.tmp"
    try:
        shutil.copyfile(db, tmp)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return target
