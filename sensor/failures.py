"""How the database can fail, said in one line: what happened, what was kept, what to do.

DuckDB and the file system under it fail in a few ways a user can act on (memory, disk,
permissions, another process holding the file, a file that is not a database). One table
names them; `sorf` (cli.py) says the line, and a parallel ingest (parallel.py) stops its run
on them as a serial run does.
"""

from __future__ import annotations

import os
import re

from . import walk  # standard library only: `sorf --help` and the start of an ingest import no DuckDB for this


class WorkerDatabaseError(RuntimeError):
    """DuckDB failed in a worker (out of memory, disk full, ...): the run stops at that capture's turn, as a
    serial run would, with the captures before it kept. Made of strings, to cross from the worker."""

    def __init__(self, kind: str, message: str):
        super().__init__(kind, message)
        self.kind, self.message = kind, message

    def __str__(self) -> str:
        return self.message


# How the database can fail, in DuckDB's words or the file system's under it: a regular expression on
# the message (first match wins) -> what happened, what an ingest kept, what to do after an ingest,
# what to do after a command that only reads (analyse, serve, evidence). database_failure fills in
# {limit}, {pid}, {wait}, {what} and {detail} (DuckDB's first line, without its tuning hints).
_KEPT, _NOTHING = "the captures committed before it are kept", "nothing was written"
_AGAIN = "then run the same command again (what is in already is skipped)"
DATABASE_FAILURES: tuple[tuple[str, str, str, str, str], ...] = (
    (r"out of memory|could not allocate block|failed to pin block",
     "DuckDB ran out of memory{limit} ({detail})", _KEPT,
     "give it more with SORF_MEMORY_LIMIT=1GB (or more), " + _AGAIN,
     "close other programs or use a machine with more memory, then run it again"),
    (r"no space left on device|\[errno 28\]", "the disk is full ({detail})", _KEPT,
     "free space on it, or move the database to a bigger disk, " + _AGAIN, "free space on it, then run it again"),
    (r"disk quota exceeded|\[errno 122\]", "the disk quota is used up ({detail})", _KEPT,
     "free space, or move the database to another disk, " + _AGAIN, "free space, then run it again"),
    (r"file too large|\[errno 27\]", ("a file grew past the largest size allowed, by the file system or by this "
     "process's limit (ulimit -f) ({detail})"), _KEPT, "raise the limit or use another disk, " + _AGAIN,
     "raise the limit, then run it again"),
    (r"read-only file system|\[errno 30\]", "it is on a read-only file system ({detail})", _NOTHING,
     "remount it read-write, or give --db a file on a writable disk", "copy it to a writable disk and use that copy"),
    (r"permission denied|operation not permitted|\[errno 1\]|\[errno 13\]",
     "this user may not use it or its folder ({detail})", _NOTHING,
     "fix the permissions (of the folder too: DuckDB writes FILE.wal beside the file), or give --db another file",
     "fix the permissions (of the folder too), then run it again"),
    (r"could not set lock|conflicting lock", ("in use by another process (pid {pid}: an ingest, or a server copying "
     "it){wait}"), _NOTHING, "run this again once it has finished",
     "run this again once it has finished (`sorf serve` can read while an ingest writes)"),
    (r"not a valid duckdb database", "not a DuckDB database{what}", _NOTHING,
     "give --db a database written by `sorf ingest`, or a new file name to start one",
     "give --db a database written by `sorf ingest`"),
    (r"is a directory|\[errno 21\]", "a folder, not a database", _NOTHING, "give --db a file name (in that folder)",
     "give --db the database file"),
    (r"no such file or directory|\[errno 2\]", "its folder does not exist ({detail})", _NOTHING,
     "create the folder first, or give --db a path that exists", "give --db the database file"),
    (r"", "DuckDB failed: {detail}", _KEPT, "run the same command again; if it fails again, report it with this line",
     "run it again; if it fails again, report it with this line"),
)  # fmt: skip


def database_failure(exc: BaseException, db: str, writing: bool) -> str | None:
    """One line for a failure of the database, or None for an error about anything else.
    ``writing``: the command was an ingest (what it kept is said); the others only read.

    The exception and those it was raised while handling are looked at, the most specific
    row wins: a cleanup that fails after the real failure (a rollback, a close) is not what is said."""
    from . import store

    found: list[tuple[int, str]] = []  # (row, message)
    seen: BaseException | None = exc
    while seen is not None and len(found) < 10:
        message = _database_message(seen, db)
        if message is not None:
            row = next(i for i, (pattern, *_) in enumerate(DATABASE_FAILURES) if re.search(pattern, message.lower()))
            found.append((row, message))
        seen = seen.__context__
    if not found:
        return None
    row, message = min(found, key=lambda f: f[0])
    if row == len(DATABASE_FAILURES) - 1 and message.startswith("[Errno "):
        return None  # a file system error of no known kind: said as it is
    _, what, kept, todo_ingest, todo_read = DATABASE_FAILURES[row]
    pid = re.search(r"\(PID (\d+)\)", message)
    what = what.format(
        limit=f" at its {os.environ.get('SORF_MEMORY_LIMIT') or store.MEMORY_LIMIT} limit" if writing else "",
        pid=pid.group(1) if pid else "unknown",
        wait=f", still after waiting {store.LOCK_WAIT_S} s" if writing else "",
        what=_what_it_is(db) if "{what}" in what else "",
        detail=one_line(message),
    )
    return f"{db}: {what}; {kept}; {todo_ingest}" if writing else f"{db}: {what}; {todo_read}"


def _database_message(exc: BaseException, db: str) -> str | None:
    """DuckDB's message, or the file system's about the database; None for anything else."""
    import duckdb  # only once something failed

    if isinstance(exc, duckdb.Error | WorkerDatabaseError):
        return str(exc)
    if isinstance(exc, OSError):
        if exc.errno and _about(exc.filename, db):
            return f"[Errno {exc.errno}] {exc.filename + ': ' if exc.filename else ''}{exc.strerror}"
        return None
    return None  # analyser's DatabaseError: the DuckDB error it was raised from is its __context__


def _about(filename: str | None, db: str) -> bool:
    """Is a file system error about the database: its file, FILE.wal, FILE.tmp, a worker's folder beside it?
    One that names no file is, when it is about room (a write to the snapshot, say), not when it is a broken pipe."""
    if filename is None:
        return True  # the table's last row does not take it: see database_failure
    name = os.path.abspath(str(filename))
    return name.startswith(os.path.abspath(db)) or ".sorf-ingest-" in name


def one_line(message: str) -> str:
    """DuckDB's message without its tuning hints, links and error class prefixes: its first line."""
    first = message.strip().splitlines()[0] if message.strip() else "no message"
    for prefix in ("TransactionContext Error: ", "Failed to commit: ", "Out of Memory Error: ", "IO Error: "):
        first = first.replace(prefix, "")
    first = re.sub(r"^\[Errno \d+\] ", "", first)
    return first.split(". See also")[0].rstrip(".!")


def not_duckdb(db: str) -> str | None:
    """What DuckDB would say of a file that is not one of its databases, or None."""
    if os.path.isdir(db):
        return f"Could not read from file {db!r}: Is a directory"
    try:
        with open(db, "rb") as f:
            magic = f.read(12)[8:]
    except OSError as exc:
        return f"Cannot open file {db!r}: {exc.strerror}"
    return None if magic == b"DUCK" else f'The file "{db}" exists, but it is not a valid DuckDB database file!'


def _what_it_is(db: str) -> str:
    """What a file that is not a DuckDB database seems to be."""
    kind = walk.sniff(db)
    if kind:
        return f" but a {kind} capture (given as --db by mistake?)"
    try:
        with open(db, "rb") as f:
            head = f.read(512)
    except OSError:
        return ""
    if not head:
        return " but an empty file"
    if head[8:12] == b"DUCK":
        return " this sorf can read (a newer DuckDB's, or damaged)"
    if all(32 <= b < 127 or b in b"\t\r\n" for b in head):
        return " but a text file"
    return f" (no DuckDB magic at byte 8: 0x{head[8:12].hex() or '-'})"


def known_failure(message: str) -> bool:
    """Is this DuckDB message one of the table's failures of the database (not its catch-all row)?"""
    text = message.lower()
    return any(re.search(pattern, text) for pattern, *_ in DATABASE_FAILURES[:-1])
