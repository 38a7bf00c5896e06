"""Generate captures/demo-plant.pcap: about a minute of traffic in a small demo water plant.

Run ``python captures/make_demo.py [OUT.pcap]``. The output is byte-identical on
every run: fixed MACs, addresses, ports, TCP ISNs, IP ids and timestamps (from
2026-01-05 08:00:00 UTC); nothing depends on the clock, the host or a RNG.

Zones (IEC 62443 style; declared in captures/demo-zones.yaml) and hosts:

    enterprise   10.0.0.0/16   engineering workstation .5.10, IT PC .8.20, DNS .0.53
    supervisory  10.20.1.0/24  HMI .10, historian .20, engineering station .30, firewall/NTP .1
    control      10.20.2.0/24  Modbus PLC .10, S7 PLC .20, DNP3 RTU .30, EtherNet/IP PLC .40,
                               the integrator's laptop .100 (on site, on the control switch)
    (no zone)    10.20.9.50    a packaging-skid gateway, on a network the firewall routes

Each conversation is recorded as seen on the server's segment (one SPAN port per
zone switch): a frame that crossed the firewall carries the firewall's MAC on that
segment and a TTL one lower. Every TCP conversation is a complete session (SYN,
SYN-ACK, ACK, data with correct seq/ack, FIN teardown).

Every protocol carries read, write, control and program operations, as sorf classifies
them (operations.access_class; docs/protocols/*.md):

    Modbus  read fc 1, 3; write fc 5, 6, 16; Schneider UMAS (fc 90): control STOP_PLC and
            START_PLC, program INITIALIZE_DOWNLOAD, DOWNLOAD_BLOCK, END_STRATEGY_DOWNLOAD
    S7comm  read Read Var; write Write Var; control PLC Stop and PI "P_PROGRAM" (warm
            restart); program Request Download, Download Block, Download Ended, PI "_INSE"
    DNP3    read READ class 0123; write WRITE g50v1 (time); control DIRECT_OPERATE g12v1;
            program OPEN_FILE g70v3, WRITE g70v5, CLOSE_FILE, ACTIVATE_CONFIG
    CIP     read Read Tag 0x4C; write Write Tag 0x4D; control Identity Reset 0x05;
            program File object (0x37) Initiate Download 0x4C, Download Transfer 0x50

What happens, and what `sorf analyse --zones captures/demo-zones.yaml` must find:

- Operations, supervisory -> control (allowed by conduit plant-operations): the HMI
  polls the Modbus PLC (fc 3, fc 1), writes a setpoint (fc 6) and PID tunings (fc 16),
  and once reads past the register map (exception 0x02, illegal data address). It reads
  DB1 from the S7 PLC and writes a setpoint (Write Var DB1.DBD16), reads and writes tags
  on the EtherNet/IP PLC (CIP in unconnected SendRRData). The historian polls the RTU
  (DNP3 class 0123 integrity polls, master address 1).
- Engineering, supervisory -> control (allowed by conduit engineering): the engineering
  station 10.20.1.30 stops the Modicon, downloads an application over UMAS and starts
  it; loads a configuration file into the Logix through the CIP File object and resets
  it; and sends an ENIP ListIdentity over UDP 44818 (asset discovery, a diagnostic).
- Intra-zone (no conduit needed): the integrator's laptop stops and warm-restarts the S7
  PLC, sets the RTU's clock and loads and activates a DNP3 configuration file; the IT PC
  resolves the historian's name (DNS); the HMI syncs time from the firewall (NTP).
- Contact traffic, enterprise -> supervisory (conduit historian-web): the IT PC opens
  HTTPS to the historian (TLS 1.3 hellos, then opaque records).

The five planted deltas, and nothing else:

1. undeclared_conduit, enterprise -> control, modbus: the enterprise workstation
   10.0.5.10 writes a coil (fc 5) on the control-zone PLC directly.
2. access_exceeded, supervisory -> control, s7comm, program: the engineering station
   downloads OB1 to the S7 PLC (Request Download 0x1A, Download Block 0x1B, Download
   Ended 0x1C) and activates it with PI service "_INSE" (0x28). As on a real S7-300/400
   the PLC pulls the block: the 0x1B and 0x1C jobs travel PLC -> station, so a dissector
   must not assume that the TCP client sends every job.
3. access_exceeded, supervisory -> control, dnp3, control: the HMI, as an unexpected
   DNP3 master (address 2), starts pump P-101 on the RTU (Direct Operate, CROB g12v1).
4. unzoned_host 10.20.9.50: the skid gateway sends a ListIdentity to the Logix and reads
   a tag from it.
5. unused_conduit vendor-remote: the declared RDP conduit carries nothing.
"""

from __future__ import annotations

import hashlib
import struct
import sys
from datetime import UTC, datetime
from decimal import Decimal, localcontext
from ipaddress import ip_address, ip_network
from pathlib import Path

from scapy.contrib.enipTCP import ENIPTCP, ENIPListIdentityItem, ENIPRegisterSession, ENIPSendRRData, ItemData
from scapy.contrib.modbus import (
    ModbusADURequest,
    ModbusADUResponse,
    ModbusPDU01ReadCoilsRequest,
    ModbusPDU01ReadCoilsResponse,
    ModbusPDU03ReadHoldingRegistersError,
    ModbusPDU03ReadHoldingRegistersRequest,
    ModbusPDU03ReadHoldingRegistersResponse,
    ModbusPDU05WriteSingleCoilRequest,
    ModbusPDU05WriteSingleCoilResponse,
    ModbusPDU06WriteSingleRegisterRequest,
    ModbusPDU06WriteSingleRegisterResponse,
    ModbusPDU10WriteMultipleRegistersRequest,
    ModbusPDU10WriteMultipleRegistersResponse,
)  # fmt: skip
from scapy.layers.dns import DNS, DNSQR, DNSRR
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether
from scapy.layers.ntp import NTPHeader
from scapy.packet import Raw
from scapy.utils import wrpcap

OUT = Path(__file__).with_name("demo-plant.pcap")
T0 = int(datetime(2026, 1, 5, 8, 0, 0, tzinfo=UTC).timestamp()) * 1_000_000  # µs since the epoch

ZONES = {
    "enterprise": ip_network("10.0.0.0/16"),
    "supervisory": ip_network("10.20.1.0/24"),
    "control": ip_network("10.20.2.0/24"),
}
FIREWALL_MAC = {"enterprise": "00:09:0f:00:00:01", "supervisory": "00:09:0f:00:01:01", "control": "00:09:0f:00:02:01"}
HOSTS = {  # ip: (MAC, initial TTL, TCP window)
    "10.0.5.10": ("00:50:56:a0:05:0a", 128, 64240),  # enterprise engineering workstation
    "10.0.8.20": ("00:50:56:a0:08:14", 128, 64240),  # IT PC
    "10.0.0.53": ("00:50:56:a0:00:35", 64, 29200),  # enterprise DNS server
    "10.20.1.1": (FIREWALL_MAC["supervisory"], 255, 8192),  # firewall, NTP server of the plant
    "10.20.1.10": ("00:50:56:b1:01:0a", 128, 64240),  # HMI
    "10.20.1.20": ("00:50:56:b1:01:14", 128, 64240),  # historian
    "10.20.1.30": ("00:50:56:b1:01:1e", 128, 64240),  # engineering station
    "10.20.2.10": ("00:80:f4:02:00:0a", 64, 4096),  # Modbus PLC (Schneider OUI)
    "10.20.2.20": ("00:1b:1b:02:00:14", 30, 8192),  # S7 PLC (Siemens OUI)
    "10.20.2.30": ("00:30:a7:02:00:1e", 64, 8192),  # DNP3 RTU (SEL OUI)
    "10.20.2.40": ("00:00:bc:02:00:28", 64, 4096),  # EtherNet/IP PLC (Rockwell OUI)
    "10.20.2.100": ("54:bf:64:02:00:64", 128, 64240),  # the integrator's laptop on the control switch
    "10.20.9.50": ("00:1d:9c:09:00:32", 64, 5840),  # packaging-skid gateway, on a network nobody declared
}
MSS = 1460
ENT_WS, IT_PC, DNS_SERVER = "10.0.5.10", "10.0.8.20", "10.0.0.53"
NTP_SERVER, HMI, HISTORIAN, ENG = "10.20.1.1", "10.20.1.10", "10.20.1.20", "10.20.1.30"
MODBUS_PLC, S7_PLC, RTU, ENIP_PLC = "10.20.2.10", "10.20.2.20", "10.20.2.30", "10.20.2.40"
LAPTOP, SKID = "10.20.2.100", "10.20.9.50"


def det(label: str, n: int) -> bytes:
    """n fixed pseudo-random bytes named by label (ISNs, keys, randoms, ciphertext)."""
    out = b""
    while len(out) < n:
        out += hashlib.sha256(f"{label}/{len(out)}".encode()).digest()
    return out[:n]


def us(seconds: float) -> int:
    return round(seconds * 1_000_000)


def zone_of(ip: str) -> str:
    return next(z for z, net in ZONES.items() if ip_address(ip) in net)


class Capture:
    """The frames of every conversation; sorted by time and given IP ids when written."""

    def __init__(self) -> None:
        self.frames: list[tuple[int, int, Ether]] = []

    def add(self, t: int, src: str, dst: str, l4, seen_on: str) -> None:
        net = ZONES[seen_on]
        routed = ip_address(src) not in net
        smac = FIREWALL_MAC[seen_on] if routed else HOSTS[src][0]
        dmac = FIREWALL_MAC[seen_on] if ip_address(dst) not in net else HOSTS[dst][0]
        ip = IP(src=src, dst=dst, ttl=HOSTS[src][1] - routed, flags="DF" if TCP in l4 else 0)
        self.frames.append((t, len(self.frames), Ether(src=smac, dst=dmac) / ip / l4))

    def write(self, path: Path) -> int:
        ip_id = {ip: int.from_bytes(det("ip id " + ip, 2), "big") for ip in HOSTS}  # one counter per sender
        packets = []
        for t, _, pkt in sorted(self.frames, key=lambda f: f[:2]):
            src = pkt[IP].src
            pkt[IP].id = ip_id[src]
            ip_id[src] = (ip_id[src] + 1) & 0xFFFF
            pkt.time = Decimal(t) / 1_000_000
            packets.append(pkt)
        wrpcap(str(path), packets)
        return len(packets)


class Tcp:
    """One TCP connection, opened on creation; keeps its own clock (µs) and sequence numbers."""

    def __init__(self, cap: Capture, client: tuple[str, int], server: tuple[str, int], start: float):
        self.cap, self.t = cap, T0 + us(start)
        (self.cip, self.cport), (self.sip, self.sport) = client, server
        self.seen_on = zone_of(self.sip)
        self.seq = {ip: int.from_bytes(det(f"isn {client} {server} {ip}", 4), "big") for ip in (self.cip, self.sip)}
        self.send(self.cip, "S")
        self.send(self.sip, "SA", after=0.0004)
        self.send(self.cip, "A", after=0.0002)

    def send(self, src: str, flags: str, data: bytes = b"", after: float = 0.0) -> None:
        self.t += us(after)
        dst = self.sip if src == self.cip else self.cip
        sport, dport = (self.cport, self.sport) if src == self.cip else (self.sport, self.cport)
        tcp = TCP(
            sport=sport, dport=dport, seq=self.seq[src], ack=self.seq[dst] if "A" in flags else 0, flags=flags,
            window=HOSTS[src][2], options=[("MSS", MSS)] if "S" in flags else [],
        )  # fmt: skip
        self.cap.add(self.t, src, dst, tcp / Raw(data) if data else tcp, self.seen_on)
        self.seq[src] = (self.seq[src] + len(data) + ("S" in flags) + ("F" in flags)) & 0xFFFFFFFF

    def call(self, req: bytes, resp: bytes | None, at: float, rtt: float = 0.004, by_server: bool = False) -> None:
        """At ``at`` seconds after T0 one side sends ``req``; the other answers ``resp`` after ``rtt``."""
        self.t = max(self.t, T0 + us(at))
        a, b = (self.sip, self.cip) if by_server else (self.cip, self.sip)
        self.push(a, req)
        if resp is not None:
            self.push(b, resp, after=rtt)

    def push(self, src: str, data: bytes, after: float = 0.0) -> None:
        """Send data in MSS-sized segments, PSH on the last."""
        for i in range(0, len(data), MSS):
            last = i + MSS >= len(data)
            self.send(src, "PA" if last else "A", data[i : i + MSS], after=after if i == 0 else 0.00002)

    def close(self, at: float) -> None:
        self.t = max(self.t, T0 + us(at))
        self.send(self.cip, "FA")
        self.send(self.sip, "FA", after=0.0005)
        self.send(self.cip, "A", after=0.0002)


def udp(cap: Capture, client: tuple, server: tuple, at: float, req: bytes, resp: bytes, rtt: float) -> None:
    (cip, cport), (sip, sport) = client, server
    cap.add(T0 + us(at), cip, sip, UDP(sport=cport, dport=sport) / Raw(req), zone_of(sip))
    cap.add(T0 + us(at + rtt), sip, cip, UDP(sport=sport, dport=cport) / Raw(resp), zone_of(sip))


# --- Modbus/TCP (scapy.contrib.modbus) ---------------------------------------------------------------------------


def modbus(s: Tcp, tid: int, request, response, at: float, rtt: float = 0.004) -> None:
    s.call(bytes(ModbusADURequest(transId=tid, unitId=1) / request),
           bytes(ModbusADUResponse(transId=tid, unitId=1) / response), at, rtt)  # fmt: skip


def modbus_hmi(cap: Capture) -> None:
    s = Tcp(cap, (HMI, 49710), (MODBUS_PLC, 502), start=0.5)
    tid = 0x0100
    for k in range(12):  # a poll cycle every 5 s
        at = 1.0 + 5 * k
        registers = [412 + k, 380, 7150 - 3 * k, 55, 1, 0, 2210 + k, 0, 18, 3]  # levels, flows, pressures...
        modbus(s, tid, ModbusPDU03ReadHoldingRegistersRequest(startAddr=0, quantity=10),
               ModbusPDU03ReadHoldingRegistersResponse(registerVal=registers), at)  # fmt: skip
        modbus(s, tid + 1, ModbusPDU01ReadCoilsRequest(startAddr=0, quantity=16),
               ModbusPDU01ReadCoilsResponse(coilStatus=[0b00100101, 0b00000010]), at + 0.03)  # fmt: skip
        tid += 2
        if k == 3:  # the operator changes the chlorine dosing setpoint
            modbus(s, tid, ModbusPDU06WriteSingleRegisterRequest(registerAddr=10, registerValue=750),
                   ModbusPDU06WriteSingleRegisterResponse(registerAddr=10, registerValue=750), at + 1.2)  # fmt: skip
            tid += 1
        if k == 5:  # new PID tunings for the filter pump loop
            modbus(s, tid, ModbusPDU10WriteMultipleRegistersRequest(startAddr=20, outputsValue=[120, 35, 4, 900]),
                   ModbusPDU10WriteMultipleRegistersResponse(startAddr=20, quantityRegisters=4), at + 2.5)  # fmt: skip
            tid += 1
        if k == 7:  # a screen that reads past the register map: exception 2, illegal data address
            modbus(s, tid, ModbusPDU03ReadHoldingRegistersRequest(startAddr=0x0400, quantity=8),
                   ModbusPDU03ReadHoldingRegistersError(exceptCode=2), at + 0.6)  # fmt: skip
            tid += 1
    s.close(at=61.0)


def modbus_enterprise(cap: Capture) -> None:
    """The policy violation: a coil write straight from the enterprise zone."""
    s = Tcp(cap, (ENT_WS, 52311), (MODBUS_PLC, 502), start=30.0)
    modbus(s, 1, ModbusPDU05WriteSingleCoilRequest(outputAddr=3, outputValue=0xFF00),
           ModbusPDU05WriteSingleCoilResponse(outputAddr=3, outputValue=0xFF00), at=30.01, rtt=0.006)  # fmt: skip
    s.close(at=30.3)


def umas(s: Tcp, tid: int, session: int, code: int, data: bytes, reply: bytes, at: float) -> None:
    """Schneider UMAS: Modbus function 90, the session byte, the UMAS code; answered 0xFE (OK) and its data."""
    req, resp = bytes([90, session, code]) + data, bytes([90, session, 0xFE]) + reply
    mbap = struct.Struct("!HHHB")  # UMAS goes to unit 0
    s.call(mbap.pack(tid, 0, len(req) + 1, 0) + req, mbap.pack(tid, 0, len(resp) + 1, 0) + resp, at, rtt=0.008)


def umas_download(cap: Capture) -> None:
    """The engineering station (Control Expert) reserves the Modicon, stops it, downloads the application, starts it."""
    s = Tcp(cap, (ENG, 51024), (MODBUS_PLC, 502), start=52.0)
    owner = b"ENG-STATION-30"
    umas(s, 1, 0x00, 0x10, struct.pack("<H", 0) + bytes([len(owner)]) + owner, b"\x5c", at=52.01)  # reservation 0x5c
    app = det("modicon application", 180)
    steps = [
        (0x41, b"\xff\x00", b""),  # STOP_PLC
        (0x33, b"\x01\x00", b"\xfb\x03"),  # INITIALIZE_DOWNLOAD: the PLC accepts blocks of up to 1019 bytes
        (0x34, b"\x01\x01\x00" + struct.pack("<H", len(app)) + app, b""),  # DOWNLOAD_BLOCK 1
        (0x35, b"\x01\x01\x00", b""),  # END_STRATEGY_DOWNLOAD
        (0x40, b"\xff\x00", b""),  # START_PLC
        (0x11, b"", b""),  # RELEASE_PLC_RESERVATION
    ]  # fmt: skip
    for i, (code, data, reply) in enumerate(steps):
        umas(s, 2 + i, 0x5C, code, data, reply, at=52.2 + 0.3 * i)
    s.close(at=54.5)


# --- S7comm in COTP in TPKT (by hand) ----------------------------------------------------------------------------

S7_JOB, S7_ACK_DATA = 1, 3
OB1 = b"\x09_0800001P"  # length-prefixed file name: '_', block type 08 (OB), number 00001, 'P' passive filesystem


def tpkt(payload: bytes) -> bytes:
    return struct.pack("!BBH", 3, 0, 4 + len(payload)) + payload


def cotp_connect(confirm: bool, src_tsap: int, dst_tsap: int) -> bytes:
    """COTP connection request (0xE0) or confirm (0xD0): TPDU size 1024, calling and called TSAP."""
    refs = struct.pack("!HHB", 0x0001, 0x0044, 0) if confirm else struct.pack("!HHB", 0x0000, 0x0001, 0)
    params = struct.pack("!BBB BBH BBH", 0xC0, 1, 0x0A, 0xC1, 2, src_tsap, 0xC2, 2, dst_tsap)
    body = bytes([0xD0 if confirm else 0xE0]) + refs + params
    return tpkt(bytes([len(body)]) + body)


def s7(rosctr: int, ref: int, param: bytes, data: bytes = b"") -> bytes:
    """An S7comm PDU in a COTP DT TPDU (last data unit)."""
    header = struct.pack("!BBHHHH", 0x32, rosctr, 0, ref, len(param), len(data))
    if rosctr == S7_ACK_DATA:
        header += b"\x00\x00"  # error class, error code
    return tpkt(b"\x02\xf0\x80" + header + param + data)


def s7_connect(s: Tcp, at: float, tsaps: tuple[int, int], ref: int) -> None:
    s.call(cotp_connect(False, *tsaps), cotp_connect(True, *tsaps), at)
    s.call(s7(S7_JOB, ref, struct.pack("!BBHHH", 0xF0, 0, 1, 1, 480)),  # Setup Communication: PDU 480 asked,
           s7(S7_ACK_DATA, ref, struct.pack("!BBHHH", 0xF0, 0, 1, 1, 240)), at + 0.01)  # 240 granted  # fmt: skip


def s7_hmi(cap: Capture) -> None:
    s = Tcp(cap, (HMI, 49712), (S7_PLC, 102), start=2.0)
    s7_connect(s, 2.001, (0x0200, 0x0202), ref=0x0100)  # an OP (HMI) connection to rack 0, slot 2
    item = struct.pack("!BBBBHHB", 0x12, 0x0A, 0x10, 0x02, 16, 1, 0x84) + bytes(3)  # DB1.DBB0, 16 BYTEs
    for k in range(5):
        values = struct.pack("!4f", 3.42 + 0.01 * k, 118.5, 4.1, 0.62)  # level m, flow m3/h, pressure bar, Cl mg/l
        s.call(s7(S7_JOB, 0x0101 + k, b"\x04\x01" + item),
               s7(S7_ACK_DATA, 0x0101 + k, b"\x04\x01", b"\xff\x04" + struct.pack("!H", 16 * 8) + values),
               at=2.1 + 10 * k)  # fmt: skip
        if k == 2:  # the operator raises the backwash level setpoint: Write Var DB1.DBD16, one REAL
            setpoint = struct.pack("!BBBBHHB", 0x12, 0x0A, 0x10, 0x08, 1, 1, 0x84) + (16 * 8).to_bytes(3, "big")
            s.call(s7(S7_JOB, 0x0110, b"\x05\x01" + setpoint, b"\x00\x07\x00\x04" + struct.pack("!f", 3.6)),
                   s7(S7_ACK_DATA, 0x0110, b"\x05\x01", b"\xff"), at=22.6)  # fmt: skip
    s.close(at=45.0)


def s7_restart(cap: Capture) -> None:
    """The integrator, on the control switch, stops the S7 PLC and warm-restarts it (PLC Stop, PI "P_PROGRAM")."""
    s = Tcp(cap, (LAPTOP, 50110), (S7_PLC, 102), start=5.0)
    s7_connect(s, 5.001, (0x0100, 0x0102), ref=0x0300)  # a PG connection
    s.call(s7(S7_JOB, 0x0301, b"\x29" + bytes(5) + b"\x09P_PROGRAM"), s7(S7_ACK_DATA, 0x0301, b"\x29"), at=5.3)
    start = b"\x28" + bytes(6) + b"\xfd" + struct.pack("!H", 0) + b"\x09P_PROGRAM"  # no argument: warm restart
    s.call(s7(S7_JOB, 0x0302, start), s7(S7_ACK_DATA, 0x0302, b"\x28"), at=6.5, rtt=0.3)
    s.close(at=7.0)


def ob1_block() -> bytes:
    """An MC7 block image: the 36-byte block header ('pp', OB 1, lengths) and some code."""
    code = bytes.fromhex("700b0002fb7c4100000010 01c000000b700b00006500")
    header = b"pp" + bytes([1, 1, 1, 0x08]) + struct.pack("!HII", 1, 36 + len(code), 0) + det("ob1 timestamps", 12)
    return header + struct.pack("!HHHH", 0, 0, 20, len(code)) + code


def s7_download(cap: Capture) -> None:
    s = Tcp(cap, (ENG, 51020), (S7_PLC, 102), start=48.0)
    s7_connect(s, 48.001, (0x0100, 0x0102), ref=0x0200)  # a PG (programming device) connection
    block = ob1_block()
    lengths = b"\x0d1" + b"%06d%06d" % (len(block), len(block) - 36)  # load memory and MC7 code lengths
    s.call(s7(S7_JOB, 0x0201, b"\x1a\x00\x01\x00" + bytes(4) + OB1 + lengths),
           s7(S7_ACK_DATA, 0x0201, b"\x1a"), at=48.5, rtt=0.02)  # fmt: skip
    # the PLC pulls the block from the station, then reports the end of the download
    s.call(s7(S7_JOB, 0x0C01, b"\x1b\x00\x01\x00" + bytes(4) + OB1),
           s7(S7_ACK_DATA, 0x0C01, b"\x1b\x00", struct.pack("!HH", len(block), 0x00FB) + block),
           at=48.53, by_server=True)  # fmt: skip
    s.call(s7(S7_JOB, 0x0C02, b"\x1c\x00\x00\x00" + bytes(4) + OB1),
           s7(S7_ACK_DATA, 0x0C02, b"\x1c"), at=48.56, by_server=True)  # fmt: skip
    inse = b"\x28" + bytes(6) + b"\xfd" + struct.pack("!H", 10) + b"\x01\x00" + b"0800001P" + b"\x05_INSE"
    s.call(s7(S7_JOB, 0x0202, inse), s7(S7_ACK_DATA, 0x0202, b"\x28"), at=48.6, rtt=0.08)
    s.close(at=50.0)


# --- DNP3 over TCP (by hand, CRC-16/DNP) -------------------------------------------------------------------------


def crc_dnp(data: bytes) -> bytes:
    crc = 0
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA6BC if crc & 1 else crc >> 1
    return struct.pack("<H", ~crc & 0xFFFF)


def dnp3(from_master: bool, dst: int, src: int, tseq: int, apdu: bytes) -> bytes:
    """One link frame (unconfirmed user data) carrying a one-segment APDU; a CRC after every 16 bytes."""
    user = bytes([0xC0 | tseq & 0x3F]) + apdu  # transport header: FIR, FIN, sequence
    header = struct.pack("<2sBBHH", b"\x05\x64", 5 + len(user), 0xC4 if from_master else 0x44, dst, src)
    blocks = (user[i : i + 16] for i in range(0, len(user), 16))
    return header + crc_dnp(header) + b"".join(block + crc_dnp(block) for block in blocks)


CLASS_0123 = bytes.fromhex("3c0206 3c0306 3c0406 3c0106")  # g60v2, v3, v4, then v1: all objects


def dnp3_historian(cap: Capture) -> None:
    s = Tcp(cap, (HISTORIAN, 50210), (RTU, 20000), start=3.0)
    for k in range(2):  # integrity poll every 30 s
        binaries = b"\x01\x02\x00\x00\x03" + bytes([0x81, 0x01, 0x81, 0x01])  # g1v2 points 0-3
        analogs = b"\x1e\x02\x00\x00\x03" + b"".join(struct.pack("<Bh", 0x01, v) for v in (342 + k, 1185, 41, 62))
        outputs = b"\x0a\x02\x00\x00\x01" + bytes([0x01, 0x01])  # g10v2 points 0-1
        s.call(dnp3(True, 10, 1, k, bytes([0xC0 | k, 0x01]) + CLASS_0123),
               dnp3(False, 1, 10, k, bytes([0xC0 | k, 0x81, 0x00, 0x00]) + binaries + analogs + outputs),
               at=3.1 + 30 * k, rtt=0.012)  # fmt: skip
    s.close(at=64.0)


def dnp3_operate(cap: Capture) -> None:
    """The HMI starts pump P-101: Direct Operate, CROB (g12v1) on index 0, LATCH_ON."""
    s = Tcp(cap, (HMI, 49716), (RTU, 20000), start=40.0)
    crob = b"\x0c\x01\x28\x01\x00" + struct.pack("<HBBIIB", 0, 0x03, 1, 0, 0, 0)  # qualifier 0x28: index-prefixed
    s.call(dnp3(True, 10, 2, 0, b"\xc0\x05" + crob), dnp3(False, 2, 10, 0, b"\xc0\x81\x00\x00" + crob),
           at=40.01, rtt=0.015)  # fmt: skip
    s.close(at=40.5)


def dnp3_time(at: float) -> bytes:
    """A DNP3 time (g50v1, g70v3): milliseconds since 1970, 6 bytes little-endian."""
    return ((T0 + us(at)) // 1000).to_bytes(6, "little")


def g70(var: int, obj: bytes) -> bytes:
    """One DNP3 file object (group 70), size-prefixed (qualifier 0x5b)."""
    return struct.pack("<BBBBH", 70, var, 0x5B, 1, len(obj)) + obj


def dnp3_maintenance(cap: Capture) -> None:
    """The integrator's laptop (master 3) sets the RTU's clock, then writes and activates a configuration file."""
    s = Tcp(cap, (LAPTOP, 50112), (RTU, 20000), start=58.0)
    name, config, handle = b"rtu.cfg", det("rtu configuration", 96), 0x0101
    # file command: name offset and size, created, permissions rw-r--r--, auth key, size, mode 2 (write), block, request
    open_file = struct.pack("<HH6sHIIHHH", 26, len(name), dnp3_time(57.0), 0o644, 0, len(config), 2, 1024, 1) + name
    opened = g70(4, struct.pack("<IIHHB", handle, len(config), 1024, 1, 0))  # file command status: success
    closed = g70(4, struct.pack("<IIHHB", handle, 0, 0, 2, 0))
    last_block = struct.pack("<II", handle, 0x8000_0000)  # block 0, the last one
    requests = [  # (function, objects, response objects)
        (0x02, b"\x32\x01\x07\x01" + dnp3_time(58.1), b""),  # WRITE g50v1: time and date
        (0x19, g70(3, open_file), opened),  # OPEN_FILE for writing
        (0x02, g70(5, last_block + config), g70(6, last_block + b"\x00")),  # WRITE g70v5: file transport
        (0x1A, closed, closed),  # CLOSE_FILE
        (0x1F, g70(8, name), b""),  # ACTIVATE_CONFIG with the file specification string
    ]
    for seq, (fc, objects, reply) in enumerate(requests):
        request = dnp3(True, 10, 3, seq, bytes([0xC0 | seq, fc]) + objects)
        response = dnp3(False, 3, 10, seq, bytes([0xC0 | seq, 0x81, 0x00, 0x00]) + reply)
        s.call(request, response, at=58.1 + 0.4 * seq, rtt=0.02)
    s.close(at=60.5)


# --- EtherNet/IP (scapy.contrib.enipTCP) and CIP (by hand) -------------------------------------------------------


def enip(command: int, session: int, context: int, body=None) -> bytes:
    header = ENIPTCP(commandId=command, length=None, session=session, status=0, senderContext=context, options=0)
    return bytes(header / body if body is not None else header)


def rr_data(session: int, context: int, cip: bytes, timeout: int) -> bytes:
    # ItemData.data is an XLEStrLenField, which byte-reverses its value, so the CIP bytes follow as a payload
    items = [ItemData(typeId=0x0000, length=0), ItemData(typeId=0x00B2, length=len(cip)) / Raw(cip)]
    return enip(0x6F, session, context, ENIPSendRRData(interface=0, timeout=timeout, itemCount=2, items=items))


def cip(service: int, path: bytes, data: bytes = b"") -> bytes:
    """A CIP request: service, path size in words, path, request data."""
    return bytes([service, len(path) // 2]) + path + data


def cip_ok(service: int, data: bytes = b"") -> bytes:
    """A CIP reply with general status 0 (success), no additional status."""
    return bytes([service | 0x80, 0, 0, 0]) + data


def tag(name: bytes) -> bytes:
    return b"\x91" + bytes([len(name)]) + name + bytes(len(name) % 2)  # ANSI extended symbol segment, padded


READ_LEVEL = cip(0x4C, tag(b"Clearwell_Level"), struct.pack("<H", 1))  # Read Tag, 1 element


def level(k: int) -> bytes:
    return cip_ok(0x4C, struct.pack("<Hf", 0x00CA, 4.25 - 0.05 * k))  # a REAL


def enip_session(cap: Capture, client: tuple[str, int], start: float, handle: int, calls: list, end: float) -> None:
    """RegisterSession, each (at, CIP request, CIP reply) in an unconnected SendRRData, then UnRegisterSession."""
    s = Tcp(cap, client, (ENIP_PLC, 44818), start=start)
    s.call(enip(0x65, 0, 1, ENIPRegisterSession()), enip(0x65, handle, 1, ENIPRegisterSession()), at=start + 0.001)
    for context, (at, request, reply) in enumerate(calls, start=2):
        s.call(rr_data(handle, context, request, 10), rr_data(handle, context, reply, 0), at=at, rtt=0.003)
    s.call(enip(0x66, handle, len(calls) + 2), None, at=end)  # UnregisterSession has no reply
    s.close(at=end + 0.01)


def enip_hmi(cap: Capture) -> None:
    """The HMI reads the clearwell level twice and writes the backwash setpoint (Write Tag 0x4D, a REAL)."""
    write = cip(0x4D, tag(b"Backwash_Setpoint"), struct.pack("<HHf", 0x00CA, 1, 3.6))
    calls = [(12.15, READ_LEVEL, level(0)), (17.5, write, cip_ok(0x4D)), (22.15, READ_LEVEL, level(1))]
    enip_session(cap, (HMI, 49714), 12.0, 0x1A2B3C4D, calls, end=23.0)


def enip_config_download(cap: Capture) -> None:
    """The engineering station loads a configuration file into the Logix through the File object (class 0x37,
    Initiate Download, Download Transfer), then resets it (Identity object Reset) to apply it."""
    path, image, name = b"\x20\x37\x24\x01", det("logix configuration", 200), b"plant.cfg"
    stringi = b"\x01eng\xda" + struct.pack("<H", 4) + bytes([len(name)]) + name  # one SHORT_STRING, ISO 8859-1
    checksum = struct.pack("<H", -sum(image) & 0xFFFF)  # two's complement of the byte sum
    initiate = struct.pack("<IBB", len(image), 1, 0) + stringi  # file size, revision 1.0, file name
    calls = [
        (55.2, cip(0x4C, path, initiate), cip_ok(0x4C, struct.pack("<IHB", 0, 0, 240))),  # transfers of 240 bytes
        (55.5, cip(0x50, path, b"\x00\x04" + image + checksum), cip_ok(0x50, b"\x00")),  # transfer 0, first and last
        (56.5, cip(0x05, b"\x20\x01\x24\x01", b"\x00"), cip_ok(0x05)),  # Reset type 0: as a power cycle
    ]
    enip_session(cap, (ENG, 51026), 55.0, 0x2B3C4D5E, calls, end=56.6)


def list_identity(cap: Capture, client: tuple[str, int], at: float) -> None:
    item = ENIPListIdentityItem(
        itemTypeCode=0x0C, protocolVersion=1, sinFamily=2, sinPort=44818, sinAddress=ENIP_PLC, vendorId=1,
        deviceType=0x0E, productCode=105, revisionMajor=32, revisionMinor=11, status=0x0060, serialNumber=0x60A1B2C3,
        productNameLength=24, productName=b"1769-L33ER/A LOGIX5333ER", state=3,
    )  # fmt: skip
    item.itemLength = len(bytes(item)) - 4
    # ENIPListIdentity packs its item count big-endian, but ENIP is little-endian: count by hand
    reply = enip(0x63, 0, 500, Raw(struct.pack("<H", 1) + bytes(item)))  # context 500: max response delay, ms
    udp(cap, client, (ENIP_PLC, 44818), at, enip(0x63, 0, 500), reply, rtt=0.004)


def enip_list_identity(cap: Capture) -> None:
    list_identity(cap, (ENG, 51022), 24.0)  # asset discovery by the engineering station


def enip_skid(cap: Capture) -> None:
    """A host on a network nobody declared: the packaging-skid gateway finds the Logix and reads a tag."""
    list_identity(cap, (SKID, 50001), 35.0)
    enip_session(cap, (SKID, 50002), 35.1, 0x3C4D5E6F, [(35.3, READ_LEVEL, level(2))], end=35.5)


# --- contact traffic: DNS, TLS, NTP ------------------------------------------------------------------------------

HISTORIAN_NAME = "historian.demo-plant.example"


def tls_record(ctype: int, body: bytes, version: int = 0x0303) -> bytes:
    return struct.pack("!BHH", ctype, version, len(body)) + body


def tls_ext(kind: int, data: bytes) -> bytes:
    return struct.pack("!HH", kind, len(data)) + data


def tls_hello(server: bool) -> bytes:
    """A TLS 1.3 ClientHello (SNI, x25519 key share) or ServerHello, with fixed randoms and keys."""
    hello = b"\x03\x03" + det("server random" if server else "client random", 32) + b"\x20" + det("session id", 32)
    if server:
        hello += b"\x13\x01\x00"  # TLS_AES_128_GCM_SHA256, no compression
        exts = tls_ext(43, b"\x03\x04") + tls_ext(51, b"\x00\x1d\x00\x20" + det("server key", 32))
    else:
        suites = b"\x13\x01\x13\x02\x13\x03\xc0\x2b\xc0\x2f"
        hello += struct.pack("!H", len(suites)) + suites + b"\x01\x00"
        name = HISTORIAN_NAME.encode()
        exts = (
            tls_ext(0, struct.pack("!HBH", len(name) + 3, 0, len(name)) + name)  # server_name
            + tls_ext(10, b"\x00\x04\x00\x1d\x00\x17")  # supported_groups: x25519, secp256r1
            + tls_ext(13, b"\x00\x06\x04\x03\x08\x04\x04\x01")  # signature_algorithms
            + tls_ext(43, b"\x04\x03\x04\x03\x03")  # supported_versions: 1.3, 1.2
            + tls_ext(51, b"\x00\x24\x00\x1d\x00\x20" + det("client key", 32))  # key_share
        )
    hello += struct.pack("!H", len(exts)) + exts
    handshake = bytes([2 if server else 1]) + len(hello).to_bytes(3, "big") + hello
    return tls_record(22, handshake, 0x0303 if server else 0x0301)


def tls_data(label: str, n: int) -> bytes:
    return tls_record(23, det(label, n))


def https_it_pc(cap: Capture) -> None:
    question = DNSQR(qname=HISTORIAN_NAME, qtype="A")
    answer = DNSRR(rrname=HISTORIAN_NAME, type="A", ttl=300, rdata=HISTORIAN)
    udp(cap, (IT_PC, 55840), (DNS_SERVER, 53), 8.0, bytes(DNS(id=0x5D21, rd=1, qd=[question])),
        bytes(DNS(id=0x5D21, qr=1, rd=1, ra=1, qd=[question], an=[answer])), rtt=0.0011)  # fmt: skip
    s = Tcp(cap, (IT_PC, 55841), (HISTORIAN, 443), start=8.01)
    ccs = tls_record(20, b"\x01")
    s.call(tls_hello(False), tls_hello(True) + ccs + tls_data("server handshake", 1536) + tls_data("server fin", 53),
           at=8.011)  # fmt: skip
    s.call(ccs + tls_data("client fin", 53) + tls_data("GET /trends", 412), tls_data("trends", 1180), at=8.02, rtt=0.03)
    s.call(tls_data("GET /api/tags", 290), tls_data("tag list", 860), at=9.4, rtt=0.02)
    s.call(tls_data("close_notify", 19), None, at=10.5)
    s.close(at=10.51)


def ntp_ts(t: int) -> Decimal:
    """The NTP timestamp (seconds since 1900) of capture time t (µs), rounded up so it reads back as t."""
    sec, micros = divmod(t, 1_000_000)
    return Decimal(sec + 2_208_988_800) + Decimal(-(-micros * 2**32 // 1_000_000)) / 2**32


def ntp_hmi(cap: Capture) -> None:
    sent = T0 + us(0.2)
    with localcontext(prec=60):  # exact 32.32 fixed point in scapy's TimeStampField (None would mean "now")
        req = NTPHeader(version=4, mode=3, stratum=0, poll=10, precision=-23, ref=0, orig=0, recv=0, sent=ntp_ts(sent))
        resp = NTPHeader(
            version=4, mode=4, stratum=3, poll=10, precision=-20, delay=0.0123, dispersion=0.0456, id="10.0.0.123",
            ref=ntp_ts(T0 - us(512)), orig=ntp_ts(sent), recv=ntp_ts(sent + 400), sent=ntp_ts(sent + 450),
        )  # fmt: skip
        req, resp = bytes(req), bytes(resp)
    udp(cap, (HMI, 123), (NTP_SERVER, 123), 0.2, req, resp, rtt=0.0009)


SCENARIOS = (
    ntp_hmi, modbus_hmi, s7_hmi, dnp3_historian, https_it_pc, enip_hmi, enip_list_identity,
    modbus_enterprise, dnp3_operate, s7_download,
    s7_restart, enip_skid, umas_download, enip_config_download, dnp3_maintenance,
)  # fmt: skip


def main(argv: list[str]) -> int:
    out = Path(argv[0]) if argv else OUT
    cap = Capture()
    for scenario in SCENARIOS:
        scenario(cap)
    print(f"wrote {cap.write(out)} packets to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
