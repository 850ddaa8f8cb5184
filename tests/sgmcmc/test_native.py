"""The C kernel for the GLM samplers runs the same chains as the NumPy loop.

Each comparison runs :func:`sample` twice from the same seed, once with the kernel and once
with ``NEURIPS18_SGMCMC_NATIVE=0``; both draw the same noise and minibatches, so the chains
differ only by the order of floating-point sums. The chains are contractive (gamma = 1/(2N),
log-concave posteriors), so these rounding differences stay at the size of a few rounding
errors of the state instead of growing: float64 agrees to 1e-10 relative, float32 to 2e-5
relative (about 170 float32 ulps; the measured gap is ~1e-6). A chain from another seed
differs by about the noise scale sqrt(2 gamma) ~ 0.05, far outside either tolerance, which
the last comparison test checks so that a wrong kernel cannot pass.
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
    """Run ``f()`` with the kernel switched on or off; the load cache is reset around it."""

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


def _chain(model, method, seed, *, replacement=True, thin=3, n_steps=3000, batch_size=10):
    return sample(model, method, 1.0 / (2 * N), batch_size, n_steps, replacement=replacement,
                  thin=thin, generator=np.random.default_rng(seed))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("glm", ["linear", "logistic"])
@pytest.mark.parametrize("method", ["sgld", "sgldfp", "sgd"])
@pytest.mark.parametrize("replacement", [True, False])
def test_native_matches_numpy_loop(make_linear, make_logistic, native_switch, dtype, glm,
                                   method, replacement):
    make = make_linear if glm == "linear" else make_logistic
    model = make(n=N, d=3, dtype=dtype)
    nat = native_switch(True, lambda: _chain(model, method, 1, replacement=replacement))
    ref = native_switch(False, lambda: _chain(model, method, 1, replacement=replacement))
    assert nat.diagnostics["kernel"] == "native"
    assert ref.diagnostics["kernel"] == "numpy"
    assert nat.draws.dtype == ref.draws.dtype == np.dtype(dtype)
    assert nat.draws.shape == ref.draws.shape == (1000, 3)
    assert _rel_gap(nat.draws, ref.draws) <= RTOL[dtype]
    assert nat.diagnostics["final_state"].dtype == np.dtype(dtype)
    assert _rel_gap(nat.diagnostics["final_state"], ref.diagnostics["final_state"]) <= RTOL[dtype]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("glm", ["linear", "logistic"])
def test_full_data_mode_matches_numpy_loop(make_linear, make_logistic, native_switch, dtype,
                                           glm):
    # sample() runs LMC with the NumPy loop (BLAS is faster on full-data products); the
    # kernel's full-data mode is checked here block by block against that loop
    make = make_linear if glm == "linear" else make_logistic
    model = make(n=N, d=3, dtype=dtype)
    gamma = 1.0 / (2 * N)
    assert native_switch(True, lambda: _chain(model, "lmc", 1, n_steps=300)
                         ).diagnostics["kernel"] == "numpy"
    nat = native_switch(True, lambda: sampler_mod._glm_native_inner(model, "lmc", gamma, 0,
                                                                    None))
    ref = sampler_mod._glm_inner(model, "lmc", gamma, 0, None)
    assert nat is not None
    rng = np.random.default_rng(3)
    th_n = th_r = np.zeros(3, dtype=dtype)
    out_n, out_r = np.empty((1000, 3), dtype), np.empty((1000, 3), dtype)
    kn = kr = 0
    for blk in range(12):  # 12 blocks of 250 steps, every third state kept
        noise = (np.sqrt(2 * gamma) * rng.standard_normal((250, 3))).astype(dtype)
        th_n, kn = nat(th_n, 250, noise, None, 250 * blk, 3, out_n, kn)
        th_r, kr = ref(th_r, 250, noise, None, 250 * blk, 3, out_r, kr)
    assert kn == kr == 1000
    assert th_n.dtype == np.dtype(dtype)
    assert _rel_gap(out_n, out_r) <= RTOL[dtype]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_comparison_discriminates(make_logistic, native_switch, dtype):
    # the same comparison against a chain from another seed fails by orders of magnitude
    model = make_logistic(n=N, d=3, dtype=dtype)
    nat = native_switch(True, lambda: _chain(model, "sgldfp", 1))
    other = native_switch(False, lambda: _chain(model, "sgldfp", 2))
    assert _rel_gap(nat.draws, other.draws) > 100 * RTOL[np.float32]


@pytest.mark.parametrize("thin,n_steps", [(1, 300), (7, 1000), (256, 700), (300, 300)])
def test_thinning_across_block_boundaries(make_linear, native_switch, thin, n_steps):
    # blocks have 256 steps: kept states must line up whatever thin is
    model = make_linear(n=N, d=2)
    nat = native_switch(True, lambda: _chain(model, "sgld", 5, thin=thin, n_steps=n_steps))
    ref = native_switch(False, lambda: _chain(model, "sgld", 5, thin=thin, n_steps=n_steps))
    assert nat.draws.shape == ref.draws.shape == (n_steps // thin, 2)
    assert _rel_gap(nat.draws, ref.draws) <= RTOL[np.float64]


def test_large_linear_predictor_is_stable(make_logistic, native_switch):
    # |x^T theta| in the hundreds: the form e^z / (1 + e^z) would give inf / inf = NaN
    model = make_logistic(n=N, d=3, dtype=np.float32)
    theta0 = np.array([60.0, -60.0, 60.0])

    def run():
        return sample(model, "sgd", 1e-6, 20, 500, theta0=theta0,
                      generator=np.random.default_rng(0))

    nat, ref = native_switch(True, run), native_switch(False, run)
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
        native_switch(True, lambda: sample(model, method, 10.0 / N, 10, 2000,
                                           generator=np.random.default_rng(0)))
    assert calls == [1]


def test_switch_off_uses_numpy_and_generic_models_keep_their_path(make_linear, native_switch):
    model = make_linear(n=N, d=2)
    off = native_switch(False, lambda: _chain(model, "sgld", 0, n_steps=300))
    assert off.diagnostics["kernel"] == "numpy"
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
