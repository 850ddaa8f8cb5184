"""scikit-learn estimator for multi-value rule sets.

Tong Wang, "Multi-value Rule Sets for Interpretable Classification with Feature-Efficient
Representations", NeurIPS 2018.
"""

from __future__ import annotations

import math
import numbers
import time
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import type_of_target
from sklearn.utils.validation import check_is_fitted, column_or_1d

from neurips18._validation import (
    InstanceOf,
    Interval,
    Options,
    Predicate,
    check_array,
    check_params,
    invalid,
    unchanged_on_error,
)
from neurips18.rules._encoding import (
    ANY_NUMBER,
    AttributeEncoding,
    _fmt,
    fit_encoding,
    transform,
)
from neurips18.rules._model import ACCURACY_PRIOR, NAMED_PRIORS, MRSPrior
from neurips18.rules._search import (
    Annealer,
    Rule,
    RuleSpace,
    SearchConfig,
    rules_mask,
)

__all__ = ["MultiValueRuleSetClassifier"]


class MultiValueRuleSetClassifier(ClassifierMixin, BaseEstimator):
    """A multi-value rule set: predict the positive class when any rule holds.

    Each rule is a conjunction of conditions ``attribute in {v1, v2, ...}``; the model is
    learnt as the maximum a posteriori rule set of the Bayesian model of Wang (NeurIPS
    2018) by simulated annealing with the paper's moves and search-space bounds.

    Parameters
    ----------
    max_rules : int or None
        Hard cap on the number of rules (on top of the prior and the bound ``M*``).
    max_values_per_rule : int or None
        Hard cap on the number of values in a rule (summed over its conditions).
    max_features : int or None
        Hard cap on the number of distinct features the rule set may use.
    n_iterations : int
        Simulated annealing steps.
    prior : "accuracy", "paper", MRSPrior or dict
        Hyperparameters of the model (:class:`~neurips18.rules.MRSPrior`). ``"accuracy"``
        (:data:`~neurips18.rules.ACCURACY_PRIOR`, the default): the paper's structure prior
        with a likelihood in which every training error costs the same (Beta priors of
        10^5 pseudo-counts at 0.9), good on real data; ``"paper"``
        (:data:`~neurips18.rules.PAPER_PRIOR`): the author's code's hyperparameters, whose
        likelihood on large data sets behaves like a purity criterion and can lose to the
        majority class. A dict overrides fields of the accuracy prior.
    n_bins : int
        Numeric columns are cut into at most this many intervals.
    binning : {"tree", "quantile"}
        Where numeric columns are cut: ``"tree"`` (default) at the thresholds of a small
        decision tree fitted to the column alone against the labels (at most ``n_bins``
        leaves, each with at least 1 % of the rows), so cut points fall where the label
        changes; ``"quantile"`` at training quantiles. A condition may take several
        adjacent intervals, so rules can express any union of them.
    random_state : int, numpy Generator or None
        Seed of the search.
    categorical_features : "auto", list of column names/indices or None
        ``"auto"``: DataFrame columns of non-numeric dtype (category, object, string,
        bool) and non-numeric array columns are categorical; numeric columns are binned.
        A list makes the named numeric columns categorical too; ``None`` names none.
    positive_class : label or None
        The class the rules describe; ``None`` takes ``classes_[1]`` (the larger label).
    min_support : float or int
        Minimum support of mined candidate rules among the positives (fraction if < 1,
        otherwise a count).
    max_rule_length : int
        Maximum number of conditions of a mined candidate rule.
    n_candidates : int
        Number of candidate rules kept after screening by information gain.
    temperature0 : float
        Initial temperature ``T0`` of the schedule ``T0 / (1 + t)``.
    n_chains : int
        Independent annealing chains from the empty rule set; the best posterior wins.
        Later chains inherit the bounds of earlier ones (they stay valid: a bound only
        needs the posterior of some model already seen).
    handle_unknown : {"ignore", "error"}
        A category absent from the training data: ``"ignore"`` lets it satisfy no
        condition on its attribute (rules not testing that attribute still apply);
        ``"error"`` raises ValueError.

    Missing values (NaN/None) are a category of their own (``missing``, or ``<missing>``
    in a column with a real category called ``missing``) in every column;
    infinite numeric values are rejected.

    Attributes
    ----------
    rules_ : list of str
        Readable rules, e.g. ``"odor in {foul, pungent} AND spore-print-color in {green}"``.
    n_rules_, n_conditions_ : int
    features_used_ : list of str
    log_posterior_ : ndarray, the log posterior of the annealing chain at each step.
    map_log_posterior_ : float, the log posterior of the returned (best) rule set.
    bounds_ : list of dict, the search-space bounds each time they changed.
    classes_, feature_names_in_, n_features_in_ : as in scikit-learn.
    """

    def __init__(
        self,
        max_rules: int | None = None,
        max_values_per_rule: int | None = None,
        n_iterations: int = 2000,
        prior: str | MRSPrior | dict[str, float] = "accuracy",
        n_bins: int = 5,
        binning: str = "tree",
        random_state: int | np.random.Generator | None = None,
        categorical_features: str | Sequence[Any] | None = "auto",
        positive_class: Any = None,
        min_support: float = 0.05,
        max_rule_length: int = 3,
        n_candidates: int = 1000,
        temperature0: float = 10000.0,
        handle_unknown: str = "ignore",
        n_chains: int = 1,
        max_features: int | None = None,
    ) -> None:
        self.max_rules = max_rules
        self.max_values_per_rule = max_values_per_rule
        self.n_iterations = n_iterations
        self.prior = prior
        self.n_bins = n_bins
        self.binning = binning
        self.random_state = random_state
        self.categorical_features = categorical_features
        self.positive_class = positive_class
        self.min_support = min_support
        self.max_rule_length = max_rule_length
        self.n_candidates = n_candidates
        self.temperature0 = temperature0
        self.handle_unknown = handle_unknown
        self.n_chains = n_chains
        self.max_features = max_features

    # ------------------------------------------------------------------------------------
    def __sklearn_tags__(self):  # type: ignore[no-untyped-def]
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.input_tags.categorical = True
        tags.input_tags.string = True
        tags.classifier_tags.multi_class = False
        tags.non_deterministic = False
        return tags

    _PARAMS: dict[str, list[Any]] = {
        "max_rules": [Interval(int, 1, None), None],
        "max_values_per_rule": [Interval(int, 1, None), None],
        "max_features": [Interval(int, 1, None), None],
        "n_iterations": [Interval(int, 1, None)],
        "max_rule_length": [Interval(int, 1, None)],
        "n_candidates": [Interval(int, 1, None)],
        "n_chains": [Interval(int, 1, None)],
        "n_bins": [Interval(int, 2, None)],
        "binning": [Options({"tree", "quantile"})],
        "min_support": [Interval(float, 0, 1, closed="neither"),
                        Predicate(lambda v: isinstance(v, numbers.Integral)
                                  and not isinstance(v, bool) and v >= 1,
                                  "a positive integer count")],
        "temperature0": [Interval(float, 0, None, closed="neither")],
        "handle_unknown": [Options({"ignore", "error"})],
        "prior": [Options(set(NAMED_PRIORS)), InstanceOf((MRSPrior, dict), "an MRSPrior, a dict")],
        "random_state": [Interval(int, 0, None), InstanceOf(np.random.Generator), None],
    }

    def _check_params(self) -> MRSPrior:
        check_params(self.get_params(), self._PARAMS)
        if isinstance(self.prior, str):
            prior = NAMED_PRIORS[self.prior]
        elif isinstance(self.prior, MRSPrior):
            prior = self.prior
        else:
            unknown = sorted(set(self.prior) - set(MRSPrior.__dataclass_fields__))
            if unknown:
                raise invalid("prior", self.prior, "MRSPrior field names as keys; unknown: "
                              + ", ".join(map(str, unknown)))
            prior = replace(ACCURACY_PRIOR, **self.prior)
        prior.validate()
        return prior

    # ------------------------------------------------------------------------------------
    def _as_frame(self, X: Any, *, fitting: bool) -> pd.DataFrame:
        if fitting:  # set again by an object-array fit
            self._object_as_number: list[int] = []
        if isinstance(X, pd.DataFrame):
            df = X
            names = [str(c) for c in df.columns]
            if fitting:
                if len(set(names)) != len(names):
                    raise ValueError("X has duplicate column names")
                if all(isinstance(c, str) for c in df.columns):
                    self.feature_names_in_ = np.asarray(names, dtype=object)
                elif hasattr(self, "feature_names_in_"):
                    del self.feature_names_in_
            else:
                fitted = getattr(self, "feature_names_in_", None)
                named = all(isinstance(c, str) for c in df.columns)
                if fitted is not None and not named:
                    # columns labelled 0, 1, ... (or partly so) are read by position, as
                    # an array's are: the same warning (it was silent for a DataFrame)
                    warnings.warn(
                        f"X does not have valid feature names, but {type(self).__name__} "
                        "was fitted with feature names", UserWarning, stacklevel=4)
                elif fitted is None and named:
                    warnings.warn(
                        f"X has feature names, but {type(self).__name__} was fitted without "
                        "feature names", UserWarning, stacklevel=4)
                elif fitted is not None:
                    if list(fitted) != names:
                        missing = [c for c in fitted if c not in names]
                        extra = [c for c in names if c not in set(fitted)]
                        raise ValueError(
                            "The feature names should match those that were passed during "
                            f"fit: missing {missing}, unexpected {extra}"
                            + ("" if missing or extra else " (order differs)")
                        )
            df = df.copy()
            df.columns = list(range(df.shape[1]))
        else:
            if hasattr(X, "toarray") or type(X).__module__.startswith("scipy.sparse"):
                raise TypeError(
                    "MultiValueRuleSetClassifier does not accept sparse input; "
                    "pass a dense array or a DataFrame"
                )
            arr = np.asarray(X)
            if arr.dtype.kind in "US" and not isinstance(X, np.ndarray):
                # rows of numbers and strings (a list): numpy would make every value a
                # string, so 60.0 became the category "60.0"; as objects the numbers stay
                # numbers (the object-array rule below)
                arr = np.asarray(X, dtype=object)
            if arr.dtype.kind == "c":
                raise ValueError("Complex data not supported")
            if arr.ndim != 2:
                raise ValueError(
                    f"Expected 2D array, got {arr.ndim}D array instead: X of shape {arr.shape}. "
                    "Reshape your data with X.reshape(-1, 1) for a single feature or "
                    "X.reshape(1, -1) for a single sample"
                )
            if not fitting and getattr(self, "feature_names_in_", None) is not None:
                warnings.warn(
                    f"X does not have valid feature names, but {type(self).__name__} was "
                    "fitted with feature names", UserWarning, stacklevel=4)
            df = pd.DataFrame(arr)
            if arr.dtype.kind == "O":
                df = self._object_columns_as_numbers(df, fitting=fitting)
            if fitting and hasattr(self, "feature_names_in_"):
                del self.feature_names_in_
        if df.shape[1] == 0:
            raise ValueError(f"0 feature(s) (shape={df.shape}) while a minimum of 1 is required.")
        if df.shape[0] == 0:
            raise ValueError(f"0 sample(s) (shape={df.shape}) while a minimum of 1 is required.")
        for c in df.columns:
            col = df[c]
            if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
                vals = col.to_numpy(dtype=float)
                if np.isinf(vals).any():
                    name = self._name(c)
                    raise ValueError(
                        f"Input X contains infinity in column {name!r}; "
                        "NaN is allowed (it becomes the category 'missing'), inf is not"
                    )
        return df

    def _object_columns_as_numbers(self, df: pd.DataFrame, *, fitting: bool) -> pd.DataFrame:
        """Numbers in an object array: decided once, at fit time, per column.

        In fit a column all of whose values look numeric becomes a numeric column. At
        predict time the same columns (and the columns binned as numbers) are converted,
        whatever the batch holds: a batch in which a categorical column happens to hold
        only numeric-looking strings keeps them as strings, so they still match their
        training categories. A value of such a column that is not a number stays as it is
        (an unseen category, or an error for a binned column).
        """
        if fitting:
            as_number = []
            for c in df.columns:
                conv = pd.to_numeric(df[c], errors="coerce")
                if conv.notna().sum() == df[c].notna().sum():
                    df[c] = conv
                    as_number.append(c)
            self._object_as_number = as_number
            return df
        chosen = set(getattr(self, "_object_as_number", ()))
        chosen |= {j for j, e in enumerate(self.encodings_) if e.kind == "numeric"}
        for c in sorted(chosen):
            if c >= df.shape[1]:
                continue  # the feature count is checked by the caller
            col = df[c]
            conv = pd.to_numeric(col, errors="coerce")
            bad = conv.isna() & col.notna()
            if not bad.any():
                df[c] = conv
            elif self.encodings_[c].kind == "numeric":
                raise ValueError(
                    f"column {self._name(c)!r} was numeric in fit; it holds the value "
                    f"{col[bad].iloc[0]!r}, which is not a number")
            else:
                df[c] = col.where(bad, conv.astype(object))
        return df

    def _name(self, c: int) -> str:
        names = getattr(self, "feature_names_in_", None)
        return str(names[c]) if names is not None and c < len(names) else f"x{c}"

    def _categorical_set(self, df: pd.DataFrame) -> set[int]:
        cf = self.categorical_features
        if cf is None:  # no column named: the non-numeric ones still cannot be binned
            cf = []
        # a string is tested first: ``cf == "auto"`` on an array or an Index of names is
        # elementwise (a ValueError on its truth value, for two names or more)
        if isinstance(cf, str):
            if cf == "auto":
                return {
                    c
                    for c in df.columns
                    if not (pd.api.types.is_numeric_dtype(df[c])
                            and not pd.api.types.is_bool_dtype(df[c]))
                }
            raise ValueError(f"categorical_features must be 'auto', None or a list, got {cf!r}")
        if not isinstance(cf, Iterable) or getattr(cf, "ndim", 1) != 1:
            raise ValueError("categorical_features must be 'auto', None or a list of column "
                             f"names or indices, got {cf!r}")
        names = list(getattr(self, "feature_names_in_", []))
        out = set()
        for f in cf:
            if isinstance(f, numbers.Integral) and not isinstance(f, bool):
                if not 0 <= int(f) < df.shape[1]:
                    raise ValueError(f"categorical_features index {f} out of range")
                out.add(int(f))
            elif f in names:
                out.add(names.index(f))
            else:
                raise ValueError(f"categorical_features entry {f!r} is not a column of X")
        for c in df.columns:  # non-numeric columns cannot be binned
            if not pd.api.types.is_numeric_dtype(df[c]) or pd.api.types.is_bool_dtype(df[c]):
                out.add(c)
        return out

    # ------------------------------------------------------------------------------------
    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> MultiValueRuleSetClassifier:
        """Learn the MAP multi-value rule set of (X, y).

        ``sample_weight``: non-negative frequency weights (a row of weight 2 counts as two
        rows in the likelihood and in the numeric cut points, quantile or tree; rows of
        weight 0 are left out). With weights the search
        runs without the paper's pruning bounds, which are derived for counts.

        A fit that raises leaves a fitted classifier as it was (its rules, labels and
        column names together).
        """
        with unchanged_on_error(self):
            return self._fit(X, y, sample_weight)

    def _fit(self, X: Any, y: Any, sample_weight: Any) -> MultiValueRuleSetClassifier:
        prior = self._check_params()
        df = self._as_frame(X, fitting=True)
        if y is None:
            raise ValueError(
                "MultiValueRuleSetClassifier requires y to be passed, but the target y is None"
            )
        y_arr = np.asarray(y)
        if y_arr.ndim == 2 and y_arr.shape[1] == 1:
            y_arr = column_or_1d(y_arr, warn=True)
        if y_arr.ndim != 1:
            raise ValueError(f"y should be a 1d array, got an array of shape {y_arr.shape}")
        if len(y_arr) != len(df):
            raise ValueError(
                f"X and y have inconsistent numbers of samples: {len(df)} and {len(y_arr)}"
            )
        if y_arr.dtype.kind == "f" and not np.isfinite(y_arr).all():
            raise ValueError("Input y contains NaN or infinity")
        if y_arr.dtype.kind == "O":
            # labels held as objects (strings, a nullable dtype): a missing one made
            # np.unique raise "'<' not supported between 'str' and 'NoneType'" or
            # "boolean value of NA is ambiguous"
            gaps = np.flatnonzero(pd.isna(y_arr))
            if gaps.size:
                raise ValueError(f"Input y contains missing labels (None, NaN or NA) in "
                                 f"{gaps.size} sample(s), the first at position "
                                 f"{int(gaps[0])}; every sample needs a class label")
        target = type_of_target(y_arr)
        if target == "continuous":
            raise ValueError(f"Unknown label type: {target}; y must hold class labels")
        classes = np.unique(y_arr)
        if len(classes) < 2:
            raise ValueError(f"y has 1 class only ({classes.tolist()[0]!r}); a rule set "
                             "needs both classes")
        if len(classes) > 2:
            raise ValueError(
                "Only binary classification is supported. The type of the target is "
                f"{target}: y has {len(classes)} classes {classes.tolist()[:10]}"
            )
        if self.positive_class is None:
            pos = classes[1]
        else:
            if self.positive_class not in set(classes.tolist()):
                raise ValueError(
                    f"positive_class={self.positive_class!r} is not a label of y "
                    f"({classes.tolist()})"
                )
            pos = self.positive_class
        neg = classes[0] if classes[1] == pos else classes[1]
        self.classes_ = classes
        self.positive_class_ = pos
        self._neg_class = neg
        y01 = (y_arr == pos).astype(np.int64)
        weights = None
        if sample_weight is not None:
            weights = check_array("sample_weight", sample_weight, ndim=1, dtype="float64")
            if len(weights) != len(df):
                raise invalid("sample_weight", sample_weight,
                              f"one weight per sample ({len(df)})")
            if (weights < 0).any():
                raise invalid("sample_weight", sample_weight, "non-negative weights")
            keep = weights > 0
            if not keep.any():
                raise invalid("sample_weight", sample_weight, "at least one non-zero weight")
            if len(np.unique(y01[keep])) < 2:
                raise invalid("sample_weight", sample_weight,
                              "positive weight on both classes")
            if (weights[keep] == 1).all():
                weights = None  # unit weights: the unweighted fit, exactly
            df, y01 = df[keep].reset_index(drop=True), y01[keep]
            if weights is not None:
                weights = weights[keep]
        self.n_features_in_ = df.shape[1]
        cat = self._categorical_set(df)
        encs = fit_encoding(df, cat, int(self.n_bins), binning=self.binning, y=y01,
                            sample_weight=weights)
        for enc, c in zip(encs, df.columns, strict=True):
            enc.name = self._name(c)
            col = df[c]
            if enc.kind == "numeric" and pd.api.types.is_integer_dtype(col):
                # numeric columns are cut as float64, which tells integers apart only up
                # to 2**53: larger ones (nanosecond timestamps, ids) merge without a word
                held = col.dropna()
                n_int = held.nunique()
                n_float = np.unique(held.to_numpy(dtype=float)).size
                if n_float < n_int:
                    warnings.warn(
                        f"column {enc.name!r} holds {n_int} distinct integers that float64 "
                        f"tells apart as only {n_float} (integers beyond 2**53 round): its "
                        "cut points and printed bounds are those rounded values; subtract an "
                        "offset or rescale the column, or make it categorical",
                        UserWarning, stacklevel=3)
        self.encodings_: list[AttributeEncoding] = encs
        codes = transform(df, encs)
        rng = (self.random_state if isinstance(self.random_state, np.random.Generator)
               else np.random.default_rng(self.random_state))
        t0 = time.perf_counter()
        space = RuleSpace(codes, y01, [e.n_values for e in encs], prior, weights)
        config = SearchConfig(
            n_iterations=int(self.n_iterations),
            temperature0=float(self.temperature0),
            min_support=float(self.min_support),
            max_rule_length=int(self.max_rule_length),
            n_candidates=int(self.n_candidates),
            max_rules=self.max_rules,
            max_values_per_rule=self.max_values_per_rule,
            max_features=self.max_features,
        )
        annealer = Annealer(space, config, rng)
        t_mine = time.perf_counter() - t0
        result = annealer.run()
        chain_best = [result.log_posterior]
        total_iter = result.n_iterations
        for _ in range(int(self.n_chains) - 1):
            other = annealer.run()
            chain_best.append(other.log_posterior)
            total_iter += other.n_iterations
            if other.log_posterior > result.log_posterior:
                result = other
        self.chains_map_log_posterior_ = np.asarray(chain_best)
        self.fit_time_ = {
            "mining_s": t_mine,
            "search_s": time.perf_counter() - t0 - t_mine,
            "per_iteration_ms": 1e3 * (time.perf_counter() - t0 - t_mine) / max(total_iter, 1),
        }
        self.rule_codes_: list[Rule] = result.rules
        self.log_posterior_ = result.trace
        self.map_log_posterior_ = result.log_posterior
        self.bounds_ = result.bounds
        self.n_candidates_ = result.n_candidates_mined
        if result.n_candidates_mined == 0:
            warnings.warn(
                f"no candidate rule covers min_support={self.min_support!r} of the positive "
                f"class (max_rule_length={self.max_rule_length!r}): the rule set is empty and "
                f"predicts {_plain(neg)!r} everywhere; lower min_support", UserWarning,
                stacklevel=3)
        self.n_iter_ = result.n_iterations
        self.accept_rate_ = result.accept_rate
        tp, fp, tn, fn = result.confusion
        self.train_confusion_ = {"tp": tp, "fp": fp, "tn": tn, "fn": fn}
        # P(y = positive | covered) and P(y = positive | not covered), estimated from the
        # training data with Laplace's rule (a uniform Beta(1, 1) prior): the model prior is
        # a search criterion (the accuracy prior's 10^5 pseudo-counts would pin both at 0.9
        # and 0.1 whatever the data say)
        self.proba_covered_ = (tp + 1.0) / (tp + fp + 2.0)
        self.proba_uncovered_ = (fn + 1.0) / (tn + fn + 2.0)
        return self

    # ------------------------------------------------------------------------------------
    def _codes(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "rule_codes_")
        df = self._as_frame(X, fitting=False)
        if df.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {df.shape[1]} features, but MultiValueRuleSetClassifier is expecting "
                f"{self.n_features_in_} features as input"
            )
        codes = transform(df, self.encodings_)
        if self.handle_unknown == "error" and (codes < 0).any():
            r, c = np.argwhere(codes < 0)[0]
            value = df.iloc[r, c]
            shown = ("a missing value (NaN/None)" if pd.isna(value)
                     else f"the value {_plain(value)!r}")
            raise ValueError(
                f"column {self.encodings_[c].name!r} has {shown} "
                "not seen during fit (handle_unknown='error')"
            )
        return codes

    def decision_rule_mask(self, X: Any) -> np.ndarray:
        """Boolean matrix (n_samples, n_rules): which rule holds for which example."""
        codes = self._codes(X)
        from neurips18.rules._search import rule_mask

        return np.column_stack(
            [rule_mask(r, codes) for r in self.rule_codes_] or [np.zeros(len(codes), dtype=bool)]
        )[:, : len(self.rule_codes_)]

    def predict(self, X: Any) -> np.ndarray:
        """The positive class where any rule holds, the other class elsewhere."""
        codes = self._codes(X)
        covered = rules_mask(self.rule_codes_, codes)
        out = np.where(covered, 1, 0)
        labels = np.array([self._neg_class, self.positive_class_], dtype=self.classes_.dtype)
        return labels[out]

    def predict_proba(self, X: Any) -> np.ndarray:
        """The positive rate of the covered / uncovered training data (Laplace's rule).

        Columns follow ``classes_``. ``predict`` and the arg-max of ``predict_proba`` agree
        whenever the rule set's training precision is at least 1/2 and its uncovered rows
        are mostly negative, as for any rule set the accuracy prior selects.
        """
        codes = self._codes(X)
        covered = rules_mask(self.rule_codes_, codes)
        p_pos = np.where(covered, self.proba_covered_, self.proba_uncovered_)
        pos_col = int(np.flatnonzero(self.classes_ == self.positive_class_)[0])
        out = np.empty((len(p_pos), 2))
        out[:, pos_col] = p_pos
        out[:, 1 - pos_col] = 1 - p_pos
        return out

    # ------------------------------------------------------------------------------------
    def _format_condition(self, j: int, values: frozenset[int]) -> str:
        enc = self.encodings_[j]
        vals = sorted(values)
        if enc.kind == "numeric":
            labels = _merge_intervals(enc, vals)
        else:
            labels = [enc.labels[v] for v in vals]
        return f"{enc.name} in {{{', '.join(labels)}}}"

    def _format_rule(self, rule: Rule) -> str:
        if not rule:
            return "TRUE"
        return " AND ".join(self._format_condition(j, v) for j, v in rule)

    @property
    def rules_(self) -> list[str]:
        check_is_fitted(self, "rule_codes_")
        return [self._format_rule(r) for r in self.rule_codes_]

    @property
    def n_rules_(self) -> int:
        check_is_fitted(self, "rule_codes_")
        return len(self.rule_codes_)

    @property
    def n_conditions_(self) -> int:
        check_is_fitted(self, "rule_codes_")
        return sum(len(r) for r in self.rule_codes_)

    @property
    def n_values_(self) -> int:
        check_is_fitted(self, "rule_codes_")
        return sum(len(v) for r in self.rule_codes_ for _, v in r)

    @property
    def features_used_(self) -> list[str]:
        check_is_fitted(self, "rule_codes_")
        used = sorted({j for r in self.rule_codes_ for j, _ in r})
        return [self.encodings_[j].name for j in used]

    def __str__(self) -> str:
        if not hasattr(self, "rule_codes_"):
            return repr(self)
        pos, neg = (
            getattr(c, "item", lambda c=c: c)() for c in (self.positive_class_, self._neg_class)
        )
        if not self.rule_codes_:
            return f"MultiValueRuleSetClassifier: always predict {neg!r} (no rules)"
        lines = [f"MultiValueRuleSetClassifier: predict {pos!r} if any rule holds, else {neg!r}"]
        for i, r in enumerate(self.rules_, 1):
            lines.append(f"  rule {i}: {r}")
        lines.append(
            f"  ({self.n_rules_} rules, {self.n_conditions_} conditions, "
            f"{len(self.features_used_)} features)"
        )
        return "\n".join(lines)


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python value it holds (printed ``'no'``, not
    ``np.str_('no')``); anything else as it is."""
    return value.item() if isinstance(value, np.generic) else value


def _merge_intervals(enc: AttributeEncoding, vals: list[int]) -> list[str]:
    """Labels of numeric bins, with runs of adjacent bins shown as one interval."""
    assert enc.edges is not None
    edges = enc.edges.tolist()
    n_bins = len(edges) + 1
    out: list[str] = []
    bins = [v for v in vals if v < n_bins]
    run: list[int] = []
    for v in bins + [-10]:
        if run and v == run[-1] + 1:
            run.append(v)
            continue
        if run:
            lo, hi = run[0], run[-1]
            if lo == hi:
                out.append(enc.labels[lo])
            else:
                a = -math.inf if lo == 0 else edges[lo - 1]
                b = math.inf if hi == n_bins - 1 else edges[hi]
                if math.isinf(a) and math.isinf(b):  # every bin: all the numbers
                    out.append(ANY_NUMBER)
                elif math.isinf(a):
                    out.append(f"< {_fmt(b)}")
                elif math.isinf(b):
                    out.append(f">= {_fmt(a)}")
                else:
                    out.append(f"[{_fmt(a)}, {_fmt(b)})")
        run = [v]
    out.extend(enc.labels[v] for v in vals if v >= n_bins)
    return out
