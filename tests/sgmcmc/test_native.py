"""The C kernel for the GLM samplers runs the chain of the public steps.

Each comparison runs the kernel (:func:`sample` with ``kernel="native"``) against the chain of
:func:`langevin_step` and the public gradient estimators on the same draws (the helper of
``test_kernels``, bit for bit the NumPy path of :func:`sample`); the two differ only by the
order of floating-point sums. The chains are contractive (gamma = 1/(2N), log-concave
posteriors), so these rounding differences stay at the size of a few rounding errors of the
state instead of growing: float64 agrees to 1e-10 relative, float32 to 2e-5 relative (about
170 float32 ulps; the measured gap is ~1e-6). A chain from another seed differs by about the
noise scale sqrt(2 gamma) ~ 0.05, far outside either tolerance, which the comparison test
checks so that a wrong kernel cannot pass.
"""

from __future__ import annotations

import numpy as np
import pytest

from neurips18.sgmcmc import DivergenceError, _native, sample
from neurips18.sgmcmc import sampler as sampler_mod

pytestmark = pytest.mark.skipif(_native.lib() is None,
                                reason="sgmcmc native kernel unavailable (no C compiler?)")

N = 400
RTOL = {np.float64: 1e-10, np.float32: 2e-5}


@pytest.fixture
def native_switch(monkeypatch):
    """Run ``f()`` with the environment switch on or off; the load cache is reset around it."""

    def run(on: bool, f):
        monkeypatch.setenv(_native.SWITCH, "1" if on else "0")
        _native.lib.cache_clear()
        try:
            return f()
        finally:
            monkeypatch.delenv(_native.SWITCH)
            _native.lib.cache_clear()

    return run


def _rel_gap(a: np.ndarray, b: np.ndarray) -> float:
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    return float(np.abs(a64 - b64).max() / np.abs(b64).max())


def _chain(model, method, seed, *, replacement=True, thin=3, n_steps=3000, batch_size=10,
           kernel="native"):
    return sample(model, method, 1.0 / (2 * N), batch_size, n_steps, replacement=replacement,
                  thin=thin, generator=np.random.default_rng(seed), kernel=kernel)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("glm", ["linear", "logistic"])
@pytest.mark.parametrize("method", ["sgld", "sgldfp", "sgd"])
@pytest.mark.parametrize("replacement", [True, False])
def test_native_kernel_is_the_public_step_chained(make_linear, make_logistic, dtype, glm,
                                                  method, replacement, chain_of_public_steps):
    make = make_linear if glm == "linear" else make_logistic
    model = make(n=N, d=3, dtype=dtype)
    theta0 = np.array([0.3, -0.1, 0.2])
    gamma, n = 1.0 / (2 * N), 2000
    nat = sample(model, method, gamma, 10, n, replacement=replacement, theta0=theta0,
                 generator=1, kernel="native")
    ref = chain_of_public_steps(model, method, gamma, 10, n, theta0, 1, replacement)
    assert nat.diagnostics["kernel"] == "native"
    assert nat.draws.dtype == ref.dtype == np.dtype(dtype)
    assert nat.draws.shape == ref.shape == (n, 3)
    assert _rel_gap(nat.draws, ref) <= RTOL[dtype]
    # and sample()'s own NumPy path, thinned
    a = _chain(model, method, 1, replacement=replacement)
    b = _chain(model, method, 1, replacement=replacement, kernel="numpy")
    assert (a.diagnostics["kernel"], b.diagnostics["kernel"]) == ("native", "numpy")
    assert a.draws.shape == b.draws.shape == (1000, 3)
    assert _rel_gap(a.draws, b.draws) <= RTOL[dtype]
    assert a.diagnostics["final_state"].dtype == np.dtype(dtype)
    assert _rel_gap(a.diagnostics["final_state"], b.diagnostics["final_state"]) <= RTOL[dtype]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_comparison_discriminates(make_logistic, native_switch, dtype):
    # the same comparison against a chain from another seed fails by orders of magnitude
    model = make_logistic(n=N, d=3, dtype=dtype)
    nat = _chain(model, "sgldfp", 1)
    other = _chain(model, "sgldfp", 2, kernel="numpy")
    assert _rel_gap(nat.draws, other.draws) > 100 * RTOL[np.float32]


@pytest.mark.parametrize("thin,n_steps", [(1, 300), (7, 1000), (256, 700), (300, 300)])
def test_thinning_across_block_boundaries(make_linear, native_switch, thin, n_steps):
    # blocks have 256 steps: kept states must line up whatever thin is
    model = make_linear(n=N, d=2)
    nat = _chain(model, "sgld", 5, thin=thin, n_steps=n_steps)
    ref = _chain(model, "sgld", 5, thin=thin, n_steps=n_steps, kernel="numpy")
    assert nat.draws.shape == ref.draws.shape == (n_steps // thin, 2)
    assert _rel_gap(nat.draws, ref.draws) <= RTOL[np.float64]


def test_large_linear_predictor_is_stable(make_logistic):
    # |x^T theta| in the hundreds: the form e^z / (1 + e^z) would give inf / inf = NaN
    model = make_logistic(n=N, d=3, dtype=np.float32)
    theta0 = np.array([60.0, -60.0, 60.0])

    def run(kernel):
        return sample(model, "sgd", 1e-6, 20, 500, theta0=theta0, generator=0, kernel=kernel)

    nat, ref = run("native"), run("numpy")
    assert np.isfinite(nat.draws).all()
    assert _rel_gap(nat.draws, ref.draws) <= RTOL[np.float32]


@pytest.mark.parametrize("method", ["sgd", "sgld"])
def test_divergence_raises_with_kernel(make_linear, native_switch, monkeypatch, method):
    calls = []
    orig = sampler_mod._glm_native_inner

    def spy(*args):
        inner = orig(*args)
        assert inner is not None
        calls.append(1)
        return inner

    monkeypatch.setattr(sampler_mod, "_glm_native_inner", spy)
    model = make_linear(n=N, d=2)
    with pytest.raises(DivergenceError, match="diverged"):
        native_switch(True, lambda: sample(model, method, 1.6 / model.lipschitz_constant(), 1,
                                           2000, generator=np.random.default_rng(0)))
    assert calls == [1]


def test_switch_off_uses_numpy_and_generic_models_keep_their_path(make_linear, native_switch):
    model = make_linear(n=N, d=2)
    off = native_switch(False, lambda: _chain(model, "sgld", 0, n_steps=300, kernel="auto"))
    assert off.diagnostics["kernel"] == "numpy"
    with pytest.raises(ValueError, match="kernel"):  # asked for, but switched off
        native_switch(False, lambda: _chain(model, "sgld", 0, n_steps=300))
    assert _chain(model, "sgld", 0, n_steps=300, kernel="auto").diagnostics["kernel"] == "native"
    assert _chain(model, "lmc", 0, n_steps=300, kernel="auto").diagnostics["kernel"] == "numpy"
    assert native_switch(False, _native.lib) is None
    assert native_switch(True, _native.lib) is not None

    class Wrapped:  # a protocol object, not a built-in GLM: the generic loop
        n_data, dim = model.n_data, model.dim
        log_prior = staticmethod(model.log_prior)
        grad_log_prior = staticmethod(model.grad_log_prior)
        log_likelihood = staticmethod(model.log_likelihood)
        grad_log_likelihood_sum = staticmethod(model.grad_log_likelihood_sum)

    res = native_switch(True, lambda: sample(Wrapped(), "sgld", 1.0 / (2 * N), 10, 300,
                                             theta0=np.zeros(2),
                                             generator=np.random.default_rng(0)))
    assert res.diagnostics["kernel"] == "numpy"
    with pytest.raises(ValueError, match="kernel"):
        sample(Wrapped(), "sgld", 1.0 / (2 * N), 10, 300, theta0=np.zeros(2), generator=0,
               kernel="native")
