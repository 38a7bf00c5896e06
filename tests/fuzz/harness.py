"""One fuzz target under atheris: ``python -m tests.fuzz.harness TARGET [libFuzzer options] [CORPUS ...]``.

The project's modules are imported instrumented (coverage guides the mutations); numpy, pyarrow and the
standard library are not. Any exception out of a check is a crash: atheris prints its traceback and
libFuzzer writes the input to the artifact prefix.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports(include=["dissectors", "sensor"]):
    from tests.fuzz import checks


def one_input(target: str):
    """The function libFuzzer calls with each input of ``target``."""
    if target in checks.DISSECTORS:
        cls = checks.DISSECTORS[target]
        return lambda data: checks.check_dissector(cls, data)
    if target == "bulk":
        return checks.check_bulk
    if target in ("pcap", "pcapng"):
        return checks.check_reader
    raise SystemExit(f"unknown fuzz target {target!r}")


def main(argv: list[str]) -> None:
    if len(argv) < 2:
        raise SystemExit(__doc__)
    test = one_input(argv[1])
    atheris.Setup([argv[0], *argv[2:]], test)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
