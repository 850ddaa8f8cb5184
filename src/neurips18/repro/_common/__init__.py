"""What several reproductions share: MNIST tensors prepared once, one train/evaluate loop,
seeded model initialisation that leaves the global RNG alone, the networks they train, the
simulated data-parallel SGD of the sparsification studies and the local DDP launcher.

Private to :mod:`neurips18.repro` (and its tests and benchmarks): users import the
capability subpackages instead. Importing this package imports torch.
"""

from neurips18.repro._common.mnist import binary_mnist, mnist_standardized, mnist_tensors
from neurips18.repro._common.training import evaluate, init_model, to_device, train

__all__ = [
    "binary_mnist",
    "evaluate",
    "init_model",
    "mnist_standardized",
    "mnist_tensors",
    "to_device",
    "train",
]
