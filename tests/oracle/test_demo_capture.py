"""The bundled demo capture and zone file: reproducible, decoded cleanly by tshark, ingested
and analysed by sorf.

captures/make_demo.py must regenerate captures/demo-plant.pcap byte for byte;
tshark must decode every frame without a malformed or warning-level expert item
and find each planted industrial function; `sorf ingest` must classify read, write,
control and program operations in all four protocols and see a completed handshake
on every TCP flow; `sorf analyse` with captures/demo-zones.yaml must report exactly
the five planted deltas (the generator's docstring says what they are and why).
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from sorf.cli import main as sorf
from tests.helpers import tshark
from tests.helpers.paths import ROOT

SCRIPT = ROOT / "captures" / "make_demo.py"
DEMO = ROOT / "captures" / "demo-plant.pcap"
ZONES = ROOT / "captures" / "demo-zones.yaml"

# the functions the demo plants, as tshark names them
PLANTED = {
    "modbus.func_code": {"1", "3", "5", "6", "16", "90"},
    "s7comm.param.func": {"0xf0", "0x04", "0x05", "0x1a", "0x1b", "0x1c", "0x28", "0x29"},
    "dnp3.al.func": {"1", "2", "5", "25", "26", "31", "129"},
    "enip.command": {"0x0063", "0x0065", "0x0066", "0x006f"},
    "cip.service": {"0x4c", "0xcc", "0x4d", "0xcd", "0x05", "0x85", "0x50", "0xd0"},
}


def fields(path: Path, *names: str, display: str = "") -> list[list[str]]:
    """One row per displayed frame: every value of each field (all occurrences)."""
    args = ["-r", str(path), "-T", "fields", "-E", "occurrence=a", "-E", "aggregator=|"]
    if display:
        args += ["-Y", display]
    for name in names:
        args += ["-e", name]
    return [line.split("\t") for line in tshark.run(args).splitlines()]


def test_script_reproduces_committed_capture(tmp_path):
    out = tmp_path / "demo.pcap"
    subprocess.run([sys.executable, str(SCRIPT), str(out)], check=True, capture_output=True, cwd=tmp_path)
    assert out.read_bytes() == DEMO.read_bytes(), "captures/make_demo.py no longer reproduces captures/demo-plant.pcap"


def test_tshark_decodes_every_frame_cleanly():
    assert fields(DEMO, "frame.number", display="_ws.malformed || _ws.expert.severity >= warning") == []
    expert = tshark.run(["-r", str(DEMO), "-q", "-z", "expert"])
    assert "Errors (" not in expert and "Warns (" not in expert, expert
    protocols = {p for (row,) in fields(DEMO, "frame.protocols") for p in row.split(":")}
    assert {"modbus", "s7comm", "dnp3", "enip", "cip", "tls", "dns", "ntp"} <= protocols


@pytest.mark.parametrize("field", sorted(PLANTED))
def test_tshark_finds_planted_functions(field):
    seen = {v for (row,) in fields(DEMO, field, display=field) for v in row.split("|")}
    assert seen == PLANTED[field]


def test_tshark_sees_planted_details():
    # the exception response: Read Holding Registers, illegal data address
    assert fields(DEMO, "modbus.func_code", "modbus.exception_code", display="modbus.exception_code") == [["3", "2"]]
    # the policy violation: the only Write Single Coil comes from the enterprise zone
    assert fields(DEMO, "ip.src", display="modbus.func_code == 5 && tcp.dstport == 502") == [["10.0.5.10"]]
    # UMAS (tshark shows function 90 as data: session byte, then the UMAS code): reserve, stop, download, start
    umas = fields(DEMO, "ip.src", "modbus.data", display="modbus.func_code == 90 && tcp.dstport == 502")
    assert [(src, data[2:4]) for src, data in umas] == [
        ("10.20.1.30", code) for code in ("10", "41", "33", "34", "35", "40", "11")
    ]
    # the download: Download Block and Download Ended jobs are sent by the PLC, the rest by the station
    jobs = fields(DEMO, "ip.src", "s7comm.param.func", display="s7comm.header.rosctr == 1 && ip.addr == 10.20.1.30")
    assert jobs == [["10.20.1.30", "0xf0"], ["10.20.1.30", "0x1a"], ["10.20.2.20", "0x1b"],
                    ["10.20.2.20", "0x1c"], ["10.20.1.30", "0x28"]]  # fmt: skip
    # the integrator's restart (PLC Stop, PI P_PROGRAM), then the station's _INSE; the HMI's Write Var
    s7_jobs = "s7comm.header.rosctr == 1 && s7comm.param.func in {0x05, 0x28, 0x29}"
    assert fields(DEMO, "ip.src", "s7comm.param.func", "s7comm.param.pistart.servicename", display=s7_jobs) == [
        ["10.20.2.100", "0x29", "P_PROGRAM"], ["10.20.2.100", "0x28", "P_PROGRAM"], ["10.20.1.10", "0x05", ""],
        ["10.20.1.30", "0x28", "_INSE"],
    ]  # fmt: skip
    # DNP3: every link-layer and data-chunk CRC correct; the Direct Operate carries a CROB
    crcs = fields(DEMO, "dnp.hdr.CRC.status", "dnp.data_chunk.CRC.status", display="dnp3")  # 1: good
    assert len(crcs) == 16 and all(set(v.split("|")) == {"1"} for row in crcs for v in row)
    assert fields(DEMO, "dnp3.al.obj", display="dnp3.al.func == 5") == [["0x0c01"]]  # g12v1, CROB
    # the laptop's time write (g50v1) and file transfer (g70v3, v5, v4); tshark 4.0 shows no objects for
    # ACTIVATE_CONFIG (31), so its g70v8 is not checked here
    dnp3_requests = "dnp3.al.func in {2, 25, 26, 31}"
    assert fields(DEMO, "ip.src", "dnp3.al.func", "dnp3.al.obj", display=dnp3_requests) == [
        ["10.20.2.100", "2", "0x3201"], ["10.20.2.100", "25", "0x4603"], ["10.20.2.100", "2", "0x4605"],
        ["10.20.2.100", "26", "0x4604"], ["10.20.2.100", "31", ""],
    ]  # fmt: skip
    # CIP requests: who sends which service to which class or tag
    cip = fields(DEMO, "ip.src", "cip.service", "cip.class", "cip.symbol", display="cip.service < 0x80")
    assert cip == [
        ["10.20.1.10", "0x4c", "", "Clearwell_Level"], ["10.20.1.10", "0x4d", "", "Backwash_Setpoint"],
        ["10.20.1.10", "0x4c", "", "Clearwell_Level"], ["10.20.9.50", "0x4c", "", "Clearwell_Level"],
        ["10.20.1.30", "0x4c", "0x37", ""], ["10.20.1.30", "0x50", "0x37", ""], ["10.20.1.30", "0x05", "0x01", ""],
    ]  # fmt: skip


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory) -> Path:
    db = tmp_path_factory.mktemp("demo") / "d.duckdb"
    assert sorf(["ingest", str(DEMO), "--db", str(db)]) == 0
    return db


@pytest.fixture(scope="module")
def ingested(demo_db) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(str(demo_db), read_only=True)
    yield con
    con.close()


# (protocol, access class) -> the functions of the requests of that class (with the UMAS sub-function)
ACCESS = {
    ("modbus", "read"): {"READ_COILS", "READ_HOLDING_REGISTERS"},
    ("modbus", "write"): {"WRITE_SINGLE_COIL", "WRITE_SINGLE_REGISTER", "WRITE_MULTIPLE_REGISTERS"},
    ("modbus", "control"): {"UMAS/STOP_PLC", "UMAS/START_PLC"},
    ("modbus", "program"): {"UMAS/INITIALIZE_DOWNLOAD", "UMAS/DOWNLOAD_BLOCK", "UMAS/END_STRATEGY_DOWNLOAD"},
    ("s7comm", "read"): {"READ_VARIABLE"},
    ("s7comm", "write"): {"WRITE_VARIABLE"},
    ("s7comm", "control"): {"PLC_STOP/P_PROGRAM", "PLC_CONTROL/P_PROGRAM"},
    ("s7comm", "program"): {"REQUEST_DOWNLOAD", "DOWNLOAD_BLOCK", "DOWNLOAD_ENDED", "PLC_CONTROL/_INSE"},
    ("dnp3", "read"): {"READ"},
    ("dnp3", "write"): {"WRITE"},  # g50v1, the time
    ("dnp3", "control"): {"DIRECT_OPERATE"},
    ("dnp3", "program"): {"OPEN_FILE", "WRITE", "CLOSE_FILE", "ACTIVATE_CONFIG"},  # WRITE of g70v5: file transfer
    ("cip", "read"): {"READ_DATA"},
    ("cip", "write"): {"WRITE_DATA"},
    ("cip", "control"): {"RESET"},
    ("cip", "program"): {"INITIATE_DOWNLOAD", "DOWNLOAD_TRANSFER"},
}


def test_sorf_classifies_read_write_control_program_in_every_protocol(ingested):
    rows = ingested.execute(
        "SELECT protocol, access_class, direction, count(*), "
        "list(DISTINCT concat_ws('/', function_name, details->>'subfunction_name', details->>'pi_service')) "
        "FROM operations WHERE access_class IN ('read', 'write', 'control', 'program') GROUP BY ALL"
    ).fetchall()
    requests = {(p, a): set(names) for p, a, d, _, names in rows if d == "request"}
    assert requests == ACCESS
    counts = {(p, a, d): n for p, a, d, n, _ in rows}
    for protocol, access in ACCESS:  # every request answered, and the answer has its class
        assert counts[(protocol, access, "response")] == counts[(protocol, access, "request")], (protocol, access)
    exceptions = ingested.execute("SELECT function_code, status FROM operations WHERE status IS NOT NULL").fetchall()
    assert exceptions == [(3, "ILLEGAL_DATA_ADDRESS")]
    (captures,) = ingested.execute("SELECT list(status) FROM captures").fetchone()
    assert captures == ["ok"]
    assert ingested.execute("SELECT count(*) FROM anomalies").fetchone() == (0,)


def test_sorf_sees_every_tcp_handshake(ingested):
    query = "SELECT src_ip, src_port, dst_ip, dst_port, handshake, reset FROM flows WHERE transport = 'tcp'"
    flows = ingested.execute(query).fetchall()
    tcp_streams = {row[0] for row in fields(DEMO, "tcp.stream", display="tcp")}
    assert len(flows) == len(tcp_streams) == 13
    assert [f for f in flows if not f[4] or f[5]] == []
    # originators are the clients (the SYN senders), never the well-known server ports
    assert all(f[3] in (502, 102, 20000, 44818, 443) and f[1] > 49151 for f in flows)


# the planted deltas: (category, from zone, to zone, protocol, access, host, conduits) -> severity
PLANTED_DELTAS = {
    ("undeclared_conduit", "enterprise", "control", "modbus", ("write",), None, ()): "critical",
    ("access_exceeded", "supervisory", "control", "s7comm", ("program",), None, ("plant-operations",)): "critical",
    ("access_exceeded", "supervisory", "control", "dnp3", ("control",), None, ("plant-operations",)): "critical",
    ("unzoned_host", None, None, None, ("read", "diagnostic", "session"), "10.20.9.50", ()): "high",
    ("unused_conduit", "enterprise", "supervisory", None, (), None, ("vendor-remote",)): "info",
}


@pytest.fixture(scope="module")
def analysis(demo_db) -> dict:
    with pytest.MonkeyPatch.context() as mp:  # capsys is function-scoped: catch stdout by hand
        out = io.StringIO()
        mp.setattr(sys, "stdout", out)
        assert sorf(["analyse", "--db", str(demo_db), "--zones", str(ZONES), "--format", "json"]) == 0
    return json.loads(out.getvalue())


def test_sorf_analyse_reports_exactly_the_planted_deltas(analysis):
    assert analysis["site"] == "Demo Water Works"
    found = {
        (d["category"], d["from_zone"], d["to_zone"], d["protocol"], tuple(d["access"]), d["host"],
         tuple(d["conduits"])): d["severity"]
        for d in analysis["deltas"]
    }  # fmt: skip
    assert found == PLANTED_DELTAS
    assert len(analysis["deltas"]) == len(PLANTED_DELTAS)


def test_sorf_analyse_planted_deltas_point_at_their_hosts_and_functions(analysis):
    deltas = {(d["category"], d["protocol"] or d["host"] or d["conduits"][0]): d for d in analysis["deltas"]}
    pairs = {k: [(p["initiator"], p["responder"]) for p in d["host_pairs"]] for k, d in deltas.items()}
    assert pairs == {
        ("undeclared_conduit", "modbus"): [("10.0.5.10", "10.20.2.10")],
        ("access_exceeded", "s7comm"): [("10.20.1.30", "10.20.2.20")],
        ("access_exceeded", "dnp3"): [("10.20.1.10", "10.20.2.30")],
        ("unzoned_host", "10.20.9.50"): [("10.20.9.50", "10.20.2.40")],
        ("unused_conduit", "vendor-remote"): [],
    }
    assert deltas[("access_exceeded", "dnp3")]["functions"] == {"DIRECT_OPERATE": 1}
    s7 = deltas[("access_exceeded", "s7comm")]
    # the PI service says what the PLC control did
    assert set(s7["functions"]) == {"REQUEST_DOWNLOAD", "DOWNLOAD_BLOCK", "DOWNLOAD_ENDED", "PLC_CONTROL/_INSE"}
    assert deltas[("unzoned_host", "10.20.9.50")]["protocols"] == ["enip"]
    # evidence frames are the PDUs and flows that tshark sees there
    write_coil = fields(DEMO, "frame.number", display="modbus.func_code == 5 && tcp.dstport == 502")
    first, last = (deltas[("undeclared_conduit", "modbus")]["evidence"][k]["frame"] for k in ("first", "last"))
    assert first < int(write_coil[0][0]) < last
    operate = fields(DEMO, "frame.number", display="dnp3.al.func == 5")
    assert deltas[("access_exceeded", "dnp3")]["evidence"]["first"]["frame"] == int(operate[0][0])
    # every declared conduit but vendor-remote carried traffic; every other crossing is allowed
    assert {c["name"]: c["observed"] for c in analysis["conduits"]} == {
        "historian-web": True, "vendor-remote": False, "plant-operations": True, "engineering": True,
    }  # fmt: skip
    statuses = {(c["from_zone"], c["to_zone"], c["protocol"]): c["status"] for c in analysis["observed_conduits"]}
    assert statuses == {
        ("enterprise", "control", "modbus"): "undeclared_conduit",
        ("enterprise", "supervisory", "https"): "allowed",
        ("supervisory", "control", "dnp3"): "access_exceeded",
        ("supervisory", "control", "enip"): "allowed",
        ("supervisory", "control", "modbus"): "allowed",
        ("supervisory", "control", "s7comm"): "access_exceeded",
    }


def test_sorf_analyse_table_shows_the_deltas(demo_db, capsys):
    assert sorf(["analyse", "--db", str(demo_db), "--zones", str(ZONES)]) == 0
    out = capsys.readouterr().out
    assert "DELTAS (5: critical 3, high 1, info 1)" in out
