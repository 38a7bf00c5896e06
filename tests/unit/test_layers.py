"""The layers of README's "How it is built", read from the code: which package imports which.

dissectors/ imports nothing else of sorf; sensor/ imports dissectors/ only; analyser/ reads the store through
sensor.schema (names and ports from sensor.ports, snapshots through sensor.snapshot, exports through
sensor.export) and never the sensor's internals; the command (sorf/) sits on top. The API (analyser/api.py)
sits on top too, and hands a delta's frames to sensor.evidence to copy out."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.paths import ROOT

PACKAGES = ("dissectors", "sensor", "analyser", "sorf")
ANALYSER_READS = {"sensor.schema", "sensor.ports", "sensor.snapshot", "sensor.export"}
ON_TOP = {"analyser/api.py": {"sensor.evidence"}}  # the API, like the command, sits on top


def imported(path: Path) -> set[str]:
    """The sorf modules a file imports, at any depth of the file."""
    return imports(path.read_text(), ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1]))


def imports(source: str, package: str) -> set[str]:
    """The sorf modules a module of ``package`` imports, relative imports resolved."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            module = ".".join(x for x in (base, node.module) if x)
            found |= {_submodule(module, a.name) for a in node.names}
    return {m for m in found if m.split(".")[0] in PACKAGES}


def _submodule(module: str, name: str) -> str:
    """``from module import name``: the module imported, name itself if it is a module of the tree."""
    path = ROOT.joinpath(*module.split("."), name)
    return f"{module}.{name}" if path.with_suffix(".py").is_file() or path.is_dir() else module


def files(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def test_the_import_reader_sees_relative_and_absolute_imports():
    source = (
        "from . import walk\nfrom .store import Store\nfrom dissectors import base\nimport sorf.cli\nimport numpy\n"
    )
    assert imports(source, "sensor") == {"sensor.walk", "sensor.store", "dissectors.base", "sorf.cli"}
    assert imports("def f():\n    from sensor import evidence, nothing\n", "analyser") == {"sensor.evidence", "sensor"}


@pytest.mark.parametrize("path", files("dissectors"), ids=lambda p: str(p.relative_to(ROOT)))
def test_dissectors_import_nothing_else_of_sorf(path):
    assert {m for m in imported(path) if not m.startswith("dissectors")} == set()


@pytest.mark.parametrize("path", files("sensor"), ids=lambda p: str(p.relative_to(ROOT)))
def test_the_sensor_imports_the_dissectors_only(path):
    assert {m for m in imported(path) if m.split(".")[0] not in ("sensor", "dissectors")} == set()


@pytest.mark.parametrize("path", files("analyser"), ids=lambda p: str(p.relative_to(ROOT)))
def test_the_analyser_reads_the_store_through_the_schema(path):
    allowed = ANALYSER_READS | ON_TOP.get(str(path.relative_to(ROOT)), set())
    sensor = {m for m in imported(path) if m.split(".")[0] in ("sensor", "dissectors")}
    assert sensor - allowed == set()


def test_importing_a_package_sets_nothing_process_wide():
    """gc thresholds, frozen objects, Arrow's allocator and the environment are the entry points' to set."""
    code = (
        "import gc, os; before = (gc.get_threshold(), gc.get_freeze_count(), dict(os.environ)); "
        "import pyarrow as pa; pool = pa.default_memory_pool().backend_name; "
        "import dissectors, sensor.ingest, sensor.parallel, sensor.evidence, analyser.api, sorf.cli; "
        "after = (gc.get_threshold(), gc.get_freeze_count(), dict(os.environ)); "
        "print(before == after, pool == pa.default_memory_pool().backend_name)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.split() == ["True", "True"]
