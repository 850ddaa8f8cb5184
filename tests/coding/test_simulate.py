"""BER simulation and its intervals, checked against SciPy and closed forms."""

from __future__ import annotations

import math

import pytest
import torch
from scipy import stats

from neurips18._validation import ValidationError
from neurips18.coding import Code, UncodedBPSK, binomial_interval, simulate_ber


@pytest.mark.parametrize("k, n", [(0, 100), (3, 1000), (57, 200), (200, 200)])
@pytest.mark.parametrize("method, scipy_name", [("clopper-pearson", "exact"),
                                                ("wilson", "wilson")])
def test_binomial_interval_matches_scipy(k, n, method, scipy_name):
    ref = stats.binomtest(k, n).proportion_ci(0.95, method=scipy_name)
    lo, hi = binomial_interval(k, n, method=method)
    assert lo == pytest.approx(ref.low, abs=1e-12)
    assert hi == pytest.approx(ref.high, abs=1e-12)


def test_uncoded_bpsk_matches_q_function_within_the_interval():
    r = simulate_ber(UncodedBPSK(20), 2.0, min_errors=2000, max_bits=10**6, batch_size=5000,
                     generator=torch.Generator().manual_seed(3))
    q = 0.5 * math.erfc(10 ** (2.0 / 20) / math.sqrt(2))
    assert r.ber_interval[0] <= q <= r.ber_interval[1]
    assert r.stopped == "min_errors" and r.n_errors >= 2000
    assert r.design_effect == pytest.approx(1.0, abs=0.05)  # independent bits
    assert r.interval_method == "clopper-pearson" and r.confidence == 0.95
    assert r.ebno_db == pytest.approx(2.0 - 10 * math.log10(2))


def test_same_generator_same_result_and_max_bits():
    kw = dict(min_errors=10**9, max_bits=30_000, batch_size=1000)
    a = simulate_ber(UncodedBPSK(50), 0.0, generator=7, **kw)
    b = simulate_ber(UncodedBPSK(50), 0.0, generator=torch.Generator().manual_seed(7), **kw)
    assert (a.n_errors, a.n_bits, a.n_block_errors) == (b.n_errors, b.n_bits, b.n_block_errors)
    assert a.stopped == "max_bits" and a.n_bits == 30_000


class _Burst(Code):
    """A code that gets whole blocks wrong: its bit errors are perfectly clustered."""

    block_length = 10
    n_channel_uses = 10

    def encode(self, bits):
        return bits.double() * 2 - 1

    def decode(self, received):
        flip = (received.sum(1, keepdim=True) > 6).expand_as(received)  # rare, whole block
        return ((received > 0) ^ flip).long()

    def transmit(self, bits, channel, *, generator):
        return self.encode(bits) + 0.0 * torch.randn(bits.shape, generator=generator,
                                                     dtype=torch.float64)


def test_clustered_errors_widen_the_interval():
    r = simulate_ber(_Burst(), 0.0, min_errors=10**9, max_bits=50_000, batch_size=1000,
                     generator=1)
    assert r.n_block_errors > 10
    assert r.design_effect > 5  # about the number of wrong bits per wrong block
    naive = binomial_interval(r.n_errors, r.n_bits)
    assert (r.ber_interval[1] - r.ber_interval[0]) > 2 * (naive[1] - naive[0])
    blo, bhi = r.bler_interval
    assert blo <= r.bler <= bhi


@pytest.mark.parametrize("kw, name", [({"snr_db": math.nan}, "snr_db"),
                                      ({"snr_db": math.inf}, "snr_db"),
                                      ({"min_errors": 0}, "min_errors"),
                                      ({"max_bits": -1}, "max_bits"),
                                      ({"interval": "wald"}, "interval"),
                                      ({"generator": "seed"}, "generator")])
def test_bad_arguments(kw, name):
    args = {"snr_db": 0.0, "generator": 0, "max_bits": 100, **kw}
    snr = args.pop("snr_db")
    with pytest.raises(ValidationError, match=name):
        simulate_ber(UncodedBPSK(5), snr, **args)
    with pytest.raises(ValidationError, match="code"):
        simulate_ber("turbo", 0.0, generator=0)
