"""Feedback codes and their baselines on the AWGN channel.

Kim, Jiang, Kannan, Oh, Viswanath, "Deepcode: Feedback Codes via Deep Learning",
NeurIPS 2018 (arXiv:1807.00801).
"""

from neurips18.coding._channels import (
    AWGN,
    FeedbackChannel,
    FeedbackRealization,
    ebno_to_snr_db,
    noise_std,
    snr_to_ebno_db,
)
from neurips18.coding._code import Code, UncodedBPSK
from neurips18.coding._deepcode import Deepcode, KerasGRU, OfficialWeightsError
from neurips18.coding._simulate import BERResult, PowerWarning, binomial_interval, simulate_ber
from neurips18.coding._sk import SchalkwijkKailath
from neurips18.coding._training import (
    DEFAULT_SCHEDULE,
    FINETUNE_SCHEDULE,
    LONG_SCHEDULE,
    SCHEDULES,
    TrainingPhase,
    train_deepcode,
)
from neurips18.coding._turbo import TurboCode

__all__ = [
    "AWGN",
    "BERResult",
    "Code",
    "DEFAULT_SCHEDULE",
    "Deepcode",
    "FINETUNE_SCHEDULE",
    "FeedbackChannel",
    "FeedbackRealization",
    "KerasGRU",
    "LONG_SCHEDULE",
    "OfficialWeightsError",
    "PowerWarning",
    "SCHEDULES",
    "SchalkwijkKailath",
    "TrainingPhase",
    "TurboCode",
    "UncodedBPSK",
    "binomial_interval",
    "ebno_to_snr_db",
    "noise_std",
    "simulate_ber",
    "snr_to_ebno_db",
    "train_deepcode",
]
