"""sensor.walk: `sorf ingest` walks a big plain capture in a child process from its
start (while it imports numpy, pyarrow and DuckDB); the parent reads the windows'
bytes and the fields. The records, the damage and the tables must be exactly those
of the in-process walk, also when the child dies half way."""

from __future__ import annotations

import struct
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from sensor import capture, walk
from sorf.cli import main as sorf
from tests.helpers import tshark
from tests.helpers.paths import SHARED
from tests.hostile.test_bad_input import CASES, make
from tests.oracle.test_capture_formats import CASES as FORMATS
from tests.oracle.test_capture_formats import _block, basic_traffic, eth, pcapng_file, timed

CAPTURES = SHARED
MODBUS = CAPTURES / "modbus" / "modbus_test.pcap"
TABLES = ("captures", "flows", "operations", "identities", "anomalies", "assets")


@pytest.fixture(autouse=True)
def any_size(monkeypatch):
    monkeypatch.setattr(walk, "WALK_APART", 0)  # the corpus' small files are walked apart too


def started(path: Path) -> walk.Apart:
    """A walk of ``path`` started apart, as `sorf ingest` starts it."""
    early = walk.EarlyWalks()
    early.start(str(path))
    apart = early.take(str(path))
    assert apart is not None
    return apart


def read(path: Path, apart: bool | walk.Apart):
    """Every record and what the reader learned, walked apart (or by the walk given) or not."""
    early = started(path) if apart is True else apart or None
    state = capture.ReadState()
    try:
        chunks = list(capture.read_chunks(str(path), state, early=early))
    except capture.CaptureError as exc:
        return str(exc)
    records = [  # chunks may be cut elsewhere: each record with its frame number
        (c.first_frame + i, c.buf[d : d + n], *x)
        for c in chunks
        for i, (d, n, *x) in enumerate(
            zip(c.data.tolist(), c.incl.tolist(), c.orig.tolist(), c.ts.tolist(), c.link.tolist(), strict=True)
        )
    ]
    damage = state.damage and (state.damage.offset, state.damage.frame, state.damage.reason)
    return records, damage, state.bytes_read, state.fmt, state.link_types


@pytest.mark.parametrize("chunk", [4 << 20, 1000])
def test_walked_apart_reads_what_the_in_process_walk_reads(tmp_path, monkeypatch, chunk):
    monkeypatch.setattr(walk, "CHUNK", chunk)
    plain = [key for key in sorted(CASES) if walk.magic_kind(CASES[key]()["data"][:4])]  # not gzip, text, empty
    for key in plain:
        path, _ = make(tmp_path, key)
        assert read(path, apart=True) == read(path, apart=False), key
    assert len(plain) == 6


@pytest.mark.parametrize("name", sorted(n for n in FORMATS if not n.endswith(".gz")))
def test_the_childs_windows_joined_into_chunks_read_as_the_in_process_walk(tmp_path, monkeypatch, name):
    """The child walks small windows (CHILD_WINDOW) that the parent joins into
    chunks: offsets, interfaces and pcapng sections must carry across the joins."""
    monkeypatch.setattr(walk, "CHUNK", 4096)
    monkeypatch.setattr(walk, "CHILD_WINDOW", 512)
    path = tmp_path / name
    path.write_bytes(FORMATS[name]())
    assert read(path, apart=True) == read(path, apart=False)


def mixed_blocks() -> bytes:
    """pcapng with enhanced, simple and obsolete packet blocks mixed (each kind
    keeps its fields in other places), on one interface at 10 ns units."""
    frames = [f for _ in range(12) for f in (eth(p) for p in basic_traffic())]
    out = pcapng_file([(1, 8)], [])
    for i, (ts_ns, frame) in enumerate(timed(frames)):
        ts = ts_ns // 10
        if i % 3 == 0:
            out += _block("<", 6, struct.pack("<IIIII", 0, ts >> 32, ts & 0xFFFFFFFF, len(frame), len(frame)) + frame)
        elif i % 3 == 1:
            out += _block("<", 3, struct.pack("<I", len(frame)) + frame)
        else:
            out += _block(
                "<", 2, struct.pack("<HHIIII", 0, 0, ts >> 32, ts & 0xFFFFFFFF, len(frame), len(frame)) + frame
            )
    return out


def test_simple_and_obsolete_packet_blocks_through_joined_windows(tmp_path, monkeypatch):
    monkeypatch.setattr(walk, "CHUNK", 4096)
    monkeypatch.setattr(walk, "CHILD_WINDOW", 700)
    path = tmp_path / "mixed.pcapng"
    path.write_bytes(mixed_blocks())
    here = read(path, apart=False)
    assert read(path, apart=True) == here
    fields = tshark.run(
        ["-r", str(path), "-T", "fields", "-e", "frame.number", "-e", "frame.cap_len", "-e", "frame.len"]
    )
    oracle = [tuple(map(int, line.split("\t"))) for line in fields.splitlines()]
    assert [(frame, len(data), orig) for frame, data, orig, *_ in here[0]] == oracle
    assert len(oracle) > 3 * 4096 // 100  # several chunks


def test_sections_of_one_byte_order_with_other_interfaces_are_not_joined(tmp_path, monkeypatch):
    """Interface 0 is Ethernet in the first section and raw IP in the second: a
    chunk joining windows of both would read one section's blocks as the other's."""
    monkeypatch.setattr(walk, "CHUNK", 1 << 16)
    monkeypatch.setattr(walk, "CHILD_WINDOW", 512)
    traffic = basic_traffic() * 4
    path = tmp_path / "sections.pcapng"
    path.write_bytes(pcapng_file([(1, None)], [(0, t, eth(p)) for t, p in timed(traffic)])
                     + pcapng_file([(101, 9)], [(0, t, p) for t, p in timed(traffic)]))  # fmt: skip
    here = read(path, apart=False)
    assert read(path, apart=True) == here
    assert {link for *_, link in here[0]} == {1, 101}


def test_the_walk_goes_on_here_when_the_child_dies(tmp_path, monkeypatch):
    """The child's notes stop after two windows (as if it were killed): the parent
    walks the rest itself from the end of the last window, pcap and pcapng alike."""
    monkeypatch.setattr(walk, "CHUNK", 4096)
    real = walk.Apart.notes

    def two(self, state):
        for i, w in enumerate(real(self, state)):
            if i == 2:
                return  # self.ended stays False: the child "died"
            yield w

    for key in ("record_too_long", "pcapng_block_lengths_differ", "truncated_record"):
        path, _ = make(tmp_path, key)
        here = read(path, apart=False)
        monkeypatch.setattr(walk.Apart, "notes", two)
        cut_short = read(path, apart=True)
        monkeypatch.setattr(walk.Apart, "notes", real)
        assert cut_short == here, key
        assert len(here[0]) > 2 * 4096 // 200, key  # more than two windows' records


def test_a_capture_cut_short_after_its_walk_is_damaged_where_it_ends_now(tmp_path, monkeypatch):
    """The child walked the whole file; then the file lost its second half (a capture
    rotated under the sensor). The parent reads what is still there and says where."""
    monkeypatch.setattr(walk, "CHUNK", 4096)
    path = tmp_path / "modbus.pcap"
    data = MODBUS.read_bytes()
    path.write_bytes(data)
    apart = started(path)
    apart.proc.wait()  # every note is in the pipe
    path.write_bytes(data[: len(data) // 2])
    state = capture.ReadState()
    records = sum(len(c.ts) for c in capture.read_chunks(str(path), state, early=apart))
    assert state.damage.reason == "file changed while it was read"
    assert state.damage.frame == records + 1 and 0 < state.damage.offset <= len(data) // 2
    assert records > 100


def test_a_killed_child_costs_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(walk, "CHUNK", 4096)
    path = tmp_path / "modbus.pcap"
    path.write_bytes(MODBUS.read_bytes())
    here = read(path, apart=False)
    apart = started(path)
    apart.proc.kill()
    assert read(path, apart=apart) == here  # the early walk is taken up, finds its child dead


def test_sorf_ingest_walks_its_capture_apart_with_the_same_tables(tmp_path, monkeypatch):
    walks: list[walk.Apart] = []
    real_init = walk.Apart.__init__

    def init(self, path, size):
        walks.append(self)
        real_init(self, path, size)

    real_take = walk.EarlyWalks.take
    taken = []
    monkeypatch.setattr(walk.Apart, "__init__", init)
    monkeypatch.setattr(walk.EarlyWalks, "take", lambda self, path: taken.append(real_take(self, path)) or taken[-1])
    apart, here = tmp_path / "apart.duckdb", tmp_path / "here.duckdb"
    assert sorf(["ingest", str(MODBUS), "--db", str(apart)]) == 0
    assert [w.path for w in walks] == [str(MODBUS)] and taken == walks  # taken up by the reader
    assert walks[0].proc.returncode is not None  # and ended
    monkeypatch.setattr(walk, "WALK_APART", 1 << 62)
    assert sorf(["ingest", str(MODBUS), "--db", str(here)]) == 0
    assert [w.path for w in walks] == [str(MODBUS)]

    def dump(db: Path) -> dict:
        with duckdb.connect(str(db), read_only=True) as con:
            return {t: con.execute(f"SELECT * EXCLUDE (ingested_at) FROM {t} ORDER BY ALL" if t == "captures"
                                   else f"SELECT * FROM {t} ORDER BY ALL").fetchall() for t in TABLES}  # fmt: skip

    assert dump(apart) == dump(here)


def test_sorf_ingest_leaves_the_walk_to_workers_when_files_are_shared_out(tmp_path, monkeypatch):
    started = []
    monkeypatch.setattr(walk.EarlyWalks, "start", lambda self, path: started.append(path))
    assert sorf(["ingest", str(MODBUS), str(MODBUS), "--db", str(tmp_path / "a.duckdb"), "--jobs", "2"]) == 0
    assert started == []
    assert sorf(["ingest", str(MODBUS), str(MODBUS), "--db", str(tmp_path / "b.duckdb"), "--jobs", "1"]) == 0
    assert started == [str(MODBUS)]


def test_the_cli_imports_numpy_pyarrow_and_duckdb_only_once_it_knows_the_command():
    code = "import sys; import sorf.cli; print(sorted({'numpy', 'pyarrow', 'duckdb'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_child_runs_on_the_standard_library_alone(tmp_path):
    """python -I -S: no site-packages; the walk module must not need them."""
    arrays = tmp_path / "arrays"
    with open(arrays, "wb") as f:
        out = subprocess.run([sys.executable, "-I", "-S", walk.__file__, str(MODBUS), "4096", str(f.fileno())],
                             capture_output=True, pass_fds=(f.fileno(),), check=True)  # fmt: skip
    assert out.stderr == b"" and out.stdout
    assert arrays.stat().st_size == 8 * sum(1 for _ in capture.read_packets(str(MODBUS), capture.ReadState()))


def test_no_child_where_processes_cannot_be_started(tmp_path, monkeypatch):
    """A sandbox that forbids starting processes: the walk stays in-process."""
    import subprocess as sp

    def refuse(*args, **kwargs):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(sp, "Popen", refuse)
    early = walk.EarlyWalks()
    early.start(str(MODBUS))
    assert early.take(str(MODBUS)) is None
    db = tmp_path / "sorf.duckdb"
    assert sorf(["ingest", str(MODBUS), "--db", str(db)]) == 0
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT packets, status FROM captures").fetchall() == [(2257, "ok")]
