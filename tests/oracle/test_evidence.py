"""Evidence export (sensor/evidence.py), checked with tshark.

Real corpus captures (and a few built from them or by tests/oracle/test_capture_formats.py:
big-endian nanosecond pcap, pcapng with several interfaces and sections, IP fragments)
are ingested; for some of their flows the evidence file is written, and tshark reads it
back: each frame's comment names its source file and frame number, and its time, lengths,
link type, timestamp resolution and bytes must be the source frame's as tshark reads it
there. The set of frames must be what a tshark display filter on the same conversation
(addresses, ports, VLAN, frame range) selects in the source, plus the frames requested.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import duckdb
import pytest

from sensor import evidence
from sensor.capture import ReadState, read_packets
from sensor.evidence import CaptureFile, EvidenceError, FlowKey, write_evidence
from sensor.ingest import ingest
from tests.helpers.paths import SHARED
from tests.oracle.test_capture_formats import CASES, pcap_file

COMMENT = re.compile(r"^sorf evidence: (.+) frame\.number == (\d+)$")
FLOW_COLUMNS = "capture_id, vlan, transport, src_ip, src_port, dst_ip, dst_port, first_frame, last_frame"

CORPUS = {
    "modbus.pcap": "modbus/iti_ModbusTCP_large.pcap",  # 14 interleaved Modbus/TCP flows
    "pcapng.pcapng": "s7comm_plus/S7-1511_db2_var1_HMI.pcap",  # a pcapng file despite its name
    "sll.pcap": "s7comm_plus/icsnpp_s7comm_plus.pcap",  # Linux cooked capture, 3 flows
    "enip.pcap": "enip/icsnpp_enip_cip_example.pcap",  # TCP and UDP (implicit I/O)
}


def big_endian_ns(source: Path) -> bytes:
    """The source's frames as a big-endian nanosecond pcap, with digits below the microsecond."""
    records = [(ts * 1000 + n % 997, data, orig) for n, (_link, ts, orig, data) in
               enumerate(read_packets(str(source), ReadState()), 1)]  # fmt: skip
    return pcap_file(records, 1, endian=">", nanos=True)


def merged(tmp: Path) -> bytes:
    """Two corpus captures merged by mergecap: a pcapng file with an SLL and an Ethernet interface.
    (Not the ENIP example: its frames captured short of their length trip sensor/walk.py's EPB check.)"""
    out = tmp / "merged.tmp"
    subprocess.run(["mergecap", "-F", "pcapng", "-w", str(out), str(SHARED / CORPUS["sll.pcap"]),
                    str(SHARED / "modbus/modicon_test.pcap")], check=True, capture_output=True)  # fmt: skip
    return out.read_bytes()


BUILT = {
    "be-ns.pcap": lambda tmp: big_endian_ns(SHARED / CORPUS["enip.pcap"]),
    "merged.pcapng": merged,
    "multi-if.pcapng": lambda tmp: CASES["pcapng-multi-if.pcapng"](),  # 4 link types, µs, ns, ms and 2^-20 s
    # two sections (`cat a.pcapng b.pcapng`), the second big-endian, with interface ids restarting;
    # not test_capture_formats' two-section case: tshark 4.0 numbers its custom block as a frame, sorf does not
    "two-sections.pcapng": lambda tmp: CASES["pcapng-multi-if.pcapng"]() + CASES["pcapng-multi-if-be.pcapng"](),
    "fragments.pcap": lambda tmp: CASES["ipv4-fragments.pcap"](),
}
NAMES = [*CORPUS, *BUILT]


class Site:
    """Captures ingested into one database: capture rows and flows, by file name."""

    def __init__(self, db: Path, paths: dict[str, Path]):
        con = duckdb.connect(str(db), read_only=True)
        rows = con.execute("SELECT capture_id, path, sha256 FROM captures").fetchall()
        self.captures = {i: CaptureFile(i, p, h) for i, p, h in rows}
        by_path = {p: i for i, p, _ in rows}
        self.ids = {name: by_path[os.path.abspath(path)] for name, path in paths.items()}
        self.flows = {i: [FlowKey(*r) for r in con.execute(
            f"SELECT {FLOW_COLUMNS} FROM flows WHERE capture_id = ? ORDER BY packets_orig + packets_resp, first_frame",
            [i]).fetchall()] for i in self.captures}  # fmt: skip
        self.packets = dict(con.execute("SELECT capture_id, packets FROM captures").fetchall())
        con.close()

    def path(self, capture_id: int) -> Path:
        return Path(self.captures[capture_id].path)


def ingested(tmp: Path, paths: dict[str, Path]) -> Site:
    db = tmp / "site.duckdb"
    assert all(r.status == "ok" for r in ingest([str(p) for p in paths.values()], str(db)))
    return Site(db, paths)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Site:
    tmp = tmp_path_factory.mktemp("evidence")
    paths = {name: SHARED / rel for name, rel in CORPUS.items()}
    for name, make in BUILT.items():
        paths[name] = tmp / name
        paths[name].write_bytes(make(tmp))
    return ingested(tmp, paths)


# --------------------------------------------------------------------------- tshark


def run_tshark(args: list[str]) -> str:
    """tshark's output; a file cut short is read up to the damage (exit status 2 then, as for any error)."""
    res = subprocess.run(["tshark", *args], capture_output=True, text=True, check=False)
    assert res.returncode == 0 or "cut short in the middle of a packet" in res.stderr, res.stderr
    return res.stdout


def tshark_frames(path: Path, frames: set[int] | None = None) -> list[dict]:
    """Per frame: number, comment, time, lengths, link type, interface, raw bytes (tshark -T json -x)."""
    args = ["-r", str(path), "-T", "json", "-x", "-j", "frame pkt_comment"]
    if frames is not None:
        args += ["-Y", f"frame.number in {{{','.join(map(str, sorted(frames)))}}}"]
    out = []
    for packet in json.loads(run_tshark(args) or "[]"):
        layers = packet["_source"]["layers"]
        f = layers["frame"]
        out.append({
            "number": int(f["frame.number"]), "comment": layers.get("pkt_comment", {}).get("frame.comment"),
            "time": f["frame.time_epoch"], "len": f["frame.len"], "cap_len": f["frame.cap_len"],
            "encap": f["frame.encap_type"], "interface": int(f.get("frame.interface_id", 0)),
            "raw": layers["frame_raw"][0],
        })  # fmt: skip
    return out


def ticks(path: Path) -> list[int]:
    """Timestamp ticks per second of each interface, as capinfos reads the file (up to any damage)."""
    res = subprocess.run(["capinfos", "-I", str(path)], capture_output=True, text=True, check=False)
    assert res.returncode == 0 or "cut short in the middle of a packet" in res.stderr, res.stderr
    out = res.stdout
    return [int(x) for x in re.findall(r"Time ticks per second = (\d+)", out)]


def conversation(flow: FlowKey) -> str:
    """A display filter for the flow's frames in its source: the same conversation in its frame range."""
    ip = "ipv6.addr" if ":" in flow.src_ip else "ip.addr"
    parts = [f"frame.number >= {flow.first_frame}", f"frame.number <= {flow.last_frame}",
             f"{ip} == {flow.src_ip}", f"{ip} == {flow.dst_ip}",
             f"vlan.id == {flow.vlan}" if flow.vlan else "!vlan"]  # fmt: skip
    if flow.transport in ("tcp", "udp"):  # not an ICMP error quoting the conversation
        parts += [f"{flow.transport}.port == {flow.src_port}", f"{flow.transport}.port == {flow.dst_port}", "!icmp"]
    else:
        parts.append(flow.transport)
    return " && ".join(parts)


def frame_numbers(path: Path, display: str) -> set[int]:
    return {int(n) for n in run_tshark(["-r", str(path), "-Y", display, "-T", "fields", "-e", "frame.number"]).split()}


def tshark_selects(path: Path, flows: list[FlowKey]) -> set[int]:
    return frame_numbers(path, " || ".join(f"({conversation(f)})" for f in flows))


def export(site: Site, flows: list[FlowKey], frames: list[tuple[int, int]], out: Path, **kw) -> evidence.EvidenceResult:
    with open(out, "wb") as f:
        return write_evidence(site.captures, flows, frames, f, **kw)


def check_against_sources(site: Site, out: Path) -> dict[int, list[int]]:
    """Every frame of the evidence file is its source frame, as tshark reads both; returns
    the source frame numbers by capture, in the order written."""
    got = tshark_frames(out)
    ids = {str(site.path(i)): i for i in site.captures}
    written = [(ids[m[1]], int(m[2])) for m in (COMMENT.match(p["comment"] or "") for p in got)]
    assert written == sorted(set(written)), "frames not in (capture, frame) order, or repeated"
    out_ticks = ticks(out)
    by_capture: dict[int, list[int]] = {}
    for i, n in written:
        by_capture.setdefault(i, []).append(n)
    for i, numbers in by_capture.items():
        source = {p["number"]: p for p in tshark_frames(site.path(i), set(numbers))}
        source_ticks = ticks(site.path(i))
        for packet, (capture_id, n) in zip(got, written, strict=True):
            if capture_id != i:
                continue
            want = source[n]
            fields = ("time", "len", "cap_len", "encap", "raw")
            assert {k: packet[k] for k in fields} == {k: want[k] for k in fields}, (site.path(i), n)
            assert out_ticks[packet["interface"]] == source_ticks[want["interface"]], (site.path(i), n)
    return by_capture


# --------------------------------------------------------------------------- tests


@pytest.mark.parametrize("name", NAMES)
def test_flow_frames_are_the_source_frames(site, tmp_path, name):
    """Three flows of a capture (the smallest), plus its first and last frame: the evidence
    holds exactly what tshark selects for those conversations, byte for byte."""
    i = site.ids[name]
    flows = site.flows[i][:3]
    assert flows
    requested = [(i, 1), (i, site.packets[i]), (i, flows[0].first_frame), (i, flows[0].last_frame)]
    result = export(site, flows, requested, tmp_path / "evidence.pcapng")
    expected = tshark_selects(site.path(i), flows) | {n for _, n in requested}
    got = check_against_sources(site, tmp_path / "evidence.pcapng")
    assert set(got[i]) == expected
    assert (result.frames, result.truncated, result.per_capture, result.missing) == (
        len(expected), False, {i: len(expected)}, ())  # fmt: skip


def test_fragmented_datagrams_count_on_their_last_fragment(site, tmp_path):
    """A flow's fragmented datagram is in the evidence as the frame that completed it, the
    frame `flows` counts (tshark's conversation filter selects just that frame too)."""
    i = site.ids["fragments.pcap"]
    udp = [f for f in site.flows[i] if (f.transport, f.dst_port) == ("udp", 2222)]
    export(site, udp, [], tmp_path / "evidence.pcapng")
    got = check_against_sources(site, tmp_path / "evidence.pcapng")[i]
    assert got == sorted(tshark_selects(site.path(i), udp))
    completed = frame_numbers(site.path(i), "ip.fragment.count && udp")  # where tshark reassembled a UDP datagram
    pieces = frame_numbers(site.path(i), "ip.flags.mf == 1 || ip.frag_offset > 0")
    assert completed and completed <= set(got) and not (pieces - completed) & set(got)


def test_frames_of_several_captures_in_one_file(site, tmp_path):
    """Flows of four captures (pcap µs, pcap big-endian ns, pcapng, Linux cooked): one file, an
    interface per source interface, each with its source's link type and resolution."""
    names = ["sll.pcap", "modbus.pcap", "be-ns.pcap", "pcapng.pcapng"]
    flows = [site.flows[site.ids[n]][0] for n in names]
    requested = [(site.ids["modbus.pcap"], 1)]
    result = export(site, flows, requested, tmp_path / "evidence.pcapng")
    got = check_against_sources(site, tmp_path / "evidence.pcapng")
    for name, flow in zip(names, flows, strict=True):
        i = site.ids[name]
        assert set(got[i]) == tshark_selects(site.path(i), [flow]) | {n for c, n in requested if c == i}
        assert result.per_capture[i] == len(got[i])
    assert sorted(ticks(tmp_path / "evidence.pcapng")) == [1_000_000, 1_000_000, 1_000_000, 1_000_000_000]


def test_gzip_copy_gives_the_same_frames(site, tmp_path):
    """A gzip copy of a capture (another capture to sorf: its own sha256) gives the same frames."""
    source = SHARED / CORPUS["enip.pcap"]
    gz = tmp_path / "enip.pcap.gz"
    gz.write_bytes(gzip.compress(source.read_bytes()))
    zipped = ingested(tmp_path, {"gz": gz})
    plain, packed = site.ids["enip.pcap"], zipped.ids["gz"]
    outs = []
    for s, i in ((site, plain), (zipped, packed)):
        out = tmp_path / f"evidence-{i}.pcapng"
        export(s, s.flows[i][1:3], [(i, 5)], out)
        outs.append([{k: v for k, v in p.items() if k != "comment"} | {"frame": p["comment"].rsplit(" ", 1)[1]}
                     for p in tshark_frames(out)])  # fmt: skip
    assert outs[0] == outs[1] and len(outs[0]) > 5


def test_moved_file_is_404(tmp_path):
    path = tmp_path / "modbus.pcap"
    shutil.copy(SHARED / "modbus/modicon_test.pcap", path)
    s = ingested(tmp_path, {"m": path})
    path.rename(tmp_path / "elsewhere.pcap")
    out = io.BytesIO()
    with pytest.raises(EvidenceError) as err:
        write_evidence(s.captures, s.flows[s.ids["m"]], [], out)
    assert err.value.status == 404
    assert s.captures[s.ids["m"]].path in str(err.value) and "moved or deleted" in str(err.value)
    assert out.getvalue() == b""  # nothing is written before every capture is verified


def test_changed_file_is_409(tmp_path):
    path = tmp_path / "modbus.pcap"
    shutil.copy(SHARED / "modbus/modicon_test.pcap", path)
    s = ingested(tmp_path, {"m": path})
    i = s.ids["m"]
    write_evidence(s.captures, [], [(i, 1)], io.BytesIO())  # verified once: its digest is remembered
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(EvidenceError) as err:
        write_evidence(s.captures, [], [(i, 1)], io.BytesIO())
    assert err.value.status == 409
    assert s.captures[i].path in str(err.value) and f"capture {i}" in str(err.value)
    assert "changed since it was ingested" in str(err.value) and s.captures[i].sha256[:12] in str(err.value)


def test_capture_still_being_ingested_is_409(site):
    i = site.ids["pcapng.pcapng"]
    pending = {i: CaptureFile(i, site.captures[i].path, None)}
    with pytest.raises(EvidenceError) as err:
        write_evidence(pending, [], [(i, 1)], io.BytesIO())
    assert err.value.status == 409 and "still being ingested" in str(err.value)


def test_digest_is_remembered_until_the_file_changes(site, tmp_path, monkeypatch):
    hashed, real = [], evidence.sha256_of
    monkeypatch.setattr(evidence, "sha256_of", lambda p: hashed.append(p) or real(p))
    monkeypatch.setattr(evidence, "_digests", {})
    path = tmp_path / "m.pcap"
    shutil.copy(SHARED / "modbus/modicon_test.pcap", path)
    s = ingested(tmp_path, {"m": path})
    i = s.ids["m"]
    for _ in range(3):
        write_evidence(s.captures, [], [(i, 1)], io.BytesIO())
    assert hashed == [s.captures[i].path]
    os.utime(path, ns=(0, 1_000_000_000))  # same bytes, other mtime: hashed again, and still good
    assert write_evidence(s.captures, [], [(i, 1)], io.BytesIO()).frames == 1
    assert len(hashed) == 2


def test_unreadable_or_unknown_captures_are_errors(site, tmp_path):
    text = tmp_path / "notes.pcap"
    text.write_text("not a capture\n")
    directory = tmp_path / "dir.pcap"
    directory.mkdir()
    cases = {
        500: CaptureFile(1, str(text), evidence.sha256_of(str(text))),  # the right digest, but no capture
        404: CaptureFile(1, str(directory), "00" * 32),
    }
    for status, cap in cases.items():
        with pytest.raises(EvidenceError) as err:
            write_evidence({1: cap}, [], [(1, 1)], io.BytesIO())
        assert err.value.status == status and cap.path in str(err.value)
    with pytest.raises(EvidenceError) as err:
        write_evidence(site.captures, [], [(999, 1)], io.BytesIO())
    assert err.value.status == 400 and "capture 999" in str(err.value)


def test_max_frames_truncates_flow_frames_not_requested_ones(site, tmp_path):
    i = site.ids["modbus.pcap"]
    flow = site.flows[i][0]  # 277 frames
    everything = sorted(tshark_selects(site.path(i), [flow]))
    requested = [(i, everything[-1]), (i, everything[-2]), (i, site.packets[i])]
    result = export(site, [flow], requested, tmp_path / "evidence.pcapng", max_frames=10)
    got = check_against_sources(site, tmp_path / "evidence.pcapng")[i]
    assert result.truncated and result.frames == 10
    assert got == everything[:7] + sorted({n for _, n in requested})  # the flow's first 7, then the requested
    result = export(site, [flow], requested, tmp_path / "few.pcapng", max_frames=1)
    assert result.truncated and result.frames == 3  # requested frames go in past the cap
    assert export(site, [flow], [], tmp_path / "all.pcapng", max_frames=len(everything)).truncated is False


def test_damaged_capture_is_read_up_to_the_damage(tmp_path):
    path = tmp_path / "cut.pcap"
    data = (SHARED / CORPUS["enip.pcap"]).read_bytes()
    path.write_bytes(data[: len(data) // 2])
    db = tmp_path / "cut.duckdb"
    assert [r.status for r in ingest([str(path)], str(db))] == ["damaged"]
    s = Site(db, {"cut": path})
    i = s.ids["cut"]
    result = export(s, s.flows[i], [(i, 1), (i, s.packets[i]), (i, 776)], tmp_path / "evidence.pcapng")
    assert result.missing == ((i, 776),) and "truncated" in result.damage[i]
    got = check_against_sources(s, tmp_path / "evidence.pcapng")[i]
    assert set(got) == tshark_selects(path, s.flows[i]) | {1, s.packets[i]}
    early = export(s, [], [(i, 2)], tmp_path / "early.pcapng")  # read no further than frame 2: no damage met
    assert (early.frames, early.missing, early.damage) == (1, (), {})
