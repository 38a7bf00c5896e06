"""Port knowledge: labels for flows no dissector claims, and which side is the server."""

from __future__ import annotations

import numpy as np

# (transport, port) -> label; contact protocols first, then industrial ones whose
# dissector may not claim the flow (no dissector yet, or a payload it rejects).
PORT_LABELS: dict[tuple[str, int], str] = {}


def _label(name: str, tcp: tuple[int, ...] = (), udp: tuple[int, ...] = ()) -> None:
    for p in tcp:
        PORT_LABELS[("tcp", p)] = name
    for p in udp:
        PORT_LABELS[("udp", p)] = name


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
_label("opcua", tcp=(4840,))
_label("modbus", tcp=(502,))
_label("s7comm", tcp=(102,))
_label("iec104", tcp=(2404,))
_label("dnp3", tcp=(20000,), udp=(20000,))
_label("enip", tcp=(44818,), udp=(44818, 2222))
_label("bacnet", udp=(47808,))
_label("profinet", udp=(34962, 34963, 34964))
_label("msrpc", tcp=(135,))


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
