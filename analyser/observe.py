"""What crossed which boundary: hosts into zones, flows into observed conduits.

Distinct addresses are usually few (thousands) even when flows are many (millions),
but a scan brings one per flow: each IPv4 address is matched to its zone in SQL, all
at once (longest prefix; anything else one by one in Python with ipaddress), into
the `_hosts` table, and everything else is
joined and aggregated in SQL. All values reach SQL as parameters or registered
tables; the SQL text is constant.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping

import duckdb
import pyarrow as pa

from sensor import export
from sensor.schema import DDL, SCHEMA_VERSION

from .model import CaptureInfo, Evidence, HostPair, IntraZone, NonHostTraffic, SensorDrops, Traffic, Window
from .zones import ZoneIndex

LIMITED_BROADCAST = ipaddress.ip_address("255.255.255.255")
TABLES = ("captures", "flows", "operations")


class DatabaseError(RuntimeError):
    """The database cannot be analysed (missing, not sorf's, another schema version)."""


def connect(path: str, opener=lambda p: duckdb.connect(p, read_only=True)) -> duckdb.DuckDBPyConnection:
    """Open a sorf database read-only (``opener`` says how); the analyser never changes it."""
    if os.path.isdir(path):
        raise DatabaseError(f"{path}: a folder, not a database; give --db the database file (FILE.duckdb)")
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


def connect_export(location: str, config: dict | None = None) -> duckdb.DuckDBPyConnection:
    """Open a `sorf export` folder (or s3://... location) as one sorf database: its `site` catalog holds views
    over the Parquet files (sensor/export.py says how capture and flow ids are renumbered)."""
    try:
        con = export.open_export(location, config or {})
    except export.ExportError as exc:
        raise DatabaseError(str(exc)) from None
    try:
        check_schema(con, location)
    except DatabaseError:
        con.close()
        raise
    return con


def has_sensor_stats(con: duckdb.DuckDBPyConnection) -> bool:
    """Did a live sensor write this database? (The table came with `sorf sense`; older databases lack it.)"""
    ((has,),) = con.execute(
        "SELECT count(*) FROM information_schema.tables "
        "WHERE table_catalog = current_database() AND table_name = 'sensor_stats'"
    ).fetchall()
    return bool(has)


def live_sensors(con: duckdb.DuckDBPyConnection) -> list[dict]:
    """Each live sensor's last interval: when, its flows open, its memory (for the API's health)."""
    if not has_sensor_stats(con):
        return []
    rows = con.execute(
        "SELECT sensor, max(ts), arg_max(active_flows, ts), arg_max(rss_bytes, ts) FROM sensor_stats "
        "GROUP BY sensor ORDER BY sensor"
    ).fetchall()
    return [
        {"sensor": s, "last_interval_at": ts, "active_flows": flows, "rss_bytes": rss} for s, ts, flows, rss in rows
    ]


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


def create_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Make the connection's current database an empty sorf database of the version check_schema reads."""
    con.execute(DDL)
    con.execute("INSERT INTO meta VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)])


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


def _ts_evidence(ev: dict | None, paths: dict[int, str | None]) -> Evidence | None:
    if not ev or ev.get("capture_id") is None:
        return None
    return Evidence(ev["capture_id"], ev["frame"], paths.get(ev["capture_id"]), ev.get("ts"))


# Flows summed per (initiator, responder, protocol, responder port): a site has far
# fewer of these than flows, and every later step reads them, not the flows.
# port is -1 where the transport has none. The first and last flow are found by min and max of one
# HUGEINT (time in µs, capture_id, frame): arg_min over structs held ~300 bytes a group (a scan has
# a group per flow), this 32.
PAIR_FLOWS = """
CREATE OR REPLACE TEMP TABLE fp AS
WITH g AS (
    SELECT src_ip, dst_ip, app_protocol AS protocol, coalesce(dst_port, -1) AS port, count(*) AS flows,
           sum(packets_orig + packets_resp) AS packets, sum(bytes_orig + bytes_resp) AS bytes,
           min((epoch_us(first_ts)::HUGEINT << 64) | (capture_id::HUGEINT << 40) | first_frame) AS f,
           max((epoch_us(last_ts)::HUGEINT << 64) | (capture_id::HUGEINT << 40) | last_frame) AS l
    FROM flows GROUP BY ALL
)
SELECT src_ip, dst_ip, protocol, port, flows, packets, bytes,
       {'capture_id': ((f >> 40) & 16777215)::INTEGER, 'frame': (f & 1099511627775)::BIGINT,
        'ts': make_timestamp((f >> 64)::BIGINT)} AS first,
       {'capture_id': ((l >> 40) & 16777215)::INTEGER, 'frame': (l & 1099511627775)::BIGINT,
        'ts': make_timestamp((l >> 64)::BIGINT)} AS last
FROM g
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
SELECT src_zone, dst_zone, protocol, port, access_class, sum(operations)::BIGINT
FROM zo WHERE cls = 'cross' GROUP BY ALL
"""

# sources for TRAFFIC / PAIRS: rows (key, src_ip, dst_ip, flows, packets, bytes, first, last)
SOURCES = {
    "groups": "SELECT k.key, z.* FROM zp z JOIN _keys k USING (src_zone, dst_zone, protocol, port)",
    "operations": """
        SELECT k.key, z.src_ip, z.dst_ip, z.flows, NULL::BIGINT AS packets, NULL::BIGINT AS bytes, z.first, z.last
        FROM zo z JOIN _akeys k ON k.src_zone = z.src_zone AND k.dst_zone = z.dst_zone AND k.protocol = z.protocol
                                AND k.port = z.port AND k.access = z.access_class""",
    "unzoned": """
        SELECT z.src_ip AS key, z.* FROM zp z SEMI JOIN _uz ON _uz.host = z.src_ip
        WHERE z.src_kind = 'host' AND z.src_zone IS NULL
        UNION ALL
        SELECT z.dst_ip AS key, z.* FROM zp z SEMI JOIN _uz ON _uz.host = z.dst_ip
        WHERE z.dst_kind = 'host' AND z.dst_zone IS NULL AND z.dst_ip <> z.src_ip""",
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
SELECT k.key,
       coalesce(o.function_name || '/' || coalesce(json_extract_string(o.details, '$.subfunction_name'),
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

# Hosts in no zone: a scan brings millions, so the per-host queries below read only `_uz`, the
# UNZONED_TOP hosts in most flows (deltas.UNZONED_DELTAS of them).
UNZONED_SIDES = """
SELECT src_ip AS host, protocol, dst_zone AS peer_zone, flows FROM zp WHERE src_kind = 'host' AND src_zone IS NULL
UNION ALL
SELECT dst_ip, protocol, src_zone, flows FROM zp WHERE dst_kind = 'host' AND dst_zone IS NULL
"""

UNZONED_ALL = (
    "CREATE OR REPLACE TEMP TABLE _uz AS SELECT host, sum(flows) AS flows FROM (" + UNZONED_SIDES + ") GROUP BY host"
)
UNZONED_TOP = "CREATE OR REPLACE TEMP TABLE _uz AS SELECT * FROM _uz ORDER BY flows DESC, host LIMIT $limit"

UNZONED_DETAIL = (
    """
WITH sides AS ("""
    + UNZONED_SIDES
    + """)
SELECT host, list_sort(list_distinct(list(protocol))), list_sort(list_distinct(list(peer_zone)))
FROM sides SEMI JOIN _uz USING (host) GROUP BY host
"""
)

UNZONED_ACCESS = """
SELECT src_ip, access_class, sum(operations)::BIGINT FROM zo SEMI JOIN _uz ON _uz.host = zo.src_ip
WHERE src_kind = 'host' AND src_zone IS NULL GROUP BY ALL
UNION ALL
SELECT dst_ip, access_class, sum(operations)::BIGINT FROM zo SEMI JOIN _uz ON _uz.host = zo.dst_ip
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
        self.paths: dict[int, str | None] = {}
        self.hosts: Hosts = Hosts(None)  # ip -> (kind, zone), once assign_hosts has run
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
        ((flows,),) = self.con.execute("SELECT count(*) FROM flows").fetchall()
        window = Window(captures, min(firsts, default=None), max(lasts, default=None), sensors, flows)
        window.drops = self.drops()
        return window

    def drops(self) -> list[SensorDrops]:
        """Each live sensor's packets and drops, summed over its sensor_stats intervals (none in a database that
        only `sorf ingest` wrote, or one written before the table existed)."""
        if not has_sensor_stats(self.con):
            return []
        rows = self.con.execute(
            "SELECT sensor, sum(packets)::BIGINT, sum(kernel_drops)::BIGINT, sum(iface_drops)::BIGINT, min(since), "
            "max(ts) FROM sensor_stats GROUP BY sensor ORDER BY sensor"
        ).fetchall()
        return [SensorDrops(*row) for row in rows]

    def assign_hosts(self) -> Hosts:
        """Every address in flows -> (kind, zone); registers them as the `_hosts` table and
        builds the per-pair tables with their zones (zp: flows, zo: request operations)."""
        self.con.execute(PAIR_FLOWS)
        self.con.execute(HOST_IPS, {"v4": _IPV4})
        others = self.con.execute("SELECT ip FROM _ips WHERE addr IS NULL").fetchall()
        self.con.register("_hosts_other", _hosts_other([r[0] for r in others], self.index))
        self.con.register("_nets", _nets(self.index))
        self.con.execute(HOSTS_V4)
        self.con.execute("DROP TABLE _ips")
        self.hosts = Hosts(self.con)
        self.con.execute(CARRIERS)
        self.con.execute(PAIR_OPERATIONS)
        self.con.execute(ZONED.format(name="zp", table="fp"))
        self.con.execute("DROP TABLE fp")  # zp holds it all
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
        cols = list(zip(*[(*g, k) for g, k in keys], strict=True)) or [(), (), (), (), ()]
        self.con.register("_keys", pa.table({
            "src_zone": pa.array(cols[0], pa.string()), "dst_zone": pa.array(cols[1], pa.string()),
            "protocol": pa.array(cols[2], pa.string()), "port": pa.array(cols[3], pa.int32()),
            "key": pa.array(cols[4], pa.string()),
        }))  # fmt: skip

    def set_access_keys(self, keys: list[tuple[Group, str, str]]) -> None:
        """(group, access class) -> key, for source 'operations'."""
        cols = list(zip(*[(*g, a, k) for g, a, k in keys], strict=True)) or [(), (), (), (), (), ()]
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

    def unzoned_hosts(self, limit: int) -> int:
        """Hosts in no zone, in all; ``unzoned`` and traffic('unzoned') then describe at most ``limit`` of
        them (`_uz`): those in most flows, then by address text."""
        self.con.execute(UNZONED_ALL)
        ((total,),) = self.con.execute("SELECT count(*) FROM _uz").fetchall()
        if total > limit >= 0:
            self.con.execute(UNZONED_TOP, {"limit": limit})
        return total

    def unzoned(self) -> dict[str, tuple[list[str], list[str], dict[str, int]]]:
        """Host in no zone (of `_uz`, unzoned_hosts) -> (protocols, peer zones, request operations by access class)."""
        out: dict[str, tuple[list[str], list[str], dict[str, int]]] = {
            h: (protocols, peers, {}) for h, protocols, peers in self.con.execute(UNZONED_DETAIL).fetchall()
        }
        for host, access, n in self.con.execute(UNZONED_ACCESS).fetchall():
            ops = out[host][2]
            ops[access] = ops.get(access, 0) + n
        return out

    # --- summaries ----------------------------------------------------------------------------------------------------

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


class Hosts(Mapping):
    """ip -> (kind, zone) of every address in flows: the `_hosts` table (millions of addresses in a scan, so
    no Python object per address unless someone iterates or looks one up). Results are fetched to the end
    (fetchall): a half-read one keeps DuckDB from registering a table on the connection (serve.py)."""

    def __init__(self, con: duckdb.DuckDBPyConnection | None):
        self.con = con
        self._rows: dict[str, tuple[str, str | None]] | None = None

    def _all(self) -> dict[str, tuple[str, str | None]]:
        if self._rows is None:
            rows = self.con.execute("SELECT * FROM _hosts").fetchall() if self.con is not None else []
            self._rows = {ip: (kind, zone) for ip, zone, kind in rows}
        return self._rows

    def __len__(self) -> int:
        return (
            len(self._all()) if self.con is None else self.con.execute("SELECT count(*) FROM _hosts").fetchall()[0][0]
        )

    def __iter__(self):
        return iter(self._all())

    def __getitem__(self, ip: str) -> tuple[str, str | None]:
        return self._all()[ip]

    def count(self) -> int:
        """Addresses of kind 'host'."""
        if self.con is None:
            return 0
        return self.con.execute("SELECT count(*) FROM _hosts WHERE kind = 'host'").fetchall()[0][0]

    def per_zone(self) -> dict[str, int]:
        """Hosts per zone (zones with none left out)."""
        if self.con is None:
            return {}
        sql = "SELECT zone, count(*) FROM _hosts WHERE kind = 'host' AND zone IS NOT NULL GROUP BY zone"
        return dict(self.con.execute(sql).fetchall())


# An IPv4 address as sorf writes it (no leading zeros, as ipaddress wants it): matched to its zone in SQL.
_IPV4 = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3}"

# Every address, with its IPv4 number if it is dotted-quad IPv4 (NULL otherwise: _hosts_other)
HOST_IPS = """
CREATE OR REPLACE TEMP TABLE _ips AS
SELECT ip, CASE WHEN regexp_full_match(ip, $v4) THEN
           (split_part(ip, '.', 1)::BIGINT << 24) | (split_part(ip, '.', 2)::BIGINT << 16)
           | (split_part(ip, '.', 3)::BIGINT << 8) | split_part(ip, '.', 4)::BIGINT END AS addr
FROM (SELECT src_ip AS ip FROM fp UNION SELECT dst_ip FROM fp)
"""

# host_kind and ZoneIndex.lookup for every IPv4 address at once: the longest declared prefix (_nets: plen,
# mask, net, zone) wins; broadcast is 255.255.255.255 or the last address of that network if /30 or shorter.
HOSTS_V4 = """
CREATE OR REPLACE TEMP TABLE _hosts AS
WITH v4 AS (SELECT ip, addr FROM _ips WHERE addr IS NOT NULL),
plens AS (SELECT DISTINCT plen, mask FROM _nets),
best AS (
    SELECT v.ip, arg_max(n.zone, n.plen) AS zone, max(n.plen) AS plen
    FROM v4 v CROSS JOIN plens p JOIN _nets n ON n.plen = p.plen AND n.net = (v.addr & p.mask)
    GROUP BY v.ip
),
kinds AS (
    SELECT v.ip, b.zone, CASE
        WHEN v.addr >> 28 = 14 THEN 'multicast'
        WHEN v.addr = 0 THEN 'unspecified'
        WHEN v.addr = 4294967295 THEN 'broadcast'
        WHEN b.plen <= 30 AND v.addr & ((1::BIGINT << (32 - b.plen)) - 1) = (1::BIGINT << (32 - b.plen)) - 1
            THEN 'broadcast'
        ELSE 'host' END AS kind
    FROM v4 v LEFT JOIN best b USING (ip)
)
SELECT ip, CASE WHEN kind = 'host' THEN zone END AS zone, kind FROM kinds
UNION ALL
SELECT ip, zone, kind FROM _hosts_other
"""


def _nets(index: ZoneIndex) -> pa.Table:
    rows = [(plen, mask, net, zone) for plen, mask, nets in index.tables[4] for net, zone in nets.items()]
    cols = list(zip(*rows, strict=True)) or [(), (), (), ()]
    return pa.table({"plen": pa.array(cols[0], pa.int64()), "mask": pa.array(cols[1], pa.int64()),
                     "net": pa.array(cols[2], pa.int64()), "zone": pa.array(cols[3], pa.string())})  # fmt: skip


def _hosts_other(texts: list[str | None], index: ZoneIndex) -> pa.Table:
    """(ip, zone, kind) of the addresses that are not dotted-quad IPv4 (IPv6, text sorf did not write)."""
    zones: list[str | None] = []
    kinds: list[str] = []
    for text in texts:
        try:
            ip = ipaddress.ip_address(text if text is not None else "")
        except ValueError:  # NULL, or not written by sorf; keep it, in no zone
            kinds.append("host")
            zones.append(None)
            continue
        kind = host_kind(ip, index)
        kinds.append(kind)
        zones.append(index.lookup(ip) if kind == "host" else None)
    return pa.table({"ip": pa.array(texts, pa.string()), "zone": pa.array(zones, pa.string()),
                     "kind": pa.array(kinds, pa.string())})  # fmt: skip


def _ip_key(text: str) -> tuple:
    try:
        ip = ipaddress.ip_address(text)
        return (ip.version, int(ip))
    except ValueError:
        return (9, text)
