"""A bounded fuzz run (issue 12, section 4): every target of tests/fuzz for about a minute in all, through the
runner `make fuzz` uses, from the seeds alone (a fresh folder, so the run takes as long every time). atheris is
a test dependency: without it this test fails at import, it is not skipped."""

from __future__ import annotations

import atheris  # noqa: F401  (missing: an error, not a skip)

from tests.fuzz import TARGETS
from tests.fuzz.__main__ import main

SECONDS = 48  # and about 1.5 s per target of start-up and seed loading: about a minute


def test_a_bounded_fuzz_run_finds_no_crash(tmp_path, capsys):
    # a fixed seed: the same mutations each run (up to the machine's speed), so a new crash shows in `make fuzz`
    # (a new seed each run) and becomes a regression test, rather than failing this test now and then
    status = main(["--seconds", str(SECONDS), "--corpus", str(tmp_path), "--seed", "1"])
    out = capsys.readouterr().out
    assert status == 0, out
    assert out.splitlines()[-1].startswith(f"fuzz: {len(TARGETS)} targets,") and out.rstrip().endswith("no crash")
    for target in TARGETS:  # each ran, and libFuzzer executed inputs in it
        line = next(line for line in out.splitlines() if line.startswith(f"fuzz {target}: ") and "inputs in" in line)
        assert int(line.split()[2]) > 0, line
