"""Graphs of the Gaussian embedding model: builders for the paper's designs and the checks
every entry point applies to a user's adjacency matrix."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from neurips18._validation import Interval, check, check_array, invalid

__all__ = ["chain_graph", "check_graph", "lattice_graph", "nearest_neighbor_graph",
           "norm_bounds"]

# relative size of |A - A^T| tolerated as rounding noise in a symmetric matrix
SYMMETRY_RTOL = 1e-10


def _symmetric(rows: np.ndarray, cols: np.ndarray, m: int) -> sp.csr_matrix:
    data = np.ones(2 * rows.size)
    a = sp.coo_matrix((data, (np.concatenate([rows, cols]), np.concatenate([cols, rows]))),
                      shape=(m, m))
    out = a.tocsr()
    out.sum_duplicates()
    out.sort_indices()
    return out


def nearest_neighbor_graph(m: int, omega: int) -> sp.csr_matrix:
    """The omega-nearest-neighbour graph on ``m`` nodes placed on a line: ``j`` and ``k``
    are adjacent when ``1 <= |j - k| <= omega`` (each interior node has ``2 omega``
    neighbours). Returns the 0/1 adjacency matrix as a ``scipy.sparse.csr_matrix``."""
    m = check("m", m, Interval(int, 2, None))
    omega = check("omega", omega, Interval(int, 1, m - 1))
    rows = np.concatenate([np.arange(m - d) for d in range(1, omega + 1)])
    cols = np.concatenate([np.arange(d, m) for d in range(1, omega + 1)])
    return _symmetric(rows, cols, m)


def chain_graph(m: int) -> sp.csr_matrix:
    """The chain ``0 - 1 - ... - (m-1)`` (the omega = 1 nearest-neighbour graph)."""
    return nearest_neighbor_graph(m, 1)


def lattice_graph(rows: int, cols: int) -> sp.csr_matrix:
    """The ``rows x cols`` grid, each node joined to its 4 nearest neighbours (no wrap);
    node ``(i, j)`` is number ``i * cols + j``."""
    rows = check("rows", rows, Interval(int, 1, None))
    cols = check("cols", cols, Interval(int, 1, None))
    if rows * cols < 2:
        raise invalid("rows * cols", rows * cols, "at least 2 nodes")
    idx = np.arange(rows * cols).reshape(rows, cols)
    r = np.concatenate([idx[:, :-1].ravel(), idx[:-1, :].ravel()])
    c = np.concatenate([idx[:, 1:].ravel(), idx[1:, :].ravel()])
    return _symmetric(r, c, rows * cols)


def check_graph(graph: Any, n_nodes: int | None = None, name: str = "graph") -> sp.csr_matrix:
    """``graph`` as a float64 CSR copy after checking that it is a valid adjacency matrix:
    square, ``n_nodes`` rows when given, finite, symmetric (up to rounding), non-negative
    weights, zero diagonal (a node is not its own neighbour) and at least one edge.
    Duplicate entries of a sparse matrix are summed in float64 (for a boolean matrix they
    mark one edge of weight 1), whatever its format."""
    if sp.issparse(graph):
        if graph.ndim != 2:
            raise invalid(name, graph, "a 2-D adjacency matrix")
        if graph.dtype.kind not in "fiub":
            raise invalid(name, graph, "numeric weights")
        # duplicate entries mean the same in every format: a boolean matrix's combine
        # as True + True = True (an edge is there or not), numbers are summed in float64
        # (COO duplicates used to be summed in the input dtype, so uint8 weights 200 and
        # 101 made 45 in COO and 301 in CSR, and a duplicated True made 1 in COO and 2 in
        # CSR)
        if graph.dtype.kind == "b":
            a = graph.tocsr(copy=True)
            a.sum_duplicates()
            a = sp.csr_matrix(a, dtype=np.float64)
        else:
            a = sp.csr_matrix(graph.astype(np.float64))
        a.sum_duplicates()
        values = a.data
    else:
        arr = check_array(name, graph, ndim=2, dtype="numeric", finite=False)
        a = sp.csr_matrix(arr.astype(np.float64, copy=True))
        values = a.data
    shape = a.shape
    if shape[0] != shape[1]:
        raise invalid(name, graph, "a square (m, m) adjacency matrix")
    if n_nodes is not None and shape[0] != n_nodes:
        raise invalid(name, graph, f"shape ({n_nodes}, {n_nodes}) to match the {n_nodes} rows "
                                   "of X (one node per row)")
    if values.size and not np.isfinite(values).all():
        bad = int((~np.isfinite(values)).sum())
        raise invalid(name, graph, f"finite weights; found {bad} NaN or inf")
    if values.size and values.min() < 0:
        raise invalid(name, graph, f"non-negative edge weights; smallest is {values.min():g}")
    diag = a.diagonal()
    if np.any(diag != 0):
        j = int(np.flatnonzero(diag)[0])
        raise invalid(name, graph, f"a zero diagonal (no self-loops); node {j} has weight "
                                   f"{diag[j]:g} on itself")
    a.eliminate_zeros()
    if a.nnz == 0:
        raise invalid(name, graph, "at least one edge (a nonzero off-diagonal weight)")
    scale = float(np.abs(a.data).max())
    asym = a - a.T
    gap = float(np.abs(asym.data).max()) if asym.nnz else 0.0
    if gap > SYMMETRY_RTOL * scale:
        raise invalid(name, graph, f"a symmetric matrix (an undirected graph); max |A - A^T| "
                                   f"is {gap:.3g}; for an undirected graph given one direction "
                                   "per edge, pass A + A.T (or (A + A.T) / 2 for averaged "
                                   "weights)")
    if gap:
        a = ((a + a.T) * 0.5).tocsr()
    a.sort_indices()
    return a


def norm_bounds(a: sp.csr_matrix, n_iter: int = 60) -> tuple[float, float]:
    """Bounds ``lo <= ||A||_2 <= hi`` for a checked (symmetric, non-negative) adjacency
    matrix, whose norm is its Perron root: ``hi`` is the Collatz-Wielandt bound
    ``max_i (A v)_i / v_i`` and ``lo`` the Rayleigh quotient, at a positive ``v`` after
    ``n_iter`` shifted power iterations from the all-ones vector. Lanczos is avoided: on
    chains and lattices the top of the spectrum is so clustered that it converges slowly.

    The shift is the largest weight, so the iterates (and the bounds, relative to the
    norm) do not depend on the unit of the weights: ``c A`` gets ``c`` times the bounds
    of ``A``. Nodes without an edge take no part in the upper bound (their ratio is 0, and
    their entry of ``v`` decays towards 0 relative to the rest)."""
    m = a.shape[0]
    v = np.ones(m)
    # A + w I (w the largest weight) keeps v positive and separates the Perron root
    # from -rho (an eigenvalue of every bipartite graph: chains, lattices)
    shift = float(np.abs(a.data).max()) if a.nnz else 1.0
    row_sums = np.asarray(a.sum(axis=1)).ravel()
    linked = row_sums > 0
    lo, hi = 0.0, float(row_sums.max())
    for _ in range(n_iter):
        av = np.asarray(a @ v)
        lo = max(lo, float(v @ av) / float(v @ v))
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = float((av[linked] / v[linked]).max())
        if ratio < hi:  # False for a NaN (0/0 after an underflow): hi is kept
            hi = ratio
        if hi - lo <= 1e-12 * hi:
            break
        v = av + shift * v
        v /= v.max()
    return lo, hi
