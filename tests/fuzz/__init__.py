"""Fuzzing (issue 12, section 4): an atheris harness per dissector and for the capture readers.

``tests.fuzz.checks`` holds the properties, plain functions of the input bytes, so a regression test calls the
same check the fuzzer does; ``tests.fuzz.harness`` runs one target under atheris (libFuzzer) in its own process;
``tests.fuzz.seeds`` builds each target's seed corpus from the shared captures into .fuzz-corpus/ (never
committed); ``python -m tests.fuzz`` runs the targets one after the other and reports crashes, hangs and
out-of-memory inputs.
"""

TARGETS = ("modbus", "dnp3", "s7comm", "enip", "cip_io", "bulk", "pcap", "pcapng")
