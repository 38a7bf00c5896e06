"""Picking records out of what a dissector returns."""

from __future__ import annotations

from dissectors import Operation


def ops(records, protocol: str | None = None) -> list[Operation]:
    """The operations among ``records`` (of ``protocol`` only, when given)."""
    return [r for r in records if isinstance(r, Operation) and (protocol is None or r.protocol == protocol)]
