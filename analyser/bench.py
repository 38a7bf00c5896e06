"""`make bench`: time `sorf analyse`, and `sorf serve`'s answers, on a large synthetic site.

The database is generated directly in SQL (range()-based inserts into flows and
operations, not via pcap), with a zone file to match: by default 500 zones (50 of
them nested inside others), 2,000 conduits and 1,000,000 flows, most of them
conforming and a few of every kind of delta. `sorf analyse` then runs as its own
process and its wall time and peak RSS are printed. Then `sorf serve` runs on the same
database: the time to its first answer (the first analysis), and the latency of
GET /api/v1/deltas and of filtered /flows and /operations pages, over one keep-alive
connection, beside that of /api/v1/health (a constant answer: the floor of the stack).

    python -m analyser.bench [--flows N] [--zones N] [--conduits N] [--keep DIR]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import duckdb
import yaml

from .observe import create_schema

NESTED_EVERY = 10  # one zone in ten is a /28 nested inside another zone's /24
HOSTS = 20  # hosts per /24 zone; a nested /28 zone has 12 (.129-.140)
CONDUITS_PER_ZONE = 4  # zone i -> i+1 .. i+4


def layout(zones: int) -> list[tuple[str, str, int]]:
    """(name, network, parent zone or -1) per zone: /24s, with every tenth zone a /28 inside an earlier /24."""
    nested = zones // NESTED_EVERY
    top = [(f"z{i:04d}", f"10.{i // 256}.{i % 256}.0/24", -1) for i in range(zones - nested)]
    return top + [(f"n{j:04d}", f"10.{j // 256}.{j % 256}.128/28", j) for j in range(nested)]


CONSEQUENCES = ("negligible", "minor", "moderate", "major", "catastrophic")


def zone_file(zones: int, conduits: int) -> dict:
    zs = layout(zones)
    doc: dict[str, Any] = {"site": f"synthetic site: {zones} zones, {conduits} conduits", "zones": [], "conduits": []}
    for i, (name, net, _parent) in enumerate(zs):
        doc["zones"].append({"name": name, "networks": [net], "security_level": 1 + i % 4,
                             "consequence": CONSEQUENCES[i % 5], "contact": i == 0})  # fmt: skip
    n = len(zs)
    for k in range(conduits):
        i, step = (
            k // CONDUITS_PER_ZONE % n,
            1 + k % CONDUITS_PER_ZONE + CONDUITS_PER_ZONE * (k // (CONDUITS_PER_ZONE * n)),
        )
        doc["conduits"].append({
            "name": f"c{k:05d}", "from": zs[i][0], "to": zs[(i + step) % n][0],
            "allow": [{"protocol": "modbus", "access": ["read", "write"]}, {"protocol": "enip", "access": ["read"]},
                      {"protocol": "https", "ports": [443]}],
        })  # fmt: skip
    return doc


# Per flow i: kind = i % 100 decides what it is; h1, h2 pick zones, hosts and protocol.
#  0-54 intra-zone; 55-93 along a conduit (z -> z+1..4), 93 from every 50th zone with ssh, which no conduit allows;
#  94-96 reversed (z+1 -> z, from 20 zones);
#  97-98 undeclared (z -> z+250, from 10 zones); 99 from an unzoned host (192.168.x.y).
# Protocol: modbus 502 (70%), enip 44818 (20%), https 443 (10%); intra-zone flows also s7comm, dns.
FLOWS = """
INSERT INTO flows
WITH r AS (
    SELECT i, hash(i) AS h1, hash(i * 7 + 3) AS h2, i % 100 AS kind FROM range($flows) t(i)
),
z AS (
    SELECT *,
        CASE WHEN kind BETWEEN 94 AND 96 THEN (h1 % 20) * 25 + 1
             WHEN kind BETWEEN 97 AND 98 THEN (h1 % 10) * 50
             ELSE h1 % $zones END AS sz
    FROM r
),
d AS (
    SELECT *,
        CASE WHEN kind < 55 THEN sz
             WHEN kind < 94 THEN (sz + 1 + h2 % 4) % $zones
             WHEN kind < 97 THEN (sz + $zones - 1) % $zones
             WHEN kind < 99 THEN (sz + 250) % $zones
             ELSE h2 % $zones END AS dz,
        CASE WHEN h2 % 10 < 7 THEN 'modbus' WHEN h2 % 10 < 9 THEN 'enip' ELSE 'https' END AS conduit_proto,
        CASE h2 % 5 WHEN 0 THEN 's7comm' WHEN 1 THEN 'dns' ELSE 'modbus' END AS intra_proto
    FROM z
),
p AS (
    SELECT *, CASE WHEN kind < 55 THEN intra_proto WHEN kind = 93 AND sz % 50 = 0 THEN 'ssh' ELSE conduit_proto END
        AS proto
    FROM d
)
SELECT
    (1 + i % 10) * 4294967296 + i AS flow_id, 1 + i % 10 AS capture_id, 0 AS vlan,
    CASE WHEN proto = 'dns' THEN 'udp' ELSE 'tcp' END AS transport,
    CASE WHEN kind = 99 THEN '192.168.' || (h1 % 4) || '.' || (1 + h1 % 50)
         WHEN sz < $top THEN '10.' || (sz // 256) || '.' || (sz % 256) || '.' || (1 + h1 % $hosts)
         ELSE '10.' || ((sz - $top) // 256) || '.' || ((sz - $top) % 256) || '.' || (129 + h1 % 12) END AS src_ip,
    49152 + i % 16384 AS src_port,
    CASE WHEN dz < $top THEN '10.' || (dz // 256) || '.' || (dz % 256) || '.' || (1 + h2 % $hosts)
         ELSE '10.' || ((dz - $top) // 256) || '.' || ((dz - $top) % 256) || '.' || (129 + h2 % 12) END AS dst_ip,
    CASE proto WHEN 'modbus' THEN 502 WHEN 'enip' THEN 44818 WHEN 'https' THEN 443 WHEN 's7comm' THEN 102
        WHEN 'ssh' THEN 22 ELSE 53 END AS dst_port,
    NULL AS src_mac, NULL AS dst_mac, proto AS app_protocol,
    6 AS packets_orig, 5 AS packets_resp, 600 AS bytes_orig, 500 AS bytes_resp,
    TIMESTAMP '2026-01-05 00:00:00' + to_microseconds(i::BIGINT * 50000) AS first_ts,
    TIMESTAMP '2026-01-05 00:00:01' + to_microseconds(i::BIGINT * 50000) AS last_ts,
    (i // 10) * 11 + 1 AS first_frame, (i // 10) * 11 + 11 AS last_frame,
    true AS handshake, false AS reset, 'ShADadFf' AS flags
FROM p
"""

# Per Modbus flow: two reads (request, response); one flow in 200 also writes, one in
# 5,000 stops the PLC (UMAS STOP_PLC, control), both on conduit flows. Per EtherNet/IP flow: a SendRRData
# carrier and the CIP read it carries, in the same frame.
OPERATIONS = """
INSERT INTO operations (capture_id, frame, ts, flow_id, protocol, direction, function_code, function_name,
                        access_class, transaction_id, unit_id, details)
SELECT f.capture_id, f.first_frame + 3 + n, f.first_ts + to_microseconds(n * 1000), f.flow_id, 'modbus',
       CASE WHEN n % 2 = 0 THEN 'request' ELSE 'response' END,
       CASE WHEN n < 4 THEN 3 WHEN f.flow_id % 4294967296 % 5000 = 77 THEN 90 ELSE 6 END,
       CASE WHEN n < 4 THEN 'READ_HOLDING_REGISTERS' WHEN f.flow_id % 4294967296 % 5000 = 77 THEN 'UMAS'
            ELSE 'WRITE_SINGLE_REGISTER' END,
       CASE WHEN n < 4 THEN 'read' WHEN f.flow_id % 4294967296 % 5000 = 77 THEN 'control' ELSE 'write' END,
       n // 2, 1,
       CASE WHEN n >= 4 AND f.flow_id % 4294967296 % 5000 = 77
            THEN '{"subfunction": 65, "subfunction_name": "STOP_PLC"}' END
FROM flows f, range(6) t(n)
WHERE f.app_protocol = 'modbus' AND (n < 4 OR f.flow_id % 4294967296 % 200 = 60 OR f.flow_id % 4294967296 % 5000 = 77);
INSERT INTO operations (capture_id, frame, ts, flow_id, protocol, direction, function_code, function_name, access_class)
SELECT f.capture_id, f.first_frame + 3 + n // 2, f.first_ts + to_microseconds(n * 1000), f.flow_id,
       CASE WHEN n % 2 = 0 THEN 'enip' ELSE 'cip' END, CASE WHEN n < 2 THEN 'request' ELSE 'response' END,
       CASE WHEN n % 2 = 0 THEN 111 ELSE 76 END, CASE WHEN n % 2 = 0 THEN 'SEND_RR_DATA' ELSE 'READ_TAG' END,
       CASE WHEN n % 2 = 0 THEN 'other' ELSE 'read' END
FROM flows f, range(4) t(n)
WHERE f.app_protocol = 'enip';
"""


def generate(directory: Path, flows: int, zones: int, conduits: int) -> tuple[Path, Path, int]:
    """Write bench.duckdb and zones.yaml into directory; returns their paths and the operation count."""
    db, zpath = directory / "bench.duckdb", directory / "zones.yaml"
    for p in (db, Path(str(db) + ".wal")):
        p.unlink(missing_ok=True)
    zpath.write_text(yaml.safe_dump(zone_file(zones, conduits), sort_keys=False, default_flow_style=None))
    con = duckdb.connect(str(db))
    create_schema(con)
    con.execute(
        "INSERT INTO captures (capture_id, path, sha256, bytes, format, packets, first_ts, last_ts, sensor, status) "
        "SELECT i, 'synthetic-' || i || '.pcap', 'synthetic' || i, 0, 'pcap', 0, TIMESTAMP '2026-01-05 00:00:00', "
        "TIMESTAMP '2026-01-05 00:00:00' + to_microseconds($flows::BIGINT * 50000), 'bench', 'ok' "
        "FROM range(1, 11) t(i)",
        {"flows": flows},
    )
    top = zones - zones // NESTED_EVERY
    con.execute(FLOWS, {"flows": flows, "zones": zones, "top": top, "hosts": HOSTS})
    con.execute(OPERATIONS)
    ((ops,),) = con.execute("SELECT count(*) FROM operations").fetchall()
    con.close()
    return db, zpath, ops


def timed(argv: list[str], out_path: str) -> tuple[float, int, int]:
    """Wall seconds, peak RSS (bytes) and exit status of one child process."""
    start = time.perf_counter()
    with open(out_path, "wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if code not in (0, 3):
        error = proc.stderr.read().decode() if proc.stderr is not None else ""  # a pipe: stderr=PIPE
        raise SystemExit(f"bench: {' '.join(argv)} failed with status {code}: {error}")
    return elapsed, usage.ru_maxrss * 1024, code


API_REQUESTS = 200  # per endpoint
API_TARGET_MS = 100  # p95, docs/api.md
API_PATHS = {  # label -> path; z0003 is a /24 zone with conduits, 10.0.3.5 a host in it
    "health (floor)": "/api/v1/health",
    "deltas": "/api/v1/deltas",
    "deltas, filtered": "/api/v1/deltas?severity=high&severity=critical&zone=z0003",
    "flows, filtered": "/api/v1/flows?zone=z0003&protocol=modbus&limit=100",
    "flows, by host": "/api/v1/flows?host=10.0.3.5&limit=100&offset=100",
    "operations, filtered": "/api/v1/operations?access=write&zone=z0003&limit=100",
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_ready(proc: subprocess.Popen, port: int, timeout_s: float = 300) -> float:
    start = time.perf_counter()
    while time.perf_counter() - start < timeout_s:
        if proc.poll() is not None:
            raise SystemExit(f"bench: sorf serve exited with status {proc.returncode}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/api/v1/health")
            if conn.getresponse().status == 200:
                return time.perf_counter() - start
        except OSError:
            time.sleep(0.1)
    raise SystemExit("bench: sorf serve did not answer")


def _latencies(port: int, path: str) -> list[float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    out = []
    for _ in range(API_REQUESTS + 5):  # the first five warm the connection and caches; not counted
        start = time.perf_counter()
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            raise SystemExit(f"bench: GET {path}: {response.status}")
        out.append(time.perf_counter() - start)
    conn.close()
    return out[5:]


def bench_api(db: Path, zones: Path) -> None:
    """`sorf serve` on the bench database: first analysis, then latency per endpoint."""
    port = _free_port()
    argv = [sys.executable, "-m", "sorf", "serve", "--db", str(db), "--zones", str(zones), "--port", str(port)]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        ready = _wait_ready(proc, port)
        print(f"sorf serve: first answer after {ready:.1f} s (snapshot and first analysis)")
        print(f"{'GET':24} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'p95 / floor':>12}")
        floor = None
        for label, path in API_PATHS.items():
            times = sorted(_latencies(port, path))
            p50, p95 = statistics.median(times) * 1e3, times[int(0.95 * len(times)) - 1] * 1e3
            floor = floor or p95
            flag = "" if label.startswith("health") or p95 < API_TARGET_MS else f"  over the {API_TARGET_MS} ms target"
            print(f"{label:24} {p50:8.1f} {p95:8.1f} {times[-1] * 1e3:8.1f} {p95 / floor:11.1f}x{flag}")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m analyser.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--flows", type=int, default=1_000_000)
    parser.add_argument("--zones", type=int, default=500)
    parser.add_argument("--conduits", type=int, default=2000)
    parser.add_argument("--keep", metavar="DIR", help="write the database and zone file here and keep them")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(args.keep or tmp)
        directory.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        db, zones, ops = generate(directory, args.flows, args.zones, args.conduits)
        gen = time.perf_counter() - start
        print(
            f"generated {args.flows:,} flows, {ops:,} operations, {args.zones} zones, {args.conduits:,} conduits "
            f"in {gen:.1f} s"
        )
        results = {}
        for fmt in ("json", "table"):
            out = str(directory / f"analysis.{fmt}")
            results[fmt] = timed([sys.executable, "-m", "sorf", "analyse", "--db", str(db), "--zones", str(zones),
                                  "--format", fmt], out)  # fmt: skip
        analysis = json.loads((directory / "analysis.json").read_text())
        summary(analysis, results, args.flows)
        bench_api(db, zones)
    return 0


def summary(analysis: dict, results: dict, flows: int) -> None:
    s = analysis["summary"]
    print(f"deltas: {s['deltas']:,} ({', '.join(f'{k} {v:,}' for k, v in s['by_category'].items() if v)}); "
          f"{s['crossings_observed']:,} observed crossings, {s['hosts']:,} hosts")  # fmt: skip
    print(f"{'sorf analyse':16} {'seconds':>8} {'flows/s':>12} {'peak RSS':>10}")
    for fmt, (secs, rss, _code) in results.items():
        print(f"{'--format ' + fmt:16} {secs:8.2f} {flows / secs:12,.0f} {rss / 2**20:7.0f} MB")


if __name__ == "__main__":
    sys.exit(main())
