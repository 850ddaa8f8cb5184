"""The networks the reproductions train (MNIST MLP and CNN, a CIFAR-10 ResNet, MLPs of any
width). Construct them with :func:`neurips18.repro._common.init_model` so that the
initialisation comes from a seed without touching torch's global generator.

The CIFAR ResNet follows He et al. (2016)'s 6n+2 design (3 stages of 16/32/64 channels),
the family used for the CIFAR-10 experiments of Wang et al. (NeurIPS 2018).
"""

from __future__ import annotations

import torch
from torch import nn


def mnist_mlp(hidden: int = 256) -> nn.Sequential:
    """784-hidden-hidden-10 ReLU MLP (three GEMMs, so the middle one runs in FP8)."""
    return nn.Sequential(nn.Flatten(), nn.Linear(784, hidden), nn.ReLU(),
                         nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 10))


def mnist_cnn() -> nn.Sequential:
    """LeNet-style CNN: conv5x5(16)-pool-conv5x5(32)-pool-fc128-fc10."""
    return nn.Sequential(
        nn.Conv2d(1, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 4 * 4, 128), nn.ReLU(), nn.Linear(128, 10),
    )


def mlp(hidden: tuple[int, ...], n_in: int = 784, n_out: int = 10) -> nn.Sequential:
    """A ReLU MLP ``n_in -> hidden... -> n_out`` on flat inputs."""
    layers: list[nn.Module] = []
    width = n_in
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU()]
        width = h
    layers.append(nn.Linear(width, n_out))
    return nn.Sequential(*layers)


class _Block(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.short: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.short = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                       nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.short(x))


def cifar_resnet(depth: int = 20, num_classes: int = 10) -> nn.Sequential:
    """ResNet-(6n+2) for 32x32 images (depth 20, 32, 44, 56, ...)."""
    if (depth - 2) % 6 != 0 or depth < 8:
        raise ValueError(f"depth must be 6n+2 with n >= 1, got {depth}")
    n = (depth - 2) // 6
    layers: list[nn.Module] = [nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16),
                               nn.ReLU()]
    cin = 16
    for i, cout in enumerate((16, 32, 64)):
        for j in range(n):
            layers.append(_Block(cin, cout, 2 if (i > 0 and j == 0) else 1))
            cin = cout
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, num_classes)]
    return nn.Sequential(*layers)
