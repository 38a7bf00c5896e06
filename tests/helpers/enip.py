"""EtherNet/IP and CIP byte strings for the tests: encapsulation, CPF, EPATHs, requests and replies."""

from __future__ import annotations

import struct


def enip(command: int, data: bytes = b"", session: int = 0, status: int = 0, context: bytes = bytes(8)) -> bytes:
    return struct.pack("<HHII8sI", command, len(data), session, status, context, 0) + data


def cpf(*items: tuple[int, bytes]) -> bytes:
    return struct.pack("<H", len(items)) + b"".join(struct.pack("<HH", t, len(d)) + d for t, d in items)


def rr(cip: bytes, session: int = 0x11223344, context: bytes = b"ctx00001") -> bytes:
    return enip(0x6F, struct.pack("<IH", 0, 10) + cpf((0x0000, b""), (0x00B2, cip)), session, context=context)


def unit(connection: int, seq: int, cip: bytes, session: int = 0x11223344) -> bytes:
    items = cpf((0x00A1, struct.pack("<I", connection)), (0x00B1, struct.pack("<H", seq) + cip))
    return enip(0x70, struct.pack("<IH", 0, 0) + items, session)


def logical(cls: int | None = None, inst: int | None = None, attr: int | None = None) -> bytes:
    out = b""
    for kind, value in ((0x20, cls), (0x24, inst), (0x30, attr)):
        if value is None:
            continue
        if value < 0x100:
            out += bytes([kind, value])
        elif value < 0x10000:
            out += bytes([kind | 1, 0]) + struct.pack("<H", value)
        else:
            out += bytes([kind | 2, 0]) + struct.pack("<I", value)
    return out


def symbol(name: str) -> bytes:
    raw = name.encode()
    return bytes([0x91, len(raw)]) + raw + b"\0" * (len(raw) & 1)


def request(service: int, path: bytes, data: bytes = b"") -> bytes:
    return bytes([service, len(path) // 2]) + path + data


def reply(service: int, status: int = 0, extended: tuple[int, ...] = (), data: bytes = b"") -> bytes:
    return bytes([service | 0x80, 0, status, len(extended)]) + b"".join(struct.pack("<H", e) for e in extended) + data


def msp(*messages: bytes, response: bool = False, status: int = 0) -> bytes:
    offsets, pos = [], 2 + 2 * len(messages)
    for m in messages:
        offsets.append(pos)
        pos += len(m)
    body = struct.pack(f"<H{len(messages)}H", len(messages), *offsets) + b"".join(messages)
    return reply(0x0A, status, data=body) if response else request(0x0A, logical(0x02, 1), body)
