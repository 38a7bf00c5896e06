"""Generate the benchmark capture: N packets of mixed ICS traffic on a plant network.

    python captures/make_bench.py [--packets N] [OUT.pcap]     # default 1,000,000 packets, captures/bench-1m.pcap

The output is byte-identical for the same arguments: every choice comes from one
random.Random with a fixed seed, timestamps from a fixed start (2026-02-02 06:00:00
UTC), nothing from the clock or the host. A run of N packets is the first part of a
longer run, up to the teardown at its end.

Speed: frames are not built with scapy. Each protocol's PDUs are byte templates made
once (struct) and patched per packet (transaction ids, PDU references, sequence
numbers, sender contexts); L2-L4 headers are packed per packet from per-direction
constants. The IPv4 checksum is computed (incrementally, from a per-direction sum);
TCP checksums are left 0 and UDP checksums are 0 ("none"), which tshark and sorf do
not check by default. DNP3 link frames carry correct CRC-16/DNP (table-driven,
cached per 16-byte block).

What is on the wire (pcap, microseconds, little-endian, Ethernet):

- 200 clients (HMIs, SCADA servers, historians; 10.10.1.10-209) and 100 PLCs
  (Modbus 10.20.1.x, S7 10.20.2.x, DNP3 outstations 10.20.3.x, EtherNet/IP 10.20.4.x).
  A PLC whose index is 1 mod 3 is on a VLAN (802.1Q tag 101-104, by protocol): all of
  its traffic is tagged, in both directions.
- TCP sessions, each a full conversation: SYN, SYN-ACK, ACK (MSS, SACK-permitted,
  window scale; with TCP timestamps when the client's index is 0 mod 4, and then on
  every segment of both sides), protocol set-up, request/response polling, FIN
  teardown. A session polls a random number of times (40-1,500) and ends; a new one,
  from another ephemeral port and usually another client, takes its place, so the set
  of live flows stays about the same size however long the capture is.
    Modbus/TCP (502)   fc 3 read holding registers, fc 1 read coils, fc 16 write multiple
                       registers now and then, a rare exception reply (0x83, code 2)
    S7comm (102)       COTP CR/CC, Setup Communication, Read Var (1-3 items), Write Var
    DNP3 (20000)       READ class 0 integrity polls (g60v1) and class 1/2/3 event polls,
                       responses with g1v2, g30v2 and g10v2 objects or null responses
    EtherNet/IP (44818) RegisterSession, SendRRData with CIP Read Tag (0x4C) and now and
                       then Write Tag (0x4D), UnRegisterSession before the FIN
- Implicit CIP I/O on UDP 2222 (both sides on 2222): CPF item count 2, Sequenced
  Address item (connection id, sequence number) and Connected Data item (CIP sequence
  count, run/idle header O->T, data). A connection runs for a while, then a new
  connection id replaces it.
- About 10% noise: DNS queries and answers (UDP 53, a new client port each), NTP
  client/server (UDP 123), HTTPS-looking TCP 443 sessions (TLS 1.3 hellos, then
  application-data records, some longer than one segment).
- Quirks, on a share of transactions: two or three PDUs pipelined in one segment (and
  their answers in one segment), a PDU split across two segments, a retransmitted
  segment (a request resent before its answer, or an answer resent after it, with
  the client's duplicate ACK), delayed pure ACKs, frames under 60 bytes padded.

Timestamps increase monotonically, 0.1 to 2.2 ms apart.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import struct
import sys
from datetime import UTC, datetime
from pathlib import Path

SEED = 62443
T0 = int(datetime(2026, 2, 2, 6, 0, 0, tzinfo=UTC).timestamp()) * 1_000_000  # µs
MSS = 1460
BATCH = 1 << 14  # records per write

N_CLIENTS, N_PER_KIND = 200, 25  # 200 clients; 4 kinds x 25 = 100 PLCs
KINDS = ("modbus", "s7comm", "dnp3", "enip")
SLOTS = {"modbus": 140, "s7comm": 70, "dnp3": 50, "enip": 60, "io": 30, "https": 15}  # concurrent sessions
P_DNS, P_NTP = 0.04, 0.012  # per step, instead of a session step: one DNS / NTP exchange
P_PIPELINE, P_SPLIT, P_RETX, P_ACK = 0.03, 0.03, 0.01, 0.3  # per transaction
# A split PDU's first segment holds at least its fixed header: tshark 4.0's Modbus/TCP dissector
# gives up on a segment under 8 bytes (it never asks TCP for more), and DNP3's link header is 10.
SPLIT_MIN = 10

ETH_IP, ETH_VLAN = 0x0800, 0x8100
TCP_PROTO, UDP_PROTO = 6, 17
FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10

_IPTCP = struct.Struct("!BBHHHBBH4s4sHHIIBBHHH")
_IPUDP = struct.Struct("!BBHHHBBH4s4sHHHH")
_TSOPT = struct.Struct("!BBBBII")
_REC = struct.Struct("<IIII")
_H = struct.Struct("!H")
_LE_I = struct.Struct("<I")


def det(label: str, n: int) -> bytes:
    """n fixed pseudo-random bytes named by label."""
    out = b""
    while len(out) < n:
        out += hashlib.sha256(f"{label}/{len(out)}".encode()).digest()
    return out[:n]


# --- the writer: record headers, the clock --------------------------------------------------------------------


class Writer:
    """Appends frames to the pcap with a monotonically increasing clock; counts them."""

    def __init__(self, out, rng: random.Random) -> None:
        self.out = out
        self.rng = rng
        self.t = T0
        self.count = 0
        self.buf: list[bytes] = []
        out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))  # pcap, µs, Ethernet

    def emit(self, frame: bytes) -> None:
        self.t += 100 + (self.rng.getrandbits(11))  # 0.1-2.2 ms after the previous frame
        n = len(frame)
        if n < 60:
            frame += bytes(60 - n)  # Ethernet padding, as a capture from a switch shows it
            n = 60
        self.buf.append(_REC.pack(self.t // 1_000_000, self.t % 1_000_000, n, n))
        self.buf.append(frame)
        self.count += 1
        if len(self.buf) >= 2 * BATCH:
            self.flush()

    def flush(self) -> None:
        self.out.write(b"".join(self.buf))
        self.buf.clear()


# --- hosts and directions --------------------------------------------------------------------------------------


class Host:
    __slots__ = ("ip", "ip_id", "ipb", "mac", "next_port", "ts_offset", "ttl", "window")

    def __init__(self, ip: str, mac: bytes, ttl: int, window: int) -> None:
        self.ip = ip
        self.ipb = bytes(int(x) for x in ip.split("."))
        self.mac = mac
        self.ttl = ttl
        self.window = window
        h = det("host " + ip, 8)
        self.ip_id = int.from_bytes(h[:2], "big")
        self.next_port = 49152 + int.from_bytes(h[2:4], "big") % 12000
        self.ts_offset = int.from_bytes(h[4:8], "big")

    def ephemeral(self) -> int:
        port = self.next_port
        self.next_port = 49152 if port >= 65535 else port + 1
        return port


def _ones(b: bytes) -> int:
    return sum(struct.unpack(f"!{len(b) // 2}H", b))


class Direction:
    """One direction of a conversation: everything in its L2-L4 headers that does not change."""

    __slots__ = ("csum", "dport", "ipdst", "ipsrc", "l2", "seq", "sport", "src", "ts_peer", "ttl", "window")

    def __init__(self, src: Host, dst: Host, sport: int, dport: int, vlan: int, proto: int) -> None:
        self.src = src
        tag = struct.pack("!HH", ETH_VLAN, vlan) if vlan else b""
        self.l2 = dst.mac + src.mac + tag + _H.pack(ETH_IP)
        self.ipsrc, self.ipdst = src.ipb, dst.ipb
        self.sport, self.dport = sport, dport
        self.ttl = src.ttl
        self.window = src.window
        flags_frag = 0x4000 if proto == TCP_PROTO else 0  # DF on TCP
        # the IPv4 checksum's constant part: version/IHL/TOS, flags/fragment, TTL/protocol, addresses
        self.csum = 0x4500 + flags_frag + (src.ttl << 8 | proto) + _ones(src.ipb) + _ones(dst.ipb)
        self.seq = 0
        self.ts_peer = 0

    def ip_id_and_csum(self, total: int) -> tuple[int, int]:
        host = self.src
        ip_id = host.ip_id
        host.ip_id = (ip_id + 1) & 0xFFFF
        s = self.csum + total + ip_id
        s = (s & 0xFFFF) + (s >> 16)
        s = (s & 0xFFFF) + (s >> 16)
        return ip_id, ~s & 0xFFFF


# --- TCP conversations -----------------------------------------------------------------------------------------


class TcpConn:
    """A TCP connection between a client and a server; side 0 is the client, 1 the server."""

    __slots__ = ("closed", "d", "ts", "w")

    def __init__(self, w: Writer, rng: random.Random, client: Host, server: Host, sport: int, vlan: int,
                 ts: bool) -> None:  # fmt: skip
        cport = client.ephemeral()
        self.w = w
        self.d = (Direction(client, server, cport, sport, vlan, TCP_PROTO),
                  Direction(server, client, sport, cport, vlan, TCP_PROTO))  # fmt: skip
        self.d[0].seq = rng.getrandbits(32)
        self.d[1].seq = rng.getrandbits(32)
        self.ts = ts
        self.closed = False

    def send(self, side: int, flags: int, payload: bytes = b"", opts: bytes | None = None, seq: int | None = None,
             advance: bool = True) -> None:  # fmt: skip
        d, peer = self.d[side], self.d[1 - side]
        if opts is None:
            if self.ts:
                tsval = ((self.w.t // 1000) + d.src.ts_offset) & 0xFFFFFFFF
                opts = _TSOPT.pack(1, 1, 8, 10, tsval, d.ts_peer)  # echoes the peer's latest TSval
                peer.ts_peer = tsval
            else:
                opts = b""
        olen = len(opts)
        total = 40 + olen + len(payload)
        ip_id, csum = d.ip_id_and_csum(total)
        s = d.seq if seq is None else seq
        frame = d.l2 + _IPTCP.pack(
            0x45, 0, total, ip_id, 0x4000, d.ttl, TCP_PROTO, csum, d.ipsrc, d.ipdst,
            d.sport, d.dport, s, peer.seq if flags & ACK else 0, (20 + olen) << 2, flags, d.window, 0, 0,
        ) + opts + payload  # fmt: skip
        self.w.emit(frame)
        if advance and seq is None:
            d.seq = (d.seq + len(payload) + (1 if flags & (SYN | FIN) else 0)) & 0xFFFFFFFF

    def handshake(self) -> None:
        if self.ts:
            syn = b"\x02\x04\x05\xb4\x04\x02\x08\x0a" + _LE_I.pack(0) + bytes(4) + b"\x01\x03\x03\x07"
            # MSS, SACK permitted, timestamps (filled below), NOP, window scale 7
            tsval = ((self.w.t // 1000) + self.d[0].src.ts_offset) & 0xFFFFFFFF
            syn = syn[:8] + struct.pack("!II", tsval, 0) + syn[16:]
            self.d[1].ts_peer = tsval
            self.send(0, SYN, opts=syn)
            tsval2 = ((self.w.t // 1000) + self.d[1].src.ts_offset) & 0xFFFFFFFF
            synack = b"\x02\x04\x05\xb4\x04\x02\x08\x0a" + struct.pack("!II", tsval2, tsval) + b"\x01\x03\x03\x02"
            self.d[0].ts_peer = tsval2
            self.send(1, SYN | ACK, opts=synack)
            for d, shift in zip(self.d, (7, 2), strict=True):  # window scaling is on: later windows are scaled
                d.window >>= shift
        else:
            # MSS, NOP, window scale, NOP, NOP, SACK permitted
            self.send(0, SYN, opts=b"\x02\x04\x05\xb4\x01\x03\x03\x07\x01\x01\x04\x02")
            self.send(1, SYN | ACK, opts=b"\x02\x04\x05\xb4")  # a PLC answers with its MSS only
        self.send(0, ACK)

    def data(self, side: int, payload: bytes) -> None:
        """Payload in MSS-sized segments, PSH on the last."""
        n = len(payload)
        if n <= MSS:
            self.send(side, PSH | ACK, payload)
            return
        for i in range(0, n, MSS):
            self.send(side, PSH | ACK if i + MSS >= n else ACK, payload[i : i + MSS])

    def split(self, side: int, payload: bytes, at: int) -> None:
        """One PDU across two segments."""
        self.send(side, ACK, payload[:at])
        self.send(side, PSH | ACK, payload[at:])

    def retransmit_data(self, side: int, payload: bytes) -> None:
        """Send, then resend the same segment (same sequence number, a new IP id)."""
        seq = self.d[side].seq
        self.send(side, PSH | ACK, payload)
        self.send(side, PSH | ACK, payload, seq=seq)

    def close(self) -> None:
        self.send(0, FIN | ACK)
        self.send(1, FIN | ACK)
        self.send(0, ACK)
        self.closed = True


class UdpPair:
    """Both directions of a UDP conversation."""

    __slots__ = ("d", "w")

    def __init__(self, w: Writer, a: Host, b: Host, aport: int, bport: int, vlan: int = 0) -> None:
        self.w = w
        self.d = (Direction(a, b, aport, bport, vlan, UDP_PROTO), Direction(b, a, bport, aport, vlan, UDP_PROTO))

    def send(self, side: int, payload: bytes) -> None:
        d = self.d[side]
        total = 28 + len(payload)
        ip_id, csum = d.ip_id_and_csum(total)
        self.w.emit(d.l2 + _IPUDP.pack(0x45, 0, total, ip_id, 0, d.ttl, UDP_PROTO, csum, d.ipsrc, d.ipdst,
                                       d.sport, d.dport, total - 20, 0) + payload)  # fmt: skip


# --- protocol PDUs ---------------------------------------------------------------------------------------------

# Modbus/TCP: (request, response) templates with transaction id 0; the unit id is patched too.


def _mbap(pdu: bytes, unit: int = 1) -> bytes:
    return struct.pack("!HHHB", 0, 0, len(pdu) + 1, unit) + pdu


def _regs(n: int, label: str) -> bytes:
    return det(label, 2 * n)


MODBUS_POLLS = [  # (request, response)
    (_mbap(struct.pack("!BHH", 3, 0, 10)), _mbap(bytes([3, 20]) + _regs(10, "hr0"))),
    (_mbap(struct.pack("!BHH", 3, 100, 32)), _mbap(bytes([3, 64]) + _regs(32, "hr100"))),
    (_mbap(struct.pack("!BHH", 3, 400, 125)), _mbap(bytes([3, 250]) + _regs(125, "hr400"))),  # the largest read
    (_mbap(struct.pack("!BHH", 1, 0, 16)), _mbap(bytes([1, 2, 0x25, 0x02]))),
    (_mbap(struct.pack("!BHH", 1, 64, 40)), _mbap(bytes([1, 5]) + det("coils64", 5))),
]  # fmt: skip
MODBUS_WRITE = (
    _mbap(struct.pack("!BHHB", 16, 20, 4, 8) + struct.pack("!4H", 120, 35, 4, 900)),
    _mbap(struct.pack("!BHH", 16, 20, 4)),
)
MODBUS_EXCEPTION = (_mbap(struct.pack("!BHH", 3, 0x0400, 8)), _mbap(bytes([0x83, 0x02])))


def modbus_pdu(template: bytes, tid: int, unit: int) -> bytes:
    return _H.pack(tid) + template[2:6] + bytes([unit]) + template[7:]


# S7comm in COTP DT in TPKT; the PDU reference is at byte 11.


def tpkt(payload: bytes) -> bytes:
    return struct.pack("!BBH", 3, 0, 4 + len(payload)) + payload


def cotp_connect(confirm: bool, src_tsap: int, dst_tsap: int) -> bytes:
    refs = struct.pack("!HHB", 0x0001, 0x0044, 0) if confirm else struct.pack("!HHB", 0x0000, 0x0001, 0)
    params = struct.pack("!BBB BBH BBH", 0xC0, 1, 0x0A, 0xC1, 2, src_tsap, 0xC2, 2, dst_tsap)
    body = bytes([0xD0 if confirm else 0xE0]) + refs + params
    return tpkt(bytes([len(body)]) + body)


def s7(rosctr: int, param: bytes, data: bytes = b"") -> bytes:
    header = struct.pack("!BBHHHH", 0x32, rosctr, 0, 0, len(param), len(data))
    if rosctr == 3:
        header += b"\x00\x00"
    return tpkt(b"\x02\xf0\x80" + header + param + data)


def s7_ref(template: bytes, ref: int) -> bytes:
    return template[:11] + _H.pack(ref) + template[13:]


def _s7_item(db: int, start: int, n: int) -> bytes:
    return struct.pack("!BBBBHHB", 0x12, 0x0A, 0x10, 0x02, n, db, 0x84) + (start * 8).to_bytes(3, "big")


def _s7_read(items: list[tuple[int, int, int]]) -> tuple[bytes, bytes]:
    param = bytes([4, len(items)]) + b"".join(_s7_item(*it) for it in items)
    data = b""
    for i, (db, start, n) in enumerate(items):
        data += b"\xff\x04" + _H.pack(n * 8) + det(f"db{db}.{start}", n)
        if n % 2 and i < len(items) - 1:
            data += b"\x00"  # fill byte between items
    return s7(1, param), s7(3, bytes([4, len(items)]), data)


S7_SETUP = (  # Setup Communication: 3 jobs may be outstanding (the pipelining below), PDU 480 asked, 240 granted
    s7(1, struct.pack("!BBHHH", 0xF0, 0, 3, 3, 480)),
    s7(3, struct.pack("!BBHHH", 0xF0, 0, 3, 3, 240)),
)
S7_READS = [
    _s7_read([(1, 0, 16)]),
    _s7_read([(1, 0, 32), (2, 0, 8)]),
    _s7_read([(10, 100, 64), (11, 0, 4), (12, 20, 20)]),
    _s7_read([(5, 0, 200)]),
]
S7_WRITE = (
    s7(1, bytes([5, 1]) + _s7_item(1, 16, 4), b"\x00\x04" + _H.pack(32) + struct.pack("!f", 3.6)),
    s7(3, bytes([5, 1]), b"\xff"),
)


# DNP3 over TCP: link frames with CRC-16/DNP after the header and after every 16 bytes of user data.


def _crc_table() -> list[int]:
    table = []
    for i in range(256):
        crc = i
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA6BC if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC_TABLE = _crc_table()
_CRC_CACHE: dict[bytes, bytes] = {}


def crc_dnp(block: bytes) -> bytes:
    crc = _CRC_CACHE.get(block)
    if crc is None:
        c = 0
        table = _CRC_TABLE
        for b in block:
            c = (c >> 8) ^ table[(c ^ b) & 0xFF]
        crc = _CRC_CACHE[block] = struct.pack("<H", ~c & 0xFFFF)
    return crc


def dnp3_frame(from_master: bool, dst: int, src: int, tseq: int, apdu: bytes) -> bytes:
    user = bytes([0xC0 | tseq & 0x3F]) + apdu  # transport: FIR, FIN, sequence
    header = struct.pack("<2sBBHH", b"\x05\x64", 5 + len(user), 0xC4 if from_master else 0x44, dst, src)
    out = [header, crc_dnp(header)]
    for i in range(0, len(user), 16):
        block = user[i : i + 16]
        out.append(block)
        out.append(crc_dnp(block))
    return b"".join(out)


DNP3_CLASS0 = b"\x3c\x01\x06"  # g60v1: class 0 (integrity poll)
DNP3_CLASS123 = b"\x3c\x02\x06\x3c\x03\x06\x3c\x04\x06"  # g60v2-4: event poll
DNP3_STATIC = (
    b"\x01\x02\x00\x00\x07" + bytes([0x81, 0x01, 0x81, 0x01, 0x01, 0x01, 0x81, 0x01])  # g1v2 points 0-7
    + b"\x1e\x02\x00\x00\x05" + b"".join(struct.pack("<Bh", 0x01, v) for v in (342, 1185, 41, 62, -7, 900))  # g30v2 0-5
    + b"\x0a\x02\x00\x00\x01" + bytes([0x01, 0x01])  # g10v2 points 0-1
)  # fmt: skip


# EtherNet/IP encapsulation (little-endian); session handle at bytes 4-7, sender context at 12-19.

_ENIP = struct.Struct("<HHII8sI")


def enip(command: int, body: bytes, session: int = 0, context: bytes = bytes(8)) -> bytes:
    return _ENIP.pack(command, len(body), session, 0, context, 0) + body


def enip_patch(template: bytes, session: int, context: int) -> bytes:
    return template[:4] + _LE_I.pack(session) + template[8:12] + struct.pack("<Q", context) + template[20:]


def rr_data(cip: bytes, timeout: int) -> bytes:
    items = struct.pack("<HHHH", 2, 0x0000, 0, 0x00B2) + struct.pack("<H", len(cip)) + cip
    return enip(0x6F, struct.pack("<IH", 0, timeout) + items)


def _tag(name: bytes) -> bytes:
    return b"\x91" + bytes([len(name)]) + name + bytes(len(name) % 2)


def _cip(service: int, path: bytes, data: bytes = b"") -> bytes:
    return bytes([service, len(path) // 2]) + path + data


ENIP_REGISTER = (enip(0x65, struct.pack("<HH", 1, 0)), enip(0x65, struct.pack("<HH", 1, 0)))
ENIP_UNREGISTER = enip(0x66, b"")
ENIP_READS = [  # Read Tag of one element, the reply with its type and value
    (rr_data(_cip(0x4C, _tag(name), b"\x01\x00"), 10), rr_data(bytes([0xCC, 0, 0, 0]) + reply, 0))
    for name, reply in (
        (b"Clearwell_Level", struct.pack("<Hf", 0x00CA, 4.25)),
        (b"Pump_101_Running", struct.pack("<HB", 0x00C1, 1)),
        (b"Filter_DP", struct.pack("<Hf", 0x00CA, 0.62)),
        (b"Batch_Count", struct.pack("<Hi", 0x00C4, 48211)),
        (b"Program:Main.Valve_Pos", struct.pack("<Hf", 0x00CA, 37.5)),
    )
]  # fmt: skip
ENIP_WRITE = (
    rr_data(_cip(0x4D, _tag(b"Backwash_Setpoint"), struct.pack("<HHf", 0x00CA, 1, 3.6)), 10),
    rr_data(bytes([0xCD, 0, 0, 0]), 0),
)


# Implicit I/O: CPF in a UDP datagram, no encapsulation header.

_IO = struct.Struct("<HHHIIHHH")  # count, 0x8002, 8, conn id, seq, 0x00B1, length, CIP sequence count


def io_datagram(conn_id: int, seq: int, data: bytes) -> bytes:
    return _IO.pack(2, 0x8002, 8, conn_id, seq, 0x00B1, 2 + len(data), seq & 0xFFFF) + data


# Noise: DNS, NTP, TLS.

DNS_NAMES = [b"historian.plant.example", b"hmi-01.plant.example", b"time.plant.example",
             b"wsus.corp.example", b"update.vendor.example", b"ad01.corp.example",
             b"scada-db.plant.example", b"mail.corp.example"]  # fmt: skip


def dns_pair(qid: int, name: bytes, addr: bytes) -> tuple[bytes, bytes]:
    qname = b"".join(bytes([len(p)]) + p for p in name.split(b".")) + b"\x00"
    question = qname + struct.pack("!HH", 1, 1)
    query = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + question
    answer = struct.pack("!HHHHHH", qid, 0x8180, 1, 1, 0, 0) + question + struct.pack("!HHHIH", 0xC00C, 1, 1, 300, 4)
    return query, answer + addr


def ntp_pair(t: int) -> tuple[bytes, bytes]:
    sec = t // 1_000_000 + 2_208_988_800
    frac = (t % 1_000_000) * 2**32 // 1_000_000
    now = struct.pack("!II", sec & 0xFFFFFFFF, frac)
    req = struct.pack("!BBbb", 0x23, 0, 10, -23) + bytes(36) + now  # v4, client; transmit timestamp
    ref = struct.pack("!II", (sec - 512) & 0xFFFFFFFF, 0)
    resp = (struct.pack("!BBbbII4s", 0x24, 3, 10, -20, 0x0000032A, 0x00000BB0, bytes([10, 0, 0, 1]))
            + ref + now + now + now)  # fmt: skip
    return req, resp


def tls_record(ctype: int, body: bytes, version: int = 0x0303) -> bytes:
    return struct.pack("!BHH", ctype, version, len(body)) + body


def _ext(kind: int, data: bytes) -> bytes:
    return struct.pack("!HH", kind, len(data)) + data


def tls_hello(server: bool, name: bytes = b"historian.plant.example") -> bytes:
    hello = b"\x03\x03" + det("random" + str(server), 32) + b"\x20" + det("session id", 32)
    if server:
        hello += b"\x13\x01\x00"
        exts = _ext(43, b"\x03\x04") + _ext(51, b"\x00\x1d\x00\x20" + det("server key", 32))
    else:
        suites = b"\x13\x01\x13\x02\x13\x03\xc0\x2b\xc0\x2f"
        hello += struct.pack("!H", len(suites)) + suites + b"\x01\x00"
        exts = (
            _ext(0, struct.pack("!HBH", len(name) + 3, 0, len(name)) + name)
            + _ext(10, b"\x00\x04\x00\x1d\x00\x17")
            + _ext(13, b"\x00\x06\x04\x03\x08\x04\x04\x01")
            + _ext(43, b"\x04\x03\x04\x03\x03")
            + _ext(51, b"\x00\x24\x00\x1d\x00\x20" + det("client key", 32))
        )
    hello += struct.pack("!H", len(exts)) + exts
    handshake = bytes([2 if server else 1]) + len(hello).to_bytes(3, "big") + hello
    return tls_record(22, handshake, 0x0303 if server else 0x0301)


OPAQUE = det("tls application data", 8192)
TLS_CLIENT_HELLO = tls_hello(False)
TLS_SERVER_FLIGHT = (  # ServerHello, ChangeCipherSpec, encrypted handshake (two segments), Finished
    tls_hello(True) + tls_record(20, b"\x01") + tls_record(23, OPAQUE[:2200]) + tls_record(23, OPAQUE[2200:2253])
)
TLS_CLIENT_FIN = tls_record(20, b"\x01") + tls_record(23, OPAQUE[3000:3053])


def tls_app(offset: int, n: int) -> bytes:
    offset %= len(OPAQUE) - n
    return tls_record(23, OPAQUE[offset : offset + n])


# --- sessions --------------------------------------------------------------------------------------------------


class Plant:
    """Hosts and shared state."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.clients = [Host(f"10.10.1.{10 + i}", bytes.fromhex("0050561a") + i.to_bytes(2, "big"), 128, 64240)
                        for i in range(N_CLIENTS)]  # fmt: skip
        ouis = {"modbus": "0080f4", "s7comm": "001b1b", "dnp3": "0030a7", "enip": "0000bc"}
        ttls = {"modbus": 64, "s7comm": 30, "dnp3": 64, "enip": 64}
        self.plcs = {
            kind: [Host(f"10.20.{k + 1}.{10 + j}", bytes.fromhex(ouis[kind]) + bytes([k + 1, 0, j]), ttls[kind], 8192)
                   for j in range(N_PER_KIND)]
            for k, kind in enumerate(KINDS)
        }  # fmt: skip
        self.vlan = {id(h): (101 + k if j % 3 == 1 else 0)
                     for k, kind in enumerate(KINDS) for j, h in enumerate(self.plcs[kind])}  # fmt: skip
        self.dns = Host("10.0.0.53", bytes.fromhex("005056000035"), 64, 29200)
        self.ntp = Host("10.0.0.123", bytes.fromhex("00090f000001"), 255, 8192)
        self.web = [Host(f"10.0.1.{10 + i}", bytes.fromhex("005056010a") + bytes([i]), 64, 29200) for i in range(6)]
        self.ntp_flows: dict[int, UdpPair] = {}
        self.next_conn_id = int.from_bytes(det("connection ids", 4), "big") & 0x7FFFFFFF

    def client(self) -> tuple[int, Host]:
        i = self.rng.randrange(N_CLIENTS)
        return i, self.clients[i]


class Session:
    """A TCP session: handshake, set-up, `polls` transactions, teardown. ``step`` emits at most MAX_STEP frames."""

    port = 0

    def __init__(self, plant: Plant, w: Writer, kind: str) -> None:
        rng = plant.rng
        self.rng = rng
        self.plant = plant
        ci, client = plant.client()
        self.plc_index = rng.randrange(N_PER_KIND)
        server = plant.plcs[kind][self.plc_index]
        self.client_index = ci
        self.conn = TcpConn(w, rng, client, server, self.port, plant.vlan[id(server)], ts=ci % 4 == 0)
        self.polls = 40 + rng.randrange(1460)
        self.done = False
        self.started = False

    def step(self) -> None:
        if not self.started:
            self.started = True
            self.conn.handshake()
            self.setup()
        elif self.polls <= 0:
            self.teardown()
            self.conn.close()
            self.done = True
        else:
            self.polls -= 1
            self.transaction()

    def setup(self) -> None:
        pass

    def teardown(self) -> None:
        pass

    def exchange(self, pairs: list[tuple[bytes, bytes]]) -> None:
        """Requests and their responses, with the quirks: pipelining, splits, retransmissions, delayed ACKs."""
        c, rng = self.conn, self.rng
        if len(pairs) > 1:  # pipelined: all requests in one segment, all responses in one segment
            c.data(0, b"".join(q for q, _ in pairs))
            c.data(1, b"".join(r for _, r in pairs))
        else:
            req, resp = pairs[0]
            x = rng.random()
            if x < P_SPLIT and len(resp) > SPLIT_MIN:
                c.data(0, req)
                c.split(1, resp, SPLIT_MIN + rng.randrange(len(resp) - SPLIT_MIN))
            elif x < P_SPLIT * 4 / 3 and len(req) > SPLIT_MIN:
                c.split(0, req, SPLIT_MIN + rng.randrange(len(req) - SPLIT_MIN))
                c.data(1, resp)
            elif x < P_SPLIT * 4 / 3 + P_RETX:
                if rng.random() < 0.5:  # the request is resent before the answer comes
                    c.retransmit_data(0, req)
                    c.data(1, resp)
                else:  # the answer is resent: the client's ACK was lost; the client ACKs twice
                    c.data(0, req)
                    c.retransmit_data(1, resp)
                    c.send(0, ACK)
            else:
                c.data(0, req)
                c.data(1, resp)
        if rng.random() < P_ACK:
            c.send(0, ACK)

    def burst(self) -> int:
        """How many PDUs in the next transaction: usually 1, sometimes 2 or 3 pipelined."""
        if self.rng.random() < P_PIPELINE:
            return 2 + self.rng.getrandbits(1)
        return 1


class ModbusSession(Session):
    port = 502

    def __init__(self, plant: Plant, w: Writer) -> None:
        super().__init__(plant, w, "modbus")
        self.tid = self.rng.getrandbits(16)
        self.unit = 1 + self.plc_index % 4
        self.polls_list = [MODBUS_POLLS[i % len(MODBUS_POLLS)] for i in range(self.plc_index, self.plc_index + 2)]
        self.k = 0

    def transaction(self) -> None:
        pairs = []
        for _ in range(self.burst()):
            self.k += 1
            if self.k % 97 == 0:
                tmpl = MODBUS_WRITE
            elif self.k % 499 == 0:
                tmpl = MODBUS_EXCEPTION
            else:
                tmpl = self.polls_list[self.k % len(self.polls_list)]
            self.tid = (self.tid + 1) & 0xFFFF
            pairs.append((modbus_pdu(tmpl[0], self.tid, self.unit), modbus_pdu(tmpl[1], self.tid, self.unit)))
        self.exchange(pairs)


class S7Session(Session):
    port = 102

    def __init__(self, plant: Plant, w: Writer) -> None:
        super().__init__(plant, w, "s7comm")
        self.ref = self.rng.getrandbits(16)
        self.reads = [S7_READS[(self.plc_index + i) % len(S7_READS)] for i in range(2)]
        self.k = 0

    def setup(self) -> None:
        c = self.conn
        c.data(0, cotp_connect(False, 0x0100 + self.client_index % 3, 0x0102))
        c.data(1, cotp_connect(True, 0x0100 + self.client_index % 3, 0x0102))
        self.ref = (self.ref + 1) & 0xFFFF
        c.data(0, s7_ref(S7_SETUP[0], self.ref))
        c.data(1, s7_ref(S7_SETUP[1], self.ref))

    def transaction(self) -> None:
        pairs = []
        for _ in range(self.burst()):
            self.k += 1
            tmpl = S7_WRITE if self.k % 61 == 0 else self.reads[self.k % 2]
            self.ref = (self.ref + 1) & 0xFFFF
            pairs.append((s7_ref(tmpl[0], self.ref), s7_ref(tmpl[1], self.ref)))
        self.exchange(pairs)


class Dnp3Session(Session):
    port = 20000

    def __init__(self, plant: Plant, w: Writer) -> None:
        super().__init__(plant, w, "dnp3")
        self.master = 1 + self.client_index % 8
        self.outstation = 10 + self.plc_index
        self.k = self.rng.getrandbits(6)

    def transaction(self) -> None:
        self.k += 1
        k = self.k
        aseq, tseq = k & 0x0F, k & 0x3F
        integrity = k % 10 == 0
        req = dnp3_frame(True, self.outstation, self.master, tseq,
                         bytes([0xC0 | aseq, 0x01]) + (DNP3_CLASS0 if integrity else DNP3_CLASS123))  # fmt: skip
        resp = dnp3_frame(False, self.master, self.outstation, tseq,
                          bytes([0xC0 | aseq, 0x81, 0x00, 0x00]) + (DNP3_STATIC if integrity else b""))  # fmt: skip
        self.exchange([(req, resp)])  # a DNP3 master has one request outstanding


class EnipSession(Session):
    port = 44818

    def __init__(self, plant: Plant, w: Writer) -> None:
        super().__init__(plant, w, "enip")
        self.handle = self.rng.getrandbits(32) | 1
        self.context = self.rng.getrandbits(32)
        self.reads = [ENIP_READS[(self.plc_index + i) % len(ENIP_READS)] for i in range(3)]
        self.k = 0

    def setup(self) -> None:
        c = self.conn
        c.data(0, ENIP_REGISTER[0])
        c.data(1, enip_patch(ENIP_REGISTER[1], self.handle, 0))

    def teardown(self) -> None:
        self.context += 1
        self.conn.data(0, enip_patch(ENIP_UNREGISTER, self.handle, self.context))

    def transaction(self) -> None:
        pairs = []
        for _ in range(self.burst()):
            self.k += 1
            self.context += 1
            tmpl = ENIP_WRITE if self.k % 53 == 0 else self.reads[self.k % 3]
            pairs.append((enip_patch(tmpl[0], self.handle, self.context),
                          enip_patch(tmpl[1], self.handle, self.context)))  # fmt: skip
        self.exchange(pairs)


class IoStream:
    """Implicit I/O between a scanner (a client) and an adapter (an EtherNet/IP PLC), UDP 2222 both ways.

    A connection carries ``polls`` cycles (an O->T and a T->O datagram each), then ends; the stream
    object is replaced, and a new connection (new ids) starts, often between other hosts."""

    def __init__(self, plant: Plant, w: Writer) -> None:
        rng = plant.rng
        _, scanner = plant.client()
        j = rng.randrange(N_PER_KIND)
        adapter = plant.plcs["enip"][j]
        self.udp = UdpPair(w, scanner, adapter, 2222, 2222, plant.vlan[id(adapter)])
        self.o_t, self.t_o = plant.next_conn_id, plant.next_conn_id + 1
        plant.next_conn_id = (plant.next_conn_id + 2) & 0xFFFFFFFF
        self.seq = rng.getrandbits(16)
        self.polls = 100 + rng.randrange(3000)
        self.o_t_data = b"\x01\x00\x00\x00" + det(f"o->t {j}", 8 + 2 * (j % 4))  # run/idle header: run
        self.t_o_data = det(f"t->o {j}", 16 + 4 * (j % 5))
        self.done = False

    def step(self) -> None:
        self.seq += 1
        self.udp.send(0, io_datagram(self.o_t, self.seq, self.o_t_data))
        self.udp.send(1, io_datagram(self.t_o, self.seq, self.t_o_data))
        self.polls -= 1
        self.done = self.polls <= 0

    def single(self) -> None:
        """One datagram (to fill the last frames of the capture exactly)."""
        self.seq += 1
        self.udp.send(1, io_datagram(self.t_o, self.seq, self.t_o_data))


class HttpsSession:
    """A client browsing the historian's web page: TLS 1.3 hellos, then request/response records."""

    def __init__(self, plant: Plant, w: Writer) -> None:
        rng = plant.rng
        self.rng = rng
        _, client = plant.client()
        server = plant.web[rng.randrange(len(plant.web))]
        self.conn = TcpConn(w, rng, client, server, 443, 0, ts=True)
        self.polls = 5 + rng.randrange(60)
        self.started = False
        self.done = False

    def step(self) -> None:
        c, rng = self.conn, self.rng
        if not self.started:
            self.started = True
            c.handshake()
            c.data(0, TLS_CLIENT_HELLO)
            c.data(1, TLS_SERVER_FLIGHT)  # two segments
            c.data(0, TLS_CLIENT_FIN)
        elif self.polls <= 0:
            c.data(0, tls_app(0, 19))  # close_notify
            c.close()
            self.done = True
        else:
            self.polls -= 1
            c.data(0, tls_app(rng.randrange(4096), 200 + rng.randrange(400)))
            c.data(1, tls_app(rng.randrange(4096), 300 + rng.randrange(2600)))  # up to two segments
            c.send(0, ACK)


MAX_STEP = 12  # frames one step emits at most (S7 set-up: 3 + 4; a retransmitted answer: 4, + ACK)
FACTORIES = {"modbus": ModbusSession, "s7comm": S7Session, "dnp3": Dnp3Session, "enip": EnipSession,
             "io": IoStream, "https": HttpsSession}  # fmt: skip


def noise_udp(plant: Plant, w: Writer, dns: bool) -> None:
    rng = plant.rng
    i, client = plant.client()
    if dns:
        pair = UdpPair(w, client, plant.dns, client.ephemeral(), 53)
        query, answer = dns_pair(rng.getrandbits(16), DNS_NAMES[rng.randrange(len(DNS_NAMES))],
                                 bytes([10, 0, 1, 10 + rng.randrange(6)]))  # fmt: skip
    else:
        pair = plant.ntp_flows.get(i)
        if pair is None:
            pair = plant.ntp_flows[i] = UdpPair(w, client, plant.ntp, 123, 123)
        query, answer = ntp_pair(w.t)
    pair.send(0, query)
    pair.send(1, answer)


def generate(out, packets: int) -> int:
    rng = random.Random(SEED)
    w = Writer(out, rng)
    plant = Plant(rng)
    slots = []
    for kind, n in SLOTS.items():
        slots.extend(FACTORIES[kind](plant, w) for _ in range(n))
    io_slots = [i for i, s in enumerate(slots) if isinstance(s, IoStream)]

    def tcp_open() -> int:
        return sum(1 for s in slots if not isinstance(s, IoStream) and s.started and not s.done)

    open_tcp = 0  # sessions started and not closed: each needs 3 frames of teardown at the end
    nslots = len(slots)
    while w.count + 2 * MAX_STEP + 3 * open_tcp < packets:
        x = rng.random()
        if x < P_DNS + P_NTP:
            noise_udp(plant, w, dns=x < P_DNS)
            continue
        i = rng.randrange(nslots)
        s = slots[i]
        was_started = getattr(s, "started", True)
        s.step()
        if not was_started:
            open_tcp += 1
        if s.done:
            if not isinstance(s, IoStream):
                open_tcp -= 1
            slots[i] = FACTORIES[next(k for k, f in FACTORIES.items() if isinstance(s, f))](plant, w)
    assert open_tcp == tcp_open()
    # the end: fill with I/O datagrams, then close every open TCP session (FIN, FIN, ACK)
    fill = packets - w.count - 3 * open_tcp
    for k in range(fill):
        slots[io_slots[k % len(io_slots)]].single()
    for s in slots:
        if not isinstance(s, IoStream) and s.started and not s.done:
            s.conn.close()
    w.flush()
    return w.count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make_bench.py", description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=1_000_000, help="frames to write (default 1,000,000)")
    parser.add_argument("out", nargs="?", default=str(Path(__file__).with_name("bench-1m.pcap")), help="output pcap")
    args = parser.parse_args(argv)
    if args.packets < 1000:
        parser.error("--packets must be at least 1000")
    out = Path(args.out)
    tmp = out.with_name(out.stem + ".part" + out.suffix)  # renamed when complete: no half-written capture
    try:
        with open(tmp, "wb", buffering=1 << 20) as f:
            n = generate(f, args.packets)
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    print(f"{args.out}: {n:,} packets, {Path(args.out).stat().st_size / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
