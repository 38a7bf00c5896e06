"""`sorf analyse`: scenario captures with planted deltas, and exactly those deltas come out.

Two small captures are built with scapy (real TCP sessions, real Modbus ADUs),
ingested with `sorf ingest`, and compared with a zone file. Each planted delta is
checked by category, zones, protocol, access, severity and the frames that prove
it; nothing else may be reported. docs/analysis.md describes the categories and
the severity matrix these expectations follow.
"""

from __future__ import annotations

import ipaddress
import json
import struct
from pathlib import Path

import duckdb
import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Raw
from scapy.utils import wrpcap

from analyser.deltas import MATRIX, action, analyse, delta_id, severity
from analyser.report import NOT_OBSERVED, render_json, render_markdown, render_table
from analyser.zones import CONSEQUENCES, parse_zone_file
from sorf.cli import main as sorf
from tests.helpers.paths import ROOT

T0 = 1_767_600_000.0  # 2026-01-05 08:00:00 UTC

ENT_WS, ENT_PC, DNS = "10.0.5.10", "10.0.8.20", "10.0.0.53"
HMI, HIST, ENG = "10.20.1.10", "10.20.1.20", "10.20.1.30"
PLC, SIS, REMOTE_IO = "10.20.2.10", "10.20.2.99", "10.20.3.5"
PLANT_A, PLANT_B = "10.20.9.9", "10.20.9.10"
ROGUE, STRAY = "192.168.7.7", "172.16.0.5"
HMI6, PLC6 = "fd00:20:1::10", "fd00:20:2::10"

ZONES = """\
site: Test Works
zones:
  - name: enterprise
    networks: [10.0.0.0/16]
    contact: true
    consequence: minor
  - name: plant
    networks: [10.20.0.0/16]
    consequence: moderate
  - name: supervisory
    networks: [10.20.1.0/24, "fd00:20:1::/64"]
    security_level: 2
    consequence: major
  - name: control
    networks: [10.20.2.0/24, 10.20.3.5, "fd00:20:2::/64"]
    security_level: 3
    consequence: catastrophic
  - name: sis
    networks: [10.20.2.99/32]
    security_level: 4
    consequence: catastrophic
conduits:
  - name: hmi-to-plc
    from: supervisory
    to: control
    allow:
      - {protocol: modbus, access: [read, write]}
  - name: eng-to-plc-enip
    from: supervisory
    to: control
    allow:
      - {protocol: enip, access: [read]}
  - name: hmi-to-sis
    from: supervisory
    to: sis
    allow:
      - {protocol: modbus, access: [read]}
  - name: historian-pull
    from: enterprise
    to: supervisory
    allow:
      - {protocol: https, ports: [443]}
  - name: vendor-access
    from: enterprise
    to: plant
    allow:
      - {protocol: ssh}
"""


# --- capture builder ---------------------------------------------------------------------------------------------


def mbap(tid: int, pdu: bytes, unit: int = 1) -> bytes:
    return struct.pack(">HHHB", tid, 0, len(pdu) + 1, unit) + pdu


def read_holding(tid: int, address: int = 0, qty: int = 2) -> tuple[bytes, bytes]:
    return mbap(tid, struct.pack(">BHH", 3, address, qty)), mbap(tid, bytes([3, 2 * qty]) + b"\x00\x07" * qty)


def write_register(tid: int, address: int = 10, value: int = 42) -> tuple[bytes, bytes]:
    pdu = struct.pack(">BHH", 6, address, value)
    return mbap(tid, pdu), mbap(tid, pdu)


def write_coil(tid: int, address: int = 7) -> tuple[bytes, bytes]:
    pdu = struct.pack(">BHH", 5, address, 0xFF00)
    return mbap(tid, pdu), mbap(tid, pdu)


def device_id(tid: int) -> tuple[bytes, bytes]:  # MEI 0x0E: diagnostic
    return mbap(tid, bytes([43, 0x0E, 1, 0])), mbap(tid, bytes([43 | 0x80, 1]))


def umas(tid: int, sub: int, data: bytes = b"") -> tuple[bytes, bytes]:  # Schneider UMAS (function 90)
    return mbap(tid, bytes([90, 0x01, sub]) + data), mbap(tid, bytes([90, 0x01, 0xFE]))


INIT_COMM, STOP_PLC, DOWNLOAD_BLOCK = 0x01, 0x41, 0x34  # session, control, program


def mac(ip: str) -> str:
    """A fixed MAC per address (explicit, so that scapy never resolves one)."""
    if ip in ("255.255.255.255", "10.20.1.255"):
        return "ff:ff:ff:ff:ff:ff"
    digest = struct.pack(">I", hash_ip(ip))
    return "02:00:" + ":".join(f"{b:02x}" for b in digest)


def hash_ip(ip: str) -> int:
    return int.from_bytes(ipaddress.ip_address(ip).packed[-4:], "big")


class Capture:
    """Frames in order, one millisecond apart; every method returns the frame numbers that matter."""

    def __init__(self, start: float = T0):
        self.packets: list = []
        self.t = start

    def _add(self, pkt) -> int:
        self.t += 0.001
        pkt.time = self.t
        self.packets.append(pkt)
        return len(self.packets)

    @staticmethod
    def _ip(src: str, dst: str):
        return IPv6(src=src, dst=dst) if ":" in src else IP(src=src, dst=dst)

    def tcp(
        self, client: str, server: str, dport: int, exchanges: list[tuple[bytes, bytes | None]], sport: int = 50000
    ) -> dict:
        """A whole session: handshake, request/response pairs, FIN teardown.
        Returns {'first': SYN frame, 'last': final ACK frame, 'requests': [frame per request]}."""
        seq = {client: 1000, server: 5000}
        c2s = Ether(src=mac(client), dst=mac(server)) / self._ip(client, server)
        s2c = Ether(src=mac(server), dst=mac(client)) / self._ip(server, client)

        def send(src: str, flags: str, data: bytes = b"") -> int:
            base, ports = (c2s, (sport, dport)) if src == client else (s2c, (dport, sport))
            other = server if src == client else client
            pkt = base / TCP(
                sport=ports[0], dport=ports[1], flags=flags, seq=seq[src], ack=seq[other] if "A" in flags else 0
            )
            if data:
                pkt = pkt / Raw(data)
            seq[src] += len(data) + (1 if ("S" in flags or "F" in flags) else 0)
            return self._add(pkt)

        first = send(client, "S")
        send(server, "SA")
        send(client, "A")
        requests = []
        for req, resp in exchanges:
            requests.append(send(client, "PA", req))
            if resp is not None:
                send(server, "PA", resp)
        send(client, "FA")
        send(server, "FA")
        last = send(client, "A")
        return {"first": first, "last": last, "requests": requests}

    def udp(self, src: str, dst: str, sport: int, dport: int, payload: bytes = b"\x00" * 8) -> int:
        return self._add(
            Ether(src=mac(src), dst=mac(dst)) / self._ip(src, dst) / UDP(sport=sport, dport=dport) / Raw(payload)
        )

    def write(self, path: Path) -> Path:
        wrpcap(str(path), self.packets)
        return path


def build_site(tmp: Path) -> tuple[Path, dict]:
    """Two captures of one site ingested into one database; returns it and the planted frames."""
    a, b = Capture(), Capture(T0 + 120)
    planted: dict = {}
    # conforming: HMI polls, writes a setpoint, asks the PLC who it is and opens a UMAS session (implied)
    a.tcp(HMI, PLC, 502, [read_holding(1), write_register(2), device_id(3), umas(4, INIT_COMM, b"\x00")])
    # access_exceeded, control: the HMI stops the PLC
    planted["stop"] = a.tcp(HMI, PLC, 502, [read_holding(1), umas(2, STOP_PLC)], sport=50001)["requests"][1]
    # access_exceeded, program: the engineering station downloads blocks
    planted["download"] = a.tcp(
        ENG, PLC, 502, [umas(1, DOWNLOAD_BLOCK, b"\x00\x01"), umas(2, DOWNLOAD_BLOCK, b"\x00\x02")]
    )["requests"]
    # access_exceeded, write: into the SIS, a /32 inside control's /24 inside plant's /16
    planted["sis_write"] = a.tcp(HMI, SIS, 502, [read_holding(1), write_register(2)])["requests"][1]
    # conforming: a host listed as a single address, and IPv6
    a.tcp(HMI, REMOTE_IO, 502, [read_holding(1)])
    a.tcp(HMI6, PLC6, 502, [read_holding(1)])
    # undeclared_conduit: enterprise writes a coil in control (and again in capture b)
    planted["undeclared_a"] = a.tcp(ENT_WS, PLC, 502, [write_coil(1)])
    # conforming: https to the historian on 443, vendor ssh into the plant
    a.tcp(ENT_PC, HIST, 443, [(b"\x16\x03\x01\x00\x05hello", b"\x16\x03\x03\x00\x05hello")])
    a.tcp(ENT_PC, PLANT_A, 22, [(b"SSH-2.0-client\r\n", b"SSH-2.0-server\r\n")])
    # protocol_not_allowed: https, but on 8443
    planted["https_8443"] = a.tcp(ENT_PC, HIST, 8443, [(b"\x16\x03\x01\x00\x05hello", b"\x16\x03\x03\x00\x05hello")])
    # intra-zone
    a.tcp(PLANT_A, PLANT_B, 502, [read_holding(1)])
    a.udp(ENT_PC, DNS, 53001, 53)
    # broadcast, multicast, unspecified: never conduits, never unzoned hosts
    a.udp("0.0.0.0", "255.255.255.255", 68, 67)
    a.udp(HMI, "10.20.1.255", 137, 137)
    a.udp(PLC, "224.0.0.251", 5353, 5353)
    # unzoned_host: one speaks Modbus to the PLC, one only asks DNS
    planted["rogue"] = a.tcp(ROGUE, PLC, 502, [read_holding(1)])
    planted["stray"] = a.udp(STRAY, DNS, 53002, 53)
    # capture b, another sensor: the PLC opens https to the HMI; the enterprise write again
    planted["reversed"] = b.tcp(PLC, HMI, 443, [(b"\x16\x03\x01\x00\x05hello", b"\x16\x03\x03\x00\x05hello")])
    planted["undeclared_b"] = b.tcp(ENT_WS, PLC, 502, [write_coil(9)], sport=50007)

    db = tmp / "site.duckdb"
    pa, pb = a.write(tmp / "north.pcap"), b.write(tmp / "south.pcap")
    assert sorf(["ingest", str(pa), "--db", str(db), "--sensor", "north-span"]) == 0
    assert sorf(["ingest", str(pb), "--db", str(db), "--sensor", "south-span"]) == 0
    planted["paths"] = (str(pa), str(pb))
    return db, planted


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("site")
    db, planted = build_site(tmp)
    zones = tmp / "zones.yaml"
    zones.write_text(ZONES)
    return db, zones, planted


@pytest.fixture(scope="module")
def result(site):
    db, zones, _ = site
    return analyse(str(db), parse_zone_file(zones.read_text(), str(zones)))


def ev(delta) -> tuple:
    t = delta.traffic
    return (t.first.path, t.first.frame), (t.last.path, t.last.frame)


# --- exactly the planted deltas ------------------------------------------------------------------------------------


def test_exactly_the_planted_deltas(result, site):
    _, _, p = site
    north, south = p["paths"]
    got = {
        (d.category, d.from_zone, d.to_zone, d.protocol, tuple(d.access), d.host, d.severity): d for d in result.deltas
    }
    expected = {
        # program and control into a catastrophic zone rank highest
        ("access_exceeded", "supervisory", "control", "modbus", ("control",), None, "critical"),
        ("access_exceeded", "supervisory", "control", "modbus", ("program",), None, "critical"),
        # write into catastrophic (high), one step up for crossing from a contact zone
        ("undeclared_conduit", "enterprise", "control", "modbus", ("write",), None, "critical"),
        ("access_exceeded", "supervisory", "sis", "modbus", ("write",), None, "high"),
        # opaque traffic into a major zone (medium), one step up for the contact crossing
        ("protocol_not_allowed", "enterprise", "supervisory", "https", (), None, "high"),
        ("unzoned_host", None, None, None, ("read",), ROGUE, "high"),
        ("reversed_initiator", "control", "supervisory", "https", (), None, "medium"),
        ("unzoned_host", None, None, None, (), STRAY, "medium"),
        ("unused_conduit", "supervisory", "control", None, (), None, "info"),
    }
    assert set(got) == expected
    assert len(result.deltas) == len(expected)

    by = {(d.category, tuple(d.access), d.host): d for d in result.deltas}
    stop = by[("access_exceeded", ("control",), None)]
    assert ev(stop) == ((north, p["stop"]), (north, p["stop"]))
    assert stop.operations == {"control": 1} and stop.functions == {"UMAS/STOP_PLC": 1}
    assert stop.conduits == ["hmi-to-plc"] and stop.ports == [502]
    download = by[("access_exceeded", ("program",), None)]
    assert ev(download) == ((north, p["download"][0]), (north, p["download"][1]))
    assert download.operations == {"program": 2} and download.functions == {"UMAS/DOWNLOAD_BLOCK": 2}
    assert [(h.initiator, h.responder) for h in download.traffic.host_pairs] == [(ENG, PLC)]
    sis = by[("access_exceeded", ("write",), None)]
    assert ev(sis) == ((north, p["sis_write"]), (north, p["sis_write"]))
    assert sis.conduits == ["hmi-to-sis"] and sis.functions == {"WRITE_SINGLE_REGISTER": 1}

    undeclared = by[("undeclared_conduit", ("write",), None)]
    # conduit-level evidence: the first frame of the first flow, the last frame of the last, across captures
    assert ev(undeclared) == ((north, p["undeclared_a"]["first"]), (south, p["undeclared_b"]["last"]))
    assert undeclared.traffic.flows == 2 and undeclared.operations == {"write": 2} and undeclared.conduits == []
    assert [(h.initiator, h.responder, h.flows) for h in undeclared.traffic.host_pairs] == [(ENT_WS, PLC, 2)]

    https = by[("protocol_not_allowed", (), None)]
    assert https.ports == [8443] and https.conduits == ["historian-pull"]
    assert ev(https) == ((north, p["https_8443"]["first"]), (north, p["https_8443"]["last"]))

    reversed_ = next(d for d in result.deltas if d.category == "reversed_initiator")
    assert reversed_.conduits == ["eng-to-plc-enip", "hmi-to-plc"] and reversed_.ports == [443]
    assert ev(reversed_) == ((south, p["reversed"]["first"]), (south, p["reversed"]["last"]))
    assert [(h.initiator, h.responder) for h in reversed_.traffic.host_pairs] == [(PLC, HMI)]

    unused = next(d for d in result.deltas if d.category == "unused_conduit")
    assert unused.conduits == ["eng-to-plc-enip"] and unused.traffic.first is None and unused.traffic.flows == 0
    assert "no crossing observed in this window" in unused.message

    rogue = by[("unzoned_host", ("read",), ROGUE)]
    assert rogue.peer_zones == ["control"] and rogue.protocols == ["modbus"]
    assert ev(rogue) == ((north, p["rogue"]["first"]), (north, p["rogue"]["last"]))
    stray = by[("unzoned_host", (), STRAY)]
    assert stray.peer_zones == ["enterprise"] and stray.protocols == ["dns"]
    assert ev(stray) == ((north, p["stray"]), (north, p["stray"]))


def test_deltas_are_ordered_by_severity(result):
    ranks = ["info", "low", "medium", "high", "critical"]
    sev = [ranks.index(d.severity) for d in result.deltas]
    assert sev == sorted(sev, reverse=True)


def test_observed_conduits_and_nesting(result):
    rows = {(o.from_zone, o.to_zone, o.protocol, o.port): o for o in result.observed}
    assert set(rows) == {
        ("supervisory", "control", "modbus", 502), ("supervisory", "sis", "modbus", 502),
        ("enterprise", "control", "modbus", 502), ("enterprise", "supervisory", "https", 443),
        ("enterprise", "supervisory", "https", 8443), ("enterprise", "plant", "ssh", 22),
        ("control", "supervisory", "https", 443),
    }  # fmt: skip
    hmi_plc = rows[("supervisory", "control", "modbus", 502)]
    # five flows: two HMI -> PLC, ENG -> PLC, HMI -> the single-address remote I/O, and one over IPv6
    assert hmi_plc.traffic.flows == 5 and hmi_plc.status == "access_exceeded" and hmi_plc.conduits == ["hmi-to-plc"]
    assert hmi_plc.operations == {"control": 1, "diagnostic": 1, "program": 2, "read": 4, "session": 1, "write": 1}
    assert hmi_plc.access == ["read", "write", "control", "program", "diagnostic", "session"]
    assert {(h.initiator, h.responder) for h in hmi_plc.traffic.host_pairs} == {
        (HMI, PLC),
        (ENG, PLC),
        (HMI, REMOTE_IO),
        (HMI6, PLC6),
    }
    assert rows[("enterprise", "supervisory", "https", 443)].status == "allowed"
    assert rows[("enterprise", "plant", "ssh", 22)].conduits == ["vendor-access"]
    zones = {z.name: z.hosts for z in result.zones}
    assert zones == {"enterprise": 3, "plant": 2, "supervisory": 4, "control": 3, "sis": 1}
    status = {c.name: (c.observed, c.flows) for c in result.conduits}
    assert status == {
        "hmi-to-plc": (True, 5), "eng-to-plc-enip": (False, 0), "hmi-to-sis": (True, 1), "historian-pull": (True, 1),
        "vendor-access": (True, 1),
    }  # fmt: skip


def test_intra_zone_and_non_host_traffic_are_summarised_separately(result):
    intra = {(i.zone, i.protocol): i for i in result.intra_zone}
    assert set(intra) == {("plant", "modbus"), ("enterprise", "dns")}
    assert intra[("plant", "modbus")].operations == {"read": 1}
    non_host = {(n.from_zone, n.kind, n.protocol) for n in result.non_host}
    assert non_host == {
        (None, "broadcast", "dhcp"),
        ("supervisory", "broadcast", "netbios"),
        ("control", "multicast", "mdns"),
    }


def test_window(result, site):
    _, _, p = site
    w = result.window
    assert [c.path for c in w.captures] == list(p["paths"])
    assert w.sensors == ["north-span", "south-span"]
    assert w.first_ts.timestamp() == pytest.approx(T0 + 0.001, abs=1e-6)
    assert w.last_ts > w.first_ts and w.flows == 19 and w.hosts == 15  # 0.0.0.0 and the broadcasts are not hosts


def test_ids_are_stable_across_databases_and_ingest_order(tmp_path, site, result):
    """The same findings from the captures ingested in the other order into another database."""
    _, zones, p = site
    db = tmp_path / "reordered.duckdb"
    for path in reversed(p["paths"]):
        assert sorf(["ingest", path, "--db", str(db)]) == 0
    again = analyse(str(db), parse_zone_file(zones.read_text(), str(zones)))
    assert [(d.id, d.category, d.severity) for d in again.deltas] == [
        (d.id, d.category, d.severity) for d in result.deltas
    ]
    assert delta_id("access_exceeded", "supervisory", "control", "modbus", "control") in {d.id for d in again.deltas}
    assert len({d.id for d in result.deltas}) == len(result.deltas)


# --- decisions, one at a time ---------------------------------------------------------------------------------------


def test_severity_matrix():
    assert [severity(a, "catastrophic", False) for a in ("program", "control", "write", "other", "opaque", "read")] == [
        "critical", "critical", "high", "high", "high", "medium"
    ]  # fmt: skip
    assert severity("read", "negligible", False) == "info" and severity("read", "negligible", True) == "low"
    assert severity("program", "catastrophic", True) == "critical"  # capped
    assert all(len(row) == len(CONSEQUENCES) for row in MATRIX.values())
    # never lower for a worse consequence, nor for a more dangerous action
    ranks = ["info", "low", "medium", "high", "critical"]
    for row in MATRIX.values():
        assert [ranks.index(s) for s in row] == sorted(ranks.index(s) for s in row)
    for c in range(len(CONSEQUENCES)):
        column = [ranks.index(MATRIX[a][c]) for a in ("read", "other", "write", "control", "program")]
        assert column == sorted(column)
    assert action({"read": 3, "session": 1}) == "read" and action({"write": 1, "program": 1}) == "program"
    assert action({}, "https") == "opaque" and action({}, "icmp") == "read"


def test_session_and_diagnostic_are_implied(tmp_path):
    """A read-only conduit is not flagged for opening a session or identifying the device."""
    c = Capture()
    c.tcp(HMI, PLC, 502, [umas(1, INIT_COMM, b"\x00"), device_id(2), read_holding(3)])
    db = tmp_path / "implied.duckdb"
    assert sorf(["ingest", str(c.write(tmp_path / "implied.pcap")), "--db", str(db)]) == 0
    zf = parse_zone_file(
        "zones:\n  - {name: supervisory, networks: [10.20.1.0/24]}\n  - {name: control, networks: [10.20.2.0/24]}\n"
        "conduits:\n  - {name: ro, from: supervisory, to: control, allow: [{protocol: modbus, access: [read]}]}\n",
        "ro.yaml",
    )
    result = analyse(str(db), zf)
    assert result.deltas == []
    assert result.observed[0].operations == {"diagnostic": 1, "read": 1, "session": 1}


def test_any_access_when_a_rule_names_none(site):
    db, _, _ = site
    zf = parse_zone_file(ZONES.replace("{protocol: modbus, access: [read, write]}", "{protocol: modbus}"), "any.yaml")
    cats = {(d.category, tuple(d.access)) for d in analyse(str(db), zf).deltas}
    assert ("access_exceeded", ("control",)) not in cats and ("access_exceeded", ("program",)) not in cats
    assert ("access_exceeded", ("write",)) in cats  # the SIS conduit still allows only reads


# --- output -----------------------------------------------------------------------------------------------------------


def test_json_output(result):
    doc = json.loads(render_json(result))
    assert doc["format"] == "sorf-analysis" and doc["version"] == 1
    assert set(doc) == {
        "format", "version", "site", "database", "zone_file", "statement", "window", "summary", "zones", "conduits",
        "observed_conduits", "intra_zone", "non_host_traffic", "deltas",
    }  # fmt: skip
    assert doc["window"]["captures"] == 2 and doc["window"]["sensors"] == ["north-span", "south-span"]
    assert doc["summary"]["by_severity"] == {"info": 1, "low": 0, "medium": 2, "high": 3, "critical": 3}
    assert doc["summary"]["worst"] == "critical"
    d = doc["deltas"][0]
    assert set(d) == {
        "id", "category", "severity", "from_zone", "to_zone", "conduits", "protocol", "ports", "access", "host",
        "protocols", "peer_zones", "operations", "functions", "flows", "packets", "bytes", "first_seen", "last_seen",
        "evidence", "host_pairs", "host_pairs_total", "message",
    }  # fmt: skip
    assert set(d["evidence"]["first"]) == {"capture_id", "frame", "path", "ts"}
    assert d["first_seen"].endswith("Z")
    unused = next(x for x in doc["deltas"] if x["category"] == "unused_conduit")
    assert unused["evidence"] is None
    assert next(c for c in doc["conduits"] if c["name"] == "eng-to-plc-enip")["status"] == NOT_OBSERVED


def test_wording_never_claims_enforcement(result):
    for text in (render_table(result), render_markdown(result), render_json(result)):
        assert "enforced" not in text.lower()
        assert "no crossing observed in this window" in text
    table = render_table(result)
    assert "2 captures" in table and "north-span, south-span" in table
    assert "INTRA-ZONE TRAFFIC" in table and "## Intra-zone traffic" in render_markdown(result)


# --- the command ---------------------------------------------------------------------------------------------------


def test_command_exit_codes(site, tmp_path, capsys):
    db, zones, _ = site
    assert sorf(["analyse", "--db", str(db), "--zones", str(zones)]) == 0
    out = capsys.readouterr().out
    assert "[critical] access_exceeded" in out
    assert sorf(["analyse", "--db", str(db), "--zones", str(zones), "--format", "json", "--fail-on", "critical"]) == 3
    captured = capsys.readouterr()
    assert json.loads(captured.out)["summary"]["deltas"] == 9 and "3 delta(s) at or above critical" in captured.err
    assert sorf(["analyze", "--db", str(db), "--zones", str(zones), "--format", "markdown", "--fail-on", "info"]) == 3
    assert capsys.readouterr().out.startswith("# Zone and conduit analysis: Test Works")

    # an empty database: every conduit unused (info), nothing at or above low
    empty = tmp_path / "empty.duckdb"
    from sensor.store import Store

    Store(str(empty)).close()
    assert sorf(["analyse", "--db", str(empty), "--zones", str(zones), "--fail-on", "low"]) == 0
    assert "no captures in the database" in capsys.readouterr().out
    assert sorf(["analyse", "--db", str(empty), "--zones", str(zones), "--fail-on", "info"]) == 3
    capsys.readouterr()


def test_command_bad_input(site, tmp_path, capsys):
    db, zones, _ = site
    bad = tmp_path / "bad.yaml"
    text = ZONES.replace("access: [read, write]", "access: [read, writ]").replace("to: sis", "to: sys")
    bad.write_text(text)
    lines = text.splitlines()
    writ, sys_ = (next(i + 1 for i, line in enumerate(lines) if key in line) for key in ("writ", "to: sys"))
    assert sorf(["analyse", "--db", str(db), "--zones", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.splitlines()[:2] == [
        (
            f"{bad}:{writ}: conduits[0].allow[0].access[1]: unknown access class 'writ' "
            "(expected read, write, control, program, diagnostic, session, other)"
        ),
        f"{bad}:{sys_}: conduits[2].to: unknown zone 'sys' in conduit 'hmi-to-sis'; did you mean 'sis'?",
    ]
    assert "Traceback" not in err and "2 problems in the zone file" in err

    assert sorf(["analyse", "--db", str(tmp_path / "missing.duckdb"), "--zones", str(zones)]) == 2
    assert "no such database" in capsys.readouterr().err
    folder = f"sorf: {tmp_path}: a folder, not a database; give --db the database file (FILE.duckdb)"
    for command in (["analyse"], ["evidence", "x", "--out", str(tmp_path / "e.pcapng")]):  # said as ingest says it
        assert sorf([*command, "--db", str(tmp_path), "--zones", str(zones)]) == 2
        assert capsys.readouterr().err.strip() == folder
    assert sorf(["analyse", "--db", str(db), "--zones", str(tmp_path / "missing.yaml")]) == 2
    assert "missing.yaml: No such file or directory" in capsys.readouterr().err
    notsorf = tmp_path / "other.duckdb"
    duckdb.connect(str(notsorf)).close()
    assert sorf(["analyse", "--db", str(notsorf), "--zones", str(zones)]) == 2
    assert "not a sorf database" in capsys.readouterr().err


def test_bench_generator_runs_small(tmp_path):
    """`make bench` builds its database in SQL; a small one analyses (no timing here)."""
    from analyser.bench import generate

    db, zones, ops = generate(tmp_path, flows=5000, zones=50, conduits=200)
    assert ops > 0
    from analyser.zones import load_zone_file

    result = analyse(str(db), load_zone_file(zones))
    cats = {d.category for d in result.deltas}
    assert {"undeclared_conduit", "reversed_initiator", "unzoned_host"} <= cats
    assert result.window.flows == 5000 and len(result.zones) == 50 and len(result.conduits) == 200


def test_documented_severity_matrix_is_the_code():
    """docs/analysis.md shows the matrix; it must say what deltas.py does."""
    text = (ROOT / "docs" / "analysis.md").read_text()
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 6 and cells[1] in ("info", "low", "medium", "high", "critical"):
            rows[cells[0]] = tuple(cells[1:])
    assert rows == {
        "program": MATRIX["program"],
        "control": MATRIX["control"],
        "write": MATRIX["write"],
        "other, or opaque": MATRIX["other"],
        "read, diagnostic, session": MATRIX["read"],
    }
