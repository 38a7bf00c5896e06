"""Generate captures/demo-plant.pcap: about a minute of traffic in a small demo water plant.

Run ``python captures/make_demo.py [OUT.pcap]``. The output is byte-identical on
every run: fixed MACs, addresses, ports, TCP ISNs, IP ids and timestamps (from
2026-01-05 08:00:00 UTC); nothing depends on the clock, the host or a RNG.

Zones (IEC 62443 style) and hosts:

    enterprise   10.0.0.0/16   engineering workstation .5.10, IT PC .8.20, DNS .0.53
    supervisory  10.20.1.0/24  HMI .10, historian .20, engineering station .30, firewall/NTP .1
    control      10.20.2.0/24  Modbus PLC .10, S7 PLC .20, DNP3 RTU .30, EtherNet/IP PLC .40

Each conversation is recorded as seen on the server's segment (one SPAN port per
zone switch): a frame that crossed the firewall carries the firewall's MAC on that
segment and a TTL one lower. Every TCP conversation is a complete session (SYN,
SYN-ACK, ACK, data with correct seq/ack, FIN teardown).

What it plants, and why:

- Conduit supervisory -> control, read-mostly: the HMI polls the Modbus PLC (fc 3,
  fc 1), writes a setpoint (fc 6) and PID tunings (fc 16), and once reads past the
  register map (exception 0x02, illegal data address). It reads DB1 from the S7 PLC
  (S7comm Read Var), a tag from the EtherNet/IP PLC (CIP Read Tag 0x4C in an
  unconnected SendRRData) and starts a pump on the RTU (DNP3 Direct Operate, g12v1).
- Historian -> RTU: DNP3 class 0123 integrity polls (fc 1, responses 129).
- Program change: the engineering station 10.20.1.30 downloads OB1 to the S7 PLC
  (Request Download 0x1A, Download Block 0x1B, Download Ended 0x1C) and activates
  it with PI service "_INSE" (0x28). As on a real S7-300/400 the PLC pulls the
  block: the 0x1B and 0x1C jobs travel PLC -> station, so a dissector must not
  assume that the TCP client sends every job. The station also sends an ENIP
  ListIdentity over UDP 44818 (asset discovery).
- Policy violation: the enterprise workstation 10.0.5.10 writes a coil (Modbus
  fc 5) on the control-zone PLC directly, skipping the supervisory zone.
- Contact noise: the IT PC resolves the historian over DNS and opens HTTPS to it
  (TLS 1.3 hellos, then opaque records); the HMI syncs time from the firewall (NTP).
"""

from __future__ import annotations

import hashlib
import struct
import sys
from datetime import datetime, timezone
from decimal import Decimal, localcontext
from ipaddress import ip_address, ip_network
from pathlib import Path

from scapy.contrib.enipTCP import ENIPTCP, ENIPListIdentityItem, ENIPRegisterSession, ENIPSendRRData, ItemData
from scapy.contrib.modbus import (
    ModbusADURequest, ModbusADUResponse,
    ModbusPDU01ReadCoilsRequest, ModbusPDU01ReadCoilsResponse,
    ModbusPDU03ReadHoldingRegistersError, ModbusPDU03ReadHoldingRegistersRequest,
    ModbusPDU03ReadHoldingRegistersResponse,
    ModbusPDU05WriteSingleCoilRequest, ModbusPDU05WriteSingleCoilResponse,
    ModbusPDU06WriteSingleRegisterRequest, ModbusPDU06WriteSingleRegisterResponse,
    ModbusPDU10WriteMultipleRegistersRequest, ModbusPDU10WriteMultipleRegistersResponse,
)  # fmt: skip
from scapy.layers.dns import DNS, DNSQR, DNSRR
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether
from scapy.layers.ntp import NTPHeader
from scapy.packet import Raw
from scapy.utils import wrpcap

OUT = Path(__file__).with_name("demo-plant.pcap")
T0 = int(datetime(2026, 1, 5, 8, 0, 0, tzinfo=timezone.utc).timestamp()) * 1_000_000  # µs since the epoch

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
}
MSS = 1460
ENT_WS, IT_PC, DNS_SERVER = "10.0.5.10", "10.0.8.20", "10.0.0.53"
NTP_SERVER, HMI, HISTORIAN, ENG = "10.20.1.1", "10.20.1.10", "10.20.1.20", "10.20.1.30"
MODBUS_PLC, S7_PLC, RTU, ENIP_PLC = "10.20.2.10", "10.20.2.20", "10.20.2.30", "10.20.2.40"


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
    s.close(at=45.0)


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


CLASS_0123 = bytes.fromhex("3c0206" "3c0306" "3c0406" "3c0106")  # g60v2, v3, v4, then v1: all objects


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


# --- EtherNet/IP (scapy.contrib.enipTCP) and CIP (by hand) -------------------------------------------------------


def enip(command: int, session: int, context: int, body=None) -> bytes:
    header = ENIPTCP(commandId=command, length=None, session=session, status=0, senderContext=context, options=0)
    return bytes(header / body if body is not None else header)


def rr_data(session: int, context: int, cip: bytes, timeout: int) -> bytes:
    # ItemData.data is an XLEStrLenField, which byte-reverses its value, so the CIP bytes follow as a payload
    items = [ItemData(typeId=0x0000, length=0), ItemData(typeId=0x00B2, length=len(cip)) / Raw(cip)]
    return enip(0x6F, session, context, ENIPSendRRData(interface=0, timeout=timeout, itemCount=2, items=items))


def enip_hmi(cap: Capture) -> None:
    s = Tcp(cap, (HMI, 49714), (ENIP_PLC, 44818), start=12.0)
    handle = 0x1A2B3C4D
    s.call(enip(0x65, 0, 1, ENIPRegisterSession()), enip(0x65, handle, 1, ENIPRegisterSession()), at=12.001)
    tag = b"Clearwell_Level"
    path = b"\x91" + bytes([len(tag)]) + tag + bytes(len(tag) % 2)  # ANSI extended symbol segment, padded
    read_tag = bytes([0x4C, len(path) // 2]) + path + struct.pack("<H", 1)  # Read Tag, 1 element
    for k in range(2):
        reply = bytes([0xCC, 0, 0, 0]) + struct.pack("<Hf", 0x00CA, 4.25 - 0.05 * k)  # success, REAL
        s.call(rr_data(handle, 2 + k, read_tag, 10), rr_data(handle, 2 + k, reply, 0), at=12.15 + 10 * k, rtt=0.003)
    s.call(enip(0x66, handle, 4), None, at=23.0)  # UnregisterSession has no reply
    s.close(at=23.01)


def enip_list_identity(cap: Capture) -> None:
    item = ENIPListIdentityItem(
        itemTypeCode=0x0C, protocolVersion=1, sinFamily=2, sinPort=44818, sinAddress=ENIP_PLC, vendorId=1,
        deviceType=0x0E, productCode=105, revisionMajor=32, revisionMinor=11, status=0x0060, serialNumber=0x60A1B2C3,
        productNameLength=24, productName=b"1769-L33ER/A LOGIX5333ER", state=3,
    )  # fmt: skip
    item.itemLength = len(bytes(item)) - 4
    # ENIPListIdentity packs its item count big-endian, but ENIP is little-endian: count by hand
    reply = enip(0x63, 0, 500, Raw(struct.pack("<H", 1) + bytes(item)))  # context 500: max response delay, ms
    udp(cap, (ENG, 51022), (ENIP_PLC, 44818), 24.0, enip(0x63, 0, 500), reply, rtt=0.004)


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
