"""Where packets come from: the one stage that knows.

The engine (sensor.ingest, sensor.columnar) takes chunks of packet records (sensor.capture.RecordChunk) from a
source and never asks where they came from. Today's source is a capture file, pcap or pcapng, plain or gzip; a
live interface (issue 14) is the next, behind the same two members.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Protocol

from .capture import RecordChunk, read_chunks
from .walk import EarlyWalks, ReadState


class Source(Protocol):
    """Chunks of packet records, and what reading them found (format, link types, bytes read, damage)."""

    state: ReadState

    def chunks(self) -> Generator[RecordChunk]: ...


@dataclass(slots=True)
class FileSource:
    """A capture file. ``early`` holds the walks the command started before it imported the engine
    (sensor.walk.EarlyWalks): this file's, if there is one, is taken up when reading starts."""

    path: str
    early: EarlyWalks | None = None
    state: ReadState = field(default_factory=ReadState)

    def chunks(self) -> Generator[RecordChunk]:
        """Raises CaptureError (on the first chunk) if the file is not a capture."""
        walked = self.early.take(self.path) if self.early is not None else None
        return read_chunks(self.path, self.state, early=walked)
