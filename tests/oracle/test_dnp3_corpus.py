"""DNP3 on the shared corpus: functions, IIN, objects, controls and files against tshark, logs against
Zeek ICSNPP, roles and reassembly limits in the corpus database."""

from __future__ import annotations

from collections import Counter, defaultdict

import duckdb
import pytest

from dissectors import REGISTRY, Operation
from dissectors.dnp3 import OBJECT_NAMES
from sensor.capture import ReadState, read_packets
from sensor.decode import Decoder, Malformed
from sensor.flows import FlowTable
from tests.helpers.paths import SHARED
from tests.helpers.tshark import run
from tests.helpers.zeek import read_log


# --- real captures ---------------------------------------------------------------------------------------------------
class _Sink:
    def __init__(self) -> None:
        self.records: list[tuple] = []  # (frame, flow, from_orig, record), in order

    def flow(self, flow) -> None:
        pass

    def record(self, flow, from_orig, frame, ts, record) -> None:
        self.records.append((frame, flow, from_orig, record))


def replay(capture: str) -> list[tuple]:
    """Every record of a capture, in the order the sensor emits them."""
    sink = _Sink()
    table = FlowTable(1, REGISTRY, sink)
    decoder = Decoder()
    for n, (link, ts, length, data) in enumerate(read_packets(str(SHARED / capture), ReadState()), 1):
        try:
            pkt = decoder.decode(link, data, ts)
        except Malformed:
            continue
        if pkt is not None:
            table.packet(pkt, n, ts, length)
    table.close()
    return [r for r in sink.records if getattr(r[3], "protocol", None) == "dnp3"]


DNP3_CAPTURES = [
    "dnp3/dnp3_auth_change_session_keys.pcap", "dnp3/dnp3_dataset_exchange.pcap",
    "dnp3/dnp3_direct_operate_crob_malform_but_good_crc.pcap", "dnp3/dnp3_file_list_directory.pcap",
    "dnp3/dnp3_file_read.pcap", "dnp3/dnp3_full_exchange.pcap", "dnp3/dnp3_immediate_freeze.pcap",
    "dnp3/dnp3_unsolicited_response_and_confirm.pcap", "dnp3/dnp3_write_vto_empty_string.pcap",
    "dnp3/icsnpp_dnp3_example.pcap", "dnp3/quickdraw_dnp3_test_data_part1.pcap", "dnp3/suricata_dnp3-flood.pcap",
    "dnp3/zeek_dnp3.pcap", "dnp3/zeek_dnp3_file_read.pcap", "dnp3/zeek_dnp3_file_write.pcap",
    "dnp3/zeek_dnp3_link_only.pcap", "dnp3/zeek_dnp3_select_operate.pcap", "dnp3/zeek_dnp3_udp_read.pcap",
    "dnp3/zeek_dnp3_udp_select_operate.pcap", "mixed/quickdraw_CL5000EIP-View_Device_Status.pcap",
]  # fmt: skip

# frames where sorf and tshark disagree on function, IIN or object headers, and why
FRAME_DIFFERENCES = {
    "dnp3/icsnpp_dnp3_example.pcap": {
        18: "tshark does not reassemble transport sequence 63 -> 0", 114: "the same", 210: "the same",
        810: "the same", 311: "tshark merges this one-segment fragment with stale data of frame 210 (another TCP"
        " connection) and decodes a Confirm",
    },
    "dnp3/dnp3_auth_change_session_keys.pcap": {
        4: "tshark does not decode g120 objects", 5: "the same", 6: "the same", 7: "the same",
    },
    "dnp3/dnp3_write_vto_empty_string.pcap": {
        2: "tshark stops at the first g112v0 header (Malformed Packet); sorf walks all 32 listed",
    },
    "dnp3/quickdraw_dnp3_test_data_part1.pcap": {
        163: "START/STOP_APPL: tshark does not decode the objects of these functions", 166: "the same",
        174: "the same", 176: "the same",
    },
    "dnp3/zeek_dnp3.pcap": {163: "the same as quickdraw part 1", 166: "the same", 174: "the same", 176: "the same"},
}  # fmt: skip


def _ours_by_frame(capture: str) -> dict[int, Counter]:
    by_frame: dict[int, Counter] = defaultdict(Counter)
    for frame, _flow, _orig, rec in replay(capture):
        if isinstance(rec, Operation):
            d = rec.details
            objs = tuple(
                int(o["object"][1:].split("v")[0]) << 8 | int(o["object"].split("v")[1]) for o in d.get("objects", ())
            )
            by_frame[frame][(rec.function_code, d.get("iin"), objs[:32])] += 1
    return by_frame


@pytest.mark.parametrize("capture", DNP3_CAPTURES)
def test_function_iin_and_objects_equal_tshark_frame_by_frame(capture):
    out = run(["-r", str(SHARED / capture), "-Y", "dnp3.al.func", "-T", "fields", "-E", "occurrence=a",
               "-E", "aggregator=|", "-e", "frame.number", "-e", "dnp3.al.func", "-e", "dnp3.al.iin",
               "-e", "dnp3.al.obj"])  # fmt: skip
    ref: dict[int, Counter] = defaultdict(Counter)
    for line in out.splitlines():
        frame, funcs, iins, objs = line.split("\t")
        funcs_l = [int(f) for f in funcs.split("|")]
        if len(funcs_l) == 1:  # one application fragment in the frame: its IIN and objects are known
            ref[int(frame)][
                (funcs_l[0], int(iins, 16) if iins else None, tuple(int(o, 16) for o in objs.split("|") if o))
            ] += 1
        else:  # several: compare the functions only
            ref[int(frame)].update((f, None, None) for f in funcs_l)
    ours = _ours_by_frame(capture)
    for frame, counts in ref.items():
        if any(k[2] is None for k in counts):
            ours[frame] = Counter({(k[0], None, None): v for k, v in ours[frame].items()})
    differing = {f for f in ref.keys() | ours.keys() if ref[f] != ours[f]}
    assert differing == set(FRAME_DIFFERENCES.get(capture, {}))
    assert sum(sum(c.values()) for c in ref.values()) > 0


CROB_CAPTURES = ["dnp3/zeek_dnp3_select_operate.pcap", "dnp3/zeek_dnp3_udp_select_operate.pcap",
                 "dnp3/suricata_dnp3-flood.pcap", "dnp3/dnp3_direct_operate_crob_malform_but_good_crc.pcap",
                 "dnp3/icsnpp_dnp3_example.pcap"]  # fmt: skip


@pytest.mark.parametrize("capture", CROB_CAPTURES)
def test_control_blocks_equal_tshark(capture):
    out = run(["-r", str(SHARED / capture), "-Y", "dnp3.al.obj == 0x0c01", "-T", "fields", "-E", "occurrence=a",
               "-E", "aggregator=|", "-e", "frame.number", "-e", "dnp3.al.index", "-e", "dnp3.ctl.op",
               "-e", "dnp3.ctl.trip", "-e", "dnp3.ctl.clr", "-e", "dnp3.al.count", "-e", "dnp3.al.on_time",
               "-e", "dnp3.al.off_time"])  # fmt: skip
    skip = set(FRAME_DIFFERENCES.get(capture, {}))
    ref = Counter()
    for line in out.splitlines():
        frame, *cols = line.split("\t")
        if int(frame) not in skip:
            ref.update((int(frame), *map(int, t)) for t in zip(*(c.split("|") for c in cols), strict=True))
    trips = {"Nul": 0, "Close": 1, "Trip": 2}
    ops_ = {"Nul": 0, "Pulse On": 1, "Pulse Off": 2, "Latch On": 3, "Latch Off": 4}
    ours = Counter()
    for frame, _flow, _orig, rec in replay(capture):
        if isinstance(rec, Operation) and frame not in skip:
            for c in rec.details.get("controls", ()):
                ours[(frame, c["index_number"], ops_[c["operation_type"]], trips[c["trip_control_code"]],
                      int(c["clear_bit"]), c["execute_count"], c["on_time"], c["off_time"])] += 1  # fmt: skip
    assert sum(ref.values()) > 0 and ours == ref


@pytest.mark.parametrize("capture", ["dnp3/dnp3_file_read.pcap", "dnp3/dnp3_file_list_directory.pcap",
                                     "dnp3/zeek_dnp3_file_read.pcap", "dnp3/zeek_dnp3_file_write.pcap"])  # fmt: skip
def test_open_file_names_equal_tshark(capture):
    out = run(
        [
            "-r",
            str(SHARED / capture),
            "-Y",
            "dnp3.al.func == 25",
            "-T",
            "fields",
            "-e",
            "frame.number",
            "-e",
            "dnp3.al.file_name",
        ]
    )
    ref = {(int(f), name) for f, name in (line.split("\t") for line in out.splitlines())}
    ours = {
        (frame, rec.target)
        for frame, _f, _o, rec in replay(capture)
        if isinstance(rec, Operation) and rec.function_code == 0x19
    }
    assert len(ref) == 1 and ours == ref


def test_link_addresses_equal_tshark():
    """One link frame per TCP segment in this capture: source and destination of every operation."""
    capture = "dnp3/zeek_dnp3.pcap"
    out = run(
        [
            "-r",
            str(SHARED / capture),
            "-Y",
            "dnp3.al.func",
            "-T",
            "fields",
            "-e",
            "frame.number",
            "-e",
            "dnp3.src",
            "-e",
            "dnp3.dst",
        ]
    )
    ref = {(int(f), int(s), int(d)) for f, s, d in (line.split("\t") for line in out.splitlines())}
    ours = {
        (frame, rec.details["src"], rec.details["dst"])
        for frame, _f, _o, rec in replay(capture)
        if isinstance(rec, Operation)
    }
    assert len(ref) > 100 and ours == ref


# --- Zeek ICSNPP ------------------------------------------------------------------------------------------------------
ICSNPP = SHARED / "dnp3" / "icsnpp_dnp3_example.zeek"


@pytest.fixture(scope="module")
def icsnpp_records():
    return replay("dnp3/icsnpp_dnp3_example.pcap")


def test_dnp3_log_equals_icsnpp(icsnpp_records):
    """Zeek writes a dnp3.log row at each response, with the last request seen on the connection since the last row."""
    pending: dict = {}
    ours = Counter()
    for _frame, flow, _orig, rec in icsnpp_records:
        if not isinstance(rec, Operation):
            continue
        if rec.direction == "request":
            pending[flow.flow_id] = rec.function_name
        else:
            ours[(flow.orig_port, pending.pop(flow.flow_id, None), rec.function_name, rec.details["iin"])] += 1
    log = read_log(ICSNPP / "dnp3.log")
    ref = Counter((int(r["id.orig_p"]), r["fc_request"], r["fc_reply"], int(r["iin"])) for r in log)
    assert len(log) == 368 and ours == ref


def test_dnp3_control_log_equals_icsnpp(icsnpp_records):
    ours = Counter()
    for _frame, flow, _orig, rec in icsnpp_records:
        if isinstance(rec, Operation):
            for c in rec.details.get("controls", ()):
                ours[(flow.orig_port, rec.direction == "request", c["block_type"], rec.function_name, c["index_number"],
                      c["trip_control_code"], c["operation_type"], c["clear_bit"], c["execute_count"], c["on_time"],
                      c["off_time"], c.get("status_code"))] += 1  # fmt: skip
    log = read_log(ICSNPP / "dnp3_control.log")
    ref = Counter((int(r["id.orig_p"]), r["is_orig"] == "T", r["block_type"], r["function_code"],
                   int(r["index_number"]), r["trip_control_code"], r["operation_type"], r["clear_bit"] == "T",
                   int(r["execute_count"]), int(r["on_time"]), int(r["off_time"]), r["status_code"])
                  for r in log)  # fmt: skip
    assert len(log) == 534 and ours == ref


def test_dnp3_objects_log_equals_icsnpp(icsnpp_records):
    """ICSNPP logs the object headers of READ requests and of RESPONSEs (count and range on responses only),
    for the object types in its table (which has no group 12)."""
    ours = Counter()
    for _frame, flow, _orig, rec in icsnpp_records:
        if isinstance(rec, Operation) and rec.function_name in ("READ", "RESPONSE"):
            for o in rec.details.get("objects", ()):
                if "object_type" in o and not o["object"].startswith("g12v"):
                    counts = (
                        (o.get("object_count"), o.get("range_low"), o.get("range_high"))
                        if rec.direction == "response"
                        else (None,) * 3
                    )
                    ours[(flow.orig_port, rec.function_name, o["object_type"], *counts)] += 1
    log = read_log(ICSNPP / "dnp3_objects.log")
    ref = Counter((int(r["id.orig_p"]), r["function_code"], r["object_type"],
                   *(int(r[k]) if r[k] else None for k in ("object_count", "range_low", "range_high")))
                  for r in log)  # fmt: skip
    assert len(log) == 503 and ours == ref


def test_object_names_are_icsnpp_names():
    assert OBJECT_NAMES[0x0102] == "Binary Input With Status" and OBJECT_NAMES[0x3C01] == "Class 0 Data"


def test_roles_reach_the_assets(corpus_db):
    with duckdb.connect(str(corpus_db), read_only=True) as con:
        rows = set(
            con.execute(
                """SELECT ip, role, field, value FROM identities JOIN captures USING (capture_id)
               WHERE path = ? AND protocol = 'dnp3'""",
                [str(SHARED / "dnp3/icsnpp_dnp3_example.pcap")],
            ).fetchall()
        )
        roles = dict(con.execute("SELECT ip, roles FROM assets WHERE ip IN ('10.10.20.5', '10.10.20.8')").fetchall())
    assert rows == {("10.10.20.5", "dnp3_master", None, None), ("10.10.20.5", None, "address", "100"),
                    ("10.10.20.8", "dnp3_outstation", None, None), ("10.10.20.8", None, "address", "5")}  # fmt: skip
    assert "dnp3_master" in roles["10.10.20.5"] and "dnp3_outstation" in roles["10.10.20.8"]


def test_too_long_reassembly_capture_gives_one_anomaly_and_the_operation(corpus_db):
    with duckdb.connect(str(corpus_db), read_only=True) as con:
        path = str(SHARED / "dnp3/suricata_dnp3-too-long-reassembly-request.pcap")
        kinds_ = con.execute(
            "SELECT kind FROM anomalies JOIN captures USING (capture_id) WHERE path = ? AND protocol = 'dnp3'", [path]
        ).fetchall()
        n = con.execute(
            "SELECT count(*) FROM operations JOIN captures USING (capture_id) WHERE path = ? AND protocol = 'dnp3'",
            [path],
        ).fetchone()[0]
    assert kinds_ == [("too_long",)] and n == 1  # the READ whose fragment grew too long (frame 36) is still recorded
