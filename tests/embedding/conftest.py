from __future__ import annotations

import numpy as np
import pytest


def planted(p: int, r: int, norm: float, seed: int = 0) -> np.ndarray:
    """A PSD rank-r matrix with all nonzero eigenvalues equal to ``norm``."""
    rng = np.random.default_rng(seed)
    U, _ = np.linalg.qr(rng.standard_normal((p, r)))
    return (U * norm) @ U.T


@pytest.fixture
def planted_m():
    return planted
