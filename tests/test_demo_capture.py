"""The bundled demo capture: reproducible, decoded cleanly by tshark, ingested by sorf.

captures/make_demo.py must regenerate captures/demo-plant.pcap byte for byte;
tshark must decode every frame without a malformed or warning-level expert item
and find each planted industrial function; `sorf ingest` must read it with
Modbus reads and writes in `operations` and a completed handshake on every TCP flow.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from sensor.cli import main as sorf

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tshark  # noqa: E402  (tests/tshark.py, the reference oracle)

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "captures" / "make_demo.py"
DEMO = ROOT / "captures" / "demo-plant.pcap"

# the functions the demo plants, as tshark names them
PLANTED = {
    "modbus.func_code": {"1", "3", "5", "6", "16"},
    "s7comm.param.func": {"0xf0", "0x04", "0x1a", "0x1b", "0x1c", "0x28"},
    "dnp3.al.func": {"1", "5", "129"},
    "enip.command": {"0x0063", "0x0065", "0x0066", "0x006f"},
    "cip.service": {"0x4c", "0xcc"},
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
    # the download: Download Block and Download Ended jobs are sent by the PLC, the rest by the station
    jobs = fields(DEMO, "ip.src", "s7comm.param.func", display="s7comm.header.rosctr == 1 && ip.addr == 10.20.1.30")
    assert jobs == [["10.20.1.30", "0xf0"], ["10.20.1.30", "0x1a"], ["10.20.2.20", "0x1b"],
                    ["10.20.2.20", "0x1c"], ["10.20.1.30", "0x28"]]  # fmt: skip
    pi_jobs = "s7comm.param.func == 0x28 && s7comm.header.rosctr == 1"
    assert fields(DEMO, "s7comm.param.pistart.servicename", display=pi_jobs) == [["_INSE"]]
    # DNP3: every link-layer and data-chunk CRC correct; the Direct Operate carries a CROB
    crcs = fields(DEMO, "dnp.hdr.CRC.status", "dnp.data_chunk.CRC.status", display="dnp3")  # 1: good
    assert len(crcs) == 6 and all(set(v.split("|")) == {"1"} for row in crcs for v in row)
    assert fields(DEMO, "dnp3.al.obj", display="dnp3.al.func == 5") == [["0x0c01"]]  # g12v1, CROB


@pytest.fixture(scope="module")
def ingested(tmp_path_factory) -> duckdb.DuckDBPyConnection:
    db = tmp_path_factory.mktemp("demo") / "d.duckdb"
    assert sorf(["ingest", str(DEMO), "--db", str(db)]) == 0
    con = duckdb.connect(str(db), read_only=True)
    yield con
    con.close()


def test_sorf_ingests_modbus_reads_and_writes(ingested):
    rows = ingested.execute(
        "SELECT access_class, direction, list(DISTINCT function_code ORDER BY function_code) FROM operations "
        "WHERE protocol = 'modbus' GROUP BY ALL ORDER BY ALL"
    ).fetchall()
    assert rows == [
        ("read", "request", [1, 3]),
        ("read", "response", [1, 3]),
        ("write", "request", [5, 6, 16]),
        ("write", "response", [5, 6, 16]),
    ]
    exceptions = ingested.execute("SELECT function_code, status FROM operations WHERE status IS NOT NULL").fetchall()
    assert exceptions == [(3, "ILLEGAL_DATA_ADDRESS")]
    (captures,) = ingested.execute("SELECT list(status) FROM captures").fetchone()
    assert captures == ["ok"]
    assert ingested.execute("SELECT count(*) FROM anomalies").fetchone() == (0,)


def test_sorf_sees_every_tcp_handshake(ingested):
    query = "SELECT src_ip, src_port, dst_ip, dst_port, handshake, reset FROM flows WHERE transport = 'tcp'"
    flows = ingested.execute(query).fetchall()
    tcp_streams = {row[0] for row in fields(DEMO, "tcp.stream", display="tcp")}
    assert len(flows) == len(tcp_streams) == 8
    assert [f for f in flows if not f[4] or f[5]] == []
    # originators are the clients (the SYN senders), never the well-known server ports
    assert all(f[3] in (502, 102, 20000, 44818, 443) and f[1] > 49151 for f in flows)
