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

from sensor.store import FLOW_COLUMNS, OPERATION_COLUMNS

from .model import Delta
from .report import iso

EVIDENCE_FLOWS = 100  # flows whose frames go into an evidence pcap, earliest first
EVIDENCE_FRAMES = 10_000  # frames in an evidence pcap (its operation frames always go in)
HOSTS_TABLE = "memory.main.hosts"  # ip, zone, kind: written once per analysis (analyser/serve.py)

_ZONES = f"LEFT JOIN {HOSTS_TABLE} s ON s.ip = f.src_ip LEFT JOIN {HOSTS_TABLE} d ON d.ip = f.dst_ip"
_ENDS = {
    "host": "(f.src_ip = $host OR f.dst_ip = $host)",
    "zone": "(s.zone = $zone OR d.zone = $zone)",
    "from_zone": "s.zone = $from_zone",
    "to_zone": "d.zone = $to_zone",
    "ports": "list_contains($ports, coalesce(f.dst_port, -1))",
}
FLOW_FILTERS = {
    **_ENDS,
    "protocol": "f.app_protocol = $protocol",
    "port": "f.dst_port = $port",
    "capture_id": "f.capture_id = $capture_id",
    "since": "f.last_ts >= $since",
    "until": "f.first_ts <= $until",
}
# A carrier (EtherNet/IP SendRRData around CIP: an `other` request of the flow's own protocol in a frame that
# also holds another protocol's request) is not counted by the analysis (analyser/observe.py); nor listed here.
_NOT_CARRIER = """NOT (o.access_class = 'other' AND o.protocol = f.app_protocol AND EXISTS (
    SELECT 1 FROM operations r WHERE r.flow_id = o.flow_id AND r.frame = o.frame AND r.direction = 'request'
                                 AND r.protocol <> o.protocol))"""
OPERATION_FILTERS = {
    **_ENDS,
    "protocol": "o.protocol = $protocol",
    "flow_protocol": "f.app_protocol = $flow_protocol",
    "function": "(upper(o.function_name) = upper($function) OR CAST(o.function_code AS VARCHAR) = $function)",
    "access": "o.access_class = $access",
    "direction": "o.direction = $direction",
    "capture_id": "o.capture_id = $capture_id",
    "since": "o.ts >= $since",
    "until": "o.ts <= $until",
    "counted": _NOT_CARRIER,  # value ignored: present means "only what the analysis counts"
}

_FLOW_SELECT = ", ".join(f"f.{c}" for c in FLOW_COLUMNS) + ", s.zone AS src_zone, d.zone AS dst_zone, c.path"
_OPERATION_SELECT = (
    ", ".join(f"o.{c}" for c in OPERATION_COLUMNS)
    + ", f.src_ip, f.src_port, f.dst_ip, f.dst_port, s.zone AS src_zone, d.zone AS dst_zone, c.path"
)
FLOWS_FROM = f"FROM flows f {_ZONES} LEFT JOIN captures c ON c.capture_id = f.capture_id"
OPERATIONS_FROM = (
    f"FROM operations o JOIN flows f ON f.flow_id = o.flow_id {_ZONES} LEFT JOIN captures c ON c.capture_id = o.capture_id"
)
PAGES = {  # kind -> (select list, from, filters, order)
    "flows": (_FLOW_SELECT, FLOWS_FROM, FLOW_FILTERS, "f.first_ts, f.capture_id, f.first_frame"),
    "operations": (_OPERATION_SELECT, OPERATIONS_FROM, OPERATION_FILTERS, "o.ts, o.capture_id, o.frame"),
}


@dataclass(slots=True)
class Page:
    total: int
    limit: int
    offset: int
    items: list[dict]

    def json(self) -> dict:
        return {"total": self.total, "limit": self.limit, "offset": self.offset, "items": self.items}


def _where(filters: dict[str, str], values: dict) -> tuple[str, dict]:
    """The WHERE clause for the filters given a value (None: not filtered), and its parameters."""
    chosen = {k: v for k, v in values.items() if v is not None}
    unknown = set(chosen) - set(filters)
    if unknown:
        raise ValueError(f"no such filter: {', '.join(sorted(unknown))}")
    clauses = [filters[k] for k in chosen]
    params = {k: v for k, v in chosen.items() if f"${k}" in filters[k]}
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def page(cur: duckdb.DuckDBPyConnection, kind: str, values: dict, limit: int, offset: int) -> Page:
    """One page of flows or operations matching the filters, with the total count."""
    select, source, filters, order = PAGES[kind]
    where, params = _where(filters, values)
    total = cur.execute(f"SELECT count(*) {source}{where}", params).fetchone()[0]
    cur.execute(f"SELECT {select} {source}{where} ORDER BY {order} LIMIT $limit OFFSET $offset",
                {**params, "limit": limit, "offset": offset})  # fmt: skip
    names = [d[0] for d in cur.description]
    return Page(total, limit, offset, [row_json(names, r) for r in cur.fetchall()])


def row_json(names: list[str], values: tuple) -> dict:
    row = dict(zip(names, values))
    for k, v in row.items():
        if isinstance(v, datetime):
            row[k] = iso(v)
    for k in JSON_TEXT:
        if row.get(k) is not None:
            row[k] = orjson.loads(row[k])
    return row


JSON_TEXT = ("details", "identity")  # columns holding JSON text: served as objects
ASSET_FILTERS = {"host": "a.ip = $host", "zone": "h.zone = $zone"}


def assets(cur: duckdb.DuckDBPyConnection, host: str | None, zone: str | None, limit: int, offset: int) -> Page:
    """Assets with the zone the analysis put each address in."""
    where, params = _where(ASSET_FILTERS, {"host": host, "zone": zone})
    source = f"FROM assets a LEFT JOIN {HOSTS_TABLE} h ON h.ip = a.ip"
    total = cur.execute(f"SELECT count(*) {source}{where}", params).fetchone()[0]
    cur.execute(f"SELECT a.*, h.zone, h.kind {source}{where} ORDER BY a.ip LIMIT $limit OFFSET $offset",
                {**params, "limit": limit, "offset": offset})  # fmt: skip
    names = [d[0] for d in cur.description]
    return Page(total, limit, offset, [row_json(names, r) for r in cur.fetchall()])


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


def evidence_page(cur: duckdb.DuckDBPyConnection, d: Delta, limit: int, offset: int) -> tuple[str, Page]:
    chosen = evidence_filters(d)
    if chosen is None:
        return "none", Page(0, limit, offset, [])
    kind, values = chosen
    return kind, page(cur, kind, values, limit, offset)


_FLOW_KEY = "f.capture_id, f.vlan, f.transport, f.src_ip, f.src_port, f.dst_ip, f.dst_port, f.first_frame, f.last_frame"


def evidence_frames(
    cur: duckdb.DuckDBPyConnection, d: Delta, max_flows: int, max_frames: int
) -> tuple[list[tuple], set[tuple[int, int]]]:
    """The flows behind a delta (up to max_flows, earliest first, as analyser.evidence.FlowKey fields) and the frames that must be in its evidence:
    the first and last evidence, and the operations it counts (up to max_frames)."""
    frames = {(e.capture_id, e.frame) for e in (d.traffic.first, d.traffic.last) if e is not None}
    chosen = evidence_filters(d)
    if chosen is None:
        return [], frames
    kind, values = chosen
    _, source, filters, order = PAGES[kind]
    where, params = _where(filters, values)
    if kind == "operations":
        cur.execute(f"SELECT o.capture_id, o.frame {source}{where} ORDER BY {order} LIMIT $n", {**params, "n": max_frames})
        frames |= set(cur.fetchall())
        source, where = f"{FLOWS_FROM} WHERE f.flow_id IN (SELECT o.flow_id {source}{where})", ""
        order = PAGES["flows"][3]
    cur.execute(f"SELECT DISTINCT {_FLOW_KEY}, f.first_ts {source}{where} ORDER BY {order} LIMIT $n",
                {**params, "n": max_flows})  # fmt: skip
    return [r[:9] for r in cur.fetchall()], frames


def write_delta_evidence(cur: duckdb.DuckDBPyConnection, d: Delta, out, max_flows: int = EVIDENCE_FLOWS,
                         max_frames: int = EVIDENCE_FRAMES):  # fmt: skip
    """Write the frames behind a delta to ``out`` (analyser/evidence.py); None if it has none.
    Raises evidence.EvidenceError when a capture file has moved or changed."""
    from . import evidence

    keys, frames = evidence_frames(cur, d, max_flows, max_frames)
    if not keys and not frames:
        return None
    rows = cur.execute("SELECT capture_id, path, sha256 FROM captures").fetchall()
    files = {r[0]: evidence.CaptureFile(*r) for r in rows}
    return evidence.write_evidence(files, [evidence.FlowKey(*k) for k in keys], frames, out, max_frames=max_frames)
