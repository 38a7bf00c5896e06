"""Declared against observed: the deltas between the zone file and the wire.

Categories (docs/analysis.md):

- undeclared_conduit: zone A initiated to zone B, and no conduit joins them in either direction;
- protocol_not_allowed: a conduit A -> B exists, but no allow rule of it matches the protocol and port;
- access_exceeded: the protocol is allowed, but requests of an access class the rules do not allow crossed;
- reversed_initiator: only a conduit B -> A exists, and A initiated;
- unused_conduit: no observed flow matched any allow rule of a declared conduit;
- unzoned_host: an address in no declared zone.

One delta per (category, initiator zone, responder zone, protocol), with the responder
ports listed; access_exceeded adds the access class; unused_conduit is per conduit and
unzoned_host per address. The id is a hash of exactly that key, so the same finding
has the same id in every run, database and output format.

unzoned_host deltas are capped: the UNZONED_DELTAS hosts in most flows (then by address)
get one each, so a scan from millions of sources stays a readable answer;
Analysis.unzoned_hosts still counts every host in no zone.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from dataclasses import dataclass, field

from sensor.ports import ICS_PROTOCOLS
from sensor.schema import ACCESS_CLASSES

from .model import (
    CATEGORIES,
    SEVERITIES,
    Analysis,
    ConduitStatus,
    Delta,
    ObservedConduit,
    Traffic,
    ZoneSummary,
    severity_rank,
)  # fmt: skip
from .observe import Group, Observer, connect
from .zones import CONSEQUENCES, Conduit, ZoneFile

# Access classes implied by any allow rule of a protocol: opening a session and
# asking a device who it is come with every use of a protocol.
IMPLIED_ACCESS = frozenset({"session", "diagnostic"})

# What a crossing did, most dangerous first; a flow without decoded operations is
# "opaque": sorf cannot see what it did (https, ssh, rdp, unknown).
ACTIONS = ("program", "control", "write", "other", "read")
ACTION_OF = {"program": "program", "control": "control", "write": "write", "other": "other", "opaque": "other",
             "read": "read", "diagnostic": "read", "session": "read"}  # fmt: skip
QUIET_PROTOCOLS = frozenset({"icmp", "icmpv6"})  # echo and errors: counted as reads

# consequence of the zone reached -> severity, per action (docs/analysis.md)
MATRIX: dict[str, tuple[str, ...]] = {
    #          negligible minor     moderate  major       catastrophic
    "program": ("medium", "high", "high", "critical", "critical"),
    "control": ("medium", "medium", "high", "critical", "critical"),
    "write": ("low", "medium", "medium", "high", "high"),
    "other": ("low", "low", "medium", "medium", "high"),
    "read": ("info", "low", "low", "medium", "medium"),
}
SEVERITY_UNUSED = "info"
SEVERITY_UNZONED, SEVERITY_UNZONED_ICS = "medium", "high"
# DuckDB's, for `sorf analyse` (analyse): a 2M-flow scan peaked at 1.2 GB without it, ~430 MB with
MEMORY_LIMIT = "256MB"
UNZONED_DELTAS = 1_000  # unzoned_host deltas at most (the hosts in most flows); Analysis.unzoned_hosts counts all


def delta_id(*key) -> str:
    """Stable id: a short hash of the category and its key."""
    return hashlib.sha256(json.dumps(key, separators=(",", ":")).encode()).hexdigest()[:12]


def action(access: dict[str, int] | set[str] | list[str], protocol: str | None = None) -> str:
    """The most dangerous thing requests of these access classes did; 'opaque' when none was decoded."""
    seen = [a for a in access if a in ACTION_OF]
    if not seen:
        return "read" if protocol in QUIET_PROTOCOLS else "opaque"
    return min((ACTION_OF[a] for a in seen), key=ACTIONS.index)


def bump(severity: str) -> str:
    return SEVERITIES[min(severity_rank(severity) + 1, len(SEVERITIES) - 1)]


def severity(act: str, consequence: str, contact_crossing: bool) -> str:
    """The matrix, one step higher for a crossing between a contact zone and an inner one."""
    s = MATRIX[ACTION_OF[act]][CONSEQUENCES.index(consequence)]
    return bump(s) if contact_crossing else s


@dataclass
class _Pending:
    """A delta being assembled from cross-zone groups before its traffic is aggregated."""

    category: str
    from_zone: str
    to_zone: str
    protocol: str
    access: str | None = None  # access_exceeded: the class
    conduits: set[str] = field(default_factory=set)
    ports: set[int] = field(default_factory=set)
    operations: dict[str, int] = field(default_factory=dict)

    @property
    def key(self) -> tuple:
        k = (self.category, self.from_zone, self.to_zone, self.protocol)
        return (*k, self.access) if self.access else k


@dataclass
class _Found:
    """The cross-zone deltas found so far, and the groups whose traffic each one sums."""

    pending: dict[tuple, _Pending] = field(default_factory=dict)
    ids: dict[tuple, str] = field(default_factory=dict)
    by_group: list[tuple[Group, str]] = field(default_factory=list)  # group -> flow-level delta id
    by_access: list[tuple[Group, str, str]] = field(default_factory=list)  # (group, access) -> access_exceeded id

    def add(self, p: _Pending, port: int | None, ops: dict[str, int]) -> str:
        """Merge ``p`` into the delta of its key (ports, conduits, operations); returns that delta's id."""
        d = self.pending.setdefault(p.key, p)
        if port is not None:
            d.ports.add(port)
        d.conduits |= p.conduits
        if d is not p:
            for a, n in ops.items():
                d.operations[a] = d.operations.get(a, 0) + n
        else:
            d.operations = dict(ops)
        return self.ids.setdefault(p.key, delta_id(*p.key))


def _allows(rules: list, access: str) -> bool:
    if access in IMPLIED_ACCESS:
        return True
    return any(r.access is None or access in r.access for r in rules)


def _fmt_ports(ports: list[int]) -> str:
    if not ports:
        return ""
    shown = ", ".join(str(p) for p in ports[:10]) + (f", ... ({len(ports)} ports)" if len(ports) > 10 else "")
    return f" port {shown}" if len(ports) == 1 else f" ports {shown}"


def _count(n: int, what: str) -> str:
    return f"{n:,} {what}{'' if n == 1 else 's'}"


class Comparison:
    """The zone file against one database."""

    def __init__(self, zf: ZoneFile, observer: Observer):
        self.zf = zf
        self.obs = observer
        self.zones = {z.name: z for z in zf.zones}
        self.by_pair: dict[tuple[str, str], list[Conduit]] = {}
        for c in zf.conduits:
            self.by_pair.setdefault((c.from_, c.to), []).append(c)
        self.used: dict[str, int] = {c.name: 0 for c in zf.conduits}  # conduit -> flows that matched it
        self.used_protocols: dict[str, set[str]] = {c.name: set() for c in zf.conduits}

    def contact_crossing(self, a: str, b: str) -> bool:
        return self.zones[a].contact != self.zones[b].contact

    def run(self, database: str) -> Analysis:
        """Classify every cross-zone group, sum the traffic in SQL, then add the per-conduit and per-host deltas."""
        obs = self.obs
        window = obs.window()
        hosts = obs.assign_hosts()
        window.hosts = hosts.count()
        group_ops = obs.group_access()
        found = _Found()
        groups = obs.groups()
        observed = [self._observe(group, flows, group_ops.get(group, {}), found) for group, flows in groups]
        deltas = self._with_traffic(groups, observed, found)
        deltas += self._unused()
        unzoned_hosts, unzoned = self._unzoned()
        deltas += unzoned
        deltas.sort(key=_order)
        return Analysis(
            site=self.zf.site, database=database, zone_file=self.zf.path, window=window,
            zones=self._zone_summaries(hosts.per_zone()), conduits=self._conduit_statuses(), observed=observed,
            intra_zone=obs.intra_zone(), non_host=obs.non_host(), deltas=deltas, unzoned_hosts=unzoned_hosts,
        )  # fmt: skip

    # --- one cross-zone group ----------------------------------------------------------------------------------------

    def _observe(self, group: Group, flows: int, ops: dict[str, int], found: _Found) -> ObservedConduit:
        """One cross-zone group: the conduits whose rules it matched, its status, and its delta (into ``found``)."""
        src, dst, protocol, raw_port = group
        port = None if raw_port < 0 else raw_port
        fwd = self.by_pair.get((src, dst), [])
        matched = [(c, r) for c in fwd for r in c.allow if r.matches(protocol, port)]
        names = sorted({c.name for c, _ in matched})
        if matched:
            for name in names:
                self.used[name] += flows
                self.used_protocols[name].add(protocol)
            status = self._check_access(group, port, ops, [r for _, r in matched], names, found)
        else:
            status, conduits = self._unmatched(src, dst, fwd)
            found.by_group.append(
                (group, found.add(_Pending(status, src, dst, protocol, conduits=conduits), port, ops))
            )
        return ObservedConduit(
            src, dst, protocol, port, sorted(ops, key=ACCESS_CLASSES.index), dict(sorted(ops.items())), Traffic(),
            names, status,
        )  # fmt: skip

    def _check_access(
        self, group: Group, port: int | None, ops: dict[str, int], rules: list, names: list[str], found: _Found
    ) -> str:
        """'allowed', or 'access_exceeded' with one delta per access class that the matched rules do not allow."""
        src, dst, protocol, _ = group
        status = "allowed"
        for a, n in sorted(ops.items()):
            if not _allows(rules, a):
                status = "access_exceeded"
                did = found.add(_Pending("access_exceeded", src, dst, protocol, a, set(names)), port, {a: n})
                found.by_access.append((group, a, did))
        return status

    def _unmatched(self, src: str, dst: str, fwd: list[Conduit]) -> tuple[str, set[str]]:
        """Why a crossing no allow rule matched is a delta (its category), and the conduits that delta names."""
        if fwd:
            return "protocol_not_allowed", {c.name for c in fwd}
        if (dst, src) in self.by_pair:
            return "reversed_initiator", {c.name for c in self.by_pair[(dst, src)]}
        return "undeclared_conduit", set()

    def _with_traffic(
        self, groups: list[tuple[Group, int]], observed: list[ObservedConduit], found: _Found
    ) -> list[Delta]:
        """The traffic of every observed conduit and cross-zone delta, summed in SQL: a scan has a group per flow."""
        obs = self.obs
        obs.set_group_keys([(g, str(i)) for i, (g, _) in enumerate(groups)])
        by_group = obs.traffic("groups")
        for i, oc in enumerate(observed):
            oc.traffic = by_group[str(i)]
        obs.set_group_keys(found.by_group)
        obs.set_access_keys(found.by_access)
        traffic = obs.traffic("groups") | obs.traffic("operations")
        functions = obs.access_functions()
        return [
            self._delta(found.ids[k], p, traffic[found.ids[k]], functions.get(found.ids[k], {}))
            for k, p in found.pending.items()
        ]

    # --- summaries ---------------------------------------------------------------------------------------------------

    def _zone_summaries(self, zone_hosts: dict[str, int]) -> list[ZoneSummary]:
        return [
            ZoneSummary(
                z.name, [str(n) for n in z.networks], z.contact, z.security_level, z.consequence,
                zone_hosts.get(z.name, 0),
            )
            for z in self.zf.zones
        ]  # fmt: skip

    def _conduit_statuses(self) -> list[ConduitStatus]:
        return [
            ConduitStatus(
                c.name, c.from_, c.to, [r.describe() for r in c.allow], self.used[c.name] > 0, self.used[c.name],
                sorted(self.used_protocols[c.name]),
            )
            for c in self.zf.conduits
        ]  # fmt: skip

    # --- one delta -------------------------------------------------------------------------------------------------

    def _delta(self, did: str, p: _Pending, t: Traffic, functions: dict[str, int]) -> Delta:
        src, dst, proto = p.from_zone, p.to_zone, p.protocol
        ports = sorted(p.ports)
        crossing = self.contact_crossing(src, dst)
        consequence = self.zones[dst].effective_consequence
        conduits = sorted(p.conduits)
        quoted = ", ".join(repr(c) for c in conduits)
        access: list[str]
        if p.access is not None:  # access_exceeded: the one class these requests exceeded
            sev = severity(p.access, consequence, crossing)
            allowed = "; ".join(r.describe() for c in conduits for r in self._conduit(c).allow if r.protocol == proto)
            fn = ", ".join(f"{k} x{v}" for k, v in sorted(functions.items(), key=lambda kv: (-kv[1], kv[0])))
            msg = (
                f"{src} -> {dst}: {_count(p.operations.get(p.access, 0), p.access + ' request')} over {proto}"
                f" ({fn}); conduit {quoted} allows {allowed}"
            )
            access = [p.access]
        else:
            act = action(p.operations, proto)
            sev = severity(act, consequence, crossing)
            access = sorted(p.operations, key=ACCESS_CLASSES.index)
            seen = f"; requests seen: {', '.join(access)}" if access else "; no operations decoded"
            what = f"{proto}{_fmt_ports(ports)}"
            if p.category == "undeclared_conduit":
                flows = _count(t.flows, "flow")
                msg = f"{src} -> {dst}: {what} crossed, and no conduit joins these zones ({flows}{seen})"
            elif p.category == "protocol_not_allowed":
                msg = f"{src} -> {dst}: {what} is not allowed by conduit {quoted} ({_count(t.flows, 'flow')}{seen})"
            else:
                msg = (
                    f"{src} initiated {what} to {dst}, but conduit {quoted} is declared {dst} -> {src}: the responder "
                    f"zone initiated ({_count(t.flows, 'flow')}{seen})"
                )
        if crossing:
            msg += "; crosses a contact boundary"
        return Delta(
            id=did, category=p.category, severity=sev, from_zone=src, to_zone=dst, conduits=conduits, protocol=proto,
            ports=ports, access=access, host=None, operations=dict(sorted(p.operations.items())),
            functions=dict(sorted(functions.items())), traffic=t, message=msg,
        )  # fmt: skip

    def _conduit(self, name: str) -> Conduit:
        return next(c for c in self.zf.conduits if c.name == name)

    def _unused(self) -> list[Delta]:
        out = []
        for c in self.zf.conduits:
            if self.used[c.name]:
                continue
            rules = "; ".join(r.describe() for r in c.allow)
            out.append(Delta(
                id=delta_id("unused_conduit", c.name), category="unused_conduit", severity=SEVERITY_UNUSED,
                from_zone=c.from_, to_zone=c.to, conduits=[c.name], protocol=None,
                ports=[],
                access=[], host=None, operations={}, functions={}, traffic=Traffic(flows=0, packets=0, bytes=0),
                message=f"conduit {c.name!r} ({c.from_} -> {c.to}: {rules}): no crossing observed in this window; "
                "a candidate for removal",
            ))  # fmt: skip
        return out

    def _unzoned(self) -> tuple[int, list[Delta]]:
        """(hosts in no zone, their deltas): one unzoned_host delta per host, for the UNZONED_DELTAS hosts in
        most flows; a scan from millions of addresses would otherwise be millions of deltas."""
        total = self.obs.unzoned_hosts(UNZONED_DELTAS)
        detail = self.obs.unzoned()
        traffic = self.obs.traffic("unzoned")
        out = []
        for ip, (protocols, peers, ops) in detail.items():
            t = traffic[ip]
            ics = sorted(set(protocols) & ICS_PROTOCOLS)
            sev = SEVERITY_UNZONED_ICS if ics else SEVERITY_UNZONED
            peer = ", ".join(peers) if peers else "no declared zone"
            msg = (
                f"{ip} is in no declared zone: {_count(t.flows, 'flow')} with {peer}, protocols {', '.join(protocols)}"
            )
            if ics:
                msg += f" (industrial: {', '.join(ics)})"
            out.append(Delta(
                id=delta_id("unzoned_host", ip), category="unzoned_host", severity=sev, from_zone=None, to_zone=None,
                conduits=[], protocol=None, ports=[], access=sorted(ops, key=ACCESS_CLASSES.index), host=ip,
                operations=dict(sorted(ops.items())), functions={}, traffic=t, message=msg, protocols=list(protocols),
                peer_zones=list(peers),
            ))  # fmt: skip
        return total, out


def _order(d: Delta) -> tuple:
    return (
        -severity_rank(d.severity), CATEGORIES.index(d.category), d.from_zone or "", d.to_zone or "", d.protocol or "",
        ",".join(d.access), d.conduits, d.host or "",
    )  # fmt: skip


def bound_memory(con, spill: str) -> None:
    """DuckDB's memory for an analysis (`sorf analyse`, `sorf serve`, `sorf evidence`): the per-pair tables of a
    scan (a pair per flow) spill to ``spill`` rather than grow: 2M flows peaked at 1.2 GB without a limit."""
    con.execute(f"SET temp_directory = '{spill.replace(chr(39), chr(39) * 2)}'")
    con.execute(f"SET memory_limit = '{MEMORY_LIMIT}'")


def analyse(database: str, zf: ZoneFile, max_pairs: int = 100, opener=connect) -> Analysis:
    """Compare one zone file with what one sorf database observed (``opener``: observe.connect for a database
    file, observe.connect_export for a `sorf export` folder)."""
    con = opener(database)
    try:
        with tempfile.TemporaryDirectory(prefix="sorf-analyse-") as spill:
            bound_memory(con, spill)
            return Comparison(zf, Observer(con, zf.index(), max_pairs)).run(database)
    finally:
        con.close()
