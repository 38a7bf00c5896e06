"""TCP stream reassembly for one direction of a flow.

Delivers payload in sequence order exactly once: retransmitted bytes are trimmed,
out-of-order segments wait for the hole to fill, and a hole that will never fill
becomes a gap the dissector resyncs after. A hole is given up on as soon as the
peer acknowledges data past it (the endpoint got bytes the sensor never saw: a
SPAN port dropped them), or when too much is waiting. Memory per direction is
bounded by PENDING_CAP bytes in at most PENDING_SEGMENTS segments.

Waiting segments are kept in a heap by their distance from an anchor (the stream
position when the first of them arrived), so finding the next one costs log n: a
stream with a hole every other segment (a one-way SPAN, no ACK to give a hole up
on) took time quadratic in the segments held, 48 s for 20,000 of them.

Each delivered piece keeps the frame and time of the segment that carried it, so
a PDU's evidence is the frame holding its last byte even when it arrived early.
"""

from __future__ import annotations

from heapq import heappop, heappush

SEQ_MOD = 1 << 32
HALF = SEQ_MOD // 2
WINDOW = 1 << 20  # segments further ahead than this are not worth waiting for
PENDING_CAP = 1 << 18  # bytes held out of order before giving up on the hole
PENDING_SEGMENTS = 1 << 12  # segments held out of order (tiny ones: their overhead, not their bytes, is the cost)

Piece = tuple[bytes | None, int, int]  # (bytes, or None for a gap; frame; ts)


def _distance(a: int, b: int) -> int:
    """How far apart two sequence numbers are, either way round."""
    return min((a - b) % SEQ_MOD, (b - a) % SEQ_MOD)


class StreamDirection:
    """Reorders one direction's segments; push() returns the pieces now in order."""

    __slots__ = ("anchor", "gap_bytes", "gaps", "heap", "next_seq", "peer_ack", "pending", "pending_bytes",
                 "retransmitted")  # fmt: skip

    def __init__(self) -> None:
        # None until a SYN or the first segment; set whenever ``pending`` holds anything (the type: ignores on it
        # below: mypy cannot know that)
        self.next_seq: int | None = None
        self.peer_ack: int | None = None  # highest acknowledgment the other side sent
        # waiting segments by offset from ``anchor`` (next_seq when the first of them came): the offsets stay
        # in order while next_seq moves on, up to the last of them (they are at most WINDOW ahead of it)
        self.pending: dict[int, tuple[bytes, int, int]] = {}
        self.pending_bytes = 0
        self.anchor = 0
        self.heap: list[int] = []  # the keys of ``pending``
        self.retransmitted = 0  # segments whose bytes had all been delivered already
        self.gaps = 0
        self.gap_bytes = 0

    def syn(self, seq: int) -> None:
        """A SYN fixes the initial sequence number; data starts one after it."""
        if self.next_seq is None:
            self.next_seq = (seq + 1) % SEQ_MOD

    def push(self, seq: int, data: bytes, frame: int, ts: int) -> list[Piece]:
        """Add a segment; return the pieces now in order."""
        if self.next_seq is None:
            self.next_seq = seq  # joined mid-stream
        rel = (seq - self.next_seq) % SEQ_MOD
        if rel >= HALF:  # starts before next_seq: old bytes, maybe some new
            rel -= SEQ_MOD
            if rel + len(data) <= 0:
                self.retransmitted += 1
                return []
            data = data[-rel:]
            rel = 0
        if rel == 0:
            out: list[Piece] = [(data, frame, ts)]
            self.next_seq = (self.next_seq + len(data)) % SEQ_MOD
            if self.pending:
                self._drain(out)
            return out
        if rel > WINDOW:
            ack = self.peer_ack
            if ack is not None and _distance(seq, ack) <= WINDOW and _distance(ack, self.next_seq) > WINDOW:
                # the peer acknowledges bytes around this segment, far from where the stream was thought to be:
                # it is the stream that moved (a stray segment set the start). Resume here after a gap.
                return self._reanchor(seq, data, frame, ts)
            return []  # wildly out of window: ignore rather than wait
        self._hold(seq, data, frame, ts)
        if self.pending_bytes > PENDING_CAP or len(self.pending) > PENDING_SEGMENTS or self._hole_acked():
            return self.skip_hole()
        return []

    def _hold(self, seq: int, data: bytes, frame: int, ts: int) -> None:
        """Keep a segment that starts past a hole (the longer one, if two start at the same place)."""
        if not self.pending:
            self.anchor = self.next_seq  # type: ignore[assignment]
        key = (seq - self.anchor) % SEQ_MOD
        old = self.pending.get(key)
        if old is None:
            heappush(self.heap, key)
        if old is None or len(old[0]) < len(data):
            self.pending_bytes += len(data) - (len(old[0]) if old else 0)
            self.pending[key] = (data, frame, ts)

    def _offset(self) -> int:
        """next_seq as an offset from the anchor, as the keys of ``pending`` are."""
        return (self.next_seq - self.anchor) % SEQ_MOD  # type: ignore[operator]

    def _reanchor(self, seq: int, data: bytes, frame: int, ts: int) -> list[Piece]:
        self.gaps += 1
        self.pending.clear()
        self.heap.clear()
        self.pending_bytes = 0
        self.next_seq = (seq + len(data)) % SEQ_MOD
        return [(None, frame, ts), (data, frame, ts)]

    def acked(self, ack: int) -> list[Piece]:
        """The peer acknowledged up to ``ack``; a hole it covers will never fill."""
        if self.peer_ack is None or 0 < (ack - self.peer_ack) % SEQ_MOD < HALF:
            self.peer_ack = ack
        if self.pending and self._hole_acked():
            return self.skip_hole()
        return []

    def advanced(self, next_seq: int, retransmitted: int) -> None:
        """Segments delivered in bulk (the columnar path: each one the next in order or a whole retransmission,
        none waiting): the stream is at ``next_seq`` after them, and ``retransmitted`` of them were all old bytes."""
        self.next_seq = next_seq
        self.retransmitted += retransmitted

    def _hole_acked(self) -> bool:
        # push calls it once next_seq is set, acked only with segments pending: next_seq is an int
        ack = self.peer_ack
        return ack is not None and 0 < (ack - self.next_seq) % SEQ_MOD < HALF  # type: ignore[operator]

    def skip_hole(self) -> list[Piece]:
        """Give up on the missing bytes: jump to the first waiting segment."""
        if not self.pending:
            return []
        first = self.heap[0]
        self.gaps += 1
        self.gap_bytes += first - self._offset()
        self.next_seq = (self.anchor + first) % SEQ_MOD
        _, frame, ts = self.pending[first]
        out: list[Piece] = [(None, frame, ts)]
        self._drain(out)
        return out

    def flush(self) -> list[Piece]:
        """End of the flow: every hole left is a gap; deliver what waited behind it."""
        out: list[Piece] = []
        while self.pending:
            out.extend(self.skip_hole())
        return out

    def _drain(self, out: list[Piece]) -> None:
        """Deliver the waiting segments the stream has reached, in stream order, trimmed of bytes already delivered."""
        heap, pending = self.heap, self.pending
        at = self._offset()
        while heap and heap[0] <= at:
            key = heappop(heap)
            data, frame, ts = pending.pop(key)
            self.pending_bytes -= len(data)
            if key + len(data) > at:
                data = data[at - key :]
                out.append((data, frame, ts))
                at += len(data)
                self.next_seq = (self.next_seq + len(data)) % SEQ_MOD  # type: ignore[operator]
