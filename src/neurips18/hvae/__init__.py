"""Hamiltonian variational auto-encoders: a target-informed flow, its unbiased ELBO.

Implements Caterini, Doucet and Sejdinovic, "Hamiltonian Variational Auto-Encoder" (NeurIPS
2018, arXiv:1805.11328).
"""

from neurips18.hvae._flow import FlowOutput, HamiltonianFlow
from neurips18.hvae._gaussian import (
    GaussianFit,
    GaussianModelData,
    fit_gaussian_model,
    gaussian_mle,
    make_gaussian_model,
)
from neurips18.hvae._networks import (
    BernoulliDecoder,
    ConvDecoder,
    ConvEncoder,
    MLPDecoder,
    MLPEncoder,
    mean_logit,
)
from neurips18.hvae._trainer import Trainer, TrainResult
from neurips18.hvae._vae import HVAE, VAE

__all__ = [
    "BernoulliDecoder",
    "ConvDecoder",
    "ConvEncoder",
    "FlowOutput",
    "GaussianFit",
    "GaussianModelData",
    "HVAE",
    "HamiltonianFlow",
    "MLPDecoder",
    "MLPEncoder",
    "TrainResult",
    "Trainer",
    "VAE",
    "fit_gaussian_model",
    "gaussian_mle",
    "make_gaussian_model",
    "mean_logit",
]
