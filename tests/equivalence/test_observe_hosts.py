"""The zone and kind of every IPv4 address are found in SQL (a scan brings millions of addresses); they must
be what analyser.observe.host_kind and ZoneIndex.lookup say in Python, address by address."""

from __future__ import annotations

import ipaddress
import random

import duckdb

from analyser import observe
from analyser.zones import parse_zone_file

ZONES = """\
zones:
  - {name: wide, networks: [10.0.0.0/8]}
  - {name: plant, networks: [10.20.0.0/16]}
  - {name: cell, networks: [10.20.2.0/24, 10.20.3.5]}
  - {name: pair, networks: [10.20.4.0/31]}
  - {name: thirty, networks: [10.20.5.0/30]}
  - {name: dmz, networks: [192.168.7.0/24, "fd00::/64"]}
"""


def _python(texts: list[str], index) -> dict[str, tuple[str, str | None]]:
    out = {}
    for text in texts:
        ip = ipaddress.ip_address(text)
        kind = observe.host_kind(ip, index)
        out[text] = (kind, index.lookup(ip) if kind == "host" else None)
    return out


def _sql(texts: list[str], index) -> dict[str, tuple[str, str | None]]:
    con = duckdb.connect()
    con.execute("CREATE TEMP TABLE fp AS SELECT unnest($ips) AS src_ip, unnest($ips) AS dst_ip", {"ips": texts})
    con.execute(observe.HOST_IPS, {"v4": observe._IPV4})
    others = [r[0] for r in con.execute("SELECT ip FROM _ips WHERE addr IS NULL").fetchall()]
    con.register("_hosts_other", observe._hosts_other(others, index))
    con.register("_nets", observe._nets(index))
    con.execute(observe.HOSTS_V4)
    return {ip: (kind, zone) for ip, zone, kind in con.execute("SELECT * FROM _hosts").fetchall()}


def test_sql_and_python_agree_on_every_address():
    index = parse_zone_file(ZONES, "zones.yaml").index()
    rng = random.Random(7)
    edges = ["0.0.0.0", "255.255.255.255", "224.0.0.1", "239.255.255.255", "223.255.255.255", "240.0.0.1",
             "10.0.0.0", "10.255.255.255", "10.20.255.255", "10.20.2.255", "10.20.2.0", "10.20.3.5", "10.20.3.4",
             "10.20.4.0", "10.20.4.1", "10.20.5.3", "10.20.5.2", "192.168.7.255", "192.168.8.1", "8.8.8.8",
             "fd00::1", "fd00::ffff", "fe80::1", "ff02::1", "::"]  # fmt: skip
    near = [
        str(ipaddress.ip_address(e) + d)
        for e in edges[:20]
        for d in (-1, 1)
        if 0 < int(ipaddress.ip_address(e)) + d < 2**32
    ]
    randoms = [str(ipaddress.IPv4Address(rng.getrandbits(32))) for _ in range(2000)]
    inside = [f"10.20.{rng.randrange(8)}.{rng.randrange(256)}" for _ in range(2000)]
    texts = sorted(set(edges + near + randoms + inside))
    assert _sql(texts, index) == _python(texts, index)
