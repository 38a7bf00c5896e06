"""The API's response shapes, for its OpenAPI document (docs/api.md).

These describe what analyser/report.py writes; they do not write it. Every model
forbids fields it does not name, and tests/command/test_api.py validates a whole
`sorf analyse --format json` against them, so the document cannot drift from the
one serializer. Row models of flows and operations come from the store's column
declarations (sensor/store.py), not from a second list.
"""

from __future__ import annotations

from typing import Any, Literal

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, create_model

from sensor.schema import FLOWS, OPERATIONS

from .model import CATEGORIES, SEVERITIES

Severity = Literal[SEVERITIES]  # type: ignore[valid-type]
Category = Literal[CATEGORIES]  # type: ignore[valid-type]


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EvidenceFrame(_Out):
    capture_id: int
    frame: int
    path: str | None
    ts: str | None


class EvidenceEnds(_Out):
    first: EvidenceFrame | None
    last: EvidenceFrame | None


class HostPair(_Out):
    initiator: str
    responder: str
    flows: int


class _Traffic(_Out):
    flows: int
    packets: int | None
    bytes: int | None
    first_seen: str | None
    last_seen: str | None
    evidence: EvidenceEnds | None
    host_pairs: list[HostPair]
    host_pairs_total: int


class Delta(_Traffic):
    id: str
    category: Category
    severity: Severity
    from_zone: str | None
    to_zone: str | None
    conduits: list[str]
    protocol: str | None
    ports: list[int]
    access: list[str]
    host: str | None
    protocols: list[str]
    peer_zones: list[str]
    operations: dict[str, int]
    functions: dict[str, int]
    message: str


class ObservedConduit(_Traffic):
    from_zone: str
    to_zone: str
    protocol: str
    port: int | None
    access: list[str]
    operations: dict[str, int]
    conduits: list[str]
    status: str


class Zone(_Out):
    name: str
    networks: list[str]
    contact: bool
    security_level: int | None
    consequence: str | None
    hosts: int


class DeclaredConduit(_Out):
    name: str
    from_zone: str
    to_zone: str
    allow: list[str]
    observed: bool
    status: str
    flows: int
    protocols: list[str]


class IntraZone(_Out):
    zone: str
    protocol: str
    flows: int
    packets: int
    bytes: int
    initiators: int
    responders: int
    operations: dict[str, int]
    first_seen: str | None
    last_seen: str | None


class NonHost(_Out):
    from_zone: str | None
    kind: str
    protocol: str
    flows: int
    packets: int
    destinations: list[str]


class CaptureFile(_Out):
    capture_id: int
    path: str | None  # None: sensed live without a ring
    sensor: str | None
    first_seen: str | None
    last_seen: str | None
    packets: int | None
    status: str | None


class SensorDrops(_Out):
    sensor: str
    packets: int
    kernel_drops: int
    iface_drops: int
    first_seen: str | None
    last_seen: str | None


class Window(_Out):
    captures: int
    first_seen: str | None
    last_seen: str | None
    sensors: list[str]
    flows: int
    hosts: int
    drops: list[SensorDrops]  # live sensors' packets and losses in the window (sorf sense's sensor_stats)


class FullWindow(Window):
    capture_files: list[CaptureFile]


class Summary(_Out):
    deltas: int
    worst: Severity | None
    by_severity: dict[str, int]
    by_category: dict[str, int]
    zones: int
    conduits_declared: int
    conduits_observed: int
    crossings_observed: int
    hosts: int
    unzoned_hosts: int


class AnalysisJSON(_Out):
    """`sorf analyse --format json` as a whole (docs/analysis.md)."""

    format: Literal["sorf-analysis"]
    version: int
    site: str | None
    database: str
    zone_file: str
    statement: str
    window: FullWindow
    summary: Summary
    zones: list[Zone]
    conduits: list[DeclaredConduit]
    observed_conduits: list[ObservedConduit]
    intra_zone: list[IntraZone]
    non_host_traffic: list[NonHost]
    deltas: list[Delta]


# --- API-only shapes ------------------------------------------------------------------------------------------------


class ErrorBody(_Out):
    status: int
    message: str


class Error(_Out):
    error: ErrorBody


class LiveSensor(_Out):
    sensor: str
    last_interval_at: str | None
    active_flows: int
    rss_bytes: int


class Health(_Out):
    status: Literal["ok", "waiting"]
    schema_version: int
    site: str | None
    database: str
    database_bytes: int
    zone_file: str
    statement: str
    window: Window
    summary: Summary
    rows: dict[str, int]
    last_capture_at: str | None
    data_as_of: str
    analysed_at: str
    problems: list[str]
    sensors: list[LiveSensor]  # each `sorf sense` writing this database: its last interval (drops: window.drops)


def _page(name: str, item: Any) -> type[BaseModel]:
    return create_model(
        name, __base__=_Out, total=(int, ...), limit=(int, ...), offset=(int, ...), items=(list[item], ...)
    )


def _list(name: str, item: Any) -> type[BaseModel]:
    return create_model(name, __base__=_Out, total=(int, ...), items=(list[item], ...))


_PY = {pa.int32(): int, pa.int64(): int, pa.string(): str, pa.bool_(): bool, pa.timestamp("us"): str}


def _row(name: str, columns: dict[str, pa.DataType], extra: dict[str, Any]) -> type[BaseModel]:
    fields: dict[str, Any] = {c: (_PY[t] | None, ...) for c, t in columns.items()}
    more: dict[str, Any] = {k: (v, ...) for k, v in extra.items()}
    return create_model(name, __base__=_Out, **fields, **more)


_ENDS = {"src_zone": str | None, "dst_zone": str | None, "path": str | None}
FlowRow = _row("FlowRow", FLOWS.arrow, _ENDS)
OperationRow = _row(
    "OperationRow", {k: v for k, v in OPERATIONS.arrow.items() if k != "details"},
    {"details": dict[str, Any] | None, "src_ip": str, "src_port": int | None, "dst_ip": str, "dst_port": int | None,
     **_ENDS},
)  # fmt: skip


class Asset(_Out):
    ip: str
    macs: list[str | None] | None
    vlans: list[int | None] | None
    first_ts: str | None
    last_ts: str | None
    flows: int | None
    roles: list[str | None] | None
    identity: dict[str, Any] | None
    zone: str | None
    kind: str | None


class Capture(_Out):
    capture_id: int
    path: str | None
    sha256: str | None
    bytes: int | None
    format: str | None
    link_types: list[str] | None
    packets: int | None
    ip_packets: int | None
    malformed: int | None
    skipped: int | None
    first_ts: str | None
    last_ts: str | None
    ingested_at: str | None
    sensor: str | None
    status: str | None
    error: str | None


DeltaPage = _page("DeltaPage", Delta)
FlowPage = _page("FlowPage", FlowRow)
OperationPage = _page("OperationPage", OperationRow)
AssetPage = _page("AssetPage", Asset)
CaptureList = _list("CaptureList", Capture)
DeclaredList = _list("DeclaredList", DeclaredConduit)
ObservedList = _list("ObservedList", ObservedConduit)
IntraList = _list("IntraList", IntraZone)


class ZoneList(_Out):
    site: str | None
    total: int
    items: list[Zone]


class EvidenceRows(_Out):
    kind: Literal["operations", "flows", "none"]
    total: int
    limit: int
    offset: int
    items: list[dict[str, Any]]


class DeltaDetail(_Out):
    delta: Delta
    evidence: EvidenceRows
    wireshark: dict[str, str]
    pcap: str | None  # None: a delta with no frames (unused_conduit)
