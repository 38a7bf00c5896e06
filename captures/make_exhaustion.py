"""Captures for the resource-exhaustion cases of issue 12 §5 (tests/hostile/test_exhaustion.py).

    python captures/make_exhaustion.py CASE OUT.pcap     # CASE: one of CASES

Each case is a hostile input that must cost bounded memory, be reported as an
anomaly and leave the rest of the capture intact. Frames are struct-packed
(no scapy: the biggest case has 1,000,000 frames), IPv4 and TCP checksums 0
(sorf does not check them), timestamps from a fixed start: the output is
byte-identical on every run.
"""

from __future__ import annotations

import struct
import sys
from datetime import UTC, datetime

import numpy as np
from make_bench import crc_dnp  # beside this file: its directory is on sys.path, run or imported

T0 = int(datetime(2026, 2, 2, 6, 0, 0, tzinfo=UTC).timestamp()) * 1_000_000  # µs
CLIENT, SERVER = bytes([10, 20, 1, 5]), bytes([10, 20, 2, 10])
CLIENT_MAC, SERVER_MAC = bytes.fromhex("02005e140105"), bytes.fromhex("02005e140210")
SYN, ACK, PSH = 0x02, 0x10, 0x08

_ETH = struct.Struct("!6s6sH")
_IP = struct.Struct("!BBHHHBBH4s4s")
_TCP = struct.Struct("!HHIIBBHHH")
_REC = struct.Struct("<IIII")
PCAP_HEADER = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)  # µs, little-endian, Ethernet


def ipv4(src: bytes, dst: bytes, proto: int, payload: bytes, ident: int = 0, frag: int = 0) -> bytes:
    return _IP.pack(0x45, 0, 20 + len(payload), ident, frag, 64, proto, 0, src, dst) + payload


def ether(ip: bytes, src: bytes = CLIENT_MAC, dst: bytes = SERVER_MAC, tags: int = 0) -> bytes:
    """An Ethernet frame; ``tags`` 802.1Q tags (VLAN 1, 2, ...) before the IPv4 type."""
    vlans = b"".join(struct.pack("!HH", 0x8100, 1 + i) for i in range(tags))  # each: TPID, then the tag
    return dst + src + vlans + b"\x08\x00" + ip


def record(ts: int, frame: bytes) -> bytes:
    return _REC.pack(ts // 1_000_000, ts % 1_000_000, len(frame), len(frame)) + frame


class TcpFlow:
    """Both directions of one TCP connection, as pcap records: seq/ack tracked per side."""

    def __init__(self, sport: int, dport: int, t0: int = T0, tags: int = 0):
        self.ports = (sport, dport)
        self.tags = tags  # 802.1Q tags on every frame
        self.seq = [1000, 5000]  # next sequence number: client, server
        self.ts = t0

    def segment(self, from_client: bool, payload: bytes = b"", flags: int = ACK | PSH, skip: bool = False) -> bytes:
        """The next segment of one side (a record), or b"" with ``skip``: its bytes are lost to the capture."""
        side = 0 if from_client else 1
        sport, dport = self.ports if from_client else self.ports[::-1]
        seq, ack = self.seq[side], self.seq[1 - side]
        self.seq[side] = (seq + len(payload) + (1 if flags & SYN else 0)) % (1 << 32)
        self.ts += 100
        if skip:
            return b""
        tcp = _TCP.pack(sport, dport, seq, ack if flags & ACK else 0, 5 << 4, flags, 65535, 0, 0) + payload
        src, dst = (CLIENT, SERVER) if from_client else (SERVER, CLIENT)
        macs = (CLIENT_MAC, SERVER_MAC) if from_client else (SERVER_MAC, CLIENT_MAC)
        return record(self.ts, ether(ipv4(src, dst, 6, tcp), *macs, tags=self.tags))

    def handshake(self) -> bytes:
        return self.segment(True, flags=SYN) + self.segment(False, flags=SYN | ACK) + self.segment(True, flags=ACK)


# --------------------------------------------------------------------------- Modbus/TCP


def modbus_read(tid: int, address: int = 100, quantity: int = 2) -> bytes:
    """Read Holding Registers (fc 3) request."""
    return struct.pack("!HHHBBHH", tid, 0, 6, 1, 3, address, quantity)


def modbus_reply(tid: int, quantity: int = 2) -> bytes:
    return struct.pack("!HHHBBB", tid, 0, 3 + 2 * quantity, 1, 3, 2 * quantity) + bytes(2 * quantity)


def modbus_hole_every_other(segments: int = 10_000, answered: bool = True) -> bytes:
    """A Modbus/TCP flow whose client sends ``segments`` requests, every second one
    lost to the capture. ``answered``: the server acknowledges each (it got them)
    and answers those that are there; otherwise it is never heard from (a one-way
    SPAN), so no acknowledgment tells the reassembly a hole will never fill."""
    flow = TcpFlow(40001, 502)
    out = [PCAP_HEADER, flow.handshake()]
    for i in range(segments):
        lost = i % 2 == 1
        out.append(flow.segment(True, modbus_read(i & 0xFFFF), skip=lost))
        if answered:
            out.append(flow.segment(False, modbus_reply(i & 0xFFFF)) if not lost else flow.segment(False, flags=ACK))
    return b"".join(out)


def modbus_endless_garbage(megabytes: int = 20) -> bytes:
    """A Modbus/TCP flow: one read and its reply, then a header claiming a whole
    ADU (254 bytes), then ``megabytes`` of bytes in which no MBAP header can start
    (0xff: protocol id 0xffff), to the end of the capture."""
    flow = TcpFlow(40002, 502)
    out = [PCAP_HEADER, flow.handshake(), flow.segment(True, modbus_read(1)), flow.segment(False, modbus_reply(1))]
    junk = b"\xff" * 1400
    out.append(flow.segment(True, struct.pack("!HHHB", 2, 0, 254, 1) + junk[:1393]))
    out.extend(flow.segment(True, junk) for _ in range(megabytes * (1 << 20) // len(junk)))
    return b"".join(out)


# --------------------------------------------------------------------------- S7comm (COTP DT without EOT)


def _tpkt_dt(payload: bytes, eot: bool) -> bytes:
    cotp = bytes([2, 0xF0, 0x80 if eot else 0x00])
    return struct.pack("!BBH", 3, 0, 4 + len(cotp) + len(payload)) + cotp + payload


S7_READ = bytes.fromhex("320100000001000e0000" + "0401120a10020004000184000000")  # header; Read Var, 4 bytes of DB1


def s7_endless_dt(megabytes: int = 20) -> bytes:
    """An S7comm flow to port 102: one whole Read Var job (EOT set), then a COTP
    data unit that never ends: ``megabytes`` of TPKT frames, each a DT without EOT."""
    flow = TcpFlow(40003, 102)
    out = [PCAP_HEADER, flow.handshake(), flow.segment(True, _tpkt_dt(S7_READ, True))]
    head = _tpkt_dt(S7_READ[:10] + bytes(1390), False)  # starts like a job; its parameters never end
    body = _tpkt_dt(bytes(1400), False)
    out.append(flow.segment(True, head))
    out.extend(flow.segment(True, body) for _ in range(megabytes * (1 << 20) // len(body)))
    return b"".join(out)


# --------------------------------------------------------------------------- DNP3 (transport segments without FIN)


def dnp3_frame(user: bytes, src: int = 3, dst: int = 4, ctrl: int = 0xC4) -> bytes:
    """A DNP3 link frame (unconfirmed user data, master to outstation) carrying ``user``."""
    head = struct.pack("<HBBHH", 0x6405, 5 + len(user), ctrl, dst, src)
    out = [head, crc_dnp(head)]
    for i in range(0, len(user), 16):
        block = user[i : i + 16]
        out += [block, crc_dnp(block)]
    return b"".join(out)


def dnp3_endless_fragment(segments: int = 10_000) -> bytes:
    """DNP3 over TCP/20000: a DIRECT_OPERATE (fc 5) whose first transport segment
    (FIR) is followed by ``segments`` more, the sequence wrapping through all 64
    values, none with FIN: an application fragment that claims to go on forever."""
    flow = TcpFlow(40004, 20000)
    out = [PCAP_HEADER, flow.handshake()]
    app = bytes([0xC0, 0x05]) + bytes([12, 1, 0x28, 1, 0, 0, 0, 1, 1, 0xE8, 3, 0, 0, 0, 0, 0, 0, 0])  # g12v1 CROB
    out.append(flow.segment(True, dnp3_frame(bytes([0x40]) + app + bytes(249 - len(app)))))  # FIR, seq 0
    out.extend(flow.segment(True, dnp3_frame(bytes([i & 0x3F]) + bytes(249))) for i in range(1, segments + 1))
    return b"".join(out)


# --------------------------------------------------------------------------- L2/L3


def vlan_nest(tags: int = 50) -> bytes:
    """A Modbus/TCP read and its reply in an untagged flow, then the same in a flow
    whose frames carry ``tags`` 802.1Q tags each, then another untagged read."""
    plain, deep = TcpFlow(40005, 502), TcpFlow(40006, 502, T0 + 10_000, tags)
    out = [PCAP_HEADER, plain.handshake(), plain.segment(True, modbus_read(1)), plain.segment(False, modbus_reply(1))]
    out += [deep.handshake(), deep.segment(True, modbus_read(2)), deep.segment(False, modbus_reply(2))]
    plain.ts = deep.ts
    out += [plain.segment(True, modbus_read(3)), plain.segment(False, modbus_reply(3))]
    return b"".join(out)


def fragment_trains(trains: int = 1_000_000, tail: bytes = b"") -> bytes:
    """``trains`` first IPv4 fragments (MF set, offset 0, 8 bytes of a UDP header),
    each of another datagram (source address and IP id vary), none ever completed;
    ``tail`` (pcap records) after them. Built as one numpy array: 1M frames in well
    under a second."""
    frame = ether(ipv4(CLIENT, SERVER, 17, struct.pack("!HHHH", 40000, 20000, 1008, 0), frag=0x2000))
    rec = np.frombuffer(record(T0, frame), np.uint8)
    out = np.tile(rec, (trains, 1))
    i = np.arange(trains, dtype=np.int64)
    ts = T0 + i  # 1 µs apart: no train ever times out
    out[:, 0:4] = (ts // 1_000_000).astype("<u4").view(np.uint8).reshape(-1, 4)
    out[:, 4:8] = (ts % 1_000_000).astype("<u4").view(np.uint8).reshape(-1, 4)
    ip = 16 + 14
    out[:, ip + 4 : ip + 6] = (i & 0xFFFF).astype(">u2").view(np.uint8).reshape(-1, 2)  # IP id
    out[:, ip + 13] = 64 + (i >> 16)  # source 10.(64 + i / 65536).1.5
    return PCAP_HEADER + out.tobytes() + tail


# --------------------------------------------------------------------------- capture files


HUGE = 0xFFFFFFF0  # a length of almost 4 GB, a multiple of 4 (a pcapng block length must be)


def modbus_polls(pairs: int, sport: int = 40007, t0: int = T0) -> bytes:
    """pcap records of a Modbus/TCP flow: the handshake, then ``pairs`` reads and their replies."""
    flow = TcpFlow(sport, 502, t0)
    out = [flow.handshake()]
    for i in range(pairs):
        out += [flow.segment(True, modbus_read(i & 0xFFFF)), flow.segment(False, modbus_reply(i & 0xFFFF))]
    return b"".join(out)


def pcap_claiming_4gb(pairs: int = 10) -> bytes:
    """A pcap whose record after ``pairs`` Modbus polls says it holds HUGE bytes; a poll follows it."""
    bad = _REC.pack(T0 // 1_000_000 + 5, 0, HUGE, HUGE) + bytes(64)
    return PCAP_HEADER + modbus_polls(pairs) + bad + modbus_polls(1, 40008, T0 + 6_000_000)


def _block(btype: int, body: bytes) -> bytes:
    body += bytes(-len(body) % 4)
    return struct.pack("<II", btype, len(body) + 12) + body + struct.pack("<I", len(body) + 12)


def to_pcapng(records: bytes) -> bytes:
    """pcap records (no file header) as pcapng: a section, an Ethernet interface, an EPB each."""
    out = [_block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)), _block(1, struct.pack("<HHI", 1, 0, 0))]
    pos = 0
    while pos < len(records):
        sec, usec, incl, orig = _REC.unpack_from(records, pos)
        ts = sec * 1_000_000 + usec
        body = struct.pack("<IIIII", 0, ts >> 32, ts & 0xFFFFFFFF, incl, orig) + records[pos + 16 : pos + 16 + incl]
        out.append(_block(6, body))
        pos += 16 + incl
    return b"".join(out)


def pcapng_claiming_4gb(pairs: int = 10, where: str = "block") -> bytes:
    """A pcapng whose packet block after ``pairs`` Modbus polls says it is HUGE bytes long
    (``where`` "block": its block length; "packet": its captured length, in a block of sane length)."""
    if where == "block":
        bad = struct.pack("<II", 6, HUGE) + bytes(64)
    else:
        bad = _block(6, struct.pack("<IIIII", 0, 0, 0, HUGE, HUGE) + bytes(64))
    return to_pcapng(modbus_polls(pairs)) + bad + to_pcapng(modbus_polls(1, 40008, T0 + 6_000_000))[28 + 20 :]


CASES = {
    "hole-every-other": modbus_hole_every_other,
    "hole-every-other-one-way": lambda: modbus_hole_every_other(200_000, answered=False),
    "modbus-garbage": modbus_endless_garbage,
    "s7-endless-dt": s7_endless_dt,
    "dnp3-endless-fragment": dnp3_endless_fragment,
    "vlan-50": vlan_nest,
    "fragment-trains": fragment_trains,
    "pcap-4gb": pcap_claiming_4gb,
    "pcap-4gb-big": lambda: pcap_claiming_4gb(60_000),
    "pcapng-4gb-block": pcapng_claiming_4gb,
    "pcapng-4gb-packet": lambda: pcapng_claiming_4gb(where="packet"),
    "pcapng-4gb-big": lambda: pcapng_claiming_4gb(60_000),
}


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in CASES:
        sys.exit(f"usage: python captures/make_exhaustion.py CASE OUT.pcap  (CASE: {', '.join(CASES)})")
    with open(sys.argv[2], "wb") as f:
        f.write(CASES[sys.argv[1]]())
