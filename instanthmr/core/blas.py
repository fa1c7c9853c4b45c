"""How many threads numpy's BLAS may use in the calling thread: :func:`blas_threads`.

numpy's wheels bundle OpenBLAS, which splits a matrix product over every core once it passes a size
threshold. The body fit's products are just past it (J^T J of a 208 x 82 Jacobian when a hand's fingers are
fitted): on a 2-core CPU whose cores LiteRT and other jobs already keep busy, handing such a product to a
second thread cost 5-14 ms where one thread takes 0.1-0.5 ms (a finger fit 8.6 -> 3.1 ms CPU, measured,
docs/offline.md "Speed"). OpenBLAS >= 0.3.27 sets a count for the calling thread alone
(``openblas_set_num_threads_local``), so nothing else in the process changes; numpy's and scipy's wheels each
bundle one, both are set. With another BLAS (MKL, Accelerate) or an older OpenBLAS this is a no-op.
"""

from __future__ import annotations

import ctypes
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path


#: The packages whose wheels bundle their own OpenBLAS (scipy's LAPACK solves the fit's normal equations).
_PACKAGES = ("numpy", "scipy")


@lru_cache(maxsize=1)
def _set_local() -> tuple:
    """OpenBLAS's ``openblas_set_num_threads_local`` (it returns the previous count) of each library numpy's
    and scipy's wheels bundle; empty when there is none."""
    import importlib.util

    found = []
    for package in _PACKAGES:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.origin:
            continue
        root = Path(spec.origin).resolve().parent
        libs = [p for pattern in ("*openblas*.so*", "*openblas*.dylib", "*openblas*.dll")
                for p in [*root.parent.glob(f"{package}.libs/{pattern}"), *root.glob(f".dylibs/{pattern}")]]
        for lib in libs:
            try:
                fn = ctypes.CDLL(str(lib)).openblas_set_num_threads_local
            except (OSError, AttributeError):
                continue
            fn.argtypes, fn.restype = [ctypes.c_int], ctypes.c_int
            found.append(fn)
            break
    return tuple(found)


@contextmanager
def blas_threads(n: int = 1):
    """numpy's matrix products in this thread on at most ``n`` threads inside the block (also a decorator);
    the previous count comes back after it. Results are the same: OpenBLAS splits a product's output
    blocks between threads, not its sums."""
    fns = _set_local()
    previous = [fn(int(n)) for fn in fns]
    try:
        yield
    finally:
        for fn, p in zip(fns, previous):
            fn(p)
