"""`make bench-live`: `sorf sense` on a veth at set rates, next to tcpdump on the same replay (issue 14, §7);
`--hold`: sense for an hour at one rate and see whether its memory stays flat (§2).

Two network namespaces (sorf-bench-PID-tx, -rx) are joined by a veth pair, IPv6 off at both ends and no address
on either, so the kernel puts nothing of its own on the wire. tcpreplay sends captures/bench-1m.pcap into the tx
end (preloaded into memory, looped with --unique-ip so that every loop's flows are new ones) while the capturing
process reads the rx end. Per rate, sorf sense and then tcpdump (-w /dev/null, the same kernel buffer) each
capture a replay of their own. A capture is stopped (SIGTERM) once it has gone idle after the replay, so a process
that fell behind drains its kernel buffer first: the seconds it took are printed. CPU is the process's utime +
stime over the replay and the drain (/proc/PID/stat), peak RSS its own (wait4). One run each: the machine is
shared, so read sorf against tcpdump in the same run, not against another day's numbers.

    python -m sensor.livebench [--rates 20000,50000,100000,200000] [--seconds 20] [--ring]
    python -m sensor.livebench --hold 3600 --rate 20000 [--every 300]

Needs root, iproute2, tcpreplay and tcpdump. The namespaces are removed at the end, also on failure, and those a
dead run left behind are removed when a run starts.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Self

from .bench import MB, compile_sorf, ensure_generated, verdict

ROOT = Path(__file__).resolve().parent.parent
CAPTURE = ROOT / "captures" / "bench-1m.pcap"
CAPTURE_PACKETS = 1_000_000
PREFIX = "sorf-bench-"
TX, RX = "sorf-bench-tx", "sorf-bench-rx"  # the veth's two ends, each in its namespace of the same role
STALE = re.compile(PREFIX + r"(\d+)-")
TARGET_PPS = 100_000  # sustained with no drops (§7)
BUFFER_MB = 64  # both captures' kernel buffer: sense's default
IDLE_CPU = 0.05  # a capture is idle (has drained its buffer) when it uses under this share of a core
MEMORY_MAX = 1 << 30  # deploy/sorf-sense.service's MemoryMax
WEEKS_H = 4 * 7 * 24  # "flat": at the slope measured, RSS would not reach MemoryMax within four weeks
CLK_TCK = os.sysconf("SC_CLK_TCK")
# tcpreplay's summary: packets sent, seconds sending, packets/s reached, sends that failed (and were retried)
PARSE_REPLAY = (r"Actual: (\d+) packets", r"sent in ([\d.]+) seconds", r"([\d.]+) pps", r"Failed packets:\s+(\d+)")


def _sh(*argv: str) -> str:
    done = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=30)
    if done.returncode:
        raise RuntimeError(f"{' '.join(argv)}: exit {done.returncode}: {done.stdout}{done.stderr}")
    return done.stdout


def _delete(ns: str) -> None:
    """The namespace, and any process left in it."""
    pids = subprocess.run(["ip", "netns", "pids", ns], check=False, capture_output=True, text=True).stdout
    for pid in pids.split():
        os.kill(int(pid), signal.SIGKILL)
    subprocess.run(["ip", "netns", "delete", ns], check=False, capture_output=True)


class Veth:
    """The two namespaces and the veth between them, removed on exit."""

    def __init__(self) -> None:
        self.ns = {end: f"{PREFIX}{os.getpid()}-{end[-2:]}" for end in (TX, RX)}

    def __enter__(self) -> Self:
        for name in _sh("ip", "netns", "list").split("\n"):
            if (m := STALE.match(name)) and not Path("/proc", m.group(1)).exists():
                _delete(name.split()[0])
        try:
            for ns in self.ns.values():
                _sh("ip", "netns", "add", ns)
                for key in ("all", "default"):
                    _sh("ip", "netns", "exec", ns, "sysctl", "-qw", f"net.ipv6.conf.{key}.disable_ipv6=1")
            _sh("ip", "-n", self.ns[TX], "link", "add", TX, "type", "veth", "peer", "name", RX, "netns", self.ns[RX])
            for end, ns in self.ns.items():
                _sh("ip", "netns", "exec", ns, "sysctl", "-qw", f"net.ipv6.conf.{end}.disable_ipv6=1")
                _sh("ip", "-n", ns, "link", "set", end, "up")
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        for ns in self.ns.values():
            _delete(ns)

    def start(self, end: str, *argv: str, ready: str | None = None) -> subprocess.Popen:
        """A process in `end`'s namespace (`ip netns exec` execs it: the pid is the process's own); if `ready`,
        once its stderr has said so."""
        stderr = subprocess.PIPE if ready else subprocess.DEVNULL
        process = subprocess.Popen(["ip", "netns", "exec", self.ns[end], *argv], stdout=subprocess.PIPE,
                                   stderr=stderr, cwd=ROOT)  # fmt: skip
        seen, deadline = "", time.monotonic() + 60
        while ready and ready not in seen:
            assert process.stderr is not None, "stderr is piped when a line is awaited"
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(f"{argv[0]} never said {ready!r}: {seen}{process.stderr.read().decode()}")
            if select.select([process.stderr], [], [], 1)[0]:
                seen += os.read(process.stderr.fileno(), 4096).decode()
        return process


def cpu_seconds(pid: int) -> float:
    """utime + stime of the process (all its threads) so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_now(pid: int) -> int:
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def drain(pid: int, limit_s: float = 120) -> float:
    """Seconds until the process is idle (it has read what the kernel held for it), at most `limit_s`."""
    start = time.monotonic()
    while time.monotonic() - start < limit_s:
        before = cpu_seconds(pid)
        time.sleep(0.5)
        if cpu_seconds(pid) - before < IDLE_CPU * 0.5:
            break
    return time.monotonic() - start


def stop(process: subprocess.Popen) -> tuple[int, str]:
    """SIGTERM, and wait: its peak RSS (wait4) and stderr."""
    process.send_signal(signal.SIGTERM)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)  # reaped here: keep Popen from waiting again
    text = process.stderr.read().decode() if process.stderr else ""
    if process.returncode:
        raise RuntimeError(f"{process.args!r} exited {process.returncode}: {text}")
    return usage.ru_maxrss * 1024, text


@dataclass
class Replay:
    sent: int
    pps: float
    failed: int
    seconds: float  # sending (tcpreplay's count; its preload before is not in it)
    cpu: float  # tcpreplay's own CPU seconds


def replay(veth: Veth, rate: int, seconds: float, loop_forever: bool = False) -> subprocess.Popen:
    """tcpreplay at `rate` packets/s for `seconds` (a new set of flows each pass over the capture)."""
    packets = int(rate * seconds)
    loops = ["--loop", "0", "--duration", str(int(seconds))] if loop_forever else \
            ["--loop", str(math.ceil(packets / CAPTURE_PACKETS) + 1), "--limit", str(packets)]  # fmt: skip
    argv = ["tcpreplay", "-i", TX, "--pps", str(rate), "--preload-pcap", "--unique-ip", "--no-flow-stats", *loops]
    return veth.start(TX, *argv, str(CAPTURE))


def finish_replay(process: subprocess.Popen) -> Replay:
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    out = process.stdout.read().decode() if process.stdout else ""
    sent, secs, rated, failed = (re.search(p, out) for p in PARSE_REPLAY)
    if process.returncode or not (sent and secs and rated and failed):
        raise RuntimeError(f"tcpreplay exited {process.returncode}: {out}")
    cpu = usage.ru_utime + usage.ru_stime
    return Replay(int(sent[1]), float(rated[1]), int(failed[1]), float(secs[1]), cpu)


@dataclass
class Run:
    """One capture of one replay."""

    replay: Replay
    captured: int
    kernel_drops: int
    iface_drops: int
    cpu: float  # seconds, over the replay and the drain
    wall: float  # those seconds: tcpreplay's sending and the drain
    drain: float  # seconds from the replay's end until the capture was idle
    rss: int  # peak


def captured(veth: Veth, rate: int, seconds: float, argv: list[str], ready: str) -> tuple[Run, str]:
    """Capture one replay with `argv` in the rx namespace: the Run (its counts left 0) and the capture's stderr."""
    capture = veth.start(RX, *argv, ready=ready)
    try:
        cpu = cpu_seconds(capture.pid)
        done = finish_replay(replay(veth, rate, seconds))
        left = drain(capture.pid)
        cpu, wall = cpu_seconds(capture.pid) - cpu, done.seconds + left
        rss, text = stop(capture)
    finally:
        if capture.poll() is None:
            capture.kill()
    return Run(done, 0, 0, 0, cpu, wall, left, rss), text


def sense_argv(db: str, commit_s: float = 5) -> list[str]:
    return [sys.executable, "-m", "sorf", "sense", "--iface", RX, "--db", db, "--sensor", "bench",
            "--commit-seconds", str(commit_s), "--buffer-mb", str(BUFFER_MB)]  # fmt: skip


def with_sorf(veth: Veth, rate: int, seconds: float, tmp: str, ring: bool = False) -> Run:
    """sorf sense on a replay of its own; with `ring`, writing the ring of pcap files too (removed after)."""
    db, folder = os.path.join(tmp, f"sense-{rate}.duckdb"), os.path.join(tmp, "ring")
    argv = sense_argv(db) + ["--ring", folder, "--ring-size", "100", "--ring-files", "10"] * ring
    run, _ = captured(veth, rate, seconds, argv, "capturing on")
    rows = sensor_stats(db)
    run.captured, run.kernel_drops, run.iface_drops = (int(sum(r[i] for r in rows)) for i in (1, 2, 3))
    os.remove(db)
    shutil.rmtree(folder, ignore_errors=True)
    return run


def with_tcpdump(veth: Veth, rate: int, seconds: float) -> Run:
    argv = ["tcpdump", "-n", "-i", RX, "-B", str(BUFFER_MB << 10), "-w", "/dev/null"]
    run, text = captured(veth, rate, seconds, argv, "listening on")
    counts = {what: int(n) for n, what in re.findall(r"(\d+) packets? (captured|dropped by kernel)", text)}
    run.captured, run.kernel_drops = counts["captured"], counts["dropped by kernel"]
    return run


def sensor_stats(db: str) -> list[list[float]]:
    """sensor_stats as (seconds since the first row's start, packets, kernel_drops, iface_drops, active_flows,
    rss_bytes) rows, read by a child: this process stays small, and so do the captures it forks."""
    out = subprocess.run([sys.executable, "-m", "sensor.livebench", "--stats", db], check=True, capture_output=True,
                         text=True, cwd=ROOT).stdout  # fmt: skip
    return json.loads(out)


def print_stats(db: str) -> None:
    import duckdb

    with duckdb.connect(db, read_only=True) as con:
        rows = con.execute("SELECT epoch(ts) - min(epoch(since)) OVER (), packets, kernel_drops, iface_drops, "
                           "active_flows, rss_bytes FROM sensor_stats ORDER BY ts").fetchall()  # fmt: skip
    print(json.dumps(rows))


def row(name: str, run: Run) -> str:
    return (f"  {name:<11}{run.replay.sent:>10,} {run.replay.pps:>10,.0f} {run.captured:>10,} {run.kernel_drops:>8,} "
            f"{run.iface_drops:>7,} {run.cpu:>7.2f} {100 * run.cpu / run.wall:>6.0f} "
            f"{1e6 * run.cpu / max(run.captured, 1):>7.2f} {run.drain:>7.1f} "
            f"{run.rss / MB:>8.0f}")  # fmt: skip


def rates(veth: Veth, wanted: list[int], seconds: float, ring: bool) -> bool:
    """Each rate: sorf sense, then tcpdump (and with `ring`, sense writing its ring), on a replay of their own.
    True if sorf met the target."""
    print(f"{CAPTURE.name} replayed for {seconds:g} s per rate; CPU over the replay and the drain after it")
    print(f"  {'':<11}{'sent':>10} {'sent/s':>10} {'captured':>10} {'k.drops':>8} {'i.drops':>7} {'CPU s':>7} "
          f"{'CPU %':>6} {'µs/pkt':>7} {'drain s':>7} {'RSS MB':>8}")  # fmt: skip
    met = True
    with tempfile.TemporaryDirectory(prefix=PREFIX) as tmp:
        for rate in wanted:
            print(f"{rate:,} packets/s", flush=True)
            sorf, dump = with_sorf(veth, rate, seconds, tmp), with_tcpdump(veth, rate, seconds)
            print(row("sorf sense", sorf))
            print(row("tcpdump", dump))
            if ring:
                print(row("sorf --ring", with_sorf(veth, rate, seconds, tmp, ring=True)))
            clean = sorf.kernel_drops + sorf.iface_drops == 0 and sorf.captured == sorf.replay.sent
            reached = sorf.replay.pps >= 0.98 * rate
            note = "" if reached else f"; tcpreplay reached only {sorf.replay.pps:,.0f}/s"
            share = [run.captured / max(run.replay.sent, 1) for run in (sorf, dump)]
            ratio = sorf.cpu / max(dump.cpu, 1 / CLK_TCK)
            print(f"  sorf/tcpdump: CPU x{ratio:.0f}; captured of sent: sorf {share[0]:.2%}, tcpdump {share[1]:.2%}; "
                  f"tcpreplay's CPU {sorf.replay.cpu:.1f} s, sends retried {sorf.replay.failed:,}{note}")  # fmt: skip
            if rate == TARGET_PPS:
                met = clean and reached
                print(f"  target: {TARGET_PPS:,} packets/s with no drops: {verdict(met)}")
    return met


def running(process: subprocess.Popen) -> bool:
    """Whether it still runs, without reaping it (finish_replay reaps it, with its rusage)."""
    return os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (x, y) points."""
    mx, my = (sum(p[i] for p in points) / len(points) for i in (0, 1))
    return sum((x - mx) * (y - my) for x, y in points) / max(sum((x - mx) ** 2 for x, _ in points), 1e-12)


def hold(veth: Veth, rate: int, seconds: float, every: float) -> bool:
    """sorf sense under a looped replay at `rate` for `seconds`: its RSS as it goes (/proc), then sensor_stats'
    every `every` seconds, and the slope over the second half. True if flat."""
    print(f"{CAPTURE.name} looped at {rate:,} packets/s for {seconds:g} s (new flows each pass), sorf sense on it")
    with tempfile.TemporaryDirectory(prefix=PREFIX) as tmp:
        db = os.path.join(tmp, "hold.duckdb")
        sense = veth.start(RX, *sense_argv(db), ready="capturing on")
        try:
            player, start = replay(veth, rate, seconds, loop_forever=True), time.monotonic()
            while running(player):
                time.sleep(min(every, 5) - (time.monotonic() - start) % min(every, 5))
                at = time.monotonic() - start
                if at % every < 5:
                    print(f"  {at / 60:6.1f} min  RSS {rss_now(sense.pid) / MB:6.1f} MB (live)", flush=True)
            done = finish_replay(player)
            drain(sense.pid)
            stop(sense)
        finally:
            if sense.poll() is None:
                sense.kill()
        rows = sensor_stats(db)
    return judge(rows, done, every)


def judge(rows: list[list[float]], done: Replay, every: float) -> bool:
    """The RSS series from sensor_stats, its slope over the second half, and the verdict."""
    print(f"sensor_stats (one row per commit; every {every / 60:g} min shown):")
    shown = -every
    for t, _, _, _, active, rss in rows:
        if t - shown >= every:
            print(f"  {t / 60:6.1f} min  RSS {rss / MB:6.1f} MB  {int(active):,} flows open")
            shown = t
    half = [(t / 3600, rss / MB) for t, *_, rss in rows if t >= rows[-1][0] / 2]
    per_hour = slope(half) if len(half) > 1 else math.nan
    allowed = (MEMORY_MAX - rows[-1][5]) / MB / WEEKS_H
    packets, kernel, iface = (int(sum(r[i] for r in rows)) for i in (1, 2, 3))
    print(f"sent {done.sent:,} ({done.pps:,.0f}/s), captured {packets:,}, kernel drops {kernel:,}, interface drops "
          f"{iface:,}; peak RSS {max(r[5] for r in rows) / MB:.0f} MB")  # fmt: skip
    flat = per_hour <= allowed
    print(f"RSS slope over the second half: {per_hour:+.2f} MB/hour; flat if under {allowed:.2f} MB/hour (at that "
          f"slope RSS would reach MemoryMax, {MEMORY_MAX >> 20} MB, in four weeks): {verdict(flat)}")  # fmt: skip
    return flat


def _interrupted(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sensor.livebench", description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="20000,50000,100000,200000", help="packets/s, comma-separated")
    parser.add_argument("--seconds", type=float, default=20, help="replay seconds per rate (default 20)")
    parser.add_argument("--ring", action="store_true", help="also sense with --ring (the ring of pcap files)")
    parser.add_argument("--hold", type=float, metavar="S", help="instead: sense for S seconds at --rate")
    parser.add_argument("--rate", type=int, default=20_000, help="packets/s of --hold (default 20000)")
    parser.add_argument("--every", type=float, default=300, help="seconds between --hold's RSS lines (default 300)")
    parser.add_argument("--stats", metavar="DB", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.stats:
        print_stats(args.stats)
        return 0
    if os.geteuid() != 0:
        parser.error("needs root, for the network namespaces")
    for signum in (signal.SIGTERM, signal.SIGINT):  # the namespaces are removed (Veth.__exit__) on these too
        signal.signal(signum, _interrupted)
    ensure_generated([CAPTURE])
    compile_sorf()
    with Veth() as veth:
        if args.hold:
            return 0 if hold(veth, args.rate, args.hold, args.every) else 1
        return 0 if rates(veth, [int(r) for r in args.rates.split(",")], args.seconds, args.ring) else 1


if __name__ == "__main__":
    sys.exit(main())
