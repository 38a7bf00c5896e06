"""Damaged and wrong input: `sorf ingest` reads up to the damage, keeps what came
before it, says where (file, byte, frame) in one line, and goes on with the other
files of the run. Damaged files are made in tmp_path by cutting and corrupting
real captures from ../shared/captures; tshark, reading the same damaged file,
is the reference for what lies before the damage.
"""

from __future__ import annotations

import gzip
import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import duckdb
import pytest

from sorf.cli import main as sorf
from tests.helpers import tshark  # the reference oracle
from tests.helpers.paths import SHARED

CAPTURES = SHARED
MODBUS = CAPTURES / "modbus" / "modbus_test.pcap"  # 2257 frames, Ethernet
S7 = CAPTURES / "s7comm" / "step7_s300_download.pcapng"  # 96 frames; a pcap, despite its name
GOOD = CAPTURES / "modbus" / "zeek_modbusSmall.pcap"

PCAP_LE = (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1")
PCAP_NS = (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")


@pytest.fixture(autouse=True)
def tshark_reads_damaged_files(monkeypatch):
    """tshark exits 2 after reading a damaged file up to the damage; its output
    up to there is what we compare with, so accept that exit code (only it)."""

    def run(args: list[str]) -> str:
        res = subprocess.run(["tshark", *args], check=False, capture_output=True, text=True)
        assert res.returncode in (0, 2), res.stderr
        if res.returncode == 2:
            assert "appears to" in res.stderr, res.stderr  # "...be damaged or corrupt" / "...have been cut short"
        return res.stdout

    monkeypatch.setattr(tshark, "run", run)


def test_corpus_is_there():
    for path in (MODBUS, S7, GOOD):
        assert path.is_file(), f"missing {path}: the tests read ../shared/captures"


# --------------------------------------------------------------------------- capture surgery


def pcap_records(data: bytes) -> tuple[list[int], int]:
    """Offsets of the complete records of a pcap, and where the first incomplete one starts."""
    endian = "<" if data[:4] in PCAP_LE else ">"
    offsets, pos = [], 24
    while pos + 16 <= len(data):
        (incl,) = struct.unpack_from(endian + "I", data, pos + 8)
        if pos + 16 + incl > len(data):
            break
        offsets.append(pos)
        pos += 16 + incl
    return offsets, pos


def _block(btype: int, body: bytes) -> bytes:
    body += b"\0" * (-len(body) % 4)
    return struct.pack("<II", btype, len(body) + 12) + body + struct.pack("<I", len(body) + 12)


def pcap_to_pcapng(data: bytes) -> tuple[bytes, list[int]]:
    """The same records as pcapng (SHB, IDB, one EPB each); returns the EPB offsets too."""
    endian = "<" if data[:4] in PCAP_LE else ">"
    nanos = data[:4] in PCAP_NS
    (link,) = struct.unpack_from(endian + "I", data, 20)
    opts = struct.pack("<HHB3x", 9, 1, 9) + struct.pack("<HH", 0, 0) if nanos else b""
    out = _block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)) + _block(
        1, struct.pack("<HHI", link, 0, 0) + opts
    )
    epbs = []
    offsets, _ = pcap_records(data)
    for pos in offsets:
        sec, frac, incl, orig = struct.unpack_from(endian + "IIII", data, pos)
        ts = sec * (10**9 if nanos else 10**6) + frac
        epbs.append(len(out))
        out += _block(
            6, struct.pack("<IIIII", 0, ts >> 32, ts & 0xFFFFFFFF, incl, orig) + data[pos + 16 : pos + 16 + incl]
        )
    return out, epbs


# Each case: file name and bytes, plus what must be reported: the status, the
# reason, the number of frames read before the damage, and where the damage is
# ("byte" and "frame"; for an unsupported link type only the first frame; neither
# for a file that is not a capture at all).


def case_truncated_record() -> dict:
    data = MODBUS.read_bytes()
    offsets, end = pcap_records(data)
    assert end == len(data)
    last = offsets[-1]
    (incl,) = struct.unpack_from("<I", data, last + 8)
    cut = data[: last + 16 + incl // 2]
    return {"name": "modbus_cut.pcap", "data": cut, "status": "damaged", "frames": len(offsets) - 1, "byte": last,
                "frame": len(offsets), "reason": f"truncated record ({incl // 2} of {incl} bytes)"}  # fmt: skip


def case_truncated_record_header() -> dict:
    data = S7.read_bytes()
    offsets, _ = pcap_records(data)
    cut = data[: offsets[60] + 7]
    return {"name": "s7_cut_header.pcap", "data": cut, "status": "damaged", "frames": 60, "byte": offsets[60],
                "frame": 61, "reason": "truncated record header (7 of 16 bytes)"}  # fmt: skip


def case_record_too_long() -> dict:
    bad = bytearray(MODBUS.read_bytes())
    offsets, _ = pcap_records(bytes(bad))
    mid = len(offsets) // 2
    struct.pack_into("<I", bad, offsets[mid] + 8, (1 << 24) + 1)  # one more than any frame sorf takes
    return {"name": "modbus_bad_length.pcap", "data": bytes(bad), "status": "damaged", "frames": mid,
                "byte": offsets[mid], "frame": mid + 1,
                "reason": f"corrupt record header (captured length {(1 << 24) + 1})"}  # fmt: skip


def case_pcapng_block_too_long() -> dict:
    ng, epbs = pcap_to_pcapng(S7.read_bytes())
    mid = len(epbs) // 2
    bad = bytearray(ng)
    struct.pack_into("<I", bad, epbs[mid] + 4, 0x7FFFFFF0)
    return {"name": "s7_bad_block.pcapng", "data": bytes(bad), "status": "damaged", "frames": mid, "byte": epbs[mid],
                "frame": mid + 1, "reason": f"corrupt block (type 0x6, length {0x7FFFFFF0})"}  # fmt: skip


def case_pcapng_block_lengths_differ() -> dict:
    ng, epbs = pcap_to_pcapng(S7.read_bytes())
    n = 70
    bad = bytearray(ng)
    (blen,) = struct.unpack_from("<I", bad, epbs[n] + 4)
    struct.pack_into("<I", bad, epbs[n] + 4, blen + 4)
    (trailer,) = struct.unpack_from("<I", bad, epbs[n] + blen)  # what is read as the trailer now
    return {"name": "s7_bad_length.pcapng", "data": bytes(bad), "status": "damaged", "frames": n, "byte": epbs[n],
                "frame": n + 1, "reason": f"corrupt block (type 0x6, lengths {blen + 4} and {trailer} "
                                          "differ)"}  # fmt: skip


def case_truncated_gzip() -> dict:
    data = MODBUS.read_bytes()
    z = gzip.compress(data)
    cut = z[: len(z) // 2]
    plain = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(cut)  # all that can be recovered
    offsets, end = pcap_records(plain)
    return {"name": "modbus_cut.pcap.gz", "data": cut, "status": "damaged", "frames": len(offsets), "byte": end,
                "frame": len(offsets) + 1, "reason": "compressed stream damaged"}  # fmt: skip


def case_unsupported_link() -> dict:
    bad = bytearray(MODBUS.read_bytes())
    struct.pack_into("<I", bad, 20, 105)
    n = len(pcap_records(bytes(bad))[0])
    return {"name": "modbus_wifi.pcap", "data": bytes(bad), "status": "unsupported", "frames": n, "byte": None,
                "frame": 1, "reason": f"unsupported link type 105 (IEEE 802.11) from frame 1: "
                                      f"{n} of {n} frames skipped"}  # fmt: skip


def case_text() -> dict:
    text = b"# capture notes\nswitch port 12 mirrored to the sensor\n"
    return {"name": "notes.pcap", "data": text, "status": "unreadable", "frames": 0, "byte": None, "frame": None,
                "reason": f"not a pcap or pcapng file (no capture magic at byte 0: 0x{text[:4].hex()})"}  # fmt: skip


def case_empty() -> dict:
    return {"name": "empty.pcap", "data": b"", "status": "unreadable", "frames": 0, "byte": None, "frame": None,
                "reason": "empty file (0 bytes)"}  # fmt: skip


CASES = {
    f.__name__[5:]: f
    for f in (case_truncated_record, case_truncated_record_header, case_record_too_long, case_pcapng_block_too_long,
              case_pcapng_block_lengths_differ, case_truncated_gzip, case_unsupported_link, case_text, case_empty)
}  # fmt: skip


def make(tmp: Path, key: str) -> tuple[Path, dict]:
    case = CASES[key]()
    path = tmp / case["name"]
    path.write_bytes(case["data"])
    return path, case


# --------------------------------------------------------------------------- helpers


def ingest(capsys, db: Path, *paths: Path, as_json: bool = False) -> tuple[int, str, str]:
    capsys.readouterr()
    argv = ["ingest", *map(str, paths), "--db", str(db)] + (["--json"] if as_json else [])
    rc = sorf(argv)
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return rc, out, err


def rows(db: Path, sql: str, *params) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql, list(params)).fetchall()
    finally:
        con.close()


def capture_row(db: Path, path: Path):
    found = rows(db, "SELECT capture_id, status, packets, error FROM captures WHERE path = ?", str(path.resolve()))
    assert len(found) <= 1
    return found[0] if found else None


def sorf_conversations(db: Path, capture_id: int) -> dict:
    with duckdb.connect(str(db), read_only=True) as con:
        return tshark.sorf_conversations(con, capture_id)


def tshark_frame_count(path: Path) -> int:
    return len(tshark.run(["-r", str(path), "-T", "fields", "-e", "frame.number"]).split())


def tshark_modbus_pdus(path: Path) -> int:
    out = tshark.run(["-r", str(path), "-Y", "mbtcp", "-T", "fields", "-e", "mbtcp.trans_id"])
    return sum(len(line.split(",")) for line in out.splitlines())


def check_message(out: str, path: Path, case: dict) -> str:
    lines = [ln for ln in out.splitlines() if f"{path}: " in ln]
    assert len(lines) == 1, out  # one line, naming the file
    line = lines[0]
    assert line.startswith(f"{case['status']}: {path}: {case['reason']}")
    if case["byte"] is not None:
        assert (
            f"at byte {case['byte']} (frame {case['frame']}); the {case['frames']} frames before it were kept" in line
        )
    elif case["frame"] is not None:
        assert f"from frame {case['frame']}" in line
    return line


# --------------------------------------------------------------------------- one bad file per run


@pytest.mark.parametrize("key", sorted(CASES))
def test_bad_file_alone(tmp_path, capsys, key):
    path, case = make(tmp_path, key)
    db = tmp_path / "sorf.duckdb"
    rc, out, err = ingest(capsys, db, path)
    assert f"{path}: " not in out  # problems go to stderr
    line = check_message(err, path, case)

    if case["status"] == "unreadable":
        assert rc == 2  # nothing could be read
        assert capture_row(db, path) is None
        assert rows(db, "SELECT count(*) FROM flows")[0][0] == 0
    else:
        capture_id, status, packets, error = capture_row(db, path)
        assert (status, packets) == (case["status"], case["frames"])
        assert error == line.split(f"{path}: ", 1)[1]
        # what sorf kept is what tshark reads from the same damaged file
        assert packets == tshark_frame_count(path)
        assert sorf_conversations(db, capture_id) == tshark.conversations(str(path))
        # and so are the Modbus PDUs (one operation each) in the frames before the damage
        modbus = rows(db, "SELECT count(*) FROM operations WHERE capture_id = ? AND protocol = 'modbus'", capture_id)[
            0
        ][0]
        assert modbus == tshark_modbus_pdus(path)
        kind = "damaged_file" if case["status"] == "damaged" else "unsupported_link_type"
        anomalies = rows(
            db, "SELECT frame, protocol, detail FROM anomalies WHERE capture_id = ? AND kind = ?", capture_id, kind
        )
        assert len(anomalies) == 1
        frame, protocol, detail = anomalies[0]
        assert (frame, protocol) == (case["frame"], "capture")
        assert (detail == error) if kind == "damaged_file" else detail == "link type 105 (IEEE 802.11)"
        assert rows(db, "SELECT count(*) FROM anomalies WHERE kind = 'internal_error'")[0][0] == 0
        if case["status"] == "damaged":
            assert rc == 1  # something was read, something was lost
            assert packets > 0 and sorf_conversations(db, capture_id), "the case must keep frames before the damage"
        else:
            assert rc == 2  # every frame skipped: nothing could be read
            assert rows(db, "SELECT count(*) FROM flows")[0][0] == 0

    # the same run as JSON: the problem is listed with the same message
    rc_json, out_json, _ = ingest(capsys, tmp_path / "json.duckdb", path, as_json=True)
    assert rc_json == rc
    summary = json.loads(out_json)
    assert summary["problems"] == [
        {"path": str(path), "status": case["status"], "message": line.split(f"{path}: ", 1)[1]}
    ]
    if case["status"] == "unreadable":
        assert (summary["captures"], summary["packets"]) == (0, 0)
    else:
        assert (summary["captures"], summary["packets"]) == (1, case["frames"])


def test_bad_files_do_not_stop_the_run(tmp_path, capsys):
    """All the bad files and a good one in one run: the good one is ingested in
    full, each bad one gets its own line, and the exit code is 1."""
    made = [make(tmp_path, key) for key in sorted(CASES)]
    bad_paths = [p for p, _ in made]
    db = tmp_path / "sorf.duckdb"
    rc, out, _ = ingest(capsys, db, bad_paths[0], GOOD, *bad_paths[1:], as_json=True)
    assert rc == 1
    summary = json.loads(out)
    problems = {p["path"]: (p["status"], p["message"]) for p in summary["problems"]}
    assert set(problems) == {str(p) for p in bad_paths}
    for path, case in made:
        status, message = problems[str(path)]
        assert status == case["status"] and message.startswith(case["reason"])
    # the good file, read after a bad one and before the others, is complete
    capture_id, status, packets, error = capture_row(db, GOOD)
    assert (status, error) == ("ok", None)
    assert packets == tshark_frame_count(GOOD)
    assert sorf_conversations(db, capture_id) == tshark.conversations(str(GOOD))
    assert rows(db, "SELECT count(*) FROM operations WHERE capture_id = ?", capture_id)[0][0] > 0
    # and so is every damaged one, up to its damage
    for path, case in made:
        found = capture_row(db, path)
        if case["status"] == "unreadable":
            assert found is None
        else:
            assert found[1:3] == (case["status"], case["frames"])
    # the text form says the same, one line per problem
    rc2, _, err2 = ingest(capsys, tmp_path / "text.duckdb", *bad_paths, GOOD)
    assert rc2 == 1
    for path, case in made:
        check_message(err2, path, case)


def test_nothing_readable_exits_2(tmp_path, capsys):
    paths = [make(tmp_path, key)[0] for key in ("text", "empty")]
    rc, _, err = ingest(capsys, tmp_path / "sorf.duckdb", *paths, tmp_path / "no_such.pcap")
    assert rc == 2
    assert f"unreadable: {tmp_path / 'no_such.pcap'}: no such file or folder" in err
    assert rows(tmp_path / "sorf.duckdb", "SELECT count(*) FROM captures")[0][0] == 0


def test_all_read_exits_0(tmp_path, capsys):
    rc, out, _ = ingest(capsys, tmp_path / "sorf.duckdb", GOOD, S7, as_json=True)
    assert rc == 0
    summary = json.loads(out)
    assert summary["problems"] == []
    assert summary["captures"] == 2
    assert summary["packets"] == tshark_frame_count(GOOD) + tshark_frame_count(S7)


def test_ingest_tunes_the_collector_for_its_process(tmp_path, capsys):
    """sensor.ingest.tune_process: the process that ingests freezes what is loaded and
    collects less often; the collector stays on."""
    import gc

    from sensor.ingest import GC_THRESHOLD

    threshold = gc.get_threshold()
    try:
        rc, _, _ = ingest(capsys, tmp_path / "sorf.duckdb", GOOD)
        assert rc == 0
        assert gc.get_threshold()[0] == GC_THRESHOLD and gc.get_freeze_count() > 0 and gc.isenabled()
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)


def test_the_command_keeps_numpy_from_starting_blas_threads():
    """sorf.cli.quiet_blas (main's first step): numpy's OpenBLAS would start a thread that spins for
    ~0.1 s of CPU; sorf makes no BLAS calls, so numpy imported after it starts none. Importing the
    sensor package sets nothing: that is the command's to do."""
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    code = "import sorf.cli; sorf.cli.quiet_blas(); import numpy, os; print(len(os.listdir('/proc/self/task')))"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.split() == ["1"]
    code = "import os, sensor, sensor.ingest; print(os.environ.get('OPENBLAS_NUM_THREADS'))"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.split() == ["None"]


# --------------------------------------------------------------------------- re-ingest, folders


def test_reingest_is_idempotent(tmp_path, capsys):
    db = tmp_path / "sorf.duckdb"
    counts = "SELECT " + ", ".join(
        f"(SELECT count(*) FROM {t})" for t in ("captures", "flows", "operations", "anomalies")
    )
    rc, out, _ = ingest(capsys, db, MODBUS)
    assert rc == 0
    first = rows(db, counts)[0]
    assert first[0] == 1 and first[1] > 0 and first[2] > 0

    rc, out, _ = ingest(capsys, db, MODBUS, as_json=True)
    assert rc == 0
    assert rows(db, counts)[0] == first
    summary = json.loads(out)
    assert (summary["captures"], summary["duplicates"], summary["packets"], summary["problems"]) == (0, 1, 0, [])
    (file,) = summary["files"]
    assert file["status"] == "duplicate" and "already ingested as capture 1" in file["message"]

    rc, out, _ = ingest(capsys, db, MODBUS)
    assert rc == 0
    assert "(1 already ingested, skipped)" in out
    assert rows(db, counts)[0] == first


def test_folder_is_searched_recursively(tmp_path, capsys):
    site = tmp_path / "site"
    (site / "cell1" / "plc").mkdir(parents=True)
    (site / "cell2").mkdir()
    (site / "README.md").write_text("# site visit\ncaptures from the cell switches\n")
    (site / "cell1" / "ports.tsv").write_text("port\tdevice\n12\tPLC\n")
    (site / "cell1" / "plc" / "notes.txt").write_text("nothing to see")
    files = {
        site / "cell1" / "plc" / "modbus.pcap": MODBUS.read_bytes(),
        site / "cell1" / "s7.pcapng": pcap_to_pcapng(S7.read_bytes())[0],
        site / "cell2" / "good.pcap.gz": gzip.compress(GOOD.read_bytes()),
        site / "cell2" / "mirror-port-3": S7.read_bytes(),  # a capture by its magic, whatever the name
    }
    for path, data in files.items():  # the S7 frames twice, as pcap and pcapng: two files, both ingested
        path.write_bytes(data)
    db = tmp_path / "sorf.duckdb"
    rc, out, err = ingest(capsys, db, site, as_json=True)
    assert rc == 0
    summary = json.loads(out)
    assert summary["problems"] == []
    assert sorted(f["path"] for f in summary["files"]) == sorted(map(str, files))
    assert "README" not in out + err and "ports.tsv" not in out + err and "notes.txt" not in out + err
    got = {Path(p): (s, n) for p, s, n in rows(db, "SELECT path, status, packets FROM captures")}
    assert got == {path.resolve(): ("ok", tshark_frame_count(path)) for path in files}


@pytest.mark.parametrize("chunk", [1, 7, 1000])
def test_damage_found_the_same_at_any_read_size(tmp_path, monkeypatch, chunk):
    """The reader refills its window in chunks (4 MiB); records and damage that
    straddle a chunk edge must come out the same, so read with tiny chunks."""
    from sensor import capture, walk

    def read(path: Path):
        state = capture.ReadState()
        try:
            packets = [(link, ts, orig, bytes(data)) for link, ts, orig, data in capture.read_packets(str(path), state)]
        except capture.CaptureError as exc:
            return str(exc)
        damage = state.damage and (state.damage.offset, state.damage.frame, state.damage.reason)
        return packets, damage, state.bytes_read

    default = walk.CHUNK
    for key in sorted(CASES):
        path, case = make(tmp_path, key)
        monkeypatch.setattr(walk, "CHUNK", default)
        whole = read(path)
        monkeypatch.setattr(walk, "CHUNK", chunk)
        small = read(path)
        assert small == whole, key
        if case["byte"] is not None:
            packets, (offset, frame, _), _ = small
            assert (len(packets), offset, frame) == (case["frames"], case["byte"], case["frame"])
        if case["data"][:2] != b"\x1f\x8b" and isinstance(small, tuple):
            # a plain file is read with pread, a gzip stream through a joined window: the same records
            gz = tmp_path / (case["name"] + ".gz")
            gz.write_bytes(gzip.compress(case["data"]))
            assert read(gz) == small, key


def test_damaged_capture_in_a_folder_is_reported_not_passed_over(tmp_path, capsys):
    site = tmp_path / "site"
    site.mkdir()
    (site / "good.pcap").write_bytes(GOOD.read_bytes())
    (site / "cut.pcap").write_bytes(MODBUS.read_bytes()[:10])  # the file header itself is cut
    (site / "empty.pcapng").write_bytes(b"")
    rc, _, err = ingest(capsys, tmp_path / "sorf.duckdb", site)
    assert rc == 1
    assert (
        f"damaged: {site / 'cut.pcap'}: pcap file header truncated at byte 0 (frame 1); "
        "no frame could be read before it" in err
    )
    assert f"unreadable: {site / 'empty.pcapng'}: empty file (0 bytes)" in err


def test_damage_before_the_first_frame_alone_exits_2(tmp_path, capsys):
    path = tmp_path / "cut.pcap"
    path.write_bytes(MODBUS.read_bytes()[:30])  # header and half a record header
    rc, _, err = ingest(capsys, tmp_path / "sorf.duckdb", path)
    assert rc == 2
    assert f"damaged: {path}: truncated record header (6 of 16 bytes) at byte 24 (frame 1)" in err


def test_reingesting_a_damaged_file_repeats_what_was_wrong(tmp_path, capsys):
    path, case = make(tmp_path, "truncated_record")
    db = tmp_path / "sorf.duckdb"
    assert ingest(capsys, db, path)[0] == 1
    rc, out, _ = ingest(capsys, db, path, as_json=True)
    (file,) = json.loads(out)["files"]
    assert rc == 0 and file["status"] == "duplicate"
    assert f"it was damaged then: {case['reason']}" in file["message"]


@pytest.mark.parametrize("make_db", [lambda p: p.mkdir(), lambda p: p.write_bytes(b"not a database at all" * 100)])
def test_unusable_database_is_a_message_not_a_traceback(tmp_path, capsys, make_db):
    db = tmp_path / "site.duckdb"
    make_db(db)
    rc, _out, err = ingest(capsys, db, GOOD)
    assert rc == 2
    assert err.startswith("sorf: ") and str(db) in err and len(err.strip().splitlines()) == 1
