"""Gaussian embeddings from one observation on a known graph.

Ming Yu, Zhuoran Yang, Tuo Zhao, Mladen Kolar, Zhaoran Wang, "Provable Gaussian Embedding
with One Observation", NeurIPS 2018 (arXiv:1810.11098).

Each node ``j`` of a known graph (adjacency ``A``) carries a vector ``x_j`` in R^p, and
``x_j | rest ~ N(sum_k A_jk M x_k, I_p)`` with a low-rank ``M = V V^T``; ``V`` (p x r) is
the embedding, learnt from a single observed field ``X`` (m x p).

>>> from neurips18.embedding import GaussianEmbedding, chain_graph, sample_gaussian_embedding
>>> A = chain_graph(5000)                                              # doctest: +SKIP
>>> X = sample_gaussian_embedding(A, M, generator=0)                   # doctest: +SKIP
>>> GaussianEmbedding(rank=3).fit(X, A).M_                             # doctest: +SKIP
"""

from neurips18.embedding._api import GaussianEmbedding, ValidityWarning, sample_gaussian_embedding
from neurips18.embedding._graphs import chain_graph, lattice_graph, nearest_neighbor_graph

__all__ = [
    "GaussianEmbedding",
    "ValidityWarning",
    "chain_graph",
    "lattice_graph",
    "nearest_neighbor_graph",
    "sample_gaussian_embedding",
]
