"""`make bench`: sorf ingest against tshark on the same captures, in one run.

Machines here are noisy, so results are ratios measured side by side: sorf/tshark
and sorf/floor, where the floor is walking the capture's record headers. Each
tool runs as its own process; peak RSS is that process's own (wait4).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

from .capture import ReadState, read_packets

TSHARK_FIELDS = [
    "frame.number", "ip.src", "ip.dst", "ipv6.src", "ipv6.dst", "tcp.srcport", "tcp.dstport", "udp.srcport",
    "udp.dstport", "modbus.func_code", "s7comm.param.func", "dnp3.al.func", "enip.command", "cip.service",
]  # fmt: skip


def timed(argv: list[str]) -> tuple[float, int]:
    """Wall seconds and peak RSS (bytes) of one child process."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) not in (0, 1):
        raise SystemExit(f"bench: {argv[0]} failed with status {status}")
    return elapsed, usage.ru_maxrss * 1024


def walk(paths: list[str]) -> int:
    """The floor: read every record header, touch nothing else."""
    n = 0
    for path in paths:
        for _ in read_packets(path, ReadState()):
            n += 1
    print(n)
    return n


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sensor.bench", description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", help="capture files to measure")
    parser.add_argument("--walk", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.walk:
        walk(args.paths)
        return 0
    packets = sum(1 for p in args.paths for _ in read_packets(p, ReadState()))
    size = sum(os.path.getsize(p) for p in args.paths)
    with tempfile.TemporaryDirectory() as tmp:
        sorf = timed([sys.executable, "-m", "sensor.cli", "ingest", *args.paths, "--db", os.path.join(tmp, "b.duckdb")])
    floor = timed([sys.executable, "-m", "sensor.bench", "--walk", *args.paths])
    tshark = (0.0, 0)
    for path in args.paths:  # tshark reads one file per run
        t, rss = timed(["tshark", "-r", path, "-T", "fields", *(x for f in TSHARK_FIELDS for x in ("-e", f))])
        tshark = (tshark[0] + t, max(tshark[1], rss))
    print(f"{len(args.paths)} files, {packets:,} packets, {size / 1e6:.1f} MB")
    print(f"{'':8} {'seconds':>8} {'packets/s':>12} {'MB/s':>8} {'peak RSS':>10}")
    for name, (secs, rss) in (("sorf", sorf), ("tshark", tshark), ("floor", floor)):
        print(f"{name:8} {secs:8.2f} {packets / secs:12,.0f} {size / 1e6 / secs:8.1f} {rss / 2**20:8.0f} MB")
    print(f"sorf/tshark speed: {tshark[0] / sorf[0]:.2f}x   sorf/floor speed: {floor[0] / sorf[0]:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
