"""The Dask path (same release as in memory, bounded memory) and the local model."""

from __future__ import annotations

import math
import tracemalloc

import numpy as np
import pytest

from neurips18.datasets.synthetic import make_ball_blobs
from neurips18.privacy import (
    PrivacyAccountant,
    PrivateKMeans,
    _core,
    _data,
    kmeans_cost,
    local_kmeans,
    randomized_response,
)


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


def test_memory_stays_bounded_when_n_grows_tenfold():
    pytest.importorskip("dask.array")
    import dask

    peaks, fits = [], []
    for n in (40_000, 400_000):
        X = _lazy_blobs(n, 8)
        with dask.config.set(scheduler="synchronous"):
            tracemalloc.start()
            fits.append(PrivateKMeans(5, epsilon=1.0, delta=1e-6, radius=1.0,
                                      random_state=0).fit(X))
            peaks.append(tracemalloc.get_traced_memory()[1])
            tracemalloc.stop()
    data_bytes = 400_000 * 8 * 8
    assert peaks[1] < 2.0 * peaks[0], peaks  # not ten times
    assert peaks[1] < data_bytes / 2, peaks  # far from holding the data
    # why: past HEAVY_CAPACITY rows a histogram holds only the cells above the floor
    # n // (HEAVY_CAPACITY + 1) + 1, found by a bounded summary (one cell per point at the
    # finest radius otherwise)
    for n, m in zip((40_000, 400_000), fits, strict=True):
        hist = [e for e in m.ledger_.entries if "histogram" in e.step]
        assert hist and all(e.floor == _core.cell_floor(n) for e in hist)
        assert all(e.size <= _core.HEAVY_CAPACITY for e in hist)
    assert _core.cell_floor(40_000) == 1 and _core.cell_floor(400_000) > 1


def test_heavy_hitter_summary_keeps_every_cell_above_its_bound():
    rng = np.random.default_rng(3)
    keys = np.concatenate([rng.integers(0, 40, 3000), rng.integers(0, 10**6, 6000)])
    rng.shuffle(keys)
    cap = 25
    parts = []
    for block in np.array_split(keys, 13):  # blocks reduced in a random tree order
        u, c = np.unique(block, return_counts=True)
        parts.append(_data.prune({"keys": u, "cell_counts": c.astype(np.int64),
                                  "__pruned": np.int64(0)}, cap))
    while len(parts) > 1:
        i = int(rng.integers(0, len(parts) - 1))
        parts[i:i + 2] = [_data.prune(_data.merge(parts[i], parts[i + 1]), cap)]
    summary = parts[0]
    assert summary["keys"].size <= cap and summary["__pruned"]
    u, c = np.unique(keys, return_counts=True)
    bound = keys.size / (cap + 1)
    assert set(u[c > bound]) <= set(summary["keys"].tolist())
    exact = dict(zip(u.tolist(), c.tolist(), strict=True))
    for k, v in zip(summary["keys"].tolist(), summary["cell_counts"].tolist(), strict=True):
        assert exact[k] - bound <= v <= exact[k]  # lower bounds, off by at most the bound


def test_release_does_not_depend_on_the_summary_size(monkeypatch):
    """With the floor fixed (the one a summary of 40 cells guarantees), a summary pruned
    hard (so its cells are recounted) and an exact table give the same release, in memory
    and from Dask blocks."""
    X = make_ball_blobs(20_000, 4, 5, generator=5)[0]
    monkeypatch.setattr(_core, "cell_floor", lambda n, capacity=None: n // 41 + 1)
    kw = dict(epsilon=2.0, delta=1e-6, radius=1.0, random_state=4)
    monkeypatch.setattr(_core, "HEAVY_CAPACITY", 2**40)
    exact = PrivateKMeans(5, **kw).fit(X)
    monkeypatch.setattr(_core, "HEAVY_CAPACITY", 40)
    small = PrivateKMeans(5, **kw).fit(X)
    assert small.n_passes_ > exact.n_passes_  # recount passes ran
    assert small.n_candidates_ > 0
    assert np.array_equal(small.cluster_centers_, exact.cluster_centers_)
    assert [e.to_dict() for e in small.ledger_.entries] == \
        [e.to_dict() for e in exact.ledger_.entries]
    da = pytest.importorskip("dask.array")
    import dask

    with dask.config.set(scheduler="synchronous"):
        dsk = PrivateKMeans(5, **kw).fit(da.from_array(X, chunks=(3000, 4)))
    assert np.array_equal(dsk.cluster_centers_, exact.cluster_centers_)


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


@pytest.mark.parametrize("eps", [710.0, 1e6])
def test_randomized_response_and_the_local_model_take_a_large_epsilon(eps):
    # e^eps overflows a float past eps ~ 709.8: the probabilities are computed without it
    x = np.arange(1000) % 7
    assert np.array_equal(randomized_response(x, 7, eps, np.random.default_rng(0)), x)
    X = make_ball_blobs(3000, 2, 3, generator=4)[0]
    res = local_kmeans(X, 3, epsilon=eps, radius=1.0, random_state=0)
    assert np.isfinite(res.cluster_centers).all()


@pytest.mark.parametrize("eps, k", [(15.0, 2), (20.3, 2), (25.0, 3), (30.0, 5), (35.0, 5),
                                     (40.0, 2), (60.0, 3)])
def test_randomized_response_coin_keeps_the_ratio_at_a_large_epsilon(eps, k):
    """The coin is U < c with U = Generator.random(), a multiple of 2**-53. For the ratio
    P(keep) / P(other) <= e^eps, the values of U that change a report must number at
    least 2**53 (k - 1) / (e^eps + k - 1): the largest ones, down to u_min below. The coin
    was compared with the float keep probability, rounded up: at eps = 40 that is 1.0 and
    no report was ever changed (an infinite ratio), and from eps ~ 20 u_min could keep
    the true value (a ratio above e^eps, 4 % of the flips short at eps = 35)."""
    mpmath = pytest.importorskip("mpmath")

    class FixedU(np.random.Generator):  # every uniform draw is one chosen value of U
        def __init__(self, u):
            super().__init__(np.random.PCG64(0))
            self.u = u

        def random(self, size=None, dtype=np.float64, out=None):
            return np.full(size, self.u)

    with mpmath.workdps(60):
        need = mpmath.mpf(k - 1) / (mpmath.exp(eps) + k - 1)  # least flip probability
        steps = int(mpmath.ceil(need * mpmath.mpf(2) ** 53))
    u_min = (2**53 - steps) / 2.0**53  # exact: an integer times 2**-53
    x = np.zeros(50, dtype=np.int64)
    assert (randomized_response(x, k, eps, FixedU(u_min)) != 0).all()
    assert (randomized_response(x, k, eps, FixedU(1.0 - 2.0**-53)) != 0).all()
    assert (randomized_response(x, k, eps, FixedU(0.5)) == 0).all()  # most draws keep


@pytest.mark.parametrize("args, name", [
    ((np.array([0, 1, 2]), 2, 1.0), "values"),  # a value outside [0, n_values)
    ((np.array([-1, 0]), 2, 1.0), "values"),
    ((np.array([0.5, 1.2]), 3, 1.0), "values"),  # not integers
    ((np.array([0, 1]), 0, 1.0), "n_values"),
    ((np.array([0, 1]), 2, -1.0), "epsilon"),  # a negative level flips more than it keeps
    ((np.array([0, 1]), 2, 0.0), "epsilon"),
])
def test_randomized_response_checks_its_input(args, name):
    with pytest.raises(ValueError, match=f"Invalid {name}"):
        randomized_response(*args, np.random.default_rng(0))


def test_a_dask_dataframe_gets_a_clear_error_and_spends_nothing():
    """A Dask DataFrame went down the Dask-array path and failed with "AttributeError:
    'DataFrame' object has no attribute 'dtype'" (fit, predict, transform, score and
    kmeans_cost alike); it is now an error naming X and the conversion."""
    dd = pytest.importorskip("dask.dataframe")
    pd = pytest.importorskip("pandas")
    X = make_ball_blobs(500, 2, 2, generator=1)[0]
    df = dd.from_pandas(pd.DataFrame(X, columns=["a", "b"]), npartitions=2)
    acc = PrivacyAccountant(epsilon=1.0)
    with pytest.raises(ValueError, match=r"Invalid X: .*to_dask_array\(lengths=True\)"):
        PrivateKMeans(2, epsilon=1.0, radius=1.0, accountant=acc).fit(df)
    assert acc.ledger == []
    m = PrivateKMeans(2, epsilon=1.0, radius=1.0, random_state=0).fit(X)
    for use in (m.predict, m.transform, m.score,
                lambda d: kmeans_cost(d, m.cluster_centers_, radius=1.0)):
        with pytest.raises(ValueError, match="Invalid X: .*to_dask_array"):
            use(df)
    # converted as the message says, it is the in-memory fit
    conv = PrivateKMeans(2, epsilon=1.0, radius=1.0, random_state=0).fit(
        df.to_dask_array(lengths=True))
    np.testing.assert_array_equal(conv.cluster_centers_, m.cluster_centers_)


def test_a_dask_refit_drops_the_column_names_of_an_earlier_dataframe_fit():
    da = pytest.importorskip("dask.array")
    pd = pytest.importorskip("pandas")
    X = make_ball_blobs(2000, 3, 3, generator=5)[0]
    m = PrivateKMeans(3, epsilon=1.0, delta=1e-6, radius=1.0, random_state=0)
    m.fit(pd.DataFrame(X, columns=list("abc")))
    m.fit(da.from_array(X[:, ::-1], chunks=500))  # other columns, no names
    # the names of the first fit described columns this release was not fitted on
    assert not hasattr(m, "feature_names_in_") and m.n_features_in_ == 3


def test_data_prepared_once_gives_the_same_release(monkeypatch):
    X = make_ball_blobs(40_000, 5, 4, generator=8)[0]
    X[:5] *= 3.0  # rows outside the ball are clipped the same way
    kw = dict(epsilon=1.0, delta=1e-6, radius=1.0, random_state=2)
    once = PrivateKMeans(4, **kw).fit(X)
    monkeypatch.setattr(_data, "CACHE_BYTES", 0)  # every pass prepares its blocks
    per_pass = PrivateKMeans(4, **kw).fit(X)
    assert np.array_equal(once.cluster_centers_, per_pass.cluster_centers_)
    assert once.n_clipped_ == per_pass.n_clipped_ == 5
    assert [e.to_dict() for e in once.ledger_.entries] == \
        [e.to_dict() for e in per_pass.ledger_.entries]


def test_dask_predict_transform_score_with_column_chunks():
    """fit joins a Dask array's column chunks; predict, transform and score must too (they
    raised 'Dimension 1 has 2 blocks' on data that fit accepted)."""
    da = pytest.importorskip("dask.array")
    import dask

    X = make_ball_blobs(3000, 3, 3, generator=4)[0]
    m = PrivateKMeans(3, epsilon=1.0, delta=1e-6, radius=1.0, random_state=0).fit(X)
    with dask.config.set(scheduler="synchronous"):
        for chunks in [((1000, 37, 1963), (1, 2)), (700, 1)]:
            dx = da.from_array(X, chunks=chunks)
            assert np.array_equal(m.predict(dx).compute(), m.predict(X))
            assert np.allclose(m.transform(dx).compute(), m.transform(X), rtol=0, atol=1e-12)
            assert m.score(dx) == pytest.approx(m.score(X), rel=1e-12)
            fit = PrivateKMeans(3, epsilon=1.0, delta=1e-6, radius=1.0, random_state=0).fit(dx)
            assert np.array_equal(fit.cluster_centers_, m.cluster_centers_)


@pytest.mark.parametrize("d", [1, 3, 50])
@pytest.mark.parametrize("eps", [1.0, 1e-3, 1e-6, 1e-9])
def test_local_point_noise_covers_the_rounding_of_a_coarser_grid(d, eps):
    """A user's noisy point: discrete Laplace of scale t_g on the grid coarsened by g. Its
    L1 sensitivity there is 2**31 sqrt(d) / g + d (when g > 1, each coordinate's rounding
    moves it by up to one coarse step), so t_g >= that / eps. The scale used to add only d
    steps, short of d / eps below eps = 1 when the grid was coarsened (eps < ~4e-6 sqrt(d))."""
    from neurips18.privacy._local import point_noise_scale

    g, t_g = point_noise_scale(d, eps)
    sens = 2.0**31 * math.sqrt(d) / g + (d if g > 1 else 0)
    assert sens / t_g <= eps and t_g < 2**56
    if g == 1:  # the grid kept: the same scale as before (releases unchanged)
        assert t_g == math.ceil(2.0**31 * math.sqrt(d) / eps * (1 + 1e-12)) + 1 + d


def test_dask_score_with_an_empty_block():
    """A Dask array with a block of no rows (a boolean selection after
    compute_chunk_sizes gives them) fits, predicts and transforms as in memory, but score
    raised "zero-size array to reduction operation minimum which has no identity"."""
    da = pytest.importorskip("dask.array")
    X = make_ball_blobs(900, 2, 3, generator=2)[0]
    m = PrivateKMeans(3, epsilon=1.0, radius=1.0, random_state=3).fit(X)
    for chunks in [(0, 450, 0, 450), (1, 1, 1, 897), (900,)]:
        dX = da.from_array(X, chunks=(chunks, (2,)))
        assert m.score(dX) == pytest.approx(m.score(X), rel=1e-12)
    keep = np.zeros(900, dtype=bool)
    keep[300:600] = True  # the first and the last of three blocks keep no row
    sel = da.from_array(X, chunks=300)[da.from_array(keep, chunks=300)]
    sel.compute_chunk_sizes()
    assert sel.chunks[0] == (0, 300, 0)
    assert m.score(sel) == pytest.approx(m.score(X[keep]), rel=1e-12)


def test_local_model_refuses_complex_data_and_names_a_missing_value():
    """local_kmeans cast its X to float64 directly: a complex X lost its imaginary part
    (a release from the real parts, with only NumPy's ComplexWarning), and a frame with a
    pd.NA was 'not convertible to float64'. It checks X as fit and kmeans_cost do now."""
    import pandas as pd

    rng = np.random.default_rng(0)
    X = rng.normal(0.0, 0.3, (60, 2))
    with pytest.raises(ValueError, match="Invalid X: .*complex128 .*numeric data"):
        local_kmeans(X + 1j * X, 2, epsilon=1.0, radius=1.0, random_state=0)
    frame = pd.DataFrame({"a": pd.array([1.0] * 59 + [None], dtype="Float64"), "b": X[:, 1]})
    with pytest.raises(ValueError, match="Invalid X: .*finite values; found 1 NaN"):
        local_kmeans(frame, 2, epsilon=1.0, radius=1.0, random_state=0)
    ints = pd.DataFrame({"a": pd.array(np.arange(60) % 3, dtype="Int64"), "b": X[:, 1]})
    got = local_kmeans(ints, 2, epsilon=1.0, radius=4.0, random_state=0).cluster_centers
    ref = local_kmeans(ints.to_numpy(dtype=float), 2, epsilon=1.0, radius=4.0,
                       random_state=0).cluster_centers
    assert np.array_equal(got, ref)


@pytest.mark.parametrize("d", [1, 100])
def test_local_model_refuses_an_epsilon_its_randomizers_cannot_use(d):
    """Below about 3e-16 randomized response's keep and other probabilities are equal in
    floating point and the debiasing divided by zero (NumPy's 'Probabilities contain NaN'
    came out of the server's k-means); far below, the point noise's scale left the
    sampler's range ('Invalid t', an OverflowError). Such an epsilon is refused by name,
    with the least one that works, which runs without a warning."""
    import warnings

    from neurips18.privacy._local import _least_local_epsilon

    X = np.random.default_rng(0).normal(0.0, 0.3, (300, d))
    least = _least_local_epsilon(d, 3)
    for eps in (1e-16, 1e-20, 1e-30, 1e-300, least * (1 - 1e-6)):
        with pytest.raises(ValueError, match=f"Invalid epsilon: .*d={d}, n_clusters=3, "
                           f"epsilon of about {least:.3g} or more"):
            local_kmeans(X, 3, epsilon=eps, radius=1.0, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for eps in (least, least * 10):
            c = local_kmeans(X, 3, epsilon=eps, radius=1.0, random_state=0).cluster_centers
            assert c.shape == (3, d) and np.isfinite(c).all()


def test_kmeans_cost_of_a_dask_array_checks_it_as_an_in_memory_one():
    """kmeans_cost(X, centres, radius) with a Dask X checked only its type and shape: a NaN
    or an inf in X gave a NaN cost (in memory: an error naming X) and an X of no rows a
    cost of 0 (in memory: refused)."""
    da = pytest.importorskip("dask.array")
    X = np.random.default_rng(0).normal(size=(100, 3)) * 0.2
    C = np.array([[0.0, 0.0, 0.0], [0.3, 0.3, 0.3]])
    assert kmeans_cost(da.from_array(X, chunks=30), C, 1.0) == \
        pytest.approx(kmeans_cost(X, C, 1.0), rel=1e-12)
    for bad in (np.nan, np.inf):
        Xb = X.copy()
        Xb[5, 1] = bad
        with pytest.raises(ValueError, match="Invalid X.*found 1 NaN or inf"):
            kmeans_cost(Xb, C, 1.0)
        with pytest.raises(ValueError, match="Invalid X.*found 1 NaN or inf"):
            kmeans_cost(da.from_array(Xb, chunks=30), C, 1.0)
    with pytest.raises(ValueError, match="Invalid X.*at least 1 row"):
        kmeans_cost(da.zeros((0, 3), chunks=30), C, 1.0)


def test_data_without_columns_is_refused_before_the_accountant_is_charged():
    """A Dask array of shape (n, 0) passed the checks of fit (an in-memory one is refused):
    the accountant was charged and the fit then died in a ZeroDivisionError, a budget spent
    on no release. local_kmeans failed with 'cannot reshape array of size 0' and
    kmeans_cost returned 0."""
    da = pytest.importorskip("dask.array")
    for delta in (1e-6, 0.0):
        acc = PrivacyAccountant(10.0, 1e-3)
        with pytest.raises(ValueError, match=r"Invalid X.*at least 1 column"):
            PrivateKMeans(2, epsilon=1.0, delta=delta, radius=1.0,
                          accountant=acc).fit(da.zeros((100, 0), chunks=50))
        assert acc.ledger == []
    with pytest.raises(ValueError, match=r"Invalid X.*at least 1 column"):
        local_kmeans(np.zeros((100, 0)), 2, epsilon=1.0, radius=1.0, random_state=0)
    for X in (np.zeros((100, 0)), da.zeros((100, 0), chunks=50)):
        with pytest.raises(ValueError, match=r"Invalid X.*at least 1 column"):
            kmeans_cost(X, np.zeros((2, 0)), 1.0)
