"""MNIST prepared once per process, in the forms the reproductions use."""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np
import torch

from neurips18._validation import Interval, invalid


@cache
def _raw(split: str, data_dir: str | None) -> tuple[np.ndarray, np.ndarray]:
    from neurips18.datasets import load_mnist

    ds = load_mnist(split, data_dir=data_dir)
    ds.X.setflags(write=False)
    ds.y.setflags(write=False)
    return ds.X, ds.y


def mnist_tensors(data_dir: Any = None) -> dict[str, torch.Tensor]:
    """Train and test images flattened to float32 in [0, 1], and int64 labels:
    ``{"x_train", "y_train", "x_test", "y_test"}``."""
    out = {}
    for split in ("train", "test"):
        images, labels = _raw(split, None if data_dir is None else str(data_dir))
        out[f"x_{split}"] = torch.from_numpy(images.reshape(len(labels), -1).copy()).float() / 255.0
        out[f"y_{split}"] = torch.from_numpy(labels.copy())
    return out


def _count(name: str, value: Any, available: int, what: str) -> int:
    """``value``, a number of images in ``[1, available]``. Above it, the slices used to
    return every image (and 0 or a negative count meant all or all but a few), while the
    caller's configuration and reports still named the number asked for."""
    if not Interval(int, 1, available).accepts(value):
        raise invalid(name, value, f"an int in [1, {available}], the number of MNIST {what}")
    return int(value)


def mnist_standardized(n_train: int, n_test: int, seed: int,
                       data_dir: Any = None) -> tuple[torch.Tensor, ...]:
    """``(x_train, y_train, x_test, y_test)``: images standardised with MNIST's mean 0.1307
    and standard deviation 0.3081, shape ``[n, 1, 28, 28]``; ``n_train`` training images
    drawn without replacement by ``default_rng(seed)``, the first ``n_test`` test images."""
    xtr, ytr = _raw("train", None if data_dir is None else str(data_dir))
    xte, yte = _raw("test", None if data_dir is None else str(data_dir))
    n_train = _count("n_train", n_train, len(xtr), "training images")
    n_test = _count("n_test", n_test, len(xte), "test images")
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(xtr))[:n_train]
    tidx = np.arange(n_test)

    def prep(x: np.ndarray) -> torch.Tensor:
        return ((torch.from_numpy(x.astype(np.float32)) / 255.0 - 0.1307) / 0.3081)[:, None]

    return (prep(xtr[idx]), torch.from_numpy(ytr[idx].copy()), prep(xte[tidx]),
            torch.from_numpy(yte[tidx].copy()))


def binary_mnist(n: int | None = None, seed: int = 0,
                 data_dir: Any = None) -> tuple[torch.Tensor, torch.Tensor]:
    """MNIST training digits 0-4 (y = -1) vs 5-9 (y = +1), pixels in [0, 1] plus a constant
    bias feature; ``n`` images (all 60,000 for ``None``) drawn without replacement by
    ``default_rng(seed)``."""
    images, labels = _raw("train", None if data_dir is None else str(data_dir))
    n = len(labels) if n is None else _count("n", n, len(labels), "training images")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(labels))[:n]
    X = torch.from_numpy(images[order].reshape(len(order), -1).astype(np.float32) / 255.0)
    X = torch.cat([X, torch.ones(len(order), 1)], dim=1)
    y = torch.from_numpy(np.where(labels[order] >= 5, 1.0, -1.0).astype(np.float32))
    return X, y
