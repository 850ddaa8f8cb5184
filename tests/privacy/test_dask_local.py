"""The Dask path (same release as in memory, bounded memory) and the local model."""

from __future__ import annotations

import math
import tracemalloc

import numpy as np
import pytest

from neurips18.datasets.synthetic import make_ball_blobs
from neurips18.privacy import PrivateKMeans, local_kmeans, randomized_response


def test_dask_fit_equals_in_memory_fit_on_a_local_cluster():
    da = pytest.importorskip("dask.array")
    distributed = pytest.importorskip("distributed")
    X = make_ball_blobs(30000, 6, 5, generator=2)[0]
    mem = PrivateKMeans(5, epsilon=1.0, delta=1e-6, radius=1.0, random_state=7).fit(X)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster):
        dx = da.from_array(X, chunks=(7000, 6))  # blocks unlike the in-memory ones
        dsk = PrivateKMeans(5, epsilon=1.0, delta=1e-6, radius=1.0, random_state=7).fit(dx)
        assert np.array_equal(dsk.cluster_centers_, mem.cluster_centers_)
        assert dsk.privacy_spent_ == mem.privacy_spent_
        assert [e.to_dict() for e in dsk.ledger_.entries] == \
            [e.to_dict() for e in mem.ledger_.entries]
        assert np.array_equal(dsk.predict(dx).compute(), mem.predict(X))
    lloyd = dict(epsilon=1.0, radius=1.0, method="lloyd", random_state=1)
    assert np.array_equal(PrivateKMeans(5, **lloyd).fit(da.from_array(X, chunks=5000))
                          .cluster_centers_, PrivateKMeans(5, **lloyd).fit(X).cluster_centers_)


def test_dask_rejects_nan():
    da = pytest.importorskip("dask.array")
    X = np.zeros((100, 2))
    X[5, 0] = np.nan
    with pytest.raises(ValueError, match="Invalid X.*NaN"):
        PrivateKMeans(2, epsilon=1.0, delta=1e-6, radius=1.0).fit(da.from_array(X, chunks=30))


def _lazy_blobs(n: int, d: int):  # type: ignore[no-untyped-def]
    """A Dask array generated block by block (never held whole in memory)."""
    da = pytest.importorskip("dask.array")
    import dask

    rows = 20000
    blocks = [da.from_delayed(dask.delayed(lambda i: make_ball_blobs(rows, d, 5,
                                                                     generator=i)[0])(i),
                              shape=(rows, d), dtype=np.float64) for i in range(n // rows)]
    return da.concatenate(blocks)


@pytest.mark.xfail(strict=True, reason="known limitation: the cell histogram of the finest "
                   "radius has about one cell per point on spread data, so the driver's "
                   "memory grows with n (not with n * d); the data itself is never held")
def test_memory_stays_bounded_when_n_grows_tenfold():
    pytest.importorskip("dask.array")
    import dask

    peaks = []
    for n in (40_000, 400_000):
        X = _lazy_blobs(n, 8)
        with dask.config.set(scheduler="synchronous"):
            tracemalloc.start()
            PrivateKMeans(5, epsilon=1.0, delta=1e-6, radius=1.0, random_state=0).fit(X)
            peaks.append(tracemalloc.get_traced_memory()[1])
            tracemalloc.stop()
    data_bytes = 400_000 * 8 * 8
    assert peaks[1] < 2.0 * peaks[0], peaks  # not ten times
    assert peaks[1] < data_bytes / 2, peaks  # far from holding the data


def test_local_model_rounds_are_constant():
    rounds = set()
    for n in (3000, 30000):
        X = make_ball_blobs(n, 2, 4, generator=n)[0]
        res = local_kmeans(X, 4, epsilon=5.0, radius=1.0, random_state=0)
        rounds.add(res.n_rounds)
        assert res.cluster_centers.shape == (4, 2)
    assert rounds == {2}


def test_local_model_bad_input():
    X = np.zeros((10, 2))
    with pytest.raises(ValueError, match="Invalid radius"):
        local_kmeans(X, 2, epsilon=1.0, radius=None, random_state=0)
    with pytest.raises(ValueError, match="Invalid epsilon"):
        local_kmeans(X, 2, epsilon=0.0, radius=1.0, random_state=0)
    X[0, 0] = np.inf
    with pytest.raises(ValueError, match="Invalid X"):
        local_kmeans(X, 2, epsilon=1.0, radius=1.0, random_state=0)


def test_randomized_response_ratio_within_e_eps():
    eps, k, n = 1.0, 5, 400_000
    rng = np.random.default_rng(0)
    a = randomized_response(np.zeros(n, np.int64), k, eps, rng)
    b = randomized_response(np.ones(n, np.int64), k, eps, rng)
    pa = np.bincount(a, minlength=k) / n
    pb = np.bincount(b, minlength=k) / n
    keep = math.exp(eps) / (math.exp(eps) + k - 1)
    assert pa[0] == pytest.approx(keep, abs=5e-3) and pb[1] == pytest.approx(keep, abs=5e-3)
    assert np.max(pa / pb) <= math.exp(eps) * 1.05  # exact ratio is e^eps at the truth
    # one user's change moves only that user's report
    x = np.arange(100) % k
    y = x.copy()
    y[17] = (y[17] + 1) % k
    ra = randomized_response(x, k, eps, np.random.default_rng(9))
    rb = randomized_response(y, k, eps, np.random.default_rng(9))
    assert np.array_equal(np.delete(ra, 17), np.delete(rb, 17))
