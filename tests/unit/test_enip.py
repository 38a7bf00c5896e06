"""EtherNet/IP, CIP and CIP I/O: sans-IO unit tests on byte strings and robustness; the field-level comparisons
with tshark and Zeek ICSNPP on the shared corpus are tests/oracle/test_enip_corpus.py."""

from __future__ import annotations

import json
import re
import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from dissectors import ACCESS_CLASSES, IDENTITY_FIELDS, Anomaly, CipIO, EtherNetIP, Identity, Operation
from dissectors.cip.consts import COMMON_SERVICES, OBJECT_SERVICES
from dissectors.cip.names import service_info
from dissectors.cip.path import parse_path
from dissectors.enip.consts import COMMANDS
from tests.helpers.enip import cpf, enip, logical, msp, reply, request, rr, symbol, unit
from tests.helpers.records import ops

NAME = re.compile(r"[A-Z][A-Z0-9_]*(_0x[0-9A-F]+)?")  # upper snake case; unnamed codes as PREFIX_0x4B

SOCKADDR = struct.pack(">HH4s8x", 2, 44818, bytes([10, 1, 1, 164]))  # big endian, as in the spec
IDENTITY_ITEM = struct.pack("<H", 1) + SOCKADDR + struct.pack("<HHHBBHIB", 1, 12, 58, 4, 3, 0x30, 0x524D8E, 11)
LIST_IDENTITY_REPLY = enip(0x63, cpf((0x000C, IDENTITY_ITEM + b"1756-ENBT/A\x03")))
FO_FIELDS = (7, 249, 0x80000014, 0x80FE0013, 20, 77, 0x32952BF3, 0, 8000000, 0x43F4, 8000000, 0x43F4, 0xA3, 3)
FORWARD_OPEN = request(
    0x54, logical(0x06, 1), struct.pack("<BBIIHHIB3xIHIHBB", *FO_FIELDS) + b"\x01\x00" + logical(0x02, 1)
)
FORWARD_OPEN_REPLY = reply(0x54, data=struct.pack("<IIHHIIIBB", 0x00790301, 0x80FE0013, 20, 77, 0x32952BF3, 8000000,
                                                  8000000, 0, 0))  # fmt: skip


# --- framing ----------------------------------------------------------------------------------------------------


def test_several_pdus_in_one_segment_and_one_split_byte_by_byte():
    register = enip(0x65, struct.pack("<HH", 1, 0))
    read = rr(request(0x0E, logical(0x01, 1, 7)))
    d = EtherNetIP()
    recs = d.feed(register + read + read[:5], True)
    assert [(o.protocol, o.function_name) for o in ops(recs)] == [
        ("enip", "REGISTER_SESSION"), ("enip", "SEND_RR_DATA"), ("cip", "GET_ATTRIBUTES_SINGLE")]  # fmt: skip
    tail: list = []
    for i in range(5, len(read)):
        tail.extend(d.feed(read[i : i + 1], True))
        if i < len(read) - 1:
            assert tail == []  # nothing until the last byte of the PDU
    assert [o.function_name for o in ops(tail)] == ["SEND_RR_DATA", "GET_ATTRIBUTES_SINGLE"]
    assert ops(tail)[1].target == "class 0x01 instance 1 attribute 7"


def test_garbage_is_reported_once_and_the_stream_resyncs():
    d = EtherNetIP()
    recs = d.feed(b"\xff" * 30 + enip(0x66, session=5), True)
    anomalies = [r for r in recs if isinstance(r, Anomaly)]
    assert [a.kind for a in anomalies] == ["bad_header"]
    assert [o.function_name for o in ops(recs)] == ["UNREGISTER_SESSION"]
    # after a gap, bytes from the middle of a PDU are skipped quietly up to the next plausible header
    d.gap(True)
    recs = d.feed(rr(request(0x01, logical(0x01, 1)))[7:] + enip(0x66, session=5), True)
    assert [r for r in recs if isinstance(r, Anomaly)] == []
    assert [o.function_name for o in ops(recs)] == ["UNREGISTER_SESSION"]


def test_truncated_datagram_is_an_anomaly():
    recs = EtherNetIP().datagram(LIST_IDENTITY_REPLY[:40], False)
    assert [(type(r).__name__, getattr(r, "kind", None)) for r in recs] == [("Anomaly", "truncated_pdu")]


# --- encapsulation ----------------------------------------------------------------------------------------------


def test_list_identity_request_reply_and_identity():
    d = EtherNetIP()
    (req,) = d.datagram(enip(0x63, context=b"\0\0\xc1\xde\xbe\xd1\0\0"), True)
    assert (req.direction, req.function_name, req.access_class) == ("request", "LIST_IDENTITY", "diagnostic")
    assert req.status is None
    recs = d.datagram(LIST_IDENTITY_REPLY, True)  # a broadcast reply: the content says it is a reply
    (op,) = ops(recs)
    (ident,) = [r for r in recs if isinstance(r, Identity)]
    assert op.direction == "response"
    assert op.details["items"] == [{"type_id": 0x0C, "length": 45}]
    assert ident.fields == {
        "vendor_id": 1, "vendor": "Rockwell Automation/Allen-Bradley", "device_type": "Communications Adapter",
        "product_code": 58, "revision": "4.3", "serial_number": "0x00524d8e", "product_name": "1756-ENBT/A",
        "address": "10.1.1.164:44818",
    }  # fmt: skip
    assert set(ident.fields) <= set(IDENTITY_FIELDS)
    assert (
        op.details["identity"][0]["device_status"] == "0x0030" and op.details["identity"][0]["device_state"] == "0x0003"
    )


def test_register_session_direction_and_error_status():
    d = EtherNetIP()
    (req,) = d.feed(enip(0x65, struct.pack("<HH", 1, 0)), False)  # direction from content, not from the side
    (rsp,) = d.feed(enip(0x65, struct.pack("<HH", 1, 0), session=0x12020100), True)
    assert (req.direction, rsp.direction) == ("request", "response")
    assert rsp.details["session_handle"] == "0x12020100" and rsp.access_class == "session"
    (err,) = d.feed(enip(0x6F, struct.pack("<IH", 0, 0), session=7, status=0x64), True)
    assert (err.direction, err.status, err.details["enip_status_code"]) == ("response", "INVALID_SESSION_HANDLE", 0x64)


def test_direction_falls_back_to_the_client_side():
    d = EtherNetIP()
    d.client_is_orig = False  # the registry found port 44818 on the originator
    (status,) = d.feed(enip(0x72, b"\0\0"), True)
    (cancel,) = d.feed(enip(0x73), False)
    assert (status.function_name, status.direction, cancel.function_name, cancel.direction) == (
        "INDICATE_STATUS", "response", "CANCEL", "request")  # fmt: skip
    (nop,) = d.feed(enip(0x00, b"\xaa" * 4), True)  # a NOP is always a request, whoever sends it
    assert nop.direction == "request"


def test_every_encapsulation_command_has_a_name_and_access_class():
    assert {c: COMMANDS[c][0] for c in (0x00, 0x04, 0x63, 0x64, 0x65, 0x66, 0x6F, 0x70, 0x72, 0x73)} == {
        0x00: "NOP", 0x04: "LIST_SERVICES", 0x63: "LIST_IDENTITY", 0x64: "LIST_INTERFACES", 0x65: "REGISTER_SESSION",
        0x66: "UNREGISTER_SESSION", 0x6F: "SEND_RR_DATA", 0x70: "SEND_UNIT_DATA", 0x72: "INDICATE_STATUS",
        0x73: "CANCEL",
    }  # fmt: skip
    assert all(access in ACCESS_CLASSES and NAME.fullmatch(name) for name, access in COMMANDS.values())
    for command in COMMANDS:
        (op,) = ops(EtherNetIP().feed(enip(command), True))
        assert op.function_code == command


# --- CIP --------------------------------------------------------------------------------------------------------


def test_service_table_covers_every_code_with_valid_access():
    for class_id in (None, 0x01, 0x06, 0x37, 0x6B, 0x8E, 0xA1, 0x300):
        for service in range(0x80):
            name, access = service_info(class_id, service)
            assert access in ACCESS_CLASSES and NAME.fullmatch(name), (class_id, service)
    for code in range(0x01, 0x1D):
        assert code in COMMON_SERVICES or service_info(None, code)[0] == f"RESERVED_0x{code:02X}"
    assert all(0x4B <= s <= 0x63 or s in (0x08, 0x09) for _, s in OBJECT_SERVICES)
    expected = {
        (0x01, 0x0E): ("GET_ATTRIBUTES_SINGLE", "read"), (0x01, 0x10): ("SET_ATTRIBUTES_SINGLE", "write"),
        (0x01, 0x05): ("RESET", "control"), (0x8E, 0x06): ("START", "control"), (0x8E, 0x07): ("STOP", "control"),
        (0x6B, 0x4C): ("READ_DATA", "read"), (0x6B, 0x52): ("READ_DATA_FRAGMENTED", "read"),
        (0x6B, 0x4D): ("WRITE_DATA", "write"), (0x6B, 0x53): ("WRITE_DATA_FRAGMENTED", "write"),
        (0x6B, 0x4E): ("READ_WRITE_MODIFY_DATA", "write"), (0x06, 0x4E): ("FORWARD_CLOSE", "session"),
        (0x06, 0x54): ("FORWARD_OPEN", "session"), (0x06, 0x5B): ("LARGE_FORWARD_OPEN", "session"),
        (0x06, 0x52): ("UNCONNECTED_SEND", "other"), (0x37, 0x4F): ("UPLOAD_TRANSFER", "program"),
        (0x37, 0x4C): ("INITIATE_DOWNLOAD", "program"), (0x6A, 0x50): ("PROGRAM_DOWNLOAD_TRANSFER", "program"),
        (0xA1, 0x4D): ("WRITE_DATA", "program"), (0x72, 0x4C): ("READ_DATA", "read"),
        (0x8E, 0x4B): ("UNKNOWN_0x4B", "other"), (0x04, 0x40): ("VENDOR_SPECIFIC_0x40", "other"),
        (0x6A, 0x08): ("CREATE", "program"), (0x04, 0x08): ("CREATE", "write"),
    }  # fmt: skip
    assert {k: service_info(*k) for k in expected} == expected


def test_epath_segments():
    b = bytes([0x21, 0, 0x34, 0x12, 0x26, 0, 0x78, 0x56, 0x34, 0x12, 0x30, 7, 0x28, 3, 0x2C, 100])
    p = parse_path(b, 0, len(b))
    assert p.fields == {"class_id": 0x1234, "instance_id": 0x12345678, "attribute_id": 7, "member_id": 3,
                        "connection_point": 100}  # fmt: skip
    assert p.target() == "class 0x1234 instance 305419896 attribute 7 member 3 connection point 100" and p.complete
    b = symbol("Program:Main") + symbol("Tag") + bytes([0x28, 2, 0x29, 0, 0x10, 0x01]) + symbol("x")
    p = parse_path(b, 0, len(b))
    assert p.target() == "Program:Main.Tag[2,272].x" and p.fields == {"symbol": "Program:Main.Tag[2,272].x"}
    p = parse_path(b := bytes([0x01, 0x00, 0x12, 0x09]) + b"10.0.0.20\0" + logical(0x02, 1), 0, len(b))
    assert p.route == ["port 1 address 0", "port 2 address 10.0.0.20"] and p.target() == "class 0x02 instance 1"
    p = parse_path(b := bytes([0x34, 0x04, 1, 0, 14, 0, 0x36, 0, 0x93, 5]) + logical(0x04, 0x64), 0, len(b))
    assert p.fields["electronic_key"] == "vendor 1 device type 14 product code 54 revision 19.5" and p.complete
    p = parse_path(b := bytes([0xE0, 1, 0x20, 1]), 0, len(b))  # reserved segment type: stop, keep what is known
    assert not p.complete and p.target() is None


def test_request_and_reply_pairing_with_status():
    d = EtherNetIP()
    d.feed(rr(request(0x0E, logical(0x01, 1, 7)), context=b"AAAAAAAA"), True)
    d.feed(rr(request(0x10, logical(0xF5, 1, 6)), context=b"BBBBBBBB"), True)
    # replies in the opposite order: paired by sender context
    (_, set_rsp) = d.feed(rr(reply(0x10, 0x0E, (0x1234,)), context=b"BBBBBBBB"), False)
    (_, get_rsp) = d.feed(rr(reply(0x0E, data=b"\x0bABC"), context=b"AAAAAAAA"), False)
    assert (set_rsp.direction, set_rsp.function_name) == ("response", "SET_ATTRIBUTES_SINGLE")
    assert set_rsp.access_class == "write"
    assert set_rsp.status == "ATTRIBUTE_NOT_SETTABLE" and set_rsp.target == "class 0xf5 instance 1 attribute 6"
    assert set_rsp.details["cip_status_code"] == 0x0E and set_rsp.details["cip_extended_status_code"] == 0x1234
    assert (
        get_rsp.status is None and get_rsp.details["class_name"] == "Identity" and get_rsp.details["attribute_id"] == 7
    )
    (_, lone) = d.feed(rr(reply(0x0E), context=b"CCCCCCCC"), False)  # no request: the path stays empty
    assert lone.target is None and "class_id" not in lone.details


def test_multiple_service_packet_container_and_embedded_rows():
    d = EtherNetIP()
    req = msp(request(0x03, logical(0x01, 1), struct.pack("<3H", 2, 1, 7)), request(0x4C, symbol("Speed"), b"\x01\x00"),
              request(0x4D, symbol("Setpoint"), struct.pack("<HHi", 0xC4, 1, 42)))  # fmt: skip
    (encap, *recs) = ops(d.feed(unit(0x007C0B01, 1929, req), True))
    assert (encap.protocol, encap.transaction_id, encap.details["connection_id"]) == ("enip", 1929, "0x007c0b01")
    assert [(o.function_name, o.access_class, o.target, o.quantity) for o in recs] == [
        ("MULTIPLE_SERVICE_PACKET", "other", "class 0x02 instance 1", 3),
        ("GET_ATTRIBUTE_LIST", "read", "class 0x01 instance 1", 2),
        ("READ_DATA", "read", "Speed", 1), ("WRITE_DATA", "write", "Setpoint", 1)]  # fmt: skip
    container = recs[0].details["cip_index"]
    links = [(o.details["container_index"], o.details["service_index"]) for o in recs[1:]]
    assert links == [(container, 1), (container, 2), (container, 3)]
    assert all(o.transaction_id == 1929 and o.details["connection_id"] == "0x007c0b01" for o in recs)
    assert recs[1].details["attribute_list"] == [1, 7] and recs[3].details["data_type"] == "0x00c4"
    rsp = msp(reply(0x03, data=b"\x00\x00"), reply(0x4C, 0x04), reply(0x4D), response=True, status=0x1E)
    back = ops(d.feed(unit(0x80FE0013, 1929, rsp), False), "cip")
    assert [(o.direction, o.function_name, o.status, o.target) for o in back] == [
        ("response", "MULTIPLE_SERVICE_PACKET", "EMBEDDED_SERVICE_ERROR", "class 0x02 instance 1"),
        ("response", "GET_ATTRIBUTE_LIST", None, "class 0x01 instance 1"),
        ("response", "READ_DATA", "PATH_SEGMENT_ERROR", "Speed"),
        ("response", "WRITE_DATA", None, "Setpoint")]  # fmt: skip
    assert [o.details.get("container_index") for o in back] == [None, *[back[0].details["cip_index"]] * 3]


def test_forward_open_close_and_connected_messages():
    d = EtherNetIP()
    (_, fo) = ops(d.feed(rr(FORWARD_OPEN), True))
    assert (fo.function_name, fo.access_class, fo.target) == ("FORWARD_OPEN", "session", "class 0x06 instance 1")
    assert {k: fo.details[k] for k in ("ot_connection_id", "to_connection_id", "connection_serial",
                                       "originator_vendor_id", "originator_serial", "ot_rpi", "to_rpi",
                                       "connection_path", "connection_route")} == {
        "ot_connection_id": "0x80000014", "to_connection_id": "0x80fe0013", "connection_serial": 20,
        "originator_vendor_id": 77, "originator_serial": "0x32952bf3", "ot_rpi": 8000000, "to_rpi": 8000000,
        "connection_path": "class 0x02 instance 1", "connection_route": "port 1 address 0"}  # fmt: skip
    (_, fo_rsp) = ops(d.feed(rr(FORWARD_OPEN_REPLY), False))
    assert fo_rsp.details["ot_connection_id"] == "0x00790301"
    assert fo_rsp.details["connection_path"] == "class 0x02 instance 1"
    large = request(0x5B, logical(0x06, 1),
                    struct.pack("<BBIIHHIB3xIIIIBB", 7, 249, 1, 2, 21, 77, 5, 0, 10000, 0x42000100, 20000, 0x42000200,
                                0x01, 4) + logical(0x04, 1) + bytes([0x2C, 100]))  # fmt: skip
    (_, lfo) = ops(d.feed(rr(large), True))
    assert (lfo.function_name, lfo.details["to_rpi"], lfo.details["connection_path"]) == (
        "LARGE_FORWARD_OPEN", 20000, "class 0x04 instance 1 connection point 100")  # fmt: skip
    close_fields = struct.pack("<BBHHIBB", 7, 249, 20, 77, 0x32952BF3, 3, 0)
    close = request(0x4E, logical(0x06, 1), close_fields + b"\x01\x00" + logical(0x02, 1))
    (_, fc) = ops(d.feed(rr(close), True))
    assert (fc.function_name, fc.access_class, fc.details["connection_serial"]) == ("FORWARD_CLOSE", "session", 20)
    # an unconnected 0x4E reply with no request seen: the Connection Manager's Forward Close, not a tag write
    (_, lone) = ops(EtherNetIP().feed(rr(reply(0x4E, data=struct.pack("<HHIBB", 20, 77, 1, 0, 0))), False))
    assert (lone.function_name, lone.access_class, lone.details["connection_serial"]) == (
        "FORWARD_CLOSE",
        "session",
        20,
    )
    # connected request and reply: paired by the CIP sequence count
    d.feed(unit(0x00790301, 5, request(0x4E, symbol("Bits"), struct.pack("<Hbb", 1, 1, -1))), True)
    (_, rmw) = ops(d.feed(unit(0x80FE0013, 5, reply(0x4E)), False))
    assert (rmw.function_name, rmw.access_class, rmw.target) == ("READ_WRITE_MODIFY_DATA", "write", "Bits")
    assert rmw.transaction_id == 5


def test_unconnected_send_embedded_request_and_routed_identity():
    embedded = request(0x01, logical(0x01, 1))
    us = request(0x52, logical(0x06, 1), struct.pack("<BBH", 7, 249, len(embedded)) + embedded + b"\x01\x00\x01\x00")
    d = EtherNetIP()
    recs = ops(d.feed(rr(us), True), "cip")
    assert [(o.function_name, o.target) for o in recs] == [("UNCONNECTED_SEND", "class 0x06 instance 1"),
                                                           ("GET_ATTRIBUTES_ALL", "class 0x01 instance 1")]  # fmt: skip
    assert recs[0].details["route"] == "port 1 address 0"
    assert recs[1].details["container_index"] == recs[0].details["cip_index"]
    attrs = struct.pack("<HHHBBHIB", 1, 14, 54, 19, 11, 0x60, 0x00C0FFEE, 4) + b"L61 "
    back = d.feed(rr(reply(0x01, data=attrs)), False)
    (rsp,) = ops(back, "cip")
    assert (rsp.function_name, rsp.target) == ("GET_ATTRIBUTES_ALL", "class 0x01 instance 1")
    assert [r for r in back if isinstance(r, Identity)] == []  # the module behind the route, not this device
    # the same request sent to the device itself: its identity
    d.feed(rr(embedded), True)
    (ident,) = [r for r in d.feed(rr(reply(0x01, data=attrs)), False) if isinstance(r, Identity)]
    assert ident.fields == {"vendor_id": 1, "vendor": "Rockwell Automation/Allen-Bradley",
                            "device_type": "Programmable Logic Controller", "product_code": 54, "revision": "19.11",
                            "serial_number": "0x00c0ffee", "product_name": "L61 "}  # fmt: skip


def test_logix_tag_services_details():
    d = EtherNetIP()
    frag = d.feed(rr(request(0x52, symbol("Recipe") + bytes([0x28, 4]), struct.pack("<HI", 10, 200))), True)
    (_, rd) = ops(frag)
    assert (rd.function_name, rd.access_class, rd.target, rd.quantity, rd.details["offset"]) == (
        "READ_DATA_FRAGMENTED", "read", "Recipe[4]", 10, 200)  # fmt: skip
    wr = request(0x53, symbol("Udt"), struct.pack("<HHHI", 0x02A0, 0xBEEF, 1, 0) + b"\0" * 8)
    (_, w) = ops(d.feed(rr(wr), True))
    assert (w.function_name, w.access_class, w.details["data_type"], w.details["structure_handle"], w.quantity) == (
        "WRITE_DATA_FRAGMENTED", "write", "0x02a0", 0xBEEF, 1)  # fmt: skip
    (_, upload) = ops(d.feed(rr(request(0x4F, logical(0x37, 1), b"\x00\x01")), True))
    assert (upload.function_name, upload.access_class) == ("UPLOAD_TRANSFER", "program")


def test_cip_io_datagrams():
    io = CipIO()
    data = cpf((0x8002, struct.pack("<II", 0x004B0603, 4166875)), (0x00B1, bytes.fromhex("a587e80f0300")))
    assert CipIO.probe(data, True) and not CipIO.probe(b"\x02\x00\xb1\x00\x00\x00", True)
    (op,) = io.datagram(data, True)
    assert (op.protocol, op.direction, op.function_name, op.access_class, op.target) == (
        "cip_io", "request", "IO_DATA", "other", "connection 0x004b0603")  # fmt: skip
    assert op.details == {"connection_id": "0x004b0603", "sequence_number": 4166875, "data_length": 6,
                          "cip_sequence_count": 0x87A5}  # fmt: skip
    assert [r.kind for r in io.datagram(data[:-3], False)] == ["malformed_pdu"]
    assert [r.kind for r in io.datagram(cpf((0x00B1, b"")), False)] == ["malformed_pdu"]


# --- robustness -------------------------------------------------------------------------------------------------

VALID_STREAM = b"".join([
    enip(0x65, struct.pack("<HH", 1, 0)), rr(FORWARD_OPEN), rr(FORWARD_OPEN_REPLY), LIST_IDENTITY_REPLY,
    unit(1, 2, msp(request(0x03, logical(0x01, 1), struct.pack("<2H", 1, 7)), request(0x4C, symbol("T"), b"\x01\x00"))),
    unit(3, 2, msp(reply(0x03, data=b"\x01\x00\x07\x00\x00\x00\x01A"), reply(0x4C, data=b"\xc4\x00\x01\x00\x00\x00"),
                   response=True)),
    rr(request(0x52, logical(0x06, 1), b"\x07\xf9\x06\x00" + request(0x01, logical(0x01, 1)) + b"\x01\x00\x01\x00")),
])  # fmt: skip


def _check(records) -> None:
    for rec in records:
        assert isinstance(rec, (Operation, Identity, Anomaly))
        if isinstance(rec, Operation):
            assert rec.access_class in ACCESS_CLASSES and rec.direction in ("request", "response")
            json.dumps(rec.details)
            for v in (rec.transaction_id, rec.unit_id, rec.address, rec.quantity):
                assert v is None or -(2**31) <= v < 2**31  # the store's INTEGER columns
        elif isinstance(rec, Identity):
            assert set(rec.fields) <= set(IDENTITY_FIELDS)


@settings(max_examples=300)
@given(chunks=st.lists(st.binary(max_size=300), max_size=8), from_orig=st.booleans())
def test_random_streams_never_raise(chunks, from_orig):
    d, io = EtherNetIP(), CipIO()
    for chunk in chunks:
        _check(d.feed(chunk, from_orig))
        _check(d.datagram(chunk, not from_orig))
        _check(io.datagram(chunk, from_orig))
    assert len(d.buffers[from_orig]) <= EtherNetIP.max_buffer


@settings(max_examples=500)
@given(messages=st.lists(st.tuples(st.binary(max_size=120), st.booleans(), st.integers(0, 3)), max_size=6))
def test_random_cip_messages_in_valid_encapsulation_never_raise(messages):
    """Random CIP bytes inside well-formed SendRRData / SendUnitData: the CIP parser, not the framing, is tested."""
    d = EtherNetIP()
    for body, from_orig, seq in messages:
        for prefix in (b"", b"\x0a\x02\x20\x02\x24\x01", b"\x52\x02\x20\x06\x24\x01", b"\x8a\x00\x00\x00"):
            _check(d.feed(rr(prefix + body), from_orig))
            _check(d.feed(unit(seq, seq, prefix + body), not from_orig))


@settings(max_examples=500)
@given(edits=st.lists(st.tuples(st.integers(0, len(VALID_STREAM) - 1), st.integers(0, 255)), min_size=1, max_size=6),
       cut=st.integers(1, 64))  # fmt: skip
def test_mutated_pdus_never_raise(edits, cut):
    stream = bytearray(VALID_STREAM)
    for pos, value in edits:
        stream[pos] = value
    d = EtherNetIP()
    for i in range(0, len(stream), cut):
        _check(d.feed(bytes(stream[i : i + cut]), True))
    _check(EtherNetIP().datagram(bytes(stream), False))
