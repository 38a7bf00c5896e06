"""Modbus/TCP on the shared corpus: fields frame by frame against tshark and the Zeek ICSNPP log."""

from __future__ import annotations

import json

import duckdb
import pytest

from tests.helpers.paths import SHARED
from tests.helpers.tshark import run
from tests.helpers.zeek import read_log
from tests.unit.test_modbus import EXCEPTION_CODES


def corpus_ops(corpus_db, capture: str) -> list[tuple]:
    with duckdb.connect(str(corpus_db), read_only=True) as con:
        return con.execute(
            """SELECT frame, direction, transaction_id, unit_id, function_code, function_name, address, quantity,
                      operations.status, details, src_port
               FROM operations JOIN captures USING (capture_id) JOIN flows USING (flow_id)
               WHERE path = ? AND protocol = 'modbus' ORDER BY frame, transaction_id""",
            [str(SHARED / capture)],
        ).fetchall()


@pytest.mark.parametrize(
    "capture", ["modbus/icsnpp_modbus_example.pcap", "modbus/modbus_test.pcap", "modbus/modicon_test.pcap"]
)
def test_fields_equal_tshark_frame_by_frame(corpus_db, capture):
    """Transaction id, unit, function, exception code, start address and quantity, per frame."""
    out = run(["-r", str(SHARED / capture), "-Y", "mbtcp && tcp.port == 502", "-T", "fields", "-E", "occurrence=f",
               "-e", "frame.number", "-e", "tcp.dstport", "-e", "mbtcp.trans_id", "-e", "mbtcp.unit_id",
               "-e", "modbus.func_code", "-e", "modbus.exception_code", "-e", "modbus.reference_num",
               "-e", "modbus.word_cnt", "-e", "modbus.bit_cnt"])  # fmt: skip
    ref = set()
    for line in out.splitlines():
        frame, dport, tid, unit, fc, exc, ref_num, words, bits = line.split("\t")
        request = dport == "502"
        address = int(ref_num) if ref_num and request and int(fc) in (1, 2, 3, 4, 15, 16) else None
        quantity = int(words or bits) if (words or bits) and request and int(fc) in (1, 2, 3, 4, 15, 16) else None
        ref.add((int(frame), int(tid), int(unit), int(fc) & 0x7F, int(exc) if exc else None, address, quantity))
    ours = set()
    for frame, direction, tid, unit, fc, _name, address, quantity, status, _, _ in corpus_ops(corpus_db, capture):
        exc = EXCEPTION_CODES[status] if status else None
        keep = direction == "request" and fc in (1, 2, 3, 4, 15, 16)
        ours.add((frame, tid, unit, fc, exc, address if keep else None, quantity if keep else None))
    assert len(ref) > 40 and ours == ref


def test_fields_equal_icsnpp_modbus_detailed(corpus_db):
    """ICSNPP logs one row per request/response pair; each must match ours."""
    log = read_log(SHARED / "modbus" / "icsnpp_modbus_example.zeek" / "modbus_detailed.log")
    ours = corpus_ops(corpus_db, "modbus/icsnpp_modbus_example.pcap")
    requests = {(r[10], r[2], r[3]): r for r in ours if r[1] == "request"}  # (client port, tid, unit)
    responses = {(r[10], r[2], r[3]): r for r in ours if r[1] == "response"}
    # ICSNPP logs READ_EXCEPTION_STATUS and REPORT_SLAVE_ID twice (tids 11, 15), the pairs once
    keys = [(int(row["id.orig_p"]), int(row["tid"]), int(row["unit"])) for row in log]
    assert len(set(keys)) == len(requests) == len(responses) == 24
    for key, row in zip(keys, log, strict=True):
        _, _, _, _, _, name, address, quantity, _, details, _ = requests[key]
        assert name == row["func"]
        if row["func"] in ("READ_COILS", "READ_DISCRETE_INPUTS", "READ_HOLDING_REGISTERS", "READ_INPUT_REGISTERS",
                           "WRITE_SINGLE_COIL", "WRITE_SINGLE_REGISTER", "WRITE_MULTIPLE_COILS",
                           "WRITE_MULTIPLE_REGISTERS"):  # fmt: skip
            assert (address, quantity) == (int(row["address"]), int(row["quantity"]))
        if row["request_values"]:
            assert json.loads(details)["values"] == [int(v) for v in row["request_values"].split(",")]
        assert responses[key][8] == row["exception_code"]
        if row["request_subfunction_code"]:
            sub = json.loads(requests[key][9])["subfunction_name"]
            assert sub == row["request_subfunction_code"].upper().replace(" ", "_")
        if row["mei_type"]:
            assert json.loads(requests[key][9])["subfunction_name"] == row["mei_type"].upper().replace(" ", "_")
