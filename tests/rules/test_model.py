"""The model's densities against scipy, and the bounds against brute force."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.special import gammaln

from neurips18.rules import (
    MRSPrior,
    log_beta_binomial,
    log_dirichlet_multinomial,
    log_gamma_poisson,
    max_rules_bound,
    min_support_bound,
)
from neurips18.rules._model import max_log_likelihood, rule_log_prior
from neurips18.rules._search import RuleSpace


@pytest.mark.parametrize("alpha,beta", [(1.0, 100.0), (1.0, 2.0), (3.5, 0.7)])
def test_gamma_poisson_is_negative_binomial(alpha, beta):
    k = np.arange(0, 30)
    ref = stats.nbinom.logpmf(k, alpha, beta / (1 + beta))
    ours = [log_gamma_poisson(int(i), alpha, beta) for i in k]
    np.testing.assert_allclose(ours, ref, rtol=1e-10, atol=1e-10)


@given(n=st.integers(0, 60), frac=st.floats(0, 1), a=st.floats(0.1, 200), b=st.floats(0.1, 200))
def test_beta_binomial_sequence_probability(n, frac, a, b):
    k = int(round(frac * n))
    log_comb = gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1)
    ref = stats.betabinom.logpmf(k, n, a, b) - log_comb
    assert math.isclose(log_beta_binomial(k, n, a, b), ref, rel_tol=1e-9, abs_tol=1e-9)


@given(counts=st.lists(st.integers(0, 6), min_size=1, max_size=6), alpha=st.floats(0.2, 5))
def test_dirichlet_multinomial_is_a_polya_urn(counts, alpha):
    # an independent computation: the product of the urn's predictive probabilities
    alphas = [alpha] * len(counts)
    seq = [j for j, c in enumerate(counts) for _ in range(c)]
    seen = [0] * len(counts)
    ref = 0.0
    for t, j in enumerate(seq):
        ref += math.log((alphas[j] + seen[j]) / (sum(alphas) + t))
        seen[j] += 1
    assert math.isclose(log_dirichlet_multinomial(counts, alphas), ref, abs_tol=1e-9)


def test_rule_prior_prefers_values_on_few_attributes():
    p = MRSPrior()
    same = rule_log_prior((2,), 10, p)  # two values of one attribute
    spread = rule_log_prior((1, 1), 10, p)  # one value of each of two attributes
    assert same > spread


@settings(max_examples=200, deadline=None)
@given(
    n_pos=st.integers(1, 12),
    n_neg=st.integers(1, 12),
    a1=st.floats(0.1, 50),
    b1=st.floats(0.1, 50),
    a2=st.floats(0.1, 50),
    b2=st.floats(0.1, 50),
)
def test_max_likelihood_is_the_best_over_all_confusions(n_pos, n_neg, a1, b1, a2, b2):
    prior = MRSPrior(alpha_1=a1, beta_1=b1, alpha_2=a2, beta_2=b2)
    best = max(
        log_beta_binomial(tp, tp + fp, a1, b1)
        + log_beta_binomial(n_neg - fp, n_neg - fp + n_pos - tp, a2, b2)
        for tp in range(n_pos + 1)
        for fp in range(n_neg + 1)
    )
    assert math.isclose(max_log_likelihood(n_pos, n_neg, prior), best, abs_tol=1e-9)


def _random_space(seed, n=60, d=4, k=3, prior=None):
    rng = np.random.default_rng(seed)
    codes = rng.integers(k, size=(n, d)).astype(np.int32)
    y = (codes[:, 0] == 0) | (rng.random(n) < 0.2)
    return rng, RuleSpace(codes, y.astype(int), [k] * d, prior or MRSPrior())


def _random_rule(rng, d, k):
    attrs = rng.choice(d, int(rng.integers(1, d + 1)), replace=False)
    return tuple(
        sorted(
            (int(j), frozenset(rng.choice(k, int(rng.integers(1, k)), replace=False).tolist()))
            for j in attrs
        )
    )


@pytest.mark.parametrize(
    "prior",
    [
        MRSPrior(),
        MRSPrior(alpha_M=0.5, beta_M=2, alpha_L=2, beta_L=1, alpha_1=5, alpha_2=5),
        MRSPrior(alpha_1=1, beta_1=3, alpha_2=0.5, beta_2=2),
    ],
)
def test_max_rules_bound_holds_for_random_rule_sets(prior):
    # any rule set is itself a witness: its own posterior v must give M*(v) >= its size
    for seed in range(40):
        rng, space = _random_space(seed, prior=prior)
        rules = [_random_rule(rng, space.d, 3) for _ in range(int(rng.integers(0, 12)))]
        v = space.log_posterior(rules)
        assert max_rules_bound(v, space.n_pos, space.n_neg, space.d, prior) >= len(rules)


@pytest.mark.parametrize(
    "prior",
    [MRSPrior(), MRSPrior(alpha_M=0.5, beta_M=2, alpha_L=2, beta_L=1, alpha_1=5, alpha_2=5)],
)
def test_rules_below_min_support_are_never_worth_keeping(prior):
    # removing a rule that covers fewer than s* examples raises the posterior
    checked = 0
    for seed in range(200):
        rng, space = _random_space(seed, n=40, prior=prior)
        rules = [_random_rule(rng, space.d, 3) for _ in range(int(rng.integers(1, 6)))]
        v = space.log_posterior(rules)
        m_star = max_rules_bound(v, space.n_pos, space.n_neg, space.d, prior)
        s_star = min_support_bound(m_star, space.n, space.d, prior)
        for i, r in enumerate(rules):
            if space.rule_cov(r).bit_count() < s_star:
                rest = rules[:i] + rules[i + 1 :]
                assert space.log_posterior(rest) > v
                checked += 1
    assert checked > 10


def test_bounds_are_vacuous_when_rules_cost_no_prior_mass():
    free = MRSPrior(alpha_M=50, beta_M=0.01)  # each extra rule may even raise the prior
    assert max_rules_bound(-10.0, 5, 5, 1, free) == math.inf
    assert min_support_bound(math.inf, 10, 1, free) == 1


def test_max_rules_bound_brute_force_map():
    # on a tiny problem enumerate all rule sets of single-value two-condition rules and
    # check the MAP's size against M* computed from any seen model's posterior
    rng, space = _random_space(3, n=30, d=3, k=2)
    singles = [((j, frozenset([v])),) for j in range(3) for v in range(2)]
    pairs = [
        ((a, frozenset([u])), (b, frozenset([w])))
        for a, b in itertools.combinations(range(3), 2)
        for u in range(2)
        for w in range(2)
    ]
    pool = singles + pairs
    best_v, best_m = -math.inf, 0
    for m in range(0, 4):
        for combo in itertools.combinations(pool, m):
            v = space.log_posterior(list(combo))
            if v > best_v:
                best_v, best_m = v, m
    seen = space.log_posterior([pool[0]])
    assert best_m <= max_rules_bound(seen, space.n_pos, space.n_neg, space.d, space.prior)
