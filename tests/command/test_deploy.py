"""deploy/: the unit passes systemd's checks, and what it confines still captures.

There is no systemd manager here to start the unit, so the test applies the unit's own settings the
way systemd 252 does: the user and capabilities with setpriv; ProtectSystem=strict, PrivateTmp's
writable /tmp and ProcSubset=pid/ProtectProc=invisible as mounts in a private namespace; and
SystemCallFilter, RestrictAddressFamilies and MemoryDenyWriteExecute as the seccomp filters systemd
builds from them (this module's ``__main__`` loads them, then execs the command). Capture runs in a
network namespace on a veth pair, so the box's own interfaces are never touched.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from tests.helpers.paths import ROOT

DEPLOY = ROOT / "deploy"
UNIT = DEPLOY / "sorf-sense.service"
NOBODY = 65534
IFF_PROMISC = 0x100
SERVICE_EXPOSURE_TARGET = 2.0


@pytest.fixture
def _root_and_tools():
    """The confinement tests need root, ip and setpriv (.ci/run installs them): without, they fail, never skip."""
    if os.geteuid() != 0 or not shutil.which("ip") or not shutil.which("setpriv"):
        pytest.fail("needs root, ip (network namespaces) and setpriv")


needs_root = pytest.mark.usefixtures("_root_and_tools")


def unit_settings(path: Path = UNIT) -> dict[str, list[str]]:
    """Each key of the unit's [Service] section with its values in order (a key may repeat)."""
    settings: dict[str, list[str]] = {}
    section = None
    for line in path.read_text().splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line
        elif section == "[Service]" and "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            settings.setdefault(key, []).append(value)
    return settings


def verifiable_unit(tmp_path: Path) -> Path:
    """The unit with ExecStart on this venv's sorf: verify checks that the binary exists."""
    sorf = Path(sys.executable).parent / "sorf"
    text = UNIT.read_text().replace("/opt/sorf/venv/bin/sorf", str(sorf))
    unit = tmp_path / UNIT.name
    unit.write_text(text)
    return unit


def test_unit_verifies(tmp_path):
    run = subprocess.run(
        ["systemd-analyze", "verify", verifiable_unit(tmp_path)], check=False, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    assert UNIT.name not in run.stdout + run.stderr, run.stdout + run.stderr


def test_security_exposure(tmp_path):
    run = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", verifiable_unit(tmp_path)],
        check=False,
        capture_output=True,
        text=True,
    )
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", run.stdout)
    assert found, run.stdout + run.stderr
    score = float(found.group(1))
    assert score <= SERVICE_EXPOSURE_TARGET, run.stdout
    assert f"**{score}**" in (DEPLOY / "README.md").read_text(), "deploy/README.md reports another score"


def test_nic_unit_verifies(tmp_path):
    unit = tmp_path / "sorf-nic@.service"
    shutil.copy(DEPLOY / unit.name, unit)
    run = subprocess.run(["systemd-analyze", "verify", tmp_path / "sorf-nic@lo.service"], check=False,
                         capture_output=True, text=True)  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert unit.name not in run.stdout + run.stderr, run.stdout + run.stderr


@needs_root
def test_nic_unit_turns_offloads_off(netns):
    """sorf-nic@v0's commands, as systemd runs them: GRO, GSO and TSO, on before, are off after."""
    subprocess.run(["ip", "netns", "exec", netns, "ethtool", "-K", "v0", "gro", "on", "gso", "on", "tso", "on"],
                   check=True)  # fmt: skip
    for line in unit_settings(DEPLOY / "sorf-nic@.service")["ExecStart"]:
        command = shlex.split(line.removeprefix("-").replace("%i", "v0").replace("$$", "$"))
        subprocess.run(["ip", "netns", "exec", netns, *command], check=not line.startswith("-"), capture_output=True)
    features = subprocess.run(["ip", "netns", "exec", netns, "ethtool", "-k", "v0"], check=True, capture_output=True,
                              text=True).stdout  # fmt: skip
    for feature in ("generic-receive-offload", "generic-segmentation-offload", "tcp-segmentation-offload"):
        assert f"{feature}: off" in features, features


def test_install_script_shellcheck():
    run = subprocess.run(["shellcheck", DEPLOY / "install.sh"], check=False, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout


@needs_root
def test_install_into_root(tmp_path):
    """install.sh into a folder, twice: the user made once, the settings kept, the unit enabled the second time."""
    root = tmp_path / "root"
    install = [str(DEPLOY / "install.sh"), "--root", str(root), "--python", sys.executable]
    subprocess.run([*install, "--no-systemctl"], check=True, capture_output=True, timeout=600)
    assert not (root / "etc/systemd/system/multi-user.target.wants").exists()
    env = root / "etc/sorf/sense.env"
    env.write_text(env.read_text().replace("SORF_IFACE=enp2s0", "SORF_IFACE=span0"))
    subprocess.run(install, check=True, capture_output=True, timeout=600)
    assert "SORF_IFACE=span0" in env.read_text()
    assert (root / "etc/systemd/system/multi-user.target.wants/sorf-sense.service").is_symlink()
    users = [line for line in (root / "etc/passwd").read_text().splitlines() if line.startswith("sorf:")]
    assert len(users) == 1 and users[0].endswith(":/var/lib/sorf:/usr/sbin/nologin"), users
    uid = int(users[0].split(":")[2])
    state = (root / "var/lib/sorf").stat()
    assert (state.st_uid, state.st_mode & 0o777) == (uid, 0o750)
    assert env.stat().st_mode & 0o777 == 0o600
    sorf = root / "opt/sorf/venv/bin/sorf"
    run = subprocess.run([sorf, "--help"], check=False, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    unit = root / "etc/systemd/system/sorf-sense.service"
    unit.write_text(unit.read_text().replace("/opt/sorf/venv/bin/sorf", str(sorf)))
    run = subprocess.run(["systemd-analyze", "verify", unit], check=False, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr


# --- the unit's confinement, applied as systemd applies it ------------------------------------------------

SCMP_ACT_ALLOW = 0x7FFF0000
SCMP_CMP_EQ, SCMP_CMP_GT, SCMP_CMP_MASKED_EQ = 4, 6, 7
PROT_WRITE, PROT_EXEC, SHM_EXEC = 0x2, 0x4, 0o100000
AF_MAX = 46  # the kernel's (linux/socket.h): a family above it does not exist


class ArgCmp(ctypes.Structure):
    _fields_ = (("arg", ctypes.c_uint), ("op", ctypes.c_int), ("a", ctypes.c_uint64), ("b", ctypes.c_uint64))


def scmp_errno(code: int) -> int:
    return 0x00050000 | code


def syscall_groups() -> dict[str, list[str]]:
    """systemd's named system call sets (`systemd-analyze syscall-filter`): each group's members."""
    out = subprocess.run(["systemd-analyze", "syscall-filter"], capture_output=True, text=True, check=True).stdout
    groups: dict[str, list[str]] = {}
    current: list[str] = []
    for line in out.splitlines():
        if line.startswith("@"):
            current = groups.setdefault(line.strip(), [])
        elif line.startswith("    ") and not line.strip().startswith("#"):
            current.append(line.strip())
    return groups


def expand(names: list[str], groups: dict[str, list[str]]) -> set[str]:
    calls: set[str] = set()
    for name in names:
        calls |= expand(groups[name], groups) if name.startswith("@") else {name}
    return calls


def allowed_syscalls(filters: list[str]) -> set[str]:
    """SystemCallFilter's lines in order: the first is the allow list, '~' lines take from it."""
    groups = syscall_groups()
    allowed: set[str] = set()
    for line in filters:
        names = line.lstrip("~").split()
        if line.startswith("~"):
            allowed -= expand(names, groups)
        else:
            allowed |= expand(names, groups)
    return allowed


class Filter:
    """One seccomp filter built with libseccomp (as systemd builds its own)."""

    def __init__(self, default_action: int):
        self.lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
        self.lib.seccomp_init.restype = ctypes.c_void_p
        self.lib.seccomp_rule_add_array.argtypes = (ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint,
                                                    ctypes.POINTER(ArgCmp))  # fmt: skip
        self.lib.seccomp_load.argtypes = (ctypes.c_void_p,)
        self.ctx = self.lib.seccomp_init(default_action)

    def rule(self, action: int, name: str, *cmps: tuple[int, int, int, int]) -> None:
        number = self.lib.seccomp_syscall_resolve_name(name.encode())
        if number < 0:  # a name of another architecture (mmap2, _llseek, ...)
            return
        array = (ArgCmp * max(len(cmps), 1))(*(ArgCmp(*c) for c in cmps))
        rc = self.lib.seccomp_rule_add_array(self.ctx, action, number, len(cmps), array)
        assert rc == 0, f"seccomp rule for {name}: {os.strerror(-rc)}"

    def load(self) -> None:
        assert self.lib.seccomp_load(self.ctx) == 0


def confine(settings: dict[str, list[str]]) -> None:
    """Load the unit's seccomp filters into this process (no_new_privs is already set by setpriv)."""
    guards = Filter(SCMP_ACT_ALLOW)
    families = {getattr(socket, f) for value in settings["RestrictAddressFamilies"] for f in value.split()}
    refuse = scmp_errno(errno.EAFNOSUPPORT)
    for family in sorted(set(range(AF_MAX + 1)) - families):
        guards.rule(refuse, "socket", (0, SCMP_CMP_EQ, family, 0))
    guards.rule(refuse, "socket", (0, SCMP_CMP_GT, AF_MAX, 0))
    if settings.get("MemoryDenyWriteExecute") == ["yes"]:
        write_exec = PROT_WRITE | PROT_EXEC
        guards.rule(scmp_errno(errno.EPERM), "mmap", (2, SCMP_CMP_MASKED_EQ, write_exec, write_exec))
        for call in ("mprotect", "pkey_mprotect"):
            guards.rule(scmp_errno(errno.EPERM), call, (2, SCMP_CMP_MASKED_EQ, PROT_EXEC, PROT_EXEC))
        guards.rule(scmp_errno(errno.EPERM), "shmat", (2, SCMP_CMP_MASKED_EQ, SHM_EXEC, SHM_EXEC))
    guards.load()
    calls = Filter(scmp_errno(errno.EPERM))  # SystemCallErrorNumber=EPERM
    for name in sorted(allowed_syscalls(settings["SystemCallFilter"])):
        calls.rule(SCMP_ACT_ALLOW, name)
    calls.load()


def sandboxed(command: list[str], state: Path, *, netns: str | None = None, caps: bool = True) -> list[str]:
    """``command`` as the unit would run it: read-only /, writable /tmp and ``state``, /proc of pids only,
    an unprivileged user with only the unit's capabilities, and the unit's seccomp filters."""
    bounding = unit_settings()["CapabilityBoundingSet"][0]
    names = ",".join("+" + c.removeprefix("CAP_").lower() for c in bounding.split()) if caps else ""
    user = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--no-new-privs",
            f"--inh-caps=-all{',' * bool(names)}{names}", f"--bounding-set=-all{',' * bool(names)}{names}",
            *([f"--ambient-caps={names}"] if names else [])]  # fmt: skip
    mounts = (f"mount --bind /tmp /tmp && mount --bind {state} {state} && mount -o remount,bind,ro / && "
              "mount -t proc -o subset=pid,hidepid=invisible proc /proc && exec \"$@\"")  # fmt: skip
    inner = [*user, sys.executable, "-m", "tests.command.test_deploy", "--", *command]
    outer = ["unshare", "--mount", "sh", "-c", mounts, "sh", *inner]
    return ["ip", "netns", "exec", netns, *outer] if netns else outer


def sandbox_env(state: Path) -> dict[str, str]:
    return {"PATH": os.environ["PATH"], "HOME": str(state), "PYTHONPATH": str(ROOT), "LANG": "C.UTF-8"}


@pytest.fixture
def state():
    """The service's StateDirectory: owned by its user, 0750 (in /tmp itself: pytest's folders are root's alone)."""
    folder = Path(tempfile.mkdtemp(prefix="sorf-deploy-", dir="/tmp"))
    os.chown(folder, NOBODY, NOBODY)
    folder.chmod(0o750)
    yield folder
    shutil.rmtree(folder)


@pytest.fixture
def netns():
    """A network namespace with a veth pair up and without addresses: v0 observes, v1 sends."""
    name = f"sorfdeploy-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        for command in (["link", "add", "v0", "type", "veth", "peer", "name", "v1"], ["link", "set", "v0", "up"],
                        ["link", "set", "v1", "up"], ["link", "set", "lo", "up"]):  # fmt: skip
            subprocess.run(["ip", "-n", name, *command], check=True)
        subprocess.run(["ip", "netns", "exec", name, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=True)


def sense_command(state: Path, *options: str) -> list[str]:
    """`sorf sense` on v0 as the unit runs it: the database and the ring in the state folder."""
    return [sys.executable, "-m", "sorf", "sense", "--iface", "v0", "--db", str(state / "sense.duckdb"),
            "--sensor", "deploy-test", "--commit-seconds", "1", *options]  # fmt: skip


SEND_FRAMES = """
import socket, sys, time
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("v1", 0))
frame = bytes.fromhex("ffffffffffff" "020000000001" "88b5") + b"sorf deploy test".ljust(46, b".")
for _ in range(int(sys.argv[1])):
    s.send(frame)
    time.sleep(0.01)
"""


def promiscuous(netns: str) -> bool:
    flags = subprocess.run(["ip", "netns", "exec", netns, "cat", "/sys/class/net/v0/flags"],
                           capture_output=True, text=True, check=True).stdout  # fmt: skip
    return bool(int(flags, 16) & IFF_PROMISC)


def wait_for(condition, seconds: float, proc: subprocess.Popen) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and proc.poll() is None:
        if condition():
            return True
        time.sleep(0.1)
    return False


@needs_root
def test_capture_needs_only_net_raw(state, netns):
    """Promiscuous capture as an unprivileged user with CAP_NET_RAW alone, inside the unit's seccomp
    filters: PACKET_ADD_MEMBERSHIP/PACKET_MR_PROMISC needs no CAP_NET_ADMIN. Then SIGTERM ends it with 0."""
    command = sense_command(state, "--ring", str(state / "ring"), "--ring-size", "1", "--ring-files", "2")
    (state / "ring").mkdir()
    os.chown(state / "ring", NOBODY, NOBODY)
    proc = subprocess.Popen(sandboxed(command, state, netns=netns), env=sandbox_env(state), cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert wait_for(lambda: promiscuous(netns), 30, proc), proc.poll() is not None and proc.communicate()
        time.sleep(1)
        subprocess.run(["ip", "netns", "exec", netns, sys.executable, "-c", SEND_FRAMES, "50"], check=True)
        time.sleep(2)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert not promiscuous(netns), "promiscuous mode outlived the capture"
    assert frames_captured(state) >= 50, err
    assert list((state / "ring").glob("*.pcap")), "no ring file"


def frames_captured(state: Path) -> int:
    import duckdb

    with contextlib.closing(duckdb.connect(str(state / "sense.duckdb"), read_only=True)) as con:
        return con.execute("SELECT coalesce(sum(packets), 0) FROM sensor_stats").fetchone()[0]


@needs_root
def test_capture_refused_without_net_raw(state, netns):
    """The same command without the capability cannot open the interface: CAP_NET_RAW is what it uses."""
    run = subprocess.run(sandboxed(sense_command(state), state, netns=netns, caps=False), env=sandbox_env(state),
                         cwd=ROOT, check=False, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert run.returncode != 0
    assert not promiscuous(netns)


PROBE = """
import errno, mmap, socket, sys
def refused(what, call, code):
    try:
        call()
    except OSError as exc:
        assert exc.errno == code, (what, exc)
    else:
        sys.exit(f"{what} was allowed")
refused("AF_NETLINK", lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_RAW), errno.EAFNOSUPPORT)
refused("writable and executable memory", lambda: mmap.mmap(-1, 4096, prot=7), errno.EPERM)
refused("setpriority (@resources)", lambda: __import__("os").setpriority(0, 0, 19), errno.EPERM)
socket.socket(socket.AF_INET, socket.SOCK_STREAM).close()
"""


@needs_root
def test_sandbox_confines(state):
    """The emulation bites: what the unit denies is denied here (else the tests above prove nothing)."""
    probe = state / "probe.py"
    probe.write_text(PROBE)
    run = subprocess.run(sandboxed([sys.executable, str(probe)], state), env=sandbox_env(state), cwd=ROOT,
                         check=False, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert run.returncode == 0, run.stderr


@needs_root
def test_engine_runs_confined(state):
    """numpy, pyarrow and DuckDB under MemoryDenyWriteExecute and the system call filter: an ingest and
    an analysis of the demo capture, as the sorf user would run them."""
    db = state / "demo.duckdb"
    sorf = [sys.executable, "-m", "sorf"]
    runs = [[*sorf, "ingest", str(ROOT / "captures" / "demo-plant.pcap"), "--db", str(db), "--jobs", "1"],
            [*sorf, "analyse", "--db", str(db), "--zones", str(ROOT / "captures" / "demo-zones.yaml"),
             "--format", "json"]]  # fmt: skip
    for command in runs:
        run = subprocess.run(sandboxed(command, state), env=sandbox_env(state), cwd=ROOT, check=False,
                             capture_output=True, text=True, timeout=300)  # fmt: skip
        assert run.returncode == 0, run.stderr
    assert '"deltas"' in run.stdout


FETCH_HEALTH = """
import sys, time, urllib.request
for _ in range(300):
    try:
        print(urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/api/v1/health", timeout=5).status)
        break
    except OSError:
        time.sleep(0.1)
"""


@needs_root
def test_page_served_confined(state, netns):
    """sense --serve: the page's server (uvicorn on asyncio, AF_INET) answers on loopback when confined."""
    port = "8844"
    command = sense_command(state, "--serve", "--zones", str(ROOT / "captures" / "demo-zones.yaml"), "--port", port)
    proc = subprocess.Popen(sandboxed(command, state, netns=netns), env=sandbox_env(state), cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        fetch = subprocess.run(["ip", "netns", "exec", netns, sys.executable, "-c", FETCH_HEALTH, port],
                               check=False, capture_output=True, text=True, timeout=60)  # fmt: skip
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert fetch.stdout.strip() == "200", err
    assert proc.returncode == 0, err


def become(argv: list[str]) -> None:
    """Run ``argv`` in this process: a Python command (``-m MODULE`` or a script) in place, since the sorf user
    may not execute this interpreter where the tests keep it (under /root); any other program by exec."""
    if argv[0] != sys.executable:
        os.execvp(argv[0], argv)
    import runpy

    if argv[1] == "-m":
        sys.argv = argv[2:]
        runpy.run_module(argv[2], run_name="__main__", alter_sys=True)
    else:
        sys.argv = argv[1:]
        runpy.run_path(argv[1], run_name="__main__")


if __name__ == "__main__":  # the sandbox's last step: load the unit's filters, then become the command
    confine(unit_settings())
    become(sys.argv[sys.argv.index("--") + 1 :])
