"""dissectors/layout.py: one declaration gives the same fields to struct and to numpy."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from dissectors.bulk import gather
from dissectors.layout import Layout

ENCAP = Layout("<", ("command", "H"), ("length", "H"), ("session", "I"), ("status", "I"), ("context", "8s"),
               ("options", "I"))  # fmt: skip


def test_struct_and_dtype_read_the_same_fields():
    pdus = [struct.pack("<HHII8sI", 0x6F, n, 0x1000 + n, 0, bytes(range(n, n + 8)), 0) for n in range(5)]
    data = np.frombuffer(b"".join(pdus), np.uint8)
    heads = gather(data, np.arange(5) * ENCAP.size, ENCAP.size).view(ENCAP.dtype)
    for i, pdu in enumerate(pdus):
        command, length, session, _status, context, _options = ENCAP.unpack_from(pdu)
        assert (heads["command"][i], heads["length"][i], heads["session"][i]) == (command, length, session)
        assert heads["context"][i] == context
    assert ENCAP.size == 24 and ENCAP.offset["context"] == 12 and ENCAP.offset["options"] == 20


def test_network_order_pads_and_sums():
    mbap = Layout("!", ("transaction_id", "H"), ("protocol_id", "H"), ("length", "H"), ("unit_id", "B"))
    request = mbap + Layout(">", ("function_code", "B"), (None, "2x"), ("quantity", "H"))
    raw = bytes.fromhex("0001 0000 0006 11 03 ffff 000a")
    assert request.unpack_from(raw) == (1, 0, 6, 0x11, 3, 10)
    row = np.frombuffer(raw, request.dtype)[0]
    assert (row["length"], row["function_code"], row["quantity"]) == (6, 3, 10)
    assert request.offset["quantity"] == 10 and request.size == 12


@pytest.mark.parametrize(
    ("fields", "message"),
    [((("x", "2x"),), "a pad"), (((None, "H"),), "a pad"), ((("a", "H"),), None)],
)
def test_a_pad_has_no_name(fields, message):
    if message is None:
        assert Layout("<", *fields).size == 2
    else:
        with pytest.raises(ValueError, match=message):
            Layout("<", *fields)


def test_orders_must_agree():
    with pytest.raises(ValueError, match="byte orders"):
        Layout("<", ("a", "H")) + Layout("!", ("b", "H"))
    with pytest.raises(ValueError, match="byte order"):
        Layout("=", ("a", "H"))
