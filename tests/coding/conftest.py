"""Shared fixtures of the coding tests: the authors' models when the data directory has them."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def official():
    """``official(name)`` -> Deepcode with the authors' weights, or skip with the reason."""
    from neurips18.coding import Deepcode
    from neurips18.datasets import DataError, load_deepcode_official

    def get(name: str = "noiseless_feedback_forward_snr_-1db"):
        try:
            return Deepcode.from_official(load_deepcode_official(name, download=False))
        except DataError as exc:
            pytest.skip(f"official Deepcode weights absent: {str(exc).splitlines()[0]}")

    return get
