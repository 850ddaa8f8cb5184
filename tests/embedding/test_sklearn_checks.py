"""scikit-learn's estimator checks for GaussianEmbedding.

``fit(X, graph)`` takes an (m, m) adjacency matrix where scikit-learn passes ``y``: every
check that fits on its own data passes a 1-D label vector (or nothing) there, which is
rejected with a ``ValidationError`` naming ``graph``. Those checks are listed below with
that reason; the properties they test are checked with a graph in
``test_graph_aware_equivalents``. The checks that do not fit (parameters, cloning,
``repr``, tags, construction) run and pass.
"""

from __future__ import annotations

import pickle

import numpy as np
from sklearn.base import clone
from sklearn.utils.estimator_checks import parametrize_with_checks

from neurips18.embedding import GaussianEmbedding, chain_graph, sample_gaussian_embedding

_Y_IS_THE_GRAPH = ("fits with y a 1-D label vector: GaussianEmbedding takes the (m, m) graph "
                   "there and rejects the vector (Invalid graph: ... expected a 2-D array); "
                   "the property is tested with a graph in test_graph_aware_equivalents")
_MESSAGE_FORM = ("checks for scikit-learn's own wording; the project's one message form "
                 "('Invalid X: ... (expected ...)') says the same: {what}")

EXPECTED_FAILURES: dict[str, str] = {
    **{name: _Y_IS_THE_GRAPH for name in (
        "check_fit_score_takes_y", "check_estimators_overwrite_params",
        "check_dont_overwrite_parameters", "check_estimators_fit_returns_self",
        "check_readonly_memmap_input", "check_n_features_in_after_fitting",
        "check_positive_only_tag_during_fit", "check_estimators_dtypes", "check_dtype_object",
        "check_pipeline_consistency", "check_estimators_nan_inf", "check_estimators_pickle",
        "check_f_contiguous_array_estimator", "check_methods_sample_order_invariance",
        "check_methods_subset_invariance", "check_fit2d_1feature", "check_dict_unchanged",
        "check_fit_idempotent", "check_fit_check_is_fitted", "check_n_features_in",
        "check_fit2d_predict1d",
    )},
    "check_estimators_empty_data_messages": _MESSAGE_FORM.format(
        what="'expected at least 1 column(s)'"),
    "check_fit2d_1sample": _MESSAGE_FORM.format(
        what="'expected at least 2 row(s)' (one node has no neighbour to learn from)"),
    "check_requires_y_none": _MESSAGE_FORM.format(
        what="'Invalid graph: None (expected an (m, m) adjacency matrix ...: fit(X, graph))'"),
}


def _expected(estimator):  # the registry passes the estimator
    return EXPECTED_FAILURES


@parametrize_with_checks([GaussianEmbedding(2, random_state=0)],
                         expected_failed_checks=_expected)
def test_sklearn_checks(estimator, check):
    check(estimator)


def test_graph_aware_equivalents():
    """What the listed checks test, with a graph: fit returns self, is idempotent and
    leaves its parameters and inputs alone; pickling keeps predictions; float32, int,
    F-ordered and read-only X work; a refit on fewer features resets n_features_in_."""
    A = chain_graph(500)
    M = 0.2 * np.diag([1.0, 1.0, 0, 0])
    X = sample_gaussian_embedding(A, M, generator=0)
    for est in (GaussianEmbedding(2, random_state=0),
                GaussianEmbedding(2, method="convex", random_state=0)):
        params = est.get_params()
        X0 = X.copy()
        assert est.fit(X, A) is est
        M1 = est.M_.copy()
        assert est.get_params() == params
        np.testing.assert_array_equal(X, X0)
        np.testing.assert_array_equal(est.fit(X, A).M_, M1)            # idempotent
        np.testing.assert_array_equal(clone(est).fit(X, A).M_, M1)     # clone refits equal
        again = pickle.loads(pickle.dumps(est))
        np.testing.assert_array_equal(again.predict(X, A), est.predict(X, A))
        for Xv in (X.astype(np.float32), np.asfortranarray(X), np.round(X * 10).astype(int)):
            assert np.isfinite(clone(est).fit(Xv, A).M_).all()
        Xr = X.copy()
        Xr.setflags(write=False)
        np.testing.assert_array_equal(clone(est).fit(Xr, A).M_, M1)
        assert est.n_features_in_ == 4
        assert clone(est).fit(X[:, :3], A).n_features_in_ == 3
