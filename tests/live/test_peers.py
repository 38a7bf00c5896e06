"""Real peers on real interfaces (issue 14 §4, §6): what `sorf sense` records live on the observation port equals,
row for row, what `sorf ingest` records from tcpdump's capture of the same traffic, and from sense's own ring files
(--ring); and sense sends nothing.

Frames are compared too: tcpdump and sense each open a packet socket on OBS before the first peer packet, so both
number the same frames from 1. Timestamps are compared to within TS_SLACK_US, not exactly, and this is why: a TCP
segment carries its sender's departure time (EDT, on the monotonic clock), which the kernel keeps across the veth
pairs, so for such a frame each packet socket reads the wall clock itself as the frame reaches it (skb_tstamp_cond),
and the socket opened later (sense's: the kernel hands a frame to the newest tap first) reads it 0-3 us earlier.
(A frame without a stamp of its own, ARP or UDP, is stamped once on receipt, but only while some socket on the host
asks for receive timestamps; else it too is read by each socket.)
"""

from __future__ import annotations

import duckdb
import pytest

from sensor.schema import ANOMALIES, CAPTURES, FLOWS, IDENTITIES, OPERATIONS, Table
from tests.live.conftest import PEERS, Session

TS_SLACK_US = 1000  # two sockets' clock reads of one frame are microseconds apart; another frame's time is further
# a capture's part of flow_id: flow ids are capture_id << 32 | n (sensor/flows.py), and the two capture_ids differ
FLOW_N = "flow_id & 4294967295 AS flow_id"
# what a capture row says of its packets: the rest (path, sha256, sensor, times of ingest) is the source's own
CAPTURE_COUNTS = ("link_types", "packets", "ip_packets", "malformed", "skipped", "first_ts", "last_ts")
CAPTURED = Table(CAPTURES.name, tuple(c for c in CAPTURES.columns if c[0] in CAPTURE_COUNTS))


def _rows(db, table: Table) -> tuple[list[tuple], list[tuple]]:
    """Every row of `table` in one order, in two parts: every column but capture_id and the timestamps (flow_id
    without its capture's part), and the timestamps in microseconds."""
    stamps = [name for name, sql in table.columns if sql == "TIMESTAMP"]
    rest = [FLOW_N if name == "flow_id" else name for name in table.names if name not in ("capture_id", *stamps)]
    ts = [f"epoch_us({name})" for name in stamps]
    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.sql(f"SELECT {', '.join(rest + ts)} FROM {table.name} ORDER BY ALL").fetchall()
    return [row[: len(rest)] for row in rows], [row[len(rest) :] for row in rows]


def _assert_same(live: tuple[list[tuple], list[tuple]], offline: tuple[list[tuple], list[tuple]]) -> None:
    """The same rows, their timestamps within TS_SLACK_US of each other."""
    assert live[0] == offline[0]
    apart = [
        abs(a - b) for row, other in zip(live[1], offline[1], strict=True) for a, b in zip(row, other, strict=True)
    ]
    assert max(apart, default=0) <= TS_SLACK_US, f"timestamps up to {max(apart)} us apart"


def _query(db, sql: str, *params) -> list[tuple]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(sql, params).fetchall()


def test_sense_stops_on_sigterm_with_exit_0(session: Session):
    assert session.sense_exit == 0, session.sense_log


@pytest.mark.parametrize("role", PEERS)
def test_each_client_s_operations_are_recorded(session: Session, role: str):
    """Offline, each protocol appears with exactly the requests its client made (the clients check the replies)."""
    asked = _query(session.offline, "SELECT DISTINCT protocol, function_name FROM operations "
                   "WHERE direction = 'request' AND flow_id IN (SELECT flow_id FROM flows WHERE dst_ip = ?)",
                   session.ip[role])  # fmt: skip
    assert set(asked) == PEERS[role].REQUESTS


@pytest.mark.parametrize("table", [OPERATIONS, FLOWS, IDENTITIES, ANOMALIES], ids=lambda t: t.name)
def test_live_rows_equal_offline(session: Session, table: Table):
    live, offline = _rows(session.live, table), _rows(session.offline, table)
    assert offline[0], f"no {table.name} offline: the traffic did not reach the capture"
    _assert_same(live, offline)


@pytest.mark.parametrize("table", [CAPTURES, OPERATIONS, FLOWS, IDENTITIES, ANOMALIES], ids=lambda t: t.name)
def test_live_rows_equal_the_ring_files_ingested(session: Session, table: Table):
    """With --ring, each ring file is a capture of its own: ingesting the files gives sense's rows exactly, every
    column (the captures' path, sha256 and counts too) but when the capture was ingested."""
    query = f"SELECT {', '.join(n for n in table.names if n != 'ingested_at')} FROM {table.name} ORDER BY ALL"
    assert _query(session.live, query) == _query(session.ring, query)


def test_live_capture_counts_equal_offline(session: Session):
    """Sense saw the packets tcpdump saw, no more and none dropped, in one capture of its own, under its name."""
    _assert_same(_rows(session.live, CAPTURED), _rows(session.offline, CAPTURED))
    assert _query(session.live, "SELECT sensor FROM captures") == [("obs",)]
    drops = _query(session.live, "SELECT sum(kernel_drops), sum(iface_drops), count(*) FROM sensor_stats")
    assert drops[0][:2] == (0, 0) and drops[0][2] > 0


def test_observation_port_sends_nothing(session: Session):
    """§4: OBS has no address, and its TX counters stay put from before sense starts until after it stops."""
    assert session.addresses == ""
    assert session.tx == [session.tx[0]] * 4, "(tx_packets, tx_bytes) at start, sensing, after traffic, stopped"
