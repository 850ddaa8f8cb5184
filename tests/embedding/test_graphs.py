"""Graph builders and the checks applied to a user's adjacency matrix."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from neurips18._validation import ValidationError
from neurips18.embedding import chain_graph, lattice_graph, nearest_neighbor_graph
from neurips18.embedding._graphs import check_graph, norm_bounds


def test_chain_is_a_path():
    A = chain_graph(5).toarray()
    expected = np.diag(np.ones(4), 1) + np.diag(np.ones(4), -1)
    assert sp.issparse(chain_graph(5))
    np.testing.assert_array_equal(A, expected)


def test_nearest_neighbour_band():
    A = nearest_neighbor_graph(7, 2).toarray()
    i, j = np.indices(A.shape)
    np.testing.assert_array_equal(A, ((np.abs(i - j) >= 1) & (np.abs(i - j) <= 2)) * 1.0)
    assert A.sum(axis=1).max() == 4


def test_lattice_four_neighbours():
    A = lattice_graph(3, 4)
    assert A.shape == (12, 12)
    deg = np.asarray(A.sum(axis=1)).ravel().reshape(3, 4)
    np.testing.assert_array_equal(deg, [[2, 3, 3, 2], [3, 4, 4, 3], [2, 3, 3, 2]])
    assert A[0, 1] == 1 and A[0, 4] == 1 and A[3, 4] == 0  # no wrap between rows
    assert (A != A.T).nnz == 0


@pytest.mark.parametrize("A", [chain_graph(300), nearest_neighbor_graph(200, 3),
                               lattice_graph(7, 9)])
def test_norm_bounds_bracket_the_spectral_norm(A):
    a = check_graph(A)
    lo, hi = norm_bounds(a)
    exact = np.abs(np.linalg.eigvalsh(A.toarray())).max()
    assert lo <= exact * (1 + 1e-12) and exact <= hi * (1 + 1e-12)


def test_norm_bounds_on_an_irregular_weighted_graph():
    rng = np.random.default_rng(0)
    W = sp.random(150, 150, density=0.05, random_state=1) * 3.0
    W = (W + W.T).tolil()
    W.setdiag(0)
    a = check_graph(W.tocsr())
    lo, hi = norm_bounds(a)
    exact = np.abs(np.linalg.eigvalsh(a.toarray())).max()
    assert lo <= exact * (1 + 1e-12) <= hi * (1 + 1e-12)
    del rng


@pytest.mark.parametrize("call, match", [
    (lambda: chain_graph(1), "Invalid m"),
    (lambda: nearest_neighbor_graph(5, 0), "Invalid omega"),
    (lambda: nearest_neighbor_graph(5, 5), "Invalid omega"),
    (lambda: lattice_graph(1, 1), "at least 2 nodes"),
    (lambda: lattice_graph(0, 4), "Invalid rows"),
    (lambda: chain_graph(2.5), "Invalid m"),
])
def test_builders_reject_bad_sizes(call, match):
    with pytest.raises(ValidationError, match=match):
        call()


def test_check_graph_accepts_every_sparse_format_and_leaves_it_alone():
    A = chain_graph(6) * 2.5
    for fmt in ("csr", "csc", "coo", "lil", "dok"):
        B = A.asformat(fmt)
        before = B.copy()
        a = check_graph(B, 6)
        assert a.format == "csr" and a.dtype == np.float64
        np.testing.assert_array_equal(a.toarray(), A.toarray())
        assert (B != before).nnz == 0
    arr = sp.csr_array(A)
    np.testing.assert_array_equal(check_graph(arr).toarray(), A.toarray())
    np.testing.assert_array_equal(check_graph(A.toarray().astype(int)).toarray(),
                                  np.rint(A.toarray()))


@pytest.mark.parametrize("graph, match", [
    (np.ones((3, 4)), "square"),
    (np.ones(4), "2-D"),
    (chain_graph(5), "to match the 4 rows"),
    (np.triu(chain_graph(4).toarray()), "symmetric"),
    (-chain_graph(4), "non-negative"),
    (chain_graph(4) + sp.identity(4), "zero diagonal"),
    (np.where(chain_graph(4).toarray() > 0, np.nan, 0.0), "NaN or inf"),
    (sp.csr_matrix((4, 4)), "at least one edge"),
    (np.array([["a"] * 4] * 4), "numeric"),
    ("graph", "numeric"),
])
def test_check_graph_errors_name_the_problem(graph, match):
    with pytest.raises(ValidationError, match=match) as err:
        check_graph(graph, 4)
    assert str(err.value).startswith("Invalid graph:")


def test_rounding_asymmetry_is_tolerated_and_averaged():
    A = chain_graph(5).toarray()
    A[0, 1] += 1e-14
    a = check_graph(A)
    assert abs(a[0, 1] - a[1, 0]) == 0


@pytest.mark.parametrize("scale", [1e-3, 1e3])
def test_norm_bounds_do_not_depend_on_the_unit_of_the_weights(scale):
    """A graph with all weights multiplied by c has c times the norm; the bounds scale with
    it (a shift of 1 in the power iteration, whatever the weights, made them 3.6 % loose
    on a 10 x 12 lattice with weights 1e-3, against 1.4e-4 with weights 1)."""
    A = lattice_graph(10, 12)
    lo, hi = norm_bounds(check_graph(A))
    lo_c, hi_c = norm_bounds(check_graph(scale * A))
    assert lo_c == pytest.approx(scale * lo, rel=1e-9)
    assert hi_c == pytest.approx(scale * hi, rel=1e-9)


def test_norm_bounds_with_heavy_weights_and_an_isolated_node():
    """Weights 1e6 on a 3-node path plus a node without edges: the upper bound was stuck
    at the largest row sum (2e6, the norm is sqrt(2) 1e6) and a NaN ratio was met."""
    A = sp.block_diag([1e6 * chain_graph(3), sp.csr_matrix((1, 1))]).tocsr()
    exact = 1e6 * np.sqrt(2.0)
    with np.errstate(all="raise"):
        lo, hi = norm_bounds(check_graph(A))
    assert lo <= exact * (1 + 1e-12) and exact <= hi * (1 + 1e-12)
    assert hi <= exact * (1 + 1e-9)


@pytest.mark.parametrize("fmt", ["coo", "csr"])
def test_duplicate_entries_mean_the_same_in_every_format(fmt):
    """Edge 0-1 given three times (uint8 weights 200, 100, 1, summing past 255), and a
    boolean edge given twice: COO used to sum the uint8 duplicates in uint8 (45) while CSR
    summed them in float64 (301), and a boolean edge given twice weighed 2 in CSR but 1
    in COO."""
    rows, cols = np.array([0, 0, 0, 1, 1, 1]), np.array([1, 1, 1, 0, 0, 0])
    w = np.array([200, 100, 1, 200, 100, 1], dtype=np.uint8)
    flags = np.array([True, True, False, True, True, False])
    for data, expected in [(w, 301.0), (flags, 1.0)]:
        if fmt == "coo":
            B = sp.coo_matrix((data, (rows, cols)), shape=(2, 2))
        else:  # a non-canonical CSR: the duplicates stay as given
            B = sp.csr_matrix((data, cols, np.array([0, 3, 6])), shape=(2, 2))
        before = (B.copy().data.copy(), B.nnz)
        a = check_graph(B)
        assert a[0, 1] == expected and a[1, 0] == expected
        np.testing.assert_array_equal(B.data, before[0])  # the user's matrix untouched
        assert B.nnz == before[1]
