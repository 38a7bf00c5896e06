"""Rendering an Analysis: a terminal table, Markdown for reports, JSON for machines.

The JSON form is a stable interface, documented in docs/analysis.md: fields are
only ever added within a version; renaming or removing one bumps VERSION.
"""

from __future__ import annotations

import json
from datetime import datetime

from .model import (
    CATEGORIES,
    SEVERITIES,
    Analysis,
    CaptureInfo,
    ConduitStatus,
    Delta,
    Evidence,
    IntraZone,
    NonHostTraffic,
    ObservedConduit,
    SensorDrops,
    Traffic,
    Window,
    ZoneSummary,
)

VERSION = 1
STATEMENT = (
    "This analysis covers only the traffic captured in the observation window. Where no crossing is reported, "
    "none was observed in this window: that is not proof that the boundary blocks it."
)
NOT_OBSERVED = "no crossing observed in this window"
# capture statuses whose packets were not all read (the others: ok; a live ring file being written or rotated away)
INCOMPLETE = ("damaged", "unsupported", "ingesting", "interrupted")
UNZONED_SHOWN = 10  # unzoned_host deltas the table and Markdown show; the rest are summed up in one line


def _shown(a: Analysis) -> tuple[list[Delta], str | None]:
    """The deltas the table and Markdown list (all but the unzoned_host ones past UNZONED_SHOWN), and the
    line that sums up the rest (None if none is left out). JSON lists them all."""
    shown, listed, flows = [], 0, 0
    for d in a.deltas:
        if d.category == "unzoned_host":
            listed += 1
            if listed > UNZONED_SHOWN:
                flows += d.traffic.flows
                continue
        shown.append(d)
    rest = max(listed - UNZONED_SHOWN, 0)
    unlisted = a.unzoned_hosts - listed
    if not rest and unlisted <= 0:
        return shown, None
    line = f"{rest + max(unlisted, 0):,} more hosts in no zone"
    if rest:
        line += f": {rest:,} more unzoned_host deltas ({_flows(flows)}) in --format json"
    if unlisted > 0:
        line += (
            f"{'; ' if rest else ': '}{unlisted:,} hosts beyond the {listed:,} in most flows have no delta of their own"
        )
    return shown, line + f" ({a.unzoned_hosts:,} hosts in no zone in all)"


def iso(value: datetime | None) -> str | None:
    return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ") if value is not None else None


def _evidence(e: Evidence | None) -> dict | None:
    if e is None:
        return None
    return {"capture_id": e.capture_id, "frame": e.frame, "path": e.path, "ts": iso(e.ts)}


def _traffic(t: Traffic) -> dict:
    return {
        "flows": t.flows,
        "packets": t.packets,
        "bytes": t.bytes,
        "first_seen": iso(t.first_seen),
        "last_seen": iso(t.last_seen),
        "evidence": {"first": _evidence(t.first), "last": _evidence(t.last)} if t.first or t.last else None,
        "host_pairs": [{"initiator": p.initiator, "responder": p.responder, "flows": p.flows} for p in t.host_pairs],
        "host_pairs_total": t.host_pairs_total,
    }


def delta_json(d: Delta) -> dict:
    return {
        "id": d.id,
        "category": d.category,
        "severity": d.severity,
        "from_zone": d.from_zone,
        "to_zone": d.to_zone,
        "conduits": d.conduits,
        "protocol": d.protocol,
        "ports": d.ports,
        "access": d.access,
        "host": d.host,
        "protocols": d.protocols,
        "peer_zones": d.peer_zones,
        "operations": d.operations,
        "functions": d.functions,
        **_traffic(d.traffic),
        "message": d.message,
    }


def summary(a: Analysis) -> dict:
    by_sev = dict.fromkeys(SEVERITIES, 0)
    by_cat = dict.fromkeys(CATEGORIES, 0)
    for d in a.deltas:
        by_sev[d.severity] += 1
        by_cat[d.category] += 1
    return {
        "deltas": len(a.deltas),
        "worst": a.worst(),
        "by_severity": by_sev,
        "by_category": by_cat,
        "zones": len(a.zones),
        "conduits_declared": len(a.conduits),
        "conduits_observed": sum(c.observed for c in a.conduits),
        "crossings_observed": len(a.observed),
        "hosts": a.window.hosts,
        "unzoned_hosts": a.unzoned_hosts,
    }


def capture_json(c: CaptureInfo) -> dict:
    return {
        "capture_id": c.capture_id,
        "path": c.path,
        "sensor": c.sensor,
        "first_seen": iso(c.first_ts),
        "last_seen": iso(c.last_ts),
        "packets": c.packets,
        "status": c.status,
    }


def window_json(w: Window) -> dict:
    """The observation window, without its list of capture files."""
    return {
        "captures": len(w.captures),
        "first_seen": iso(w.first_ts),
        "last_seen": iso(w.last_ts),
        "sensors": w.sensors,
        "flows": w.flows,
        "hosts": w.hosts,
        "drops": [drops_json(d) for d in w.drops],
    }


def drops_json(d: SensorDrops) -> dict:
    return {"sensor": d.sensor, "packets": d.packets, "kernel_drops": d.kernel_drops, "iface_drops": d.iface_drops,
            "first_seen": iso(d.first_ts), "last_seen": iso(d.last_ts)}  # fmt: skip


def drops_text(d: SensorDrops) -> str:
    """One sensor's losses in a sentence: a finding cannot be about packets the sensor never saw."""
    if not d.kernel_drops and not d.iface_drops:
        return f"{d.sensor}: none of {d.packets:,} packets sensed live"
    return (f"{d.sensor}: {d.kernel_drops:,} packets dropped by the kernel and {d.iface_drops:,} by the interface "
            f"beside {d.packets:,} sensed, {_short_ts(d.first_ts)} to {_short_ts(d.last_ts)} UTC: the findings "
            "cannot cover that traffic")  # fmt: skip


def zone_json(z: ZoneSummary) -> dict:
    return {
        "name": z.name,
        "networks": z.networks,
        "contact": z.contact,
        "security_level": z.security_level,
        "consequence": z.consequence,
        "hosts": z.hosts,
    }


def conduit_json(c: ConduitStatus) -> dict:
    return {
        "name": c.name,
        "from_zone": c.from_zone,
        "to_zone": c.to_zone,
        "allow": c.allow,
        "observed": c.observed,
        "status": "observed" if c.observed else NOT_OBSERVED,
        "flows": c.flows,
        "protocols": c.protocols,
    }


def observed_json(o: ObservedConduit) -> dict:
    return {
        "from_zone": o.from_zone,
        "to_zone": o.to_zone,
        "protocol": o.protocol,
        "port": o.port,
        "access": o.access,
        "operations": o.operations,
        "conduits": o.conduits,
        "status": o.status,
        **_traffic(o.traffic),
    }


def intra_json(i: IntraZone) -> dict:
    return {
        "zone": i.zone,
        "protocol": i.protocol,
        "flows": i.flows,
        "packets": i.packets,
        "bytes": i.bytes,
        "initiators": i.initiators,
        "responders": i.responders,
        "operations": i.operations,
        "first_seen": iso(i.first_seen),
        "last_seen": iso(i.last_seen),
    }


def non_host_json(n: NonHostTraffic) -> dict:
    return {
        "from_zone": n.from_zone,
        "kind": n.kind,
        "protocol": n.protocol,
        "flows": n.flows,
        "packets": n.packets,
        "destinations": n.destinations,
    }


def to_json(a: Analysis) -> dict:
    """The whole analysis; the API serves the same pieces (analyser/api.py), through these functions."""
    return {
        "format": "sorf-analysis",
        "version": VERSION,
        "site": a.site,
        "database": a.database,
        "zone_file": a.zone_file,
        "statement": STATEMENT,
        "window": {**window_json(a.window), "capture_files": [capture_json(c) for c in a.window.captures]},
        "summary": summary(a),
        "zones": [zone_json(z) for z in a.zones],
        "conduits": [conduit_json(c) for c in a.conduits],
        "observed_conduits": [observed_json(o) for o in a.observed],
        "intra_zone": [intra_json(i) for i in a.intra_zone],
        "non_host_traffic": [non_host_json(n) for n in a.non_host],
        "deltas": [delta_json(d) for d in a.deltas],
    }


def render_json(a: Analysis) -> str:
    return json.dumps(to_json(a), indent=2) + "\n"


# --- text ------------------------------------------------------------------------------------------------------------


def _short_ts(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] if value else "-"


def _duration(seconds: float) -> str:
    secs = round(seconds)
    parts = [(secs // 86400, "d"), (secs % 86400 // 3600, "h"), (secs % 3600 // 60, "m"), (secs % 60, "s")]
    while len(parts) > 1 and parts[0][0] == 0:
        parts.pop(0)
    return " ".join(f"{n}{unit}" for n, unit in parts)


def _flows(n: int) -> str:
    return f"{n:,} flow{'s' * (n != 1)}"


def _window_lines(a: Analysis) -> list[str]:
    w = a.window
    n = len(w.captures)
    if not n:
        return ["window     no captures in the database: nothing was observed"]
    span = f"{_short_ts(w.first_ts)} to {_short_ts(w.last_ts)} UTC" if w.first_ts else "no packets"
    if w.first_ts and w.last_ts:
        span += f" ({_duration((w.last_ts - w.first_ts).total_seconds())})"
    sensors = ", ".join(w.sensors) if w.sensors else "none named"
    lines = [
        f"window     {n} capture{'s' * (n != 1)}, {span}",
        f"sensors    {sensors}",
        f"observed   {w.flows:,} flows, {w.hosts:,} hosts ({a.unzoned_hosts:,} in no zone)",
    ]
    lines += [f"drops      {drops_text(d)}" for d in w.drops]
    bad = [c for c in w.captures if c.status in INCOMPLETE]
    if bad:
        lines.append(
            f"note       {len(bad)} capture(s) not read completely: "
            + ", ".join(f"{c.path} ({c.status})" for c in bad[:5])
        )
    return lines


def _table(headers: list[str], rows: list[list], indent: str = "  ") -> list[str]:
    cells = [[str(h) for h in headers]] + [["-" if v is None else str(v) for v in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    return [indent + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]


def _pairs(t: Traffic) -> str:
    shown = ", ".join(f"{p.initiator} -> {p.responder} ({p.flows})" for p in t.host_pairs[:5])
    more = t.host_pairs_total - min(len(t.host_pairs), 5)
    return shown + (f", and {more:,} more" if more > 0 else "")


def _frames(t: Traffic) -> str:
    if t.first is None:
        return ""
    first, last = t.first, t.last
    out = f"{first.path} frame.number == {first.frame}"
    if last and (last.capture_id, last.frame) != (first.capture_id, first.frame):
        where = last.path if last.capture_id != first.capture_id else "same file"
        out += f" (first); {where} frame.number == {last.frame} (last)"
    return out


def _access(ops: dict[str, int]) -> str:
    return ", ".join(f"{k} {v:,}" for k, v in ops.items()) or "-"


Section = tuple[str, list[str], list[list[object]], str | None]


def _sections(a: Analysis, md: bool) -> list[Section]:
    """The tables shared by the text and Markdown renderers: (title, headers, rows, what to say if no rows).

    Markdown differs only in its titles, arrows and unformatted numbers, and shows a crossing's host pairs instead
    of its packet count. A section with no words for "no rows" is rendered as an empty table.
    """
    sections = [_declared(a, md), _crossings(a, md), _intra(a, md)]
    if a.non_host:
        sections.append(_non_host(a, md))
    sections.append(_zones(a, md))
    return sections


def _arrow(md: bool) -> str:
    return "→" if md else "->"


def _num(n: int | None, md: bool) -> int | str:
    assert n is not None, "flows and packets are counted for every flow-sourced row these tables show"
    return n if md else f"{n:,}"


def _declared(a: Analysis, md: bool) -> Section:
    """Every declared conduit, and whether any crossing matched it."""
    rows: list[list[object]] = [
        [
            c.name,
            f"{c.from_zone} {_arrow(md)} {c.to_zone}",
            "; ".join(c.allow),
            (f"observed ({_flows(c.flows)})" if md else f"observed, {_flows(c.flows)}") if c.observed else NOT_OBSERVED,
        ]
        for c in a.conduits
    ]
    return ("Declared conduits" if md else "DECLARED CONDUITS", ["conduit", "zones", "allows", "status"], rows,
            "none declared")  # fmt: skip


def _crossings(a: Analysis, md: bool) -> Section:
    """Every observed crossing between zones, with its status against the conduits."""
    headers = (
        ["zones", "protocol", "port", "requests", "flows"]
        + ([] if md else ["packets"])
        + ["status", "conduit"]
        + (["hosts"] if md else [])
    )
    rows: list[list[object]] = [
        [
            f"{o.from_zone} {_arrow(md)} {o.to_zone}",
            o.protocol,
            o.port,
            _access(o.operations),
            _num(o.traffic.flows, md),
            *([] if md else [_num(o.traffic.packets, md)]),
            o.status,
            ", ".join(o.conduits) or None,
            *([_pairs(o.traffic)] if md else []),
        ]
        for o in a.observed
    ]
    title = "Observed crossings" if md else "OBSERVED CROSSINGS (initiator zone -> responder zone)"
    return (title, headers, rows, f"none: {NOT_OBSERVED}")


def _intra(a: Analysis, md: bool) -> Section:
    """Traffic inside each zone: no conduit governs it, but it shows what the zone does."""
    rows: list[list[object]] = [
        [i.zone, i.protocol, _num(i.flows, md), _num(i.packets, md), i.initiators, i.responders, _access(i.operations)]
        for i in a.intra_zone
    ]
    headers = ["zone", "protocol", "flows", "packets", "initiators", "responders", "requests"]
    return ("Intra-zone traffic" if md else "INTRA-ZONE TRAFFIC", headers, rows, "none")


def _non_host(a: Analysis, md: bool) -> Section:
    """Broadcast and multicast: sent to no one host, so never a conduit; shown apart."""
    rows: list[list[object]] = [
        [
            n.from_zone or "(no zone)",
            n.kind,
            n.protocol,
            _num(n.flows, md),
            _num(n.packets, md),
            ", ".join(n.destinations[:5]),
        ]
        for n in a.non_host
    ]
    title = "Broadcast and multicast (not conduits)" if md else "BROADCAST / MULTICAST (not conduits)"
    return (title, ["from zone", "kind", "protocol", "flows", "packets", "destinations"], rows, None)


def _zones(a: Analysis, md: bool) -> Section:
    """The declared zones, with the hosts observed in each."""
    rows: list[list[object]] = [
        [
            z.name,
            ", ".join(z.networks),
            z.security_level,
            z.consequence or "- (moderate assumed)",
            "yes" if z.contact else "",
            z.hosts,
        ]
        for z in a.zones
    ]
    return ("Zones" if md else "ZONES", ["zone", "networks", "SL", "consequence", "contact", "hosts"], rows, None)


def render_table(a: Analysis) -> str:
    out = [f"sorf analysis{': ' + a.site if a.site else ''}", f"zone file  {a.zone_file}", f"database   {a.database}"]
    out += _window_lines(a)
    out += [STATEMENT, ""]
    s = summary(a)
    counts = ", ".join(f"{k} {v}" for k, v in reversed(s["by_severity"].items()) if v)
    out.append(f"DELTAS ({s['deltas']}{': ' + counts if counts else ''})")
    if not a.deltas:
        out.append("  none in this window")
    shown, more = _shown(a)
    for d in shown:
        where = f"{d.from_zone} -> {d.to_zone}" if d.from_zone else (d.host or "")
        what = d.protocol or ""
        out.append(f"  [{d.severity}] {d.category}  {where}  {what}".rstrip() + f"  id {d.id}")
        out.append(f"      {d.message}")
        if d.traffic.host_pairs:
            out.append(f"      hosts     {_pairs(d.traffic)}")
        if d.traffic.first_seen:
            out.append(f"      seen      {_short_ts(d.traffic.first_seen)} to {_short_ts(d.traffic.last_seen)} UTC")
        if d.traffic.first:
            out.append(f"      evidence  {_frames(d.traffic)}")
    if more:
        out.append(f"  ... and {more}")
    for title, headers, rows, empty in _sections(a, md=False):
        out += ["", title]
        out += _table(headers, rows) if rows or empty is None else [f"  {empty}"]
    return "\n".join(out) + "\n"


# --- markdown --------------------------------------------------------------------------------------------------------


def _md_cell(v) -> str:
    return "" if v is None else str(v).replace("|", "\\|").replace("\n", " ")


def _md_table(headers: list[str], rows: list[list]) -> list[str]:
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(_md_cell(v) for v in r) + " |" for r in rows]
    return out


def render_markdown(a: Analysis) -> str:
    w = a.window
    out = [f"# Zone and conduit analysis{': ' + a.site if a.site else ''}", ""]
    out += [f"- Zone file: `{a.zone_file}`", f"- Database: `{a.database}`"]
    if w.captures:
        out.append(
            f"- Observation window: {len(w.captures)} capture(s), {_short_ts(w.first_ts)} to {_short_ts(w.last_ts)} UTC"
        )
    else:
        out.append("- Observation window: no captures in the database; nothing was observed")
    out.append(f"- Sensors: {', '.join(w.sensors) if w.sensors else 'none named'}")
    out.append(f"- Observed: {w.flows:,} flows, {w.hosts:,} hosts ({a.unzoned_hosts:,} in no zone)")
    out += [f"- Drops: {drops_text(d)}" for d in w.drops]
    out += ["", f"> {STATEMENT}", ""]
    s = summary(a)
    out += [f"## Deltas ({s['deltas']})", ""]
    shown, more = _shown(a)
    if a.deltas:
        rows: list[list[object]] = [
            [
                d.severity,
                d.category,
                f"{d.from_zone} → {d.to_zone}" if d.from_zone else d.host,
                d.protocol,
                ", ".join(d.access),
                d.traffic.flows,
                d.message,
                _frames(d.traffic),
                f"`{d.id}`",
            ]
            for d in shown
        ]
        out += _md_table(
            ["severity", "category", "where", "protocol", "access", "flows", "finding", "evidence", "id"], rows
        )
        if more:
            out += ["", f"And {more}."]
    else:
        out.append("No delta in this window.")
    for title, headers, rows, empty in _sections(a, md=True):
        out += ["", f"## {title}", ""]
        out += _md_table(headers, rows) if rows or empty is None else [f"{empty[0].upper()}{empty[1:]}."]
    return "\n".join(out) + "\n"


RENDERERS = {"table": render_table, "json": render_json, "markdown": render_markdown}
