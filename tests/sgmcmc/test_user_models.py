"""What a user brings: a TorchModel or a duck-typed model with default arguments, and step
sizes near the stability bound (issue: silent wrong draws above 2 / L; ModeNotFoundError on
a user's 11-dimensional logistic regression)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from neurips18._validation import ValidationError
from neurips18.sgmcmc import (
    BayesianLinearRegression,
    BayesianLogisticRegression,
    ModeNotFoundError,
    StepSizeWarning,
    TorchModel,
    control_variates,
    find_mode,
    sample,
)

torch = pytest.importorskip("torch")


def _logistic_data(n=2000, d=11, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    theta = rng.standard_normal(d)
    y = (rng.random(n) < 1 / (1 + np.exp(-X @ theta))).astype(float)
    return X, y


def _torch_logistic(X, y, dtype=np.float64, **kw):
    tdt = torch.float64 if dtype == np.float64 else torch.float32

    def loglik(th, batch):
        x, t = batch
        z = x @ th
        return t * z - torch.nn.functional.softplus(z)

    def logprior(th):
        return -0.5 * (th * th).sum()

    data = (torch.tensor(X, dtype=tdt), torch.tensor(y, dtype=tdt))
    return TorchModel(loglik, logprior, data, X.shape[1], dtype=dtype, **kw)


class _Duck:
    """A duck-typed user model (no Hessian, no Hessian-vector product)."""

    def __init__(self, X, y):
        self.X, self.y = X, y
        self.n_data, self.dim = X.shape

    def log_prior(self, th):
        return -0.5 * float(th @ th)

    def grad_log_prior(self, th):
        return -th

    def log_likelihood(self, th, idx=None):
        X, y = (self.X, self.y) if idx is None else (self.X[idx], self.y[idx])
        z = X @ th
        return y * z - np.logaddexp(0, z)

    def grad_log_likelihood_sum(self, th, idx=None):
        X, y = (self.X, self.y) if idx is None else (self.X[idx], self.y[idx])
        return X.T @ (y - 1 / (1 + np.exp(-(X @ th))))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_torch_model_samples_with_default_arguments(dtype):
    X, y = _logistic_data()
    ref = find_mode(BayesianLogisticRegression(X, y, 1.0), rtol=1e-12)
    tm = _torch_logistic(X, y, dtype)
    res = sample(tm, "sgldfp", 1 / (2 * len(y)), 50, 300, generator=0)
    ts = np.array(res.diagnostics["theta_star"])
    # float64: the mode to Newton's accuracy; float32: to its rounding floor
    tol = 1e-9 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(ts, ref, atol=tol)
    assert res.draws.dtype == np.dtype(dtype)


def test_duck_typed_model_samples_with_default_arguments():
    X, y = _logistic_data(n=1500)
    glm = BayesianLogisticRegression(X, y, 1.0)
    ref = find_mode(glm, rtol=1e-12)
    res = sample(_Duck(X, y), "sgldfp", 1 / 3000, 50, 300, generator=0)
    # the contract: ||grad U|| <= rtol * scale (rtol = 1e-8), so |theta - theta*| is at most
    # that over the smallest Hessian eigenvalue
    scale = float(np.linalg.norm(X.T @ (y - 0.5)))
    assert res.diagnostics["grad_norm_at_mode"] <= 1e-8 * scale
    lam_min = np.linalg.eigvalsh(glm.hessian_potential(ref))[0]
    np.testing.assert_allclose(res.diagnostics["theta_star"], ref, atol=1e-8 * scale / lam_min)


def test_poisson_torch_model_mode_matches_newton():
    # a likelihood that is not one of the built-in GLMs; the reference is dense Newton
    rng = np.random.default_rng(3)
    X = 0.3 * rng.standard_normal((800, 6))
    y = rng.poisson(np.exp(X @ rng.standard_normal(6))).astype(float)

    def loglik(th, batch):
        x, t = batch
        z = x @ th
        return t * z - torch.exp(z)

    tm = TorchModel(loglik, lambda th: -0.5 * (th * th).sum(),
                    (torch.tensor(X), torch.tensor(y)), 6)
    t = np.zeros(6)
    for _ in range(50):
        mu = np.exp(X @ t)
        t = t - np.linalg.solve(X.T @ (X * mu[:, None]) + np.eye(6), t - X.T @ (y - mu))
    np.testing.assert_allclose(find_mode(tm), t, atol=1e-9)


def test_mode_tolerance_is_passed_through():
    X, y = _logistic_data(n=1000, d=4)
    tm = _torch_logistic(X, y)
    loose = sample(tm, "sgldfp", 1e-4, 20, 10, generator=0, mode_rtol=1e-3)
    tight = sample(tm, "sgldfp", 1e-4, 20, 10, generator=0, mode_rtol=1e-10)
    scale = float(np.linalg.norm(X.T @ (y - 0.5)))  # ||sum grad log p_i(0)||
    assert loose.diagnostics["grad_norm_at_mode"] <= 1e-3 * scale
    assert tight.diagnostics["grad_norm_at_mode"] <= 1e-10 * scale
    with pytest.raises(ModeNotFoundError, match="mode_rtol"):
        sample(tm, "sgld", 1e-4, 20, 10, generator=0, mode_rtol=1e-300)


def test_torch_hessian_vector_product_is_the_hessian():
    X, y = _logistic_data(n=300, d=4)
    tm = _torch_logistic(X, y)
    glm = BayesianLogisticRegression(X, y, 1.0)
    th = np.array([0.3, -0.2, 0.1, 0.5])
    v = np.array([1.0, 2.0, -1.0, 0.5])
    np.testing.assert_allclose(tm.hessian_vector_product(th, v),
                               glm.hessian_potential(th) @ v, rtol=1e-10)


# --------------------------------------------------------------------------- step size


def test_glm_lipschitz_constant_bounds_the_hessian():
    X, y = _logistic_data(n=500, d=5)
    m = BayesianLogisticRegression(X, y, 2.0)
    L = m.lipschitz_constant()
    assert L == pytest.approx(2.0 + 0.25 * np.linalg.eigvalsh(X.T @ X)[-1], rel=1e-12)
    rng = np.random.default_rng(0)
    for _ in range(20):  # the bound holds everywhere, and is nearly reached near theta = 0
        th = 3 * rng.standard_normal(5)
        assert np.linalg.eigvalsh(m.hessian_potential(th))[-1] <= L * (1 + 1e-12)
    assert np.linalg.eigvalsh(m.hessian_potential(np.zeros(5)))[-1] == pytest.approx(L)
    lin = BayesianLinearRegression(X, y, 1.0, noise_variance=0.5)
    assert lin.lipschitz_constant() == pytest.approx(
        np.linalg.eigvalsh(lin.hessian_potential(np.zeros(5)))[-1], rel=1e-12)


@pytest.mark.parametrize("method", ["lmc", "sgld", "sgldfp", "sgd"])
def test_unstable_step_is_refused_with_the_bound(method):
    X, y = _logistic_data(n=1000, d=5)
    m = BayesianLogisticRegression(X, y, 1.0)
    local = np.linalg.eigvalsh(m.hessian_potential(find_mode(m)))[-1]
    bound = f"{2 / local:.6g}"
    with pytest.raises(ValidationError, match=f"stability bound 2 / lambda_max.*= {bound}"):
        sample(m, method, 20 * 2 / m.lipschitz_constant(), 50, 100, generator=0)


def test_step_above_two_over_l_warns_with_the_bound():
    X, y = _logistic_data(n=1000, d=5)
    m = BayesianLogisticRegression(X, y, 1.0)
    L = m.lipschitz_constant()
    with pytest.warns(StepSizeWarning, match=f"2 / L = {2 / L:.6g}") as rec:
        res = sample(m, "sgld", 1.5 * 2 / L, 50, 300, generator=0)
    assert len(rec) == 1 and res.diagnostics["stability_bound"] == pytest.approx(2 / L)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sample(m, "sgld", 0.5 * 2 / L, 50, 300, generator=0)
    # with a start point and no mode search, only the global bound is known: a warning
    with pytest.warns(StepSizeWarning):
        sample(m, "lmc", 20 * 2 / L, None, 300, theta0=np.zeros(5), generator=0)


def test_linear_regression_refuses_at_two_over_l_from_any_start():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((300, 3))
    m = BayesianLinearRegression(X, X @ [1.0, 0.0, -1.0] + rng.standard_normal(300), 1.0)
    L = m.lipschitz_constant()
    with pytest.raises(ValidationError, match=f"= {2 / L:.6g}"):
        sample(m, "lmc", 1.01 * 2 / L, None, 100, theta0=np.ones(3), generator=0)
    sample(m, "lmc", 0.99 * 2 / L, None, 100, theta0=np.ones(3), generator=0)


def test_user_models_declare_their_lipschitz_constant():
    X, y = _logistic_data(n=400, d=3)
    L = 1.0 + 0.25 * np.linalg.eigvalsh(X.T @ X)[-1]
    tm = _torch_logistic(X, y, lipschitz_constant=L)
    duck = _Duck(X, y)
    duck.lipschitz_constant = lambda: L
    for model in (tm, duck):
        with pytest.warns(StepSizeWarning, match=f"{2 / L:.6g}"):
            sample(model, "sgld", 3 / L, 20, 50, generator=0)
    with pytest.raises(ValidationError, match="lipschitz_constant"):
        _torch_logistic(X, y, lipschitz_constant=-1.0)


def test_torch_model_keeps_its_own_copy_of_the_data():
    # like the GLMs, a TorchModel must not follow later in-place changes to the caller's
    # tensors: an SGLDFP estimator built on it caches the gradient at its centre, and the
    # chain would then be centred on the old data's mode while stepping on the new data
    from neurips18.sgmcmc import control_variates, sgldfp_step

    X, y = _logistic_data(n=300, d=3)
    Xt, yt = torch.tensor(X), torch.tensor(y)

    def loglik(th, batch):
        x, t = batch
        z = x @ th
        return t * z - torch.nn.functional.softplus(z)

    m = TorchModel(loglik, lambda th: -0.5 * (th * th).sum(), (Xt, yt), 3)
    glm = BayesianLogisticRegression(X, y, 1.0)
    cv = control_variates(m)
    theta = np.array([0.3, -0.2, 0.1])
    g0 = m.grad_potential(theta)
    Xt.mul_(0.0)
    yt.fill_(1.0)
    np.testing.assert_allclose(m.grad_potential(theta), g0, rtol=1e-12)
    np.testing.assert_allclose(m.grad_potential(theta), glm.grad_potential(theta), rtol=1e-10)
    assert np.linalg.norm(m.grad_potential(cv.theta_star)) < 1e-6
    idx = np.arange(0, 300, 7)
    a = sgldfp_step(m, theta, 1e-3, idx, 3, cv)
    b = sgldfp_step(glm, theta, 1e-3, idx, 3, control_variates(glm))
    np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-10)


def test_torch_model_refuses_log_likelihoods_that_are_not_per_example():
    # labels kept as a column (n, 1) broadcast against x @ theta (b,) to a (b, b) matrix,
    # whose sum autograd differentiated without complaint: the mode came out (0.01, 0.001)
    # where the model's is (0.93, -1.04)
    X, y = _logistic_data(n=500, d=2)

    def column_bug(th, batch):
        x, t = batch
        z = x @ th
        return t * z - torch.nn.functional.softplus(z)

    data = (torch.tensor(X), torch.tensor(y).view(-1, 1))
    m = TorchModel(column_bug, lambda th: -0.5 * (th * th).sum(), data, 2)
    theta = np.array([0.5, -0.5])
    with pytest.raises(ValidationError, match=r"Invalid log_likelihood.*\(500, 500\).*\(500,\)"):
        find_mode(m)
    with pytest.raises(ValidationError, match=r"Invalid log_likelihood.*shape \(7,\)"):
        m.grad_log_likelihood_sum(theta, np.arange(7))
    with pytest.raises(ValidationError, match="Invalid log_likelihood"):
        m.log_likelihood(theta)
    with pytest.raises(ValidationError, match="Invalid log_likelihood"):
        sample(m, "sgld", 1e-3, 10, 5, theta0=theta, generator=0)
    # the per-example form is accepted and is the built-in model
    fixed = TorchModel(lambda th, b: column_bug(th, (b[0], b[1][:, 0])),
                       lambda th: -0.5 * (th * th).sum(), data, 2)
    np.testing.assert_allclose(find_mode(fixed),
                               find_mode(BayesianLogisticRegression(X, y, 1.0)), atol=1e-6)


class _ColumnDuck(_Duck):
    """The duck model with one method returning a wrongly shaped value."""

    def __init__(self, X, y, bad):
        super().__init__(X, y)
        self.bad = bad

    def grad_log_likelihood_sum(self, th, idx=None):
        g = super().grad_log_likelihood_sum(th, idx)
        return g[:, None] if self.bad == "grad_log_likelihood_sum" else g

    def grad_log_prior(self, th):
        g = super().grad_log_prior(th)
        return g[None, :] if self.bad == "grad_log_prior" else g

    def log_likelihood(self, th, idx=None):
        v = super().log_likelihood(th, idx)
        return v[:, None] + v[None, :] if self.bad == "log_likelihood" else v


@pytest.mark.parametrize("bad", ["grad_log_likelihood_sum", "grad_log_prior",
                                 "log_likelihood"])
@pytest.mark.parametrize("d", [1, 3])
def test_duck_model_return_shapes_are_checked(bad, d):
    # with d = 1 a (1, 1) gradient ran the whole chain on a (1, 1) state (its final_state
    # came back (1, 1)); with d = 3 it failed deep in the sampler on a (3, 3) broadcast;
    # a (b, b) log-likelihood went into the potential as a sum of b^2 terms
    X, y = _logistic_data(n=200, d=d)
    m = _ColumnDuck(X, y, bad)
    with pytest.raises(ValidationError, match=f"Invalid model.{bad}.*expected a return value "
                                              "of shape"):
        find_mode(m)
    from neurips18.sgmcmc import as_model

    with pytest.raises(ValidationError, match=f"Invalid model.{bad}"):
        if bad == "log_likelihood":  # the chain itself never evaluates U
            as_model(m).potential(np.zeros(d))
        else:
            sample(m, "sgld", 1e-3, 10, 20, theta0=np.zeros(d), generator=0)


@pytest.mark.parametrize("mode", ["no_grad", "inference_mode"])
def test_torch_model_samples_inside_a_no_grad_block(mode) -> None:
    # autograd is the model's gradient: under torch.no_grad() or torch.inference_mode() the
    # chain, the mode search and the SGLDFP centre failed with "does not require grad"
    X, y = _logistic_data(n=300, d=3)
    tm = _torch_logistic(X, y)
    ref = {m: sample(tm, m, 1e-3, 20, 300, generator=0).draws for m in ("sgld", "sgldfp")}
    ctx = torch.no_grad if mode == "no_grad" else torch.inference_mode
    with ctx():
        for m, draws in ref.items():
            np.testing.assert_array_equal(sample(tm, m, 1e-3, 20, 300, generator=0).draws,
                                          draws)
        assert torch.is_grad_enabled() is False  # the caller's mode is left as it was


def test_torch_model_built_inside_inference_mode_samples() -> None:
    # the model's copy of its data, made inside torch.inference_mode(), was an inference
    # tensor: every gradient failed with "Inference tensors cannot be saved for backward",
    # inside the block and after it
    X, y = _logistic_data(n=300, d=3)
    ref = sample(_torch_logistic(X, y), "sgldfp", 1e-3, 20, 300, generator=0).draws
    with torch.inference_mode():
        tm = _torch_logistic(X, y)
        np.testing.assert_array_equal(sample(tm, "sgldfp", 1e-3, 20, 300, generator=0).draws,
                                      ref)
    np.testing.assert_array_equal(sample(tm, "sgldfp", 1e-3, 20, 300, generator=0).draws, ref)


class _ShiftedPrior(BayesianLogisticRegression):
    """A user's subclass: the same likelihood, the prior N(3, I / lambda)."""

    def log_prior(self, theta):
        t = np.asarray(theta, np.float64) - 3.0
        return float(-0.5 * self.prior_precision * t @ t)

    def grad_log_prior(self, theta):
        return -self._lam * (theta - self.dtype.type(3.0))


def test_subclass_overriding_the_prior_is_sampled_with_its_own_prior() -> None:
    # find_mode and the C kernel computed the built-in N(0, I / lambda) prior in closed
    # form: the "mode" had ||grad U|| = 21 and the native chain sampled the built-in
    # posterior, while kernel="numpy" followed the subclass
    X, y = _logistic_data(n=50, d=2)
    m = _ShiftedPrior(X, y, prior_precision=5.0)
    ts = find_mode(m)
    assert np.linalg.norm(m.grad_potential(ts)) < 1e-6
    runs = {k: sample(m, "sgld", 1e-3, 10, 3000, generator=0, kernel=k) for k in ("auto",
                                                                               "numpy")}
    np.testing.assert_array_equal(runs["auto"].draws, runs["numpy"].draws)
    res = sample(m, "sgldfp", 1e-3, 10, 3000, generator=0)
    np.testing.assert_allclose(res.diagnostics["theta_star"], ts, rtol=0, atol=1e-8)
    from neurips18.sgmcmc import (
        importance_moments,
        invariant_moments,
        posterior_mean_expansion,
        third_derivative_at,
    )

    for call in (lambda: invariant_moments(m, "sgld", 1e-3, 10, linearize=True),
                 lambda: importance_moments(m, 100, 0),
                 lambda: posterior_mean_expansion(m),
                 lambda: third_derivative_at(m, ts)):
        with pytest.raises(ValidationError, match="^Invalid model: .*overrides"):
            call()


@pytest.mark.parametrize("flat", [lambda th: torch.tensor(0.0, dtype=torch.float64),
                                  lambda th: 0.0])
def test_torch_model_with_a_flat_prior(flat) -> None:
    # a flat (improper) prior written as a constant has no autograd graph: it used to fail
    # every gradient with "element 0 of tensors does not require grad"; its gradient is zero
    rng = np.random.default_rng(4)
    X = rng.standard_normal((300, 3))
    y = X @ np.array([1.0, -2.0, 0.5]) + rng.standard_normal(300)

    def loglik(th, batch):
        x, t = batch
        return -0.5 * (t - x @ th) ** 2

    tm = TorchModel(loglik, flat, (torch.tensor(X), torch.tensor(y)), 3)
    np.testing.assert_array_equal(tm.grad_log_prior(np.ones(3)), np.zeros(3))
    assert tm.log_prior(np.ones(3)) == 0.0
    np.testing.assert_allclose(find_mode(tm), np.linalg.lstsq(X, y, rcond=None)[0],
                               atol=1e-8)
    res = sample(tm, "sgld", 1e-4, 30, 50, generator=0)
    assert np.isfinite(res.draws).all()


def test_torch_model_refuses_a_log_prior_that_is_not_a_scalar() -> None:
    X = np.ones((5, 2))
    tm = TorchModel(lambda th, b: b @ th, lambda th: -0.5 * th ** 2, torch.tensor(X), 2)
    with pytest.raises(ValidationError, match="log_prior"):
        tm.grad_log_prior(np.ones(2))
    with pytest.raises(ValidationError, match="log_prior"):
        tm.log_prior(np.ones(2))


def test_torch_model_refuses_a_log_prior_without_a_graph_that_is_not_constant() -> None:
    # .item() drops the graph: taking such a prior as flat would silently sample without it
    X = np.ones((5, 2))
    tm = TorchModel(lambda th, b: b @ th, lambda th: -0.5 * (th.detach() ** 2).sum().item(),
                    torch.tensor(X), 2)
    with pytest.raises(ValidationError, match="no autograd graph"):
        tm.grad_log_prior(np.ones(2))


@pytest.mark.parametrize(("shape", "d"), [("column", 1), ("column", 3), ("scalar", 3)])
def test_duck_model_control_variate_shape_is_checked(shape, d):
    # a user's own control_variate went unchecked: a (d, 1) column made the SGLDFP state
    # (d, d) (with d = 1 the error then blamed grad_log_prior; with d = 3 a bare NumPy
    # broadcast error), and a (1,) value was spread over every coordinate without a word
    X, y = _logistic_data(n=200, d=d)

    class CVDuck(_Duck):
        def control_variate(self, ts):
            def diff(th, idx):
                Xb = self.X[idx]
                v = Xb.T @ (1 / (1 + np.exp(-(Xb @ ts))) - 1 / (1 + np.exp(-(Xb @ th))))
                return v[:, None] if shape == "column" else np.array([v.sum()])
            return diff

    m = CVDuck(X, y)
    with pytest.raises(ValidationError, match="Invalid model.control_variate"):
        sample(m, "sgldfp", 1e-3, 10, 20, generator=0)


def test_mode_checks_on_a_model_whose_domain_excludes_zero() -> None:
    # an exponential rate (log barrier at 0): the gradient scale at 0 is infinite, so the
    # SGLDFP centre test accepted any theta_star (here half the mode, ||grad U|| ~ 1e2) and
    # the chain sampled around it; find_mode from zeros failed with "inf > inf"
    x = torch.tensor(np.random.default_rng(0).exponential(0.5, 200))
    tm = TorchModel(lambda th, b: torch.log(th[0]) - th[0] * b, lambda th: -th[0], x, 1)
    mode = 200 / (1 + float(x.sum()))
    with pytest.raises(ValidationError, match="Invalid theta_star"):
        control_variates(tm, theta_star=[0.5 * mode])
    with pytest.raises(ValidationError, match="Invalid theta0"):
        find_mode(tm)
    np.testing.assert_allclose(find_mode(tm, theta0=[1.0]), [mode], rtol=1e-8)
    assert control_variates(tm, theta_star=[mode]).grad_norm < 1e-10  # the exact mode


class _TemperedLikelihood(BayesianLinearRegression):
    """A user's subclass: the likelihood raised to the power 1/4 (a tempered posterior)."""

    T = 0.25

    def log_likelihood(self, theta, idx=None):
        return self.T * super().log_likelihood(theta, idx)

    def grad_log_likelihood(self, theta, idx=None):
        return self.T * super().grad_log_likelihood(theta, idx)

    def grad_log_likelihood_sum(self, theta, idx=None):
        return self.T * super().grad_log_likelihood_sum(theta, idx)


def test_subclass_overriding_the_likelihood_gets_its_own_control_variate() -> None:
    # the GLM's cached control variate used the built-in likelihood's derivative, so SGLDFP
    # sampled the untempered posterior (variance ratio 0.28 against the subclass's exact
    # posterior); its Hessian and Lipschitz bound were the built-in posterior's too
    rng = np.random.default_rng(0)
    X = rng.normal(size=(2000, 2))
    y = X @ np.array([1.0, -1.0]) + rng.normal(size=2000)
    m = _TemperedLikelihood(X, y, prior_precision=1.0, noise_variance=1.0)
    ts, theta, idx = find_mode(m), np.array([0.3, -0.2]), np.arange(0, 2000, 7)
    np.testing.assert_allclose(m.control_variate(ts)(theta, idx),
                               m.grad_log_likelihood_sum(theta, idx)
                               - m.grad_log_likelihood_sum(ts, idx), rtol=1e-10, atol=1e-10)
    assert m.hessian_potential(ts) is None and m.lipschitz_constant() is None
    exact = np.diag(np.linalg.inv(np.eye(2) + 0.25 * X.T @ X))
    res = sample(m, "sgldfp", 1e-4, 50, 20000, generator=1)
    ratio = np.diag(res.cov()) / exact
    assert np.all((ratio > 0.75) & (ratio < 1.33)), ratio
    plain = BayesianLinearRegression(X, y, prior_precision=1.0, noise_variance=1.0)
    assert plain.hessian_potential(ts) is not None and plain.lipschitz_constant() > 0


class _BufferedDuck(_Duck):
    """The same model, writing its gradients into buffers that every call reuses."""

    def __init__(self, X, y):
        _Duck.__init__(self, X, y)
        self._gp, self._gl = np.empty(self.dim), np.empty(self.dim)

    def grad_log_prior(self, th):
        np.multiply(-1.0, th, out=self._gp)
        return self._gp

    def grad_log_likelihood_sum(self, th, idx=None):
        self._gl[:] = _Duck.grad_log_likelihood_sum(self, th, idx)
        return self._gl


def _buffered_model(X, y):
    from neurips18.sgmcmc import Model

    class _BufferedModel(Model):  # the same methods on a Model subclass (no adapter)
        __init__ = _BufferedDuck.__init__
        log_prior = _Duck.log_prior
        grad_log_prior = _BufferedDuck.grad_log_prior
        log_likelihood = _Duck.log_likelihood
        grad_log_likelihood_sum = _BufferedDuck.grad_log_likelihood_sum

    return _BufferedModel(X, y)


@pytest.mark.parametrize("as_subclass", [False, True])
def test_models_that_reuse_their_output_buffers_sample_the_same_chain(as_subclass) -> None:
    # a duck-typed model (or a Model subclass) returning one reused buffer: the SGLDFP
    # estimator kept the centre's prior gradient as that buffer, and the generic
    # control-variate difference subtracted the buffer from itself, so the chain lost its
    # prior and its likelihood (mean (6.0, -1.9, 0.7) for the posterior's (0.8, -0.8, 0.5))
    X, y = _logistic_data(n=1000, d=3)
    model = _buffered_model(X, y) if as_subclass else _BufferedDuck(X, y)
    ts = find_mode(BayesianLogisticRegression(X, y, 1.0), rtol=1e-12)
    ref = sample(_Duck(X, y), "sgldfp", 1 / 2000, 50, 600, generator=0, theta_star=ts)
    res = sample(model, "sgldfp", 1 / 2000, 50, 600, generator=0, theta_star=ts)
    np.testing.assert_allclose(res.draws, ref.draws, rtol=0, atol=1e-12)


def test_torch_model_passes_a_named_tuple_of_data_on_as_one() -> None:
    # data=Batch(x=..., y=...) is a tuple of tensors, but the model handed the user's
    # log-likelihood a plain tuple, which failed on batch.x
    from collections import namedtuple

    from neurips18.sgmcmc import minibatch_gradient

    Batch = namedtuple("Batch", "x y")
    X, y = _logistic_data(n=300, d=3)

    def loglik(th, batch):
        assert isinstance(batch, Batch)
        z = batch.x @ th
        return batch.y * z - torch.nn.functional.softplus(z)

    m = TorchModel(loglik, lambda th: -0.5 * (th * th).sum(),
                   Batch(torch.tensor(X), torch.tensor(y)), 3)
    glm = BayesianLogisticRegression(X, y, 1.0)
    theta = np.array([0.3, -0.2, 0.1])
    idx = np.arange(0, 300, 7)
    np.testing.assert_allclose(m.grad_potential(theta), glm.grad_potential(theta), rtol=1e-10)
    np.testing.assert_allclose(minibatch_gradient(m)(theta, idx),
                               minibatch_gradient(glm)(theta, idx), rtol=1e-10)


class _UnsummedPriorDuck(_Duck):
    def log_prior(self, th):
        return -0.5 * th * th  # per-coordinate terms, not summed


@pytest.mark.parametrize("d", [1, 3])
def test_duck_model_log_prior_must_be_one_number(d) -> None:
    # an unsummed (d,) log prior stopped the mode search with NumPy's "only 0-dimensional
    # arrays can be converted to Python scalars"; it is refused by name, and a one-element
    # value (as for d = 1, which failed the same way) is taken as the number it holds
    from neurips18.sgmcmc import as_model

    X, y = _logistic_data(n=200, d=d)
    if d > 1:
        with pytest.raises(ValidationError,
                           match=r"Invalid model.log_prior.*expected a scalar"):
            find_mode(_UnsummedPriorDuck(X, y))

    class _OneElement(_Duck):
        def log_prior(self, th):
            return np.array([_Duck.log_prior(self, th)])

    theta = np.linspace(-0.5, 0.5, d)
    assert as_model(_OneElement(X, y)).log_prior(theta) == _Duck(X, y).log_prior(theta)


def test_torch_model_refuses_a_log_likelihood_that_edits_its_data_in_place() -> None:
    # labels mapped to -1/+1 with s.mul_(2).sub_(1): on the whole data set the batch is the
    # model's own data, so every full-data call changed it again and the same
    # grad_potential(theta) came out (-4.8, -25.6), then (117, -164), then (347, -417)
    X, y = _logistic_data(n=300, d=2)

    def loglik(th, batch):
        x, s = batch
        s.mul_(2).sub_(1)
        return -torch.nn.functional.softplus(-s * (x @ th))

    m = TorchModel(loglik, lambda th: -0.5 * (th * th).sum(),
                   (torch.tensor(X), torch.tensor(y)), 2)
    with pytest.raises(ValidationError, match="Invalid log_likelihood.*in place"):
        m.grad_potential(np.array([1.0, -1.0]))
    with pytest.raises(ValidationError, match="Invalid log_likelihood.*in place"):
        find_mode(m)
    # a minibatch is a fresh gather: editing it is harmless and stays allowed
    m = TorchModel(loglik, lambda th: -0.5 * (th * th).sum(),
                   (torch.tensor(X), torch.tensor(y)), 2)
    ref = _torch_logistic(X, y)
    idx = np.arange(0, 300, 7)
    for _ in range(2):
        np.testing.assert_allclose(m.grad_log_likelihood_sum(np.array([1.0, -1.0]), idx),
                                   ref.grad_log_likelihood_sum(np.array([1.0, -1.0]), idx),
                                   rtol=1e-12)


class _InPlaceDuck(_Duck):
    def grad_log_prior(self, th):
        th *= -1.0  # the gradient of -|th|^2 / 2, computed on the argument itself
        return th


@pytest.mark.parametrize("method", ["sgld", "sgldfp"])
def test_duck_model_editing_its_argument_does_not_change_the_chain(method) -> None:
    # the adapter handed the chain's own state to the model: a grad_log_prior computed in
    # place flipped the state at every step (on a 2-d model SGLD mean (0.05, -0.04) for
    # the posterior's (0.99, -0.82)); the model now gets a copy
    X, y = _logistic_data(n=1000, d=3)
    ts = find_mode(BayesianLogisticRegression(X, y, 1.0), rtol=1e-12)
    ref = sample(_Duck(X, y), method, 1 / 2000, 20, 600, generator=0, theta_star=ts)
    res = sample(_InPlaceDuck(X, y), method, 1 / 2000, 20, 600, generator=0, theta_star=ts)
    np.testing.assert_array_equal(res.draws, ref.draws)
