"""`make bench`: many flows and many hosts (issue 12). Ingest and analyse a SYN-scan flood.

The flood is captures/flood-2m.pcap by default (2,000,000 one-packet TCP flows from as
many sources to one PLC, 10.20.2.10:502), made by captures/make_flood.py when missing.
`sorf ingest` and then `sorf analyse --format table` (against captures/demo-zones.yaml)
run as their own processes; each one's wall time and peak RSS (wait4) is printed, with
what the ingest kept (flows, assets) and how long the table is. One run each: this is a
measurement, never a timed test; targets are printed beside the numbers, not asserted.

    python -m sensor.floodbench [FLOOD.pcap ...]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from .bench import MB, compile_sorf, timed, verdict, warm

CAPTURES = Path(__file__).resolve().parent.parent / "captures"
ZONES = CAPTURES / "demo-zones.yaml"
GENERATED = {CAPTURES / "flood-2m.pcap": ["--flows", "2000000"],
             CAPTURES / "flood-200k-x10.pcap": ["--sources", "200000", "--ports", "10"]}  # fmt: skip
TARGET_INGEST_RSS = 300 * MB
TARGET_ANALYSE_RSS = 500 * MB


def kept(db: str) -> tuple[int, int, int]:
    """(flows, distinct flow sources, assets) in the database: did the ingest keep everything?"""
    import duckdb  # here, in a child: the measured processes fork from a small parent

    with duckdb.connect(db, read_only=True) as con:
        ((flows, sources),) = con.execute("SELECT count(*), count(DISTINCT src_ip) FROM flows").fetchall()
        ((assets,),) = con.execute("SELECT count(*) FROM assets").fetchall()
    return flows, sources, assets


def measure(path: Path) -> bool:
    with tempfile.TemporaryDirectory() as tmp:
        db = os.path.join(tmp, "flood.duckdb")
        secs, rss, _ = timed([sys.executable, "-m", "sorf", "ingest", str(path), "--db", db])
        _, _, wrote = timed([sys.executable, "-m", "sensor.floodbench", "--kept", db], True)
        flows, sources, assets = (int(x) for x in wrote.split())
        print(f"  ingest   {secs:7.2f} s  peak RSS {rss / MB:5.0f} MB  kept {flows:,} flows from {sources:,} sources, "
              f"{assets:,} assets  (target: at most {TARGET_INGEST_RSS / MB:.0f} MB: "
              f"{verdict(rss <= TARGET_INGEST_RSS)})")  # fmt: skip
        argv = [sys.executable, "-m", "sorf", "analyse", "--db", db, "--zones", str(ZONES), "--format", "table"]
        asecs, arss, table = timed(argv, True)
        print(f"  analyse  {asecs:7.2f} s  peak RSS {arss / MB:5.0f} MB  table of {len(table.splitlines()):,} lines  "
              f"(target: at most {TARGET_ANALYSE_RSS / MB:.0f} MB: {verdict(arss <= TARGET_ANALYSE_RSS)}; "
              "time: about that of the 1M-flow analyser bench)")  # fmt: skip
        return rss <= TARGET_INGEST_RSS and arss <= TARGET_ANALYSE_RSS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sensor.floodbench", description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", help="flood captures (default: captures/flood-2m.pcap)")
    parser.add_argument("--kept", metavar="DB", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.kept:
        print(*kept(args.kept))
        return 0
    paths = [Path(p).resolve() for p in args.paths] or [CAPTURES / "flood-2m.pcap"]  # resolved: GENERATED's keys
    for path in paths:
        if not path.exists() and path in GENERATED:
            print(f"generating {path.name} ...", flush=True)
            cmd = [sys.executable, str(CAPTURES / "make_flood.py"), *GENERATED[path], str(path)]
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    compile_sorf()
    for path in paths:
        warm([str(path)])
        print(f"{path.name} ({path.stat().st_size / MB:.0f} MB): sorf ingest, then sorf analyse --format table")
        measure(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
