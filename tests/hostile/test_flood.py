"""Many flows and many hosts (issue 12): a SYN scan from thousands of sources, as captures/make_flood.py writes it.

Ingest keeps every flow and asset (and builds the assets as the old one-step query did); analyse
answers with exact counts and a table that sums up the hosts in no zone instead of listing them.
Results only, never times: `make bench` measures the 2M-flow flood.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import make_flood
import pytest

import sensor.store
from analyser.deltas import UNZONED_DELTAS
from analyser.report import UNZONED_SHOWN
from sensor import flows
from sorf.cli import main as sorf
from tests.helpers.paths import ROOT

DEMO = ROOT / "captures" / "demo-plant.pcap"

ZONES = ROOT / "captures" / "demo-zones.yaml"  # 10.20.2.0/24 is the control zone; the 10.64/10 sources are in none

# The assets rebuild before issue 12 (one list() per address): the reference the new one must equal.
OLD_ASSETS = """
WITH sides AS (
    SELECT src_ip AS ip, src_mac AS mac, vlan, first_ts, last_ts, flow_id,
           CASE WHEN app_protocol NOT IN ('unknown', transport) THEN app_protocol || '_client' END AS role
    FROM flows
    UNION ALL
    SELECT dst_ip, dst_mac, vlan, first_ts, last_ts, flow_id,
           CASE WHEN app_protocol NOT IN ('unknown', transport) THEN app_protocol || '_server' END
    FROM flows
    UNION ALL
    SELECT ip, NULL, NULL, NULL, NULL, NULL, role FROM identities WHERE role IS NOT NULL
),
latest AS (
    SELECT ip, field, arg_max(value, ts) AS value FROM identities WHERE field IS NOT NULL GROUP BY ip, field
),
identity AS (
    SELECT ip, '{' || string_agg(to_json(field) || ':' || to_json(value), ',' ORDER BY field) || '}' AS identity
    FROM latest GROUP BY ip
)
SELECT ip, list_sort(list_distinct(list(mac))), list_sort(list_distinct(list(vlan))),
       min(first_ts), max(last_ts), count(DISTINCT flow_id),
       list_sort(list_distinct(list(role))), any_value(identity.identity)
FROM sides LEFT JOIN identity USING (ip)
GROUP BY ip ORDER BY ip
"""


def _flood(path: Path, sources: int, ports: int = 1) -> Path:
    with open(path, "wb") as f:
        assert make_flood.generate(f, sources, ports) == sources * ports
    return path


def _ingest(tmp_path: Path, pcap: Path, capsys) -> Path:
    db = tmp_path / "site.duckdb"
    assert sorf(["ingest", str(pcap), "--db", str(db), "--jobs", "1"]) == 0
    capsys.readouterr()
    return db


def _assets_match_old(db: Path) -> int:
    con = duckdb.connect(str(db), read_only=True)
    try:
        new = con.execute("SELECT * FROM assets ORDER BY ip").fetchall()
        assert new == con.execute(OLD_ASSETS).fetchall()
        return len(new)
    finally:
        con.close()


@pytest.fixture(scope="module")
def flood(tmp_path_factory):
    """20,000 one-packet SYN flows from 20,000 sources to 10.20.2.10:502, ingested."""
    tmp = tmp_path_factory.mktemp("flood")
    pcap = _flood(tmp / "flood-20k.pcap", 20_000)
    db = tmp / "site.duckdb"
    assert sorf(["ingest", str(pcap), "--db", str(db), "--jobs", "1"]) == 0
    return db


def test_generator_is_deterministic(tmp_path):
    a, b = _flood(tmp_path / "a.pcap", 300, 3), _flood(tmp_path / "b.pcap", 300, 3)
    assert a.read_bytes() == b.read_bytes()
    assert len(a.read_bytes()) == 24 + 900 * (16 + 60)
    assert make_flood.default_name(2_000_000, 1) == "flood-2m.pcap"
    assert make_flood.default_name(200_000, 10) == "flood-200k-x10.pcap"


def test_flood_keeps_every_flow_and_asset(flood):
    con = duckdb.connect(str(flood), read_only=True)
    try:
        counts = "SELECT count(*), count(DISTINCT src_ip), count(DISTINCT flow_id) FROM flows"
        assert con.execute(counts).fetchone() == (20_000, 20_000, 20_000)
        assert con.execute("SELECT count(*) FROM flows WHERE dst_ip = '10.20.2.10' AND dst_port = 502").fetchone() == (
            20_000,
        )
        assert con.execute("SELECT count(*), sum(flows) FROM assets").fetchone() == (20_001, 40_000)
        plc = con.execute("SELECT flows, macs FROM assets WHERE ip = '10.20.2.10'").fetchone()
        assert plc == (20_000, ["02:00:5e:14:02:10"])
        assert con.execute("SELECT count(*) FROM assets WHERE flows = 1 AND len(macs) = 1").fetchone() == (20_000,)
        # past MAX_SINGLE_PACKET one-packet flows the oldest were finished early: said once, with the count
        (frame, detail), *more = con.execute(
            "SELECT frame, detail FROM anomalies WHERE kind = 'flow_table_full'"
        ).fetchall()
        evicted = int(detail.split()[0])
        assert not more and frame == 1 and 20_000 - flows.MAX_SINGLE_PACKET <= evicted < 20_000
        assert detail.endswith("a later packet of one of them starts a new flow")
    finally:
        con.close()
    assert _assets_match_old(flood) == 20_001


def test_a_second_capture_rebuilds_the_flood_assets(flood, tmp_path, capsys, monkeypatch):
    """The rebuild drops and recreates assets: with a PRIMARY KEY, deleting and inserting 2M keys in one
    transaction ran out of memory. Started far too small here, it doubles its memory until it fits."""
    db = tmp_path / "site.duckdb"
    shutil.copy(flood, db)
    monkeypatch.setattr(sensor.store, "REBUILD_MEMORY_MB", 2)
    assert sorf(["ingest", str(DEMO), "--db", str(db), "--jobs", "1"]) == 0
    capsys.readouterr()
    with duckdb.connect(str(db), read_only=True) as con:
        (hosts,) = con.execute(
            "SELECT count(DISTINCT ip) FROM (SELECT src_ip AS ip FROM flows UNION SELECT dst_ip FROM flows)"
        ).fetchone()
        assert con.execute("SELECT count(*), count(DISTINCT ip) FROM assets").fetchone() == (hosts, hosts)
        assert hosts > 20_001
    assert _assets_match_old(db) == hosts


def test_sources_times_ports(tmp_path, capsys):
    db = _ingest(tmp_path, _flood(tmp_path / "flood-x10.pcap", 2_000, 10), capsys)
    con = duckdb.connect(str(db), read_only=True)
    try:
        counts = "SELECT count(*), count(DISTINCT src_ip), count(DISTINCT dst_port) FROM flows"
        assert con.execute(counts).fetchone() == (20_000, 2_000, 10)
        assert con.execute("SELECT count(*) FROM assets WHERE flows = 10").fetchone() == (2_000,)
    finally:
        con.close()
    assert _assets_match_old(db) == 2_001


def test_assets_as_before_on_the_demo_plant(tmp_path, capsys):
    """Identities, roles, VLANs and hosts with several of each: the two-step rebuild equals the old one."""
    db = _ingest(tmp_path, ROOT / "captures" / "demo-plant.pcap", capsys)
    assert _assets_match_old(db) > 10


def test_analyse_sums_up_the_unzoned_hosts(flood, capsys):
    assert sorf(["analyse", "--db", str(flood), "--zones", str(ZONES), "--format", "table"]) == 0
    table = capsys.readouterr().out
    lines = table.splitlines()
    assert len(lines) < 150
    assert "observed   20,000 flows, 20,001 hosts (20,000 in no zone)" in lines
    assert sum(1 for line in lines if "] unzoned_host  10.64." in line) == UNZONED_SHOWN
    more = [line for line in lines if line.startswith("  ... and ")]
    assert more == [
        (
            f"  ... and {20_000 - UNZONED_SHOWN:,} more hosts in no zone: {UNZONED_DELTAS - UNZONED_SHOWN:,} more"
            f" unzoned_host deltas ({UNZONED_DELTAS - UNZONED_SHOWN:,} flows) in --format json;"
            f" {20_000 - UNZONED_DELTAS:,} hosts beyond the {UNZONED_DELTAS:,} in most flows have no delta of their own"
            " (20,000 hosts in no zone in all)"
        )
    ]
    assert sorf(["analyse", "--db", str(flood), "--zones", str(ZONES), "--format", "markdown"]) == 0
    md = capsys.readouterr().out
    assert len(md.splitlines()) < 150 and f"And {20_000 - UNZONED_SHOWN:,} more hosts in no zone" in md

    assert sorf(["analyse", "--db", str(flood), "--zones", str(ZONES), "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["summary"]["unzoned_hosts"] == 20_000
    assert doc["window"]["flows"] == 20_000 and doc["window"]["hosts"] == 20_001
    unzoned = [d for d in doc["deltas"] if d["category"] == "unzoned_host"]
    assert len(unzoned) == UNZONED_DELTAS
    assert all(d["flows"] == 1 and d["protocols"] == ["modbus"] for d in unzoned)
    control = next(z for z in doc["zones"] if z["name"] == "control")
    assert control["hosts"] == 1
