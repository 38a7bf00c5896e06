"""FlowTable's bounds: idle flows are swept, and past MAX_FLOWS the least recently
seen are evicted; every flow reaches the sink exactly once."""

from __future__ import annotations

from dissectors import REGISTRY
from sensor import flows
from sensor.decode import UDP, Packet
from sensor.flows import IDLE_US, FlowTable


class Sink:
    def __init__(self):
        self.flows = []

    def flow(self, flow):
        self.flows.append(flow)

    def record(self, *args):
        pass


def udp(n: int) -> Packet:
    """A DNS query from client n (its own port) to one server."""
    return Packet(
        0, b"\x02" * 6, b"\x04" * 6, bytes([10, 0, 0, 2]), bytes([10, 0, 0, 1]), UDP, 40000 + n, 53, 0, 0, 0, b"q"
    )


def test_eviction_finishes_the_least_recently_seen(monkeypatch):
    monkeypatch.setattr(flows, "MAX_FLOWS", 10)
    sink = Sink()
    table = FlowTable(1, REGISTRY, sink)
    for n in range(25):
        table.packet(udp(n), n + 1, 1_000 * n, 60)
        assert len(table.live) <= 10 and len(table.flows) == 2 * len(table.live)
    evicted = [f.orig_port - 40000 for f in sink.flows]
    # past 10 the table goes down to 9: the 25th flow leaves 9 live
    assert evicted == list(range(len(evicted))) and len(evicted) == 16 and len(table.live) == 9  # the oldest, in order
    assert table.evicted == {"single_packet": 0, "least_recent": 16}
    table.packet(udp(24), 26, 30_000, 60)  # the newest is still live: same flow
    table.close()
    assert sorted(f.orig_port - 40000 for f in sink.flows) == list(range(25))
    assert {f.flow_id for f in sink.flows} == {(1 << 32) | (n + 1) for n in range(25)}
    assert not table.live and not table.flows


def answer(n: int) -> Packet:
    """The server's reply to udp(n)."""
    q = udp(n)
    return q._replace(src=q.dst, dst=q.src, sport=q.dport, dport=q.sport, src_mac=q.dst_mac, dst_mac=q.src_mac)


def test_one_packet_flows_are_evicted_first(monkeypatch):
    """A scan's one-packet flows do not take the table from conversations: past MAX_SINGLE_PACKET the oldest
    of them are finished, and a flow with a second packet is never among them, however old."""
    monkeypatch.setattr(flows, "MAX_SINGLE_PACKET", 10)
    sink = Sink()
    table = FlowTable(1, REGISTRY, sink)
    table.packet(udp(0), 1, 0, 60)
    table.packet(answer(0), 2, 10, 60)  # flow 0 is a conversation
    for n in range(1, 31):
        table.packet(udp(n), n + 2, 1_000 * n, 60)
        assert len(table.single) <= 10
    assert [f.orig_port - 40000 for f in sink.flows] == list(range(1, 21))  # the oldest single ones, in order
    assert table.evicted == {"single_packet": 20, "least_recent": 0}
    assert 0 in [f.orig_port - 40000 for f in table.live.values()]
    frame, ts, detail = table.evictions()
    assert (frame, ts) == (3, 1_000)  # the first flow finished early: its last packet
    assert detail.startswith("20 flows finished before they ended: 20 of one packet when over 10 were waiting")
    table.packet(answer(30), 40, 40_000, 60)  # a second packet: no longer single
    assert 30 not in [f.orig_port - 40000 for f in table.single.values()]
    table.close()
    assert len(sink.flows) == 31 and not table.single


def test_a_sweep_finishes_only_idle_flows():
    sink = Sink()
    table = FlowTable(1, REGISTRY, sink)
    table.packet(udp(1), 1, 0, 60)
    table.packet(udp(2), 2, IDLE_US, 60)
    table.sweep(IDLE_US + 1)
    assert [f.orig_port for f in sink.flows] == [40001]
    assert [f.orig_port for f in table.live.values()] == [40002] and len(table.flows) == 2
