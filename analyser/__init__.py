"""Zones, conduits and deltas: reads what the sensor wrote to DuckDB (see docs/schema.md).

- zones.py: the zone file (YAML, validated with pydantic; errors as file:line: field)
- observe.py: hosts into zones, flows and operations into observed crossings (SQL)
- deltas.py: declared against observed; `analyse(database, zone_file)` is the entry point
- report.py: table, Markdown and JSON (docs/analysis.md)
- bench.py: `make bench` on a generated 1M-flow site

The package imports nothing heavy itself: `sorf ingest` never loads it.
"""
