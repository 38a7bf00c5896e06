"""Where the tests find the repository and the shared corpus of real captures (../shared/captures)."""

from __future__ import annotations

import csv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "captures"


def manifest() -> list[dict]:
    """The corpus' MANIFEST.tsv rows: each capture's path and its packet and PDU counts per protocol."""
    with open(SHARED / "MANIFEST.tsv", newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))
