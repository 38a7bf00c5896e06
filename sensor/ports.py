"""Protocol names and ports, in one place: every name a flow's transport and app_protocol may hold,
the port each label comes from, which of them are industrial, and which side of a flow is the server.

The dissectors declare their own names and ports (``Dissector.name``, ``ports``, ``app_protocols``);
this table adds the protocols sorf labels by port alone, and takes the dissectors' from the registry.
"""

from __future__ import annotations

import numpy as np

from dissectors import REGISTRY

# IP protocol number -> flows.transport; other protocols are written as their number
TRANSPORTS = {6: "tcp", 17: "udp", 1: "icmp", 58: "icmpv6", 2: "igmp", 47: "gre", 50: "esp", 89: "ospf", 132: "sctp"}
UNKNOWN = "unknown"  # a TCP or UDP flow no dissector claimed, on no labelled port

# (transport, port) -> label, for flows no dissector claims: contact protocols first, then
# industrial ones sorf has no dissector for
PORT_LABELS: dict[tuple[str, int], str] = {}
_INDUSTRIAL: set[str] = set()


def _label(name: str, tcp: tuple[int, ...] = (), udp: tuple[int, ...] = (), industrial: bool = False) -> None:
    for p in tcp:
        PORT_LABELS[("tcp", p)] = name
    for p in udp:
        PORT_LABELS[("udp", p)] = name
    if industrial:
        _INDUSTRIAL.add(name)


_label("ftp", tcp=(20, 21))
_label("ssh", tcp=(22,))
_label("telnet", tcp=(23,))
_label("smtp", tcp=(25, 587))
_label("dns", tcp=(53,), udp=(53,))
_label("dhcp", udp=(67, 68))
_label("tftp", udp=(69,))
_label("http", tcp=(80, 8000, 8080))
_label("kerberos", tcp=(88,), udp=(88,))
_label("ntp", udp=(123,))
_label("netbios", tcp=(139,), udp=(137, 138))
_label("snmp", udp=(161, 162))
_label("ldap", tcp=(389, 636), udp=(389,))
_label("https", tcp=(443, 8443))
_label("smb", tcp=(445,))
_label("syslog", udp=(514,), tcp=(601, 6514))
_label("mssql", tcp=(1433,))
_label("mqtt", tcp=(1883, 8883))
_label("ssdp", udp=(1900,))
_label("nfs", tcp=(2049,), udp=(2049,))
_label("mysql", tcp=(3306,))
_label("rdp", tcp=(3389,), udp=(3389,))
_label("postgresql", tcp=(5432,))
_label("mdns", udp=(5353,))
_label("llmnr", udp=(5355,))
_label("vnc", tcp=(5800, 5900, 5901, 5902))
_label("winrm", tcp=(5985, 5986))
_label("teamviewer", tcp=(5938,))
_label("msrpc", tcp=(135,))
_label("opcua", tcp=(4840,), industrial=True)
_label("iec104", tcp=(2404,), industrial=True)
_label("bacnet", udp=(47808,), industrial=True)
_label("profinet", udp=(34962, 34963, 34964), industrial=True)

# the dissectors' ports, under the dissector's name: a flow on them that the dissector does not
# claim (a payload it rejects) is still labelled with the protocol its port says
_DISSECTED = {n for d in REGISTRY.dissectors for n in (d.name, *d.app_protocols)}
for _d in REGISTRY.dissectors:
    for _t in _d.transports:
        for _p in _d.ports:
            PORT_LABELS[(_t, _p)] = _d.name

# every app_protocol a flow may carry (a flow neither TCP nor UDP carries its transport's name), and the
# industrial ones among them (docs/schema.md)
_OTHER_TRANSPORTS = set(TRANSPORTS.values()) - {"tcp", "udp"}
APP_PROTOCOLS = frozenset(PORT_LABELS.values()) | _DISSECTED | _OTHER_TRANSPORTS | {UNKNOWN}
ICS_PROTOCOLS = frozenset(_INDUSTRIAL | _DISSECTED)


def server_rank(transport: str, port: int) -> int:
    """How likely a port is the server side: 2 known service, 1 privileged, 0 ephemeral."""
    if (transport, port) in PORT_LABELS:
        return 2
    return 1 if 0 < port < 1024 else 0


def _rank_table(transport: str) -> np.ndarray:
    ranks = np.zeros(1 << 16, np.int64)
    ranks[1:1024] = 1
    ranks[[p for t, p in PORT_LABELS if t == transport]] = 2
    return ranks


_RANKS = {t: _rank_table(t) for t in ("tcp", "udp")}


def server_ranks(transport: str, ports: np.ndarray) -> np.ndarray:
    """server_rank of many TCP or UDP ports at once."""
    return _RANKS[transport][ports]
