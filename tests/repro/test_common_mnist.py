"""MNIST as the reproductions use it (repro._common.mnist): the sizes asked for or an error."""

from __future__ import annotations

import pytest

from neurips18._validation import ValidationError
from neurips18.repro._common.mnist import binary_mnist, mnist_standardized


@pytest.fixture
def mnist(data_file):
    data_file("mnist", "train-images-idx3-ubyte")
    data_file("mnist", "t10k-images-idx3-ubyte")


def test_sizes_as_asked(mnist):
    xtr, ytr, xte, yte = mnist_standardized(100, 30, seed=0)
    assert xtr.shape == (100, 1, 28, 28) and ytr.shape == (100,)
    assert xte.shape == (30, 1, 28, 28) and yte.shape == (30,)
    X, y = binary_mnist(50, seed=1)
    assert X.shape == (50, 785) and y.shape == (50,)
    assert binary_mnist(None)[0].shape == (60000, 785)


@pytest.mark.parametrize(("kwargs", "name"), [
    ({"n_train": 70000, "n_test": 10}, "n_train: 70000"),   # gave 60,000
    ({"n_train": 10, "n_test": 20000}, "n_test: 20000"),    # gave 10,000
    ({"n_train": 0, "n_test": 10}, "n_train: 0"),           # gave an empty training set
    ({"n_train": -5, "n_test": 10}, "n_train: -5"),         # gave 59,995
    ({"n_train": 10.0, "n_test": 10}, "n_train: 10.0"),
])
def test_standardized_refuses_sizes_it_cannot_give(mnist, kwargs, name):
    with pytest.raises(ValidationError, match=rf"Invalid {name} \(expected an int in \[1, "):
        mnist_standardized(seed=0, **kwargs)


@pytest.mark.parametrize("n", [0, -5, 60001])  # 0 gave all 60,000, -5 gave 59,995
def test_binary_mnist_refuses_sizes_it_cannot_give(mnist, n):
    with pytest.raises(ValidationError, match=rf"Invalid n: {n} \(expected an int in \[1, 60000\]"):
        binary_mnist(n, seed=0)
