"""The analyser's results as typed records: the observation window, observed conduits, deltas.

observe.py fills them from the database, deltas.py compares them with the zone file,
report.py renders them (its JSON form is documented in docs/analysis.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

SEVERITIES = ("info", "low", "medium", "high", "critical")  # lowest first
CATEGORIES = (
    "undeclared_conduit", "protocol_not_allowed", "access_exceeded", "reversed_initiator", "unused_conduit",
    "unzoned_host",
)  # fmt: skip


def severity_rank(severity: str) -> int:
    return SEVERITIES.index(severity)


@dataclass(frozen=True, slots=True)
class Evidence:
    """A frame that proves it: open ``path`` in Wireshark, filter ``frame.number == frame``."""

    capture_id: int
    frame: int
    path: str | None
    ts: datetime | None


@dataclass(frozen=True, slots=True)
class HostPair:
    initiator: str
    responder: str
    flows: int


@dataclass(slots=True)
class Traffic:
    """What a set of flows (or operations) adds up to, with the frames at either end."""

    flows: int = 0
    packets: int | None = 0
    bytes: int | None = 0
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    first: Evidence | None = None
    last: Evidence | None = None
    host_pairs: list[HostPair] = field(default_factory=list)
    host_pairs_total: int = 0


@dataclass(frozen=True, slots=True)
class CaptureInfo:
    capture_id: int
    path: str | None  # None: sensed live without a ring
    sensor: str | None
    first_ts: datetime | None
    last_ts: datetime | None
    packets: int | None
    status: str | None


@dataclass(frozen=True, slots=True)
class SensorDrops:
    """What a live sensor (`sorf sense`) received and lost in the window, from its sensor_stats rows."""

    sensor: str
    packets: int
    kernel_drops: int
    iface_drops: int
    first_ts: datetime
    last_ts: datetime


@dataclass(slots=True)
class Window:
    """What the database saw: the only traffic any statement of the analysis is about."""

    captures: list[CaptureInfo]
    first_ts: datetime | None
    last_ts: datetime | None
    sensors: list[str]
    flows: int = 0
    hosts: int = 0
    drops: list[SensorDrops] = field(default_factory=list)  # live sensors only


@dataclass(slots=True)
class ZoneSummary:
    name: str
    networks: list[str]
    contact: bool
    security_level: int | None
    consequence: str | None
    hosts: int


@dataclass(slots=True)
class ConduitStatus:
    """A declared conduit and whether traffic matching its allow rules was seen."""

    name: str
    from_zone: str
    to_zone: str
    allow: list[str]
    observed: bool
    flows: int
    protocols: list[str]


@dataclass(slots=True)
class ObservedConduit:
    """Traffic from one zone to another: one row per (initiator zone, responder zone,
    app protocol, responder port), with the access classes its requests carried."""

    from_zone: str
    to_zone: str
    protocol: str
    port: int | None
    access: list[str]
    operations: dict[str, int]
    traffic: Traffic
    conduits: list[str]  # the declared conduits whose rules it matched
    status: str  # allowed | access_exceeded | protocol_not_allowed | reversed_initiator | undeclared_conduit


@dataclass(slots=True)
class IntraZone:
    zone: str
    protocol: str
    flows: int
    packets: int
    bytes: int
    initiators: int
    responders: int
    operations: dict[str, int]
    first_seen: datetime | None
    last_seen: datetime | None


@dataclass(slots=True)
class NonHostTraffic:
    """Flows to broadcast, multicast or unspecified addresses: never a conduit."""

    from_zone: str | None
    kind: str  # broadcast | multicast | unspecified
    protocol: str
    flows: int
    packets: int
    destinations: list[str]


@dataclass(slots=True)
class Delta:
    id: str
    category: str
    severity: str
    from_zone: str | None
    to_zone: str | None
    conduits: list[str]
    protocol: str | None
    ports: list[int]
    access: list[str]
    host: str | None
    operations: dict[str, int]
    functions: dict[str, int]
    traffic: Traffic
    message: str
    protocols: list[str] = field(default_factory=list)  # unzoned_host: app protocols it used
    peer_zones: list[str] = field(default_factory=list)  # unzoned_host: zones it talked to


@dataclass(slots=True)
class Analysis:
    site: str | None
    database: str
    zone_file: str
    window: Window
    zones: list[ZoneSummary]
    conduits: list[ConduitStatus]
    observed: list[ObservedConduit]
    intra_zone: list[IntraZone]
    non_host: list[NonHostTraffic]
    deltas: list[Delta]
    unzoned_hosts: int = 0

    def worst(self) -> str | None:
        return max((d.severity for d in self.deltas), key=severity_rank, default=None)
