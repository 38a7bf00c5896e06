"""DNP3 dissector on byte strings (sans-IO), and bytes it must never raise on; the corpus against tshark and
Zeek ICSNPP is tests/oracle/test_dnp3_corpus.py."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dissectors import DNP3, REGISTRY, Anomaly, Identity, Operation
from dissectors.dnp3 import FUNCTIONS, MAX_FRAGMENT, crc_dnp, frame_length
from tests.helpers.dnp3 import frames, link_frame
from tests.helpers.records import ops

ACCESS = {"read", "write", "control", "program", "diagnostic", "session", "other"}
MASTER, OUTSTATION = 100, 5


# --- building frames -----------------------------------------------------------------------------------------------
def request(fc: int, objects: bytes = b"", seq: int = 0) -> bytes:
    """Master -> outstation, FIR FIN, application sequence ``seq``."""
    return b"".join(frames(bytes([0xC0 | seq, fc]) + objects, MASTER, OUTSTATION, ctrl=0xC4))


def response(fc: int, iin: int = 0, objects: bytes = b"", seq: int = 0) -> bytes:
    """Outstation -> master (DIR clear)."""
    return b"".join(frames(bytes([0xC0 | seq, fc]) + struct.pack(">H", iin) + objects, OUTSTATION, MASTER, ctrl=0x44))


def crob(index: int, code: int = 0x41, count: int = 1, on: int = 500, off: int = 0, status: int = 0) -> bytes:
    """One g12v1 object, qualifier 0x28 (count 1, 2-byte index prefix)."""
    return bytes([12, 1, 0x28]) + struct.pack("<HH", 1, index) + struct.pack("<BBIIB", code, count, on, off, status)


def big_response(app_seq: int = 1, seq: int = 5, points: int = 300) -> list[bytes]:
    """A RESPONSE of ``points`` g30v4 values (2 bytes each), cut into transport segments from sequence ``seq``."""
    objects = bytes([30, 4, 0x01]) + struct.pack("<HH", 0, points - 1) + bytes(2 * points)
    return frames(bytes([0xC0 | app_seq, 0x81, 0, 0]) + objects, OUTSTATION, MASTER, seq=seq, ctrl=0x44)


def kinds(records) -> list[str]:
    return [r.kind for r in records if isinstance(r, Anomaly)]


# --- CRC and framing -----------------------------------------------------------------------------------------------
def test_crc_is_crc16_dnp():
    assert crc_dnp(b"123456789") == 0xEA82  # the catalogue check value of CRC-16/DNP
    assert crc_dnp(b"") == 0xFFFF
    assert crc_dnp(b"\x05\x64\x05\xc0\x01\x00\x00\x04", 0, 8) == 0x21E9  # a link status request, CRC e9 21
    for n in range(40):  # the two-byte table agrees with the bitwise definition at every length
        data = bytes((i * 37 + n) & 0xFF for i in range(n))
        crc = 0
        for b in data:
            crc ^= b
            for _ in range(8):
                crc = (crc >> 1) ^ 0xA6BC if crc & 1 else crc >> 1
        assert crc_dnp(data) == crc ^ 0xFFFF


def test_frame_length_counts_a_crc_per_block():
    assert frame_length(5) == 10
    assert frame_length(6) == 13
    assert frame_length(21) == 28
    assert frame_length(22) == 31
    assert frame_length(255) == 292


# --- requests, responses, identities -------------------------------------------------------------------------------
def test_read_request_and_response_are_paired():
    d = DNP3()
    out = d.feed(request(0x01, bytes([60, 2, 6, 60, 3, 6, 60, 4, 6, 60, 1, 6]), seq=3), True)
    (req,) = ops(out)
    assert (req.direction, req.function_code, req.function_name, req.access_class) == ("request", 1, "READ", "read")
    assert (req.transaction_id, req.unit_id, req.target) == (3, OUTSTATION, "g60v2,g60v3,g60v4,g60v1")
    assert req.details["src"] == MASTER and req.details["dst"] == OUTSTATION
    assert [o["object_type"] for o in req.details["objects"]] == [
        "Class 1 Data",
        "Class 2 Data",
        "Class 3 Data",
        "Class 0 Data",
    ]
    assert [r for r in out if isinstance(r, Identity)] == [Identity("dnp3", {"address": MASTER}, "dnp3_master")]
    g30v2 = bytes([30, 2, 0x01]) + struct.pack("<HH", 10, 12) + bytes([1, 10, 0, 1, 20, 0, 1, 30, 0])
    out = d.feed(response(0x81, 0x0200, g30v2, seq=3), False)
    (resp,) = ops(out)
    assert (resp.direction, resp.function_name, resp.access_class, resp.status) == (
        "response",
        "RESPONSE",
        "read",
        None,
    )
    assert (resp.transaction_id, resp.unit_id, resp.address, resp.quantity, resp.target) == (
        3,
        OUTSTATION,
        10,
        3,
        "g30v2",
    )
    assert resp.details["iin"] == 0x0200 and resp.details["iin_flags"] == ["CLASS_1_EVENTS"]
    assert resp.details["fc_request"] == "READ"
    assert resp.details["objects"] == [{"object": "g30v2", "qualifier": 1, "range_low": 10, "range_high": 12,
                                        "object_count": 3, "object_type": "16-Bit Analog Input"}]  # fmt: skip
    assert [r for r in out if isinstance(r, Identity)] == [Identity("dnp3", {"address": OUTSTATION}, "dnp3_outstation")]
    assert [type(r) for r in d.feed(request(0x01, bytes([60, 1, 6]), seq=4), True)] == [Operation]  # role said once


def test_notable_iin_bits_are_the_status():
    d = DNP3()
    d.feed(request(0x02, bytes([80, 1, 0x00, 7, 7, 0]), seq=1), True)
    (resp,) = ops(d.feed(response(0x81, 0x9000 | 0x0004 | 0x0002 | 0x0001 | 0x0800, seq=1), False))
    assert resp.status == "DEVICE_RESTART|NEED_TIME|PARAMETER_ERROR|OBJECT_UNKNOWN|NO_FUNC_CODE_SUPPORT"
    assert resp.details["iin"] == 0x9807 and "CLASS_3_EVENTS" in resp.details["iin_flags"]
    assert resp.access_class == "write" and resp.details["fc_request"] == "WRITE"


def test_select_operate_controls_and_their_status():
    d = DNP3()
    (sel,) = ops(d.feed(request(0x03, crob(8, code=0x82, on=500), seq=6), True))
    assert (sel.function_name, sel.access_class, sel.target, sel.address, sel.quantity) == (
        "SELECT",
        "control",
        "g12v1",
        None,
        1,
    )
    assert sel.details["controls"] == [{
        "block_type": "Control Relay Output Block", "index_number": 8, "trip_control_code": "Trip",
        "operation_type": "Pulse Off", "clear_bit": False, "execute_count": 1, "on_time": 500,
        "off_time": 0}]  # fmt: skip
    (ok,) = ops(d.feed(response(0x81, 0, crob(8, code=0x82, on=500), seq=6), False))
    assert ok.access_class == "control" and ok.status is None and ok.details["controls"][0]["status_code"] == "Success"
    (op,) = ops(d.feed(request(0x04, crob(8, code=0x82, on=500), seq=7), True))
    assert op.function_name == "OPERATE" and op.access_class == "control"
    (refused,) = ops(d.feed(response(0x81, 0, crob(8, code=0x82, on=500, status=2), seq=7), False))
    assert refused.status == "NO_SELECT" and refused.details["controls"][0]["status_code"] == "No Select"


def test_analog_output_block_and_range_qualifier():
    d = DNP3()
    g41v2 = bytes([41, 2, 0x00, 3, 4]) + struct.pack("<hBhB", -5, 0, 1200, 0)
    (op,) = ops(d.feed(request(0x05, g41v2), True))
    assert (op.function_name, op.access_class, op.target, op.address, op.quantity) == (
        "DIRECT_OPERATE",
        "control",
        "g41v2",
        3,
        2,
    )
    assert [(c["block_type"], c["index_number"], c["value"]) for c in op.details["controls"]] == [
        ("Analog Output Block", 3, -5), ("Analog Output Block", 4, 1200)]  # fmt: skip
    (nr,) = ops(d.feed(request(0x06, bytes([41, 3, 0x17, 1, 9]) + struct.pack("<fB", 2.5, 0)), True))
    assert nr.function_name == "DIRECT_OPERATE_NR" and nr.details["controls"][0] == {
        "block_type": "Analog Output Block", "index_number": 9, "value": 2.5}  # fmt: skip


def test_file_open_is_program_and_names_the_file():
    name = b"/etc/config.xml"
    g70v3 = struct.pack("<HH6sHIIHHH", 26, len(name), bytes(6), 0x1FF, 0, 0, 1, 1024, 7) + name
    d = DNP3()
    (op,) = ops(d.feed(request(0x19, bytes([70, 3, 0x5B, 1]) + struct.pack("<H", len(g70v3)) + g70v3), True))
    assert (op.function_name, op.access_class, op.target) == ("OPEN_FILE", "program", "/etc/config.xml")
    assert op.details["file_name"] == "/etc/config.xml"
    g70v4 = struct.pack("<IIHHB", 0x1234, 0, 1024, 7, 3)
    (resp,) = ops(d.feed(response(0x81, 0, bytes([70, 4, 0x5B, 1]) + struct.pack("<H", len(g70v4)) + g70v4), False))
    assert resp.access_class == "program" and resp.status == "FILE_FILE_NOT_FOUND"
    g70v5 = struct.pack("<II", 0x1234, 0)
    (read,) = ops(d.feed(request(0x01, bytes([70, 5, 0x5B, 1]) + struct.pack("<H", 8) + g70v5, seq=1), True))
    assert (read.function_name, read.access_class) == ("READ", "program")  # reading a file is a file transfer


def test_authentication_and_unsolicited_responses():
    d = DNP3()
    (auth,) = ops(d.feed(request(0x20, bytes([120, 4, 0x07, 1, 1, 0])), True))
    assert (auth.function_name, auth.access_class, auth.target) == ("AUTHENTICATE_REQ", "session", "g120v4")
    (uns,) = ops(d.feed(response(0x82, 0x8000, seq=0), False))
    assert (uns.direction, uns.function_name, uns.access_class, uns.status) == (
        "response", "UNSOLICITED_RESPONSE", "read", "DEVICE_RESTART")  # fmt: skip
    assert uns.details["unsolicited"] is True
    (confirm,) = ops(d.feed(request(0x00, seq=0), True))
    assert (confirm.direction, confirm.function_name, confirm.access_class) == ("request", "CONFIRM", "other")


@pytest.mark.parametrize(
    ("fc", "name", "access"),
    [(0x0D, "COLD_RESTART", "control"), (0x0E, "WARM_RESTART", "control"), (0x07, "IMMED_FREEZE", "control"),
     (0x12, "STOP_APPL", "control"), (0x13, "SAVE_CONFIG", "program"), (0x1F, "ACTIVATE_CONFIG", "program"),
     (0x14, "ENABLE_UNSOLICITED", "control"), (0x16, "ASSIGN_CLASS", "write"), (0x17, "DELAY_MEASURE", "diagnostic"),
     (0x1B, "DELETE_FILE", "program"), (0x21, "AUTHENTICATE_REQ_NR", "session")],
)  # fmt: skip
def test_function_access_classes(fc, name, access):
    d = DNP3()
    (op,) = ops(d.feed(request(fc, seq=2), True))
    assert (op.function_name, op.access_class) == (name, access)
    (resp,) = ops(d.feed(response(0x81, seq=2), False))
    assert resp.access_class == access and resp.details["fc_request"] == name  # the response answers for its request


def test_every_function_code_is_in_the_table():
    assert set(FUNCTIONS) == set(range(0x22)) | {0x81, 0x82, 0x83}
    assert {access for _, access in FUNCTIONS.values()} <= ACCESS
    names = [name for name, _ in FUNCTIONS.values()]
    assert len(set(names)) == len(names) and all(n == n.upper() for n in names)
    assert (
        FUNCTIONS[0x01][0] == "READ"
        and FUNCTIONS[0x05][0] == "DIRECT_OPERATE"
        and FUNCTIONS[0x82][0] == "UNSOLICITED_RESPONSE"
    )


def test_unknown_function_code():
    (op,) = ops(DNP3().feed(request(0x50), True))
    assert (op.function_name, op.access_class, op.direction) == ("UNKNOWN_80", "other", "request")


# --- framing, reassembly, CRCs -------------------------------------------------------------------------------------
def test_frame_split_across_segments_byte_by_byte():
    data = request(0x01, bytes([60, 1, 6]))
    d = DNP3()
    out = []
    for i in range(len(data)):
        out += d.feed(data[i : i + 1], True)
    assert [op.function_name for op in ops(out)] == ["READ"]


def test_several_frames_in_one_segment():
    data = (
        request(0x01, bytes([60, 1, 6]), seq=1)
        + request(0x02, bytes([50, 1, 0x07, 1]) + bytes(6), seq=2)
        + request(0x0D, seq=3)
    )
    assert [(op.function_name, op.transaction_id) for op in ops(DNP3().feed(data, True))] == [
        ("READ", 1),
        ("WRITE", 2),
        ("COLD_RESTART", 3),
    ]


def test_transport_reassembly_with_sequence_wrap():
    parts = big_response(seq=62)
    assert len(parts) == 3  # transport sequence 62, 63, 0
    d = DNP3()
    out = []
    for frame in parts[:-1]:
        out += d.feed(frame, False)
    assert out == []
    (resp,) = ops(d.feed(parts[-1], False))
    assert (resp.target, resp.quantity, resp.details["segments"]) == ("g30v4", 300, 3)


def test_reassembly_is_per_link_address_pair():
    """A gateway's connection interleaves the segments of two outstations."""
    a = frames(bytes([0xC1, 0x81, 0, 0]) + bytes([1, 2, 0x00, 0, 255]) + bytes(256), 7, MASTER, seq=10, ctrl=0x44)
    b = frames(bytes([0xC2, 0x81, 0, 0]) + bytes([1, 2, 0x00, 0, 255]) + bytes(256), 8, MASTER, seq=40, ctrl=0x44)
    d = DNP3()
    out = d.feed(a[0] + b[0] + a[1] + b[1], False)
    assert sorted((op.unit_id, op.transaction_id) for op in ops(out)) == [(7, 1), (8, 2)]
    assert kinds(out) == []


def test_out_of_sequence_segment_drops_the_fragment():
    parts = big_response()
    d = DNP3()
    out = d.feed(parts[0] + parts[2], False)
    assert ops(out) == [] and kinds(out) == ["transport_sequence"]
    out = d.feed(parts[1], False)  # still discarding until the next first segment: reported once
    assert ops(out) == [] and kinds(out) == []
    assert [op.function_name for op in ops(d.feed(response(0x81, seq=2), False))] == ["RESPONSE"]


def test_repeated_segment_is_ignored():
    parts = big_response()
    out = DNP3().feed(parts[0] + parts[1] + parts[1] + parts[2], False)
    assert len(ops(out)) == 1 and kinds(out) == []


def test_too_long_reassembly_is_an_anomaly_and_still_the_operation():
    seg = 249
    n = MAX_FRAGMENT // seg + 2
    parts = frames(bytes([0xC1, 0x02]) + bytes(seg * n), MASTER, OUTSTATION, seq=0)
    d = DNP3()
    out = d.feed(b"".join(parts), True)
    assert kinds(out) == ["too_long"]
    [op] = ops(out)  # the WRITE was in the first segment: it is recorded, not hidden by the size
    assert (op.function_code, op.function_name, op.access_class) == (2, "WRITE", "write")
    assert op.details["too_long"] is True and op.details["objects_incomplete"] is True
    assert [op.function_name for op in ops(d.feed(request(0x01, bytes([60, 1, 6]), seq=2), True))] == ["READ"]


def test_reassembly_state_is_bounded():
    d = DNP3()
    out = []
    for src in range(70):  # a first segment from 70 different link addresses, never finished
        out += d.feed(frames(bytes([0xC0, 0x81, 0, 0]) + bytes(400), src, MASTER, ctrl=0x44)[0], False)
    assert kinds(out) == ["buffer_overflow"] and len(d.segments) <= 64


def test_new_first_segment_abandons_an_unfinished_fragment():
    parts = big_response()
    out = DNP3().feed(parts[0] + response(0x81, seq=2), False)
    assert kinds(out) == ["transport_incomplete"] and len(ops(out)) == 1


def test_bad_crcs_are_anomalies_and_the_frame_is_not_used():
    good = request(0x01, bytes([60, 1, 6]), seq=1)
    bad_header = bytearray(good)
    bad_header[8] ^= 0xFF
    bad_data = bytearray(good)
    bad_data[11] ^= 0x01
    d = DNP3()
    out = d.feed(bytes(bad_header) + bytes(bad_data) + good, True)
    assert kinds(out) == ["bad_crc", "bad_crc"]
    assert [a.detail for a in out if isinstance(a, Anomaly)][1].startswith(
        "bad data block 0 CRC in link frame len=11 ctrl=0xc4 (UNCONFIRMED_USER_DATA) src=100 dst=5"
    )
    assert [op.function_name for op in ops(out)] == ["READ"]


def test_garbage_is_skipped_with_one_anomaly():
    out = DNP3().feed(b"\x05\x64\x00garbage\x05\x64" + request(0x01, bytes([60, 1, 6])), True)
    assert kinds(out) == ["bad_header"] and len(ops(out)) == 1


def test_gap_drops_partial_transport_state():
    parts = big_response(points=150)
    d = DNP3()
    d.feed(parts[0], False)
    d.gap(False)
    out = d.feed(parts[1], False)
    assert ops(out) == [] and kinds(out) == ["transport_sequence"]


def test_udp_datagram_with_several_frames_and_a_cut_one():
    d = DNP3()
    two = request(0x03, crob(1), seq=1) + request(0x01, bytes([60, 1, 6]), seq=2)
    assert [op.function_name for op in ops(d.datagram(two, True))] == ["SELECT", "READ"]
    cut = request(0x01, bytes([60, 1, 6]), seq=3)
    out = d.datagram(cut[:-3], True)
    assert ops(out) == [] and kinds(out) == ["truncated"]
    out = d.datagram(b"hello" + cut, True)
    assert ops(out) == [] and kinds(out) == ["bad_header"]
    # transport reassembly carries over from one datagram to the next
    parts = frames(bytes([0xC4, 0x81, 0, 0]) + bytes(400), OUTSTATION, MASTER, seq=1, ctrl=0x44)
    assert d.datagram(parts[0], False) == []
    assert [op.function_name for op in ops(d.datagram(parts[1], False))] == ["RESPONSE"]


def test_link_only_frames_give_the_role_by_the_dir_bit():
    d = DNP3()
    out = d.feed(link_frame(1, 100, b"", ctrl=0x49), False)  # REQUEST_LINK_STATUS from an outstation (DIR clear)
    assert out == [Identity("dnp3", {"address": 1}, "dnp3_outstation")]
    out = d.feed(link_frame(100, 1, b"", ctrl=0x8B), True)  # LINK_STATUS from the master (DIR set)
    assert out == [Identity("dnp3", {"address": 100}, "dnp3_master")]


def test_malformed_objects_still_give_the_operation():
    objects = crob(1)[:-5]
    out = DNP3().feed(request(0x05, objects), True)
    (op,) = ops(out)
    assert op.function_name == "DIRECT_OPERATE" and kinds(out) == ["malformed_objects"]


def test_probe():
    frame = request(0x01, bytes([60, 1, 6]))
    assert DNP3.probe(frame, False) and DNP3.probe(frame, True)
    assert DNP3.probe(frame[:5], True) and not DNP3.probe(frame[:5], False)
    broken = bytearray(frame)
    broken[8] ^= 1
    assert DNP3.probe(bytes(broken), True) and not DNP3.probe(bytes(broken), False)
    assert not DNP3.probe(b"GET / HTTP/1.1\r\n\r\n", True)
    # mid-frame start on the DNP3 port: a whole, valid header further on
    assert DNP3.probe(frame[12:] + frame, True) and not DNP3.probe(frame[12:] + frame, False)
    assert not DNP3.probe(frame[12:] + bytes(broken), True)
    assert DNP3 in REGISTRY.heuristics
    assert DNP3 in REGISTRY.by_port[("tcp", 20000)] and DNP3 in REGISTRY.by_port[("udp", 20000)]


# --- never raises ----------------------------------------------------------------------------------------------------
SAMPLES = [
    request(0x01, bytes([60, 2, 6, 60, 1, 6])), request(0x03, crob(3)), response(0x81, 0x1000, crob(3)),
    response(0x81, 0, bytes([1, 2, 0x00, 0, 9]) + bytes(10) + bytes([0, 1, 0x17, 2, 1, 4, 5, 9])),
    b"".join(frames(bytes([0xC1, 0x81, 0, 0]) + bytes([32, 1, 0x28, 3, 0]) + bytes(60), OUTSTATION, MASTER, size=30)),
    request(0x19, bytes([70, 3, 0x5B, 1, 30, 0]) + bytes(30)),
    response(0x83, 0, bytes([120, 7, 0x5B, 1, 12, 0]) + bytes(12)),
]  # fmt: skip


def _check(records):
    for rec in records:
        assert isinstance(rec, (Operation, Identity, Anomaly))
        if isinstance(rec, Operation):
            assert rec.access_class in ACCESS and rec.direction in ("request", "response")


@settings(max_examples=300)
@given(chunks=st.lists(st.binary(max_size=300), max_size=8), from_orig=st.booleans(), udp=st.booleans())
def test_random_bytes_never_raise(chunks, from_orig, udp):
    d = DNP3()
    for chunk in chunks:
        _check(d.datagram(chunk, from_orig) if udp else d.feed(chunk, from_orig))


@settings(max_examples=500)
@given(sample=st.sampled_from(SAMPLES), data=st.data(), udp=st.booleans())
def test_mutated_frames_with_fixed_crcs_never_raise(sample, data, udp):
    """Mutations behind valid CRCs reach the transport and application layers."""
    frame = bytearray(sample)
    for _ in range(data.draw(st.integers(1, 6))):
        frame[data.draw(st.integers(0, len(frame) - 1))] = data.draw(st.integers(0, 255))
    # re-seal every link frame's CRCs so the mutation is parsed, not rejected as bad_crc
    out, pos = bytearray(), 0
    while pos + 10 <= len(frame) and frame[pos] == 0x05 and frame[pos + 1] == 0x64 and frame[pos + 2] >= 5:
        n = frame[pos + 2] - 5
        raw = bytes(frame[pos + 10 : pos + 10 + frame_length(frame[pos + 2]) - 10])
        user = b"".join(raw[i : i + 16] for i in range(0, len(raw), 18))[:n]
        out += link_frame(
            struct.unpack_from("<H", frame, pos + 6)[0],
            struct.unpack_from("<H", frame, pos + 4)[0],
            user.ljust(n, b"\0"),
            frame[pos + 3],
        )
        pos += frame_length(frame[pos + 2])
    out += frame[pos:]
    d = DNP3()
    _check(d.datagram(bytes(out), True) if udp else d.feed(bytes(out), True))
