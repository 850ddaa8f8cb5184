"""Contamination attacks and party-adversarial training for multi-party machine learning.

Jamie Hayes and Olga Ohrimenko, "Contamination Attacks and Mitigation in Multi-Party
Machine Learning", NeurIPS 2018 (arXiv:1901.02402).

Several parties pool their data at a server, which trains one model and releases it to
all. This subpackage lets a consortium

1. test whether one party's contaminated data plants a trend in the joint model
   (:func:`contaminate`, :func:`attack_success`, and their text versions);
2. train a model that resists it (:class:`PartyAdversarialClassifier`, a scikit-learn
   classifier, or :func:`train_adversarial` on any PyTorch model, e.g. :class:`TextCNN`);
3. show that the released model leaks nothing about which party a record came from
   (:func:`party_inference_attack`), and screen each party's submission on the server
   (:func:`screen_parties`).

The parties' data live in a :class:`PartyData` (built by :func:`split_parties`).

>>> from neurips18.multiparty import split_parties, contaminate, PartyAdversarialClassifier
>>> data = split_parties(X, y, 10, validation_size=10_000, train_size=20_000,
...                      random_state=0)                                # doctest: +SKIP
>>> X0, y0 = data.party(0)                                             # doctest: +SKIP
>>> Xc, yc, rows = contaminate(X0, y0, attribute="MARRIAGE", value=3, label=1,
...                            n_records=500, generator=0)             # doctest: +SKIP

Importing this package does not import torch; the networks are built on first use.
"""

from __future__ import annotations

from typing import Any

from neurips18.multiparty._attack import (
    AttackSuccess,
    attack_success,
    contaminate,
    contaminate_texts,
    text_attack_success,
)
from neurips18.multiparty._classifier import PartyAdversarialClassifier
from neurips18.multiparty._inference import (
    PartyInference,
    Screening,
    party_inference_attack,
    screen_parties,
)
from neurips18.multiparty._parties import PartyData, split_parties
from neurips18.multiparty._text import TokenEncoder

_TORCH_NAMES = ("MLP", "PartyDiscriminator", "TextCNN", "train_adversarial")

__all__ = [
    "AttackSuccess",
    "MLP",
    "PartyAdversarialClassifier",
    "PartyData",
    "PartyDiscriminator",
    "PartyInference",
    "Screening",
    "TextCNN",
    "TokenEncoder",
    "attack_success",
    "contaminate",
    "contaminate_texts",
    "party_inference_attack",
    "screen_parties",
    "split_parties",
    "text_attack_success",
    "train_adversarial",
]


def __getattr__(name: str) -> Any:
    if name in _TORCH_NAMES:
        from neurips18.multiparty import _adversarial

        return getattr(_adversarial, name)
    raise AttributeError(f"module 'neurips18.multiparty' has no attribute {name!r}")
