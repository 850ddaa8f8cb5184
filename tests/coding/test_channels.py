"""Channels, the SNR convention and the one place Eb/N0 is converted."""

from __future__ import annotations

import math

import pytest
import torch

from neurips18._validation import ValidationError
from neurips18.coding import AWGN, FeedbackChannel, ebno_to_snr_db, noise_std, snr_to_ebno_db


def test_snr_convention_and_ebno():
    assert noise_std(0.0) == 1.0
    assert noise_std(20.0) == pytest.approx(0.1)
    # rate 1/3 with real signalling: Eb/N0 = SNR + 10 log10(3/2) = SNR + 1.76 dB
    assert snr_to_ebno_db(0.0, 1 / 3) == pytest.approx(10 * math.log10(1.5))
    assert snr_to_ebno_db(0.0, 1 / 3) == pytest.approx(1.7609, abs=1e-4)
    # uncoded BPSK: Eb/N0 = SNR - 3.01 dB (Eb = Es = 1, N0 = 2 sigma^2)
    assert snr_to_ebno_db(3.0, 1.0) == pytest.approx(3.0 - 10 * math.log10(2))
    for snr in (-2.0, 0.5, 7.0):
        assert ebno_to_snr_db(snr_to_ebno_db(snr, 50 / 153), 50 / 153) == pytest.approx(snr)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, "0", None])
def test_bad_snr_is_rejected_naming_the_parameter(bad):
    with pytest.raises(ValidationError, match="snr_db"):
        AWGN(bad)
    with pytest.raises(ValidationError, match="forward_snr_db"):
        FeedbackChannel(bad)
    with pytest.raises(ValidationError, match="rate"):
        snr_to_ebno_db(0.0, 0.0)


def test_awgn_noise_variance_and_input_untouched():
    g = torch.Generator().manual_seed(0)
    x = torch.ones(200_000, dtype=torch.float64)
    y = AWGN(3.0)(x, generator=g)
    assert torch.equal(x, torch.ones_like(x))
    var = float((y - x).var())
    # 200k samples: relative standard error of a variance ~ sqrt(2/n) = 0.3 %
    assert var == pytest.approx(10 ** (-0.3), rel=0.015)


def test_noiseless_feedback_is_the_noise_with_one_step_delay():
    g = torch.Generator().manual_seed(1)
    r = FeedbackChannel(0.0).sample(4, 6, generator=g)
    n, f = r.noise, r.feedback
    assert torch.equal(f[:, :, 0], n[:, :, 0])  # Phase I noise of the same position
    assert torch.equal(f[:, 1:, 1:], n[:, :-1, 1:])  # parity noise of the previous position
    assert torch.equal(f[:, 0, 1:], torch.zeros(4, 2))


def test_delay_noisy_and_quantised_feedback():
    g = torch.Generator().manual_seed(2)
    r = FeedbackChannel(0.0, delay=3).sample(2, 8, generator=g)
    assert torch.equal(r.feedback[:, 3:, 1:], r.noise[:, :5, 1:])
    assert torch.equal(r.feedback[:, :3, 1:], torch.zeros(2, 3, 2))
    r = FeedbackChannel(0.0, 10.0).sample(50_000, 3, generator=g, dtype=torch.float64)
    w = r.feedback[:, :, 0] - r.noise[:, :, 0]
    assert float(w.var()) == pytest.approx(0.1, rel=0.03)
    q = FeedbackChannel(0.0, quantization=2).sample(1000, 4, generator=g)
    assert len(torch.unique(q.feedback[:, :, 0])) == 4
    with pytest.raises(ValidationError, match="delay"):
        FeedbackChannel(0.0, delay=0)
    with pytest.raises(ValidationError, match="quantization"):
        FeedbackChannel(0.0, quantization=0)


def test_a_missing_generator_is_refused_not_replaced_by_the_global_one():
    # generator=None went through to torch.randn, which then drew from torch's global
    # generator: AWGN, every code's transmit through it and SK's transmit ran silently
    from neurips18._validation import ValidationError
    from neurips18.coding import SchalkwijkKailath, UncodedBPSK

    bits = torch.zeros(2, 3, dtype=torch.int64)
    for call in (lambda: AWGN(0.0)(torch.zeros(2, 3), generator=None),
                 lambda: AWGN(0.0).noise((2, 3), generator=None),
                 lambda: UncodedBPSK(3).transmit(bits, AWGN(0.0), generator=None),
                 lambda: SchalkwijkKailath(3).transmit(bits, AWGN(0.0), generator=None),
                 lambda: SchalkwijkKailath(3).transmit(bits, AWGN(0.0), generator=4)):
        state = torch.random.get_rng_state()
        with pytest.raises(ValidationError, match="generator"):
            call()
        assert torch.equal(state, torch.random.get_rng_state())
