"""scikit-learn's estimator checks, with the expected failures and their reasons."""

from __future__ import annotations

from sklearn.utils.estimator_checks import parametrize_with_checks

from neurips18.multiparty import PartyAdversarialClassifier

# check name -> reason. Empty: every check passes.
EXPECTED_FAILURES: dict[str, str] = {}


@parametrize_with_checks(
    [PartyAdversarialClassifier(max_epochs=20, random_state=0),
     PartyAdversarialClassifier(lam=1.0, max_epochs=20, random_state=0)],
    expected_failed_checks=lambda est: EXPECTED_FAILURES,
)
def test_sklearn_compatible(estimator, check):
    check(estimator)
