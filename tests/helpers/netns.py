"""A switch with a SPAN port, made of network namespaces: peers on a Linux bridge, every frame copied to an
observation interface that has no address and sends nothing.

    with Rig(["hmi", "plc"]) as rig:
        server = rig.start("plc", "python", "-m", "...")  # a process inside the plc's namespace
        rig.wait_listening("plc", 502)
        rig.run("hmi", "python", "-m", "...")
        rig.tx_counters()  # the observation interface's, read inside its namespace

Each peer is a namespace with `eth0` (10.77.0.N/24), joined by a veth pair to the bridge in the switch's
namespace. The mirror is a tc ingress filter on every bridge port (u32 matching all, `action mirred egress mirror`)
to a veth whose peer, OBS, sits in the observation namespace. Every frame a peer sends enters the bridge at its
port, so both directions of every conversation reach OBS, each frame once (mirroring each port's egress as well
would copy every unicast frame twice, as a SPAN of both directions on every port of a real switch does). IPv6 is
disabled in every namespace, so the kernels send no router solicitations or MLD reports and only the peers' own
traffic (and its ARP) is on the wire; OBS is up with no IPv4 address, so its kernel has nothing to answer with.

Names are sorf-PID-ROLE (PID: the test process), so concurrent runs do not collide; namespaces a dead
process left behind are removed when a rig starts, and a rig removes its own on exit, also when the test fails.
Needs root and iproute2 (ip, tc, ss) and sysctl.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Self

OBS = "obs0"  # the observation interface, in the observation namespace
SUBNET = "10.77.0"  # peer N (from 1) is SUBNET.N/24
_STALE = re.compile(r"sorf-(\d+)-")


def _sh(*argv: str, timeout: float = 30, cwd: Path | None = None) -> str:
    """The command's output; raises with its output if it fails."""
    done = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=timeout, cwd=cwd)
    if done.returncode:
        raise RuntimeError(f"{' '.join(argv)}: exit {done.returncode}\n{done.stdout}{done.stderr}")
    return done.stdout


def available() -> str | None:
    """Why a rig cannot be built here, or None when it can."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    missing = [tool for tool in ("ip", "tc", "ss", "sysctl") if not shutil.which(tool)]
    return f"missing {', '.join(missing)} (iproute2, procps)" if missing else None


def namespaces() -> list[str]:
    """The names of the host's network namespaces (`ip netns list`)."""
    return [line.split()[0] for line in _sh("ip", "netns", "list").splitlines() if line.strip()]


def remove_stale() -> None:
    """Delete the sorf-PID-* namespaces whose PID is no longer running, and the processes left inside them."""
    for name in namespaces():
        match = _STALE.match(name)
        if match and not Path("/proc", match.group(1)).exists():
            _delete(name)


def _delete(ns: str) -> None:
    for pid in _sh("ip", "netns", "pids", ns).split():
        os.kill(int(pid), signal.SIGKILL)
    subprocess.run(["ip", "netns", "delete", ns], check=False, capture_output=True)


class Rig:
    """The namespaces of one test: `peers` by role, a switch, and the observation namespace `obs`."""

    def __init__(self, peers: Sequence[str]):
        self.prefix = f"sorf-{os.getpid()}-"
        self.switch, self.obs = self.ns("switch"), self.ns("obs")
        self.ip = {role: f"{SUBNET}.{n}" for n, role in enumerate(peers, start=1)}
        self.processes: list[subprocess.Popen] = []
        self.made: list[str] = []

    def ns(self, role: str) -> str:
        return self.prefix + role

    def __enter__(self) -> Self:
        remove_stale()
        try:
            self._build()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
            process.wait()
        for ns in reversed(self.made):
            _delete(ns)

    def _namespace(self, role: str) -> str:
        ns = self.ns(role)
        _sh("ip", "netns", "add", ns)
        self.made.append(ns)
        for key in ("all", "default"):
            _sh("ip", "netns", "exec", ns, "sysctl", "-qw", f"net.ipv6.conf.{key}.disable_ipv6=1")
        _sh("ip", "-n", ns, "link", "set", "lo", "up")
        return ns

    def _build(self) -> None:
        switch, obs = self._namespace("switch"), self._namespace("obs")
        _sh("ip", "-n", switch, "link", "add", "br0", "type", "bridge")
        _sh("ip", "-n", switch, "link", "set", "br0", "up")
        _sh("ip", "-n", switch, "link", "add", "mirror", "type", "veth", "peer", "name", OBS, "netns", obs)
        _sh("ip", "-n", switch, "link", "set", "mirror", "up")
        _sh("ip", "netns", "exec", obs, "sysctl", "-qw", f"net.ipv6.conf.{OBS}.disable_ipv6=1")
        _sh("ip", "-n", obs, "link", "set", OBS, "up")
        for n, (role, ip) in enumerate(self.ip.items(), start=1):
            ns, port = self._namespace(role), f"port{n}"
            _sh("ip", "-n", switch, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns)
            _sh("ip", "-n", switch, "link", "set", port, "master", "br0", "up")
            _sh("ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", "eth0")
            _sh("ip", "-n", ns, "link", "set", "eth0", "up")
            _sh("tc", "-n", switch, "qdisc", "add", "dev", port, "ingress")
            every = ("protocol", "all", "u32", "match", "u32", "0", "0")  # u32: in every kernel, matchall is not
            mirror = ("action", "mirred", "egress", "mirror", "dev", "mirror")
            _sh("tc", "-n", switch, "filter", "add", "dev", port, "parent", "ffff:", *every, *mirror)

    def start(self, role: str, *argv: str, **popen) -> subprocess.Popen:
        """A process in `role`'s namespace; killed when the rig ends if it is still running."""
        process = subprocess.Popen(["ip", "netns", "exec", self.ns(role), *argv], **popen)
        self.processes.append(process)
        return process

    def run(self, role: str, *argv: str, timeout: float = 30, cwd: Path | None = None) -> str:
        """A command in `role`'s namespace, to completion: its output; raises if it fails, with its output."""
        return _sh("ip", "netns", "exec", self.ns(role), *argv, timeout=timeout, cwd=cwd)

    def wait_listening(self, role: str, port: int, timeout: float = 15) -> None:
        """Until a TCP socket listens on `port` in `role`'s namespace (asked of the kernel: nothing on the wire)."""
        deadline = time.monotonic() + timeout
        while not _sh("ip", "netns", "exec", self.ns(role), "ss", "-Hltn", f"sport = :{port}").strip():
            assert time.monotonic() < deadline, f"nothing listens on {role}:{port}"
            time.sleep(0.05)

    def tx_counters(self) -> tuple[int, int]:
        """OBS's tx_packets and tx_bytes, read from sysfs inside the observation namespace."""
        stats = f"/sys/class/net/{OBS}/statistics"
        out = _sh("ip", "netns", "exec", self.obs, "cat", f"{stats}/tx_packets", f"{stats}/tx_bytes").split()
        return int(out[0]), int(out[1])

    def obs_addresses(self) -> str:
        """Every address on OBS (IPv4 and IPv6), as `ip addr` lists them: empty for a passive port."""
        return _sh("ip", "-n", self.obs, "-o", "addr", "show", "dev", OBS).strip()
