"""Seed corpora from the real captures in ../shared/captures, written under .fuzz-corpus/ (gitignored).

A dissector's seeds are the TCP or UDP payloads of the flows on its port, as sorf's own reader and decoder
see them (one seed per distinct payload, and the first payloads of each flow direction joined, for the
framing). The bulk target's seeds are one-flow sequences of whole-PDU segments in its input format
(checks.bulk_flow). The readers' seeds are head slices of the real pcap and pcapng files.
"""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

from sensor.capture import CaptureError, ReadState, read_packets
from sensor.decode import TCP, UDP, Decoder, Malformed
from tests.fuzz.checks import BULK, DISSECTORS
from tests.helpers.paths import ROOT, SHARED

CORPUS = ROOT / ".fuzz-corpus"
MAX_SEEDS = 400  # per target: enough variety, short enough to load in a bounded run
MAX_JOINED = 4096  # bytes of a flow direction's first payloads joined into one seed
HEADS = (64, 200, 600, 2000, 8000)  # bytes of each capture file kept as a reader seed

# target -> (transports, server ports) whose payloads seed it
PORTS = {name: (cls.transports, cls.ports) for name, cls in DISSECTORS.items()}


def captures() -> list[Path]:
    return sorted(p for p in SHARED.rglob("*") if p.suffix in (".pcap", ".pcapng") and p.is_file())


def flow_payloads(path: Path) -> dict[tuple, list[tuple[bool, bytes]]]:
    """(transport, server port, client, server) -> [(from the first sender, payload)] for every payload."""
    flows: dict[tuple, list[tuple[bool, bytes]]] = {}
    first: dict[tuple, tuple] = {}  # flow -> the endpoint that sent its first payload
    decoder = Decoder()
    try:
        for link, ts, _orig, data in read_packets(str(path), ReadState()):
            try:
                p = decoder.decode(link, data, ts)
            except Malformed:
                continue
            if p is None or p.proto not in (TCP, UDP) or not p.payload:
                continue
            a, b = (p.src, p.sport), (p.dst, p.dport)
            key = (p.proto, *sorted((a, b)))
            flows.setdefault(key, []).append((first.setdefault(key, a) == a, bytes(p.payload)))
    except CaptureError:  # not a capture after all (damage stops the reading quietly, in the state)
        return {}
    return flows


def _claims(target: str, key: tuple) -> bool:
    transports, ports = PORTS[target]
    proto = "tcp" if key[0] == TCP else "udp"
    return proto in transports and (key[1][1] in ports or key[2][1] in ports)


def dissector_seeds(flows: list[dict], target: str) -> list[bytes]:
    out: set[bytes] = set()
    joined: list[bytes] = []
    for capture in flows:
        for key, payloads in capture.items():
            if not _claims(target, key):
                continue
            out.update(p for _, p in payloads)
            for side in (True, False):
                run = b"".join(p for s, p in payloads[:12] if s == side)[:MAX_JOINED]
                if run:
                    joined.append(run)
    return _cap(sorted(out), MAX_SEEDS - 50) + _cap(joined, 50)


def bulk_seeds(flows: list[dict]) -> list[bytes]:
    """Per flow, its whole-PDU segments in order, in the bulk target's input format."""
    out = []
    for k, cls in enumerate(BULK):
        target = next(t for t, c in DISSECTORS.items() if c is cls)
        for capture in flows:
            for key, payloads in capture.items():
                if not _claims(target, key):
                    continue
                d = cls()
                units = []
                for side, p in payloads[:40]:
                    if cls.__name__ == "CipIO":
                        units.append(bytes([side, len(p) & 0xFF]) + p[:255])
                    elif len(p) >= d.header_len and d.pdu_length(p, 0, side, False) == len(p):
                        units.append(bytes([side]) + p)
                if units:
                    out.append(bytes([k, 1]) + b"".join(units))
    return _cap(out, MAX_SEEDS)


def reader_seeds(kind: str) -> list[bytes]:
    out = []
    for path in captures():
        if (path.suffix == ".pcapng") != (kind == "pcapng"):
            continue
        data = path.read_bytes()
        out.extend(data[:n] for n in HEADS if n < len(data))
        if len(data) <= HEADS[-1]:
            out.append(data)
    return _cap(out, MAX_SEEDS)


def _cap(seeds: list[bytes], n: int) -> list[bytes]:
    """At most n seeds, a fixed sample (the same corpus every run)."""
    if len(seeds) <= n:
        return list(seeds)
    return random.Random(12).sample(seeds, n)


def build(targets: list[str], root: Path = CORPUS) -> dict[str, Path]:
    """Write each target's seeds to root/seeds/TARGET (afresh); return the folders."""
    flows = [flow_payloads(p) for p in captures()] if any(t not in ("pcap", "pcapng") for t in targets) else []
    out = {}
    for target in targets:
        if target in DISSECTORS:
            seeds = dissector_seeds(flows, target)
        elif target == "bulk":
            seeds = bulk_seeds(flows)
        else:
            seeds = reader_seeds(target)
        folder = root / "seeds" / target
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.iterdir():
            old.unlink()
        for seed in seeds:
            (folder / hashlib.sha1(seed).hexdigest()).write_bytes(seed)
        out[target] = folder
    return out
