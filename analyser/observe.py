"""What crossed which boundary: hosts into zones, flows into observed conduits.

Distinct addresses are few (thousands) even when flows are many (millions), so
each address is matched to its zone in Python (longest prefix, ipaddress), the
mapping is registered with DuckDB as an Arrow table, and everything else is
joined and aggregated in SQL. All values reach SQL as parameters or registered
tables; the SQL text is constant.
"""

from __future__ import annotations

import ipaddress
import os

import duckdb
import pyarrow as pa

from sensor.store import SCHEMA_VERSION

from .model import CaptureInfo, Evidence, HostPair, IntraZone, NonHostTraffic, Traffic, Window
from .zones import ZoneIndex

LIMITED_BROADCAST = ipaddress.ip_address("255.255.255.255")
TABLES = ("captures", "flows", "operations")


class DatabaseError(RuntimeError):
    """The database cannot be analysed (missing, not sorf's, another schema version)."""


def connect(path: str, opener=lambda p: duckdb.connect(p, read_only=True)) -> duckdb.DuckDBPyConnection:
    """Open a sorf database read-only (``opener`` says how); the analyser never changes it."""
    if not os.path.isfile(path):
        raise DatabaseError(f"{path}: no such database (create it with `sorf ingest ... --db {path}`)")
    try:
        con = opener(path)
    except duckdb.Error as exc:
        raise DatabaseError(f"{path}: cannot open: {exc}") from None
    try:
        check_schema(con, path)
    except DatabaseError:
        con.close()
        raise
    return con


def check_schema(con: duckdb.DuckDBPyConnection, path: str) -> None:
    """Is the connection's current database a sorf database of the version this sorf reads?"""
    names = {r[0] for r in con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_catalog = current_database()"
    ).fetchall()}  # fmt: skip
    missing = [t for t in ("meta", *TABLES) if t not in names]
    if missing:
        raise DatabaseError(f"{path}: not a sorf database (no {', '.join(missing)} table)")
    row = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    if row is None or row[0] != str(SCHEMA_VERSION):
        raise DatabaseError(
            f"{path}: schema version {row[0] if row else 'unknown'}; this sorf reads version {SCHEMA_VERSION}"
        )


def host_kind(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, index: ZoneIndex) -> str:
    """'host', or why the address is not one: multicast, broadcast, unspecified.

    Broadcast is 255.255.255.255 and the directed broadcast address of a declared
    IPv4 network of /30 or shorter (10.20.1.255 for 10.20.1.0/24)."""
    if ip.is_multicast:
        return "multicast"
    if ip.is_unspecified:
        return "unspecified"
    if ip.version == 4:
        if ip == LIMITED_BROADCAST:
            return "broadcast"
        net = index.network_of(ip)
        if net is not None and net.prefixlen <= 30 and ip == net.broadcast_address:
            return "broadcast"
    return "host"


def _ts_evidence(ev: dict | None, paths: dict[int, str]) -> Evidence | None:
    if not ev or ev.get("capture_id") is None:
        return None
    return Evidence(ev["capture_id"], ev["frame"], paths.get(ev["capture_id"]), ev.get("ts"))


# Flows summed per (initiator, responder, protocol, responder port): a site has far
# fewer of these than flows, and every later step reads them, not the flows.
# port is -1 where the transport has none.
PAIR_FLOWS = """
CREATE OR REPLACE TEMP TABLE fp AS
SELECT src_ip, dst_ip, app_protocol AS protocol, coalesce(dst_port, -1) AS port, count(*) AS flows,
       sum(packets_orig + packets_resp) AS packets, sum(bytes_orig + bytes_resp) AS bytes,
       arg_min({'capture_id': capture_id, 'frame': first_frame, 'ts': first_ts}, (first_ts, capture_id, first_frame)) AS first,
       arg_max({'capture_id': capture_id, 'frame': last_frame, 'ts': last_ts}, (last_ts, capture_id, last_frame)) AS last
FROM flows GROUP BY ALL
"""

# Request operations, likewise summed per pair and access class. Responses repeat their
# request's access class and are not counted. A carrier, an `other` operation of the
# flow's own protocol in a frame that also holds an operation of another protocol
# (EtherNet/IP SendRRData around CIP), is not counted either: the carried operation
# says what it does.
CARRIERS = """
CREATE OR REPLACE TEMP TABLE carriers AS
WITH req AS (SELECT flow_id, frame, protocol, access_class FROM operations WHERE direction = 'request')
SELECT DISTINCT o.flow_id, o.frame, o.protocol
FROM req o JOIN req r ON r.flow_id = o.flow_id AND r.frame = o.frame AND r.protocol <> o.protocol
JOIN flows f ON f.flow_id = o.flow_id AND f.app_protocol = o.protocol
WHERE o.access_class = 'other'
"""

PAIR_OPERATIONS = """
CREATE OR REPLACE TEMP TABLE fo AS
SELECT f.src_ip, f.dst_ip, f.app_protocol AS protocol, coalesce(f.dst_port, -1) AS port, o.access_class,
       count(*) AS operations, count(DISTINCT o.flow_id) AS flows,
       arg_min({'capture_id': o.capture_id, 'frame': o.frame, 'ts': o.ts}, (o.ts, o.capture_id, o.frame)) AS first,
       arg_max({'capture_id': o.capture_id, 'frame': o.frame, 'ts': o.ts}, (o.ts, o.capture_id, o.frame)) AS last
FROM operations o JOIN flows f ON f.flow_id = o.flow_id
ANTI JOIN carriers c ON c.flow_id = o.flow_id AND c.frame = o.frame AND c.protocol = o.protocol
WHERE o.direction = 'request'
GROUP BY ALL
"""

# Both tables with the zones of either end. cls: 'cross' (two different zones),
# 'intra', 'unzoned' (a host in no zone), 'nonhost' (broadcast, multicast, unspecified).
ZONED = """
CREATE OR REPLACE TEMP TABLE {name} AS
SELECT t.*, s.zone AS src_zone, d.zone AS dst_zone, s.kind AS src_kind, d.kind AS dst_kind,
       CASE WHEN s.kind <> 'host' OR d.kind <> 'host' THEN 'nonhost'
            WHEN s.zone IS NULL OR d.zone IS NULL THEN 'unzoned'
            WHEN s.zone = d.zone THEN 'intra'
            ELSE 'cross' END AS cls
FROM {table} t JOIN _hosts s ON s.ip = t.src_ip JOIN _hosts d ON d.ip = t.dst_ip
"""

GROUPS = """
SELECT src_zone, dst_zone, protocol, port, sum(flows)::BIGINT FROM zp WHERE cls = 'cross' GROUP BY ALL ORDER BY ALL
"""

GROUP_ACCESS = """
SELECT src_zone, dst_zone, protocol, port, access_class, sum(operations)::BIGINT FROM zo WHERE cls = 'cross' GROUP BY ALL
"""

# sources for TRAFFIC / PAIRS: rows (key, src_ip, dst_ip, flows, packets, bytes, first, last)
SOURCES = {
    "groups": "SELECT k.key, z.* FROM zp z JOIN _keys k USING (src_zone, dst_zone, protocol, port)",
    "operations": """
        SELECT k.key, z.src_ip, z.dst_ip, z.flows, NULL::BIGINT AS packets, NULL::BIGINT AS bytes, z.first, z.last
        FROM zo z JOIN _akeys k ON k.src_zone = z.src_zone AND k.dst_zone = z.dst_zone AND k.protocol = z.protocol
                                AND k.port = z.port AND k.access = z.access_class""",
    "unzoned": """
        SELECT z.src_ip AS key, z.* FROM zp z WHERE z.src_kind = 'host' AND z.src_zone IS NULL
        UNION ALL
        SELECT z.dst_ip AS key, z.* FROM zp z WHERE z.dst_kind = 'host' AND z.dst_zone IS NULL AND z.dst_ip <> z.src_ip""",
}

TRAFFIC = """
WITH src AS ({source})
SELECT key, sum(flows)::BIGINT, sum(packets)::BIGINT, sum(bytes)::BIGINT, min(first.ts), max(last.ts),
       arg_min(first, (first.ts, first.capture_id, first.frame)), arg_max(last, (last.ts, last.capture_id, last.frame))
FROM src GROUP BY key
"""

PAIRS = """
WITH src AS ({source})
SELECT key, src_ip, dst_ip, sum(flows)::BIGINT AS flows, count(*) OVER (PARTITION BY key) AS total
FROM src GROUP BY key, src_ip, dst_ip
QUALIFY row_number() OVER (PARTITION BY key ORDER BY sum(flows) DESC, src_ip, dst_ip) <= $max_pairs
"""

# the functions behind each access-exceeded delta (read from operations, for those classes only)
ACCESS_FUNCTIONS = """
SELECT k.key, coalesce(o.function_name || '/' || coalesce(json_extract_string(o.details, '$.subfunction_name'),
                                                          json_extract_string(o.details, '$.pi_service')), o.function_name),
       count(*)
FROM operations o JOIN flows f ON f.flow_id = o.flow_id
JOIN _hosts s ON s.ip = f.src_ip JOIN _hosts d ON d.ip = f.dst_ip
JOIN _akeys k ON k.src_zone = s.zone AND k.dst_zone = d.zone AND k.protocol = f.app_protocol
               AND k.port = coalesce(f.dst_port, -1) AND k.access = o.access_class
ANTI JOIN carriers c ON c.flow_id = o.flow_id AND c.frame = o.frame AND c.protocol = o.protocol
WHERE o.direction = 'request' AND o.access_class IN (SELECT access FROM _akeys)
GROUP BY ALL
"""

UNZONED_DETAIL = """
WITH sides AS (
    SELECT src_ip AS host, protocol, dst_zone AS peer_zone FROM zp WHERE src_kind = 'host' AND src_zone IS NULL
    UNION ALL
    SELECT dst_ip, protocol, src_zone FROM zp WHERE dst_kind = 'host' AND dst_zone IS NULL
)
SELECT host, list_sort(list_distinct(list(protocol))), list_sort(list_distinct(list(peer_zone))) FROM sides GROUP BY host
"""

UNZONED_ACCESS = """
SELECT src_ip, access_class, sum(operations)::BIGINT FROM zo WHERE src_kind = 'host' AND src_zone IS NULL GROUP BY ALL
UNION ALL
SELECT dst_ip, access_class, sum(operations)::BIGINT FROM zo
WHERE dst_kind = 'host' AND dst_zone IS NULL AND dst_ip <> src_ip GROUP BY ALL
"""

INTRA = """
SELECT src_zone, protocol, sum(flows)::BIGINT, sum(packets)::BIGINT, sum(bytes)::BIGINT, count(DISTINCT src_ip),
       count(DISTINCT dst_ip), min(first.ts), max(last.ts)
FROM zp WHERE cls = 'intra' GROUP BY ALL ORDER BY 1, 3 DESC, 2
"""

INTRA_ACCESS = (
    "SELECT src_zone, protocol, access_class, sum(operations)::BIGINT FROM zo WHERE cls = 'intra' GROUP BY ALL"
)

NON_HOST = """
SELECT src_zone, CASE WHEN dst_kind <> 'host' THEN dst_kind ELSE src_kind END AS kind, protocol,
       sum(flows)::BIGINT, sum(packets)::BIGINT, list_sort(list_distinct(list(dst_ip)))[1:$max_pairs]
FROM zp WHERE cls = 'nonhost' GROUP BY ALL ORDER BY 1 NULLS LAST, 2, 4 DESC, 3
"""

GROUP_KEY = ("src_zone", "dst_zone", "protocol", "port")
Group = tuple[str, str, str, int]  # initiator zone, responder zone, protocol, responder port (-1: none)


class Observer:
    """One analysis pass over a database (read-only connection) for one zone index."""

    def __init__(self, con: duckdb.DuckDBPyConnection, index: ZoneIndex, max_pairs: int = 100):
        self.con = con
        self.index = index
        self.max_pairs = max_pairs
        self.paths: dict[int, str] = {}
        self.hosts: dict[str, tuple[str, str | None]] = {}  # ip -> (kind, zone)
        self._access_keys = False

    # --- window and hosts ------------------------------------------------------------------------------------------

    def window(self) -> Window:
        rows = self.con.execute(
            "SELECT capture_id, path, sensor, first_ts, last_ts, packets, status FROM captures ORDER BY capture_id"
        ).fetchall()
        captures = [CaptureInfo(*r) for r in rows]
        self.paths = {c.capture_id: c.path for c in captures}
        firsts = [c.first_ts for c in captures if c.first_ts is not None]
        lasts = [c.last_ts for c in captures if c.last_ts is not None]
        sensors = sorted({c.sensor for c in captures if c.sensor})
        flows = self.con.execute("SELECT count(*) FROM flows").fetchone()[0]
        return Window(captures, min(firsts, default=None), max(lasts, default=None), sensors, flows)

    def assign_hosts(self) -> dict[str, tuple[str, str | None]]:
        """Every address in flows -> (kind, zone); registers them as the `_hosts` table and
        builds the per-pair tables with their zones (zp: flows, zo: request operations)."""
        self.con.execute(PAIR_FLOWS)
        ips = [r[0] for r in self.con.execute("SELECT src_ip FROM fp UNION SELECT dst_ip FROM fp").fetchall()]
        kinds, zones = [], []
        for text in ips:
            try:
                ip = ipaddress.ip_address(text)
            except ValueError:  # not written by sorf; keep it, in no zone
                kinds.append("host")
                zones.append(None)
                continue
            kind = host_kind(ip, self.index)
            kinds.append(kind)
            zones.append(self.index.lookup(ip) if kind == "host" else None)
        self.hosts = {ip: (k, z) for ip, k, z in zip(ips, kinds, zones)}
        table = pa.table(
            {
                "ip": pa.array(ips, pa.string()),
                "zone": pa.array(zones, pa.string()),
                "kind": pa.array(kinds, pa.string()),
            }
        )
        self.con.register("_hosts", table)
        self.con.execute(CARRIERS)
        self.con.execute(PAIR_OPERATIONS)
        self.con.execute(ZONED.format(name="zp", table="fp"))
        self.con.execute(ZONED.format(name="zo", table="fo"))
        return self.hosts

    # --- cross-zone groups -----------------------------------------------------------------------------------------

    def groups(self) -> list[tuple[Group, int]]:
        """((initiator zone, responder zone, protocol, responder port), flows) per cross-zone group."""
        return [((s, d, p, port), n) for s, d, p, port, n in self.con.execute(GROUPS).fetchall()]

    def group_access(self) -> dict[Group, dict[str, int]]:
        """Request operations per group, by access class."""
        out: dict[Group, dict[str, int]] = {}
        for s, d, p, port, access, n in self.con.execute(GROUP_ACCESS).fetchall():
            out.setdefault((s, d, p, port), {})[access] = n
        return out

    # --- aggregation by key ------------------------------------------------------------------------------------------

    def set_group_keys(self, keys: list[tuple[Group, str]]) -> None:
        """Which group belongs to which key (a delta id, an observed conduit), for source 'groups'."""
        cols = list(zip(*[(*g, k) for g, k in keys])) or [(), (), (), (), ()]
        self.con.register("_keys", pa.table({
            "src_zone": pa.array(cols[0], pa.string()), "dst_zone": pa.array(cols[1], pa.string()),
            "protocol": pa.array(cols[2], pa.string()), "port": pa.array(cols[3], pa.int32()),
            "key": pa.array(cols[4], pa.string()),
        }))  # fmt: skip

    def set_access_keys(self, keys: list[tuple[Group, str, str]]) -> None:
        """(group, access class) -> key, for source 'operations'."""
        cols = list(zip(*[(*g, a, k) for g, a, k in keys])) or [(), (), (), (), (), ()]
        self.con.register("_akeys", pa.table({
            "src_zone": pa.array(cols[0], pa.string()), "dst_zone": pa.array(cols[1], pa.string()),
            "protocol": pa.array(cols[2], pa.string()), "port": pa.array(cols[3], pa.int32()),
            "access": pa.array(cols[4], pa.string()), "key": pa.array(cols[5], pa.string()),
        }))  # fmt: skip
        self._access_keys = bool(keys)

    def traffic(self, source: str) -> dict[str, Traffic]:
        """Counts, time range, first/last evidence and top host pairs per key of a source."""
        sql = SOURCES[source]
        out: dict[str, Traffic] = {}
        for key, flows, packets, nbytes, first_ts, last_ts, first, last in self.con.execute(
            TRAFFIC.format(source=sql)
        ).fetchall():
            out[key] = Traffic(
                flows,
                packets,
                nbytes,
                first_ts,
                last_ts,
                _ts_evidence(first, self.paths),
                _ts_evidence(last, self.paths),
            )
        limit = self.max_pairs if self.max_pairs > 0 else 2**62
        for key, src, dst, flows, total in self.con.execute(PAIRS.format(source=sql), {"max_pairs": limit}).fetchall():
            t = out[key]
            t.host_pairs.append(HostPair(src, dst, flows))
            t.host_pairs_total = total
        for t in out.values():
            t.host_pairs.sort(key=lambda p: (-p.flows, _ip_key(p.initiator), _ip_key(p.responder)))
        return out

    def access_functions(self) -> dict[str, dict[str, int]]:
        """Function names (with the sub-function, if any) of the operations behind each access key."""
        out: dict[str, dict[str, int]] = {}
        if not self._access_keys:
            return out
        for key, name, n in self.con.execute(ACCESS_FUNCTIONS).fetchall():
            out.setdefault(key, {})[name] = n
        return out

    # --- hosts in no zone -------------------------------------------------------------------------------------------

    def unzoned(self) -> dict[str, tuple[list[str], list[str], dict[str, int]]]:
        """Host in no zone -> (protocols, peer zones, request operations by access class)."""
        out = {h: (protocols, peers, {}) for h, protocols, peers in self.con.execute(UNZONED_DETAIL).fetchall()}
        for host, access, n in self.con.execute(UNZONED_ACCESS).fetchall():
            ops = out[host][2]
            ops[access] = ops.get(access, 0) + n
        return out

    # --- summaries -----------------------------------------------------------------------------------------------------

    def intra_zone(self) -> list[IntraZone]:
        ops: dict[tuple[str, str], dict[str, int]] = {}
        for zone, protocol, access, n in self.con.execute(INTRA_ACCESS).fetchall():
            ops.setdefault((zone, protocol), {})[access] = n
        return [
            IntraZone(
                zone,
                protocol,
                flows,
                packets,
                nbytes,
                inits,
                resps,
                dict(sorted(ops.get((zone, protocol), {}).items())),
                first,
                last,
            )
            for zone, protocol, flows, packets, nbytes, inits, resps, first, last in self.con.execute(INTRA).fetchall()
        ]

    def non_host(self) -> list[NonHostTraffic]:
        limit = self.max_pairs if self.max_pairs > 0 else 2**62
        return [
            NonHostTraffic(zone, kind, protocol, flows, packets, sorted(dsts, key=_ip_key))
            for zone, kind, protocol, flows, packets, dsts in self.con.execute(
                NON_HOST, {"max_pairs": limit}
            ).fetchall()
        ]


def _ip_key(text: str) -> tuple:
    try:
        ip = ipaddress.ip_address(text)
        return (ip.version, int(ip))
    except ValueError:
        return (9, text)
