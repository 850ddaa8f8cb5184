"""PrivateKMeans: bad input, ledger sums, the accountant, scikit-learn compatibility."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils.estimator_checks import parametrize_with_checks

from neurips18.datasets.synthetic import make_ball_blobs
from neurips18.privacy import BudgetExceededError, PrivacyAccountant, PrivateKMeans


@pytest.fixture(scope="module")
def blobs():
    return make_ball_blobs(4000, 3, 4, generator=0)[0]


@pytest.mark.parametrize("kw, name", [
    ({"epsilon": 0.0}, "epsilon"), ({"epsilon": -1.0}, "epsilon"),
    ({"epsilon": math.inf}, "epsilon"), ({"epsilon": math.nan}, "epsilon"),
    ({"delta": -1e-9}, "delta"), ({"delta": 1.0}, "delta"),
    ({"radius": 0.0}, "radius"), ({"radius": -2.0}, "radius"), ({"radius": None}, "radius"),
    ({"n_clusters": 0}, "n_clusters"), ({"n_clusters": 5000}, "n_clusters"),
    ({"method": "kmeans"}, "method"), ({"method": "kaplan-stemmer", "delta": 0.0}, "delta"),
    ({"random_state": -1}, "random_state"), ({"faithful": 1}, "faithful"),
    ({"method": "lloyd", "faithful": True}, "faithful"),
    ({"delta": 0.0, "faithful": True}, "faithful"),
])
def test_bad_parameters_name_the_parameter(blobs, kw, name):
    params = {"epsilon": 1.0, "delta": 1e-6, "radius": 1.0, "n_clusters": 4, **kw}
    with pytest.raises(ValueError, match=f"Invalid {name}"):
        PrivateKMeans(**params).fit(blobs)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_inf_rejected(blobs, bad):
    X = blobs.copy()
    X[3, 1] = bad
    with pytest.raises(ValueError, match="Invalid X.*NaN or inf"):
        PrivateKMeans(4, epsilon=1.0, delta=1e-6, radius=1.0).fit(X)


def test_dataframe_with_missing_values_and_sparse():
    pd = pytest.importorskip("pandas")
    from scipy import sparse

    df = pd.DataFrame({"a": [0.1, None, 0.3], "b": [0.0, 0.2, 0.1]})
    with pytest.raises(ValueError, match="Invalid X"):
        PrivateKMeans(1, epsilon=1.0, radius=1.0).fit(df)
    with pytest.raises(TypeError, match="[Ss]parse"):
        PrivateKMeans(1, epsilon=1.0, radius=1.0).fit(sparse.random(10, 3, format="csr"))


def test_dataframe_fit_keeps_names_without_warnings(blobs):
    """A fit on a clean DataFrame records its column names and warns of nothing; labels_
    are the predictions on the same frame."""
    import warnings

    pd = pytest.importorskip("pandas")
    df = pd.DataFrame(blobs, columns=["a", "b", "c"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = PrivateKMeans(4, epsilon=1.0, delta=1e-6, radius=1.0, random_state=0).fit(df)
        assert np.array_equal(m.labels_, m.predict(df))
    assert list(m.feature_names_in_) == ["a", "b", "c"]


def test_input_untouched_clipping_counted(blobs):
    X = blobs.copy()
    X[:10] *= 5.0  # ten rows outside the ball
    before = X.copy()
    m = PrivateKMeans(4, epsilon=1.0, delta=1e-6, radius=1.0, random_state=0).fit(X)
    assert np.array_equal(X, before)
    assert m.n_clipped_ == 10
    assert np.all(np.linalg.norm(m.cluster_centers_, axis=1) <= 1.0 + 1e-12)


@pytest.mark.parametrize("method, delta, faithful", [
    ("kaplan-stemmer", 1e-6, False), ("kaplan-stemmer", 1e-6, True), ("auto", 1e-6, True),
    ("lloyd", 0.0, False), ("lloyd", 1e-6, False), ("auto", 0.0, False)])
def test_ledger_adds_up_to_the_request(blobs, method, delta, faithful):
    m = PrivateKMeans(4, epsilon=0.7, delta=delta, radius=1.0, method=method,
                      faithful=faithful, random_state=1).fit(blobs)
    eps, dl = m.privacy_spent_
    assert eps == pytest.approx(0.7, abs=1e-12) and dl == pytest.approx(delta, abs=1e-18)
    t = m.ledger_.totals()
    assert t["epsilon_effective"] <= t["epsilon"] + 1e-12
    for e in m.ledger_.entries:  # every entry's charge recomputed from its noise
        if e.size == 0:
            continue
        if e.mechanism == "gaussian":
            assert e.rho == pytest.approx(e.sensitivity**2 / (2 * e.noise**2))
            assert e.rho <= e.charged_rho * (1 + 1e-12)
        else:
            assert e.epsilon == pytest.approx(e.sensitivity / e.noise)
            assert e.epsilon <= e.charged_epsilon * (1 + 1e-12)
    if m.method_ == "kaplan-stemmer":
        assert t["rho"] == pytest.approx(m.ledger_.rho, rel=1e-12)
        assert t["delta_threshold"] == pytest.approx(delta / 2, rel=1e-12)
        # sums of points in the unit ball: sensitivity 2 (one row replaced) plus one grid
        # step per coordinate that can change (2 cells x d) for the rounding to the grid
        # (offset sums of the refinement: 2 x the clipping radius, released before them)
        sums = [e for e in m.ledger_.entries if "sums" in e.step and e.size]
        d = blobs.shape[1]
        unit = [2.0**-30 if "offset" not in e.step else
                float(e.step.rsplit("clipped to ", 1)[1].rstrip(")")) * 2.0**-30 for e in sums]
        expect = [2.0 * u * 2**30 + (math.sqrt(2 * d) * e.granularity if e.granularity > u
                                     else 0) for e, u in zip(sums, unit, strict=True)]
        assert sums and [e.sensitivity for e in sums] == pytest.approx(expect, rel=1e-12)
        assert any("offset" in e.step for e in sums) == (not faithful)
        # the spread released before each clipped step: sum of squared distances, each
        # capped at (2 radius)^2 = 4
        spread = [e for e in m.ledger_.entries if "spread" in e.step]
        assert len(spread) == (0 if faithful else 2)
        for e in spread:
            assert e.sensitivity == pytest.approx(4.0 + (e.granularity if e.granularity >
                                                         4.0 * 2.0**-30 else 0), rel=1e-12)
        counts = [e for e in m.ledger_.entries if "count" in e.step or "histogram" in e.step]
        assert all(e.sensitivity == pytest.approx(math.sqrt(2)) for e in counts if e.size)


def test_accountant_refuses_to_overspend(blobs):
    acc = PrivacyAccountant(epsilon=1.0, delta=1e-6)
    m = PrivateKMeans(4, epsilon=0.6, delta=5e-7, radius=1.0, accountant=acc, random_state=0)
    m.fit(blobs)
    first = m.cluster_centers_.copy()
    assert acc.spent == pytest.approx((0.6, 5e-7))
    with pytest.raises(BudgetExceededError, match="nothing was computed"):
        m.fit(blobs)  # a second fit of 0.6 does not fit in the 0.4 left
    assert np.array_equal(m.cluster_centers_, first) and len(acc.ledger) == 1
    fresh = PrivateKMeans(4, epsilon=0.5, delta=0.0, radius=1.0, accountant=acc)
    with pytest.raises(BudgetExceededError):
        fresh.fit(blobs)
    assert not hasattr(fresh, "cluster_centers_")
    PrivateKMeans(4, epsilon=0.4, delta=5e-7, radius=1.0, accountant=acc).fit(blobs)
    assert acc.remaining[0] == pytest.approx(0.0, abs=1e-12)


def test_clones_and_copies_spend_from_the_same_accountant(blobs):
    """clone (used by cross_val_score, GridSearchCV) and deepcopy must not fork the budget:
    a fit of a copy is charged to the user's accountant, and an overspend by a copy
    raises."""
    import copy

    from sklearn.base import clone
    from sklearn.model_selection import cross_val_score

    acc = PrivacyAccountant(epsilon=1.0, delta=1e-6)
    m = PrivateKMeans(4, epsilon=0.3, delta=2e-7, radius=1.0, accountant=acc, random_state=0)
    assert clone(m).accountant is acc and copy.deepcopy(m).accountant is acc
    clone(m).fit(blobs)
    assert acc.spent == pytest.approx((0.3, 2e-7)) and len(acc.ledger) == 1
    copy.deepcopy(m).fit(blobs)
    assert len(acc.ledger) == 2
    with pytest.raises(BudgetExceededError):  # 3 folds of 0.3 do not fit in the 0.4 left
        cross_val_score(m, blobs, cv=3, error_score="raise")
    assert acc.spent[0] <= 1.0 + 1e-12


def test_same_seed_same_release_and_pipeline(blobs):
    a = PrivateKMeans(4, epsilon=1.0, delta=1e-6, radius=1.0, random_state=3).fit(blobs)
    b = PrivateKMeans(4, epsilon=1.0, delta=1e-6, radius=1.0, random_state=3).fit(blobs)
    c = PrivateKMeans(4, epsilon=1.0, delta=1e-6, radius=1.0, random_state=4).fit(blobs)
    assert np.array_equal(a.cluster_centers_, b.cluster_centers_)
    assert not np.array_equal(a.cluster_centers_, c.cluster_centers_)
    pipe = make_pipeline(FunctionTransformer(lambda x: x / 2.0),
                         PrivateKMeans(4, epsilon=1.0, delta=1e-6, radius=0.5, random_state=3))
    labels = pipe.fit(blobs).predict(blobs)
    assert labels.shape == (blobs.shape[0],) and set(labels) <= set(range(4))
    assert a.transform(blobs).shape == (blobs.shape[0], 4) and a.score(blobs) < 0


def test_good_clusters_on_easy_data():
    X, y = make_ball_blobs(20000, 5, 4, generator=5)
    from sklearn.cluster import KMeans

    opt = KMeans(4, n_init=3, random_state=0).fit(X).inertia_
    m = PrivateKMeans(4, epsilon=1.0, delta=1e-6, radius=1.0, random_state=0).fit(X)
    assert -m.score(X) / opt < 1.2


# expected failures of scikit-learn's checks, with the reason: none. (epsilon has no
# default on purpose; scikit-learn's checks accept a required keyword-only parameter.)
EXPECTED_FAILURES: dict[str, str] = {}


@parametrize_with_checks(
    [PrivateKMeans(3, epsilon=1e4, delta=1e-5, radius=10.0, random_state=0),
     PrivateKMeans(3, epsilon=1e4, radius=10.0, method="lloyd", random_state=0)],
    expected_failed_checks=lambda est: EXPECTED_FAILURES,
)
def test_sklearn_compatible(estimator, check):
    check(estimator)


def test_kmeans_cost_is_the_inertia_and_clips_to_the_domain():
    from sklearn.cluster import KMeans

    from neurips18.privacy import kmeans_cost

    X = np.random.default_rng(3).standard_normal((500, 3))
    km = KMeans(4, n_init=2, random_state=0).fit(X)
    assert kmeans_cost(X, km.cluster_centers_) == pytest.approx(km.inertia_, rel=1e-9)
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    clipped = X * np.minimum(1.0, 0.5 / norms)
    assert kmeans_cost(X, km.cluster_centers_, radius=0.5) == pytest.approx(
        kmeans_cost(clipped, km.cluster_centers_), rel=1e-9)


@pytest.mark.parametrize("args, kw, name", [
    # a negative radius mapped every row onto the opposite side of the sphere: 103.8
    # instead of 3.49 on points in [0, 0.5]^2, without a word
    ((), {"radius": -1.0}, "radius"), ((), {"radius": 0.0}, "radius"),
    ((slice(None), slice(0, 1)), {}, "centres"),  # a column short
    ((0,), {}, "centres"),  # one centre as a 1-D vector
    ((slice(0, 0),), {}, "centres"),  # no centre: the cost was inf
])
def test_kmeans_cost_checks_its_input(args, kw, name):
    from neurips18.privacy import kmeans_cost

    X = np.random.default_rng(0).uniform(0.0, 0.5, (100, 2))
    C = X[:3].copy()
    with pytest.raises(ValueError, match=f"Invalid {name}"):
        kmeans_cost(X, C[args] if args else C, **kw)
    Xn = X.copy()
    Xn[4, 1] = np.nan
    with pytest.raises(ValueError, match="Invalid X"):
        kmeans_cost(Xn, C)


def test_a_refused_refit_leaves_the_fitted_estimator_unchanged(blobs):
    """A refit that raises (budget overspent, n_clusters > n) must not leave the previous
    release paired with the refused data's feature count or column names."""
    pd = pytest.importorskip("pandas")
    acc = PrivacyAccountant(epsilon=1.5, delta=1e-5)
    df = pd.DataFrame(blobs, columns=["a", "b", "c"])
    m = PrivateKMeans(4, epsilon=1.0, delta=1e-6, radius=1.0, accountant=acc, random_state=0)
    m.fit(df)
    before = m.predict(df)
    wide = pd.DataFrame(np.hstack([blobs, blobs[:, :1]]), columns=["w", "x", "y", "z"])
    with pytest.raises(BudgetExceededError):
        m.fit(wide)
    with pytest.raises(ValueError, match="Invalid n_clusters"):
        m.set_params(n_clusters=10).fit(wide.iloc[:5])
    assert m.n_features_in_ == 3 and list(m.feature_names_in_) == ["a", "b", "c"]
    assert np.array_equal(m.predict(df), before)
    fresh = PrivateKMeans(4, epsilon=1.0, delta=1e-6, radius=1.0, accountant=acc)
    with pytest.raises(BudgetExceededError):
        fresh.fit(df)
    assert not hasattr(fresh, "n_features_in_") and not hasattr(fresh, "feature_names_in_")


def _least_epsilon(message: str) -> float:
    import re

    return float(re.search(r"needs epsilon > ([0-9.e+-]+)\)", message).group(1))


@pytest.mark.parametrize("kw", [dict(delta=1e-6), dict(delta=1e-6, faithful=True),
                                dict(delta=1e-6, method="lloyd"), dict(delta=0.0)])
def test_an_epsilon_too_small_for_the_samplers_is_refused_before_spending(kw):
    """Below some epsilon (smaller at larger d) a release's noise is past the exact
    samplers' range (the grid's rounding alone needs it). That is known from (n, d) and the
    request: the fit refuses it first, naming epsilon and the least that works, and the
    accountant is not charged. (It used to spend the budget, draw noise and end in an
    OverflowError.) Just above that least epsilon every release fits."""
    rng = np.random.default_rng(0)
    d = 2000 if kw.get("delta") else 20
    X = rng.standard_normal((200, d)) * 0.01
    acc = PrivacyAccountant(epsilon=10.0, delta=1e-4)
    tiny = 1e-4 if kw.get("delta") else 1e-17
    with pytest.raises(ValueError, match="Invalid epsilon") as err:
        PrivateKMeans(2, epsilon=tiny, radius=1.0, accountant=acc, **kw).fit(X)
    least = _least_epsilon(str(err.value))
    with pytest.raises(ValueError, match="Invalid epsilon"):
        PrivateKMeans(2, epsilon=least * 0.97, radius=1.0, accountant=acc, **kw).fit(X)
    assert acc.ledger == []
    m = PrivateKMeans(2, epsilon=least * 1.03, radius=1.0, random_state=0, **kw).fit(X)
    assert np.isfinite(m.cluster_centers_).all()


@pytest.mark.parametrize("method, delta, faithful", [
    ("kaplan-stemmer", 1e-6, False), ("kaplan-stemmer", 1e-6, True), ("lloyd", 0.0, False),
    ("lloyd", 1e-6, False)])
def test_the_noise_plan_lists_every_release_of_a_fit(blobs, method, delta, faithful):
    """The plan checked before a fit (``_core.noise_plan``) is the schedule the fit runs:
    every ledger entry's share of the budget is one of the plan's."""
    from neurips18.privacy import _core

    m = PrivateKMeans(4, epsilon=1.0, delta=delta, radius=1.0, method=method,
                      faithful=faithful, random_state=0).fit(blobs)
    pure = m.ledger_.mode == "pure"
    total = m.ledger_.epsilon if pure else m.ledger_.rho
    shares = [s for _, s, _, _ in _core.noise_plan(m.method_, faithful, *blobs.shape, pure)]
    for e in m.ledger_.entries:
        got = (e.charged_epsilon if pure else e.charged_rho) / total
        assert min(abs(got - s) for s in shares) < 1e-12, e.step


def test_radius_outside_the_range_the_arithmetic_holds_is_refused():
    """The grid, the spread's cap 4 radius^2 and the distances are floats: past about
    1e+-150 they overflow (radius 1e300 released all-zero centres with overflow warnings;
    radius 1e-150 cast inf to int64 in the spread, whose sum then had no sensitivity
    bound). A radius outside [1e-100, 1e100] is refused."""
    from neurips18.privacy import local_kmeans

    X = make_ball_blobs(500, 3, 3, generator=0)[0]
    for r in (1e-150, 1e-300, 1e150, 1e300):
        with pytest.raises(ValueError, match="Invalid radius"):
            PrivateKMeans(3, epsilon=1.0, delta=1e-6, radius=r).fit(X * r)
        with pytest.raises(ValueError, match="Invalid radius"):
            local_kmeans(X * r, 3, epsilon=1.0, radius=r, random_state=0)


@pytest.mark.parametrize("r", [1e-100, 1e-12, 1e-6, 1e3, 1e100])
def test_the_release_does_not_depend_on_the_unit(r):
    """Data and radius scaled by r give the same release scaled by r. The non-private
    k-means on the coreset stopped when no centre moved by 1e-12 in absolute terms, so
    at radius 1e-12 it stopped after one Lloyd iteration and released other centres."""
    import warnings

    from neurips18.privacy import local_kmeans

    X = make_ball_blobs(2000, 3, 3, generator=0)[0]
    for kw in (dict(delta=1e-6), dict(delta=1e-6, faithful=True), dict(delta=0.0)):
        ref = PrivateKMeans(3, epsilon=1.0, radius=1.0, random_state=0, **kw).fit(X)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            m = PrivateKMeans(3, epsilon=1.0, radius=r, random_state=0, **kw).fit(X * r)
        assert np.allclose(m.cluster_centers_ / r, ref.cluster_centers_, rtol=0, atol=1e-9)
    loc = local_kmeans(X, 3, epsilon=1.0, radius=1.0, random_state=0).cluster_centers
    loc_r = local_kmeans(X * r, 3, epsilon=1.0, radius=r, random_state=0).cluster_centers
    assert np.allclose(loc_r / r, loc, rtol=0, atol=1e-9)


def test_the_same_seed_twice_on_one_accountant_warns(blobs):
    """Basic composition (the accountant's sum) assumes independent noise. Two fits with
    one int seed draw the same noise: on neighbouring data (one row replaced) DPLloyd's
    first noisy sums and counts are then equal up to the data's difference, and the two
    releases together reveal far more than 2 epsilon. cross_val_score with a seeded
    estimator does exactly that. The second such spend warns; fresh noise does not."""
    import warnings

    from sklearn.base import clone
    from sklearn.model_selection import cross_val_score

    from neurips18.privacy import PrivacyLeakWarning

    acc = PrivacyAccountant(epsilon=10.0, delta=1e-5)
    m = PrivateKMeans(4, epsilon=0.5, delta=1e-7, radius=1.0, accountant=acc, random_state=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m.fit(blobs)
        PrivateKMeans(4, epsilon=0.5, delta=1e-7, radius=1.0, accountant=acc,
                      random_state=4).fit(blobs)
        for _ in range(2):
            PrivateKMeans(4, epsilon=0.5, delta=1e-7, radius=1.0, accountant=acc).fit(blobs)
        gen = np.random.default_rng(0)
        g = PrivateKMeans(4, epsilon=0.5, delta=1e-7, radius=1.0, accountant=acc,
                          random_state=gen)
        g.fit(blobs)
        g.fit(blobs)  # the generator has moved on: other noise
    other = blobs.copy()
    other[0] = -other[0]
    with pytest.warns(PrivacyLeakWarning, match="same fixed seed"):
        clone(m).fit(other)
    with pytest.warns(PrivacyLeakWarning):  # a clone copies the generator's state
        clone(g).fit(blobs)
        clone(g).fit(other)
    with pytest.warns(PrivacyLeakWarning):
        cross_val_score(PrivateKMeans(4, epsilon=0.5, delta=1e-7, radius=1.0, accountant=acc,
                                      random_state=5), blobs, cv=2, error_score="raise")
    assert len(acc.ledger) == 11  # every fit charged, warned or not


def test_an_int_seed_and_a_generator_of_that_seed_are_the_same_noise(blobs):
    """random_state=7 and random_state=numpy.random.default_rng(7) draw the same noise, so
    two fits charged to one accountant with them are the same-seed case; the second was
    charged without a PrivacyLeakWarning (the key told an int from a generator)."""
    from neurips18.privacy import PrivacyLeakWarning

    kw = dict(epsilon=0.5, radius=1.0)
    a = PrivateKMeans(4, random_state=7, **kw).fit(blobs)
    b = PrivateKMeans(4, random_state=np.random.default_rng(7), **kw).fit(blobs)
    np.testing.assert_array_equal(a.cluster_centers_, b.cluster_centers_)  # the same noise
    for first, second in [(7, np.random.default_rng(7)), (np.random.default_rng(8), 8)]:
        acc = PrivacyAccountant(epsilon=2.0)
        other = blobs.copy()
        other[0] = -other[0]
        PrivateKMeans(4, accountant=acc, random_state=first, **kw).fit(blobs)
        with pytest.warns(PrivacyLeakWarning, match="same fixed seed"):
            PrivateKMeans(4, accountant=acc, random_state=second, **kw).fit(other)
        assert len(acc.ledger) == 2


def test_merge_candidates_keeps_few_and_merges_many():
    from neurips18.privacy._core import merge_candidates

    rng = np.random.default_rng(0)
    c = rng.uniform(-1, 1, size=(50, 3))
    w = rng.uniform(1, 5, size=50)
    assert merge_candidates(c, w, 50, np.random.default_rng(1), 1.0) is c
    m = merge_candidates(c, w, 8, np.random.default_rng(1), 1.0)
    assert m.shape == (8, 3)
    # each merged centre is a weighted mean of candidates: inside their bounding box
    assert np.all(m >= c.min(0) - 1e-12) and np.all(m <= c.max(0) + 1e-12)
    np.testing.assert_array_equal(m, merge_candidates(c, w, 8, np.random.default_rng(1), 1.0))


def test_practical_mode_caps_the_coreset_centres_faithful_does_not():
    X = make_ball_blobs(60_000, 2, 2, generator=3)[0]
    prac = PrivateKMeans(2, epsilon=10.0, delta=1e-6, radius=1.0, random_state=0).fit(X)
    assert prac.n_candidates_ > 64  # enough heavy cells at this n and epsilon to merge
    assert prac.n_coreset_centres_ == 64
    assert prac.privacy_spent_[0] == pytest.approx(10.0, abs=1e-9)
    faith = PrivateKMeans(2, epsilon=10.0, delta=1e-6, radius=1.0, faithful=True,
                          random_state=0).fit(X)
    assert faith.n_coreset_centres_ == faith.n_candidates_
    lloyd = PrivateKMeans(2, epsilon=1.0, radius=1.0, method="lloyd", random_state=0).fit(X)
    assert lloyd.n_coreset_centres_ == 0


def test_a_pickled_accountant_is_not_a_second_budget(blobs):
    """cross_val_score and GridSearchCV with n_jobs > 1 (joblib's default process backend)
    pickle the estimator, and its accountant with it, into the workers: each fit spent
    from a copy of the budget and the user's accountant recorded nothing (3 folds of
    epsilon = 1 left it at spent = (0, 0); a grid search of 5 fits recorded only its
    refit), nor could it refuse an overspend. A copy made by pickling refuses to spend
    until it is claimed as the budget itself (a budget saved to disk and loaded again)."""
    import copy
    import pickle

    from sklearn.model_selection import cross_val_score

    acc = PrivacyAccountant(epsilon=10.0, delta=1e-5)
    m = PrivateKMeans(4, epsilon=1.0, delta=1e-6, radius=1.0, accountant=acc)
    with pytest.raises(ValueError, match="Invalid accountant: .*copy made by pickling"):
        cross_val_score(m, blobs, cv=2, n_jobs=2, error_score="raise")
    assert acc.spent == (0.0, 0.0)
    cross_val_score(m, blobs, cv=2)  # in this process: the same accountant, charged
    assert acc.spent == pytest.approx((2.0, 2e-6)) and len(acc.ledger) == 2

    fitted = pickle.loads(pickle.dumps(m.fit(blobs)))  # a fitted model saved and loaded
    assert np.array_equal(fitted.predict(blobs), m.predict(blobs))
    centres = fitted.cluster_centers_.copy()
    with pytest.raises(ValueError, match="Invalid accountant"):
        fitted.fit(blobs)
    assert np.array_equal(fitted.cluster_centers_, centres)
    assert fitted.accountant.spent == acc.spent  # what was spent is still readable
    for twin in (pickle.loads(pickle.dumps(acc)), copy.copy(acc)):
        with pytest.raises(ValueError, match="Invalid accountant"):
            twin.spend(0.1)
    saved = pickle.loads(pickle.dumps(acc))
    assert saved.claim() is saved
    saved.spend(0.5, 0.0, "after loading")
    assert saved.spent[0] == pytest.approx(acc.spent[0] + 0.5)
    assert pickle.loads(pickle.dumps(saved)).claim().remaining == saved.remaining


def test_refined_centres_follows_its_noise_bound():
    from neurips18.privacy._core import (
        PRACTICAL,
        REFINE_COUNT_SHARE,
        REFINE_SPREAD_SHARE,
        refined_centres,
    )

    def noise(n, d, m, rho):  # the expected squared noise of a refined centre / r^2
        rho_sums = rho * (1 - REFINE_SPREAD_SHARE - REFINE_COUNT_SHARE)
        return d * (2 / math.sqrt(2 * rho_sums)) ** 2 * (m / n) ** 2

    c = PRACTICAL["centre_noise"]
    for n, d, k, rho in [(1797, 64, 10, 0.001), (1797, 64, 10, 0.01), (5000, 20, 30, 0.003)]:
        m = refined_centres(n, d, k, rho)
        assert 1 <= m < k
        assert noise(n, d, m, rho) <= c < noise(n, d, m + 1, rho)
    # more points or more budget never refine fewer centres; enough of either refines all
    ms = [refined_centres(n, 64, 10, 0.01) for n in (500, 1000, 2000, 4000, 8000)]
    assert ms == sorted(ms) and ms[-1] == 10
    ms = [refined_centres(1797, 64, 10, r) for r in (1e-4, 1e-3, 1e-2, 1e-1, 1.0)]
    assert ms == sorted(ms) and ms[0] == 1 and ms[-1] == 10
    assert refined_centres(100_000, 2, 5, 1e-3) == 5
    assert refined_centres(10, 100, 5, 1e-9) == 1  # hopeless noise: one centre, not zero


def test_few_refined_centres_still_release_n_clusters_rows(blobs):
    small = blobs[:600]
    km = PrivateKMeans(8, epsilon=0.3, delta=1e-6, radius=1.0, random_state=0).fit(small)
    assert 1 <= km.n_refined_centres_ < 8
    assert km.cluster_centers_.shape == (8, blobs.shape[1])
    assert np.all(np.isfinite(km.cluster_centers_))
    assert np.all(np.linalg.norm(km.cluster_centers_, axis=1) <= 1.0 + 1e-12)
    assert set(np.unique(km.predict(small))) <= set(range(8))
    assert km.privacy_spent_[0] == pytest.approx(0.3, abs=1e-9)
    big = PrivateKMeans(4, epsilon=3.0, delta=1e-6, radius=1.0, random_state=0).fit(blobs)
    assert big.n_refined_centres_ == 4
    faith = PrivateKMeans(4, epsilon=3.0, delta=1e-6, radius=1.0, faithful=True,
                          random_state=0).fit(blobs)
    assert faith.n_refined_centres_ == 0
    lloyd = PrivateKMeans(4, epsilon=1.0, radius=1.0, method="lloyd", random_state=0).fit(blobs)
    assert lloyd.n_refined_centres_ == 0


def test_threads_sharing_an_accountant_cannot_overspend_it():
    """Clones share their accountant, and the docstring sends n_jobs > 1 to joblib's
    threading backend: two fits in threads could both pass the budget check before either
    was recorded, so a budget of one fit paid for two (about 5 % of races with a short
    switch interval). The check and the record are one step. Here the check is slowed so
    that the second thread always arrives while the first is between the two."""
    import threading
    import time

    from neurips18.privacy import BudgetExceededError

    acc = PrivacyAccountant(epsilon=1.0)
    slow_check = acc.check

    def check(epsilon, delta):
        slow_check(epsilon, delta)
        time.sleep(0.2)

    acc.check = check
    refused = []

    def fit_once():
        try:
            acc.spend(1.0, 0.0, "a fit")
        except BudgetExceededError:
            refused.append(True)

    threads = [threading.Thread(target=fit_once) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(acc.ledger) == 1 and refused == [True]
    assert acc.spent == (1.0, 0.0)


@pytest.mark.parametrize("scale", [1e16, 1e100, 1e200])
def test_predict_far_outside_the_ball_names_the_nearest_centre(scale):
    """predict compared full squared distances: |x|^2 added first drowned the centres'
    difference for rows far outside the ball (half the labels wrong at 1e16 radii), and
    past 1.3e154 it overflowed, so every row was put in cluster 0 with only numpy's
    overflow warning. scikit-learn's KMeans.predict gets these right."""
    rng = np.random.default_rng(0)
    C = rng.uniform(-0.6, 0.6, size=(4, 2))
    X = C[rng.integers(0, 4, 2000)] + 0.03 * rng.normal(size=(2000, 2))
    m = PrivateKMeans(4, epsilon=3.0, delta=1e-6, radius=1.0, random_state=0).fit(X)
    c = m.cluster_centers_
    # argmin |s x - c|^2 = argmin (|c|^2 / s - 2 x.c), exact at any scale s
    truth = ((c * c).sum(1) / scale - 2 * X @ c.T).argmin(1)
    assert len(np.unique(truth)) > 1
    assert np.array_equal(m.predict(X * scale), truth)
    assert np.array_equal(m.predict(X), m.labels_)


@pytest.mark.parametrize("dtype", ["Int64", "Float64", "boolean"])
def test_a_frame_of_nullable_numbers_is_numeric(dtype):
    """pandas' nullable dtypes became an object array, refused as 'expected numeric
    data'; they are numbers, and pd.NA is a missing value named as such."""
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.integers(0, 2, size=(500, 2)), columns=["a", "b"])
    kw = dict(epsilon=2.0, delta=1e-6, radius=2.0, random_state=0)
    plain = PrivateKMeans(2, **kw).fit(X.astype(float))
    nullable = PrivateKMeans(2, **kw).fit(X.astype(dtype))
    assert np.array_equal(plain.cluster_centers_, nullable.cluster_centers_)
    assert list(nullable.feature_names_in_) == ["a", "b"]
    assert np.array_equal(nullable.predict(X.astype(dtype)), plain.predict(X.astype(float)))
    holed = X.astype(dtype)
    holed.iloc[3, 1] = pd.NA
    with pytest.raises(ValueError, match="Invalid X: .*found 1 NaN"):
        PrivateKMeans(2, **kw).fit(holed)


def test_a_nan_charge_is_refused_and_does_not_lift_the_limit():
    """Ledger.charge_rho / charge_epsilon / charge_delta took a NaN (it is neither <= 0 nor
    past the plan) and made the amount used NaN, after which every comparison with the
    plan was False: any later charge, 1e9 included, went through. PrivacyAccountant.check
    said a NaN request fitted."""
    from neurips18.privacy import BudgetExceededError, Ledger

    nan = float("nan")
    for charge, plan in [("charge_rho", Ledger(1.0, 1e-6)), ("charge_epsilon", Ledger(1.0)),
                         ("charge_delta", Ledger(1.0, 1e-6, delta_threshold=5e-7))]:
        for bad in (nan, float("inf"), -1.0):
            with pytest.raises(ValueError, match="finite number"):
                getattr(plan, charge)(bad, "step")
        with pytest.raises(BudgetExceededError):
            getattr(plan, charge)(2.0, "step")  # past the plan: refused
    acc = PrivacyAccountant(1.0)
    with pytest.raises(ValueError, match="Invalid epsilon"):
        acc.check(nan, 0.0)
    with pytest.raises(ValueError, match="Invalid delta"):
        acc.check(0.5, nan)
    acc.check(0.5, 0.0)  # fits
    with pytest.raises(BudgetExceededError):
        acc.check(float("inf"), 0.0)


def test_resolve_method_refuses_what_a_fit_refuses():
    """resolve_method returned a misspelt method unchanged ("Lloyd") and took a NaN or a
    negative delta for pure DP ("lloyd"), where a fit with them raises."""
    from neurips18.privacy import resolve_method

    for method, delta, name in [("Lloyd", 0.0, "method"), ("kaplan_stemmer", 1e-6, "method"),
                                ("auto", float("nan"), "delta"), ("auto", -1.0, "delta"),
                                ("auto", 1.0, "delta")]:
        with pytest.raises(ValueError, match=f"Invalid {name}"):
            resolve_method(method, delta)
    assert resolve_method("auto", 0.0) == "lloyd"
    assert resolve_method("auto", 1e-6) == "kaplan-stemmer"
    assert resolve_method("lloyd", 1e-6) == "lloyd"


def test_a_row_whose_squared_norm_overflows_is_clipped_onto_the_sphere():
    """A row with an entry past about 1e154 has an infinite squared norm: the clipping
    factor radius / inf was 0 and the row went to the origin instead of onto the sphere
    (500 rows at (-1e200, 0) and radius 1: DPLloyd released a centre near (0, 0), not
    (-1, 0); local_kmeans and kmeans_cost(radius=) moved them too). Such rows now clip as
    rows of 1e100 do, so the release is the same."""
    from neurips18.privacy import kmeans_cost, local_kmeans

    rng = np.random.default_rng(0)
    near = rng.normal(0.0, 0.05, (500, 2)) + [0.5, 0.0]
    far = np.vstack([near, np.tile([-1e100, 0.0], (500, 1)),
                     np.tile([3e98, 4e98], (5, 1))])
    huge = far.copy()
    huge[500:1000, 0] = -1e200
    huge[1000:] = [3e200, 4e200]
    before = huge.copy()
    for kw in ({"method": "lloyd"}, {"delta": 1e-6}):
        a = PrivateKMeans(2, epsilon=5.0, radius=1.0, random_state=0, **kw).fit(huge)
        b = PrivateKMeans(2, epsilon=5.0, radius=1.0, random_state=0, **kw).fit(far)
        assert np.array_equal(a.cluster_centers_, b.cluster_centers_)
        assert a.n_clipped_ == 505
        assert np.abs(a.cluster_centers_ - [-1.0, 0.0]).sum(1).min() < 0.05
    assert np.array_equal(huge, before)
    assert np.array_equal(local_kmeans(huge, 2, epsilon=5.0, radius=1.0,
                                       random_state=0).cluster_centers,
                          local_kmeans(far, 2, epsilon=5.0, radius=1.0,
                                       random_state=0).cluster_centers)
    c = np.array([[0.5, 0.0], [-1.0, 0.0]])
    assert kmeans_cost(huge, c, radius=1.0) == kmeans_cost(far, c, radius=1.0)
    assert kmeans_cost(huge[1000:], c[:1], radius=1.0) == pytest.approx(
        5 * ((0.6 - 0.5) ** 2 + 0.8**2))


def test_a_leak_warning_names_the_users_line():
    """The PrivacyLeakWarning of a repeated seed had a fixed stacklevel: it named a line of
    PrivateKMeans.fit (fit wraps _fit) for a fit, and a frame above the caller for a
    direct spend, so a filter on the user's module missed it. It names the user's call."""
    from neurips18.privacy import PrivacyLeakWarning

    X = np.random.default_rng(0).normal(0.0, 0.3, (300, 2))
    acc = PrivacyAccountant(epsilon=10.0)
    PrivateKMeans(2, epsilon=1.0, radius=1.0, accountant=acc, random_state=0).fit(X)
    with pytest.warns(PrivacyLeakWarning) as fit_warning:
        PrivateKMeans(2, epsilon=1.0, radius=1.0, accountant=acc, random_state=0).fit(X)
    acc.spend(0.1, noise_key="seed 1")
    with pytest.warns(PrivacyLeakWarning) as spend_warning:
        acc.spend(0.1, noise_key="seed 1")
    assert [w.filename for w in (*fit_warning, *spend_warning)] == [__file__, __file__]


def test_a_frame_of_bool_and_number_columns_is_numeric():
    """A frame with a bool column beside float columns is an object array for NumPy: fit,
    local_kmeans and kmeans_cost refused it as 'expected numeric data' (scikit-learn's
    KMeans reads it as numbers). It is read as float64, True as 1."""
    from neurips18.privacy import kmeans_cost, local_kmeans

    rng = np.random.default_rng(0)
    X = pd.DataFrame({"flag": rng.random(400) > 0.5, "x": rng.normal(0.0, 0.3, 400)})
    as_float = X.astype(float)
    kw = dict(epsilon=2.0, delta=1e-6, radius=2.0, random_state=0)
    a = PrivateKMeans(2, **kw).fit(X)
    b = PrivateKMeans(2, **kw).fit(as_float)
    assert np.array_equal(a.cluster_centers_, b.cluster_centers_)
    assert list(a.feature_names_in_) == ["flag", "x"]
    assert np.array_equal(a.predict(X), b.predict(as_float))
    assert np.array_equal(local_kmeans(X, 2, epsilon=2.0, radius=2.0, random_state=0)[0],
                          local_kmeans(as_float, 2, epsilon=2.0, radius=2.0,
                                       random_state=0)[0])
    assert kmeans_cost(X, a.cluster_centers_) == kmeans_cost(as_float, a.cluster_centers_)


def test_a_bad_random_state_message_lists_each_allowed_kind_once():
    """The rule read 'expected None or None, a non-negative int seed or a
    numpy.random.Generator'."""
    with pytest.raises(ValueError, match=r"Invalid random_state: -1 \(expected None or a "
                       r"non-negative int seed or a numpy\.random\.Generator\)$"):
        PrivateKMeans(2, epsilon=1.0, radius=1.0, random_state=-1).fit(np.zeros((5, 2)))


def test_a_faithful_fit_without_candidates_warns_that_its_centres_are_one_point():
    """With no heavy cell (n = 500, eps = 1, faithful), all k centres were released at the
    origin and only n_candidates_ = 0 said so."""
    X = np.random.default_rng(0).uniform(-0.7, 0.7, size=(500, 5))
    kw = dict(epsilon=1.0, delta=1e-6, radius=1.0, method="kaplan-stemmer", random_state=0)
    with pytest.warns(UserWarning, match="no cell was heavy enough.*3 released centres are one"):
        m = PrivateKMeans(3, faithful=True, **kw).fit(X)
    assert m.n_candidates_ == 0 and np.ptp(m.cluster_centers_, axis=0).max() == 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        PrivateKMeans(3, faithful=False, **kw).fit(X)  # its centres differ: no warning


def test_a_fit_warning_made_an_error_leaves_the_new_release_whole():
    """With warnings as errors, the no-candidate warning was raised half-way through the
    attributes: the new centres (5 features) sat beside the earlier fit's n_features_in_ (3),
    labels_ and n_coreset_centres_, so predict failed on data of either width."""
    X3 = np.random.default_rng(1).uniform(-0.5, 0.5, size=(2000, 3))
    X5 = np.random.default_rng(0).uniform(-0.7, 0.7, size=(500, 5))
    acc = PrivacyAccountant(10.0, 1e-3)
    m = PrivateKMeans(3, epsilon=1.0, delta=1e-6, radius=1.0, method="kaplan-stemmer",
                      faithful=True, accountant=acc)
    m.fit(X3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(UserWarning, match="no cell was heavy enough"):
            m.fit(X5)
    assert len(acc.ledger) == 2  # the release was made and charged
    assert m.n_features_in_ == 5 and m.cluster_centers_.shape == (3, 5)
    assert m.labels_.shape == (500,) and m.n_candidates_ == m.n_coreset_centres_ == 0
    np.testing.assert_array_equal(m.predict(X5), m.labels_)
    # the warning names the user's line, through fit_predict too
    with pytest.warns(UserWarning, match="no cell was heavy enough") as rec:
        m.fit_predict(X5)
    assert [r.filename for r in rec] == [__file__]


def test_transform_follows_the_output_setting_as_kmeans_does(blobs):
    """PrivateKMeans had no get_feature_names_out: under transform_output="pandas" its
    transform returned an array (scikit-learn's KMeans a frame), and a Pipeline holding it
    refused set_output(transform="pandas")."""
    import sklearn

    X = pd.DataFrame(blobs, columns=["a", "b", "c"])
    m = PrivateKMeans(4, epsilon=1.0, delta=1e-6, radius=1.0, random_state=0).fit(X)
    names = [f"privatekmeans{i}" for i in range(4)]
    assert list(m.get_feature_names_out()) == names
    with sklearn.config_context(transform_output="pandas"):
        out = m.transform(X)
    assert isinstance(out, pd.DataFrame) and list(out.columns) == names
    np.testing.assert_array_equal(out.to_numpy(), m.transform(X))
    pipe = make_pipeline(FunctionTransformer(lambda Z: Z * 0.5),
                         PrivateKMeans(4, epsilon=1.0, delta=1e-6, radius=1.0, random_state=0))
    out = pipe.set_output(transform="pandas").fit_transform(X)
    assert isinstance(out, pd.DataFrame) and list(out.columns) == names


def test_a_centre_at_the_origin_is_kept_without_overflow_at_a_large_radius():
    """_clip_rows divided the radius by max(norm, 1e-300): for a centre at the origin (an
    empty cluster's, a padding row) and a radius past about 1.8e8 that overflowed, so an
    ordinary fit at radius 1e9 warned 'overflow encountered in divide', and under -W error
    stopped after the accountant was charged."""
    from neurips18.privacy import _core

    c = np.array([[0.0, 0.0, 0.0], [3e9, 4e9, 0.0], [1e8, 0.0, 0.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = _core._clip_rows(c, 1e9)
    np.testing.assert_array_equal(out, [[0.0, 0.0, 0.0], [6e8, 8e8, 0.0], [1e8, 0.0, 0.0]])
    X = np.random.default_rng(0).uniform(-0.5, 0.5, size=(300, 3)) * 1e9
    acc = PrivacyAccountant(10.0, 1e-3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = PrivateKMeans(3, epsilon=1.0, delta=1e-6, radius=1e9, random_state=0,
                          accountant=acc).fit(X)
    assert m.cluster_centers_.shape == (3, 3) and len(acc.ledger) == 1


def test_the_no_candidate_warning_of_the_practical_mode_does_not_advise_it():
    """The practical mode (faithful=False) on little data at a small epsilon can release
    one point too; its warning advised 'faithful=False', the setting already in use."""
    X = np.random.default_rng(0).uniform(-0.5, 0.5, size=(300, 3)) * 1e9
    with pytest.warns(UserWarning, match="no cell was heavy enough") as rec:
        m = PrivateKMeans(3, epsilon=0.05, delta=1e-6, radius=1e9, random_state=6).fit(X)
    assert m.n_candidates_ == 0
    text = str(rec[0].message)
    assert "faithful = False" in text and "faithful=False" not in text
    assert "method='lloyd'" in text


def test_ledger_does_not_reveal_the_exact_number_of_occupied_cells():
    # two neighbouring data sets (one row replaced): one outlier, or that row with the
    # others; the histograms' ledger entries held the exact number of non-empty cells (2
    # against 1 whatever the seed), a deterministic tell the release must not carry
    X = np.zeros((200, 2))
    X[:, 0] = 0.5
    D1 = X.copy()
    D1[0] = [-0.7, 0.3]
    for seed in range(3):
        sizes = []
        for D in (D1, X):
            km = PrivateKMeans(2, epsilon=1.0, delta=1e-6, radius=1.0, random_state=seed).fit(D)
            hist = [e for e in km.ledger_.entries if e.threshold is not None]
            assert sum(e.size for e in hist) == km.n_candidates_
            sizes.append([e.size for e in hist])
        assert sizes[0][0] <= 1  # one cell clears the threshold at most, not the outlier's


def test_a_delta_not_below_one_over_n_warns_before_anything_is_charged():
    # the docs advised delta well below 1 / n but nothing said so when it was not: a
    # release at delta >= 1 / n may show about delta * n records outright
    from neurips18.privacy import PrivacyAccountant, PrivacyLeakWarning, PrivateKMeans

    X = np.random.default_rng(0).uniform(-0.5, 0.5, size=(200, 2))
    acc = PrivacyAccountant(10.0, 0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error", PrivacyLeakWarning)
        with pytest.raises(PrivacyLeakWarning, match=r"delta = 0.01 is not below 1 / n_samples"):
            PrivateKMeans(3, epsilon=1.0, delta=0.01, radius=1.0, accountant=acc,
                          random_state=None).fit(X)
        assert acc.spent == (0.0, 0.0)  # nothing charged, nothing released
        PrivateKMeans(3, epsilon=1.0, delta=1e-6, radius=1.0, accountant=acc,
                      random_state=None).fit(X)  # below 1 / n: no warning
