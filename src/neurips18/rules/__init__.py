"""Multi-value rule sets: readable OR-of-ANDs classifiers whose conditions take value sets.

Tong Wang, "Multi-value Rule Sets for Interpretable Classification with Feature-Efficient
Representations", NeurIPS 2018.

>>> from neurips18.rules import MultiValueRuleSetClassifier
>>> clf = MultiValueRuleSetClassifier(random_state=0).fit(X, y)   # doctest: +SKIP
>>> print(clf)                                                     # doctest: +SKIP
"""

from neurips18.rules._classifier import MultiValueRuleSetClassifier
from neurips18.rules._model import (
    ACCURACY_PRIOR,
    NAMED_PRIORS,
    PAPER_PRIOR,
    MRSPrior,
    log_beta_binomial,
    log_dirichlet_multinomial,
    log_gamma_poisson,
    max_rules_bound,
    min_support_bound,
)

__all__ = [
    "ACCURACY_PRIOR",
    "NAMED_PRIORS",
    "PAPER_PRIOR",
    "MultiValueRuleSetClassifier",
    "MRSPrior",
    "log_beta_binomial",
    "log_dirichlet_multinomial",
    "log_gamma_poisson",
    "max_rules_bound",
    "min_support_bound",
]
