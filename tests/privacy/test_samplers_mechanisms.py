"""Exact samplers against their probability mass functions; mechanisms' noise scales
recomputed from their sensitivities."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from neurips18.privacy import (
    Ledger,
    _samplers,
    bernoulli_exp,
    discrete_gaussian,
    discrete_laplace,
    gaussian_release,
    laplace_release,
    rho_for_epsilon,
    threshold_for,
    zcdp_epsilon,
)


def _chi2_pvalue(z: np.ndarray, pmf) -> float:  # type: ignore[no-untyped-def]
    lo, hi = int(z.min()), int(z.max())
    support = np.arange(lo, hi + 1)
    p = np.array([pmf(v) for v in support])
    counts = np.bincount(z - lo, minlength=support.size)
    expected = p / p.sum() * z.size
    keep = expected >= 5  # pool the tails
    obs = np.append(counts[keep], counts[~keep].sum())
    exp = np.append(expected[keep], expected[~keep].sum())
    if exp[-1] == 0:
        obs, exp = obs[:-1], exp[:-1]
    return float(stats.chisquare(obs, exp * obs.sum() / exp.sum()).pvalue)


@pytest.fixture(params=["batched", "sequential"])
def batching(request, monkeypatch):
    """The samplers as shipped, and with one trial per block, a common range never shared
    (each Bernoulli(1/k) column drawn with its own range) and rejection batches far too
    small (many rounds of redraws): every continuation path runs, and the laws must be
    the same."""
    if request.param == "sequential":
        monkeypatch.setattr(_samplers, "BLOCK", 1)
        monkeypatch.setattr(_samplers, "GEOMETRIC_BLOCK", 1)
        monkeypatch.setattr(_samplers, "_LCM_MAX", 0)
        monkeypatch.setattr(_samplers, "OVERSAMPLE", 0.3)
        monkeypatch.setattr(_samplers, "_EXTRA", 1)
    return request.param


@pytest.mark.parametrize("t", [1, 3, 10, 34])
def test_discrete_laplace_matches_pmf(t, batching):
    z = discrete_laplace(t, 100_000, np.random.default_rng(t))
    assert z.shape == (100_000,)
    assert _chi2_pvalue(z, lambda v: math.exp(-abs(v) / t)) > 1e-3


@pytest.mark.parametrize("s2", [1, 7, 400, 1090])
def test_discrete_gaussian_matches_pmf(s2, batching):
    z = discrete_gaussian(s2, 100_000, np.random.default_rng(s2))
    assert z.shape == (100_000,)
    assert _chi2_pvalue(z, lambda v: math.exp(-v * v / (2 * s2))) > 1e-3


def test_geometric_matches_pmf(batching):
    v = _samplers._geometric(100_000, np.random.default_rng(11))
    assert v.min() >= 0
    assert _chi2_pvalue(v, lambda k: math.exp(-k) if k >= 0 else 0.0) > 1e-3


def test_samplers_small_and_empty_requests():
    rng = np.random.default_rng(2)
    assert discrete_gaussian(5, 0, rng).shape == (0,)
    assert discrete_laplace(5, 0, rng).shape == (0,)
    assert bernoulli_exp(np.zeros(0, np.int64), 3, rng).shape == (0,)
    assert discrete_gaussian(2**29, 1, rng).shape == (1,)
    # exp(-2**62) is 0 to any precision: never 1 (the whole part stops at the first failure)
    assert not bernoulli_exp(np.full(1000, 2**62), 1, rng).any()


def test_discrete_gaussian_large_variance_moments():
    s2 = 2**28  # the largest variances use exact Python-int arithmetic for the acceptance
    z = discrete_gaussian(s2, 50_000, np.random.default_rng(0)).astype(float)
    assert abs(z.mean()) < 4 * math.sqrt(s2 / z.size)
    assert z.var() / s2 == pytest.approx(1.0, abs=0.03)


def test_bernoulli_exp_probability(batching):
    rng = np.random.default_rng(1)
    for num, den in ((0, 1), (1, 3), (5, 2), (7, 7), (2**60 + 1, 2**61 - 1)):
        b = bernoulli_exp(np.full(200_000, num), np.full(200_000, den), rng)
        p = math.exp(-num / den)
        assert abs(b.mean() - p) < 5 * math.sqrt(p * (1 - p) / b.size) + 1e-12
    # a range per element (the slower draws): each half of the array keeps its own law
    num = np.repeat(np.array([1, 5], np.int64), 100_000)
    den = np.repeat(np.array([3, 2], np.int64), 100_000)
    b = bernoulli_exp(num, den, rng)
    for half, p in ((b[:100_000], math.exp(-1 / 3)), (b[100_000:], math.exp(-2.5))):
        assert abs(half.mean() - p) < 5 * math.sqrt(p * (1 - p) / half.size)


def test_discrete_gaussian_tail_bound_used_by_the_threshold():
    # P(Z >= m) <= exp(-m^2 / (2 s2)) (sub-Gaussian): checked on the exact pmf
    s2 = 30
    support = np.arange(-200, 201)
    p = np.exp(-support**2 / (2 * s2))
    p /= p.sum()
    for m in range(1, 40):
        assert p[support >= m].sum() <= math.exp(-m * m / (2 * s2)) + 1e-15
    assert threshold_for(math.sqrt(s2), 1e-6) == pytest.approx(
        1 + math.sqrt(s2) * math.sqrt(2 * math.log(2 / 1e-6)))


def test_gaussian_noise_scale_recomputed_from_sensitivity():
    led = Ledger(1.0, 1e-6)
    rho = led.rho / 4
    vals = np.arange(10, dtype=np.int64)
    out = gaussian_release(vals, sensitivity=math.sqrt(2), rho=rho, unit=1.0, changed=2,
                           rng=np.random.default_rng(0), ledger=led, step="counts")
    e = led.entries[-1]
    assert e.granularity == 1.0 and e.sensitivity == pytest.approx(math.sqrt(2))
    # sigma is the smallest integer variance with sensitivity^2 / (2 sigma^2) <= rho
    s2_min = 2 / (2 * rho)  # sensitivity^2 / (2 rho)
    assert s2_min <= e.noise**2 <= s2_min + 2  # the next integers above the exact variance
    assert e.rho == pytest.approx(e.sensitivity**2 / (2 * e.noise**2)) and e.rho <= rho
    assert out.shape == vals.shape and np.all(out == np.round(out))
    # a large sensitivity (sums in grid steps) moves to a coarser power-of-two grid and
    # pays one step per changed coordinate for the rounding
    big = 2.0**31
    gaussian_release(np.zeros(50, np.int64), sensitivity=big, rho=rho, unit=2.0**-30,
                     changed=100, rng=np.random.default_rng(0), ledger=led, step="sums")
    e = led.entries[-1]
    g = e.granularity / 2.0**-30
    assert g > 1 and math.log2(g) == int(math.log2(g))
    assert e.sensitivity == pytest.approx((big / g + math.sqrt(100)) * e.granularity)
    assert e.noise == pytest.approx(e.sensitivity / math.sqrt(2 * rho), rel=1e-4)


def test_laplace_noise_scale_recomputed_from_sensitivity():
    led = Ledger(2.0)
    laplace_release(np.zeros(3, np.int64), sensitivity=2.0, epsilon=0.5, unit=1.0, changed=2,
                    rng=np.random.default_rng(0), ledger=led, step="counts")
    e = led.entries[-1]
    assert e.noise >= 2.0 / 0.5 and e.noise == pytest.approx(4.0, abs=1.0)
    assert e.epsilon == pytest.approx(e.sensitivity / e.noise) and e.epsilon <= 0.5


def test_zcdp_conversion_inverts_and_is_conservative():
    for eps, delta in ((0.1, 1e-6), (1.0, 1e-6), (10.0, 1e-9)):
        rho = rho_for_epsilon(eps, delta)
        assert zcdp_epsilon(rho, delta) <= eps
        assert zcdp_epsilon(rho, delta) == pytest.approx(eps, rel=1e-12)


def test_zcdp_conversion_of_huge_budgets():
    """An epsilon of 1e300 (no privacy to speak of, but a valid input) failed with a bare
    'math domain error': the search bracket for the Renyi order closed below alpha = 1.
    Now every order searched stays >= 1.01 and the conversion stays conservative."""
    for rho in (1e6, 1e100, 1e300):
        e = zcdp_epsilon(rho, 1e-6)
        assert math.isfinite(e) and rho <= e <= rho + 2.0 * math.sqrt(rho * math.log(1e6))
    for eps in (1e6, 1e100, 1e300):
        rho = rho_for_epsilon(eps, 1e-6)
        assert 0 < rho and zcdp_epsilon(rho, 1e-6) <= eps


def test_conversion_is_sound_and_as_tight_as_dp_accounting_rdp():
    from scipy.stats import norm

    for m in (1.0, 5.0, 20.0):  # a Gaussian of noise multiplier m is (1 / (2 m^2))-zCDP
        rho, delta = 1 / (2 * m * m), 1e-6
        ours = zcdp_epsilon(rho, delta)
        # sound: the Gaussian mechanism's exact privacy profile (Balle and Wang 2018) at
        # our epsilon is within delta
        exact_delta = norm.cdf(0.5 / m - ours * m) - math.exp(ours) * norm.cdf(-0.5 / m - ours * m)
        assert exact_delta <= delta
        # never looser than Bun-Steinke's closed form
        assert ours <= rho + 2 * math.sqrt(rho * math.log(1 / delta))
        dpa = pytest.importorskip("dp_accounting")
        acc = dpa.rdp.RdpAccountant()
        acc.compose(dpa.GaussianDpEvent(m))
        # the same conversion (CKS 2020, Prop. 12) over dp-accounting's grid of orders
        assert ours <= acc.get_epsilon(delta) * (1 + 1e-9)


def test_noise_past_the_samplers_range_is_a_clear_error_and_charges_nothing():
    """With rho <= changed / 2**30 no grid brings the discrete Gaussian's s2 below 2**29
    (the rounding's sqrt(changed) remains); this used to loop until 2.0**j overflowed.
    Likewise the discrete Laplace past scale 2**56. Nothing is charged then."""
    from neurips18.privacy import Ledger
    from neurips18.privacy._mechanisms import (
        gaussian_feasible,
        gaussian_noise_params,
        laplace_feasible,
    )

    for changed in (1, 2, 100):
        edge = changed / 2.0**30
        assert not gaussian_feasible(2.0**31, edge, changed)
        assert gaussian_feasible(2.0**31, edge * 1.001, changed)
        j, s2, d_j = gaussian_noise_params(2.0**31, edge * 1.001, changed)
        assert s2 < 2**30 and d_j**2 / (2 * s2) <= edge * 1.001
        with pytest.raises(ValueError, match="too small"):
            gaussian_noise_params(2.0**31, edge, changed)
    assert not laplace_feasible(2.0**31, 2 / 2.0**56, 2)
    assert laplace_feasible(2.0**31, 2.001 / 2.0**56, 2)
    led = Ledger(1.0, 1e-6)
    with pytest.raises(ValueError, match="too small"):
        gaussian_release(np.zeros(3, np.int64), sensitivity=math.sqrt(2), rho=1e-10, unit=1.0,
                         changed=2, rng=np.random.default_rng(0), ledger=led, step="counts")
    assert led.totals()["rho"] == 0 and led._rho_used == 0 and led.entries == []
    pure = Ledger(1e-3)
    with pytest.raises(ValueError, match="too small"):
        laplace_release(np.zeros(3, np.int64), sensitivity=2.0, epsilon=1e-17, unit=1.0,
                        changed=2, rng=np.random.default_rng(0), ledger=pure, step="counts")
    assert pure._eps_used == 0 and pure.entries == []


def test_the_samplers_take_an_int_seed_or_name_the_bad_generator():
    from neurips18.privacy import bernoulli_exp, discrete_gaussian, discrete_laplace

    np.testing.assert_array_equal(discrete_laplace(3, 50, 7),
                                  discrete_laplace(3, 50, np.random.default_rng(7)))
    np.testing.assert_array_equal(discrete_gaussian(9, 50, 7),
                                  discrete_gaussian(9, 50, np.random.default_rng(7)))
    np.testing.assert_array_equal(bernoulli_exp(np.arange(5), np.full(5, 3), 7),
                                  bernoulli_exp(np.arange(5), np.full(5, 3),
                                                np.random.default_rng(7)))
    with pytest.raises(ValueError, match="Invalid rng"):
        discrete_laplace(3, 5, np.random.RandomState(0))


def test_the_mechanisms_refuse_what_they_would_release_wrongly():
    """Bad arguments of the public mechanisms were used as given: float values were cast
    to int64 by truncation (2.7 released as 2 plus noise; NaN and 1e20 as -2**63), a
    negative unit flipped the output's sign, a negative Laplace sensitivity gave noise of
    scale 1 whatever epsilon, changed=0 left a coarser grid's rounding out of the
    sensitivity, and a delta of 0 or >= 1 in the threshold raised ZeroDivisionError or
    "math domain error". Each is now an error naming the parameter, and nothing is
    charged."""
    from neurips18.privacy import thresholded_histogram

    rng = np.random.default_rng(0)
    ok = dict(sensitivity=1.0, unit=1.0, changed=1, rng=rng, step="s")
    gauss = [({"values": np.array([2.7])}, "values"), ({"values": np.array([np.nan])}, "values"),
             ({"values": np.array([2**64 - 1], np.uint64)}, "values"),
             ({"unit": -1.0}, "unit"), ({"unit": 0.0}, "unit"),
             ({"sensitivity": -1.0}, "sensitivity"), ({"sensitivity": math.nan}, "sensitivity"),
             ({"changed": 0}, "changed"), ({"rho": -0.01}, "rho"), ({"delta": 1.0}, "delta")]
    for bad, name in gauss:
        led = Ledger(1.0, 1e-6)
        kw = {"values": np.array([2]), "rho": 0.01, **ok, **bad}
        with pytest.raises(ValueError, match=f"Invalid {name}"):
            gaussian_release(ledger=led, **kw)
        assert led._rho_used == 0 and led.entries == []
    for bad, name in [({"values": np.array([2.7])}, "values"), ({"unit": -1.0}, "unit"),
                      ({"sensitivity": -1.0}, "sensitivity"), ({"changed": 0}, "changed"),
                      ({"epsilon": -0.1}, "epsilon")]:
        led = Ledger(1.0)
        kw = {"values": np.array([2]), "epsilon": 0.1, **ok, **bad}
        with pytest.raises(ValueError, match=f"Invalid {name}"):
            laplace_release(ledger=led, **kw)
        assert led._eps_used == 0 and led.entries == []
    for delta in (0.0, 1.0, 3.0):
        with pytest.raises(ValueError, match="Invalid delta"):
            threshold_for(1.0, delta)
    for bad, name in [({"counts": np.array([5.9, 6.9])}, "counts"),
                      ({"counts": np.array([5])}, "counts"), ({"delta": 0.0}, "delta"),
                      ({"floor": 0}, "floor"), ({"rho": 0.0}, "rho")]:
        led = Ledger(1.0, 1e-6, delta_threshold=5e-7)
        kw = {"keys": np.array([1, 2]), "counts": np.array([5, 6]), "floor": 1, "rho": 0.01,
              "delta": 1e-7, **bad}
        with pytest.raises(ValueError, match=f"Invalid {name}"):
            thresholded_histogram(rng=rng, ledger=led, step="h", **kw)
        assert led._rho_used == 0 and led.entries == []
    # what the fits pass is unchanged: int64 values, a zero sensitivity allowed
    led = Ledger(1.0, 1e-6)
    out = gaussian_release(np.array([3], np.int64), sensitivity=0.0, rho=0.01, unit=0.5,
                           changed=1, rng=np.random.default_rng(1), ledger=led, step="s")
    assert out.dtype == np.float64 and led.entries[0].size == 1


def test_the_samplers_refuse_non_integer_parameters():
    """The exact samplers took int(t), int(s2), int(size) and num, den cast to int64: a
    discrete Laplace scale 2.5 was drawn at scale 2 and s2 = 2.9 as 2 (less noise than
    asked for), size 2.5 gave 2 draws, bernoulli_exp(0.5, 1) -- exp(-0.5) -- returned 1
    every time and a negative num a 'probability' exp(1). They are refused now."""
    rng = np.random.default_rng(0)
    for f, name in [(lambda: discrete_laplace(2.5, 10, rng), "t"),
                    (lambda: discrete_laplace(True, 10, rng), "t"),
                    (lambda: discrete_laplace(2, 2.5, rng), "size"),
                    (lambda: discrete_laplace(2, -1, rng), "size"),
                    (lambda: discrete_gaussian(2.9, 10, rng), "s2"),
                    (lambda: discrete_gaussian(2**30, 10, rng), "s2"),
                    (lambda: discrete_gaussian(4, 1.5, rng), "size"),
                    (lambda: bernoulli_exp(np.array([0.5]), np.array([1]), rng), "num"),
                    (lambda: bernoulli_exp(np.array([-1]), np.array([1]), rng), "num"),
                    (lambda: bernoulli_exp(np.array([1]), np.array([0]), rng), "den"),
                    (lambda: bernoulli_exp(np.array([1]), np.array([2.0]), rng), "den"),
                    (lambda: bernoulli_exp(np.array([1, 2]), np.array([3, 4, 5]), rng), "den")]:
        with pytest.raises(ValueError, match=f"Invalid {name}"):
            f()
    # numpy integers are integers
    assert discrete_laplace(np.int64(3), np.int32(4), rng).shape == (4,)
    assert discrete_gaussian(np.int64(3), 4, rng).shape == (4,)
    assert bernoulli_exp([1, 2], 3, rng).shape == (2,)


def test_the_zcdp_conversion_refuses_nan_and_survives_the_largest_floats():
    """zcdp_epsilon(nan, delta) and rho_for_epsilon(nan, delta) returned NaN, infinite ones
    raised "math domain error"; rho * ln(1/delta) overflowed past rho ~ 1e305, so
    zcdp_epsilon(1e308, 1e-6) was 1.01e308, and rho_for_epsilon(1e308, 1e-6) (and a
    PrivateKMeans fit with epsilon=1e308) looped for ever, stepping one ulp at a time."""
    import signal

    from neurips18.privacy import PrivateKMeans

    nan, inf = float("nan"), float("inf")
    for bad in (nan, inf, -1.0):
        with pytest.raises(ValueError, match="finite rho"):
            zcdp_epsilon(bad, 1e-6)
    for bad in (nan, inf, 0.0):
        with pytest.raises(ValueError, match="finite epsilon"):
            rho_for_epsilon(bad, 1e-6)

    def stop(*_):  # pragma: no cover - only on the old code
        raise TimeoutError("rho_for_epsilon did not return")

    old = signal.signal(signal.SIGALRM, stop)
    signal.alarm(20)
    try:
        assert zcdp_epsilon(1e308, 1e-6) <= 1e308 * (1 + 1e-15)
        for eps, delta in [(1e308, 1e-6), (1.7e308, 1e-300), (1e306, 0.5)]:
            rho = rho_for_epsilon(eps, delta)
            assert 0 < rho < inf and zcdp_epsilon(rho, delta) <= eps
        m = PrivateKMeans(2, epsilon=1e308, delta=1e-6, radius=1.0, random_state=0)
        m.fit(np.array([[0.1], [0.2], [0.3]]))
        assert m.privacy_spent_[0] <= 1e308 * (1 + 1e-12)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def test_a_subnormal_delta_converts_or_is_refused_before_spending():
    """ln(1 / delta) overflowed for a subnormal delta (1e-310): the conversion came out NaN
    and a fit with delta=1e-310 raised "need a finite rho". With delta = 5e-324 the
    histograms' share delta / 2 / R is 0: the fit was refused only after the accountant
    had been charged."""
    from neurips18.privacy import PrivacyAccountant, PrivateKMeans

    for delta in (1e-310, 1e-320):
        rho = rho_for_epsilon(1.0, delta)
        assert 0 < rho < rho_for_epsilon(1.0, 1e-300)
        assert zcdp_epsilon(rho, delta) <= 1.0
        assert math.isfinite(zcdp_epsilon(0.1, delta))
    X = np.random.default_rng(0).normal(size=(300, 2)) * 0.1
    acc = PrivacyAccountant(10.0, 0.5)
    m = PrivateKMeans(2, epsilon=1.0, delta=1e-310, radius=1.0, random_state=0,
                      accountant=acc).fit(X)
    assert m.privacy_spent_[0] <= 1.0 + 1e-12 and m.privacy_spent_[1] <= 1e-310
    with pytest.raises(ValueError, match="Invalid delta"):
        PrivateKMeans(2, epsilon=1.0, delta=5e-324, radius=1.0, accountant=acc).fit(X)
    assert len(acc.ledger) == 1


def test_a_histogram_refused_for_its_delta_spends_no_rho():
    """A thresholded histogram on a ledger with no thresholding share (delta_threshold = 0)
    is refused for its delta; its rho had been reserved first and stayed spent, so the
    next release within the plan was refused although nothing had been released."""
    from neurips18.privacy import BudgetExceededError, thresholded_histogram

    led = Ledger(1.0, 1e-6)  # delta_threshold 0: no share for a histogram's delta
    rng = np.random.default_rng(0)
    with pytest.raises(BudgetExceededError, match="thresholding share"):
        thresholded_histogram(np.arange(3), np.array([50, 60, 70]), floor=1, rho=led.rho,
                              delta=1e-7, rng=rng, ledger=led, step="histogram")
    assert led._rho_used == 0 and led._delta_used == 0 and led.entries == []
    out = gaussian_release(np.array([50, 60, 70]), sensitivity=1.0, rho=led.rho, unit=1.0,
                           changed=1, rng=rng, ledger=led, step="counts")
    assert out.shape == (3,) and led.totals()["rho"] == led.rho
    # a delta and a rho that both fit are both reserved by the one call
    both = Ledger(1.0, 1e-6, delta_threshold=5e-7)
    both.charge_rho(both.rho / 2, "half", delta=2e-7)
    assert both._rho_used == both.rho / 2 and both._delta_used == 2e-7
    with pytest.raises(BudgetExceededError, match="thresholding share"):
        both.charge_rho(both.rho / 4, "too much delta", delta=4e-7)
    assert both._rho_used == both.rho / 2 and both._delta_used == 2e-7


def test_histogram_ledger_size_is_the_released_cells_not_the_exact_ones():
    # the number of cells at the floor is an exact, un-noised count of the data: the ledger
    # entry of a thresholded histogram must record how many cells were released instead
    from neurips18.privacy import Ledger, thresholded_histogram
    keys = np.arange(50)
    counts = np.ones(50, np.int64)  # 50 singletons: far below any threshold at this rho
    led = Ledger(1.0, 1e-6, delta_threshold=5e-7)
    kept, _ = thresholded_histogram(keys, counts, floor=1, rho=1e-4, delta=1e-7,
                                    rng=np.random.default_rng(0), ledger=led, step="h")
    assert led.entries[-1].size == kept.size == 0
