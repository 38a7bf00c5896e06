"""tshark as the reference oracle: conversations and per-frame fields."""

from __future__ import annotations

import re
import subprocess
from collections import defaultdict

CONV_LINE = re.compile(
    r"^(\S+):(\d+)\s+<->\s+(\S+):(\d+)\s+(\d+)\s+(\d+ \S*bytes|[\d.]+ [kMG]B)\s+(\d+)\s+(\d+ \S*bytes|[\d.]+ [kMG]B)"
)


def run(args: list[str]) -> str:
    """Run tshark with a fixed argument list (no shell) and return stdout."""
    res = subprocess.run(["tshark", *args], capture_output=True, text=True, check=True)
    return res.stdout


def conversations(path: str) -> dict[tuple, dict[tuple, list[int]]]:
    """{(transport, endpoint pair): {(src endpoint): [frames, bytes]}} from tshark.

    Frame counts come from `-z conv,tcp/udp`; tshark 4.0 prints bytes there only
    rounded ("47 kB"), so exact bytes are summed from frame.len of the same frames.
    """
    convs: dict[tuple, dict[tuple, list[int]]] = {}
    out = run(["-r", path, "-q", "-z", "conv,tcp", "-z", "conv,udp"])
    transport = None
    for line in out.splitlines():
        if line.startswith("TCP Conversations"):
            transport = "tcp"
        elif line.startswith("UDP Conversations"):
            transport = "udp"
        m = CONV_LINE.match(line)
        if not m:
            continue
        a = (m[1], int(m[2]))
        b = (m[3], int(m[4]))
        key = (transport, frozenset((a, b)))
        d = convs.setdefault(key, defaultdict(lambda: [0, 0]))
        d[b][0] += int(m[5])  # "<-": frames from B to A
        d[a][0] += int(m[7])
    fields = run([
        "-r", path, "-Y", "tcp || udp", "-T", "fields", "-E", "occurrence=f",
        "-e", "frame.len", "-e", "ip.src", "-e", "ipv6.src", "-e", "ip.dst", "-e", "ipv6.dst",
        "-e", "tcp.srcport", "-e", "tcp.dstport", "-e", "udp.srcport", "-e", "udp.dstport",
    ])  # fmt: skip
    for line in fields.splitlines():
        flen, s4, s6, d4, d6, ts, td, us, ud = line.split("\t")
        transport = "tcp" if ts else "udp"
        src = (s4 or s6, int(ts or us))
        dst = (d4 or d6, int(td or ud))
        conv = convs.get((transport, frozenset((src, dst))))
        if conv is not None:
            conv[src][1] += int(flen)
    return {k: dict(v) for k, v in convs.items()}


def sorf_conversations(con, capture_id: int | None = None) -> dict[tuple, dict[tuple, list[int]]]:
    """sorf's TCP/UDP flows in the shape of ``conversations()``, for comparison.

    Flows of one endpoint pair are summed (tshark splits and sorf ends flows on
    different rules: port reuse, idle time), per sending endpoint."""
    where = "transport IN ('tcp', 'udp')" + ("" if capture_id is None else " AND capture_id = ?")
    rows = con.execute(
        "SELECT transport, src_ip, src_port, dst_ip, dst_port, packets_orig, packets_resp, bytes_orig, bytes_resp "
        f"FROM flows WHERE {where}",
        [] if capture_id is None else [capture_id],
    ).fetchall()
    convs: dict = {}
    for transport, sip, sport, dip, dport, po, pr, bo, br in rows:
        a, b = (sip, sport), (dip, dport)
        d = convs.setdefault((transport, frozenset((a, b))), {a: [0, 0], b: [0, 0]})
        d[a][0] += po
        d[a][1] += bo
        d[b][0] += pr
        d[b][1] += br
    return convs
