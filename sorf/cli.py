"""The `sorf` command."""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict
from typing import TYPE_CHECKING

from sensor.failures import database_failure, not_duckdb
from sensor.walk import EarlyWalks
from sorf import sense

if TYPE_CHECKING:
    from sensor.ingest import CaptureResult

# numpy, pyarrow and DuckDB take 0.2 s to import, with the second core idle: they are
# imported once the command is known, after `sorf ingest` starts walking its capture.


def quiet_blas() -> None:
    """sorf makes no BLAS calls, but numpy's OpenBLAS starts a thread per extra core when numpy is
    imported, and each spins for about 0.1 s of CPU before it sleeps: a core's worth taken from the
    inserter on a small box. One thread (the caller's) means none. It must be set before numpy is
    first imported (ingest workers inherit it); a value already set is kept."""
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def _progress_bar(unit: str = "B"):
    """A tqdm bar per file on a terminal (file, bytes, packets, rate); None elsewhere.
    With unit="capture", one bar for a parallel run (captures done, packets)."""
    if not sys.stderr.isatty():
        return None, lambda: None
    from tqdm import tqdm

    bars: dict[str, tqdm] = {}

    def update(path: str, done: int, total: int | None, packets: int) -> None:
        bar = bars.get(path)
        if bar is None:
            for old in bars.values():
                old.close()
            bars.clear()
            bar = bars[path] = tqdm(
                total=total, unit=unit, unit_scale=unit == "B", desc=path, leave=False, file=sys.stderr
            )
        bar.n = done
        bar.set_postfix(packets=packets, refresh=False)
        bar.refresh()

    def close() -> None:
        for bar in bars.values():
            bar.close()

    return update, close


def summary(results: list[CaptureResult], db: str) -> dict:
    from sensor.ingest import DUPLICATE, OK

    ingested = [r for r in results if r.capture_id is not None and r.status != DUPLICATE]
    operations: dict[str, int] = {}
    anomalies: dict[str, int] = {}
    for r in ingested:
        for k, v in r.operations.items():
            operations[k] = operations.get(k, 0) + v
        for k, v in r.anomalies.items():
            anomalies[k] = anomalies.get(k, 0) + v
    return {
        "database": db,
        "captures": len(ingested),
        "duplicates": sum(r.status == DUPLICATE for r in results),
        "packets": sum(r.packets for r in ingested),
        "flows": sum(r.flows for r in ingested),
        "operations": dict(sorted(operations.items())),
        "anomalies": dict(sorted(anomalies.items())),
        "problems": [
            {"path": r.path, "status": r.status, "message": r.message}
            for r in results
            if r.status not in (OK, DUPLICATE)
        ],
        "files": [asdict(r) for r in results],
    }


def print_summary(s: dict) -> None:
    out = sys.stdout.write
    dup = f" ({s['duplicates']} already ingested, skipped)" if s["duplicates"] else ""
    out(
        f"ingested {s['captures']} captures{dup} into {s['database']}: {s['packets']:,} packets, {s['flows']:,} flows\n"
    )
    ops = ", ".join(f"{k} {v:,}" for k, v in s["operations"].items()) or "none"
    out(f"operations: {ops}\n")
    anomalies = ", ".join(f"{k} {v:,}" for k, v in s["anomalies"].items()) or "none"
    out(f"anomalies: {anomalies}\n")
    for p in s["problems"]:
        sys.stderr.write(f"{p['status']}: {p['path']}: {p['message']}\n")


def cmd_ingest(args: argparse.Namespace) -> int:
    with EarlyWalks() as early:
        if len(args.paths) == 1 or args.jobs == 1:  # its first capture is read here, not by a worker
            early.start(args.paths[0])
        from sensor.ingest import exit_code  # numpy, pyarrow and DuckDB: once the walk has started

        results = _ingest(args, early)
    s = summary(results, args.db)
    if args.json:
        json.dump(s, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print_summary(s)
    if not results:
        sys.stderr.write("sorf: no capture files found in " + ", ".join(args.paths) + "\n")
    return exit_code(results)


def _ingest(args: argparse.Namespace, early: EarlyWalks) -> list[CaptureResult]:
    from sensor.ingest import tune_process
    from sensor.parallel import ingest

    tune_process()
    update, close = _progress_bar() if not args.json else (None, lambda: None)
    overall, close_overall = _progress_bar("capture") if not args.json else (None, lambda: None)
    try:
        return ingest(args.paths, args.db, sensor=args.sensor, jobs=args.jobs, progress=update, overall=overall,
                      early=early)  # fmt: skip
    finally:
        close()
        close_overall()


def _site_arguments(p: argparse.ArgumentParser) -> None:
    """--db or --data, and --zones, as every command that reads a site (analyse, serve, evidence) takes them."""
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--db", metavar="FILE.duckdb", help="database written by `sorf ingest`")
    where.add_argument("--data", metavar="DIR", help="folder written by `sorf export`, many sensors' (a path, or "
                       "any location DuckDB reads: s3://...); read as one database (docs/fleet.md)")  # fmt: skip
    p.add_argument("--zones", required=True, metavar="ZONES.yaml", help="zone file (docs/zones.md)")


def _site(args: argparse.Namespace):
    """What a command reads (--db or --data) and how the analyser opens it."""
    from analyser.observe import connect, connect_export

    return (args.data, connect_export) if args.data else (args.db, connect)


def _failure(exc: BaseException, args: argparse.Namespace) -> str:
    """The line for what stopped a command: the database's failures (sensor/failures.py) for --db; errors about a
    --data folder name it themselves (sensor/export.py)."""
    if getattr(args, "data", None):
        return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return database_failure(exc, args.db, args.command in ("ingest", "sense")) or str(exc)


def cmd_export(args: argparse.Namespace) -> int:
    from sensor.export import ExportError, export

    try:
        done = export(args.db, args.out)
    except ExportError as exc:
        sys.stderr.write(f"sorf: {exc}\n")
        return 2
    rows = ", ".join(f"{t} {n:,}" for t, n in done.rows.items())
    sys.stdout.write(f"exported {done.source} to {args.out}: sensor {', '.join(done.sensors)}, {done.files} files "
                     f"({rows}){f'; {done.removed} stale files removed' * bool(done.removed)}\n")  # fmt: skip
    return 0


def _export_parser(sub) -> None:
    p = sub.add_parser(
        "export", help="write a database's tables as Parquet, by sensor and day, for one analyst of many sensors",
        description="Write every table of a database as Parquet under DIR/TABLE/sensor=NAME/day=DAY/ (docs/fleet.md); "
        "a re-export replaces the sensor's files, another sensor's database adds beside them.",
    )  # fmt: skip
    p.add_argument("--db", required=True, metavar="FILE.duckdb", help="database written by `sorf ingest`")
    p.add_argument("--out", required=True, metavar="DIR", help="folder to write (created if need be)")
    p.set_defaults(func=cmd_export)


def _jobs(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a number of processes, 1 or more, not {text!r}")
    return int(text)


def _port(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise argparse.ArgumentTypeError(f"expected a port, 1-65535, not {text!r}")
    return int(text)


# analyser/model.py, kept here so that --help needs no import
SEVERITIES = ("info", "low", "medium", "high", "critical")


def cmd_analyse(args: argparse.Namespace) -> int:
    from analyser.deltas import analyse
    from analyser.model import severity_rank
    from analyser.report import RENDERERS

    zones = _load_zones(args.zones, then="; nothing analysed")
    if zones is None:
        return 2
    where, opener = _site(args)
    result = analyse(where, zones, opener=opener)
    sys.stdout.write(RENDERERS[args.format](result))
    if args.fail_on:
        at_or_above = [d for d in result.deltas if severity_rank(d.severity) >= severity_rank(args.fail_on)]
        if at_or_above:
            sys.stderr.write(f"sorf: {len(at_or_above)} delta(s) at or above {args.fail_on}\n")
            return 3
    return 0


def _load_zones(path: str, then: str = ""):
    """The zone file, or None after printing its problems, one per line, then how many (and ``then``)."""
    from analyser.zones import ZoneFileError, load_zone_file

    try:
        return load_zone_file(path)
    except ZoneFileError as exc:
        sys.stderr.write(f"{exc}\n")
        n = len(exc.problems)
        sys.stderr.write(f"sorf: {path}: {n} problem{'s' * (n != 1)} in the zone file{then}\n")
    except OSError as exc:
        sys.stderr.write(f"sorf: {path}: {exc.strerror or exc}\n")
    return None


def _loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _port_free(host: str, port: int) -> str | None:
    """Why the address cannot be bound, or None: said plainly before the server starts."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            return exc.strerror or str(exc)
    return None


def cmd_serve(args: argparse.Namespace) -> int:
    token = args.token or os.environ.get("SORF_TOKEN") or None
    if not _loopback(args.host) and not token:
        sys.stderr.write(f"sorf: refusing to serve on {args.host} without a token: give --token T or set SORF_TOKEN "
                         "(every request then needs 'Authorization: Bearer T'); or bind 127.0.0.1\n")  # fmt: skip
        return 2
    if _load_zones(args.zones) is None:
        return 2
    problem = _port_free(args.host, args.port)
    if problem:
        sys.stderr.write(f"sorf: cannot listen on {args.host}:{args.port}: {problem} (choose another with --port)\n")
        return 2
    import uvicorn

    from analyser.api import create_app

    if args.data:
        from analyser.serve import DATA_POLL_S, ExportFeed, Source

        sys.stderr.write(f"sorf: analysing {args.data} against {args.zones} ...\n")
        source = Source(args.data, args.zones, poll_s=DATA_POLL_S, feed=ExportFeed(args.data))
        app = create_app(args.data, args.zones, token=token, source=source)
    elif os.path.exists(args.db):
        problem = not_duckdb(args.db)  # said now, not after an "analysing" line
        if problem:
            sys.stderr.write(f"sorf: {database_failure(_duckdb_error()(problem), args.db, False)}\n")
            return 2
        sys.stderr.write(f"sorf: analysing {args.db} against {args.zones} ...\n")
    else:
        sys.stderr.write(f"sorf: no {args.db} yet: serving an empty window until `sorf ingest` writes it\n")
    if not args.data:
        app = create_app(args.db, args.zones, token=token)
    host = f"[{args.host}]" if ":" in args.host else args.host
    url = f"http://{host}:{args.port}/"
    sys.stdout.write(f"sorf serve: open {url}  (API {url}api/v1/, docs {url}docs){'; token required' * bool(token)}\n")
    sys.stdout.flush()
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


def cmd_evidence(args: argparse.Namespace) -> int:
    from analyser.queries import delta_evidence
    from analyser.serve import CONFIG, analyse_into, open_database, site_cursor
    from sensor import evidence

    zones = _load_zones(args.zones)
    if zones is None:
        return 2
    import tempfile

    where, opener = _site(args)
    con = opener(where, CONFIG) if args.data else open_database(args.db)
    try:
        with tempfile.TemporaryDirectory(prefix="sorf-evidence-") as spill:  # DuckDB's, while the connection is open
            analysis = analyse_into(con, zones, where, spill)
            delta = next((d for d in analysis.deltas if d.id == args.delta_id), None)
            if delta is None:
                sys.stderr.write(f"sorf: no delta {args.delta_id!r} in {where} against {args.zones} "
                                 "(`sorf analyse` lists them with their ids)\n")  # fmt: skip
                return 2
            found = delta_evidence(site_cursor(con), delta)
            if found is None:
                sys.stderr.write(f"sorf: delta {delta.id} has no frames: {delta.message}\n")
                return 2
            try:
                with open(args.out, "wb") as out:
                    result = evidence.write_rows(found.captures, found.flows, found.frames, out, found.max_frames)
            except evidence.EvidenceError as exc:
                os_remove_quietly(args.out)
                sys.stderr.write(f"sorf: {exc}\n")
                return 2
    finally:
        con.close()
    sys.stdout.write(f"{args.out}: {result.frames} frames of delta {delta.id} ({delta.category})"
                     f"{'; capped, not every frame of its flows' if result.truncated else ''}\n")  # fmt: skip
    return 0


def os_remove_quietly(path: str) -> None:
    import contextlib

    with contextlib.suppress(OSError):
        os.remove(path)


def main(argv: list[str] | None = None) -> int:
    quiet_blas()
    parser = argparse.ArgumentParser(
        prog="sorf", description="Passive OT network observation: what really crosses your zone boundaries."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("ingest", help="replay pcap/pcapng files (or folders of them) into a DuckDB database")
    p.add_argument("paths", nargs="+", metavar="PATH", help="capture files or folders (searched recursively)")
    p.add_argument("--db", required=True, metavar="FILE.duckdb", help="database to create or add to")
    p.add_argument("--sensor", metavar="NAME", help="name of the sensor or site visit the captures came from")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument(
        "--jobs", "-j", type=_jobs, metavar="N",
        help="captures ingested at once, each in its own process; the result is the same as one after the other "
        "(default: the number of CPUs, at most one per file; 1: one after the other, in this process)",
    )  # fmt: skip
    p.set_defaults(func=cmd_ingest)
    sense.add_parser(sub)
    p = sub.add_parser(
        "analyse", aliases=["analyze"], help="compare a zone file (zones, conduits) with what a database observed",
        description="Compare the declared zones and conduits with the traffic in a sorf database, "
        "and report the deltas.",
    )  # fmt: skip
    _site_arguments(p)
    p.add_argument(
        "--format", choices=("table", "json", "markdown"), default="table", help="output format (default: table)"
    )
    p.add_argument(
        "--fail-on", choices=SEVERITIES, metavar="SEVERITY",
        help="exit 3 when a delta at or above this severity exists (info, low, medium, high, critical)",
    )  # fmt: skip
    p.set_defaults(func=cmd_analyse)
    p = sub.add_parser(
        "serve", help="serve the deltas, their evidence and the zone picture: a local API and web page",
        description="Serve a database and zone file over HTTP (docs/api.md). The analysis is recomputed when an "
        "ingest commits a capture or the zone file changes.",
    )  # fmt: skip
    _site_arguments(p)
    p.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; any other needs a token)"
    )
    p.add_argument("--port", type=_port, default=8844, help="port (default 8844)")
    p.add_argument("--token", help="require 'Authorization: Bearer TOKEN' on every API request (or set SORF_TOKEN)")
    p.set_defaults(func=cmd_serve)
    p = sub.add_parser(
        "evidence", help="write the frames behind a delta to a pcapng file, for Wireshark",
        description="Copy the frames behind a delta out of the original capture files, with their timestamps.",
    )  # fmt: skip
    p.add_argument("delta_id", metavar="DELTA_ID", help="the delta's id, as `sorf analyse` prints it")
    _site_arguments(p)
    p.add_argument("--out", required=True, metavar="FILE.pcapng", help="file to write")
    p.set_defaults(func=cmd_evidence)
    _export_parser(sub)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        sys.stderr.write("sorf: interrupted; captures already ingested are kept\n")
        return 130
    except (OSError, RuntimeError, _duckdb_error()) as exc:
        sys.stderr.write(f"sorf: {_failure(exc, args)}\n")
        return 2


def _duckdb_error() -> type[Exception]:
    import duckdb

    return duckdb.Error


if __name__ == "__main__":
    sys.exit(main())
