"""`sorf sense`: capture on an interface into a database, for weeks (sensor/live.py), and serve it if asked."""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
import threading
import time
from typing import Any

RING_SIZE_MB = 100
RING_FILES = 10


def add_parser(sub: Any) -> None:
    from sorf.cli import _port  # `sorf serve`'s check; sorf.cli is loaded by now (it calls this)

    p = sub.add_parser(
        "sense", help="capture live on a SPAN or TAP port into a database (and serve it)",
        description="Capture on an interface, promiscuous and receive-only, into a database that is committed every "
        "few seconds. SIGTERM or SIGINT: flush and exit 0; SIGHUP: read the zone file again (--serve).",
    )  # fmt: skip
    p.add_argument("--iface", required=True, metavar="IFACE", help="the capture interface (no address needed)")
    p.add_argument("--db", required=True, metavar="FILE.duckdb", help="database to create or add to")
    p.add_argument("--bpf", metavar="FILTER", help="capture filter, in the kernel (tcpdump's syntax)")
    p.add_argument("--sensor", metavar="NAME", default=socket.gethostname(),
                   help="this sensor's name in the captures (default: the host name)")  # fmt: skip
    p.add_argument("--commit-seconds", type=_seconds, default=5.0, metavar="S",
                   help="seconds between commits: what a crash may lose (default 5)")  # fmt: skip
    p.add_argument("--buffer-mb", type=_positive, default=64, metavar="MB", help="kernel capture buffer (default 64)")
    p.add_argument("--idle", type=_idle, default={}, metavar="T=S,...",
                   help="idle timeouts in seconds by transport, e.g. udp=60,tcp=600 (tcp, udp, other, closed; "
                   "default 300 each, 10 after FIN or RST)")  # fmt: skip
    ring = p.add_argument_group("ring", "keep the packets too, in a ring of pcap files that evidence is taken from")
    ring.add_argument("--ring", metavar="DIR", help="folder of the ring files")
    ring.add_argument("--ring-size", type=_positive, default=RING_SIZE_MB, metavar="MB",
                      help=f"size of one ring file (default {RING_SIZE_MB})")  # fmt: skip
    ring.add_argument("--ring-files", type=_positive, default=RING_FILES, metavar="N",
                      help=f"ring files kept, the oldest deleted (default {RING_FILES})")  # fmt: skip
    fleet = p.add_argument_group("export", "the tables as Parquet for a central analyst (docs/fleet.md)")
    fleet.add_argument(
        "--export", metavar="DIR", help="export to DIR (as `sorf export`) as the sensor goes, and at stop"
    )
    fleet.add_argument("--export-minutes", type=_positive, default=60, metavar="M",
                       help="minutes between exports (default 60)")  # fmt: skip
    serve = p.add_argument_group("serve", "the API and page of `sorf serve`, in this process, on live data")
    serve.add_argument("--serve", action="store_true", help="serve the database while sensing (needs --zones)")
    serve.add_argument("--zones", metavar="ZONES.yaml", help="zone file (docs/zones.md)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; any other needs "
                       "a token)")  # fmt: skip
    serve.add_argument("--port", type=_port, default=8844, help="port (default 8844)")
    serve.add_argument("--token", help="require 'Authorization: Bearer TOKEN' (or set SORF_TOKEN)")
    p.set_defaults(func=cmd_sense)


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, not {text!r}")
    return int(text)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0
    if not 0.1 <= value <= 3600:
        raise argparse.ArgumentTypeError(f"expected seconds between 0.1 and 3600, not {text!r}")
    return value


def _idle(text: str) -> dict[str, int]:
    """``udp=60,tcp=600``: the timeouts named, in µs (sensor.flows.IdleTimeouts' fields); the others keep their
    defaults. (sensor.flows imports numpy: not before the command is known, see cli.quiet_blas.)"""
    names = ("tcp", "udp", "other", "closed")
    given = {}
    for item in text.split(","):
        name, _, value = item.partition("=")
        if name.strip() not in names or not value.strip().isdigit() or int(value) < 1:
            raise argparse.ArgumentTypeError(f"expected NAME=SECONDS[,...] with NAME one of {', '.join(names)}, "
                                             f"not {item!r}")  # fmt: skip
        given[name.strip()] = int(value) * 1_000_000
    return given


def cmd_sense(args: argparse.Namespace) -> int:
    from sorf.cli import _load_zones, _loopback, _port_free

    token = args.token or os.environ.get("SORF_TOKEN") or None
    if args.serve:
        if not args.zones:
            return _fail("--serve needs --zones ZONES.yaml: the page compares the traffic with a zone file")
        if not _loopback(args.host) and not token:
            return _fail(f"refusing to serve on {args.host} without a token: give --token T or set SORF_TOKEN")
        if (problem := _port_free(args.host, args.port)) is not None:
            return _fail(f"cannot listen on {args.host}:{args.port}: {problem} (choose another with --port)")
    if args.zones and _load_zones(args.zones) is None:
        return 2
    from sensor.ingest import tune_process
    from sensor.live import Interface, LiveError

    tune_process()
    try:
        interface = Interface(args.iface, args.bpf, args.buffer_mb)
    except LiveError as exc:
        return _fail(str(exc))
    try:
        return _sense(args, interface, token)
    finally:
        interface.close()


def _fail(text: str) -> int:
    sys.stderr.write(f"sorf: {text}\n")
    return 2


def _sense(args: argparse.Namespace, interface, token: str | None) -> int:
    from sensor.flows import IdleTimeouts
    from sensor.live import LiveSource, Ring, SenseOptions, Sensor
    from sensor.store import Store

    stop = threading.Event()
    store = Store(args.db, live=True)
    server = None
    try:
        ring = None
        if args.ring:
            ring = Ring(args.ring, args.ring_size << 20, args.ring_files, args.sensor, interface.link,
                        interface.snaplen)  # fmt: skip
        options = SenseOptions(args.sensor, idle=IdleTimeouts(**args.idle), commit_s=args.commit_seconds, ring=ring)
        sensor = Sensor(store, LiveSource(interface, stop), options)
        if sensor.interrupted:
            left = ", ".join(map(str, sensor.interrupted))
            sys.stderr.write(f"sorf: captures {left} were left open by a sorf sense that stopped without closing "
                             "them: marked 'interrupted', their records kept\n")  # fmt: skip
        exporter = _Exporter(store, args) if args.export else None
        if args.serve:
            server = _Server(store, args, token)
        sensor.on_commit += [server.feed.committed] if server else []
        sensor.on_commit += [exporter] if exporter else []
        _signals(stop, server)
        kept = f"; ring of {args.ring_files} x {args.ring_size} MB in {args.ring}" if ring else ""
        sys.stderr.write(f"sorf sense: capturing on {args.iface} into {args.db} as sensor {args.sensor!r}, "
                         f"committing every {args.commit_seconds:g} s{kept}\n")  # fmt: skip
        sensor.run()
        if exporter is not None:
            exporter.final()
    finally:
        if server is not None:
            server.stop()
        store.close()
    _, dropped, if_dropped = interface.counters()
    sys.stderr.write(f"sorf sense: stopped: {sensor.source.packets} packets, {dropped} dropped by the kernel, "
                     f"{if_dropped} by the interface\n")  # fmt: skip
    return 0


def _signals(stop: threading.Event, server: _Server | None) -> None:
    """SIGTERM and SIGINT end the run at the next batch (within 0.1 s); SIGHUP re-reads the zone file."""

    def end(signum: int, _frame) -> None:
        stop.set()

    def hup(signum: int, _frame) -> None:
        if server is not None:
            server.source.reload_zones()
        sys.stderr.write("sorf sense: SIGHUP: " + ("reading the zone file again\n" if server else
                         "no --serve, no zone file in use\n"))  # fmt: skip

    signal.signal(signal.SIGTERM, end)
    signal.signal(signal.SIGINT, end)
    signal.signal(signal.SIGHUP, hup)


class _Server:
    """The API and page (analyser/api.py) on a thread, reading the sensor's own connection."""

    def __init__(self, store, args: argparse.Namespace, token: str | None):
        import uvicorn

        from analyser.api import create_app
        from analyser.serve import ConnectionFeed, Source

        self.feed = ConnectionFeed(store.con, os.path.abspath(args.db))
        self.source = Source(args.db, args.zones, feed=self.feed)
        app = create_app(args.db, args.zones, token=token, source=self.source)
        self.server = uvicorn.Server(uvicorn.Config(app, host=args.host, port=args.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, name="sorf-serve", daemon=True)
        self.thread.start()
        host = f"[{args.host}]" if ":" in args.host else args.host
        sys.stderr.write(f"sorf sense: serving http://{host}:{args.port}/{'  (token required)' * bool(token)}\n")

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


class _Exporter:
    """`sorf export` of the sensor's own connection every --export-minutes, on a thread (DuckDB reads in a
    transaction of its own: one consistent commit), and once more at the end. While one runs, none starts."""

    def __init__(self, store, args: argparse.Namespace):
        self.con, self.out, self.sensor, self.db = store.con, args.export, args.sensor, args.db
        self.every = args.export_minutes * 60
        self.next = time.monotonic() + self.every
        self.thread: threading.Thread | None = None

    def __call__(self) -> None:
        if time.monotonic() >= self.next and (self.thread is None or not self.thread.is_alive()):
            self.next = time.monotonic() + self.every
            self.thread = threading.Thread(target=self._export, name="sorf-export", daemon=True)
            self.thread.start()

    def final(self) -> None:
        if self.thread is not None:
            self.thread.join()
        self._export()

    def _export(self) -> None:
        from sensor.export import ExportError, export_from

        cursor = self.con.cursor()
        try:
            cursor.execute("USE site")
            cursor.begin()
            done = export_from(cursor, self.out, self.sensor, self.db)
            sys.stderr.write(f"sorf sense: exported to {self.out}: {done.files} files\n")
        except (ExportError, OSError) as exc:
            sys.stderr.write(f"sorf sense: export to {self.out} failed, sensing goes on: {exc}\n")
        finally:
            cursor.close()
