"""Stochastic-gradient Langevin samplers and what they really sample.

LMC, SGLD, SGLD Fixed Point (control variates at the mode) and SGD with a constant step,
after Brosse, Durmus, Moulines, "The promises and pitfalls of Stochastic Gradient Langevin
Dynamics", NeurIPS 2018 (arXiv:1811.10072):

* models: :class:`BayesianLinearRegression`, :class:`BayesianLogisticRegression`, any object
  following :class:`ModelProtocol`, and :class:`TorchModel` (autograd);
* the pieces of a chain (BlackJAX's shape): a gradient estimator, :func:`minibatch_gradient`
  or :func:`control_variates` (around the mode: SGLDFP is SGLD with this estimator), and one
  :func:`langevin_step`; the four methods' steps :func:`lmc_step`, :func:`sgld_step`,
  :func:`sgldfp_step`, :func:`sgd_step` compose them, with ``generator=`` a
  ``numpy.random.Generator`` or an int seed;
* :func:`sample`: a whole chain of those pieces (a C kernel for the built-in GLMs), with
  diagnostics, the mode found for SGLDFP;
* closed forms: :func:`invariant_moments`, :func:`posterior_moments`,
  :func:`covariance_operator`, :func:`wasserstein2_gaussian`;
* control-variate estimators of a chain's invariant moments (E_{pi_gamma}[grad U] = 0):
  :func:`control_variate_mean`, :func:`control_variate_cov`, with :func:`gradient_moments`
  and the Monte Carlo error :func:`batch_means_se`.

Example::

    import numpy as np
    from neurips18.sgmcmc import BayesianLogisticRegression, sample

    rng = np.random.default_rng(0)
    X = rng.standard_normal((10_000, 5)); y = (rng.random(10_000) < 0.5).astype(float)
    model = BayesianLogisticRegression(X, y, prior_precision=1.0)
    res = sample(model, "sgldfp", step_size=1 / (2 * 10_000), batch_size=50,
                 n_steps=20_000, generator=rng)
    res.mean(), res.cov()
"""

from neurips18.sgmcmc.estimators import (
    batch_means_se,
    control_variate_cov,
    control_variate_mean,
    gradient_moments,
    third_derivative_at,
)
from neurips18.sgmcmc.kernels import (
    ControlVariateGradient,
    MinibatchGradient,
    control_variates,
    langevin_step,
    lmc_step,
    minibatch_gradient,
    minibatch_indices,
    sgd_step,
    sgld_step,
    sgldfp_step,
)
from neurips18.sgmcmc.models import (
    BayesianLinearRegression,
    BayesianLogisticRegression,
    Model,
    ModelProtocol,
    ModeNotFoundError,
    TorchModel,
    as_model,
    find_mode,
)
from neurips18.sgmcmc.sampler import (
    METHODS,
    DivergenceError,
    SampleResult,
    StepSizeWarning,
    sample,
)
from neurips18.sgmcmc.theory import (
    covariance_operator,
    importance_moments,
    invariant_moments,
    posterior_mean_expansion,
    posterior_moments,
    wasserstein2_gaussian,
)

__all__ = [
    "METHODS",
    "BayesianLinearRegression",
    "BayesianLogisticRegression",
    "ControlVariateGradient",
    "DivergenceError",
    "MinibatchGradient",
    "Model",
    "ModeNotFoundError",
    "ModelProtocol",
    "SampleResult",
    "StepSizeWarning",
    "TorchModel",
    "as_model",
    "batch_means_se",
    "control_variate_cov",
    "control_variate_mean",
    "control_variates",
    "covariance_operator",
    "find_mode",
    "gradient_moments",
    "importance_moments",
    "invariant_moments",
    "langevin_step",
    "lmc_step",
    "minibatch_gradient",
    "minibatch_indices",
    "posterior_mean_expansion",
    "posterior_moments",
    "sample",
    "sgd_step",
    "sgld_step",
    "sgldfp_step",
    "third_derivative_at",
    "wasserstein2_gaussian",
]
