"""S7comm / S7comm-plus dissector: sans-IO unit tests on byte strings, a property test,
and field-level comparisons with tshark and with Zeek ICSNPP on the shared corpus."""

from __future__ import annotations

import functools
import json
import re
import struct
from collections import Counter
from pathlib import Path

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dissectors import ACCESS_CLASSES, IDENTITY_FIELDS, REGISTRY, Anomaly, Identity, Operation
from dissectors.s7comm import S7comm
from dissectors.s7comm import consts as m
from tests.helpers.paths import SHARED
from tests.helpers.tshark import run

# ---------------------------------------------------------------- builders


def tpkt(payload: bytes) -> bytes:
    return struct.pack("!BBH", 3, 0, 4 + len(payload)) + payload


def dt(pdu: bytes, eot: bool = True) -> bytes:
    return tpkt(bytes([2, 0xF0, 0x80 if eot else 0]) + pdu)


def cr(src_tsap: bytes, dst_tsap: bytes, code: int = 0xE0) -> bytes:
    params = bytes([0xC0, 1, 0x0A, 0xC1, len(src_tsap)]) + src_tsap + bytes([0xC2, len(dst_tsap)]) + dst_tsap
    body = bytes([code]) + struct.pack("!HHB", 0, 1, 0) + params
    return tpkt(bytes([len(body)]) + body)


def s7(rosctr: int, ref: int, param: bytes, data: bytes = b"", err: tuple[int, int] = (0, 0)) -> bytes:
    head = struct.pack("!BBHHHH", 0x32, rosctr, 0, ref, len(param), len(data))
    return head + (bytes(err) if rosctr in (2, 3) else b"") + param + data


def any_item(tsize: int, length: int, db: int, area: int, byte: int, bit: int = 0) -> bytes:
    return (
        bytes([0x12, 0x0A, 0x10, tsize]) + struct.pack("!HHB", length, db, area) + (byte << 3 | bit).to_bytes(3, "big")
    )


def ud_req(group: int, sub: int, data: bytes, ref: int = 1) -> bytes:
    param = bytes([0, 1, 0x12, 4, 0x11, 0x40 | group, sub, 0])
    return s7(7, ref, param, bytes([0xFF, 9]) + struct.pack("!H", len(data)) + data)


def ud_res(group: int, sub: int, data: bytes, ref: int = 1, last: bool = True, err: int = 0, rc: int = 0xFF) -> bytes:
    param = bytes([0, 1, 0x12, 8, 0x12, 0x80 | group, sub, 1, 7, 0 if last else 1]) + struct.pack("!H", err)
    return s7(7, ref, param, bytes([rc, 9]) + struct.pack("!H", len(data)) + data)


def szl_0011() -> bytes:
    def entry(index: int, mlfb: bytes, ausbg: int, ausbe: int) -> bytes:
        return struct.pack("!H", index) + mlfb.ljust(20) + struct.pack("!HHH", 0xC0, ausbg, ausbe)

    entries = entry(1, b"6ES7 315-2EH14-0AB0", 4, 1) + entry(6, b"6ES7 315-2EH14-0AB0", 4, 1)
    entries += entry(7, b"", 0x5603, 0x0206)
    return struct.pack("!HHHH", 0x0011, 0, 28, 3) + entries


def szl_001c() -> bytes:
    def entry(index: int, text: bytes) -> bytes:
        return struct.pack("!H", index) + text.ljust(32, b"\0")

    entries = (
        entry(1, b"STATION-7") + entry(2, b"CPU 315-2 PN/DP") + entry(3, b"TANK-FARM") + entry(5, b"S C-C2UR28922012")
    )
    entries += struct.pack("!HHHH", 9, 0x2A, 0xF600, 1) + bytes(26)
    return struct.pack("!HHHH", 0x001C, 0, 34, 5) + entries


def plus(version: int, body: bytes, trailer: bool = True, digest: bytes | None = None) -> bytes:
    data = (bytes([32]) + digest if digest is not None else b"") + body
    return (
        bytes([0x72, version])
        + struct.pack("!H", len(data))
        + data
        + (bytes([0x72, version, 0, 0]) if trailer else b"")
    )


def plus_request(func: int, seq: int, session: int, rest: bytes = b"\0\0\0\0") -> bytes:
    return struct.pack("!BHHHHIB", 0x31, 0, func, 0, seq, session, 0x34) + rest


def feed_all(d: S7comm, chunks: list[tuple[bytes, bool]]) -> list:
    out = []
    for data, from_orig in chunks:
        out.extend(d.feed(data, from_orig))
    return out


def ops(records: list) -> list[Operation]:
    return [r for r in records if isinstance(r, Operation)]


# ---------------------------------------------------------------- unit tests on byte strings


def test_cotp_connection_records_tsaps():
    d = S7comm()
    recs = feed_all(d, [(cr(b"\x01\x00", b"\x01\x02"), True), (cr(b"\x01\x00", b"\x01\x02", code=0xD0), False)])
    req, conf = ops(recs)
    assert (req.protocol, req.direction, req.function_code, req.function_name) == ("cotp", "request", 0xE,
                                                                                  "CONNECTION_REQUEST")  # fmt: skip
    assert (conf.direction, conf.function_name, conf.access_class) == ("response", "CONNECTION_CONFIRM", "session")
    assert req.details["src_tsap"] == "0x0100" and req.details["dst_tsap"] == "0x0102"
    assert (req.details["connection_type"], req.details["rack"], req.details["slot"]) == ("PG", 0, 2)
    assert req.details["tpdu_size"] == 1024 and req.target == "0x0102"
    text = ops(S7comm().feed(cr(b"SIMATIC-ROOT-ES", b"\x06\x00"), True))[0]
    assert text.details["src_tsap"] == "SIMATIC-ROOT-ES"
    dr, er = ops(S7comm().feed(tpkt(bytes([6, 0x80, 0, 1, 0, 2, 0x80])) + tpkt(bytes([4, 0x70, 0, 1, 2])), True))
    assert (dr.function_name, dr.direction, dr.details["src_ref"], dr.details["reason"]) == (
        "DISCONNECT_REQUEST", "request", 2, 0x80)  # fmt: skip
    assert (er.function_name, er.status, er.details) == (
        "TPDU_ERROR",
        "TPDU error, cause 2",
        {"pdu_code": "0x07", "dst_ref": 1, "reject_cause": 2},
    )


def test_setup_read_write_and_plc_role():
    d = S7comm()
    setup = s7(1, 0x100, bytes([0xF0, 0]) + struct.pack("!HHH", 1, 1, 480))
    items = any_item(4, 1, 1, 0x84, 4) + any_item(1, 1, 0, 0x83, 0, 3) + any_item(2, 10, 5, 0x84, 2)
    read = s7(1, 0x200, bytes([0x04, 3]) + items)
    ack = s7(3, 0x200, bytes([0x04, 3]), bytes([0xFF, 4, 0, 16, 1, 2, 0x0A, 0, 0, 0, 0xFF, 4, 0, 80]) + bytes(10))
    write = s7(1, 0x300, bytes([0x05, 1]) + any_item(2, 1, 0, 0x82, 7), bytes([0, 4, 0, 8, 0xAB]))
    recs = feed_all(d, [(dt(setup), True), (dt(read), True), (dt(ack), False), (dt(write), True)])
    idents = [r for r in recs if isinstance(r, Identity)]
    assert [(i.protocol, i.role) for i in idents] == [("s7comm", "s7_plc")]  # once, for the side that answered
    o_setup, o_read, o_ack, o_write = ops(recs)
    assert (o_setup.function_name, o_setup.access_class, o_setup.details["pdu_length"]) == (
        "SETUP_COMMUNICATION", "session", 480)  # fmt: skip
    assert (o_read.function_code, o_read.function_name, o_read.access_class) == (4, "READ_VARIABLE", "read")
    assert [i["address"] for i in o_read.details["items"]] == ["DB1.DBW4", "M0.3", "P#DB5.DBX2.0 BYTE 10"]
    assert (o_read.target, o_read.address, o_read.quantity, o_read.details["item_count"]) == ("DB1.DBW4 (+2 items)", 4,
                                                                                            1, 3)  # fmt: skip
    assert o_read.details["pdu_reference"] == o_read.transaction_id == 0x200
    assert (o_ack.direction, o_ack.target, o_ack.address, o_ack.transaction_id) == ("response", "DB1.DBW4 (+2 items)",
                                                                                    4, 0x200)  # fmt: skip
    assert o_ack.status == "item 2: OBJECT_DOES_NOT_EXIST"
    assert (o_write.access_class, o_write.target, o_write.details["items"][0]["value"]) == ("write", "QB7", "ab")


def test_split_segments_and_several_pdus_in_one_segment():
    setup = dt(s7(1, 1, bytes([0xF0, 0]) + struct.pack("!HHH", 1, 1, 240)))
    read = dt(s7(1, 2, bytes([0x04, 1]) + any_item(2, 4, 0, 0x81, 0)))
    whole = [(o.function_name, o.target) for o in ops(S7comm().feed(setup + read, True))]
    assert whole == [("SETUP_COMMUNICATION", None), ("READ_VARIABLE", "P#I0.0 BYTE 4")]
    d = S7comm()
    bytewise = [rec for i in range(len(setup + read)) for rec in d.feed((setup + read)[i : i + 1], True)]
    assert [(o.function_name, o.target) for o in ops(bytewise)] == whole
    assert not [r for r in bytewise if isinstance(r, Anomaly)]


def test_cotp_dt_reassembly_across_segments():
    pdu = s7(1, 7, bytes([0x04, 1]) + any_item(5, 1, 3, 0x84, 12))
    d = S7comm()
    assert d.feed(dt(b"", eot=False), True) == []  # TIA sends empty DT units without EOT
    assert d.feed(dt(pdu[:9], eot=False), True) == []
    (op,) = d.feed(dt(pdu[9:]), True)
    assert (op.function_name, op.target) == ("READ_VARIABLE", "DB3.DBW12")
    d.feed(dt(pdu[:9], eot=False), True)
    d.gap(True)  # lost bytes: the held DT unit is dropped, not glued to the next
    assert [o.target for o in ops(d.feed(dt(pdu), True))] == ["DB3.DBW12"]


def test_ack_pairs_with_its_job_and_reports_the_error():
    d = S7comm()
    upload = s7(1, 0x600, bytes([0x1D, 0, 0, 0, 0, 0, 0, 0, 9]) + b"_0B00000A")
    recs = feed_all(d, [(dt(upload), True), (dt(s7(2, 0x600, b"", err=(0xD2, 0x41))), False)])
    job, ack = ops(recs)
    assert (job.function_name, job.access_class, job.target) == ("START_UPLOAD", "program", "SDB0")
    assert job.details["block_type"] == "SDB" and job.details["destination_filesystem"] == "A"
    assert (ack.details["rosctr_name"], ack.function_code, ack.function_name, ack.target) == (
        "ACK", 0x1D, "START_UPLOAD", "SDB0")  # fmt: skip
    assert ack.status == "The function is not permitted in the current protection level (0xd241)"


def test_pi_services_and_plc_stop():
    def pi(service: bytes, block: bytes) -> bytes:
        return (
            bytes([0x28, 0, 0, 0, 0, 0, 0, 0xFD])
            + struct.pack("!H", len(block))
            + block
            + bytes([len(service)])
            + service
        )

    inse = ops(S7comm().feed(dt(s7(1, 1, pi(b"_INSE", b"\x02\x00" + b"0800001P" + b"0A00007P"))), True))[0]
    assert (inse.function_name, inse.access_class, inse.details["pi_service"]) == ("PLC_CONTROL", "program", "_INSE")
    assert inse.details["blocks"] == ["OB1", "DB7"] and inse.target == "OB1 (+1 blocks)"
    start = ops(S7comm().feed(dt(s7(1, 1, pi(b"P_PROGRAM", b""))), True))[0]
    assert (start.access_class, start.target) == ("control", "P_PROGRAM")
    d = S7comm()
    stop = s7(1, 9, bytes([0x29, 0, 0, 0, 0, 0, 9]) + b"P_PROGRAM")
    job, ack = ops(feed_all(d, [(dt(stop), True), (dt(s7(3, 9, b"\x29")), False)]))
    assert (job.function_name, job.access_class, job.details["pi_service"]) == ("PLC_STOP", "control", "P_PROGRAM")
    assert (ack.function_name, ack.access_class, ack.status) == ("PLC_STOP", "control", None)


def test_szl_identity_and_fragmented_answer():
    d = S7comm()
    req = ops(d.feed(dt(ud_req(4, 1, struct.pack("!HH", 0x0011, 0))), True))[0]
    assert (req.function_code, req.function_name, req.access_class, req.target) == (
        0x070401, "READ_SZL", "diagnostic", "SZL 0x0011 index 0x0000")  # fmt: skip
    assert req.details["function_group_name"] == "CPU_FUNCTIONS" and req.details["type"] == "request"
    recs = d.feed(dt(ud_res(4, 1, szl_0011())), False)
    ident = [r for r in recs if isinstance(r, Identity) and r.fields]
    assert ident[0].fields == {"order_number": "6ES7 315-2EH14-0AB0", "hardware": "4", "firmware": "V3.2.6"}
    assert ident[0].role == "s7_plc" and set(ident[0].fields) <= set(IDENTITY_FIELDS)
    # an answer in two userdata PDUs: the identity comes with the last one
    answer = szl_001c()
    first = d.feed(dt(ud_res(4, 1, answer[:100], ref=2, last=False)), False)
    assert [o.details.get("fragment") for o in ops(first)] == [True]
    assert not [r for r in first if isinstance(r, Identity) and r.fields]
    rest = d.feed(dt(ud_res(4, 1, answer[100:], ref=3)), False)
    (ident,) = [r for r in rest if isinstance(r, Identity) and r.fields]
    assert ident.fields == {"system_name": "STATION-7", "module_name": "CPU 315-2 PN/DP", "plant_id": "TANK-FARM",
                            "serial_number": "S C-C2UR28922012", "vendor_id": 0x2A, "vendor": "Siemens"}  # fmt: skip
    (last,) = ops(rest)
    assert last.details["szl_records"]["automation_system_name"] == "STATION-7" and last.details["list_count"] == 5


def test_userdata_groups_clock_and_errors():
    d = S7comm()
    stamp = bytes([0, 0x19, 0x14, 0x08, 0x20, 0x11, 0x59, 0x43, 0x91, 0x24])
    set_clock = ops(d.feed(dt(ud_req(7, 2, stamp)), True))[0]
    assert (set_clock.function_name, set_clock.access_class, set_clock.details["timestamp"]) == (
        "SET_CLOCK", "write", "2014-08-20T11:59:43.912")  # fmt: skip
    info = ops(d.feed(dt(ud_res(3, 3, b"", err=0xD209, rc=0x0A)), False))[0]
    assert info.status == "(At least) one of the given blocks not found on the module (0xd209)"
    assert info.details["return_code"] == "OBJECT_DOES_NOT_EXIST"
    force = ops(d.feed(dt(ud_req(1, 9, b"")), True))[0]
    assert (force.function_name, force.access_class) == ("FORCE", "write")
    nc = ops(S7comm().feed(dt(s7(7, 1, bytes([0, 1, 0x12, 4, 0x11, 0x7F, 1, 0]), bytes([0xFF, 9, 0, 0]))), True))[0]
    assert (nc.function_code, nc.function_name, nc.access_class, nc.direction) == (
        0x073F01, "NC_REQUEST_DOWNLOAD", "program", "request")  # fmt: skip
    push = ops(S7comm().feed(dt(s7(7, 0, bytes([0, 1, 0x12, 8, 0x12, 0x01, 0x13, 3, 0, 0, 0, 0]))), False))[0]
    assert (push.direction, push.details["type"], push.function_name) == ("response", "push", "BLOCK_STATUS_V2")


def test_s7comm_plus_v3_integrity_and_flow_name():
    d = S7comm()
    assert d.name == "s7comm"
    req = plus(3, plus_request(0x04F2, 0x831A, 0x70000E4D, struct.pack("!I", 52) + b"\0"), digest=bytes(range(32)))
    (op,) = ops(d.feed(dt(req), True))
    assert d.name == "s7comm_plus" and S7comm.name == "s7comm"  # the instance is renamed, not the class
    assert (op.protocol, op.direction, op.function_code, op.function_name) == ("s7comm_plus", "request", 0x04F2,
                                                                             "SET_VARIABLE")  # fmt: skip
    assert op.details["integrity_protected"] is True and op.details["version"] == 3
    assert (op.access_class, op.target, op.transaction_id) == ("control", "NativeObjects.theCPUexecUnit_Rid", 0x831A)
    res = plus(3, struct.pack("!BHHHHB", 0x32, 0, 0x04F2, 0, 0x831A, 0) + b"\0", digest=bytes(32))
    recs = d.feed(dt(res), False)
    assert [(o.direction, o.access_class, o.target) for o in ops(recs)] == [
        ("response", "control", "NativeObjects.theCPUexecUnit_Rid")]  # fmt: skip
    assert [r.role for r in recs if isinstance(r, Identity)] == ["s7_plc"]


def test_s7comm_plus_fragments_session_and_keepalive():
    d = S7comm()
    body = plus_request(0x04CA, 1, 0x120, bytes(40))
    first, second = plus(2, body[:20], trailer=False), plus(2, body[20:])
    assert d.feed(dt(first), True) == []
    (op,) = ops(d.feed(dt(second), True))
    assert (op.function_name, op.access_class, op.target, op.details["fragments"]) == ("CREATE_OBJECT", "session",
                                                                                       "session", 2)  # fmt: skip
    note = ops(d.feed(dt(plus(2, bytes([0x33]) + struct.pack("!I", 0x7000000A) + bytes(8))), False))[0]
    assert (note.direction, note.function_code, note.function_name, note.access_class) == (
        "response", None, "NOTIFICATION", "read")  # fmt: skip
    keep = ops(d.feed(dt(bytes([0x72, 0xFF, 3, 0])), True))[0]
    assert (keep.function_name, keep.access_class) == ("KEEP_ALIVE", "session")
    error = plus(2, struct.pack("!BHHHHB", 0x32, 0, 0x054C, 0, 5, 0) + bytes([0x83, 0xFF, 0x70]) + bytes(3))
    assert ops(d.feed(dt(error), False))[0].status == "error code -16"


def test_bad_bytes_become_anomalies():
    d = S7comm()
    assert [a.kind for a in d.feed(b"\x03\x00\x00\x02garbage!", True)] == ["bad_header"]
    short = d.feed(dt(b"\x32\x01\x00"), False)
    assert [(a.protocol, a.kind) for a in short] == [("s7comm", "bad_header")]
    mms = S7comm().feed(dt(b"\x01\x00\x01\x00") + dt(b"\x01\x00\x01\x00"), True)
    assert [a.kind for a in mms] == ["bad_header"]  # once per flow for another ISO-on-TCP payload
    truncated = S7comm().feed(dt(s7(1, 1, bytes([0x04, 2]) + any_item(2, 1, 1, 0x84, 0))), True)
    assert {type(r).__name__ for r in truncated} == {"Operation", "Anomaly"}


def test_probe_and_registry_claim_port_102():
    assert S7comm.probe(cr(b"\x01\x00", b"\x01\x02"), False)
    assert S7comm.probe(b"\x03\x00", True) and not S7comm.probe(b"\x03\x00", False)
    assert not S7comm.probe(b"GET / HTTP/1.1\r\n", True)
    assert isinstance(REGISTRY.claim("tcp", 102, 49152, dt(b"\x32\x01")), S7comm)
    assert REGISTRY.claim("tcp", 102, 49152, b"\x00") is None  # a stray keep-alive byte is not S7


# ---------------------------------------------------------------- the declarative tables


@functools.cache
def _tshark_value_strings() -> str:
    return run(["-G", "values"])


def _tshark_values(field: str) -> list[tuple[int, str]]:
    out = _tshark_value_strings()
    return [(int(v, 0), name) for kind, f, v, name in (line.split("\t")[:4] for line in out.splitlines()
                                                       if line.startswith("V\t")) if f == field]  # fmt: skip


def _snake(name: str) -> str:
    return re.sub(r"[^A-Z0-9]+", "_", name.upper()).strip("_")


def test_every_wireshark_code_is_in_the_tables():
    """Wireshark 4.0's ROSCTRs, functions, userdata groups and subfunctions all have a row."""
    assert {v for v, _ in _tshark_values("s7comm.header.rosctr")} <= set(m.ROSCTR)
    assert {v for v, _ in _tshark_values("s7comm.param.func")} <= set(m.FUNCTIONS)
    groups = {0x3F if v == 15 else v for v, _ in _tshark_values("s7comm.param.userdata.funcgroup")}
    assert groups <= set(m.USERDATA_GROUPS)
    aliases = {"TIME_MEASUREMENT_FROM_TO": "TIME_MEASUREMENT", "ALARM_ACK": "ALARM_ACK",
               "READ_CLOCK_FOLLOWING": "READ_CLOCK_FOLLOWING"}  # fmt: skip
    known = {(code, name) for _g, subs, _a in m.USERDATA_GROUPS.values() for code, (name, _c) in subs.items()}
    for code, name in _tshark_values("s7comm.param.userdata.subfunc"):
        snake = aliases.get(_snake(name), _snake(name))
        assert (code, snake) in known or (code, "NC_" + snake) in known or (code, snake + "_2") in known, (code, name)
    assert {v for v, _ in _tshark_values("s7comm.param.modetrans.subfunc")} <= set(m.MODES)
    assert {v for v, _ in _tshark_values("s7comm.param.item.area")} <= set(m.AREAS)
    assert {v for v, _ in _tshark_values("s7comm.param.item.transp_size")} <= set(m.TRANSPORT_SIZES)
    assert {v for v, _ in _tshark_values("s7comm.param.item.syntaxid")} <= set(m.SYNTAX_IDS)
    assert {v for v, _ in _tshark_values("s7comm.header.errcls")} <= set(m.ERROR_CLASSES)
    errors = dict(_tshark_values("s7comm.param.errcod"))
    assert errors == {k: v for k, v in m.PARAM_ERRORS.items() if k in errors} and len(errors) > 200
    assert {v for v, _ in _tshark_values("s7comm.data.returncode")} <= set(m.RETURN_CODES)


def test_access_classes_are_valid():
    classes = [a for _n, _d, a in m.COTP_TPDUS.values()] + [a for _n, a in m.FUNCTIONS.values()]
    classes += list(m.PI_SERVICES.values()) + [a for _n, a in m.S7P_FUNCTIONS.values()]
    for _g, subs, default in m.USERDATA_GROUPS.values():
        classes += [default] + [a for _n, a in subs.values()]
    assert set(classes) <= set(ACCESS_CLASSES)
    assert m.FUNCTIONS[0x04][1] == "read" and m.FUNCTIONS[0x05][1] == "write" and m.FUNCTIONS[0x29][1] == "control"
    assert {m.FUNCTIONS[f][1] for f in (0x1A, 0x1B, 0x1C, 0x1D, 0x1E, 0x1F)} == {"program"}
    assert m.PI_SERVICES["P_PROGRAM"] == "control" and m.PI_SERVICES["_DELE"] == "program"


# ---------------------------------------------------------------- property test

_SAMPLES = [
    cr(b"\x01\x00", b"\x01\x02"),
    dt(s7(1, 1, bytes([0x04, 2]) + any_item(2, 1, 1, 0x84, 0) + any_item(1, 1, 0, 0x83, 0))),
    dt(ud_res(4, 1, szl_0011())),
    dt(ud_res(4, 1, szl_001c()[:90], last=False)) + dt(ud_res(4, 1, szl_001c()[90:])),
    dt(plus(3, plus_request(0x054C, 2, 0x388, b"\0\0\0\0\x01\x05\x00\x88\xd0\xb8\x80\x02\x01"), digest=bytes(32))),
    dt(plus(2, plus_request(0x04CA, 1, 0x120, bytes(30)), trailer=False)) + dt(plus(2, bytes(10))),
]


@settings(max_examples=400, deadline=None)
@given(
    st.sampled_from(_SAMPLES),
    st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)), max_size=6),
    st.integers(0, 400),
    st.binary(max_size=64),
    st.booleans(),
)
def test_never_raises_on_mutated_or_random_bytes(sample, flips, cut, noise, from_orig):
    data = bytearray(sample)
    for pos, value in flips:
        if data:
            data[pos % len(data)] = value
    d = S7comm()
    records = d.feed(bytes(data[:cut]), from_orig) + d.feed(bytes(data[cut:]) + noise, not from_orig)
    records += d.gap(from_orig) + d.feed(noise + bytes(data), from_orig)
    assert all(isinstance(r, (Operation, Identity, Anomaly)) for r in records)
    assert all(o.access_class in ACCESS_CLASSES for o in ops(records))
    S7comm.probe(bytes(data[:cut]), from_orig)


# ---------------------------------------------------------------- the corpus: tshark and Zeek ICSNPP

S7_CAPTURES = sorted(p for folder in ("s7comm", "s7comm_plus") for p in (SHARED / folder).glob("*.pcap*"))


@pytest.fixture(scope="module")
def db(tmp_path_factory) -> duckdb.DuckDBPyConnection:
    from sorf.cli import main

    path = tmp_path_factory.mktemp("s7") / "s7.duckdb"
    assert (
        main(["ingest", *map(str, S7_CAPTURES), str(SHARED / "mixed" / "zeek_modbusBig.pcap"), "--db", str(path)]) == 0
    )
    con = duckdb.connect(str(path), read_only=True)
    yield con
    con.close()


def _ours(db, capture: str, protocol: str = "s7comm") -> list[tuple]:
    """(frame, direction, function_code, function_name, access, status, target, details) in frame order."""
    rows = db.execute(
        "SELECT frame, direction, function_code, function_name, access_class, o.status, target, details"
        " FROM operations o JOIN captures c USING (capture_id) WHERE c.path = ? AND protocol = ? ORDER BY frame",
        [str(SHARED / capture), protocol],
    ).fetchall()
    return [(*r[:7], json.loads(r[7]) if r[7] else {}) for r in rows]


def _tshark(capture: str, display: str, *fields: str) -> list[list[list[str]]]:
    out = run(["-r", str(SHARED / capture), "-Y", display, "-T", "fields", "-E", "occurrence=a", "-E", "aggregator=|",
               *(x for f in fields for x in ("-e", f))])  # fmt: skip
    return [[v.split("|") if v else [] for v in line.split("\t")] for line in out.splitlines()]


def test_no_dissector_errors_and_flow_names(db):
    assert db.execute(
        "SELECT count(*) FROM anomalies WHERE kind IN ('dissector_error', 'internal_error')"
    ).fetchone() == (0,)
    bad = db.execute("SELECT count(*) FROM anomalies WHERE protocol IN ('s7comm', 's7comm_plus', 'cotp')"
                     " AND kind <> 'reassembly_gap'").fetchone()  # fmt: skip
    assert bad == (0,)  # every S7 PDU of the corpus decodes cleanly
    names = dict(db.execute("SELECT regexp_extract(c.path, '[^/]+/[^/]+$'), list(DISTINCT app_protocol ORDER BY"
                            " app_protocol) FROM flows f JOIN captures c USING (capture_id) WHERE 102 IN (src_port,"
                            " dst_port) GROUP BY ALL").fetchall())  # fmt: skip
    assert names["s7comm_plus/icsnpp_s7comm_plus.pcap"] == ["s7comm", "s7comm_plus"]
    assert names["s7comm_plus/S7-1511_db2_var1_HMI.pcap"] == ["s7comm_plus"]
    assert names["s7comm/s7comm_clean.pcap"] == ["s7comm"]


@pytest.mark.parametrize("capture", ["s7comm/icsnpp_snap7.pcap", "s7comm/wincc_s300_setup-alarm-read.pcapng",
                                     "s7comm/s7comm_varservice_libnodavedemo.pcap",
                                     "s7comm_plus/icsnpp_s7comm_plus.pcap"])  # fmt: skip
def test_read_write_items_equal_tshark(db, capture):
    """Area, DB, byte and bit (or counter/timer number) of every item of every Read/Write Var job, frame by frame."""
    ref = {}
    for frame, areas, dbs, byte, bit, number in _tshark(
        capture, "s7comm.header.rosctr == 1 && s7comm.param.itemcount", "frame.number", "s7comm.param.item.area",
        "s7comm.param.item.db", "s7comm.param.item.address.byte", "s7comm.param.item.address.bit",
        "s7comm.param.item.address.number",
    ):  # fmt: skip
        bytes_bits, numbers, items = iter(zip(byte, bit)), iter(number), []
        for area_code, db_number in zip(areas, dbs):
            area = m.AREAS[int(area_code, 16)]
            where = (int(next(numbers)),) if area in ("C", "T") else tuple(map(int, next(bytes_bits)))
            items.append((area, int(db_number) if area in ("DB", "DI") else None, where))
        ref[int(frame[0])] = items
    ours = {
        frame: [(i["area"], i.get("db"), (i["number"],) if "number" in i else (i["byte"], i["bit"]))
                for i in d["items"]]
        for frame, direction, func, *_r, d in _ours(db, capture) if direction == "request" and func in (4, 5)
    }  # fmt: skip
    assert ours == ref and ref


@pytest.mark.parametrize("capture", ["s7comm/icsnpp_snap7.pcap", "s7comm/s7comm_reading_plc_status.pcap",
                                     "s7comm/tia_s300_goOnline.pcapng", "s7comm/icsnpp_s7ident.pcap"])  # fmt: skip
def test_szl_ids_equal_tshark(db, capture):
    ref = {int(f[0]): (int(i[0], 16), int(x[0], 16)) for f, i, x in _tshark(
        capture, "s7comm.data.userdata.szl_id", "frame.number", "s7comm.data.userdata.szl_id",
        "s7comm.data.userdata.szl_index")}  # fmt: skip
    ours = {f: (d["szl_id"], d["szl_index"]) for f, *_r, d in _ours(db, capture) if "szl_id" in d}
    assert ours == ref and ref


@pytest.mark.parametrize("capture", ["s7comm/icsnpp_snap7.pcap", "s7comm/step7_s300_download.pcapng",
                                     "s7comm/s7comm_downloading_block_db1.pcap", "s7comm/icsnpp_s7ident.pcap"])  # fmt: skip
def test_pi_services_blocks_and_errors_equal_tshark(db, capture):
    rows = _tshark(
        capture,
        "s7comm",
        "frame.number",
        "s7comm.param.pistart.servicename",
        "s7comm.data.blockcontrol.block_type",
        "s7comm.data.blockcontrol.block_number",
        "s7comm.param.errcod",
    )
    ours = {f: (t, s, d) for f, _d, _c, _n, _a, s, t, d in _ours(db, capture)}
    checked = 0
    for frame, service, btype, bnum, err in rows:
        target, status, details = ours[int(frame[0])]
        if service:
            assert details["pi_service"] == service[0]
            checked += 1
        if btype and not service:  # an upload/download file name: the block it acts on
            assert target == m.BLOCK_TYPES[btype[0].encode()] + str(int(bnum[0]))
            checked += 1
        if err and int(err[0], 16):
            assert status.endswith(f"(0x{int(err[0], 16):04x})")
            checked += 1
    assert checked


def test_cotp_tsaps_equal_tshark(db):
    """Every COTP CR and CC of the corpus, with its calling and called TSAP as tshark shows them."""
    total = 0
    for path in S7_CAPTURES:
        capture = str(path.relative_to(SHARED))
        ref = {int(f[0]): (int(t[0], 16), s[0], d[0]) for f, t, s, d in _tshark(
            capture, "cotp.type == 0x0e || cotp.type == 0x0d", "frame.number", "cotp.type", "cotp.src-tsap",
            "cotp.dst-tsap")}  # fmt: skip
        ours = {f: (c, d["src_tsap"], d["dst_tsap"]) for f, _dir, c, *_r, d in _ours(db, capture, "cotp")}
        assert ours == ref, capture
        total += len(ref)
    assert total == 36


# Zeek ICSNPP logs (cisagov/icsnpp-s7comm test baselines)


def _zeek(capture: str, log: str) -> list[dict]:
    path = SHARED / (capture.rsplit(".", 1)[0] + ".zeek") / log
    fields: list[str] = []
    rows = []
    for line in Path(path).read_text().splitlines():
        if line.startswith("#fields"):
            fields = line.split("\t")[1:]
        elif not line.startswith("#"):
            rows.append(dict(zip(fields, line.split("\t"))))
    return rows


def _swap16(v: int) -> int:
    return (v >> 8) | ((v & 0xFF) << 8)


def _icsnpp_key(row: dict) -> tuple:
    """An ICSNPP s7comm.log row as (is_orig, rosctr, PDU ref, function, subfunction, error code).
    ICSNPP reads the PDU reference little-endian: the byte-swapped value of Wireshark's."""
    rosctr = int(row["rosctr_code"])
    if rosctr == 7:
        func = _snake(row["function_name"].split(": ", 1)[1])  # "Request: CPU Functions" -> CPU_FUNCTIONS
        sub = _snake(row["subfunction_name"])
    else:
        func, sub = _snake(row["function_name"]), row["subfunction_code"] if row["subfunction_code"] != "-" else None
    err = None if row["error_code"] == "-" else int(row["error_code"], 16)
    return row["is_orig"] == "T", rosctr, int(row["pdu_reference"]), func, sub, err


def _sorf_key(op: tuple) -> tuple:
    _f, direction, code, name, _a, _s, _t, d = op
    rosctr = d["rosctr"]
    ref = _swap16(d["pdu_reference"])
    if rosctr == 7:
        return direction == "request", 7, ref, d["function_group_name"], d["subfunction_name"], d.get(
            "error_code", 0) if direction == "response" else None  # fmt: skip
    err = d["error_code"] if rosctr == 3 else None
    # ICSNPP gives the PI service of a PLC Control job as its subfunction (not that of PLC Stop)
    return direction == "request", rosctr, ref, name, d.get("pi_service") if rosctr == 1 and code == 0x28 else None, err


@pytest.mark.parametrize(("capture", "extra"), [
    ("s7comm/icsnpp_snap7.pcap", {6: "first part of a two-PDU SZL answer", 7: "request for the rest of it",
                                  44: "ACK (ROSCTR 2) refusing Start Upload: ICSNPP logs no ACKs"}),
    ("s7comm/icsnpp_s7ident.pcap", {21: "ACK", 23: "ACK", 26: "ACK", 29: "ACK"}),
    ("s7comm_plus/icsnpp_s7comm_plus.pcap", {}),
])  # fmt: skip
def test_s7comm_log_equals_icsnpp(db, capture, extra):
    """Every ICSNPP s7comm.log row is one sorf operation, in order, with the same ROSCTR, PDU reference,
    function (and PI service), subfunction and error code; sorf has these extra rows only."""
    ours = _ours(db, capture)
    rows = [_icsnpp_key(r) for r in _zeek(capture, "s7comm.log")]
    skipped, i = [], 0
    for row in rows:
        while _sorf_key(ours[i]) != row:
            skipped.append(ours[i][0])
            i += 1
        i += 1
    skipped += [o[0] for o in ours[i:]]
    assert skipped == sorted(extra) and len(rows) == len(ours) - len(extra)


def test_s7comm_plus_log_equals_icsnpp(db):
    capture = "s7comm_plus/icsnpp_s7comm_plus.pcap"
    ref = Counter((int(r["version"]), int(r["opcode"], 16), _snake(r["opcode_name"]),
                   None if r["function_code"] == "-" else int(r["function_code"], 16),
                   None if r["function_name"] == "-" else _snake(r["function_name"]))
                  for r in _zeek(capture, "s7comm_plus.log"))  # fmt: skip
    ours = Counter((d["version"], d["opcode"], d["opcode_name"], c, n if c is not None else None)
                   for _f, _dir, c, n, _a, _s, _t, d in _ours(db, capture, "s7comm_plus"))  # fmt: skip
    assert ours == ref and sum(ref.values()) == 121
    integrity = {d.get("integrity_protected") for *_r, d in _ours(db, capture, "s7comm_plus")}
    assert integrity == {True}  # V3 with an integrity part: every PDU


def test_identity_equals_icsnpp_known_devices(db):
    capture = "s7comm/icsnpp_s7ident.pcap"
    (dev,) = _zeek(capture, "s7comm_known_devices.log")
    records = [d["szl_records"] for *_r, d in _ours(db, capture) if "szl_records" in d]
    component = next(r for r in records if "module_serial" in r)
    assert (component["automation_system_name"], component["module_name"], component["module_serial"]) == (
        dev["automation_system_name"], dev["module_name"], dev["module_serial"])  # fmt: skip
    assert dev["plant_name"] == "(empty)" and component["plant_name"] == ""
    fields = dict(db.execute("SELECT field, value FROM identities i JOIN captures c USING (capture_id) WHERE c.path = ?"
                             " AND field IS NOT NULL", [str(SHARED / capture)]).fetchall())  # fmt: skip
    assert fields == {"module_name": "CPU 315-2 PN/DP", "serial_number": "S C-C2UR28922012", "order_number":
                      "6ES7 315-2EH14-0AB0", "product_name": "CPU 315-2 PN/DP", "firmware": "V3.2.6", "hardware": "4",
                      "vendor_id": "42", "vendor": "Siemens", "system_name": dev["automation_system_name"]}  # fmt: skip
    roles = db.execute("SELECT DISTINCT ip, role FROM identities i JOIN captures c USING (capture_id) WHERE c.path = ?"
                       " AND role IS NOT NULL", [str(SHARED / "s7comm/icsnpp_snap7.pcap")]).fetchall()  # fmt: skip
    assert roles == [("134.217.61.211", "s7_plc")]  # the side that answers, never the client


def test_read_szl_and_upload_logs_equal_icsnpp(db):
    capture = "s7comm/icsnpp_snap7.pcap"
    ours = _ours(db, capture)
    szl = [(r["is_orig"] == "T", int(r["pdu_reference"]), int(r["szl_id"], 16), int(r["szl_index"], 16))
           for r in _zeek(capture, "s7comm_read_szl.log")]  # fmt: skip
    mine = [(o[1] == "request", _swap16(o[7]["pdu_reference"]), o[7]["szl_id"], o[7]["szl_index"]) for o in ours
            if "szl_id" in o[7]]  # fmt: skip
    # ICSNPP logs no response for the SZL 0x001C answer that spans two PDUs (pdu 2/3); sorf has it, at its last part
    assert mine == szl[:3] + [(False, 3, 0x001C, 0)] + szl[3:]
    updown = [(r["is_orig"] == "T", int(r["pdu_reference"]), _snake(r["function_name"]), r["session_id"],
               r["blocklength"], r["filename"], r["block_number"], r["destination_filesystem"])
              for r in _zeek(capture, "s7comm_upload_download.log")]  # fmt: skip
    mine = [(o[1] == "request", _swap16(o[7]["pdu_reference"]), o[3], str(o[7].get("session_id", "-")),
             str(o[7].get("blocklength", o[7].get("data_length", "-"))), o[7].get("filename", "-"),
             f"{o[7]['block_number']:05d}" if "block_number" in o[7] else "-",
             {"A": "Active", "P": "Passive"}.get(o[7].get("destination_filesystem"), "-"))
            for o in ours if o[2] in (0x1D, 0x1E, 0x1F) and o[7]["rosctr"] != 2]  # fmt: skip
    # ICSNPP's blocklength is the block length of a Start Upload answer and the data length of an Upload answer;
    # its session_id is the upload id of Upload / End Upload jobs and of a Start Upload answer (0 in the job)
    assert [r[:3] + r[4:] for r in mine] == [r[:3] + r[4:] for r in updown]
    assert [r[3] for r in mine if r[3] != "-"] == [r[3] for r in updown if r[3] != "-"]
