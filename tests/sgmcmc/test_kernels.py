import numpy as np
import pytest

from neurips18._validation import ValidationError
from neurips18.sgmcmc import (
    ControlVariateGradient,
    DivergenceError,
    MinibatchGradient,
    control_variates,
    langevin_step,
    lmc_step,
    minibatch_gradient,
    minibatch_indices,
    sample,
    sgd_step,
    sgld_step,
    sgldfp_step,
)


def test_sgd_step_is_the_formula(make_linear):
    m = make_linear(n=50, d=2, lam=0.7)
    theta = np.array([0.2, -0.4])
    idx = np.array([3, 3, 10, 49])
    g = 0.7 * theta + (50 / 4) * sum(m.X[i] * (m.X[i] @ theta - m.y[i]) for i in idx)
    np.testing.assert_allclose(sgd_step(m, theta, 1e-3, idx), theta - 1e-3 * g, rtol=1e-12)


def test_sgld_step_noise_has_variance_2_gamma(make_logistic):
    m = make_logistic(n=100, d=3)
    theta = np.array([0.1, 0.0, -0.2])
    idx = np.arange(10)
    gamma = 0.01
    rng = np.random.default_rng(0)
    out = np.array([sgld_step(m, theta, gamma, idx, rng) for _ in range(20_000)])
    drift = sgd_step(m, theta, gamma, idx)
    # mean = the SGD step, covariance = 2 gamma I (standard errors ~ 0.7 % and 1 %)
    np.testing.assert_allclose(out.mean(0), drift, atol=4 * np.sqrt(2 * gamma / 20_000))
    np.testing.assert_allclose(np.cov(out.T), 2 * gamma * np.eye(3), atol=0.05 * 2 * gamma)


def test_sgldfp_has_no_drift_at_the_mode_and_is_unbiased(make_logistic):
    m = make_logistic(n=60, d=3)
    fp = control_variates(m)
    gamma = 1e-3
    # at theta*, every minibatch gives a zero gradient estimate: the step is pure noise
    a = sgldfp_step(m, fp.theta_star, gamma, np.array([0, 1, 1]), np.random.default_rng(3), fp)
    b = fp.theta_star + np.sqrt(2 * gamma) * np.random.default_rng(3).standard_normal(3)
    np.testing.assert_allclose(a, b, atol=1e-12)
    # away from theta*, averaging the size-1 estimate over all examples gives grad U exactly
    theta = fp.theta_star + np.array([0.3, -0.1, 0.2])
    est = np.mean([sgd_step(m, theta, 1.0, np.array([i])) for i in range(60)], axis=0)
    est_fp = np.mean(
        [theta - sgldfp_step(m, theta, 1.0, np.array([i]), _ZeroNoise(), fp) for i in range(60)],
        axis=0,
    )
    full = m.grad_potential(theta)
    np.testing.assert_allclose(theta - est, full, rtol=1e-10)
    # SGLDFP estimates grad U(theta) - grad U(theta*), and grad U(theta*) ~ 1e-8
    np.testing.assert_allclose(est_fp, full - m.grad_potential(fp.theta_star), rtol=1e-10)
    np.testing.assert_allclose(est_fp, full, rtol=1e-7)


class _ZeroNoise(np.random.Generator):
    def __init__(self):
        super().__init__(np.random.PCG64(0))

    def standard_normal(self, size=None, dtype=np.float64, out=None):
        return np.zeros(size, dtype=dtype)


def test_lmc_step_uses_full_gradient(make_linear):
    m = make_linear(n=30, d=2)
    theta = np.array([1.0, 2.0])
    out = lmc_step(m, theta, 1e-3, _ZeroNoise())
    np.testing.assert_allclose(out, theta - 1e-3 * m.grad_potential(theta))


def test_minibatch_indices():
    rng = np.random.default_rng(0)
    idx = minibatch_indices(rng, 20, 20, replacement=False)
    assert sorted(idx.tolist()) == list(range(20))
    counts = np.bincount(np.concatenate([minibatch_indices(rng, 5, 4) for _ in range(5000)]),
                         minlength=5)
    np.testing.assert_allclose(counts / counts.sum(), 0.2, atol=0.01)
    with pytest.raises(ValueError, match="batch_size"):
        minibatch_indices(rng, 5, 6)
    with pytest.raises(ValueError, match="batch_size"):
        minibatch_indices(rng, 5, 0)
    block = minibatch_indices(np.random.default_rng(1), 50, 7, False, n_batches=300)
    assert block.shape == (300, 7) and all(len(set(r)) == 7 for r in block.tolist())


@pytest.mark.parametrize("method", ["lmc", "sgld", "sgldfp", "sgd"])
def test_float32_stays_float32(method, make_logistic):
    m = make_logistic(n=200, d=3, dtype=np.float32)
    rng = np.random.default_rng(0)
    res = sample(m, method, 1 / 400, 10, 300, generator=rng)
    assert res.draws.dtype == np.float32
    assert np.isfinite(res.draws).all()
    theta = res.draws[-1]
    idx = np.arange(5)
    assert sgld_step(m, theta, 1e-3, idx, rng).dtype == np.float32
    assert sgd_step(m, theta, 1e-3, idx).dtype == np.float32
    assert lmc_step(m, theta, 1e-3, rng).dtype == np.float32
    assert sgldfp_step(m, theta, 1e-3, idx, rng, control_variates(m)).dtype == np.float32


def test_sample_is_repeatable_and_thinned(make_logistic):
    m = make_logistic(n=300, d=3)
    a = sample(m, "sgld", 1e-3, 10, 1000, thin=10, generator=np.random.default_rng(7))
    b = sample(m, "sgld", 1e-3, 10, 1000, thin=10, generator=np.random.default_rng(7))
    c = sample(m, "sgld", 1e-3, 10, 1000, thin=1, generator=np.random.default_rng(7))
    assert a.draws.shape == (100, 3)
    np.testing.assert_array_equal(a.draws, b.draws)
    np.testing.assert_array_equal(a.draws, c.draws[9::10])
    d = a.diagnostics
    assert d["n_steps"] == 1000 and d["steps_per_s"] > 0
    assert d["grad_norm_at_mode"] < 1e-6


def test_sample_without_replacement_full_batch_is_lmc(make_linear):
    # p = N without replacement: every minibatch is the whole data set, so SGLD == LMC
    m = make_linear(n=40, d=2)
    a = sample(m, "sgld", 1e-3, 40, 200, replacement=False, generator=np.random.default_rng(1))
    b = sample(m, "lmc", 1e-3, None, 200, generator=np.random.default_rng(1))
    # the index draws consume the stream differently: compare distributions of one step
    assert a.draws.shape == b.draws.shape
    th = np.array([0.5, 0.5])
    idx = minibatch_indices(np.random.default_rng(0), 40, 40, replacement=False)
    np.testing.assert_allclose(sgd_step(m, th, 1e-3, idx), th - 1e-3 * m.grad_potential(th))


def test_divergence_is_detected(make_linear):
    # below 2 / L, so not refused up front, but with p = 1 the minibatch Hessians
    # (N x_i x_i^T) make SGLD and SGD mean-square unstable
    m = make_linear(n=200, d=2)
    gamma = 0.8 * 2 / m.lipschitz_constant()
    for method in ("sgld", "sgd"):
        with pytest.raises(DivergenceError, match="step_size"):
            sample(m, method, gamma, 1, 10_000, generator=0)


@pytest.mark.parametrize(
    ("kwargs", "err", "match"),
    [
        ({"method": "hmc"}, ValueError, "method"),
        ({"step_size": 0.0}, ValueError, "step_size"),
        ({"step_size": -1e-3}, ValueError, "step_size"),
        ({"step_size": float("nan")}, ValueError, "step_size"),
        ({"step_size": float("inf")}, ValueError, "step_size"),
        ({"batch_size": 0}, ValueError, "batch_size"),
        ({"batch_size": 301}, ValueError, "batch_size"),
        ({"batch_size": 2.5}, TypeError, "batch_size"),
        ({"n_steps": 0}, ValueError, "n_steps"),
        ({"thin": 0}, ValueError, "thin"),
        ({"thin": 11}, ValueError, "thin"),
        ({"theta0": np.zeros(4)}, ValueError, "theta0"),
        ({"theta0": np.array([np.nan, 0, 0])}, ValueError, "theta0"),
        ({"generator": -3}, ValueError, "generator"),
        ({"generator": np.random.RandomState(0)}, TypeError, "generator"),
        ({"kernel": "cuda"}, ValueError, "kernel"),
        ({"mode_rtol": 0.0}, ValueError, "mode_rtol"),
        ({"divergence_threshold": -1.0}, ValueError, "divergence_threshold"),
        ({"theta_star": np.zeros(2)}, ValueError, "theta_star"),
    ],
)
def test_bad_sample_input(kwargs, err, match, make_logistic):
    m = make_logistic(n=300, d=3)
    args = {"method": "sgldfp", "step_size": 1e-3, "batch_size": 10, "n_steps": 10}
    args.update(kwargs)
    with pytest.raises(err, match=match):
        sample(m, args.pop("method"), args.pop("step_size"), args.pop("batch_size"),
               args.pop("n_steps"), **args)


def test_bad_kernel_input(make_logistic):
    m = make_logistic(n=30, d=3)
    rng = np.random.default_rng(0)
    th = np.zeros(3)
    with pytest.raises(ValueError, match="minibatch"):
        sgld_step(m, th, 1e-3, np.array([0, 30]), rng)
    with pytest.raises(ValueError, match="minibatch"):
        sgld_step(m, th, 1e-3, np.array([], dtype=int), rng)
    with pytest.raises(ValueError, match="theta"):
        sgd_step(m, np.zeros(2), 1e-3, np.array([0]))
    with pytest.raises(TypeError, match="ControlVariateGradient"):
        sgldfp_step(m, th, 1e-3, np.array([0]), rng, centre=None)
    other = type(m)(m.X[:10], m.y[:10], 1.0)
    with pytest.raises(ValueError, match="estimator built on this model"):
        sgld_step(m, th, 1e-3, np.array([0]), rng, estimator=minibatch_gradient(other))
    with pytest.raises(ValueError, match="minibatch"):
        sgld_step(m, th, 1e-3, np.array([0.5]), rng)
    with pytest.raises(ValueError, match="gradient"):
        langevin_step(th, np.zeros(2), 1e-3, None)
    with pytest.raises(ValueError, match="noise"):
        langevin_step(th, th, 1e-3, np.array([np.nan, 0, 0]))
    with pytest.raises(ValueError, match="step_size"):
        langevin_step(th, th, -1.0, None)
    with pytest.raises(TypeError, match="generator"):
        lmc_step(m, th, 1e-3, np.random.RandomState(0))


@pytest.mark.parametrize("kind", ["make_linear", "make_logistic", "protocol"])
@pytest.mark.parametrize("method", ["lmc", "sgld", "sgldfp", "sgd"])
@pytest.mark.parametrize("replacement", [True, False])
def test_sample_is_the_public_step_chained(kind, method, replacement, request,
                                           chain_of_public_steps):
    # sample()'s NumPy path is the public estimator and langevin_step composed, bit for bit,
    # on the draws its docstring describes (two blocks and a part, so the order of the
    # noise and index draws across blocks is covered); any model, with or without replacement
    from neurips18.sgmcmc import as_model

    base = request.getfixturevalue("make_logistic" if kind == "protocol" else kind)(
        n=300, d=3, seed=8)
    m = _Protocol(base) if kind == "protocol" else base
    theta0 = np.array([0.1, -0.2, 0.3])
    ts = control_variates(base).theta_star
    n = 2 * 256 + 37  # two blocks of the sampler and a part
    res = sample(m, method, 1e-3, 10, n, replacement=replacement, theta0=theta0,
                 theta_star=ts, generator=8, kernel="numpy")
    ref = chain_of_public_steps(as_model(m), method, 1e-3, 10, n, theta0, 8, replacement, ts)
    assert res.diagnostics["kernel"] == "numpy"
    np.testing.assert_array_equal(res.draws, ref)


class _Protocol:
    """A duck-typed user model (ModelProtocol) wrapping a built-in GLM's public methods."""

    def __init__(self, m):
        self.n_data, self.dim, self._m = m.n_data, m.dim, m

    def log_prior(self, theta):
        return self._m.log_prior(theta)

    def grad_log_prior(self, theta):
        return self._m.grad_log_prior(theta)

    def log_likelihood(self, theta, idx=None):
        return self._m.log_likelihood(theta, idx)

    def grad_log_likelihood_sum(self, theta, idx=None):
        return self._m.grad_log_likelihood_sum(theta, idx)


def test_langevin_step_is_the_formula_in_theta_dtype():
    th = np.array([1.0, -2.0], dtype=np.float32)
    g = np.array([0.5, 0.25], dtype=np.float32)
    z = np.array([1.0, -1.0])
    out = langevin_step(th, g, 0.02, z)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, th - 0.02 * g + np.sqrt(0.04) * z, rtol=1e-6)
    np.testing.assert_array_equal(langevin_step(th, g, 0.02, None), th - np.float32(0.02) * g)
    assert th.tolist() == [1.0, -2.0]  # the input is not modified


def test_sgldfp_is_sgld_with_the_control_variate_estimator(make_logistic):
    m = make_logistic(n=80, d=3)
    cv = control_variates(m)
    assert isinstance(cv, ControlVariateGradient) and cv.grad_norm < 1e-6
    assert isinstance(minibatch_gradient(m), MinibatchGradient)
    th = cv.theta_star + np.array([0.2, -0.1, 0.05])
    idx = np.array([1, 5, 5, 40])
    a = sgldfp_step(m, th, 1e-3, idx, 4, cv)
    b = sgld_step(m, th, 1e-3, idx, 4, estimator=cv)
    c = sgld_step(cv, th, 1e-3, idx, 4)  # the estimator itself in place of the model
    z = np.random.default_rng(4).standard_normal(3)
    d = langevin_step(th, cv(th, idx), 1e-3, z)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)
    np.testing.assert_array_equal(a, d)
    # with the whole data set the estimator is grad U(theta) - grad U(theta*)
    np.testing.assert_allclose(cv(th, None), m.grad_potential(th) - m.grad_potential(
        cv.theta_star), rtol=1e-12)
    np.testing.assert_allclose(cv(th, np.arange(80)), cv(th, None), rtol=1e-10)


def test_int_seed_is_a_generator(make_logistic):
    m = make_logistic(n=60, d=3)
    th, idx = np.zeros(3), np.array([0, 1])
    np.testing.assert_array_equal(sgld_step(m, th, 1e-3, idx, 5),
                                  sgld_step(m, th, 1e-3, idx, np.random.default_rng(5)))
    np.testing.assert_array_equal(lmc_step(m, th, 1e-3, 5),
                                  lmc_step(m, th, 1e-3, np.random.default_rng(5)))
    np.testing.assert_array_equal(minibatch_indices(5, 60, 4),
                                  minibatch_indices(np.random.default_rng(5), 60, 4))
    a = sample(m, "sgld", 1e-3, 5, 100, generator=11)
    b = sample(m, "sgld", 1e-3, 5, 100, generator=np.random.default_rng(11))
    np.testing.assert_array_equal(a.draws, b.draws)
    with pytest.raises(ValidationError, match="generator"):
        sgld_step(m, th, 1e-3, idx, 2.5)


@pytest.mark.parametrize(("n", "p"), [(5, 2), (6, 3), (4, 4)])
def test_minibatch_blocks_without_replacement_are_uniform_subsets(n, p):
    # every subset of size p must be equally likely (chi-square, fixed seed), no repeats
    import itertools

    from scipy.stats import chisquare

    rng = np.random.default_rng(4)
    rows = np.concatenate([minibatch_indices(rng, n, p, False, n_batches=256)
                           for _ in range(80)])
    assert all(len(set(r)) == p for r in rows.tolist())
    subsets = {s: k for k, s in enumerate(itertools.combinations(range(n), p))}
    counts = np.bincount([subsets[tuple(sorted(r))] for r in rows.tolist()],
                         minlength=len(subsets))
    if len(subsets) > 1:
        assert chisquare(counts).pvalue > 1e-3


def test_failed_kernel_build_warns_with_the_compiler_output_and_falls_back(
        monkeypatch, tmp_path, make_linear):
    from neurips18._native import NativeBuildWarning
    from neurips18.sgmcmc import _native

    cc = tmp_path / "cc"
    cc.write_text("#!/bin/sh\necho 'glm.c:1:2: error: this compiler is broken' >&2\nexit 1\n")
    cc.chmod(0o755)
    monkeypatch.setenv("CC", str(cc))
    monkeypatch.setenv("NEURIPS18_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv(_native.SWITCH, raising=False)
    m = make_linear(n=100, d=2)
    _native.lib.cache_clear()
    try:
        with pytest.warns(NativeBuildWarning, match="this compiler is broken"):
            res = sample(m, "sgld", 1e-3, 10, 300, generator=0)
        assert res.diagnostics["kernel"] == "numpy"
        ref = sample(m, "sgld", 1e-3, 10, 300, generator=0, kernel="numpy")
        np.testing.assert_array_equal(res.draws, ref.draws)
    finally:
        _native.lib.cache_clear()


@pytest.mark.parametrize("kernel", ["auto", "numpy"])
def test_a_chain_resumed_from_a_checkpoint_is_the_uninterrupted_chain(make_logistic, kernel):
    # checkpoint = (final state, pickled generator); resuming continues the same chain when
    # the first part is a whole number of the sampler's blocks (documented in sample())
    import pickle

    m = make_logistic(n=400, d=3)
    ts = control_variates(m).theta_star
    gen = np.random.default_rng(21)
    first = sample(m, "sgldfp", 1e-3, 10, 512, theta_star=ts, generator=gen, kernel=kernel)
    saved = pickle.dumps((first.diagnostics["final_state"], gen))
    state, gen2 = pickle.loads(saved)
    rest = sample(m, "sgldfp", 1e-3, 10, 300, theta0=state, theta_star=ts, generator=gen2,
                  kernel=kernel)
    whole = sample(m, "sgldfp", 1e-3, 10, 812, theta_star=ts, generator=21, kernel=kernel)
    np.testing.assert_array_equal(np.concatenate([first.draws, rest.draws]), whole.draws)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_sgldfp_refuses_a_given_centre_that_is_not_the_mode(make_linear, dtype):
    # the control-variate estimate has mean grad U(theta) - grad U(theta_star): centred at a
    # point that is not the mode, the chain is drawn to that point (on this linear model its
    # mean was 0 and 1.5 away from the posterior mean for the centres below), so such a
    # centre is refused; the mode itself, found here or by find_mode, is accepted
    from neurips18.sgmcmc import find_mode, posterior_moments

    m = make_linear(n=2000, d=3, dtype=dtype)
    mu, _ = posterior_moments(m)
    for wrong in (np.zeros(3), mu + 0.5):
        with pytest.raises(ValidationError, match="Invalid theta_star.*mode of the posterior"):
            control_variates(m, wrong)
        with pytest.raises(ValidationError, match="Invalid theta_star"):
            sample(m, "sgldfp", 1 / 4000, 20, 10, theta_star=wrong, generator=0)
    control_variates(m, find_mode(m))
    control_variates(m, control_variates(m).theta_star)
    res = sample(m, "sgldfp", 1 / 4000, 20, 10, theta_star=mu.tolist(), generator=0)
    assert res.diagnostics["theta_star"] == pytest.approx(mu.tolist(), rel=1e-6)
    # a deliberately approximate centre stays possible with a looser tolerance
    near = mu + 1e-4
    with pytest.raises(ValidationError, match="Invalid theta_star"):
        control_variates(m, near)
    assert control_variates(m, near, rtol=1e-2).grad_norm > 0
    sample(m, "sgldfp", 1 / 4000, 20, 10, theta_star=near, mode_rtol=1e-2, generator=0)


def test_sample_result_var_is_the_diagonal_of_cov():
    # var divided by T and cov by T - 1: two summaries of one chain that disagreed
    from neurips18.sgmcmc import SampleResult

    draws = np.random.default_rng(0).normal(size=(5, 3))
    res = SampleResult(draws=draws, method="sgld")
    np.testing.assert_allclose(res.var(), np.diag(res.cov()), rtol=1e-12)
    np.testing.assert_allclose(res.var(), draws.var(axis=0, ddof=1), rtol=1e-12)


def test_diagnostics_do_not_report_a_sampling_setting_lmc_does_not_use(make_linear):
    # lmc takes the full gradient, so replacement=False changed nothing, yet the
    # diagnostics recorded it as the run's setting
    m = make_linear()
    lmc = sample(m, "lmc", 1e-4, None, 20, replacement=False, generator=0)
    assert lmc.diagnostics["replacement"] is None and lmc.diagnostics["batch_size"] is None
    sgld = sample(m, "sgld", 1e-4, 10, 20, replacement=False, generator=0)
    assert sgld.diagnostics["replacement"] is False
