"""scikit-learn's estimator checks, with the expected failures and their reasons."""

from __future__ import annotations

from sklearn.utils.estimator_checks import parametrize_with_checks

from neurips18.rules import MultiValueRuleSetClassifier

# check name -> reason. Every entry is a deliberate property of a rule set, not a bug.
EXPECTED_FAILURES: dict[str, str] = {}


@parametrize_with_checks(
    [MultiValueRuleSetClassifier(n_iterations=200, random_state=0)],
    expected_failed_checks=lambda est: EXPECTED_FAILURES,
)
def test_sklearn_compatible(estimator, check):
    check(estimator)
