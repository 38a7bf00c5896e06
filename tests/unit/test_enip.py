"""EtherNet/IP, CIP and CIP I/O: sans-IO unit tests on byte strings, robustness, and field-level
comparisons with tshark and with the Zeek ICSNPP logs on the shared corpus."""

from __future__ import annotations

import json
import re
import struct
from collections import Counter
from pathlib import Path

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dissectors import ACCESS_CLASSES, IDENTITY_FIELDS, Anomaly, CipIO, EtherNetIP, Identity, Operation
from dissectors.cip.consts import COMMON_SERVICES, OBJECT_SERVICES
from dissectors.cip.names import service_info
from dissectors.cip.path import parse_path
from dissectors.enip.consts import COMMANDS
from tests.helpers.paths import ROOT, SHARED, manifest
from tests.helpers.tshark import run

NAME = re.compile(r"[A-Z][A-Z0-9_]*(_0x[0-9A-F]+)?")  # upper snake case; unnamed codes as PREFIX_0x4B

# --- builders ---------------------------------------------------------------------------------------------------


def enip(command: int, data: bytes = b"", session: int = 0, status: int = 0, context: bytes = bytes(8)) -> bytes:
    return struct.pack("<HHII8sI", command, len(data), session, status, context, 0) + data


def cpf(*items: tuple[int, bytes]) -> bytes:
    return struct.pack("<H", len(items)) + b"".join(struct.pack("<HH", t, len(d)) + d for t, d in items)


def rr(cip: bytes, session: int = 0x11223344, context: bytes = b"ctx00001") -> bytes:
    return enip(0x6F, struct.pack("<IH", 0, 10) + cpf((0x0000, b""), (0x00B2, cip)), session, context=context)


def unit(connection: int, seq: int, cip: bytes, session: int = 0x11223344) -> bytes:
    items = cpf((0x00A1, struct.pack("<I", connection)), (0x00B1, struct.pack("<H", seq) + cip))
    return enip(0x70, struct.pack("<IH", 0, 0) + items, session)


def logical(cls: int | None = None, inst: int | None = None, attr: int | None = None) -> bytes:
    out = b""
    for kind, value in ((0x20, cls), (0x24, inst), (0x30, attr)):
        if value is None:
            continue
        if value < 0x100:
            out += bytes([kind, value])
        elif value < 0x10000:
            out += bytes([kind | 1, 0]) + struct.pack("<H", value)
        else:
            out += bytes([kind | 2, 0]) + struct.pack("<I", value)
    return out


def symbol(name: str) -> bytes:
    raw = name.encode()
    return bytes([0x91, len(raw)]) + raw + b"\0" * (len(raw) & 1)


def request(service: int, path: bytes, data: bytes = b"") -> bytes:
    return bytes([service, len(path) // 2]) + path + data


def reply(service: int, status: int = 0, extended: tuple[int, ...] = (), data: bytes = b"") -> bytes:
    return bytes([service | 0x80, 0, status, len(extended)]) + b"".join(struct.pack("<H", e) for e in extended) + data


def msp(*messages: bytes, response: bool = False, status: int = 0) -> bytes:
    offsets, pos = [], 2 + 2 * len(messages)
    for m in messages:
        offsets.append(pos)
        pos += len(m)
    body = struct.pack(f"<H{len(messages)}H", len(messages), *offsets) + b"".join(messages)
    return reply(0x0A, status, data=body) if response else request(0x0A, logical(0x02, 1), body)


def ops(records, protocol: str | None = None) -> list[Operation]:
    return [r for r in records if isinstance(r, Operation) and (protocol is None or r.protocol == protocol)]


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
        0x66: "UNREGISTER_SESSION", 0x6F: "SEND_RR_DATA", 0x70: "SEND_UNIT_DATA", 0x72: "INDICATE_STATUS", 0x73: "CANCEL",
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
        ("response", "READ_DATA", "PATH_SEGMENT_ERROR", "Speed"), ("response", "WRITE_DATA", None, "Setpoint")]  # fmt: skip
    assert [o.details.get("container_index") for o in back] == [None, *[back[0].details["cip_index"]] * 3]


def test_forward_open_close_and_connected_messages():
    d = EtherNetIP()
    (_, fo) = ops(d.feed(rr(FORWARD_OPEN), True))
    assert (fo.function_name, fo.access_class, fo.target) == ("FORWARD_OPEN", "session", "class 0x06 instance 1")
    assert {k: fo.details[k] for k in ("ot_connection_id", "to_connection_id", "connection_serial", "originator_vendor_id",
                                       "originator_serial", "ot_rpi", "to_rpi", "connection_path", "connection_route")} == {
        "ot_connection_id": "0x80000014", "to_connection_id": "0x80fe0013", "connection_serial": 20,
        "originator_vendor_id": 77, "originator_serial": "0x32952bf3", "ot_rpi": 8000000, "to_rpi": 8000000,
        "connection_path": "class 0x02 instance 1", "connection_route": "port 1 address 0"}  # fmt: skip
    (_, fo_rsp) = ops(d.feed(rr(FORWARD_OPEN_REPLY), False))
    assert fo_rsp.details["ot_connection_id"] == "0x00790301"
    assert fo_rsp.details["connection_path"] == "class 0x02 instance 1"
    large = request(0x5B, logical(0x06, 1), struct.pack("<BBIIHHIB3xIIIIBB", 7, 249, 1, 2, 21, 77, 5, 0, 10000, 0x42000100,
                                                          20000, 0x42000200, 0x01, 4) + logical(0x04, 1) + bytes([0x2C, 100]))  # fmt: skip
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


# --- the corpus against tshark ----------------------------------------------------------------------------------

ENIP_CAPTURES = [r["path"] for r in manifest() if int(r["enip"]) or int(r["cipio"])]
CIP_FRAMES = {r["path"]: int(r["cip"]) for r in manifest()}
LOGICAL = re.compile(r"(class|instance|attribute|member|connection point) (0x[0-9a-f]+|\d+)")
TSHARK_PATH = {"cip.class": "class", "cip.instance": "instance", "cip.attribute": "attribute", "cip.member": "member",
               "cip.connpoint": "connection point", "cip.symbol": "symbol"}  # fmt: skip


def _capture_id(con, capture: str) -> int:
    return con.execute("SELECT capture_id FROM captures WHERE path = ?", [str(SHARED / capture)]).fetchone()[0]


def _operations(corpus_db, capture: str, protocol: str) -> list[tuple]:
    with duckdb.connect(str(corpus_db), read_only=True) as con:
        query = ("SELECT frame, direction, function_code, status, transaction_id, quantity, target, details"
                 " FROM operations WHERE protocol = ? AND capture_id = ?")  # fmt: skip
        rows = con.execute(query, [protocol, _capture_id(con, capture)]).fetchall()
    return [(*r[:7], json.loads(r[7]) if r[7] else {}) for r in rows]


def _path_tuple(target: str | None) -> tuple:
    """sorf's target text as tshark's sequence of request path segments."""
    if not target:
        return ()
    if LOGICAL.match(target):
        return tuple((k, int(v, 0)) for k, v in LOGICAL.findall(target))
    out: list[tuple] = []
    for name, index in re.findall(r"([^.\[\]]+)|\[([0-9,]+)\]", target):
        out.extend([("symbol", name)] if name else [("member", int(i)) for i in index.split(",")])
    return tuple(out)


def _tshark_cip(path: str) -> dict[int, Counter]:
    """Per frame, every CIP message tshark decodes: (service byte, request path segments) for requests,
    (service byte, general status) for replies, from the JSON tree (duplicate keys kept)."""
    out = run(["-r", path, "-Y", "cip", "-T", "json", "-J", "frame cip cipcm cipcls"])
    frames = json.loads(out, object_pairs_hook=lambda pairs: pairs)

    def walk(pairs: list, in_path: bool, messages: list[list]) -> int:
        number = 0
        for key, value in pairs:
            if key == "frame.number":
                number = int(value)
            elif key == "cip.service":
                messages.append([int(value, 16), []])
            elif isinstance(value, list):
                number = walk(value, in_path or key.startswith("Request Path"), messages) or number
            elif messages and messages[-1][0] & 0x80 and key == "cip.genstat" and not messages[-1][1]:
                messages[-1][1].append(int(value, 16))
            elif messages and in_path and key in TSHARK_PATH and not messages[-1][0] & 0x80:
                messages[-1][1].append((TSHARK_PATH[key], value if key == "cip.symbol" else int(value, 0)))
        return number

    result: dict[int, Counter] = {}
    for frame in frames:
        messages: list[list] = []
        number = walk(dict(dict(frame)["_source"])["layers"], False, messages)
        result[number] = Counter((s, tuple(p)) for s, p in messages)
    return result


@pytest.mark.parametrize("capture", ENIP_CAPTURES)
def test_cip_paths_and_statuses_equal_tshark(corpus_db, capture):
    """Per frame: each request's service and request path (class, instance, attribute, member, symbol) and each
    reply's service and general status, embedded services included."""
    ours: dict[int, Counter] = {}
    for frame, direction, service, _st, _tid, _q, target, details in _operations(corpus_db, capture, "cip"):
        key = (
            (service | 0x80, (details["cip_status_code"],))
            if direction == "response"
            else (service, _path_tuple(target))
        )
        ours.setdefault(frame, Counter())[key] += 1
    ref = {f: c for f, c in _tshark_cip(str(SHARED / capture)).items() if c}
    assert {f: c for f, c in ours.items() if ref.get(f) != c} == {f: c for f, c in ref.items() if ours.get(f) != c}
    assert len(ref) == CIP_FRAMES[capture]  # the frames tshark decodes CIP in, as counted in MANIFEST.tsv


def _tshark_fields(capture: str, display: str, *names: str) -> list[dict[str, list[str]]]:
    out = run(["-r", str(SHARED / capture), "-Y", display, "-T", "fields", "-E", "occurrence=a", "-E", "aggregator=|",
               "-e", "frame.number", *(x for n in names for x in ("-e", n))])  # fmt: skip
    keys = ("frame.number", *names)
    return [{n: v.split("|") if v else [] for n, v in zip(keys, line.split("\t"))} for line in out.splitlines()]


@pytest.mark.parametrize("capture", ENIP_CAPTURES)
def test_encapsulation_headers_equal_tshark(corpus_db, capture):
    """Per frame: command, session handle, status, sender context; the connection id of connected items and
    the CIP sequence count."""
    ours: dict[int, Counter] = {}
    for frame, _d, command, _st, _tid, _q, _t, details in _operations(corpus_db, capture, "enip"):
        key = (command, details["session_handle"], details.get("enip_status_code", 0), details["sender_context"][-12:],
               details.get("connection_id"))  # fmt: skip
        ours.setdefault(frame, Counter())[key] += 1
    ref: dict[int, Counter] = {}
    for f in _tshark_fields(capture, "enip.command", "enip.command", "enip.session", "enip.status", "enip.context",
                            "enip.cpf.cai.connid"):  # fmt: skip
        cids = iter(f["enip.cpf.cai.connid"])
        headers = zip(f["enip.command"], f["enip.session"], f["enip.status"], f["enip.context"])
        for command, session, status, context in headers:
            cid = next(cids) if int(command, 16) == 0x70 else None
            key = (int(command, 16), session, int(status, 16), context[-12:], cid)  # ListIdentity: 6-byte context
            ref.setdefault(int(f["frame.number"][0]), Counter())[key] += 1
    assert ours == ref
    seqs: dict[int, set] = {}
    for frame, _d, _s, _st, tid, *_ in _operations(corpus_db, capture, "cip"):
        if tid is not None:
            seqs.setdefault(frame, set()).add(tid)
    ref_seqs = {
        int(f["frame.number"][0]): set(map(int, f["cip.seq"])) for f in _tshark_fields(capture, "cip.seq", "cip.seq")
    }
    assert seqs == ref_seqs


@pytest.mark.parametrize("capture", [c for c in ENIP_CAPTURES if "Reboot" in c or "Upload.pcap" in c])
def test_connection_manager_fields_equal_tshark(corpus_db, capture):
    names = (
        "cip.cm.ot_connid",
        "cip.cm.to_connid",
        "cip.cm.conn_serial_num",
        "cip.cm.vendor",
        "cip.cm.orig_serial_num",
    )
    ref = Counter()
    for f in _tshark_fields(capture, "cip.cm.conn_serial_num", *names):
        ids = list(zip(f["cip.cm.ot_connid"], f["cip.cm.to_connid"])) or [(None, None)]
        ref[(int(f["frame.number"][0]), *ids[0], int(f["cip.cm.conn_serial_num"][0], 16), int(f["cip.cm.vendor"][0], 16),
             f["cip.cm.orig_serial_num"][0])] += 1  # fmt: skip
    ours = Counter((frame, d.get("ot_connection_id"), d.get("to_connection_id"), d["connection_serial"],
                    d["originator_vendor_id"], d["originator_serial"])
                   for frame, *_, d in _operations(corpus_db, capture, "cip") if "connection_serial" in d)  # fmt: skip
    assert ours == ref and len(ref) >= 10


def test_multiple_service_packet_counts_equal_tshark(corpus_db):
    capture = "enip/EthernetIP-CIP.pcap"
    ours = Counter(
        (frame, q) for frame, _d, svc, _s, _t, q, *_ in _operations(corpus_db, capture, "cip") if svc == 0x0A
    )
    fields = _tshark_fields(capture, "cip.msp.num_services", "cip.msp.num_services")
    ref = Counter((int(f["frame.number"][0]), int(n)) for f in fields for n in f["cip.msp.num_services"])
    assert ours == ref and sum(ref.values()) == 8361


def _identities(corpus_db, capture: str) -> dict[tuple, dict]:
    with duckdb.connect(str(corpus_db), read_only=True) as con:
        query = "SELECT frame, ip, protocol, field, value FROM identities WHERE capture_id = ? AND field IS NOT NULL"
        rows = con.execute(query, [_capture_id(con, capture)]).fetchall()
    out: dict[tuple, dict] = {}
    for frame, ip, protocol, name, value in rows:
        out.setdefault((frame, ip, protocol), {})[name] = value
    return out


@pytest.mark.parametrize(
    "capture", [c for c in ENIP_CAPTURES if "enip_test" in c or "suricata" in c or "Firmware" in c]
)
def test_identities_equal_tshark(corpus_db, capture):
    """ListIdentity replies (enip.lir.*) and Identity Get_Attributes_All replies read directly (cip.id.*);
    the store writes each fact once per capture, at its first frame."""
    ref = {}
    sources = (
        ("enip", "enip.lir.vendor", ("vendor", "devtype", "prodcode", "revision", "serial", "name"), "enip.lir."),
        ("cip", "cip.id.vendor_id && !cipcm", ("vendor_id", "device_type", "product_code", "major_rev", "minor_rev",
                                                "serial_number", "product_name"), "cip.id."),
    )  # fmt: skip
    for kind, display, suffixes, prefix in sources:
        names = ("ip.src", *(prefix + n for n in suffixes))
        for f in _tshark_fields(capture, display, *names):
            v = [f[n][0] for n in names]
            rev = f"{int(v[4], 0) >> 8}.{int(v[4], 0) & 0xFF}" if kind == "enip" else f"{v[4]}.{v[5]}"
            serial, name = (v[5], v[6]) if kind == "enip" else (v[6], v[7])
            fields = {"vendor_id": str(int(v[1], 0)), "product_code": str(int(v[3], 0)), "revision": rev,
                      "serial_number": serial, "product_name": name}  # fmt: skip
            if fields not in [x for (_, ip, k), x in ref.items() if (ip, k) == (v[0], kind)]:
                ref[(int(f["frame.number"][0]), v[0], kind)] = fields  # the store keeps the first frame of a fact
    ours = {k: {n: v[n] for n in ("vendor_id", "product_code", "revision", "serial_number", "product_name")}
            for k, v in _identities(corpus_db, capture).items()}  # fmt: skip
    assert ours == ref and ref


# --- the corpus against Zeek ICSNPP -----------------------------------------------------------------------------

ZEEK = SHARED / "enip"


def _zeek(log: Path) -> list[list[str]]:
    return [line.rstrip("\n").split("\t") for line in log.open() if not line.startswith("#")]


def _hex(value) -> str:
    return "-" if value is None else f"0x{value:02x}"


@pytest.mark.parametrize("capture", ["icsnpp_enip_cip_example.pcap", "icsnpp_multiple_service_packet_cip.pcapng"])
def test_enip_and_cip_logs_equal_icsnpp(corpus_db, capture):
    """enip.log: command, length, session handle, status, sender context; cip.log: sequence count, direction,
    service code and name, general status, and for requests the class, instance and attribute (ICSNPP logs no
    path for replies, sorf copies it from the request)."""
    folder = ZEEK / (capture.rsplit(".", 1)[0] + ".zeek")
    ref = Counter(
        (r[11], r[12].upper().replace(" ", "_"), r[13], r[14], r[15], r[16]) for r in _zeek(folder / "enip.log")
    )
    ours = Counter((f"0x{c:02x}", COMMANDS[c][0], str(d["length"]), d["session_handle"], "Success" if st is None else st,
                    d["sender_context"])
                   for _f, _d, c, st, _t, _q, _tg, d in _operations(corpus_db, f"enip/{capture}", "enip"))  # fmt: skip
    assert ours == ref
    zeek_cip = _zeek(folder / "cip.log")
    ref = Counter((r[11], r[12], r[13], re.sub(r"[^A-Z]+", "_", r[14].upper()), "-" if r[15] == "-" else r[15],
                   r[19], r[21], r[22]) for r in zeek_cip)  # fmt: skip
    ours = Counter()
    for _f, direction, service, _st, seq, _q, _t, d in _operations(corpus_db, f"enip/{capture}", "cip"):
        req = direction == "request"
        name = service_info(d.get("class_id"), service)[0]
        ours[(str(seq) if seq is not None else "-", direction, f"0x{service:02x}", name,
              "-" if req else f"0x{d['cip_status_code']:02x}", _hex(d.get("class_id")) if req else "-",
              _hex(d.get("instance_id")) if req else "-", _hex(d.get("attribute_id")) if req else "-")] += 1  # fmt: skip
    assert ours == ref and len(zeek_cip) >= 12


def test_cip_io_and_identity_logs_equal_icsnpp(corpus_db):
    folder = ZEEK / "icsnpp_enip_cip_example.zeek"
    ref = Counter((r[11], int(r[12]), int(r[13])) for r in _zeek(folder / "cip_io.log"))
    ours = Counter((d["connection_id"], d["sequence_number"], d["data_length"])
                   for *_, d in _operations(corpus_db, "enip/icsnpp_enip_cip_example.pcap", "cip_io"))  # fmt: skip
    assert ours == ref and sum(ref.values()) == 398
    ((row),) = _zeek(folder / "cip_identity.log")
    enip_rows = _operations(corpus_db, "enip/icsnpp_enip_cip_example.pcap", "enip")
    (item,) = [d["identity"][0] for *_, d in enip_rows if "identity" in d]
    assert (item["address"], item["vendor_id"], item["vendor"], item["device_type"], item["product_code"], item["revision"],
            item["device_status"], item["serial_number"], item["product_name"], item["device_state"]) == (
        f"{row[12]}:{row[13]}", int(row[14]), row[15], row[17], int(row[18]), row[19], row[20], row[21], row[22], row[23])  # fmt: skip


# --- the connection join documented in docs/protocols/enip.md -----------------------------------------------------


def _documented_join() -> str:
    text = (ROOT / "docs" / "protocols" / "enip.md").read_text()
    return re.search(r"<!-- join -->\s*```sql\n(.*?)```", text, re.DOTALL).group(1)


def test_documented_join_ties_connected_messages_to_their_forward_open(corpus_db):
    """Connected explicit messages (SendUnitData) carry the ids a Forward Open reply assigned: the same join
    that ties UDP 2222 I/O to its connection finds the Forward Open of every connected CIP request here."""
    with duckdb.connect(str(corpus_db), read_only=True) as con:
        cid = _capture_id(con, "enip/quickdraw_CL5000EIP-Software_Upload.pcap")
        connected_cip = (
            f"io.protocol = 'cip' AND io.capture_id = {cid} AND io.details->>'connection_id' IS NOT NULL"
            " AND io.details->>'container_index' IS NULL"
        )  # top-level connected CIP messages
        sql = _documented_join()
        assert sql.count("io.protocol = 'cip_io'") == 1
        joined = con.execute(sql.replace("io.protocol = 'cip_io'", connected_cip)).fetchall()
        (connected,) = con.execute(f"SELECT count(*) FROM operations io WHERE {connected_cip}").fetchone()
    assert connected > 500 and len(joined) == connected
    assert {row[-1] for row in joined} <= {"FORWARD_OPEN", "LARGE_FORWARD_OPEN"}


def test_documented_join_ties_udp_io_to_its_forward_open(tmp_path):
    """A synthetic capture: a Forward Open over TCP 44818, then I/O on UDP 2222 both ways."""
    from scapy.all import IP, TCP, UDP, Ether, wrpcap

    from sorf.cli import main

    scanner, adapter = "10.0.0.1", "10.0.0.2"
    fields = struct.pack("<BBIIHHIB3xIHIHBB", 7, 249, 0, 0xAB000001, 9, 1, 7, 0, 10000, 0x4820, 10000, 0x4808, 0x01, 4)
    fo = request(0x54, logical(0x06, 1), fields + logical(0x04, 1) + bytes([0x2C, 150, 0x2C, 100]))
    fo_reply = reply(0x54, data=struct.pack("<IIHHIIIBB", 0xCD000002, 0xAB000001, 9, 1, 7, 10000, 10000, 0, 0))
    pkts, seq = [], {scanner: 1000, adapter: 5000}

    def tcp(src, dst, payload=b"", flags="PA"):
        sport, dport = (50000, 44818) if src == scanner else (44818, 50000)
        segment = TCP(sport=sport, dport=dport, flags=flags, seq=seq[src], ack=seq[dst])
        pkts.append(Ether() / IP(src=src, dst=dst) / segment / payload)
        seq[src] += len(payload) + (1 if "S" in flags else 0)

    tcp(scanner, adapter, flags="S")
    tcp(adapter, scanner, flags="SA")
    tcp(scanner, adapter, flags="A")
    tcp(scanner, adapter, rr(fo))
    tcp(adapter, scanner, rr(fo_reply))
    for n in range(3):
        for src, dst, cid in ((scanner, adapter, 0xCD000002), (adapter, scanner, 0xAB000001)):
            data = cpf((0x8002, struct.pack("<II", cid, n)), (0x00B1, struct.pack("<H", n) + b"\x01\x00\x00\x00"))
            pkts.append(Ether() / IP(src=src, dst=dst) / UDP(sport=2222, dport=2222) / data)
    capture = tmp_path / "io.pcap"
    wrpcap(str(capture), pkts)
    db = tmp_path / "io.duckdb"
    assert main(["ingest", str(capture), "--db", str(db)]) == 0
    with duckdb.connect(str(db), read_only=True) as con:
        joined = con.execute(_documented_join()).fetchall()
        (io_rows,) = con.execute("SELECT count(*) FROM operations WHERE protocol = 'cip_io'").fetchone()
    assert io_rows == 6 and len(joined) == 6
    path = "class 0x04 instance 1 connection point 150 connection point 100"
    assert {(row[-3], row[-1]) for row in joined} == {(path, "FORWARD_OPEN")}
