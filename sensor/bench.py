"""`make bench`: sorf ingest against tshark on the same captures, in one run.

Machines here are noisy, so results are ratios measured side by side: sorf/tshark
and sorf/floor, where the floor is walking the capture's record headers. The tools
take turns, ``--runs`` rounds of each (default 3), and the median time of each is
what the ratios use: one slow spell of the machine then moves no verdict (single
runs here drift by 5-10%). Each round's own ratio is printed too. Each
tool runs as its own process; peak RSS is that process's own (wait4), the largest
of its runs. Should a
tool fork workers, wait4 gives the largest peak among the process and the children
it reaped (Linux keeps a maximum, not a sum), so that figure would understate it.

    python -m sensor.bench                          # the generated benchmark captures (made if missing)
    python -m sensor.bench A.pcap B.pcapng ...      # these captures instead
    python -m sensor.bench A.pcap --scale BIG.pcap  # and a peak-memory check on a bigger capture

With no paths it measures captures/bench-1m.pcap and checks memory on
captures/bench-4m.pcap, generating them with captures/make_bench.py when they are
missing. Targets (issue 5): sorf ingest at least 10x tshark's packets/s; peak RSS at
most 300 MB on both captures. They are printed next to the numbers, never asserted.
"""

from __future__ import annotations

import argparse
import compileall
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .capture import ReadState, read_chunks

TSHARK_FIELDS = [
    "frame.number", "ip.src", "ip.dst", "ipv6.src", "ipv6.dst", "tcp.srcport", "tcp.dstport", "udp.srcport",
    "udp.dstport", "modbus.func_code", "s7comm.param.func", "dnp3.al.func", "enip.command", "cip.service",
]  # fmt: skip

CAPTURES = Path(__file__).resolve().parent.parent / "captures"
GENERATED = {CAPTURES / "bench-1m.pcap": 1_000_000, CAPTURES / "bench-4m.pcap": 4_000_000}
TARGET_SPEEDUP = 10.0  # sorf packets/s over tshark's
MB = 1_000_000  # sizes, throughput and memory are all in MB of 10^6 bytes
TARGET_RSS = 300 * MB  # on the 1M and the 4M capture


def timed(argv: list[str], capture_stdout: bool = False) -> tuple[float, int, str]:
    """Wall seconds, peak RSS (bytes) and (if asked) stdout of one child process."""
    start = time.perf_counter()
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(argv, stdout=out if capture_stdout else subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: keep Popen from waiting again
        if proc.returncode not in (0, 1):
            raise SystemExit(f"bench: {' '.join(argv[:4])} ... failed with status {proc.returncode}")
        out.seek(0)
        text = out.read().decode() if capture_stdout else ""
    return elapsed, usage.ru_maxrss * 1024, text


def walk(paths: list[str]) -> int:
    """The floor: read every record header (sorf's own reader), touch nothing else."""
    n = 0
    for path in paths:
        for chunk in read_chunks(path, ReadState()):
            n += len(chunk.ts)
    print(n)
    return n


def compile_sorf() -> None:
    """Byte-compile sorf's packages, as an installed package is: otherwise, where
    PYTHONDONTWRITEBYTECODE is set (as on the machines here), every run of sorf
    compiles its modules again (about 60 ms) and the bench times the compiler."""
    root = Path(__file__).resolve().parent.parent
    for package in ("sensor", "dissectors", "analyser"):
        compileall.compile_dir(str(root / package), quiet=1)


def warm(paths: list[str]) -> None:
    """Read the files once, so that whichever tool runs first does not pay for a cold page cache."""
    for path in paths:
        with open(path, "rb") as f:
            while f.read(1 << 22):
                pass


def ensure_generated(paths: list[Path]) -> None:
    """Make the benchmark captures that are missing (captures/make_bench.py; deterministic)."""
    for path in paths:
        if path in GENERATED and not path.exists():
            print(f"generating {path.name} ({GENERATED[path]:,} packets) ...", flush=True)
            cmd = [sys.executable, str(CAPTURES / "make_bench.py"), "--packets", str(GENERATED[path]), str(path)]
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


def sorf_ingest(paths: list[str]) -> tuple[float, int, str]:
    """Time `sorf ingest` into a fresh database; return (seconds, peak RSS, what it wrote).

    The database is read by a child too: a child's peak RSS starts from this process's
    (Linux counts it at the fork), so this one must not grow by loading DuckDB."""
    with tempfile.TemporaryDirectory() as tmp:
        db = os.path.join(tmp, "bench.duckdb")
        secs, rss, _ = timed([sys.executable, "-m", "sorf", "ingest", *paths, "--db", db])
        _, _, wrote = timed([sys.executable, "-m", "sensor.bench", "--contents", db], True)
        return secs, rss, wrote.strip()


def contents(db: str) -> str:
    """One line on what the ingest wrote, so a fast run that skipped work shows."""
    import duckdb  # here: the floor process (--walk) must not load it

    try:
        with duckdb.connect(db, read_only=True) as con:
            ((packets,),) = con.execute("SELECT sum(packets) FROM captures").fetchall()
            ((flows,),) = con.execute("SELECT count(*) FROM flows").fetchall()
            ops = con.execute("SELECT protocol, count(*) FROM operations GROUP BY 1 ORDER BY 2 DESC").fetchall()
            ((anomalies,),) = con.execute("SELECT count(*) FROM anomalies").fetchall()
    except duckdb.Error as exc:  # the bench reports; it does not depend on the schema staying put
        return f"(could not read the database: {type(exc).__name__}: {exc})"
    total = sum(n for _, n in ops)
    by_proto = ", ".join(f"{p} {n:,}" for p, n in ops)
    return (f"{packets or 0:,} packets, {flows:,} flows, {total:,} operations ({by_proto}), "
            f"{anomalies:,} anomalies")  # fmt: skip


def row(name: str, secs: float, packets: int, size: int, rss: int) -> str:
    return f"  {name:12} {secs:9.2f} {packets / secs:12,.0f} {size / MB / secs:9.1f} {rss / MB:8.0f} MB"


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sensor.bench", description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", help="capture files to measure (default: captures/bench-1m.pcap)")
    parser.add_argument("--scale", metavar="PATH", help="also ingest this bigger capture and compare peak RSS "
                        "(default with no paths: captures/bench-4m.pcap)")  # fmt: skip
    parser.add_argument("--runs", type=int, default=3, metavar="N",
                        help="rounds of each tool, taking turns; medians are reported (default 3)")  # fmt: skip
    parser.add_argument("--walk", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--contents", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.walk:
        walk(args.paths)
        return 0
    if args.contents:
        print(contents(args.paths[0]))
        return 0
    if not args.paths:
        args.paths = [str(CAPTURES / "bench-1m.pcap")]
        args.scale = args.scale or str(CAPTURES / "bench-4m.pcap")
    ensure_generated([Path(p).resolve() for p in [*args.paths, *([args.scale] if args.scale else [])]])

    size = sum(os.path.getsize(p) for p in args.paths)
    names = ", ".join(args.paths)
    print(f"sorf ingest vs tshark: {names} ({size / MB:,.1f} MB)", flush=True)

    compile_sorf()
    warm(args.paths)
    runs = max(args.runs, 1)
    rounds = []  # (floor, sorf, tshark) seconds of each round
    floor_rss = sorf_rss = tshark_rss = 0
    for _ in range(runs):
        floor_secs, rss, out = timed([sys.executable, "-m", "sensor.bench", "--walk", *args.paths], True)
        packets, floor_rss = int(out.split()[-1]), max(floor_rss, rss)
        sorf_secs, rss, wrote = sorf_ingest(args.paths)
        sorf_rss = max(sorf_rss, rss)
        tshark_secs = 0.0
        for path in args.paths:  # tshark reads one file per run; -n: no name resolution (no DNS lookups)
            t, rss, _ = timed(
                ["tshark", "-n", "-r", path, "-T", "fields", *(x for f in TSHARK_FIELDS for x in ("-e", f))]
            )
            tshark_secs, tshark_rss = tshark_secs + t, max(tshark_rss, rss)
        rounds.append((floor_secs, sorf_secs, tshark_secs))
    floor_secs, sorf_secs, tshark_secs = (statistics.median(r[k] for r in rounds) for k in range(3))

    print(f"  {packets:,} packets in {len(args.paths)} file{'s' * (len(args.paths) > 1)}; "
          f"each tool in its own process, median of {runs} run{'s' * (runs > 1)}")  # fmt: skip
    print()
    print(f"  {'':12} {'seconds':>9} {'packets/s':>12} {'MB/s':>9} {'peak RSS':>12}")
    print(row("sorf ingest", sorf_secs, packets, size, sorf_rss))
    print(row("tshark", tshark_secs, packets, size, tshark_rss))
    print(row("floor", floor_secs, packets, size, floor_rss))
    print()
    speedup = tshark_secs / sorf_secs
    print(f"  {'sorf/tshark':12} {speedup:9.2f}x packets/s   target: at least {TARGET_SPEEDUP:.0f}x, "
          f"{verdict(speedup >= TARGET_SPEEDUP)}")  # fmt: skip
    if runs > 1:
        each = " ".join(f"{t / s:.2f}x" for _, s, t in rounds)
        print(f"  {'':12} {'':9}  each round: {each}")
    print(f"  {'sorf/floor':12} {floor_secs / sorf_secs:9.2f}x packets/s   (1x: as fast as reading the record headers)")
    print(f"  {'sorf wrote':12} {wrote}")

    if args.scale:
        scale_size = os.path.getsize(args.scale)
        print()
        print(f"peak memory with a bigger capture: {args.scale} ({scale_size / MB:,.1f} MB)", flush=True)
        warm([args.scale])
        big_secs, big_rss, big_wrote = sorf_ingest([args.scale])
        print(f"  {'':12} {'seconds':>9} {'MB/s':>9} {'peak RSS':>12}")
        print(f"  {'sorf ingest':12} {sorf_secs:9.2f} {size / MB / sorf_secs:9.1f} {sorf_rss / MB:8.0f} MB   ({names})")
        print(f"  {'sorf ingest':12} {big_secs:9.2f} {scale_size / MB / big_secs:9.1f} {big_rss / MB:8.0f} MB"
              f"   ({args.scale})")  # fmt: skip
        print()
        ok = max(sorf_rss, big_rss) <= TARGET_RSS
        print(f"  {'RSS ratio':12} {big_rss / sorf_rss:9.2f}x for {scale_size / size:.1f}x the bytes   "
              f"target: at most {TARGET_RSS // MB} MB on both, {verdict(ok)}")  # fmt: skip
        print(f"  {'sorf wrote':12} {big_wrote}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
