"""The Bayesian model of a multi-value rule set and the bounds that prune its search.

Tong Wang, "Multi-value Rule Sets for Interpretable Classification with Feature-Efficient
Representations", NeurIPS 2018.

A model ``S`` is a list of rules; a rule is a conjunction of conditions ``attribute in
{values}``. Its log posterior (up to a constant) is the sum of

* ``log GammaPoisson(M; alpha_M, beta_M)``: the number of rules ``M``;
* for every rule, ``log GammaPoisson(L; alpha_L, beta_L)``: its number of values ``L``
  (summed over its conditions) and ``log DirMult(J; alpha)``: the probability of one
  particular sequence of ``L`` attribute choices with counts ``J`` under a symmetric
  Dirichlet-multinomial, which rewards rules whose values concentrate on few attributes;
* the beta-binomial (Polya sequence) likelihood of the labels of the covered examples with
  ``Beta(alpha_1, beta_1)`` on the precision, and of the uncovered examples with
  ``Beta(alpha_2, beta_2)`` on the negative predictive value.

The bounds (:func:`max_rules_bound`, :func:`min_support_bound`) are derived here in our own
words (see their docstrings); they play the role of the paper's Theorems: any rule set with
more than ``M*`` rules, or containing a rule that covers fewer than ``s*`` training examples,
has a lower posterior than the best model found so far and can leave the search space.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache

__all__ = [
    "ACCURACY_PRIOR",
    "MRSPrior",
    "NAMED_PRIORS",
    "PAPER_PRIOR",
    "log_gamma_poisson",
    "log_beta_binomial",
    "log_dirichlet_multinomial",
    "rule_log_prior",
    "max_rules_bound",
    "min_support_bound",
]


@dataclass(frozen=True)
class MRSPrior:
    """Hyperparameters of the multi-value rule set model.

    Defaults are those of the author's code: a strong prior against many rules
    (``beta_M = 100``), about half a value per rule a priori (``alpha_L / beta_L``) and a
    likelihood that expects covered examples to be positive (``alpha_1 >> beta_1``) and
    uncovered ones negative (``alpha_2 >> beta_2``). ``alpha_attribute`` is the symmetric
    Dirichlet parameter over attributes.
    """

    alpha_1: float = 100.0
    beta_1: float = 1.0
    alpha_2: float = 100.0
    beta_2: float = 1.0
    alpha_M: float = 1.0
    beta_M: float = 100.0
    alpha_L: float = 1.0
    beta_L: float = 2.0
    alpha_attribute: float = 1.0

    def validate(self) -> None:
        from neurips18._validation import Interval, check

        for name, value in self.__dict__.items():
            check(f"prior.{name}", value, Interval(float, 0.0, None, closed="neither"))

    @classmethod
    def named(cls, name: str) -> MRSPrior:
        """A named prior: ``"paper"`` (the author's code) or ``"accuracy"`` (the default of
        :class:`~neurips18.rules.MultiValueRuleSetClassifier`)."""
        from neurips18._validation import Options, check

        return NAMED_PRIORS[check("prior", name, Options(NAMED_PRIORS))]


# The author's code's hyperparameters. With Beta(100, 1) on the precision of the covered
# examples (and on the negative predictive value of the others), the beta-binomial
# likelihood on tens of thousands of examples rewards any split that makes the two groups
# purer (a conditional-entropy criterion), and can keep rules whose precision is below 1/2.
PAPER_PRIOR = MRSPrior()
# Beta priors with 10^5 pseudo-counts at precision 0.9 turn the likelihood into an accuracy
# criterion: each training error costs log 9 whatever the rule set. The structure prior
# (number of rules, values per rule, attributes) is the paper's.
ACCURACY_PRIOR = MRSPrior(alpha_1=9e4, beta_1=1e4, alpha_2=9e4, beta_2=1e4)
NAMED_PRIORS = {"paper": PAPER_PRIOR, "accuracy": ACCURACY_PRIOR}


def log_gamma_poisson(k: int, alpha: float, beta: float) -> float:
    """log P(k) of the Gamma(alpha, rate beta)-Poisson (negative binomial) distribution."""
    return (
        math.lgamma(k + alpha)
        - math.lgamma(k + 1)
        - math.lgamma(alpha)
        + alpha * math.log(beta / (beta + 1.0))
        - k * math.log1p(beta)
    )


def log_beta_binomial(k: int, n: int, alpha: float, beta: float) -> float:
    """log probability of one particular sequence of ``k`` successes in ``n`` Polya draws.

    ``B(k + alpha, n - k + beta) / B(alpha, beta)`` (no binomial coefficient), as in the
    paper's likelihood.
    """
    return (
        math.lgamma(k + alpha)
        + math.lgamma(n - k + beta)
        - math.lgamma(n + alpha + beta)
        - math.lgamma(alpha)
        - math.lgamma(beta)
        + math.lgamma(alpha + beta)
    )


def log_dirichlet_multinomial(counts: list[int] | tuple[int, ...], alphas: list[float]) -> float:
    """log probability of one sequence with the given per-category counts (Polya urn)."""
    a = sum(alphas)
    n = sum(counts)
    out = math.lgamma(a) - math.lgamma(a + n)
    for c, al in zip(counts, alphas, strict=True):
        if c:
            out += math.lgamma(al + c) - math.lgamma(al)
    return out


@cache
def _lgamma_ratio(alpha: float, c: int) -> float:
    return math.lgamma(alpha + c) - math.lgamma(alpha)


def rule_log_prior(value_counts: tuple[int, ...], n_attributes: int, prior: MRSPrior) -> float:
    """log GammaPoisson(L) + log DirMult(J) of one rule (``value_counts``: one entry per
    condition, the number of values in it; attributes absent from the rule count 0)."""
    a = prior.alpha_attribute
    total_alpha = a * n_attributes
    n_values = sum(value_counts)
    out = log_gamma_poisson(n_values, prior.alpha_L, prior.beta_L)
    out += math.lgamma(total_alpha) - math.lgamma(total_alpha + n_values)
    for c in value_counts:
        out += _lgamma_ratio(a, c)
    return out


def max_rule_prior_factor(n_attributes: int, prior: MRSPrior) -> float:
    """``log rho_L``: an upper bound of ``GammaPoisson(L) * DirMult(J)`` over every rule.

    A Polya-urn sequence probability is a product of predictive probabilities; the first is
    ``alpha_j / sum(alpha) = 1 / n_attributes`` and the others are at most 1, so the
    Dirichlet-multinomial factor is at most ``1 / n_attributes``. The Gamma-Poisson factor
    is maximised over ``L >= 1`` numerically (it is unimodal).
    """
    mean = prior.alpha_L / prior.beta_L
    top = int(max(10, math.ceil(3 * mean + 50)))
    best = max(log_gamma_poisson(k, prior.alpha_L, prior.beta_L) for k in range(1, top + 1))
    return best - math.log(n_attributes)


def _log_ratio_m(m: int, prior: MRSPrior) -> float:
    """log P_M(m) / P_M(m - 1) for the Gamma-Poisson prior on the number of rules."""
    return math.log((m - 1 + prior.alpha_M) / (m * (prior.beta_M + 1.0)))


def _log_rho_m(prior: MRSPrior, m_max: int | None = None) -> float:
    """sup over 1 <= m (<= m_max) of log P_M(m) / P_M(m - 1)."""
    if prior.alpha_M >= 1.0:  # the ratio decreases in m: the largest is at m = 1
        return _log_ratio_m(1, prior)
    if m_max is None or m_max < 1:  # the ratio increases towards 1 / (beta_M + 1)
        return -math.log1p(prior.beta_M)
    return _log_ratio_m(m_max, prior)


def max_log_likelihood(n_pos: int, n_neg: int, prior: MRSPrior) -> float:
    """``L_up``: the largest likelihood any rule set can reach on the data.

    The likelihood depends on a rule set only through (TP, FP). For a fixed FP its
    increments in TP are ``log((TP + a1) / (TP + FP + a1 + b1))`` minus
    ``log((FN + b2) / (TN + FN + a2 + b2))`` with ``FN = n_pos - TP - 1``; both pieces grow
    with TP, so the likelihood is convex in TP, and likewise in FP. A function convex in
    each coordinate attains its maximum over a box at a corner, so ``L_up`` is the best of
    the four corners (cover the positives only, the negatives only, nothing, everything).
    """
    p = prior

    def lik(tp: int, fp: int) -> float:
        tn, fn = n_neg - fp, n_pos - tp
        return log_beta_binomial(tp, tp + fp, p.alpha_1, p.beta_1) + log_beta_binomial(
            tn, tn + fn, p.alpha_2, p.beta_2
        )

    return max(lik(n_pos, 0), lik(0, n_neg), lik(0, 0), lik(n_pos, n_neg))


def max_rules_bound(
    best_log_posterior: float, n_pos: int, n_neg: int, n_attributes: int, prior: MRSPrior
) -> float:
    """``M*``: no MAP rule set has more rules than this (``inf`` if the bound is vacuous).

    Every rule set ``S`` with ``M`` rules satisfies
    ``log p(S | D) <= L_up + log P_M(0) + M log(rho_M rho_L)`` because
    ``P_M(M) <= P_M(0) rho_M^M`` and each rule's own prior factor is at most ``rho_L``. A
    MAP model is at least as good as the best model seen (``v*``), so
    ``M <= (L_up + log P_M(0) - v*) / -log(rho_M rho_L)``.
    """
    log_rho = _log_rho_m(prior) + max_rule_prior_factor(n_attributes, prior)
    if log_rho >= 0:
        return math.inf
    l_up = max_log_likelihood(n_pos, n_neg, prior)
    log_p0 = log_gamma_poisson(0, prior.alpha_M, prior.beta_M)
    return float(math.floor((l_up + log_p0 - best_log_posterior) / -log_rho + 1e-9))


def min_support_bound(m_star: float, n_samples: int, n_attributes: int, prior: MRSPrior) -> int:
    """``s*``: every rule of a MAP rule set covers at least this many training examples.

    Removing a rule ``r`` from a MAP model ``S`` (``M <= M*`` rules) must not raise the
    posterior. The prior rises by at least ``1 / (rho_M(M*) rho_L)``. The ``k <= supp(r)``
    examples only ``r`` covers move to the uncovered group: each move multiplies the
    covered-group likelihood by at least 1 (one predictive factor fewer) and the
    uncovered-group likelihood by at least ``Upsilon = min(alpha_2, beta_2) / (N + alpha_2
    + beta_2)`` (one more predictive factor). So ``Upsilon^k / (rho_M rho_L) <= 1``, i.e.
    ``supp(r) >= k >= log(rho_M rho_L) / log(Upsilon)``.
    """
    m_max = None if not math.isfinite(m_star) else max(int(m_star), 1)
    log_rho = _log_rho_m(prior, m_max) + max_rule_prior_factor(n_attributes, prior)
    if log_rho >= 0:
        return 1
    log_upsilon = math.log(min(prior.alpha_2, prior.beta_2)) - math.log(
        n_samples + prior.alpha_2 + prior.beta_2
    )
    if log_upsilon >= 0:
        return 1
    return max(1, math.ceil(log_rho / log_upsilon - 1e-9))
