"""Generate a flood capture: many one-packet TCP flows (a SYN scan) against one PLC.

    python captures/make_flood.py [--flows N] [OUT.pcap]              # N sources, one SYN each to 10.20.2.10:502
    python captures/make_flood.py --sources S --ports P [OUT.pcap]    # S sources, each a SYN to P ports

The default is 2,000,000 flows (captures/flood-2m.pcap); ``--sources 200000 --ports 10``
writes captures/flood-200k-x10.pcap. The output is byte-identical for the same
arguments: source ports come from one random.Random with a fixed seed, timestamps
from a fixed start (2026-02-02 06:00:00 UTC), 20 µs apart. No scapy: each frame is
Ethernet / IPv4 / TCP (SYN, MSS option), struct-packed, with the IPv4 checksum
computed and the TCP checksum left 0 (neither tshark nor sorf checks it by default).

Source addresses are 10.64.0.0 upwards (10.64.0.0 to 10.94.133.127 for 2,000,000),
each with its own MAC; the ports of the ``--ports`` variant are 502, 102, 20000,
44818, 2222, then 1 upwards.
"""

from __future__ import annotations

import argparse
import random
import struct
import sys
from datetime import UTC, datetime
from pathlib import Path

SEED = 62443
T0 = int(datetime(2026, 2, 2, 6, 0, 0, tzinfo=UTC).timestamp()) * 1_000_000  # µs
STEP_US = 20
PLC_IP = bytes([10, 20, 2, 10])
PLC_MAC = bytes.fromhex("02005e140210")
SRC_BASE = (10 << 24) | (64 << 16)  # 10.64.0.0
PORTS = (502, 102, 20000, 44818, 2222)
BATCH = 1 << 14  # records per write

_ETH = struct.Struct("!6s6sH")
_IP = struct.Struct("!BBHHHBBH4s4s")
_TCP = struct.Struct("!HHIIBBHHH")
_MSS = b"\x02\x04\x05\xb4"
_REC = struct.Struct("<IIII")
FRAME_LEN = _ETH.size + _IP.size + _TCP.size + len(_MSS)  # 58: padded to 60 on the wire
PAD = b"\x00" * (60 - FRAME_LEN)


def _ports(n: int) -> list[int]:
    ports = list(PORTS[:n])
    p = 1
    while len(ports) < n:
        if p not in PORTS:
            ports.append(p)
        p += 1
    return ports


def _csum(header: bytes) -> int:
    s = sum(struct.unpack("!10H", header))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def generate(out, sources: int, ports: int = 1) -> int:
    """Write the pcap to the binary file ``out``: ``sources`` x ``ports`` SYNs; return the frame count."""
    rng = random.Random(SEED)
    out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))  # pcap, µs, Ethernet
    dports = _ports(ports)
    total = _IP.size + _TCP.size + len(_MSS)  # IPv4 total length
    buf: list[bytes] = []
    count = 0
    for i in range(sources):
        src = (SRC_BASE + i).to_bytes(4, "big")
        mac = b"\x02\x01" + src
        for dport in dports:
            t = T0 + count * STEP_US
            ip_id = count & 0xFFFF
            header = _IP.pack(0x45, 0, total, ip_id, 0x4000, 64, 6, 0, src, PLC_IP)
            header = header[:10] + _csum(header).to_bytes(2, "big") + header[12:]
            sport = 1024 + rng.randrange(64512)
            seq = rng.getrandbits(32)
            tcp = _TCP.pack(sport, dport, seq, 0, 6 << 4, 0x02, 1024, 0, 0) + _MSS
            frame = _ETH.pack(PLC_MAC, mac, 0x0800) + header + tcp + PAD
            buf.append(_REC.pack(t // 1_000_000, t % 1_000_000, len(frame), len(frame)) + frame)
            count += 1
            if len(buf) >= BATCH:
                out.write(b"".join(buf))
                buf.clear()
    out.write(b"".join(buf))
    return count


def default_name(sources: int, ports: int) -> str:
    def short(n: int) -> str:
        return f"{n // 1_000_000}m" if n % 1_000_000 == 0 else f"{n // 1000}k" if n % 1000 == 0 else str(n)

    return f"flood-{short(sources)}" + (f"-x{ports}" if ports > 1 else "") + ".pcap"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make_flood.py", description=__doc__.splitlines()[0])
    parser.add_argument("--flows", type=int, help="one-packet flows from as many sources (default 2,000,000)")
    parser.add_argument("--sources", type=int, help="source addresses (with --ports)")
    parser.add_argument("--ports", type=int, default=1, help="destination ports each source opens (default 1)")
    parser.add_argument("out", nargs="?", help="output pcap (default captures/flood-*.pcap)")
    args = parser.parse_args(argv)
    if args.flows is not None and args.sources is not None:
        parser.error("give --flows or --sources, not both")
    sources = args.sources if args.sources is not None else args.flows if args.flows is not None else 2_000_000
    if sources < 1 or not 1 <= args.ports <= 65535:
        parser.error("--flows/--sources must be at least 1, --ports 1-65535")
    out = Path(args.out) if args.out else Path(__file__).with_name(default_name(sources, args.ports))
    tmp = out.with_name(out.stem + ".part" + out.suffix)  # renamed when complete: no half-written capture
    try:
        with open(tmp, "wb", buffering=1 << 20) as f:
            n = generate(f, sources, args.ports)
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    print(f"{out}: {n:,} packets, {out.stat().st_size / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
