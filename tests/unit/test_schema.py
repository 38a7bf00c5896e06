"""docs/schema.md describes the tables that sensor/schema.py declares: every column, in order, with its type."""

from __future__ import annotations

import re
from dataclasses import fields

import duckdb

from dissectors import Anomaly, Operation
from dissectors.bulk import ROW_FIELDS
from sensor.schema import DDL, EVIDENCE, OPERATIONS, TABLES
from tests.helpers.paths import ROOT

DOC = ROOT / "docs" / "schema.md"


def documented() -> dict[str, list[tuple[str, str]]]:
    """Each `## table` section's column rows, "a, b | T1, T2" read as two columns (one type may serve both)."""
    tables: dict[str, list[tuple[str, str]]] = {}
    current = None
    for line in DOC.read_text().splitlines():
        if m := re.fullmatch(r"## (\w+)", line):
            current = tables.setdefault(m[1], [])
        elif current is not None and line.startswith("| ") and not line.startswith(("| column", "| ---")):
            names, types = (cell.strip() for cell in line.split("|")[1:3])
            names, types = names.split(", "), types.split(", ")
            current.extend(zip(names, types if len(types) == len(names) else types * len(names), strict=True))
    return {name: columns for name, columns in tables.items() if columns}


def test_every_table_and_column_is_documented_in_order():
    doc = documented()
    assert {t.name: list(t.columns) for t in TABLES} == {t.name: doc.get(t.name) for t in TABLES}


def test_the_ddl_makes_the_declared_columns():
    con = duckdb.connect()
    con.execute(DDL)
    for table in TABLES:
        described = con.execute(f"DESCRIBE {table.name}").fetchall()
        assert [(row[0], row[1]) for row in described] == list(table.columns)


def test_records_are_the_rows_after_the_evidence():
    assert OPERATIONS.names[len(EVIDENCE) :] == ROW_FIELDS == tuple(f.name for f in fields(Operation))
    anomalies = next(t for t in TABLES if t.name == "anomalies")
    assert anomalies.names[len(EVIDENCE) :] == tuple(f.name for f in fields(Anomaly))
