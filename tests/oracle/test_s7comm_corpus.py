"""S7comm / S7comm-plus against tshark and Zeek ICSNPP: the declarative tables hold every code Wireshark
knows, and the shared corpus decodes field by field as tshark and the ICSNPP logs say."""

from __future__ import annotations

import functools
import json
import re
from collections import Counter
from pathlib import Path

import duckdb
import pytest

from dissectors.s7comm import consts as m
from tests.helpers.paths import SHARED
from tests.helpers.tshark import run

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
        bytes_bits, numbers, items = iter(zip(byte, bit, strict=True)), iter(number), []
        for area_code, db_number in zip(areas, dbs, strict=True):
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
                                     "s7comm/s7comm_downloading_block_db1.pcap",
                                     "s7comm/icsnpp_s7ident.pcap"])  # fmt: skip
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
            rows.append(dict(zip(fields, line.split("\t"), strict=True)))
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
    assert mine == [*szl[:3], (False, 3, 0x001C, 0), *szl[3:]]
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
