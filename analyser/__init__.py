"""Zones, conduits and deltas: reads what the sensor wrote to DuckDB (see docs/schema.md)."""
