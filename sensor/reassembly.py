"""TCP stream reassembly for one direction of a flow.

Delivers payload in sequence order exactly once: retransmitted bytes are trimmed,
out-of-order segments wait (within a window and a byte cap) for the hole to fill,
and a hole that never fills becomes a gap the dissector resyncs after. Memory per
direction is bounded by PENDING_CAP.
"""

from __future__ import annotations

SEQ_MOD = 1 << 32
WINDOW = 1 << 20  # segments further ahead than this are not worth waiting for
PENDING_CAP = 1 << 18  # bytes held out of order before giving up on the hole


class StreamDirection:
    """Reorders one direction's segments; push() returns what became contiguous."""

    __slots__ = ("next_seq", "pending", "pending_bytes", "retransmitted", "gaps", "gap_bytes")

    def __init__(self) -> None:
        self.next_seq: int | None = None
        self.pending: dict[int, bytes] = {}
        self.pending_bytes = 0
        self.retransmitted = 0  # segments whose bytes had all been delivered already
        self.gaps = 0
        self.gap_bytes = 0

    def syn(self, seq: int) -> None:
        """A SYN fixes the initial sequence number; data starts one after it."""
        if self.next_seq is None:
            self.next_seq = (seq + 1) % SEQ_MOD

    def push(self, seq: int, data: bytes) -> list[bytes | None]:
        """Add a segment; return chunks now in order. None in the list marks a gap."""
        if self.next_seq is None:
            self.next_seq = seq  # joined mid-stream
        rel = (seq - self.next_seq) % SEQ_MOD
        if rel >= SEQ_MOD // 2:  # starts before next_seq: old bytes, maybe some new
            rel -= SEQ_MOD
            if rel + len(data) <= 0:
                self.retransmitted += 1
                return []
            data = data[-rel:]
            rel = 0
        if rel == 0:
            out: list[bytes | None] = [data]
            self.next_seq = (self.next_seq + len(data)) % SEQ_MOD
            if self.pending:
                self._drain(out)
            return out
        if rel > WINDOW:
            return []  # wildly out of window: ignore rather than wait
        old = self.pending.get(seq)
        if old is None or len(old) < len(data):
            self.pending_bytes += len(data) - (len(old) if old else 0)
            self.pending[seq] = data
        if self.pending_bytes > PENDING_CAP:
            return self.skip_hole()
        return []

    def skip_hole(self) -> list[bytes | None]:
        """Give up on the missing bytes: jump to the first waiting segment."""
        if not self.pending:
            return []
        first = min(self.pending, key=lambda s: (s - self.next_seq) % SEQ_MOD)
        self.gaps += 1
        self.gap_bytes += (first - self.next_seq) % SEQ_MOD
        self.next_seq = first
        out: list[bytes | None] = [None]
        self._drain(out)
        return out

    def _drain(self, out: list[bytes | None]) -> None:
        while self.pending:
            progressed = False
            for seq in list(self.pending):
                rel = (seq - self.next_seq) % SEQ_MOD
                if rel >= SEQ_MOD // 2:
                    rel -= SEQ_MOD
                if rel > 0:
                    continue
                data = self.pending.pop(seq)
                self.pending_bytes -= len(data)
                if rel + len(data) > 0:
                    data = data[-rel:] if rel else data
                    out.append(data)
                    self.next_seq = (self.next_seq + len(data)) % SEQ_MOD
                progressed = True
            if not progressed:
                return
