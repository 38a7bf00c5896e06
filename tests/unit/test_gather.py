"""dissectors.bulk.gather: rows of bytes at many offsets of a chunk, as the bulk
decoders and the columnar L2-L4 decode read headers; zeros outside the chunk."""

from __future__ import annotations

import numpy as np

from dissectors.bulk import gather


def test_rows_inside_and_across_both_ends_read_as_if_zero_padded():
    rng = np.random.default_rng(5)
    for n in range(40):
        data = rng.integers(0, 256, n, dtype=np.uint8)
        padded = np.concatenate((np.zeros(100, np.uint8), data, np.zeros(100, np.uint8)))
        for width in (1, 2, 8, 16, 44):
            at = rng.integers(-25, n + 25, 30)
            got = gather(data, at, width)
            assert got.dtype == np.dtype(f"V{width}") and got.shape == (30,)
            want = np.stack([padded[100 + x : 100 + x + width] for x in at])
            assert (got.view(np.uint8).reshape(-1, width) == want).all(), (n, width)


def test_data_is_not_copied_or_changed():
    data = np.frombuffer(bytes(range(200)), np.uint8)  # read-only, as a chunk's bytes are
    rows = gather(data, np.array([190, 0, 5]), 16).view(np.uint8).reshape(-1, 16)
    assert rows[0].tolist() == list(range(190, 200)) + [0] * 6
    assert rows[2].tolist() == list(range(5, 21))
    rows[:] = 7  # the rows are a copy: data is as it was
    assert data.tolist() == list(range(200))
