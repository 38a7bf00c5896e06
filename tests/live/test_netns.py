"""The namespace rig itself (tests/helpers/netns.py): it leaves nothing behind, also when the test in it fails,
and clears what a dead run left."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.helpers import netns


@pytest.fixture(autouse=True)
def _needs_namespaces():
    if reason := netns.available():
        pytest.fail(reason)


def test_a_failing_test_leaves_no_namespace_or_process():
    with pytest.raises(RuntimeError, match="the test failed"), netns.Rig(["a", "b"]) as rig:
        made = {rig.ns(role) for role in ("switch", "obs", "a", "b")}
        assert made <= set(netns.namespaces())
        sleeper = rig.start("a", "sleep", "60")
        raise RuntimeError("the test failed")
    assert not made & set(netns.namespaces())
    assert sleeper.returncode is not None


def test_a_dead_run_s_namespaces_are_removed_at_start_a_running_one_s_kept():
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale, running = f"sorf-{dead.pid}-switch", f"sorf-{os.getppid()}-switch"
    for ns in (stale, running):
        subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        with netns.Rig(["a"]):
            assert stale not in set(netns.namespaces())
            assert running in set(netns.namespaces())
    finally:
        for ns in (stale, running):
            subprocess.run(["ip", "netns", "delete", ns], check=False, capture_output=True)
