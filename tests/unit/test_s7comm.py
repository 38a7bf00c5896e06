"""S7comm / S7comm-plus dissector: sans-IO unit tests on byte strings, the tables' access classes, a property
test; the comparisons with tshark and Zeek ICSNPP are tests/oracle/test_s7comm_corpus.py."""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from dissectors import ACCESS_CLASSES, IDENTITY_FIELDS, REGISTRY, Anomaly, Identity, Operation
from dissectors.s7comm import S7comm
from dissectors.s7comm import consts as m
from tests.helpers.records import ops

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
