"""Run the fuzz targets: ``python -m tests.fuzz [--seconds TOTAL] [TARGET ...]`` (`make fuzz`).

Each target runs in its own process (tests.fuzz.harness) for its share of TOTAL seconds, seeded from the real
captures (tests.fuzz.seeds) plus what earlier runs found (.fuzz-corpus/corpus/TARGET). An input that raises,
runs longer than --timeout seconds or takes more than --rss-mb of memory is a crash: its file and traceback
are printed and the exit status is 1.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tests.fuzz import TARGETS
from tests.fuzz.seeds import CORPUS, ROOT, build

EXECS = re.compile(r"^#(\d+)\s", re.MULTILINE)
FINAL_EXECS = re.compile(r"stat::number_of_executed_units:\s*(\d+)")


@dataclass
class Outcome:
    target: str
    seconds: float
    execs: int
    crashes: list[Path]
    log: Path
    returncode: int

    @property
    def failed(self) -> bool:
        return bool(self.crashes) or self.returncode != 0


def run_target(target: str, seconds: int, timeout: int, rss_mb: int, root: Path = CORPUS, seed: int = 0) -> Outcome:
    """One target for ``seconds``; its log under root/logs, crash inputs under root/crashes/TARGET."""
    seeds = root / "seeds" / target
    if not seeds.is_dir() or not any(seeds.iterdir()):
        build([target], root)
    corpus, crashes, logs = root / "corpus" / target, root / "crashes" / target, root / "logs"
    for folder in (corpus, crashes, logs):
        folder.mkdir(parents=True, exist_ok=True)
    before = set(crashes.iterdir())
    log = logs / f"{target}.log"
    argv = [sys.executable, "-m", "tests.fuzz.harness", target, f"-max_total_time={seconds}", f"-timeout={timeout}",
            f"-rss_limit_mb={rss_mb}", f"-artifact_prefix={crashes}/", "-print_final_stats=1", "-max_len=8192",
            f"-seed={seed}", str(corpus), str(seeds)]  # fmt: skip
    start = time.monotonic()
    with open(log, "wb") as out:
        # the budget plus start-up and the seed pass; a target that overruns it badly is hung outside libFuzzer
        limit = seconds * 3 + 120
        proc = subprocess.run(argv, check=False, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, timeout=limit)
    elapsed = time.monotonic() - start
    text = log.read_text(errors="replace")
    found = FINAL_EXECS.findall(text) or EXECS.findall(text)
    new = sorted(set(crashes.iterdir()) - before)
    return Outcome(target, elapsed, int(found[-1]) if found else 0, new, log, proc.returncode)


def traceback_of(log: Path) -> str:
    """The Python traceback (or libFuzzer's report) of a crashed run."""
    text = log.read_text(errors="replace")
    for marker in ("=== Uncaught Python exception: ===", "==ERROR: libFuzzer", "ALARM: working on the last Unit"):
        at = text.find(marker)
        if at >= 0:
            return text[at : at + 4000]
    return text[-3000:]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.fuzz", description=__doc__.splitlines()[0])
    ap.add_argument("targets", nargs="*", metavar="TARGET", help=f"default: all of {', '.join(TARGETS)}")
    ap.add_argument("--seconds", type=int, default=600, help="total fuzzing time, shared by the targets")
    ap.add_argument("--timeout", type=int, default=10, help="seconds one input may take before it is a hang")
    ap.add_argument("--rss-mb", type=int, default=1536, help="memory one target may use")
    ap.add_argument("--seed", type=int, default=0, help="libFuzzer's random seed (0: a new one each run)")
    ap.add_argument("--reseed", action="store_true", help="rebuild the seed corpora from the captures first")
    ap.add_argument("--corpus", type=Path, default=CORPUS, help="folder of seeds, corpora, crashes and logs")
    args = ap.parse_args(argv)
    targets = args.targets or list(TARGETS)
    unknown = [t for t in targets if t not in TARGETS]
    if unknown:
        ap.error(f"unknown target(s) {', '.join(unknown)}; known: {', '.join(TARGETS)}")
    if args.reseed:
        build(targets, args.corpus)
    share = max(1, args.seconds // len(targets))
    outcomes = []
    for target in targets:
        print(f"fuzz {target}: {share} s ...", flush=True)
        o = run_target(target, share, args.timeout, args.rss_mb, args.corpus, args.seed)
        outcomes.append(o)
        state = f"{len(o.crashes)} crash(es)" if o.crashes else ("FAILED" if o.failed else "no crash")
        print(f"fuzz {target}: {o.execs} inputs in {o.seconds:.0f} s, {state} (log {o.log})", flush=True)
        for crash in o.crashes:
            print(f"  crash input: {crash}\n{traceback_of(o.log)}", flush=True)
        if o.failed and not o.crashes:
            print(f"  exit status {o.returncode}\n{traceback_of(o.log)}", flush=True)
    failed = [o.target for o in outcomes if o.failed]
    total = sum(o.execs for o in outcomes)
    print(f"fuzz: {len(outcomes)} targets, {total} inputs, {sum(o.seconds for o in outcomes):.0f} s, "
          + (f"crashes in {', '.join(failed)}" if failed else "no crash"))  # fmt: skip
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
