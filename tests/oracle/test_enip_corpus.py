"""EtherNet/IP, CIP and CIP I/O on the shared corpus: field-level comparisons with tshark and with the Zeek
ICSNPP logs, and the connection join documented in docs/protocols/enip.md."""

from __future__ import annotations

import json
import re
import struct
from collections import Counter
from pathlib import Path

import duckdb
import pytest

from dissectors.cip.names import service_info
from dissectors.enip.consts import COMMANDS
from tests.helpers.enip import cpf, logical, reply, request, rr
from tests.helpers.paths import ROOT, SHARED, manifest
from tests.helpers.tshark import run

# --- the corpus against tshark ----------------------------------------------------------------------------------

ENIP_CAPTURES = [r["path"] for r in manifest() if int(r["enip"]) or int(r["cipio"])]
CIP_FRAMES = {r["path"]: int(r["cip"]) for r in manifest()}
LOGICAL = re.compile(r"(class|instance|attribute|member|connection point) (0x[0-9a-f]+|\d+)")
TSHARK_PATH = {"cip.class": "class", "cip.instance": "instance", "cip.attribute": "attribute", "cip.member": "member",
               "cip.connpoint": "connection point", "cip.symbol": "symbol"}  # fmt: skip


def _capture_id(con, capture: str) -> int:
    return con.execute("SELECT capture_id FROM captures WHERE path = ?", [str(SHARED / capture)]).fetchone()[0]


def _operations(corpus_db, capture: str, protocol: str) -> list[tuple]:
    with duckdb.connect(str(corpus_db), read_only=True) as con:
        query = ("SELECT frame, direction, function_code, status, transaction_id, quantity, target, details"
                 " FROM operations WHERE protocol = ? AND capture_id = ?")  # fmt: skip
        rows = con.execute(query, [protocol, _capture_id(con, capture)]).fetchall()
    return [(*r[:7], json.loads(r[7]) if r[7] else {}) for r in rows]


def _path_tuple(target: str | None) -> tuple:
    """sorf's target text as tshark's sequence of request path segments."""
    if not target:
        return ()
    if LOGICAL.match(target):
        return tuple((k, int(v, 0)) for k, v in LOGICAL.findall(target))
    out: list[tuple] = []
    for name, index in re.findall(r"([^.\[\]]+)|\[([0-9,]+)\]", target):
        out.extend([("symbol", name)] if name else [("member", int(i)) for i in index.split(",")])
    return tuple(out)


def _tshark_cip(path: str) -> dict[int, Counter]:
    """Per frame, every CIP message tshark decodes: (service byte, request path segments) for requests,
    (service byte, general status) for replies, from the JSON tree (duplicate keys kept)."""
    out = run(["-r", path, "-Y", "cip", "-T", "json", "-J", "frame cip cipcm cipcls"])
    frames = json.loads(out, object_pairs_hook=lambda pairs: pairs)

    def walk(pairs: list, in_path: bool, messages: list[list]) -> int:
        number = 0
        for key, value in pairs:
            if key == "frame.number":
                number = int(value)
            elif key == "cip.service":
                messages.append([int(value, 16), []])
            elif isinstance(value, list):
                number = walk(value, in_path or key.startswith("Request Path"), messages) or number
            elif messages and messages[-1][0] & 0x80 and key == "cip.genstat" and not messages[-1][1]:
                messages[-1][1].append(int(value, 16))
            elif messages and in_path and key in TSHARK_PATH and not messages[-1][0] & 0x80:
                messages[-1][1].append((TSHARK_PATH[key], value if key == "cip.symbol" else int(value, 0)))
        return number

    result: dict[int, Counter] = {}
    for frame in frames:
        messages: list[list] = []
        number = walk(dict(dict(frame)["_source"])["layers"], False, messages)
        result[number] = Counter((s, tuple(p)) for s, p in messages)
    return result


@pytest.mark.parametrize("capture", ENIP_CAPTURES)
def test_cip_paths_and_statuses_equal_tshark(corpus_db, capture):
    """Per frame: each request's service and request path (class, instance, attribute, member, symbol) and each
    reply's service and general status, embedded services included."""
    ours: dict[int, Counter] = {}
    for frame, direction, service, _st, _tid, _q, target, details in _operations(corpus_db, capture, "cip"):
        key = (
            (service | 0x80, (details["cip_status_code"],))
            if direction == "response"
            else (service, _path_tuple(target))
        )
        ours.setdefault(frame, Counter())[key] += 1
    ref = {f: c for f, c in _tshark_cip(str(SHARED / capture)).items() if c}
    assert {f: c for f, c in ours.items() if ref.get(f) != c} == {f: c for f, c in ref.items() if ours.get(f) != c}
    assert len(ref) == CIP_FRAMES[capture]  # the frames tshark decodes CIP in, as counted in MANIFEST.tsv


def _tshark_fields(capture: str, display: str, *names: str) -> list[dict[str, list[str]]]:
    out = run(["-r", str(SHARED / capture), "-Y", display, "-T", "fields", "-E", "occurrence=a", "-E", "aggregator=|",
               "-e", "frame.number", *(x for n in names for x in ("-e", n))])  # fmt: skip
    keys = ("frame.number", *names)
    return [
        {n: v.split("|") if v else [] for n, v in zip(keys, line.split("\t"), strict=True)} for line in out.splitlines()
    ]


@pytest.mark.parametrize("capture", ENIP_CAPTURES)
def test_encapsulation_headers_equal_tshark(corpus_db, capture):
    """Per frame: command, session handle, status, sender context; the connection id of connected items and
    the CIP sequence count."""
    ours: dict[int, Counter] = {}
    for frame, _d, command, _st, _tid, _q, _t, details in _operations(corpus_db, capture, "enip"):
        key = (command, details["session_handle"], details.get("enip_status_code", 0), details["sender_context"][-12:],
               details.get("connection_id"))  # fmt: skip
        ours.setdefault(frame, Counter())[key] += 1
    ref: dict[int, Counter] = {}
    for f in _tshark_fields(capture, "enip.command", "enip.command", "enip.session", "enip.status", "enip.context",
                            "enip.cpf.cai.connid"):  # fmt: skip
        cids = iter(f["enip.cpf.cai.connid"])
        headers = zip(f["enip.command"], f["enip.session"], f["enip.status"], f["enip.context"], strict=True)
        for command, session, status, context in headers:
            cid = next(cids) if int(command, 16) == 0x70 else None
            key = (int(command, 16), session, int(status, 16), context[-12:], cid)  # ListIdentity: 6-byte context
            ref.setdefault(int(f["frame.number"][0]), Counter())[key] += 1
    assert ours == ref
    seqs: dict[int, set] = {}
    for frame, _d, _s, _st, tid, *_ in _operations(corpus_db, capture, "cip"):
        if tid is not None:
            seqs.setdefault(frame, set()).add(tid)
    ref_seqs = {
        int(f["frame.number"][0]): set(map(int, f["cip.seq"])) for f in _tshark_fields(capture, "cip.seq", "cip.seq")
    }
    assert seqs == ref_seqs


@pytest.mark.parametrize("capture", [c for c in ENIP_CAPTURES if "Reboot" in c or "Upload.pcap" in c])
def test_connection_manager_fields_equal_tshark(corpus_db, capture):
    names = (
        "cip.cm.ot_connid",
        "cip.cm.to_connid",
        "cip.cm.conn_serial_num",
        "cip.cm.vendor",
        "cip.cm.orig_serial_num",
    )
    ref = Counter()
    for f in _tshark_fields(capture, "cip.cm.conn_serial_num", *names):
        ids = list(zip(f["cip.cm.ot_connid"], f["cip.cm.to_connid"], strict=True)) or [(None, None)]
        ref[(int(f["frame.number"][0]), *ids[0], int(f["cip.cm.conn_serial_num"][0], 16),
             int(f["cip.cm.vendor"][0], 16), f["cip.cm.orig_serial_num"][0])] += 1  # fmt: skip
    ours = Counter((frame, d.get("ot_connection_id"), d.get("to_connection_id"), d["connection_serial"],
                    d["originator_vendor_id"], d["originator_serial"])
                   for frame, *_, d in _operations(corpus_db, capture, "cip") if "connection_serial" in d)  # fmt: skip
    assert ours == ref and len(ref) >= 10


def test_multiple_service_packet_counts_equal_tshark(corpus_db):
    capture = "enip/EthernetIP-CIP.pcap"
    ours = Counter(
        (frame, q) for frame, _d, svc, _s, _t, q, *_ in _operations(corpus_db, capture, "cip") if svc == 0x0A
    )
    fields = _tshark_fields(capture, "cip.msp.num_services", "cip.msp.num_services")
    ref = Counter((int(f["frame.number"][0]), int(n)) for f in fields for n in f["cip.msp.num_services"])
    assert ours == ref and sum(ref.values()) == 8361


def _identities(corpus_db, capture: str) -> dict[tuple, dict]:
    with duckdb.connect(str(corpus_db), read_only=True) as con:
        query = "SELECT frame, ip, protocol, field, value FROM identities WHERE capture_id = ? AND field IS NOT NULL"
        rows = con.execute(query, [_capture_id(con, capture)]).fetchall()
    out: dict[tuple, dict] = {}
    for frame, ip, protocol, name, value in rows:
        out.setdefault((frame, ip, protocol), {})[name] = value
    return out


@pytest.mark.parametrize(
    "capture", [c for c in ENIP_CAPTURES if "enip_test" in c or "suricata" in c or "Firmware" in c]
)
def test_identities_equal_tshark(corpus_db, capture):
    """ListIdentity replies (enip.lir.*) and Identity Get_Attributes_All replies read directly (cip.id.*);
    the store writes each fact once per capture, at its first frame."""
    ref = {}
    sources = (
        ("enip", "enip.lir.vendor", ("vendor", "devtype", "prodcode", "revision", "serial", "name"), "enip.lir."),
        ("cip", "cip.id.vendor_id && !cipcm", ("vendor_id", "device_type", "product_code", "major_rev", "minor_rev",
                                                "serial_number", "product_name"), "cip.id."),
    )  # fmt: skip
    for kind, display, suffixes, prefix in sources:
        names = ("ip.src", *(prefix + n for n in suffixes))
        for f in _tshark_fields(capture, display, *names):
            v = [f[n][0] for n in names]
            rev = f"{int(v[4], 0) >> 8}.{int(v[4], 0) & 0xFF}" if kind == "enip" else f"{v[4]}.{v[5]}"
            serial, name = (v[5], v[6]) if kind == "enip" else (v[6], v[7])
            fields = {"vendor_id": str(int(v[1], 0)), "product_code": str(int(v[3], 0)), "revision": rev,
                      "serial_number": serial, "product_name": name}  # fmt: skip
            if fields not in [x for (_, ip, k), x in ref.items() if (ip, k) == (v[0], kind)]:
                ref[(int(f["frame.number"][0]), v[0], kind)] = fields  # the store keeps the first frame of a fact
    ours = {k: {n: v[n] for n in ("vendor_id", "product_code", "revision", "serial_number", "product_name")}
            for k, v in _identities(corpus_db, capture).items()}  # fmt: skip
    assert ours == ref and ref


# --- the corpus against Zeek ICSNPP -----------------------------------------------------------------------------

ZEEK = SHARED / "enip"


def _zeek(log: Path) -> list[list[str]]:
    return [line.rstrip("\n").split("\t") for line in log.open() if not line.startswith("#")]


def _hex(value) -> str:
    return "-" if value is None else f"0x{value:02x}"


@pytest.mark.parametrize("capture", ["icsnpp_enip_cip_example.pcap", "icsnpp_multiple_service_packet_cip.pcapng"])
def test_enip_and_cip_logs_equal_icsnpp(corpus_db, capture):
    """enip.log: command, length, session handle, status, sender context; cip.log: sequence count, direction,
    service code and name, general status, and for requests the class, instance and attribute (ICSNPP logs no
    path for replies, sorf copies it from the request)."""
    folder = ZEEK / (capture.rsplit(".", 1)[0] + ".zeek")
    ref = Counter(
        (r[11], r[12].upper().replace(" ", "_"), r[13], r[14], r[15], r[16]) for r in _zeek(folder / "enip.log")
    )
    ours = Counter((f"0x{c:02x}", COMMANDS[c][0], str(d["length"]), d["session_handle"],
                    "Success" if st is None else st, d["sender_context"])
                   for _f, _d, c, st, _t, _q, _tg, d in _operations(corpus_db, f"enip/{capture}", "enip"))  # fmt: skip
    assert ours == ref
    zeek_cip = _zeek(folder / "cip.log")
    ref = Counter((r[11], r[12], r[13], re.sub(r"[^A-Z]+", "_", r[14].upper()), "-" if r[15] == "-" else r[15],
                   r[19], r[21], r[22]) for r in zeek_cip)  # fmt: skip
    ours = Counter()
    for _f, direction, service, _st, seq, _q, _t, d in _operations(corpus_db, f"enip/{capture}", "cip"):
        req = direction == "request"
        name = service_info(d.get("class_id"), service)[0]
        ours[(str(seq) if seq is not None else "-", direction, f"0x{service:02x}", name,
              "-" if req else f"0x{d['cip_status_code']:02x}", _hex(d.get("class_id")) if req else "-",
              _hex(d.get("instance_id")) if req else "-",
              _hex(d.get("attribute_id")) if req else "-")] += 1  # fmt: skip
    assert ours == ref and len(zeek_cip) >= 12


def test_cip_io_and_identity_logs_equal_icsnpp(corpus_db):
    folder = ZEEK / "icsnpp_enip_cip_example.zeek"
    ref = Counter((r[11], int(r[12]), int(r[13])) for r in _zeek(folder / "cip_io.log"))
    ours = Counter((d["connection_id"], d["sequence_number"], d["data_length"])
                   for *_, d in _operations(corpus_db, "enip/icsnpp_enip_cip_example.pcap", "cip_io"))  # fmt: skip
    assert ours == ref and sum(ref.values()) == 398
    ((row),) = _zeek(folder / "cip_identity.log")
    enip_rows = _operations(corpus_db, "enip/icsnpp_enip_cip_example.pcap", "enip")
    (item,) = [d["identity"][0] for *_, d in enip_rows if "identity" in d]
    assert (item["address"], item["vendor_id"], item["vendor"], item["device_type"], item["product_code"],
            item["revision"], item["device_status"], item["serial_number"], item["product_name"],
            item["device_state"]) == (
        f"{row[12]}:{row[13]}", int(row[14]), row[15], row[17], int(row[18]), row[19], row[20], row[21], row[22],
        row[23])  # fmt: skip


# --- the connection join documented in docs/protocols/enip.md -----------------------------------------------------


def _documented_join() -> str:
    text = (ROOT / "docs" / "protocols" / "enip.md").read_text()
    return re.search(r"<!-- join -->\s*```sql\n(.*?)```", text, re.DOTALL).group(1)


def test_documented_join_ties_connected_messages_to_their_forward_open(corpus_db):
    """Connected explicit messages (SendUnitData) carry the ids a Forward Open reply assigned: the same join
    that ties UDP 2222 I/O to its connection finds the Forward Open of every connected CIP request here."""
    with duckdb.connect(str(corpus_db), read_only=True) as con:
        cid = _capture_id(con, "enip/quickdraw_CL5000EIP-Software_Upload.pcap")
        connected_cip = (
            f"io.protocol = 'cip' AND io.capture_id = {cid} AND io.details->>'connection_id' IS NOT NULL"
            " AND io.details->>'container_index' IS NULL"
        )  # top-level connected CIP messages
        sql = _documented_join()
        assert sql.count("io.protocol = 'cip_io'") == 1
        joined = con.execute(sql.replace("io.protocol = 'cip_io'", connected_cip)).fetchall()
        (connected,) = con.execute(f"SELECT count(*) FROM operations io WHERE {connected_cip}").fetchone()
    assert connected > 500 and len(joined) == connected
    assert {row[-1] for row in joined} <= {"FORWARD_OPEN", "LARGE_FORWARD_OPEN"}


def test_documented_join_ties_udp_io_to_its_forward_open(tmp_path):
    """A synthetic capture: a Forward Open over TCP 44818, then I/O on UDP 2222 both ways."""
    from scapy.all import IP, TCP, UDP, Ether, wrpcap

    from sorf.cli import main

    scanner, adapter = "10.0.0.1", "10.0.0.2"
    fields = struct.pack("<BBIIHHIB3xIHIHBB", 7, 249, 0, 0xAB000001, 9, 1, 7, 0, 10000, 0x4820, 10000, 0x4808, 0x01, 4)
    fo = request(0x54, logical(0x06, 1), fields + logical(0x04, 1) + bytes([0x2C, 150, 0x2C, 100]))
    fo_reply = reply(0x54, data=struct.pack("<IIHHIIIBB", 0xCD000002, 0xAB000001, 9, 1, 7, 10000, 10000, 0, 0))
    pkts, seq = [], {scanner: 1000, adapter: 5000}

    def tcp(src, dst, payload=b"", flags="PA"):
        sport, dport = (50000, 44818) if src == scanner else (44818, 50000)
        segment = TCP(sport=sport, dport=dport, flags=flags, seq=seq[src], ack=seq[dst])
        pkts.append(Ether() / IP(src=src, dst=dst) / segment / payload)
        seq[src] += len(payload) + (1 if "S" in flags else 0)

    tcp(scanner, adapter, flags="S")
    tcp(adapter, scanner, flags="SA")
    tcp(scanner, adapter, flags="A")
    tcp(scanner, adapter, rr(fo))
    tcp(adapter, scanner, rr(fo_reply))
    for n in range(3):
        for src, dst, cid in ((scanner, adapter, 0xCD000002), (adapter, scanner, 0xAB000001)):
            data = cpf((0x8002, struct.pack("<II", cid, n)), (0x00B1, struct.pack("<H", n) + b"\x01\x00\x00\x00"))
            pkts.append(Ether() / IP(src=src, dst=dst) / UDP(sport=2222, dport=2222) / data)
    capture = tmp_path / "io.pcap"
    wrpcap(str(capture), pkts)
    db = tmp_path / "io.duckdb"
    assert main(["ingest", str(capture), "--db", str(db)]) == 0
    with duckdb.connect(str(db), read_only=True) as con:
        joined = con.execute(_documented_join()).fetchall()
        (io_rows,) = con.execute("SELECT count(*) FROM operations WHERE protocol = 'cip_io'").fetchone()
    assert io_rows == 6 and len(joined) == 6
    path = "class 0x04 instance 1 connection point 150 connection point 100"
    assert {(row[-3], row[-1]) for row in joined} == {(path, "FORWARD_OPEN")}
