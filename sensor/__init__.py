"""Passive sensor: capture files -> decode -> flows and reassembly -> dissectors -> DuckDB."""
