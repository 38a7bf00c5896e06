"""One session of real traffic for the whole group: peers talking across the namespace switch while tcpdump and
`sorf sense` capture the observation port, then `sorf ingest` of tcpdump's file.

It takes a few seconds: the servers start, both captures start, each client runs its operations to completion,
sense is stopped with SIGTERM. The tests read what it leaves (the two databases, the TX counters, sense's exit).
"""

from __future__ import annotations

import os
import select
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from sorf.cli import main as sorf
from tests.helpers import netns
from tests.helpers.paths import ROOT
from tests.helpers.peers import dnp3, enip, modbus, s7

PEERS = {"modbus": modbus, "s7": s7, "enip": enip, "dnp3": dnp3}  # role -> its peer module; "hmi" runs the clients
COMMIT_S = 1  # sense commits while the Modbus connection is open (its client pauses), after, and at SIGTERM


@dataclass
class Session:
    ip: dict[str, str]  # role -> address
    live: Path  # sense's database
    offline: Path  # `sorf ingest` of tcpdump's capture
    ring: Path  # `sorf ingest` of sense's ring files
    tx: list[tuple[int, int]]  # OBS's (tx_packets, tx_bytes): at the start, sense running, after the traffic, after
    addresses: str  # OBS's addresses while sense ran
    sense_exit: int
    sense_log: str


def _await_line(process: subprocess.Popen, text: str, timeout: float = 30) -> str:
    """Read the process's stderr until a line holds `text` (it says it is capturing); its lines so far."""
    seen, deadline = "", time.monotonic() + timeout
    while text not in seen:
        left = deadline - time.monotonic()
        assert left > 0 and process.poll() is None, f"{process.args} never said {text!r}: {seen}"
        if select.select([process.stderr], [], [], left)[0]:
            seen += os.read(process.stderr.fileno(), 4096).decode()
    return seen


def _talk(rig: netns.Rig) -> None:
    """Each client does its operations against its server, one after the other; each must exit 0."""
    for role, peer in PEERS.items():
        rig.run("hmi", sys.executable, "-m", peer.__name__, "client", rig.ip[role], cwd=ROOT)


@pytest.fixture(scope="module")
def session(tmp_path_factory) -> Session:
    if reason := netns.available() or (None if shutil.which("tcpdump") else "tcpdump is not installed"):
        pytest.fail(f"tests/live need it: {reason} (.ci/run installs the tools)")
    out = tmp_path_factory.mktemp("live")
    pcap, live, offline, ring = out / "reference.pcap", out / "live.duckdb", out / "offline.duckdb", out / "ring"
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "cwd": ROOT}
    with netns.Rig(["hmi", *PEERS]) as rig:
        for role, peer in PEERS.items():
            rig.start(role, sys.executable, "-m", peer.__name__, "server", rig.ip[role], **quiet)
        for role, peer in PEERS.items():
            rig.wait_listening(role, peer.PORT)
        tx = [rig.tx_counters()]
        # immediate: each packet to tcpdump as it comes; else the ring block still open at SIGTERM is lost
        dump = rig.start("obs", "tcpdump", "--immediate-mode", "-i", netns.OBS, "-w", str(pcap), stderr=subprocess.PIPE)
        sense = rig.start("obs", sys.executable, "-m", "sorf", "sense", "--iface", netns.OBS, "--db", str(live),
                          "--sensor", "obs", "--commit-seconds", str(COMMIT_S), "--ring", str(ring),
                          stderr=subprocess.PIPE, cwd=ROOT)  # fmt: skip
        _await_line(dump, "listening on")
        log = _await_line(sense, "capturing on")
        addresses = rig.obs_addresses()
        tx.append(rig.tx_counters())
        _talk(rig)
        time.sleep(COMMIT_S)  # the last FIN's ACK on the wire, and a commit before the final one at SIGTERM
        tx.append(rig.tx_counters())
        sense.send_signal(signal.SIGTERM)
        sense_exit = sense.wait(30)
        log += sense.stderr.read().decode()
        dump.send_signal(signal.SIGTERM)
        dump.wait(10)
        tx.append(rig.tx_counters())
    assert sorf(["ingest", str(pcap), "--db", str(offline)]) == 0
    assert sorf(["ingest", str(ring), "--db", str(out / "ring.duckdb"), "--sensor", "obs"]) == 0
    return Session(rig.ip, live, offline, out / "ring.duckdb", tx, addresses, sense_exit, log)
