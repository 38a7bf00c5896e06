"""L2-L4 decoding: link layers, 802.1Q/QinQ, IPv4/IPv6 (with fragment reassembly), TCP/UDP.

One function call per packet, struct.unpack_from over the frame bytes and plain
tuples out: this runs for every packet, so it avoids objects (dpkt's cost 5x).
"""

from __future__ import annotations

import struct
from itertools import islice
from typing import NamedTuple

# link types (LINKTYPE_* numbers as stored in pcap/pcapng)
LINK_NULL, LINK_ETHERNET, LINK_RAW, LINK_SLL, LINK_IPV4, LINK_IPV6, LINK_SLL2 = 0, 1, 101, 113, 228, 229, 276
LINK_NAMES = {
    LINK_NULL: "BSD loopback",
    LINK_ETHERNET: "Ethernet",
    LINK_RAW: "raw IP",
    LINK_SLL: "Linux cooked (SLL)",
    LINK_IPV4: "raw IPv4",
    LINK_IPV6: "raw IPv6",
    LINK_SLL2: "Linux cooked v2 (SLL2)",
}
KNOWN_LINK_NAMES = {105: "IEEE 802.11", 127: "802.11 radiotap", 147: "user-defined", 195: "IEEE 802.15.4", 9: "PPP"}
SUPPORTED_LINKS = frozenset(LINK_NAMES)

ETH_IPV4, ETH_IPV6 = 0x0800, 0x86DD
VLAN_TPIDS = frozenset((0x8100, 0x88A8, 0x9100))
TCP, UDP = 6, 17
IPV6_EXT = frozenset((0, 43, 60, 135, 139, 140))  # hop-by-hop, routing, dest opts, mobility, HIP, shim6
IPV6_FRAGMENT, IPV6_AH, IPV6_NONE = 44, 51, 59

MAX_VLAN_TAGS = 8  # QinQ stacks two, providers three: a deeper stack is no frame an endpoint takes (issue 12 §5)
FRAG_MAX_DATAGRAMS = 4096  # datagrams waiting for fragments; past this the oldest eighth is dropped
FRAG_MAX_BYTES = 16 << 20  # fragment bytes waiting, all datagrams together: 4096 x 64 KB would be 256 MB
FRAG_TIMEOUT_US = 60_000_000

_u16 = struct.Struct("!H").unpack_from
_u32 = struct.Struct("!I").unpack_from
_tcp = struct.Struct("!HHIIBB").unpack_from
_udp = struct.Struct("!HH").unpack_from


class Malformed(Exception):
    """The frame is broken at some layer; the message says which and how."""


class Packet(NamedTuple):
    vlan: int  # innermost 802.1Q VLAN id, 0 when untagged
    src_mac: bytes | None
    dst_mac: bytes | None
    src: bytes  # 4 or 16 address bytes
    dst: bytes
    proto: int  # IP protocol number
    sport: int  # 0 for protocols without ports
    dport: int
    tcp_flags: int
    seq: int
    ack: int
    payload: bytes  # transport payload (TCP/UDP data; the IP payload otherwise)


class Decoder:
    """Decodes frames of any supported link type; holds IP fragments until complete.

    Fragments wait within FRAG_MAX_DATAGRAMS datagrams and FRAG_MAX_BYTES bytes; the
    datagrams given up on are counted, not reported one by one (a flood of first
    fragments is a million of them): ``incomplete`` sums them up at the end."""

    def __init__(self) -> None:
        self.fragments: dict[tuple, _Datagram] = {}
        self.fragment_bytes = 0
        self.dropped = {"evicted": 0, "timed_out": 0}  # datagrams given up on, by why
        self.first_dropped: tuple[int | None, int] | None = None  # (frame, ts) of the first fragment of the first

    def decode(self, link: int, data: bytes, ts: int, frame: int | None = None) -> Packet | None:
        """Return the decoded packet, or None for a frame that carries no IP packet
        (ARP, LLDP, an IP fragment still waiting for the rest). Raises Malformed.
        ``frame`` (its number) is only kept as the evidence of an incomplete datagram."""
        head = _link_header(link, data)
        if head is None:
            return None
        etype, off, vlan, src_mac, dst_mac = head
        if etype == ETH_IPV4:
            return self._ipv4(data, off, vlan, src_mac, dst_mac, ts, frame)
        if etype == ETH_IPV6:
            return self._ipv6(data, off, vlan, src_mac, dst_mac, ts, frame)
        return None

    def _ipv4(self, data: bytes, off: int, vlan: int, src_mac: bytes | None, dst_mac: bytes | None, ts: int,
              frame: int | None) -> Packet | None:  # fmt: skip
        if len(data) < off + 20:
            raise Malformed(f"IPv4 header truncated ({len(data) - off} bytes)")
        vihl = data[off]
        if vihl >> 4 != 4:
            raise Malformed(f"IPv4 version field is {vihl >> 4}")
        ihl = (vihl & 0x0F) * 4
        total = _u16(data, off + 2)[0]
        if total == 0:  # TCP segmentation offload, captured on the sending host before the
            total = len(data) - off  # NIC split the segment: the frame gives the length (as Wireshark)
        if ihl < 20 or total < ihl:
            raise Malformed(f"bad IPv4 header length {ihl} / total length {total}")
        end = min(off + total, len(data))  # trims Ethernet padding; keeps a snapped frame
        proto = data[off + 9]
        src = data[off + 12 : off + 16]
        dst = data[off + 16 : off + 20]
        frag = _u16(data, off + 6)[0]
        start = off + ihl
        if frag & 0x3FFF:  # MF set or non-zero offset
            key = (vlan, src, dst, _u16(data, off + 4)[0], proto)
            payload = self._reassemble(key, (frag & 0x1FFF) * 8, bool(frag & 0x2000), data[start:end], ts, frame)
            if payload is None:
                return None
            return _transport(vlan, src_mac, dst_mac, src, dst, proto, payload, 0, len(payload))
        return _transport(vlan, src_mac, dst_mac, src, dst, proto, data, start, end)

    def _ipv6(self, data: bytes, off: int, vlan: int, src_mac: bytes | None, dst_mac: bytes | None, ts: int,
              frame: int | None) -> Packet | None:  # fmt: skip
        if len(data) < off + 40:
            raise Malformed(f"IPv6 header truncated ({len(data) - off} bytes)")
        if data[off] >> 4 != 6:
            raise Malformed(f"IPv6 version field is {data[off] >> 4}")
        end = min(off + 40 + _u16(data, off + 4)[0], len(data))
        proto = data[off + 6]
        src = data[off + 8 : off + 24]
        dst = data[off + 24 : off + 40]
        start = off + 40
        reassembled = False
        while proto in IPV6_EXT or proto in (IPV6_FRAGMENT, IPV6_AH):
            if start + 8 > end:
                raise Malformed(f"IPv6 extension header {proto} truncated")
            nxt = data[start]
            if proto == IPV6_FRAGMENT:
                if reassembled:
                    raise Malformed("IPv6 fragment header inside a reassembled datagram")
                fo = _u16(data, start + 2)[0]
                key = (vlan, src, dst, _u32(data, start + 4)[0], nxt)
                payload = self._reassemble(key, fo & 0xFFF8, bool(fo & 1), data[start + 8 : end], ts, frame)
                if payload is None:
                    return None
                # the fragmentable part may itself start with extension headers
                # (destination options, routing): keep walking the chain in it
                data, start, end, proto, reassembled = payload, 0, len(payload), nxt, True
                continue
            start += (data[start + 1] + 2) * 4 if proto == IPV6_AH else (data[start + 1] + 1) * 8
            proto = nxt
        return _transport(vlan, src_mac, dst_mac, src, dst, proto, data, start, end)

    def _reassemble(
        self, key: tuple, offset: int, more: bool, piece: bytes, ts: int, frame: int | None
    ) -> bytes | None:
        """Collect one fragment; return the whole IP payload once every piece is in.

        The key holds the VLAN: the same addresses and IP id on two VLANs are two
        datagrams (OT cells often reuse one address plan per VLAN). Wireshark keys
        IPv4 reassembly by VLAN too; its IPv6 reassembly (4.0) does not."""
        frags = self.fragments
        dgram = frags.get(key)
        if dgram is None:
            if len(frags) >= FRAG_MAX_DATAGRAMS:
                self.expire(ts, force=True)
            dgram = frags[key] = _Datagram(ts, frame)
        grown = len(piece) - len(dgram.pieces.get(offset, b""))
        dgram.pieces[offset] = piece
        dgram.size += grown
        self.fragment_bytes += grown
        while self.fragment_bytes > FRAG_MAX_BYTES and frags:
            self.expire(ts, force=True)
        if not more:
            dgram.total = offset + len(piece)
        if dgram.total is None or dgram.size < dgram.total or key not in frags:
            return None  # fewer bytes than the datagram holds: no need to look for holes
        pos = 0
        for off in sorted(dgram.pieces):
            if off > pos:
                return None
            pos = max(pos, off + len(dgram.pieces[off]))
        if pos < dgram.total:
            return None
        del frags[key]
        self.fragment_bytes -= dgram.size
        out = bytearray(dgram.total)
        for off in sorted(dgram.pieces):
            p = dgram.pieces[off][: dgram.total - off]
            out[off : off + len(p)] = p
        return bytes(out)

    def expire(self, now: int, force: bool = False) -> int:
        """Drop datagrams whose fragments stopped coming (with ``force``, the oldest
        eighth if none did); returns how many."""
        frags = self.fragments
        stale = [k for k, d in frags.items() if now - d.first_ts > FRAG_TIMEOUT_US]
        why = "timed_out"
        if force and not stale:
            stale, why = list(islice(frags, max(1, len(frags) // 8))), "evicted"
        for k in stale:
            dgram = frags.pop(k)
            self.fragment_bytes -= dgram.size
            self.dropped[why] += 1
            if self.first_dropped is None:
                self.first_dropped = (dgram.frame, dgram.first_ts)
        return len(stale)

    def incomplete(self) -> tuple[int | None, int, str] | None:
        """(frame, ts, detail) summing up the datagrams that never completed: those
        given up on and those still waiting (at the end of the capture); None if none."""
        left = len(self.fragments)
        n = sum(self.dropped.values()) + left
        if not n:
            return None
        if self.first_dropped is not None:
            frame, ts = self.first_dropped
        else:
            first = next(iter(self.fragments.values()))
            frame, ts = first.frame, first.first_ts
        why = (
            f"{self.dropped['evicted']} dropped when {FRAG_MAX_DATAGRAMS} datagrams or {FRAG_MAX_BYTES} bytes were "
            f"waiting, {self.dropped['timed_out']} after {FRAG_TIMEOUT_US // 1_000_000} s, "
            f"{left} still waiting at the end"
        )
        return frame, ts, f"{n} fragmented IP datagrams never completed ({why}); the first one's first fragment is here"


def _link_header(link: int, data: bytes) -> tuple[int, int, int, bytes | None, bytes | None] | None:
    """(ethertype, offset of the network header, VLAN, source MAC, destination MAC) of a frame; None for a
    link type sorf does not decode. Raises Malformed."""
    src_mac = dst_mac = None
    if link == LINK_ETHERNET:
        if len(data) < 14:
            raise Malformed(f"Ethernet frame too short ({len(data)} bytes)")
        etype, off, dst_mac, src_mac = _u16(data, 12)[0], 14, data[0:6], data[6:12]
    elif link == LINK_SLL:
        if len(data) < 16:
            raise Malformed(f"SLL header truncated ({len(data)} bytes)")
        etype, off = _u16(data, 14)[0], 16
        if _u16(data, 4)[0] == 6:
            src_mac = data[6:12]
    elif link == LINK_SLL2:
        if len(data) < 20:
            raise Malformed(f"SLL2 header truncated ({len(data)} bytes)")
        etype, off = _u16(data, 0)[0], 20
        if data[11] == 6:
            src_mac = data[12:18]
    elif link in (LINK_RAW, LINK_IPV4, LINK_IPV6):
        if not data:
            raise Malformed("empty raw IP frame")
        version = data[0] >> 4
        etype, off = ETH_IPV4 if version == 4 else ETH_IPV6 if version == 6 else -1, 0
        return etype, off, 0, None, None
    elif link == LINK_NULL:
        if len(data) < 4:
            raise Malformed("loopback header truncated")
        family = struct.unpack_from("<I", data)[0]
        if family > 0xFFFF:
            family = _u32(data)[0]
        etype = ETH_IPV4 if family == 2 else ETH_IPV6 if family in (10, 24, 28, 30) else -1
        return etype, 4, 0, None, None
    else:
        return None
    vlan = 0
    limit = off + 4 * MAX_VLAN_TAGS
    while etype in VLAN_TPIDS:  # 802.1Q / QinQ tags, after an Ethernet or Linux cooked header
        if len(data) < off + 4:
            raise Malformed("802.1Q tag truncated")
        if off >= limit:
            raise Malformed(f"more than {MAX_VLAN_TAGS} 802.1Q tags")
        vlan = _u16(data, off)[0] & 0x0FFF
        etype = _u16(data, off + 2)[0]
        off += 4
    return etype, off, vlan, src_mac, dst_mac


class _Datagram:
    __slots__ = ("first_ts", "frame", "pieces", "size", "total")

    def __init__(self, ts: int, frame: int | None):
        self.first_ts = ts
        self.frame = frame  # of its first fragment
        self.pieces: dict[int, bytes] = {}
        self.size = 0  # bytes in pieces
        self.total: int | None = None


def _transport(vlan, src_mac, dst_mac, src, dst, proto, data, start, end) -> Packet:
    if proto == TCP:
        if end - start < 20:
            raise Malformed(f"TCP header truncated ({end - start} bytes)")
        sport, dport, seq, ack, doff, flags = _tcp(data, start)
        hlen = (doff >> 4) * 4
        if hlen < 20:
            raise Malformed(f"bogus TCP header length {hlen}")
        pstart = min(start + hlen, end)
        return Packet(vlan, src_mac, dst_mac, src, dst, TCP, sport, dport, flags, seq, ack, data[pstart:end])
    if proto == UDP:
        if end - start < 8:
            raise Malformed(f"UDP header truncated ({end - start} bytes)")
        sport, dport = _udp(data, start)
        return Packet(vlan, src_mac, dst_mac, src, dst, UDP, sport, dport, 0, 0, 0, data[start + 8 : end])
    return Packet(vlan, src_mac, dst_mac, src, dst, proto, 0, 0, 0, 0, 0, data[start:end])
