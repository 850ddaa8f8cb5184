"""Differentially private k-means with constant multiplicative error.

Kaplan, Stemmer, "Differentially Private k-Means with Constant Multiplicative Error",
NeurIPS 2018 (arXiv:1804.08001): the centralised pipeline (private centres from
locality-sensitive hashes over a geometric grid of radii, a private coreset, a non-private
k-means on it) as the scikit-learn estimator :class:`PrivateKMeans` (with DPLloyd as the
classic baseline), the local-model protocol as :func:`local_kmeans`, and what they are built
from: exact discrete Laplace/Gaussian samplers (Canonne, Kamath, Steinke 2020, safe against
floating-point attacks), mechanisms on a fixed-point grid, a per-fit :class:`Ledger` and a
:class:`PrivacyAccountant` across fits. ``fit`` also takes a Dask array: every pass over the
data is a map-reduce and the noise is added once to the reduced sums.
"""

from neurips18.privacy._accountant import (
    BudgetExceededError,
    Ledger,
    LedgerEntry,
    PrivacyAccountant,
    PrivacyLeakWarning,
    rho_for_epsilon,
    zcdp_epsilon,
)
from neurips18.privacy._core import cost as kmeans_cost
from neurips18.privacy._estimator import PrivateKMeans, resolve_method
from neurips18.privacy._local import LocalKMeansResult, local_kmeans, randomized_response
from neurips18.privacy._mechanisms import (
    gaussian_release,
    laplace_release,
    threshold_for,
    thresholded_histogram,
)
from neurips18.privacy._samplers import bernoulli_exp, discrete_gaussian, discrete_laplace

__all__ = [
    "BudgetExceededError",
    "Ledger",
    "LedgerEntry",
    "LocalKMeansResult",
    "PrivacyAccountant",
    "PrivacyLeakWarning",
    "PrivateKMeans",
    "bernoulli_exp",
    "discrete_gaussian",
    "discrete_laplace",
    "gaussian_release",
    "kmeans_cost",
    "laplace_release",
    "local_kmeans",
    "randomized_response",
    "resolve_method",
    "rho_for_epsilon",
    "threshold_for",
    "thresholded_histogram",
    "zcdp_epsilon",
]
