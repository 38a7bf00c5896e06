"""TCP stream reassembly for one direction of a flow.

Delivers payload in sequence order exactly once: retransmitted bytes are trimmed,
out-of-order segments wait for the hole to fill, and a hole that will never fill
becomes a gap the dissector resyncs after. A hole is given up on as soon as the
peer acknowledges data past it (the endpoint got bytes the sensor never saw: a
SPAN port dropped them), or when too much is waiting. Memory per direction is
bounded by PENDING_CAP.

Each delivered piece keeps the frame and time of the segment that carried it, so
a PDU's evidence is the frame holding its last byte even when it arrived early.
"""

from __future__ import annotations

SEQ_MOD = 1 << 32
HALF = SEQ_MOD // 2
WINDOW = 1 << 20  # segments further ahead than this are not worth waiting for
PENDING_CAP = 1 << 18  # bytes held out of order before giving up on the hole

Piece = tuple[bytes | None, int, int]  # (bytes, or None for a gap; frame; ts)


def _distance(a: int, b: int) -> int:
    """How far apart two sequence numbers are, either way round."""
    return min((a - b) % SEQ_MOD, (b - a) % SEQ_MOD)


class StreamDirection:
    """Reorders one direction's segments; push() returns the pieces now in order."""

    __slots__ = ("next_seq", "peer_ack", "pending", "pending_bytes", "retransmitted", "gaps", "gap_bytes")

    def __init__(self) -> None:
        self.next_seq: int | None = None
        self.peer_ack: int | None = None  # highest acknowledgment the other side sent
        self.pending: dict[int, tuple[bytes, int, int]] = {}
        self.pending_bytes = 0
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
        old = self.pending.get(seq)
        if old is None or len(old[0]) < len(data):
            self.pending_bytes += len(data) - (len(old[0]) if old else 0)
            self.pending[seq] = (data, frame, ts)
        if self.pending_bytes > PENDING_CAP or self._hole_acked():
            return self.skip_hole()
        return []

    def _reanchor(self, seq: int, data: bytes, frame: int, ts: int) -> list[Piece]:
        self.gaps += 1
        self.pending.clear()
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

    def _hole_acked(self) -> bool:
        return self.peer_ack is not None and 0 < (self.peer_ack - self.next_seq) % SEQ_MOD < HALF

    def skip_hole(self) -> list[Piece]:
        """Give up on the missing bytes: jump to the first waiting segment."""
        if not self.pending:
            return []
        first = min(self.pending, key=lambda s: (s - self.next_seq) % SEQ_MOD)
        self.gaps += 1
        self.gap_bytes += (first - self.next_seq) % SEQ_MOD
        self.next_seq = first
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
        while self.pending:
            progressed = False
            for seq in list(self.pending):
                rel = (seq - self.next_seq) % SEQ_MOD
                if rel >= HALF:
                    rel -= SEQ_MOD
                if rel > 0:
                    continue
                data, frame, ts = self.pending.pop(seq)
                self.pending_bytes -= len(data)
                if rel + len(data) > 0:
                    data = data[-rel:] if rel else data
                    out.append((data, frame, ts))
                    self.next_seq = (self.next_seq + len(data)) % SEQ_MOD
                progressed = True
            if not progressed:
                return
