from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.paths import SHARED


@pytest.fixture(scope="session")
def corpus_db(tmp_path_factory) -> Path:
    """The whole shared corpus ingested once, as a user would: `sorf ingest DIR`."""
    from sorf.cli import main

    db = tmp_path_factory.mktemp("corpus") / "corpus.duckdb"
    assert main(["ingest", str(SHARED), "--db", str(db)]) == 0
    return db
