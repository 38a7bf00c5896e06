"""The API of `sorf serve` on the demo plant: the same JSON as `sorf analyse`, filters that mean
what they say (checked against SQL on the database), the rows and frames behind each delta."""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import datetime

import duckdb
import pytest
from fastapi.testclient import TestClient

from analyser.api import create_app
from analyser.deltas import analyse
from analyser.report import to_json
from analyser.schema import AnalysisJSON
from analyser.zones import load_zone_file
from sensor.ingest import ingest
from sorf.cli import main as sorf
from tests.helpers.paths import ROOT

DEMO = ROOT / "captures" / "demo-plant.pcap"
ZONES = str(ROOT / "captures" / "demo-zones.yaml")
API = "/api/v1"


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("api")
    capture = tmp / "demo-plant.pcap"  # a copy: some tests move or change it
    shutil.copy(DEMO, capture)
    db = str(tmp / "demo.duckdb")
    ingest([str(capture)], db)
    return db, capture


@pytest.fixture(scope="module")
def client(demo):
    with TestClient(create_app(demo[0], ZONES)) as c:
        yield c


@pytest.fixture(scope="module")
def expected(demo):
    return to_json(analyse(demo[0], load_zone_file(ZONES)))


def _sql(db: str, query: str, params=()) -> list[tuple]:
    con = duckdb.connect(db, read_only=True)
    try:
        return con.execute(query, params).fetchall()
    finally:
        con.close()


def _get(client, path: str) -> dict:
    r = client.get(API + path)
    assert r.status_code == 200, (path, r.text)
    return r.json()


def test_the_analysis_json_matches_its_documented_schema(expected):
    AnalysisJSON.model_validate(expected)


@pytest.mark.parametrize(
    ("path", "key"),
    [("/zones", "zones"), ("/conduits/declared", "conduits"), ("/conduits/observed", "observed_conduits"),
     ("/intra-zone", "intra_zone"), ("/deltas", "deltas")],
)  # fmt: skip
def test_served_as_sorf_analyse_writes_it(client, expected, path, key):
    body = _get(client, path)
    assert body["items"] == expected[key]
    assert body["total"] == len(expected[key])


def test_health(client, demo, expected):
    h = _get(client, "/health")
    assert h["status"] == "ok"
    assert h["window"] == {k: v for k, v in expected["window"].items() if k != "capture_files"}
    assert h["summary"] == expected["summary"]
    assert h["rows"]["flows"] == _sql(demo[0], "SELECT count(*) FROM flows")[0][0]
    assert h["rows"]["operations"] == _sql(demo[0], "SELECT count(*) FROM operations")[0][0]
    assert h["database_bytes"] > 0
    (ingested,) = _sql(demo[0], "SELECT max(ingested_at) FROM captures")[0]
    assert h["last_capture_at"] == ingested.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert h["statement"] == expected["statement"]


def test_captures_and_assets(client, demo):
    caps = _get(client, "/captures")
    assert [c["path"] for c in caps["items"]] == [str(demo[1])]
    assert caps["items"][0]["sha256"] == _sql(demo[0], "SELECT sha256 FROM captures")[0][0]
    assets = _get(client, "/assets?limit=1000")
    assert assets["total"] == _sql(demo[0], "SELECT count(*) FROM assets")[0][0]
    zones = {a["ip"]: a["zone"] for a in assets["items"]}
    assert zones["10.20.2.10"] == "control" and zones["10.20.9.50"] is None
    assert [a["ip"] for a in _get(client, "/assets?zone=supervisory")["items"]] == [
        ip for ip, z in sorted(zones.items()) if z == "supervisory"
    ]


def _ids(body: dict) -> list[str]:
    return [d["id"] for d in body["items"]]


def test_delta_filters(client, expected):
    deltas = expected["deltas"]

    def want(pred):
        return [d["id"] for d in deltas if pred(d)]

    assert _ids(_get(client, "/deltas?severity=critical")) == want(lambda d: d["severity"] == "critical")
    assert _ids(_get(client, "/deltas?severity=high&severity=info")) == want(
        lambda d: d["severity"] in ("high", "info")
    )
    assert _ids(_get(client, "/deltas?min_severity=high")) == want(lambda d: d["severity"] in ("high", "critical"))
    assert _ids(_get(client, "/deltas?category=access_exceeded")) == want(lambda d: d["category"] == "access_exceeded")
    assert _ids(_get(client, "/deltas?protocol=enip")) == want(
        lambda d: d["protocol"] == "enip" or "enip" in d["protocols"]
    )
    assert _ids(_get(client, "/deltas?access=program")) == want(lambda d: "program" in d["access"])
    control = want(lambda d: "control" in (d["from_zone"], d["to_zone"], *d["peer_zones"]))
    assert _ids(_get(client, "/deltas?zone=control")) == control and len(control) == 4
    assert _ids(_get(client, "/deltas?host=10.0.5.10")) == want(
        lambda d: any("10.0.5.10" in (p["initiator"], p["responder"]) for p in d["host_pairs"])
    )
    first = min(d["first_seen"] for d in deltas if d["first_seen"])
    assert _get(client, f"/deltas?until={first}")["total"] == 1  # the earliest delta alone
    assert _get(client, "/deltas?since=2030-01-01T00:00:00Z")["total"] == 0
    two = [deltas[3]["id"], deltas[0]["id"]]
    assert _ids(_get(client, f"/deltas?id={two[0]}&id={two[1]}")) == [two[1], two[0]]  # in severity order
    page = [_ids(_get(client, f"/deltas?limit=2&offset={o}")) for o in (0, 2, 4)]
    assert [i for p in page for i in p] == [d["id"] for d in deltas]
    assert _get(client, "/deltas?limit=2")["total"] == len(deltas)


def test_every_delta_lists_the_rows_it_counts(client, expected):
    for d in expected["deltas"]:
        body = _get(client, f"/deltas/{d['id']}?limit=1000")
        assert body["delta"] == d
        ev = body["evidence"]
        if d["category"] == "unused_conduit":
            assert ev["kind"] == "none" and ev["total"] == 0
        elif d["category"] == "access_exceeded":
            assert ev["kind"] == "operations"
            assert ev["total"] == d["operations"][d["access"][0]] == len(ev["items"])
            assert {r["access_class"] for r in ev["items"]} == set(d["access"])
            assert {(r["src_zone"], r["dst_zone"]) for r in ev["items"]} == {(d["from_zone"], d["to_zone"])}
        else:
            assert ev["kind"] == "flows" and ev["total"] == d["flows"] == len(ev["items"])
        if d["evidence"]:
            first = d["evidence"]["first"]["frame"]
            assert body["wireshark"]["first"] == f"frame.number == {first}"
            frames = {r.get("frame", r.get("first_frame")) for r in ev["items"]}
            assert first in frames or any(
                r.get("first_frame", 0) <= first <= r.get("last_frame", 0) for r in ev["items"]
            )


def test_flow_filters_match_sql(client, demo):
    db = demo[0]
    cases = [
        ("host=10.20.2.10", "src_ip = '10.20.2.10' OR dst_ip = '10.20.2.10'"),
        ("protocol=modbus", "app_protocol = 'modbus'"),
        ("port=102", "dst_port = 102"),
        ("zone=control", "src_ip LIKE '10.20.2.%' OR dst_ip LIKE '10.20.2.%'"),
        ("from_zone=supervisory&to_zone=control", "src_ip LIKE '10.20.1.%' AND dst_ip LIKE '10.20.2.%'"),
        ("since=2026-01-05T08:00:40Z", "last_ts >= TIMESTAMP '2026-01-05 08:00:40'"),
        ("until=2026-01-05T09:00:40%2B01:00", "first_ts <= TIMESTAMP '2026-01-05 08:00:40'"),
    ]
    for query, where in cases:
        want = [
            r[0]
            for r in _sql(db, f"SELECT flow_id FROM flows WHERE {where} ORDER BY first_ts, capture_id, first_frame")
        ]
        body = _get(client, f"/flows?{query}&limit=1000")
        assert [f["flow_id"] for f in body["items"]] == want, query
        assert body["total"] == len(want) > 0, query
    paged = [f["flow_id"] for o in range(0, 17, 5) for f in _get(client, f"/flows?limit=5&offset={o}")["items"]]
    assert paged == [f["flow_id"] for f in _get(client, "/flows?limit=1000")["items"]]


def test_operation_filters_match_sql(client, demo):
    db = demo[0]
    cases = [
        ("access=program", "access_class = 'program'"),
        ("function=write_single_coil", "function_name = 'WRITE_SINGLE_COIL'"),
        ("function=5&protocol=modbus", "function_code = 5 AND protocol = 'modbus'"),
        ("direction=response&protocol=dnp3", "direction = 'response' AND protocol = 'dnp3'"),
    ]
    for query, where in cases:
        want = _sql(db, f"SELECT frame, protocol FROM operations WHERE {where} ORDER BY ts, capture_id, frame")
        body = _get(client, f"/operations?{query}&limit=1000")
        assert [(o["frame"], o["protocol"]) for o in body["items"]] == [tuple(r) for r in want], query
        assert body["total"] == len(want) > 0, query
    row = _get(client, "/operations?host=10.0.5.10&access=write")["items"][0]
    assert (row["src_ip"], row["src_zone"], row["dst_zone"]) == ("10.0.5.10", "enterprise", "control")
    datetime.strptime(row["ts"], "%Y-%m-%dT%H:%M:%S.%fZ")


def test_picture(client):
    r = client.get(API + "/picture.svg")
    assert r.status_code == 200 and r.headers["content-type"].startswith("image/svg+xml")
    for zone in ("enterprise", "supervisory", "control"):
        assert zone in r.text


def _tshark_frames(path) -> list[dict]:
    out = subprocess.run(["tshark", "-r", str(path), "-T", "json", "-e", "frame.time_epoch", "-e", "frame.len"],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    return [p["_source"]["layers"] for p in json.loads(out)]


def test_evidence_pcap_from_the_api_and_the_cli_hold_the_delta_frames(client, demo, expected, tmp_path):
    d = next(x for x in expected["deltas"] if x["category"] == "access_exceeded" and "program" in x["access"])
    r = client.get(f"{API}/deltas/{d['id']}/evidence.pcap")
    assert r.status_code == 200, r.text
    assert r.content[:4] == b"\x0a\x0d\x0d\x0a"
    assert f"sorf-evidence-{d['id']}" in r.headers["content-disposition"]
    api_file = tmp_path / "api.pcapng"
    api_file.write_bytes(r.content)
    cli_file = tmp_path / "cli.pcapng"
    assert sorf(["evidence", d["id"], "--db", demo[0], "--zones", ZONES, "--out", str(cli_file)]) == 0
    assert cli_file.read_bytes() == r.content
    frames = _tshark_frames(api_file)
    source = _tshark_frames(demo[1])
    ops = _get(client, f"/deltas/{d['id']}")["evidence"]["items"]
    times = {f["frame.time_epoch"][0] for f in frames}
    for op in ops:  # every operation frame is in the file, with its original time
        assert source[op["frame"] - 1]["frame.time_epoch"][0] in times
    # the whole flow: every frame of it, as in the flows table
    (packets,) = _sql(demo[0], "SELECT sum(packets_orig + packets_resp) FROM flows WHERE flow_id IN "
                      f"({','.join(str(o['flow_id']) for o in ops)})")[0]  # fmt: skip
    assert len(frames) == packets


def test_a_delta_without_frames_and_an_unknown_one(client, expected):
    unused = next(x for x in expected["deltas"] if x["category"] == "unused_conduit")
    r = client.get(f"{API}/deltas/{unused['id']}/evidence.pcap")
    assert r.status_code == 404 and "no frames" in r.json()["error"]["message"]
    assert client.get(f"{API}/deltas/000000000000").status_code == 404
    assert client.get(f"{API}/deltas/000000000000/evidence.pcap").status_code == 404


def test_a_changed_or_moved_capture_is_refused_by_name(demo, expected, tmp_path):
    db = str(tmp_path / "copy.duckdb")
    capture = tmp_path / "plant.pcap"
    shutil.copy(DEMO, capture)
    ingest([str(capture)], db)
    d = next(x for x in expected["deltas"] if x["category"] == "undeclared_conduit")
    with TestClient(create_app(db, ZONES)) as c:
        assert c.get(f"{API}/deltas/{d['id']}/evidence.pcap").status_code == 200
        data = bytearray(capture.read_bytes())
        data[-1] ^= 0xFF
        capture.write_bytes(bytes(data))
        r = c.get(f"{API}/deltas/{d['id']}/evidence.pcap")
        assert r.status_code == 409 and str(capture) in r.json()["error"]["message"]
        capture.rename(tmp_path / "elsewhere.pcap")
        r = c.get(f"{API}/deltas/{d['id']}/evidence.pcap")
        assert r.status_code == 404 and str(capture) in r.json()["error"]["message"]


def test_an_unknown_parameter_is_an_error_not_a_filter_that_filters_nothing(client):
    r = client.get(f"{API}/deltas?severty=high")
    assert r.status_code == 422
    assert "'severty'" in r.json()["error"]["message"] and "severity" in r.json()["error"]["message"]
    assert client.get(f"{API}/flows?protocol=modbus&limit=1").status_code == 200
