"""MAP search for a multi-value rule set: candidate mining and simulated annealing.

Tong Wang, "Multi-value Rule Sets for Interpretable Classification with Feature-Efficient
Representations", NeurIPS 2018, Section 3 (inference).

* Candidate rules are frequent itemsets of the positive examples (a depth-first search over
  attribute=value items with bitset intersections), screened to the most informative ones.
* Simulated annealing with temperature ``T0 / (1 + t)`` walks over rule sets. Each step
  either picks a misclassified training example and proposes the moves the paper describes
  for it (a missed positive: add a value to a condition, remove a condition, add a rule; a
  covered negative: add a condition or drop a value, remove a rule, replace a rule), or
  merges the two most similar rules; the probability of the example-driven moves grows as
  ``1 - exp(-t / (1.5 T))``. Within a move, candidates are scored by the exact log
  posterior and the best is proposed (a random one with a small probability). In the last
  quarter each step starts again from the best model found.
* Whenever a new best model is found the bounds are recomputed: the maximum number of rules
  of a MAP model and the minimum support of its rules; candidate rules below the support
  bound leave the search space.

Every rule set is kept simplified: conditions that hold for every training example are
dropped, rules implied by another rule are removed and rules that share their attributes
and differ in the values of one attribute are fused.

Coverage of a condition, a rule and a rule set over the training rows is a bitset held in
a Python integer (bit ``i`` = row ``i``): AND, OR and popcount on 30,000 rows take around a
microsecond each.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import numpy as np

from neurips18.rules._model import (
    MRSPrior,
    log_beta_binomial,
    log_gamma_poisson,
    max_rules_bound,
    min_support_bound,
    rule_log_prior,
)

logger = logging.getLogger("neurips18.rules")

# A condition is (attribute index, frozenset of value codes); a rule is a tuple of
# conditions sorted by attribute.
Condition = tuple[int, frozenset[int]]
Rule = tuple[Condition, ...]


def to_bits(mask: np.ndarray) -> int:
    """A boolean vector as a Python-int bitset (bit i is ``mask[i]``)."""
    packed = np.packbits(np.asarray(mask, dtype=bool), bitorder="little")
    return int.from_bytes(packed.tobytes(), "little")


def from_bits(bits: int, n: int) -> np.ndarray:
    raw = bits.to_bytes((n + 7) // 8, "little")
    return np.unpackbits(np.frombuffer(raw, dtype=np.uint8), bitorder="little")[:n].astype(bool)


def rule_mask(rule: Rule, codes: np.ndarray) -> np.ndarray:
    """Rows of ``codes`` satisfying every condition of ``rule`` (numpy reference)."""
    out = np.ones(codes.shape[0], dtype=bool)
    for j, values in rule:
        out &= np.isin(codes[:, j], np.fromiter(values, dtype=np.int64))
    return out


def rules_mask(rules: list[Rule], codes: np.ndarray) -> np.ndarray:
    out = np.zeros(codes.shape[0], dtype=bool)
    for rule in rules:
        out |= rule_mask(rule, codes)
    return out


@dataclass(frozen=True)
class SearchConfig:
    n_iterations: int = 2000
    temperature0: float = 10000.0
    min_support: float = 0.05  # fraction of positives (float < 1) or a count
    max_rule_length: int = 3  # length of mined candidate rules
    n_candidates: int = 1000
    max_rules: int | None = None
    max_values_per_rule: int | None = None
    max_features: int | None = None
    random_move_prob: float = 0.2
    max_evaluations_per_move: int = 40
    min_example_move_prob: float = 0.0


@dataclass
class SearchResult:
    rules: list[Rule]
    log_posterior: float
    trace: np.ndarray
    bounds: list[dict[str, float]]
    n_candidates_mined: int
    n_iterations: int
    accept_rate: float
    confusion: tuple[float, float, float, float]  # TP, FP, TN, FN on the training data
    candidate_rules: list[Rule] = field(default_factory=list)


class RuleSpace:
    """Bitsets of the training data and the log posterior of rule sets over it."""

    def __init__(self, codes: np.ndarray, y: np.ndarray, n_values: list[int], prior: MRSPrior,
                 weights: np.ndarray | None = None):
        self.codes = codes
        self.y = y.astype(bool)
        self.n, self.d = codes.shape
        # Frequency weights: the rows are grouped by weight value, one bitset per group, so a
        # weighted count is a sum of a few popcounts (exactly the count of the data set in
        # which each row is repeated ``weight`` times, for integer weights).
        self.weighted = weights is not None
        if weights is not None:
            values, inverse = np.unique(np.asarray(weights, dtype=float), return_inverse=True)
            self._groups = [(float(w), to_bits(inverse == g)) for g, w in enumerate(values)]
        self.n_values = n_values
        self.prior = prior
        self.all = (1 << self.n) - 1
        self.pos = to_bits(self.y)
        self.neg = self.all & ~self.pos
        if weights is None:
            self.n_pos: float = int(self.y.sum())
            self.n_neg: float = self.n - self.n_pos
        else:
            self.n_pos = self._wcount(self.pos)
            self.n_neg = self._wcount(self.neg)
        self.item_bits: list[list[int]] = [
            [to_bits(codes[:, j] == v) for v in range(n_values[j])] for j in range(self.d)
        ]
        self._cond_cache: dict[Condition, int] = {}
        self._prior_cache: dict[tuple[int, ...], float] = {}
        self._lgp_m = [log_gamma_poisson(m, prior.alpha_M, prior.beta_M) for m in range(64)]

    # --- coverage -----------------------------------------------------------------------
    def cond_cov(self, j: int, values: frozenset[int]) -> int:
        key = (j, values)
        bits = self._cond_cache.get(key)
        if bits is None:
            bits = 0
            items = self.item_bits[j]
            for v in values:
                bits |= items[v]
            if len(self._cond_cache) > 200_000:
                self._cond_cache.clear()
            self._cond_cache[key] = bits
        return bits

    def rule_cov(self, rule: Rule) -> int:
        bits = self.all
        for j, values in rule:
            bits &= self.cond_cov(j, values)
        return bits

    # --- posterior ----------------------------------------------------------------------
    def rule_prior(self, rule: Rule) -> float:
        key = tuple(sorted(len(v) for _, v in rule))
        out = self._prior_cache.get(key)
        if out is None:
            out = rule_log_prior(key, self.d, self.prior)
            self._prior_cache[key] = out
        return out

    def log_gp_m(self, m: int) -> float:
        if m < len(self._lgp_m):
            return self._lgp_m[m]
        return log_gamma_poisson(m, self.prior.alpha_M, self.prior.beta_M)

    def _wcount(self, bits: int) -> float:
        return math.fsum(w * (bits & g).bit_count() for w, g in self._groups)

    def confusion(self, union: int) -> tuple[float, float, float, float]:
        """(TP, FP, TN, FN) of the rule set covering ``union``: counts, or sums of the
        frequency weights."""
        if self.weighted:
            tp = self._wcount(union & self.pos)
            fp = self._wcount(union & self.neg)
        else:
            tp = (union & self.pos).bit_count()
            fp = union.bit_count() - tp
        return tp, fp, self.n_neg - fp, self.n_pos - tp

    def log_likelihood(self, union: int) -> float:
        tp, fp, tn, fn = self.confusion(union)
        p = self.prior
        return log_beta_binomial(tp, tp + fp, p.alpha_1, p.beta_1) + log_beta_binomial(
            tn, tn + fn, p.alpha_2, p.beta_2
        )

    def log_posterior(self, rules: list[Rule], union: int | None = None) -> float:
        if union is None:
            union = 0
            for r in rules:
                union |= self.rule_cov(r)
        lp = self.log_gp_m(len(rules))
        for r in rules:
            lp += self.rule_prior(r)
        return lp + self.log_likelihood(union)

    def terms(self, rules: list[Rule]) -> dict[str, float]:
        """The five terms of the log posterior (for inspection and tests)."""
        union = 0
        for r in rules:
            union |= self.rule_cov(r)
        tp, fp, tn, fn = self.confusion(union)
        p = self.prior
        return {
            "prior_n_rules": self.log_gp_m(len(rules)),
            "prior_rules": sum(self.rule_prior(r) for r in rules),
            "likelihood_covered": log_beta_binomial(tp, tp + fp, p.alpha_1, p.beta_1),
            "likelihood_uncovered": log_beta_binomial(tn, tn + fn, p.alpha_2, p.beta_2),
        }

    # --- simplification -----------------------------------------------------------------
    def simplify(self, rules: list[Rule]) -> list[Rule]:
        """Drop always-true conditions, implied rules and fuse one-attribute variants."""
        cleaned: list[dict[int, frozenset[int]]] = []
        for rule in rules:
            # a rule whose conditions all hold everywhere becomes the empty rule, which is
            # always true (and then implies every other rule away)
            cleaned.append({j: v for j, v in rule if self.cond_cov(j, v) != self.all})
        changed = True
        while changed:
            changed = False
            cleaned.sort(key=len)
            k = len(cleaned)
            removed = [False] * k
            for a in range(k):
                if removed[a]:
                    continue
                ra = cleaned[a]
                for b in range(k):
                    if a == b or removed[b] or removed[a]:
                        continue
                    rb = cleaned[b]
                    if not ra.keys() <= rb.keys():
                        continue
                    if all(rb[j] <= ra[j] for j in ra):  # rb implies ra
                        removed[b] = True
                        changed = True
                    elif len(ra) == len(rb):
                        diff = [j for j in ra if ra[j] != rb[j]]
                        if len(diff) == 1:
                            j = diff[0]
                            union = ra[j] | rb[j]
                            ra = dict(ra)
                            if self.cond_cov(j, union) == self.all:
                                del ra[j]
                            else:
                                ra[j] = union
                            cleaned[a] = ra
                            removed[b] = True
                            changed = True
            cleaned = [r for r, rm in zip(cleaned, removed, strict=True) if not rm]
        out = [tuple(sorted(r.items())) for r in cleaned]
        return sorted(set(out), key=lambda r: (len(r), [(j, sorted(v)) for j, v in r]))


def mine_candidates(
    space: RuleSpace, min_support: float, max_len: int, n_keep: int
) -> tuple[list[Rule], np.ndarray, np.ndarray, np.ndarray]:
    """Frequent itemsets of the positives, one value per attribute, ranked by information
    gain of the split they induce on all training examples; keep the best ``n_keep``.

    Returns the rules, their coverage counts, their true-positive counts and their
    information gain (all in the kept order, best first).
    """
    codes, y = space.codes, space.y
    pos_idx = np.flatnonzero(y)
    neg_idx = np.flatnonzero(~y)
    n_pos = len(pos_idx)
    if min_support < 1:
        thr = max(1, math.ceil(min_support * n_pos))
    else:
        thr = int(min_support)
    items: list[tuple[int, int, int, int]] = []  # (attr, value, pos_bits, neg_bits)
    for j in range(space.d):
        pcol, ncol = codes[pos_idx, j], codes[neg_idx, j]
        for v in range(space.n_values[j]):
            pb = to_bits(pcol == v)
            if pb.bit_count() >= thr:
                items.append((j, v, pb, to_bits(ncol == v)))
    found: list[tuple[tuple[tuple[int, int], ...], int, int]] = []

    def extend(prefix, pb, nb, start):  # type: ignore[no-untyped-def]
        last_attr = prefix[-1][0]
        for k in range(start, len(items)):
            j, v, ipb, inb = items[k]
            if j <= last_attr:
                continue
            npb = pb & ipb
            tp = npb.bit_count()
            if tp < thr:
                continue
            nnb = nb & inb
            item = (*prefix, (j, v))
            found.append((item, tp, nnb.bit_count()))
            if len(item) < max_len:
                extend(item, npb, nnb, k + 1)

    for k, (j, v, pb, nb) in enumerate(items):
        found.append((((j, v),), pb.bit_count(), nb.bit_count()))
        if max_len > 1:
            extend(((j, v),), pb, nb, k + 1)
    if not found:
        return [], np.empty(0, int), np.empty(0, int), np.empty(0)
    tp = np.array([f[1] for f in found], dtype=float)
    fp = np.array([f[2] for f in found], dtype=float)
    n = float(space.n)
    cov = tp + fp
    gain = _information_gain(tp, fp, float(n_pos), n)
    # information gain is symmetric: a rule that singles out negatives scores as well as one
    # that singles out positives, and adding it to the set leads the search into an
    # "inverted" local optimum; keep rules more precise than the base rate only
    gain = np.where(tp / np.maximum(cov, 1) > n_pos / n, gain, -np.inf)
    # ties broken towards precise then short rules
    order = np.lexsort((np.array([len(f[0]) for f in found]), -(tp / np.maximum(cov, 1)), -gain))
    order = order[: min(n_keep, int(np.isfinite(gain).sum()))]
    rules = [tuple((j, frozenset([v])) for j, v in found[i][0]) for i in order]
    return rules, cov[order].astype(int), tp[order].astype(int), gain[order]


def _entropy(p: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -(p * np.log(p) + (1 - p) * np.log(1 - p))
    return np.nan_to_num(h, nan=0.0)


def _information_gain(tp: np.ndarray, fp: np.ndarray, n_pos: float, n: float) -> np.ndarray:
    cov = tp + fp
    rest = n - cov
    p1 = np.divide(tp, cov, out=np.zeros_like(tp), where=cov > 0)
    p2 = np.divide(n_pos - tp, rest, out=np.zeros_like(tp), where=rest > 0)
    base = _entropy(np.array([n_pos / n]))[0]
    return base - (cov / n) * _entropy(p1) - (rest / n) * _entropy(p2)


class Annealer:
    """Simulated annealing over simplified rule sets (see the module docstring)."""

    def __init__(self, space: RuleSpace, config: SearchConfig, rng: np.random.Generator):
        self.s = space
        self.c = config
        self.rng = rng
        self.cands, self.cand_cov_count, self.cand_tp, _ = mine_candidates(
            space, config.min_support, config.max_rule_length, config.n_candidates
        )
        self.n_mined = len(self.cands)
        k = max((len(r) for r in self.cands), default=1)
        self.cand_attr = np.zeros((len(self.cands), k), dtype=np.int64)
        self.cand_val = np.full((len(self.cands), k), -2, dtype=np.int64)
        for i, r in enumerate(self.cands):
            for t, (j, vals) in enumerate(r):
                self.cand_attr[i, t] = j
                self.cand_val[i, t] = next(iter(vals))
        self.cand_pad = self.cand_val == -2
        self.cand_bits = [space.rule_cov(r) for r in self.cands]
        self.active = np.ones(len(self.cands), dtype=bool)
        self.m_star = math.inf
        self.min_supp = 1
        self.bounds: list[dict[str, float]] = []

    # --- helpers ------------------------------------------------------------------------
    def _cap(self) -> float:
        cap = self.m_star
        if self.c.max_rules is not None:
            cap = min(cap, self.c.max_rules)
        return cap

    def _random_bit(self, bits: int) -> int:
        idx = np.flatnonzero(from_bits(bits, self.s.n))
        return int(idx[self.rng.integers(len(idx))])

    def _ok_rule(self, rule: Rule) -> bool:
        if not rule:
            return False
        if self.c.max_values_per_rule is not None:
            if sum(len(v) for _, v in rule) > self.c.max_values_per_rule:
                return False
        return True

    def _ok_features(self, rules: list[Rule]) -> bool:
        if self.c.max_features is None:
            return True
        return len({j for r in rules for j, _ in r}) <= self.c.max_features

    @staticmethod
    def _replace(rule: Rule, j: int, values: frozenset[int] | None) -> Rule:
        d = dict(rule)
        if values is None:
            d.pop(j, None)
        else:
            d[j] = values
        return tuple(sorted(d.items()))

    def _others(self, covs: list[int]) -> list[int]:
        m = len(covs)
        pre = [0] * (m + 1)
        for i in range(m):
            pre[i + 1] = pre[i] | covs[i]
        suf = [0] * (m + 1)
        for i in range(m - 1, -1, -1):
            suf[i] = suf[i + 1] | covs[i]
        return [pre[i] | suf[i + 1] for i in range(m)]

    def _choose(
        self,
        rules: list[Rule],
        covs: list[int],
        mods: list[tuple[int | None, Rule | None]],
        random_ok: bool = True,
    ) -> list[Rule] | None:
        """Score modifications (replace rule i / remove it / add a rule) by the exact log
        posterior; return the best rule set (a random one with a small probability)."""
        mods = [m for m in mods if m[1] is None or self._ok_rule(m[1])]
        if self.c.max_features is not None:
            used = [frozenset(j for j, _ in r) for r in rules]

            def fits(m: tuple[int | None, Rule | None]) -> bool:
                i, new = m
                if new is None:
                    return True
                attrs = set().union(*(u for k, u in enumerate(used) if k != i))
                return len(attrs | {j for j, _ in new}) <= self.c.max_features  # type: ignore[operator]

            mods = [m for m in mods if fits(m)]
        if not mods:
            return None
        if len(mods) > self.c.max_evaluations_per_move:
            pick = self.rng.choice(len(mods), self.c.max_evaluations_per_move, replace=False)
            mods = [mods[i] for i in sorted(pick)]
        if random_ok and self.rng.random() < self.c.random_move_prob:
            best = mods[int(self.rng.integers(len(mods)))]
        else:
            s = self.s
            others = self._others(covs)
            union_all = others[0] | covs[0] if covs else 0
            base_prior = sum(s.rule_prior(r) for r in rules)
            m = len(rules)
            best, best_score = mods[0], -math.inf
            for i, new in mods:
                if i is None:
                    assert new is not None
                    union = union_all | s.rule_cov(new)
                    lp = s.log_gp_m(m + 1) + base_prior + s.rule_prior(new)
                elif new is None:
                    union = others[i]
                    lp = s.log_gp_m(m - 1) + base_prior - s.rule_prior(rules[i])
                else:
                    union = others[i] | s.rule_cov(new)
                    lp = s.log_gp_m(m) + base_prior - s.rule_prior(rules[i]) + s.rule_prior(new)
                score = lp + s.log_likelihood(union)
                if score > best_score:
                    best, best_score = (i, new), score
        i, new = best
        out = list(rules)
        if i is None:
            assert new is not None
            out.append(new)
        elif new is None:
            out.pop(i)
        else:
            out[i] = new
        return out

    # --- moves --------------------------------------------------------------------------
    def _add_rule_mods(self, rules: list[Rule], ex: int) -> list[tuple[int | None, Rule | None]]:
        if len(rules) + 1 > self._cap() or not len(self.cands):
            return []
        row = self.s.codes[ex]
        hit = (row[self.cand_attr] == self.cand_val) | self.cand_pad
        idx = np.flatnonzero(hit.all(axis=1) & self.active)
        if not len(idx):
            return []
        k = self.c.max_evaluations_per_move
        if len(idx) > k:  # the best-ranked half and a random half
            top = idx[: k // 2]
            rest = self.rng.choice(idx[k // 2 :], k - k // 2, replace=False)
            idx = np.concatenate([top, rest])
        present = set(rules)
        return [(None, self.cands[i]) for i in idx if self.cands[i] not in present]

    def _move_missed_positive(self, rules: list[Rule], covs: list[int], ex: int):  # type: ignore[no-untyped-def]
        row = self.s.codes[ex]
        failed = [[j for j, v in r if row[j] not in v] for r in rules]
        one = [i for i, f in enumerate(failed) if len(f) == 1]
        t = self.rng.random()
        mods: list[tuple[int | None, Rule | None]] = []
        if t < 1 / 3:  # add the example's value to a condition it fails
            for i in one or range(len(rules)):
                for j in failed[i]:
                    vals = dict(rules[i])[j] | {int(row[j])}
                    mods.append((i, self._replace(rules[i], j, frozenset(vals))))
        elif t < 2 / 3:  # remove a condition the example fails
            for i in one or range(len(rules)):
                if len(rules[i]) > 1:
                    for j in failed[i]:
                        mods.append((i, self._replace(rules[i], j, None)))
        if not mods:  # add a rule that covers the example
            mods = self._add_rule_mods(rules, ex)
            return self._choose(rules, covs, mods)
        return self._choose(rules, covs, mods, random_ok=False)

    def _move_covered_negative(self, rules: list[Rule], covs: list[int], ex: int):  # type: ignore[no-untyped-def]
        s = self.s
        row = s.codes[ex]
        covering = [i for i, c in enumerate(covs) if (c >> ex) & 1]
        t = self.rng.random()
        if t < 1 / 3 or len(rules) <= 1 and t < 2 / 3:
            # make a covering rule more specific: a new condition or one value fewer
            i = covering[int(self.rng.integers(len(covering)))]
            rule = dict(rules[i])
            mods: list[tuple[int | None, Rule | None]] = []
            for j in range(s.d):
                nv = s.n_values[j]
                xv = int(row[j])
                if j in rule:
                    if len(rule[j]) > 1:
                        mods.append((i, self._replace(rules[i], j, rule[j] - {xv})))
                    continue
                if nv <= 1:
                    continue
                comp = frozenset(range(nv)) - {xv}
                mods.append((i, self._replace(rules[i], j, comp)))
                if nv > 2:
                    for v in range(nv):
                        if v != xv:
                            mods.append((i, self._replace(rules[i], j, frozenset([v]))))
            return self._choose(rules, covs, mods, random_ok=False)
        if t < 2 / 3:  # remove a covering rule
            return self._choose(rules, covs, [(i, None) for i in covering], random_ok=False)
        # replace: drop a covering rule, then add rules for missed positives (greedily,
        # while each addition raises the posterior: one rule may need several to replace it)
        new = self._choose(rules, covs, [(i, None) for i in covering], random_ok=False)
        if new is None:
            return None
        removed = [r for r in rules if r not in set(new)]
        return self._refill(new, removed[0] if removed else None)

    @staticmethod
    def _generalises(cand: Rule, rule: Rule) -> bool:
        """True if every example ``rule`` covers is covered by the candidate ``cand``."""
        d = dict(rule)
        return all(j in d and d[j] <= v for j, v in cand)

    def _refill(self, rules: list[Rule], removed: Rule | None, max_adds: int = 4) -> list[Rule]:
        s = self.s
        covs = [s.rule_cov(r) for r in rules]
        lp = None
        for _ in range(max_adds):
            union = 0
            for c in covs:
                union |= c
            missed = s.pos & ~union
            if not missed:
                break
            if lp is None:
                lp = s.log_posterior(rules, union)
            ex = self._random_bit(missed)
            mods = self._add_rule_mods(rules, ex)
            if removed is not None:
                mods = [m for m in mods if m[1] is None or not self._generalises(m[1], removed)]
            cand = self._choose(rules, covs, mods, random_ok=False)
            if cand is None:
                break
            cand_lp = s.log_posterior(cand)
            if cand_lp <= lp and len(cand) > len(rules):
                if _ > 0:
                    break
            rules, covs, lp = cand, covs + [s.rule_cov(cand[-1])], cand_lp
        return rules

    def _move_trim(self, rules: list[Rule], covs: list[int]):  # type: ignore[no-untyped-def]
        """Drop one value of a condition or one condition of a rule (the best by posterior).

        Not one of the paper's moves: its moves are driven by misclassified examples, so
        they cannot shorten a rule set that already classifies the training data
        perfectly (the author's code stops there instead).
        """
        mods: list[tuple[int | None, Rule | None]] = []
        for i, rule in enumerate(rules):
            for j, vals in rule:
                if len(vals) > 1:
                    for v in vals:
                        mods.append((i, self._replace(rule, j, vals - {v})))
                if len(rule) > 1:
                    mods.append((i, self._replace(rule, j, None)))
        return self._choose(rules, covs, mods, random_ok=False)

    def _move_merge(self, rules: list[Rule]) -> list[Rule]:
        m = len(rules)
        attrs = [frozenset(j for j, _ in r) for r in rules]
        best, pair = math.inf, (0, 1)
        for a in range(m):
            for b in range(a + 1, m):
                dist = len(attrs[a] ^ attrs[b]) + self.rng.random()
                if dist < best:
                    best, pair = dist, (a, b)
        a, b = pair
        ra, rb = dict(rules[a]), dict(rules[b])
        shared = [j for j in ra if j in rb and ra[j] != rb[j]]
        out = list(rules)
        if shared:
            j = shared[int(self.rng.integers(len(shared)))]
            union = ra[j] | rb[j]
            out[a] = self._replace(rules[a], j, union)
            out[b] = self._replace(rules[b], j, union)
            return out
        if len(ra) > len(rb):
            a, b, ra, rb = b, a, rb, ra
        only = [j for j in ra if j not in rb]
        if only:  # give the longer rule one of the shorter rule's conditions
            j = only[int(self.rng.integers(len(only)))]
            out[b] = self._replace(rules[b], j, ra[j])
        return out

    # --- bounds -------------------------------------------------------------------------
    def _update_bounds(self, it: int, best_lp: float) -> None:
        s = self.s
        if s.weighted:  # the bounds are derived for counts: with weights, search everything
            m_star, min_supp = math.inf, 1
        else:
            m_star = max_rules_bound(best_lp, s.n_pos, s.n_neg, s.d, s.prior)
            min_supp = min_support_bound(m_star, s.n, s.d, s.prior)
        changed = m_star != self.m_star or min_supp != self.min_supp or not self.bounds
        self.m_star, self.min_supp = m_star, min_supp
        if len(self.cands):
            self.active = self.cand_cov_count >= min_supp
        if changed:
            entry = {
                "iteration": float(it),
                "log_posterior": best_lp,
                "max_rules_bound": m_star,
                "min_support_bound": float(min_supp),
                "n_candidates_in_space": float(self.active.sum()),
            }
            self.bounds.append(entry)
            logger.info(
                "iteration %d: best log posterior %.3f, bounds: at most %s rules, "
                "min support %d, %d candidate rules left",
                it,
                best_lp,
                m_star,
                min_supp,
                int(self.active.sum()),
            )

    # --- main loop ----------------------------------------------------------------------
    def run(self, init: list[Rule] | None = None) -> SearchResult:
        s, c, rng = self.s, self.c, self.rng
        n_iter = c.n_iterations
        curr = s.simplify(init or [])
        curr_covs = [s.rule_cov(r) for r in curr]
        curr_lp = s.log_posterior(curr)
        best, best_covs, best_lp = curr, curr_covs, curr_lp
        self._update_bounds(0, best_lp)
        trace = np.empty(n_iter + 1)
        trace[0] = curr_lp
        accepted = 0
        it = 0
        for it in range(1, n_iter + 1):
            if it > 0.75 * n_iter:
                curr, curr_covs, curr_lp = best, best_covs, best_lp
            union = 0
            for cv in curr_covs:
                union |= cv
            mis = union ^ s.pos
            p_example = max(c.min_example_move_prob, 1.0 - math.exp(-it / (1.5 * n_iter)))
            proposal: list[Rule] | None
            if curr and (rng.random() >= p_example or not mis):
                if len(curr) >= 2 and rng.random() < 0.5:
                    proposal = self._move_merge(curr)
                else:
                    proposal = self._move_trim(curr, curr_covs)
            elif mis:
                ex = self._random_bit(mis)
                if s.y[ex]:
                    proposal = self._move_missed_positive(curr, curr_covs, ex)
                else:
                    proposal = self._move_covered_negative(curr, curr_covs, ex)
            else:
                trace[it:] = curr_lp  # the empty set classifies perfectly: one class only
                break
            if proposal is None:
                trace[it] = curr_lp
                continue
            proposal = s.simplify(proposal)
            if (
                len(proposal) > self._cap()
                or not all(self._ok_rule(r) for r in proposal)
                or not self._ok_features(proposal)
            ):
                trace[it] = curr_lp
                continue
            new_covs = [s.rule_cov(r) for r in proposal]
            union = 0
            for cv in new_covs:
                union |= cv
            new_lp = s.log_posterior(proposal, union)
            if new_lp > best_lp + 1e-12:
                best, best_covs, best_lp = proposal, new_covs, new_lp
                self._update_bounds(it, best_lp)
            temp = c.temperature0 / (1 + it)
            if new_lp >= curr_lp or rng.random() < math.exp((new_lp - curr_lp) / temp):
                curr, curr_covs, curr_lp = proposal, new_covs, new_lp
                accepted += 1
            trace[it] = curr_lp
        union = 0
        for cv in best_covs:
            union |= cv
        return SearchResult(
            rules=best,
            log_posterior=best_lp,
            trace=trace,
            bounds=self.bounds,
            n_candidates_mined=self.n_mined,
            n_iterations=it,
            accept_rate=accepted / max(it, 1),
            confusion=s.confusion(union),
            candidate_rules=self.cands,
        )
