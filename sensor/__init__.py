"""Passive sensor: capture files -> decode -> flows and reassembly -> dissectors -> DuckDB."""

import os

# sorf makes no BLAS calls, but numpy's OpenBLAS starts a thread per extra core when
# numpy is imported, and each spins for about 0.1 s of CPU before it sleeps: a core's
# worth taken from the inserter on a small box. One thread (the caller's) means none.
# It must be set before numpy is first imported; a value already set is kept.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
