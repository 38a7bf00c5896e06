"""Passive sensor: capture files -> decode -> flows and reassembly -> dissectors -> DuckDB.

Importing it changes nothing process-wide: the `sorf` command (sorf/cli.py) and the ingest workers call
sensor.ingest.tune_process()."""
