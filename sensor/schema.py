"""The database's tables, declared once: the DDL, the Arrow schemas the store inserts and the columns the
analyser reads all come from ``TABLES`` (docs/schema.md describes them; tests/unit/test_schema.py holds the two
equal). The rows a dissector emits are declared by their dataclasses (dissectors/base.py): the operations and
anomalies tables take their columns, in order, from ``Operation`` and ``Anomaly``, after the evidence keys.

This module sets nothing at import and reads no database: the analyser imports it to know the schema without
importing the sensor's writer.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import pyarrow as pa

from dissectors import ACCESS_CLASSES, Anomaly, Operation

__all__ = [
    "ACCESS_CLASSES",  # operations.access_class's values, declared with the dissectors' contract
    "ANOMALIES", "ARROW_TYPES", "ASSETS", "CAPTURES", "DDL", "EVIDENCE", "FLOWS", "IDENTITIES", "META", "OPERATIONS",
    "SCHEMA_VERSION", "SENSOR_STATS", "TABLES", "TS", "Table",
]  # fmt: skip

SCHEMA_VERSION = 2
TS = pa.timestamp("us")

# DuckDB type -> the Arrow type the store builds for it
ARROW_TYPES = {
    "INTEGER": pa.int32(), "BIGINT": pa.int64(), "VARCHAR": pa.string(), "BOOLEAN": pa.bool_(), "TIMESTAMP": TS,
    "VARCHAR[]": pa.list_(pa.string()), "INTEGER[]": pa.list_(pa.int32()),
}  # fmt: skip
# a record field's annotation -> its column's type (details, a dict, is stored as JSON text)
_FIELD_TYPES = {"str": "VARCHAR", "int": "INTEGER", "dict": "VARCHAR"}


@dataclass(frozen=True, slots=True)
class Table:
    """A table's columns in order, each ``(name, DuckDB type)``; ``keys`` adds constraints after a type."""

    name: str
    columns: tuple[tuple[str, str], ...]
    keys: tuple[tuple[str, str], ...] = ()

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.columns)

    @property
    def arrow(self) -> dict[str, pa.DataType]:
        """Column name -> Arrow type, in the table's order (the store inserts by position)."""
        return {name: ARROW_TYPES[sql] for name, sql in self.columns}

    def ddl(self, if_not_exists: bool = True) -> str:
        keys = dict(self.keys)
        cols = ", ".join(f"{name} {sql}{' ' + keys[name] if name in keys else ''}" for name, sql in self.columns)
        return f"CREATE TABLE {'IF NOT EXISTS ' if if_not_exists else ''}{self.name} ({cols});"


def _record_columns(record: type) -> tuple[tuple[str, str], ...]:
    """A record dataclass's fields as columns: ``int | None`` -> INTEGER, ``str`` -> VARCHAR, ..."""
    return tuple((f.name, _FIELD_TYPES[str(f.type).split(" | ")[0]]) for f in fields(record))


# evidence: the frame that carried it, its time, and the flow (operations, identities, anomalies)
EVIDENCE = (("capture_id", "INTEGER"), ("frame", "BIGINT"), ("ts", "TIMESTAMP"), ("flow_id", "BIGINT"))

META = Table("meta", (("key", "VARCHAR"), ("value", "VARCHAR")), keys=(("key", "PRIMARY KEY"),))
CAPTURES = Table(
    "captures",
    (("capture_id", "INTEGER"), ("path", "VARCHAR"), ("sha256", "VARCHAR"), ("bytes", "BIGINT"),
     ("format", "VARCHAR"), ("link_types", "VARCHAR[]"), ("packets", "BIGINT"), ("ip_packets", "BIGINT"),
     ("malformed", "BIGINT"), ("skipped", "BIGINT"), ("first_ts", "TIMESTAMP"), ("last_ts", "TIMESTAMP"),
     ("ingested_at", "TIMESTAMP"), ("sensor", "VARCHAR"), ("status", "VARCHAR"), ("error", "VARCHAR")),
    keys=(("capture_id", "PRIMARY KEY"), ("sha256", "UNIQUE")),
)  # fmt: skip
FLOWS = Table(
    "flows",
    (("flow_id", "BIGINT"), ("capture_id", "INTEGER"), ("vlan", "INTEGER"), ("transport", "VARCHAR"),
     ("src_ip", "VARCHAR"), ("src_port", "INTEGER"), ("dst_ip", "VARCHAR"), ("dst_port", "INTEGER"),
     ("src_mac", "VARCHAR"), ("dst_mac", "VARCHAR"), ("app_protocol", "VARCHAR"),
     ("packets_orig", "BIGINT"), ("packets_resp", "BIGINT"), ("bytes_orig", "BIGINT"), ("bytes_resp", "BIGINT"),
     ("first_ts", "TIMESTAMP"), ("last_ts", "TIMESTAMP"), ("first_frame", "BIGINT"), ("last_frame", "BIGINT"),
     ("handshake", "BOOLEAN"), ("reset", "BOOLEAN"), ("flags", "VARCHAR")),
)  # fmt: skip
OPERATIONS = Table("operations", EVIDENCE + _record_columns(Operation))
IDENTITIES = Table(
    "identities",
    (*EVIDENCE, ("ip", "VARCHAR"), ("protocol", "VARCHAR"), ("role", "VARCHAR"), ("field", "VARCHAR"),
     ("value", "VARCHAR")),
)  # fmt: skip
ANOMALIES = Table("anomalies", EVIDENCE + _record_columns(Anomaly))
# Derived: one row per address, rebuilt whole after each ingest (sensor/store.py says why it has no key)
ASSETS = Table(
    "assets",
    (("ip", "VARCHAR"), ("macs", "VARCHAR[]"), ("vlans", "INTEGER[]"), ("first_ts", "TIMESTAMP"),
     ("last_ts", "TIMESTAMP"), ("flows", "BIGINT"), ("roles", "VARCHAR[]"), ("identity", "VARCHAR")),
)  # fmt: skip

# One row per commit interval of `sorf sense`: what the interface gave it and what the kernel and the NIC dropped
# in the interval (libpcap's totals differenced: the kernel's own counters reset when read), the flows open at its
# end and the process's resident memory then
SENSOR_STATS = Table(
    "sensor_stats",
    (("sensor", "VARCHAR"), ("capture_id", "INTEGER"), ("since", "TIMESTAMP"), ("ts", "TIMESTAMP"),
     ("packets", "BIGINT"), ("kernel_drops", "BIGINT"), ("iface_drops", "BIGINT"), ("active_flows", "BIGINT"),
     ("rss_bytes", "BIGINT")),
)  # fmt: skip

TABLES = (META, CAPTURES, FLOWS, OPERATIONS, IDENTITIES, ANOMALIES, ASSETS, SENSOR_STATS)
DDL = "\n".join(t.ddl() for t in TABLES)
