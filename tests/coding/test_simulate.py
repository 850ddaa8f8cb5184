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
    from neurips18.coding import PowerWarning

    with pytest.warns(PowerWarning, match="did not send unit-power symbols"):  # no noise
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


class _Repetition3(Code):
    """A user's own rate-1/3 repetition code, its decoder's output chosen by ``out``."""

    def __init__(self, k=10, out="bits"):
        self.k, self.out = k, out

    block_length = property(lambda self: self.k)
    n_channel_uses = property(lambda self: 3 * self.k)

    def encode(self, bits):
        return (2.0 * bits.double() - 1.0).repeat_interleave(3, 1)

    def decode(self, received):
        s = received.view(received.shape[0], self.k, 3).sum(-1)
        return {"bits": lambda: (s > 0).long(), "bool": lambda: s > 0,
                "float": lambda: (s > 0).double(), "prob": lambda: torch.sigmoid(2 * s),
                "pm1": lambda: torch.where(s > 0, 1, -1), "flat": lambda: (s > 0).flatten(),
                "column": lambda: (s > 0).long().unsqueeze(-1)}[self.out]()


@pytest.mark.parametrize("out", ["bits", "bool", "float"])
def test_a_users_code_with_hard_decisions_of_any_dtype(out):
    r = simulate_ber(_Repetition3(out=out), 0.0, min_errors=10**9, max_bits=20_000,
                     batch_size=500, generator=1)
    q = 0.5 * math.erfc(math.sqrt(3) / math.sqrt(2))  # Q(sqrt 3): soft combining of three
    assert r.ber_interval[0] <= q <= r.ber_interval[1]
    assert r.rate == pytest.approx(1 / 3)


@pytest.mark.parametrize("out", ["prob", "pm1", "flat", "column"])
def test_a_decoder_without_hard_decisions_is_refused(out):
    # probabilities counted every bit not exactly 0 or 1 as wrong (BER 0.9998), +/-1
    # every 0; a (B, K, 1) output broadcast against the (B, K) bits when B == K
    code = _Repetition3(k=10, out=out)
    with pytest.raises(ValidationError, match=r"decode\(received\)"):
        simulate_ber(code, 0.0, min_errors=10**9, max_bits=100, batch_size=10, generator=1)


class _Rate2(Code):
    """Sends each bit twice (rate 1/2 declared) unless ``mode`` makes it lie."""

    def __init__(self, mode):
        self.mode = mode

    block_length = property(lambda self: 8)
    n_channel_uses = property(lambda self: 16)

    def encode(self, bits):
        if self.mode == "int":
            return 2 * bits - 1
        return (2.0 * bits - 1.0).repeat(1, 3 if self.mode == "three" else 2)

    def decode(self, received):
        return (received[:, :8] + received[:, 8:16] > 0).long()


def test_a_codeword_must_match_the_declared_rate():
    ok = simulate_ber(_Rate2("two"), 0.0, max_bits=8000, min_errors=10**9, generator=0)
    assert ok.rate == 0.5 and ok.ebno_db == pytest.approx(0.0)
    # three copies sent, rate 1/2 claimed: measured and reported at Eb/N0 0 dB instead of
    # 1.76 dB, silently
    with pytest.raises(ValidationError, match=r"16 channel symbols per block"):
        simulate_ber(_Rate2("three"), 0.0, max_bits=8000, generator=0)
    # integer symbols: a bare "normal_kernel_cpu not implemented for 'Long'" from torch
    with pytest.raises(ValidationError, match="floating-point channel symbols"):
        simulate_ber(_Rate2("int"), 0.0, max_bits=8000, generator=0)


class _Loud(Code):
    """A user's BPSK that sends ``amplitude``^2 times the unit power the SNR assumes."""

    block_length = 20
    n_channel_uses = 20

    def __init__(self, amplitude: float) -> None:
        self.amplitude = amplitude

    def encode(self, bits):
        return self.amplitude * (bits.double() * 2 - 1)

    def decode(self, received):
        return (received > 0).long()


def test_the_power_sent_is_measured_and_a_code_off_unit_power_warns():
    import warnings

    from neurips18.coding import PowerWarning

    with warnings.catch_warnings():
        warnings.simplefilter("error", PowerWarning)  # unit power: no warning
        r = simulate_ber(UncodedBPSK(20), 0.0, max_bits=200_000, generator=1)
    assert abs(r.power - 1.0) <= 4 * r.power_se + 1e-3 and 0 < r.power_se < 0.01
    assert "average power" not in str(r)
    with pytest.warns(PowerWarning, match=r"average power of .* about 3\.0\d dB"):
        r2 = simulate_ber(_Loud(math.sqrt(2.0)), 0.0, max_bits=200_000, generator=1)
    assert abs(r2.power - 2.0) <= 4 * r2.power_se
    assert r2.effective_snr_db == pytest.approx(10 * math.log10(2.0), abs=0.05)
    assert "average power" in str(r2) and "effective SNR 3.0" in str(r2)
    # sent at twice the power, the BER is BPSK's at +3 dB, which is what the run measured
    q3 = 0.5 * math.erfc(10 ** (10 * math.log10(2.0) / 20) / math.sqrt(2))
    assert r2.ber_interval[0] <= q3 <= r2.ber_interval[1]
    with pytest.warns(PowerWarning):
        r3 = simulate_ber(_Loud(0.9), -1.0, max_bits=100_000, generator=2)  # 0.81: too little
    assert r3.power == pytest.approx(0.81, abs=4 * r3.power_se)


class _LLROut(UncodedBPSK):
    """BPSK whose transmit hands the decoder channel LLRs 2 y / sigma^2 instead of y."""

    transmit_returns_channel_output = False

    def transmit(self, bits, channel, *, generator):
        return 2.0 * super().transmit(bits, channel, generator=generator) / channel.sigma**2


def test_no_power_is_measured_from_what_is_not_the_channel_output():
    # SK's transmit returns the receiver's estimate (B, 1): with one channel use that has the
    # shape of a channel output, and simulate_ber took its power for the power sent (0.175
    # for K = N = 1 at 10 dB, which is plain BPSK at unit power) and warned the BER
    # belonged to 2.4 dB
    import warnings

    from neurips18.coding import PowerWarning, SchalkwijkKailath

    with warnings.catch_warnings():
        warnings.simplefilter("error", PowerWarning)
        r = simulate_ber(SchalkwijkKailath(1, 1), 10.0, max_bits=20_000, generator=1)
        llr = simulate_ber(_LLROut(10), 0.0, max_bits=20_000, generator=1)
    assert r.power is None and r.effective_snr_db is None
    q = 0.5 * math.erfc(math.sqrt(10.0) / math.sqrt(2))  # BPSK at 10 dB
    assert r.ber_interval[0] <= q <= r.ber_interval[1]
    assert llr.power is None
    ref = simulate_ber(UncodedBPSK(10), 0.0, max_bits=20_000, generator=1)
    assert (llr.n_errors, llr.n_bits) == (ref.n_errors, ref.n_bits)
    assert ref.power is not None and UncodedBPSK(3).transmit_returns_channel_output


@pytest.mark.parametrize("n", [100, 1000, 10**6])
def test_wilson_bounds_at_no_errors_and_all_errors_are_exact(n):
    # centre - half cancelled to about 1e-19 (2.2e-19 for 0 errors in 1000 bits) instead
    # of 0, a point 16 decades down a log-scale BER plot
    assert binomial_interval(0, n, method="wilson")[0] == 0.0
    assert binomial_interval(n, n, method="wilson")[1] == 1.0
    assert binomial_interval(0, n, method="clopper-pearson")[0] == 0.0


def test_a_model_in_training_mode_gets_back_each_part_in_its_own_mode():
    # simulate_ber put a model in training mode back with train(), which also switched the
    # batch-norm layers the caller had frozen in eval mode to training mode: the next
    # training steps then updated their running statistics without a word
    from neurips18.coding import Deepcode, FeedbackChannel

    m = Deepcode(10, 6, generator=2).calibrate(FeedbackChannel(0.0), n_blocks=300,
                                                generator=1)
    m.train()
    m.decoder_bn1.eval()
    m.decoder_bn2.eval()
    before = {name: mod.training for name, mod in m.named_modules()}
    simulate_ber(m, 0.0, max_bits=500, generator=1)
    assert {name: mod.training for name, mod in m.named_modules()} == before


class _DropoutBPSK(UncodedBPSK, torch.nn.Module):
    """BPSK whose decoder runs its input through dropout (a user's module)."""

    def __init__(self):
        UncodedBPSK.__init__(self, 8)
        torch.nn.Module.__init__(self)
        self.drop = torch.nn.Dropout(0.5)

    def decode(self, received):
        return (self.drop(received) > 0).long()


def test_a_submodule_left_in_training_mode_runs_in_eval_mode():
    # the model in eval mode but its dropout in training mode: simulate_ber only switched
    # a model whose top level was training, so dropout zeroed half the received values
    # and the BER at 10 dB came out 0.25 (9988 errors in 40,000 bits) instead of BPSK's
    code = _DropoutBPSK().eval()
    code.drop.train()
    r = simulate_ber(code, 10.0, max_bits=40_000, generator=1)
    ref = simulate_ber(UncodedBPSK(8), 10.0, max_bits=40_000, generator=1)
    assert (r.n_errors, r.n_bits) == (ref.n_errors, ref.n_bits)
    assert code.drop.training and not code.training


class _HeldNetworkBPSK(UncodedBPSK):
    """BPSK that is not a module but holds its decoder network (dropout, batch norm) as an
    attribute, one more in a list: how a user composes a code from a network."""

    def __init__(self):
        super().__init__(8)
        self.net = torch.nn.Sequential(torch.nn.Dropout(0.5), torch.nn.BatchNorm1d(8))
        self.extra = [torch.nn.Dropout(0.5)]

    def decode(self, received):
        return (self.extra[0](self.net(received)) > 0).long()


def test_the_networks_held_by_a_code_that_is_not_a_module_run_in_eval_mode():
    # only a code that was itself an nn.Module was switched to eval mode: a code holding
    # its network as an attribute was decoded with dropout on and batch statistics (14,971
    # errors in 40,000 bits at 10 dB instead of BPSK's 37), its running statistics moved
    code = _HeldNetworkBPSK()
    bn = code.net[1]
    with torch.no_grad():
        bn.running_var.fill_(1.0)
    state = {k: v.clone() for k, v in code.net.state_dict().items()}
    r = simulate_ber(code, 10.0, max_bits=40_000, generator=1)
    ref = simulate_ber(UncodedBPSK(8), 10.0, max_bits=40_000, generator=1)
    assert (r.n_errors, r.n_bits) == (ref.n_errors, ref.n_bits)
    assert all(torch.equal(v, code.net.state_dict()[k]) for k, v in state.items())
    assert code.net.training and code.net[0].training and code.extra[0].training


def test_a_channel_of_another_kind_is_refused_as_a_channel():
    # a user's own channel object was refused as "expected a finite number", which reads as
    # if channels could not be passed at all
    class MyChannel:
        snr_db = 0.0

        def __call__(self, x, *, generator):
            return x

    with pytest.raises(ValidationError, match="AWGN or FeedbackChannel"):
        simulate_ber(UncodedBPSK(4), MyChannel(), generator=0)
    with pytest.raises(ValidationError, match="finite number"):
        simulate_ber(UncodedBPSK(4), "3", generator=0)


class _InfiniteBPSK(UncodedBPSK):
    """BPSK whose symbols a user's normalisation made infinite (one block in each batch)."""

    def encode(self, bits):
        x = super().encode(bits)
        x[0] *= float("inf")
        return x


class _NaNTransmit(UncodedBPSK):
    """A code with its own transmit that lets NaN symbols through."""

    def transmit(self, bits, channel, *, generator):
        y = channel(self.encode(bits), generator=generator)
        y[0, 0] = float("nan")
        return y

    def decode(self, received):
        return (received > 0).long()  # NaN decided as 0, without a word


def test_a_code_sending_non_finite_symbols_is_refused_not_measured():
    # infinite symbols survive any noise: simulate_ber returned BER 0 with power inf and
    # no PowerWarning (inf and NaN fail every comparison of the power check); NaN symbols
    # were decided as some bit and counted
    with pytest.raises(ValidationError, match=r"encode\(bits\).*finite"):
        simulate_ber(_InfiniteBPSK(8), 0.0, max_bits=8_000, generator=0)
    with pytest.raises(ValidationError, match=r"transmit.*finite"):
        simulate_ber(_NaNTransmit(8), 0.0, max_bits=8_000, generator=0)


class _RareWholeBlock(Code):
    """Each block is wrong with probability 1e-3, and then in all of its 10 bits."""

    block_length = 10
    n_channel_uses = 10
    transmit_returns_channel_output = False

    def encode(self, bits):
        return bits.double() * 2 - 1

    def transmit(self, bits, channel, *, generator):
        z = torch.randn((len(bits), 1), generator=generator, dtype=torch.float64)
        return torch.cat([self.encode(bits), z], 1)

    def decode(self, received):
        flip = (received[:, -1:] > stats.norm.isf(1e-3)).expand(-1, 10)
        return ((received[:, :10] > 0) ^ flip).long()


def test_with_no_error_seen_the_ber_bound_is_the_block_bound():
    # with no error seen the design effect was taken as 1, as if bits were independent:
    # the bound 3.7e-4 on 1,000 blocks of this code (true BER 1e-3) was K = 10 times too
    # tight, and 81 of 200 runs' 95 % intervals missed the true BER (80 with no error)
    r = simulate_ber(_RareWholeBlock(), 0.0, min_errors=10**9, max_bits=10_000, generator=3)
    assert r.n_errors == 0 and r.n_blocks == 1_000
    assert r.design_effect == 10
    assert r.ber_interval == r.bler_interval
    assert r.ber_interval[1] > 1e-3
    w = simulate_ber(_RareWholeBlock(), 0.0, min_errors=10**9, max_bits=10_000, generator=3,
                     interval="wilson")
    assert w.ber_interval == pytest.approx(w.bler_interval)
    # with errors seen the interval still comes from the measured design effect
    r = simulate_ber(UncodedBPSK(10), 0.0, min_errors=10**9, max_bits=10_000, generator=3)
    assert r.n_errors > 0 and r.design_effect < 2


class _HalfWholeBlock(_RareWholeBlock):
    """Each block is wrong with probability 1/2, and then in all of its 10 bits."""

    def decode(self, received):
        flip = (received[:, -1:] > 0).expand(-1, 10)
        return ((received[:, :10] > 0) ^ flip).long()


def test_with_every_bit_wrong_or_one_block_the_ber_bound_is_the_block_bound():
    # every bit wrong (no right bit seen) or a single block: nothing measures how errors
    # cluster. A design effect of 1 there gave [0.69, 1] for one all-wrong block of 10 bits
    # of this code (true BER 1/2); over 200 one-block runs the 95 % intervals held 1/2 in
    # about half, over two-block runs in about three quarters
    code = _HalfWholeBlock()
    for n_blocks in (1, 2, 3):
        missed = 0
        for seed in range(100):
            r = simulate_ber(code, 0.0, max_bits=10 * n_blocks, batch_size=n_blocks,
                             generator=seed)
            lo, hi = r.ber_interval
            missed += not lo <= 0.5 <= hi
            if r.n_errors == r.n_bits or n_blocks == 1:
                assert r.design_effect == 10
        assert missed <= 10, (n_blocks, missed)
    # all wrong: the BER interval is the block interval
    for seed in range(20):
        r = simulate_ber(code, 0.0, max_bits=20, batch_size=2, generator=seed)
        if r.n_errors == r.n_bits:
            assert r.ber_interval == pytest.approx(r.bler_interval)
            break
    else:
        raise AssertionError("no all-wrong run")
