"""Pages of flows and operations, and the rows behind a delta, for the API and `sorf evidence`.

Every filter is a constant SQL clause with a named parameter (FLOW_FILTERS,
OPERATION_FILTERS): a request chooses which clauses apply and supplies their values,
and never contributes SQL text. Zones come from the `hosts` table the server builds
from the analysis (ip -> zone), so a zone filter means what the analysis means.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import duckdb
import orjson

from sensor.schema import FLOWS, OPERATIONS

from .model import Delta
from .report import iso

EVIDENCE_FLOWS = 100  # flows whose frames go into an evidence pcap, earliest first
EVIDENCE_FRAMES = 10_000  # frames in an evidence pcap (its operation frames always go in)
HOSTS_TABLE = "memory.main.hosts"  # ip, zone, kind: written once per analysis (analyser/serve.py)

_IN_ZONE = f"(SELECT ip FROM {HOSTS_TABLE} WHERE zone = ${{name}})"
FLOW_FILTERS = {  # clauses on flows f
    "host": "(f.src_ip = $host OR f.dst_ip = $host)",
    "zone": f"(f.src_ip IN {_IN_ZONE.format(name='zone')} OR f.dst_ip IN {_IN_ZONE.format(name='zone')})",
    "from_zone": f"f.src_ip IN {_IN_ZONE.format(name='from_zone')}",
    "to_zone": f"f.dst_ip IN {_IN_ZONE.format(name='to_zone')}",
    "ports": "list_contains($ports, coalesce(f.dst_port, -1))",
    "protocol": "f.app_protocol = $protocol",
    "port": "f.dst_port = $port",
    "capture_id": "f.capture_id = $capture_id",
    "since": "f.last_ts >= $since",
    "until": "f.first_ts <= $until",
}
# A carrier (EtherNet/IP SendRRData around CIP: an `other` request of the flow's own protocol in a frame that
# also holds another protocol's request) is not counted by the analysis (analyser/observe.py); nor listed here.
_NOT_CARRIER = """NOT (o.access_class = 'other'
    AND o.protocol = (SELECT app_protocol FROM flows x WHERE x.flow_id = o.flow_id)
    AND EXISTS (SELECT 1 FROM operations r WHERE r.flow_id = o.flow_id AND r.frame = o.frame
                                           AND r.direction = 'request' AND r.protocol <> o.protocol))"""
OPERATION_FILTERS = {  # clauses on operations o
    "protocol": "o.protocol = $protocol",
    "function": "(upper(o.function_name) = upper($function) OR CAST(o.function_code AS VARCHAR) = $function)",
    "access": "o.access_class = $access",
    "direction": "o.direction = $direction",
    "capture_id": "o.capture_id = $capture_id",
    "since": "o.ts >= $since",
    "until": "o.ts <= $until",
    "counted": _NOT_CARRIER,  # value ignored: present means "only what the analysis counts"
}
# filters of operations on the flow they belong to: applied as o.flow_id IN (flows matching them)
OPERATION_FLOW_FILTERS = {**{k: FLOW_FILTERS[k] for k in ("host", "zone", "from_zone", "to_zone", "ports")},
                          "flow_protocol": "f.app_protocol = $flow_protocol"}  # fmt: skip

_ENDS = (
    f"LEFT JOIN {HOSTS_TABLE} s ON s.ip = f.src_ip LEFT JOIN {HOSTS_TABLE} d ON d.ip = f.dst_ip "
    "LEFT JOIN captures c ON c.capture_id = {alias}.capture_id"
)
_FLOW_SELECT = ", ".join(f"f.{c}" for c in FLOWS.names) + ", s.zone AS src_zone, d.zone AS dst_zone, c.path"
_OPERATION_SELECT = (
    ", ".join(f"o.{c}" for c in OPERATIONS.names)
    + ", f.src_ip, f.src_port, f.dst_ip, f.dst_port, s.zone AS src_zone, d.zone AS dst_zone, c.path"
)


@dataclass(frozen=True, slots=True)
class Kind:
    """How one kind of row is filtered (on its own table alone), ordered and then dressed with zones and paths."""

    table: str  # "flows f" or "operations o"
    alias: str
    filters: dict[str, str]
    order: str
    select: str
    joins: str  # what joins a page's rows to their flow, zones and capture


KINDS = {
    "flows": Kind("flows f", "f", FLOW_FILTERS, "f.first_ts, f.capture_id, f.first_frame", _FLOW_SELECT,
                  _ENDS.format(alias="f")),
    "operations": Kind("operations o", "o", OPERATION_FILTERS, "o.ts, o.capture_id, o.frame", _OPERATION_SELECT,
                       "JOIN flows f ON f.flow_id = o.flow_id " + _ENDS.format(alias="o")),
    "assets": Kind("assets a", "a", {"host": "a.ip = $host", "zone": f"a.ip IN {_IN_ZONE.format(name='zone')}"},
                   "a.ip", "a.*, h.zone, h.kind", f"LEFT JOIN {HOSTS_TABLE} h ON h.ip = a.ip"),
}  # fmt: skip


@dataclass(slots=True)
class Page:
    total: int
    limit: int
    offset: int
    items: list[dict]

    def json(self) -> dict:
        return {"total": self.total, "limit": self.limit, "offset": self.offset, "items": self.items}


def _where(kind: Kind, values: dict) -> tuple[str, dict]:
    """The WHERE clause for the filters given a value (None: not filtered), and its parameters."""
    chosen = {k: v for k, v in values.items() if v is not None}
    on_flow = {k: v for k, v in chosen.items() if kind.alias == "o" and k in OPERATION_FLOW_FILTERS}
    unknown = set(chosen) - set(kind.filters) - set(on_flow)
    if unknown:
        raise ValueError(f"no such filter: {', '.join(sorted(unknown))}")
    clauses = [kind.filters[k] for k in chosen if k not in on_flow]
    if on_flow:
        clauses.append("o.flow_id IN (SELECT f.flow_id FROM flows f WHERE "
                       + " AND ".join(OPERATION_FLOW_FILTERS[k] for k in on_flow) + ")")  # fmt: skip
    filters = {**kind.filters, **OPERATION_FLOW_FILTERS} if on_flow else kind.filters
    params = {k: v for k, v in chosen.items() if f"${k}" in filters[k]}
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def page(cur: duckdb.DuckDBPyConnection, kind: str, values: dict, limit: int, offset: int,
         totals: dict | None = None) -> Page:  # fmt: skip
    """One page of flows or operations matching the filters, with the total count.

    The filters run on the table alone, and only the page's rows (materialized first) are joined to their flow,
    zones and capture: a join of every row cost more than the rest together. ``totals`` caches counts: the data of
    a State never changes."""
    k = KINDS[kind]
    where, params = _where(k, values)
    key = (kind, where, tuple(sorted((n, str(v)) for n, v in params.items())))
    total = None if totals is None else totals.get(key)
    if total is None:
        ((total,),) = cur.execute(f"SELECT count(*) FROM {k.table}{where}", params).fetchall()
        if totals is not None:
            totals[key] = total
    rows = f"SELECT {k.alias}.rowid FROM {k.table}{where} ORDER BY {k.order} LIMIT $limit OFFSET $offset"
    cur.execute(f"WITH page AS MATERIALIZED (SELECT * FROM {k.table} WHERE {k.alias}.rowid IN ({rows})) "
                f"SELECT {k.select} FROM page {k.alias} {k.joins} ORDER BY {k.order}",
                {**params, "limit": limit, "offset": offset})  # fmt: skip
    names = [d[0] for d in cur.description]
    return Page(total, limit, offset, [row_json(names, r) for r in cur.fetchall()])


def row_json(names: list[str], values: tuple) -> dict:
    row = dict(zip(names, values, strict=True))
    for k, v in row.items():
        if isinstance(v, datetime):
            row[k] = iso(v)
    for k in JSON_TEXT:
        if row.get(k) is not None:
            row[k] = orjson.loads(row[k])
    return row


JSON_TEXT = ("details", "identity")  # columns holding JSON text: served as objects
# --- the rows behind a delta ------------------------------------------------------------------------------------------


def evidence_filters(d: Delta) -> tuple[str, dict] | None:
    """(kind, filter values) of the rows a delta counts; None for a delta without traffic (unused_conduit)."""
    if d.category == "unused_conduit":
        return None
    if d.category == "unzoned_host":
        return "flows", {"host": d.host}
    ends = {"from_zone": d.from_zone, "to_zone": d.to_zone, "ports": d.ports or [-1]}
    if d.category == "access_exceeded":
        return "operations", {**ends, "flow_protocol": d.protocol, "access": d.access[0], "direction": "request",
                              "counted": True}  # fmt: skip
    return "flows", {**ends, "protocol": d.protocol}


def evidence_page(cur: duckdb.DuckDBPyConnection, d: Delta, limit: int, offset: int,
                  totals: dict | None = None) -> tuple[str, Page]:  # fmt: skip
    chosen = evidence_filters(d)
    if chosen is None:
        return "none", Page(0, limit, offset, [])
    kind, values = chosen
    return kind, page(cur, kind, values, limit, offset, totals)


_FLOW_KEY = "f.capture_id, f.vlan, f.transport, f.src_ip, f.src_port, f.dst_ip, f.dst_port, f.first_frame, f.last_frame"


def evidence_frames(
    cur: duckdb.DuckDBPyConnection, d: Delta, max_flows: int, max_frames: int
) -> tuple[list[tuple], set[tuple[int, int]]]:
    """The flows behind a delta (up to max_flows, earliest first, as sensor.evidence.FlowKey fields) and the
    frames that must be in its evidence: the first and last evidence, and the operations it counts (up to
    max_frames)."""
    frames = {(e.capture_id, e.frame) for e in (d.traffic.first, d.traffic.last) if e is not None}
    chosen = evidence_filters(d)
    if chosen is None:
        return [], frames
    kind, values = chosen
    k = KINDS[kind]
    where, params = _where(k, values)
    if kind == "operations":
        cur.execute(f"SELECT o.capture_id, o.frame FROM {k.table}{where} ORDER BY {k.order} LIMIT $n",
                    {**params, "n": max_frames})  # fmt: skip
        frames |= set(cur.fetchall())
        where = f" WHERE f.flow_id IN (SELECT o.flow_id FROM {k.table}{where})"
    cur.execute(f"SELECT {_FLOW_KEY} FROM flows f{where} ORDER BY {KINDS['flows'].order} LIMIT $n",
                {**params, "n": max_flows})  # fmt: skip
    return cur.fetchall(), frames


@dataclass(frozen=True, slots=True)
class DeltaEvidence:
    """What a delta's evidence file holds, as the store has it; sensor.evidence.write_rows copies it out."""

    captures: list[tuple]  # (capture_id, path, sha256, status, error) of every capture
    flows: list[tuple]  # sensor.evidence.FlowKey's fields
    frames: set[tuple[int, int]]  # (capture_id, frame) that must be in it
    max_frames: int


def delta_evidence(cur: duckdb.DuckDBPyConnection, d: Delta, max_flows: int = EVIDENCE_FLOWS,
                   max_frames: int = EVIDENCE_FRAMES) -> DeltaEvidence | None:  # fmt: skip
    """The frames and flows behind a delta, and the capture files they are in; None if it has none."""
    keys, frames = evidence_frames(cur, d, max_flows, max_frames)
    if not keys and not frames:
        return None
    captures = cur.execute("SELECT capture_id, path, sha256, status, error FROM captures").fetchall()
    return DeltaEvidence(captures, keys, frames, max_frames)
