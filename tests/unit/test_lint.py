"""The tree is ruff clean, with the ruff the test extras pin (pyproject.toml): a lint finding fails the suite
instead of piling up (issue 13 found 44). The rules are the families pyproject.toml selects, each with why."""

from __future__ import annotations

import subprocess
import sys

from tests.helpers.paths import ROOT


def test_ruff_check_is_clean():
    res = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", str(ROOT)],
                         check=False, capture_output=True, text=True)  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr


def test_ruff_format_leaves_the_tree_as_it_is():
    res = subprocess.run([sys.executable, "-m", "ruff", "format", "--check", "--no-cache", str(ROOT)],
                         check=False, capture_output=True, text=True)  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
