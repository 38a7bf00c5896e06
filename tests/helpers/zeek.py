"""Zeek logs (ICSNPP baselines beside some corpus captures) as a second reference."""

from __future__ import annotations

from pathlib import Path


def read_log(path: Path) -> list[dict[str, str | None]]:
    """Rows of a Zeek ASCII log as dicts; unset ('-') and empty fields become None."""
    fields: list[str] = []
    rows = []
    for line in path.read_text().splitlines():
        if line.startswith("#fields"):
            fields = line.split("\t")[1:]
        elif line and not line.startswith("#"):
            values = line.split("\t")
            rows.append({k: (None if v in ("-", "(empty)") else v) for k, v in zip(fields, values, strict=True)})
    return rows
