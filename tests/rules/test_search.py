"""Bitsets, the posterior, simplification, candidate mining and the annealer."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.special import gammaln

from neurips18.datasets.synthetic import make_planted_rule_set
from neurips18.rules import MRSPrior
from neurips18.rules._search import (
    Annealer,
    RuleSpace,
    SearchConfig,
    from_bits,
    mine_candidates,
    rule_mask,
    rules_mask,
    to_bits,
)


@given(st.lists(st.booleans(), min_size=1, max_size=300))
def test_bitset_round_trip_and_popcount(mask):
    m = np.array(mask)
    bits = to_bits(m)
    np.testing.assert_array_equal(from_bits(bits, len(m)), m)
    assert bits.bit_count() == m.sum()


def _space(seed=0, n=80, d=5, k=3, prior=None):
    rng = np.random.default_rng(seed)
    codes = rng.integers(k, size=(n, d)).astype(np.int32)
    y = ((codes[:, 0] == 1) & (codes[:, 1] != 2)) | (rng.random(n) < 0.1)
    return rng, RuleSpace(codes, y.astype(int), [k] * d, prior or MRSPrior())


def _rule(rng, d, k):
    attrs = rng.choice(d, int(rng.integers(1, 4)), replace=False)
    return tuple(
        sorted(
            (int(j), frozenset(rng.choice(k, int(rng.integers(1, k + 1)), replace=False).tolist()))
            for j in attrs
        )
    )


def _reference_log_posterior(rules, codes, y, d, prior):
    """The posterior written out with scipy, independently of RuleSpace."""
    cov = rules_mask(rules, codes)
    tp, fp = int((cov & y).sum()), int((cov & ~y).sum())
    fn, tn = int((~cov & y).sum()), int((~cov & ~y).sum())

    def seq(k, n, a, b):  # sequence probability = pmf / binomial coefficient
        return stats.betabinom.logpmf(k, n, a, b) - (
            gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1)
        )

    lp = stats.nbinom.logpmf(len(rules), prior.alpha_M, prior.beta_M / (1 + prior.beta_M))
    for r in rules:
        counts = np.zeros(d)
        for j, v in r:
            counts[j] = len(v)
        n_values = int(counts.sum())
        lp += stats.nbinom.logpmf(n_values, prior.alpha_L, prior.beta_L / (1 + prior.beta_L))
        alpha = np.full(d, prior.alpha_attribute)
        lp += (
            gammaln(alpha.sum())
            - gammaln(alpha.sum() + n_values)
            + (gammaln(alpha + counts) - gammaln(alpha)).sum()
        )
    return (
        lp
        + seq(tp, tp + fp, prior.alpha_1, prior.beta_1)
        + seq(tn, tn + fn, prior.alpha_2, prior.beta_2)
    )


@pytest.mark.parametrize("seed", range(10))
def test_log_posterior_matches_independent_computation(seed):
    rng, space = _space(seed)
    rules = [_rule(rng, space.d, 3) for _ in range(int(rng.integers(0, 6)))]
    ref = _reference_log_posterior(rules, space.codes, space.y, space.d, space.prior)
    assert math.isclose(space.log_posterior(rules), ref, rel_tol=1e-9, abs_tol=1e-6)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), m=st.integers(0, 8))
def test_simplify_keeps_coverage_and_never_grows(seed, m):
    rng, space = _space(seed, n=50, d=4, k=3)
    rules = [_rule(rng, space.d, 3) for _ in range(m)]
    simple = space.simplify(rules)
    np.testing.assert_array_equal(rules_mask(simple, space.codes), rules_mask(rules, space.codes))
    assert len(simple) <= len(rules)
    assert space.simplify(simple) == simple  # idempotent
    for r in simple:  # no always-true condition survives, no rule implies another
        for j, v in r:
            assert not np.isin(space.codes[:, j], list(v)).all()
    for a, b in itertools.permutations(simple, 2):
        da, db = dict(a), dict(b)
        assert not (da.keys() <= db.keys() and all(db[j] <= da[j] for j in da))


def test_rule_coverage_bitset_matches_numpy():
    rng, space = _space(1)
    for _ in range(50):
        r = _rule(rng, space.d, 3)
        np.testing.assert_array_equal(
            from_bits(space.rule_cov(r), space.n), rule_mask(r, space.codes)
        )


def test_mining_finds_every_frequent_precise_itemset():
    rng, space = _space(2, n=120, d=4, k=3)
    thr = 6
    rules, cov, tp, _ = mine_candidates(space, thr, 3, 10_000)
    found = {tuple((j, next(iter(v))) for j, v in r) for r in rules}
    base = space.n_pos / space.n
    expected = set()
    for length in (1, 2, 3):
        for attrs in itertools.combinations(range(space.d), length):
            for vals in itertools.product(range(3), repeat=length):
                m = np.ones(space.n, bool)
                for j, v in zip(attrs, vals, strict=True):
                    m &= space.codes[:, j] == v
                t = int((m & space.y).sum())
                if t >= thr and t / max(m.sum(), 1) > base:
                    expected.add(tuple(zip(attrs, vals, strict=True)))
    assert found == expected
    for r, c, t in zip(rules, cov, tp, strict=True):
        m = rule_mask(r, space.codes)
        assert c == m.sum() and t == (m & space.y).sum()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_annealer_recovers_a_planted_rule_set(seed):
    data = make_planted_rule_set(n_samples=3000, n_attributes=12,
                                 generator=np.random.default_rng(seed))
    codes = np.column_stack([data.X[c].cat.codes.to_numpy() for c in data.X.columns])
    space = RuleSpace(codes.astype(np.int32), data.y, [5] * 12, MRSPrior())
    result = Annealer(space, SearchConfig(n_iterations=2000), np.random.default_rng(seed)).run()
    # the same classifier on every training row, and the same number of rules
    truth = np.zeros(len(data.y), bool)
    for rule in data.rules:
        m = np.ones(len(data.y), bool)
        for a, vals in rule.items():
            m &= data.X[a].isin(vals).to_numpy()
        truth |= m
    np.testing.assert_array_equal(rules_mask(result.rules, codes), truth)
    assert len(result.rules) == len(data.rules)


def test_bounds_shrink_monotonically_and_hold_for_the_result():
    data = make_planted_rule_set(n_samples=2000, n_attributes=10,
                                 generator=np.random.default_rng(5))
    codes = np.column_stack([data.X[c].cat.codes.to_numpy() for c in data.X.columns])
    space = RuleSpace(codes.astype(np.int32), data.y, [5] * 10, MRSPrior())
    result = Annealer(space, SearchConfig(n_iterations=1500), np.random.default_rng(0)).run()
    m = [b["max_rules_bound"] for b in result.bounds]
    s = [b["min_support_bound"] for b in result.bounds]
    assert all(a >= b for a, b in itertools.pairwise(m))
    assert all(a <= b for a, b in itertools.pairwise(s))
    assert m[-1] >= len(result.rules)
    assert all(space.rule_cov(r).bit_count() >= s[-1] for r in result.rules)
    assert len(result.bounds) >= 2


def test_search_is_repeatable_with_the_same_generator():
    rng0, space = _space(3, n=200)
    runs = [
        Annealer(
            space, SearchConfig(n_iterations=300, min_support=3), np.random.default_rng(7)
        ).run()
        for _ in range(2)
    ]
    assert runs[0].rules == runs[1].rules
    np.testing.assert_array_equal(runs[0].trace, runs[1].trace)


def test_caps_are_respected_during_search():
    data = make_planted_rule_set(
        n_samples=2000, n_attributes=10, n_rules=4, generator=np.random.default_rng(1)
    )
    codes = np.column_stack([data.X[c].cat.codes.to_numpy() for c in data.X.columns])
    space = RuleSpace(codes.astype(np.int32), data.y, [5] * 10, MRSPrior())
    cfg = SearchConfig(n_iterations=800, max_rules=2, max_values_per_rule=3)
    result = Annealer(space, cfg, np.random.default_rng(0)).run()
    assert 1 <= len(result.rules) <= 2
    assert all(sum(len(v) for _, v in r) <= 3 for r in result.rules)
