"""Inputs the fuzzers (tests/fuzz) found crashing, each minimised, as regression tests: each goes through the
same check its target runs (tests.fuzz.checks), and the record it broke is asserted on."""

from __future__ import annotations

from dissectors import Operation, S7comm
from dissectors.base import details_json
from tests.fuzz import checks


def test_cotp_cr_tpdu_size_code_out_of_range():
    """s7comm target: a COTP CR whose TPDU size parameter (0xC0) has code 0x41. The size was 1 << code, a
    66-bit integer that details_json (orjson) cannot write: TypeError out of the store. The code is kept
    as sent, the size only for the codes ISO 8073 defines."""
    pdu = bytes.fromhex("0300000e09e00000000100c00141")
    checks.check_dissector(S7comm, pdu)
    checks.check_bulk(bytes([checks.BULK.index(S7comm), 1, 1]) + pdu)
    (op,) = S7comm().parse(pdu, True)
    assert isinstance(op, Operation) and op.function_name == "CONNECTION_REQUEST" and op.access_class == "session"
    assert op.details["tpdu_size_code"] == 0x41 and "tpdu_size" not in op.details
    details_json(op.details)
    (whole,) = S7comm().parse(bytes.fromhex("0300000e09e00000000100c0010a"), True)  # a defined code: the size
    assert whole.details["tpdu_size"] == 1024
