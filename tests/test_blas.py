"""core.blas.blas_threads: the calling thread's BLAS thread count inside a block, the previous one after it,
products unchanged."""

from __future__ import annotations

import numpy as np
import pytest

from instanthmr.core import blas


def test_blas_threads_sets_this_threads_count_and_gives_the_previous_back():
    fns = blas._set_local()
    if not fns:
        pytest.skip("numpy's BLAS is not an OpenBLAS with openblas_set_num_threads_local: blas_threads is a no-op")
    set_local = fns[0]
    before = set_local(2)  # set_local answers the previous count; 2 from here, whatever the environment set
    try:
        with blas.blas_threads(1):
            assert set_local(1) == 1  # 1 inside (a no-op blas_threads would leave 2)
        assert set_local(2) == 2  # back to what it was
    finally:
        set_local(before)


def test_products_are_the_same_on_one_thread():
    rng = np.random.default_rng(0)
    j = rng.normal(size=(208, 82))  # the body fit's finger-fit Jacobian size, above OpenBLAS's threading threshold
    many = j.T @ j
    with blas.blas_threads(1):
        one = j.T @ j
    assert np.array_equal(one, many)


def test_the_body_fit_solves_on_one_blas_thread(monkeypatch):
    """Inside a fit (a hand's fingers seen: the products large enough for OpenBLAS to split them), this
    thread's BLAS count is 1; after it, what it was."""
    from instanthmr.body import fit as fit_mod
    from instanthmr.body.mhr import SHIPPED_MHR_MODEL, MHRNumpy

    fns = blas._set_local()
    if not fns:
        pytest.skip("numpy's BLAS is not an OpenBLAS with openblas_set_num_threads_local: blas_threads is a no-op")
    seen_counts = []
    solve = fit_mod._posv

    def posv(h, g):
        seen_counts.append(fns[-1](1))  # scipy's OpenBLAS: the one that solves; answers its current count
        return solve(h, g)

    monkeypatch.setattr(fit_mod, "_posv", posv)
    fitter = fit_mod.BodyFitter(MHRNumpy.from_npz(SHIPPED_MHR_MODEL))
    p = np.zeros(204)
    shape = fitter.shape(None, p[130:])
    kp, _ = fitter.forward(shape, p)
    seen = np.ones(70, bool)
    before = fns[-1](2)
    fitter.fit(fit_mod.Observation(kp, seen.astype(float)), shape, None, iterations=2)
    assert seen_counts and set(seen_counts) == {1}
    assert fns[-1](before) == 2  # given back after the fit
