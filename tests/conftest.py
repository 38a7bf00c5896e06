from __future__ import annotations

import csv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "captures"


def manifest() -> list[dict]:
    with open(SHARED / "MANIFEST.tsv", newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


@pytest.fixture(scope="session")
def corpus_db(tmp_path_factory) -> Path:
    """The whole shared corpus ingested once, as a user would: `sorf ingest DIR`."""
    from sorf.cli import main

    db = tmp_path_factory.mktemp("corpus") / "corpus.duckdb"
    assert main(["ingest", str(SHARED), "--db", str(db)]) == 0
    return db
