"""Monte-Carlo bit and block error rates with confidence intervals."""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import asdict, dataclass
from typing import Any

from neurips18._validation import Interval, Options, as_torch_generator, check, invalid
from neurips18.coding._channels import AWGN, FeedbackChannel, noise_std, snr_to_ebno_db
from neurips18.coding._code import Code

__all__ = ["BERResult", "PowerWarning", "binomial_interval", "simulate_ber"]

POWER_TOLERANCE = 0.02
"""How far the measured average power per symbol may sit from 1 (beyond four standard
errors of its estimate) before :func:`simulate_ber` warns: 2 %, about 0.09 dB."""


class PowerWarning(UserWarning):
    """A code sent more or less than unit average power per symbol in :func:`simulate_ber`:
    its BER then belongs to another SNR than the one asked for."""


def binomial_interval(errors: float, trials: float, *, method: str = "clopper-pearson",
                      confidence: float = 0.95) -> tuple[float, float]:
    """Two-sided ``confidence`` interval of a binomial proportion ``errors / trials``.

    ``method``: ``"clopper-pearson"`` (exact, from beta quantiles; conservative) or
    ``"wilson"`` (score interval). Non-integer counts are allowed (effective counts after a
    design-effect correction).
    """
    method = check("method", method, Options({"clopper-pearson", "wilson"}))
    confidence = check("confidence", confidence, Interval(float, 0.0, 1.0, closed="neither"))
    trials = check("trials", trials, Interval(float, 0.0, None, closed="neither"))
    errors = check("errors", errors, Interval(float, 0.0, trials))
    from scipy import stats

    a = 1.0 - confidence
    if method == "clopper-pearson":
        lo = 0.0 if errors == 0 else float(stats.beta.ppf(a / 2, errors, trials - errors + 1))
        hi = 1.0 if errors == trials else float(stats.beta.ppf(1 - a / 2, errors + 1,
                                                               trials - errors))
        return lo, hi
    z = float(stats.norm.ppf(1 - a / 2))
    p = errors / trials
    den = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / den
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / den
    # with no errors (or no successes) the bound is exactly 0 (1); centre - half rounds to
    # about 1e-19 instead, a point far down a log-scale BER plot
    lo = 0.0 if errors == 0 else max(0.0, centre - half)
    hi = 1.0 if errors == trials else min(1.0, centre + half)
    return lo, hi


def _decisions(out: Any, batch: int, K: int, code: Code) -> Any:
    """The decoder's output ``out`` as hard decisions ``(batch, K)`` in {0, 1}.

    Anything else would be compared with the bits without a word: probabilities or
    logits count every bit that is not exactly 0 or 1 as an error, +/-1 decisions count
    every 0, and another shape broadcasts against the bits."""
    import torch

    name = f"{code.name}.decode(received)"
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (batch, K):
        got = tuple(out.shape) if hasattr(out, "shape") else type(out).__name__
        raise invalid(name, out, f"hard decisions of shape ({batch}, {K}) (one per "
                                 f"information bit of each of the {batch} blocks), got {got}")
    if out.dtype != torch.bool:
        ok = (out == 0) | (out == 1)
        if not bool(ok.all()):
            bad = out[~ok].flatten()[:3].tolist()
            raise invalid(name, out, f"hard decisions, 0s and 1s (bool, integer or float); "
                                     f"found {bad}: threshold probabilities at 0.5 or "
                                     "logits at 0, and map +/-1 decisions to 1/0")
    return out


@dataclass(frozen=True)
class BERResult:
    """What :func:`simulate_ber` measured.

    ``ber_interval`` is the ``confidence`` interval of the bit error rate by
    ``interval_method``, with bit errors counted per block: blocks are independent but the
    bits of one block are not (a wrong block often has several wrong bits), so the counts
    are divided by the design effect ``design_effect`` = (variance of the errors per block)
    / (the variance if bits were independent), at least 1, before the interval is taken
    (with ``design_effect = 1`` it is the textbook interval over bits). With no error seen
    nothing tells how errors would cluster, and a wrong block may have all its ``K`` bits
    wrong: the design effect is then ``K``, its largest value, so that the BER bound is the
    block bound (the BER is at most the BLER), valid whatever the code. So it is, for the
    same reason, when every bit sent was wrong, and when a single block was sent (no
    spread over blocks to measure the clustering from). ``bler_interval``
    is exact over blocks.
    ``stopped``: ``"min_errors"`` (the target number of bit errors was reached) or
    ``"max_bits"``.

    ``power`` is the average power per transmitted symbol, measured from what the receiver
    got: mean(received^2) - sigma^2 (the forward noise is independent of the symbol it is
    added to, also with feedback), with its standard error ``power_se`` over blocks. The
    SNR convention needs it to be 1. A Deepcode model whose encoder normalisation was
    measured at another SNR sends more or less (the authors' 0 dB model sends 1.21 at
    -1 dB and 0.86 at 1 dB): such a run warns (:class:`PowerWarning`) and ``effective_snr_db``
    = ``snr_db`` + 10 log10(power) says where its BER really belongs. ``None`` when the
    received values were not one real value per channel use, or the code's
    ``transmit_returns_channel_output`` is False (Schalkwijk-Kailath: its ``transmit``
    returns the receiver's estimate).
    """

    code: str
    snr_db: float
    ebno_db: float
    rate: float
    n_bits: int
    n_errors: int
    n_blocks: int
    n_block_errors: int
    ber: float
    bler: float
    ber_interval: tuple[float, float]
    bler_interval: tuple[float, float]
    interval_method: str
    confidence: float
    design_effect: float
    stopped: str
    seconds: float
    power: float | None = None
    power_se: float | None = None

    @property
    def effective_snr_db(self) -> float | None:
        """``snr_db`` + 10 log10(``power``): the SNR at which the symbols actually sent
        would have unit power."""
        if self.power is None or self.power <= 0:
            return None
        return self.snr_db + 10.0 * math.log10(self.power)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ber_interval"] = list(self.ber_interval)
        d["bler_interval"] = list(self.bler_interval)
        return d

    def __str__(self) -> str:
        lo, hi = self.ber_interval
        out = (f"{self.code} at {self.snr_db:g} dB: BER {self.ber:.3g} [{lo:.3g}, {hi:.3g}] "
               f"({self.n_errors} errors in {self.n_bits} bits), BLER {self.bler:.3g}")
        if self.power is not None and _off_unit_power(self.power, self.power_se or 0.0):
            out += (f"; average power {self.power:.3f} per symbol, not 1 (effective SNR "
                    f"{self.effective_snr_db:.2f} dB)")
        return out


def _off_unit_power(power: float, se: float) -> bool:
    return abs(power - 1.0) - 4.0 * se > POWER_TOLERANCE


def _torch_modules(code: Any) -> list[Any]:
    """The torch modules a code runs: the code itself if it is an ``nn.Module``, and every
    ``nn.Module`` among its attributes, directly or in a list, tuple, set or dict (a code
    that is not a module but holds its encoder or decoder network)."""
    import torch

    roots: list[Any] = [code] if isinstance(code, torch.nn.Module) else []
    for v in getattr(code, "__dict__", {}).values():
        items = v.values() if isinstance(v, dict) else \
            v if isinstance(v, list | tuple | set | frozenset) else (v,)
        roots.extend(m for m in items if isinstance(m, torch.nn.Module))
    return list({id(m): m for m in roots}.values())


def simulate_ber(
    code: Code,
    snr_db: float | AWGN | FeedbackChannel,
    *,
    min_errors: int = 100,
    max_bits: int = 10_000_000,
    batch_size: int = 10_000,
    generator: Any,
    interval: str = "clopper-pearson",
    confidence: float = 0.95,
    progress: bool | None = None,
) -> BERResult:
    """Send random blocks through ``code`` and a channel until ``min_errors`` bit errors
    have been seen or ``max_bits`` bits have been sent (whole blocks: the last batch is cut
    to the blocks still needed, so ``n_bits`` exceeds ``max_bits`` by less than one block;
    every bit sent is counted, none is padding).

    Parameters
    ----------
    code : any :class:`~neurips18.coding.Code` (Deepcode, TurboCode, SchalkwijkKailath,
        UncodedBPSK, or a user's own). A code that is an ``nn.Module`` runs with all its
        submodules in eval mode, and so do the ``nn.Module`` attributes of a code that is
        not one (its encoder or decoder network, also in a list, tuple or dict); each
        gets back the mode it had.
    snr_db : the forward SNR in dB (unit power per symbol; the code's
        ``default_channel`` is used: AWGN, or noiseless feedback for feedback codes), or a
        channel object (:class:`AWGN`, :class:`FeedbackChannel`).
    batch_size : blocks per batch.
    generator : a ``torch.Generator`` (or an int seed) for the bits and the noise; the
        result is a function of it, the arguments and the code.
    interval : ``"clopper-pearson"`` or ``"wilson"``.
    progress : a tqdm bar (``None``: only on an interactive terminal).
    """
    import torch

    if not isinstance(code, Code):
        raise invalid("code", code, "a neurips18.coding.Code")
    if isinstance(snr_db, AWGN | FeedbackChannel):
        channel = snr_db
    elif callable(snr_db) or hasattr(snr_db, "snr_db") or hasattr(snr_db, "sample"):
        # a user's own channel object: say what is accepted, not only "a number"
        raise invalid("snr_db", snr_db, "a forward SNR in dB or an AWGN or FeedbackChannel "
                      "(a channel of another kind: subclass one of them, or give the code a "
                      "transmit that runs it)")
    else:
        channel = code.default_channel(check("snr_db", snr_db, Interval(float, -60.0, 100.0)))
    min_errors = check("min_errors", min_errors, Interval(int, 1, None))
    max_bits = check("max_bits", max_bits, Interval(int, 1, None))
    batch_size = check("batch_size", batch_size, Interval(int, 1, None))
    interval = check("interval", interval, Options({"clopper-pearson", "wilson"}))
    confidence = check("confidence", confidence, Interval(float, 0.0, 1.0, closed="neither"))
    g = as_torch_generator(generator)
    K = code.block_length
    snr = channel.snr_db if isinstance(channel, AWGN) else channel.forward_snr_db
    decode = code.decoder_for(channel)
    measure_power = bool(code.transmit_returns_channel_output)
    from tqdm.auto import tqdm

    n_bits = n_err = n_blocks = n_blk_err = 0
    sum_sq = 0
    var_noise = noise_std(snr) ** 2
    pw_blocks, pw_sum, pw_sq = 0, 0.0, 0.0  # per-block mean received power
    t0 = time.perf_counter()
    bar = tqdm(total=max_bits, disable=(None if progress is None else not progress),
               desc=f"{code.name} @ {snr:g} dB", unit="bit", unit_scale=True, leave=False)
    was_training = getattr(code, "training", False)
    # every torch module of the code in eval mode for the run (also one left in training
    # mode inside a model in eval mode, or held as an attribute of a code that is not
    # itself a module: dropout, batch statistics), then each back in its own mode:
    # train() afterwards would also switch back the parts the caller had frozen
    roots = _torch_modules(code)
    modes = [(mod, mod.training) for root in roots for mod in root.modules()] or None
    for root in roots:
        root.eval()
    if not isinstance(code, torch.nn.Module) and was_training:
        code.eval()  # type: ignore[attr-defined]
    try:
        with torch.no_grad():
            while n_err < min_errors and n_bits < max_bits:
                B = min(batch_size, -(-(max_bits - n_bits) // K))
                bits = torch.randint(0, 2, (B, K), generator=g)
                received = code.transmit(bits, channel, generator=g)
                if (measure_power and pw_blocks >= 0 and isinstance(received, torch.Tensor)
                        and received.is_floating_point() and received.shape[:1] == (B,)
                        and received[0].numel() == code.n_channel_uses):
                    bp = received.reshape(B, -1).double().pow(2).mean(1)
                    if not bool(torch.isfinite(bp).all()):
                        # a code sending infinite symbols gets every bit through (BER 0)
                        # and a NaN power never trips the power check: refuse both
                        raise invalid(f"{code.name}.transmit(bits, channel)", received,
                                      "finite received values (the code sent NaN or "
                                      "infinite symbols)")
                    pw_blocks += B
                    pw_sum += float(bp.sum())
                    pw_sq += float(bp.pow(2).sum())
                else:
                    pw_blocks = -1  # not one real value per channel use: no power measured
                wrong = (_decisions(decode(received), B, K, code) != bits).sum(1)
                n_bits += B * K
                n_blocks += B
                n_err += int(wrong.sum())
                sum_sq += int((wrong * wrong).sum())
                n_blk_err += int((wrong > 0).sum())
                bar.update(B * K)
                bar.set_postfix(errors=n_err)
    finally:
        bar.close()
        if not isinstance(code, torch.nn.Module) and was_training:
            code.train()  # type: ignore[attr-defined]
        if modes is not None:
            for mod, mode in modes:
                mod.training = mode
    p = n_err / n_bits
    # no error seen: the clustering is unknown, so the largest design effect (every bit of
    # a wrong block wrong); a design effect of 1 there claimed a bound K times below what
    # the blocks support, and for a code whose wrong blocks have many wrong bits the
    # interval missed the true BER in far more than 5 % of the runs
    # the same when every bit sent was wrong (no right bit seen: the mirror case, where a
    # design effect of 1 gave [0.93, 1] for one all-wrong block of 50 bits whatever the
    # code) or when there is a single block (no spread over blocks to measure)
    deff = float(K)
    if 0 < n_err < n_bits and n_blocks > 1:
        mean = n_err / n_blocks
        var = (sum_sq - n_blocks * mean * mean) / (n_blocks - 1)
        deff = max(1.0, var / (K * p * (1 - p)))
    ber_iv = binomial_interval(n_err / deff, n_bits / deff, method=interval,
                               confidence=confidence)
    bler_iv = binomial_interval(n_blk_err, n_blocks, method=interval, confidence=confidence)
    power = power_se = None
    if pw_blocks > 0:
        mean_bp = pw_sum / pw_blocks
        power = mean_bp - var_noise
        var_bp = max(pw_sq / pw_blocks - mean_bp * mean_bp, 0.0)
        power_se = math.sqrt(var_bp / max(pw_blocks - 1, 1))
        if power < 0.01 and _off_unit_power(power, power_se):
            warnings.warn(
                f"what {code.name}.transmit returned at {snr:g} dB holds about no power "
                f"beyond the channel's noise variance {var_noise:.3g} (measured "
                f"{power + var_noise:.3g} in all): it did not send unit-power symbols "
                "through this channel's noise, so the BER is not that of this SNR",
                PowerWarning, stacklevel=2)
        elif _off_unit_power(power, power_se):
            warnings.warn(
                f"{code.name} sent an average power of {power:.3f} per symbol (+/- "
                f"{power_se:.3f}) at {snr:g} dB, not 1: its BER belongs to about "
                f"{snr + 10 * math.log10(max(power, 1e-12)):.2f} dB. A Deepcode model "
                "normalises its encoder with statistics measured at one SNR; to use it at "
                "another, measure them there first: model.calibrate(channel, generator=...). "
                "(A code whose transmit returns something other than the received channel "
                "values declares transmit_returns_channel_output = False.)",
                PowerWarning, stacklevel=2)
    return BERResult(
        code=code.name, snr_db=float(snr), ebno_db=snr_to_ebno_db(snr, code.rate),
        rate=code.rate, n_bits=n_bits, n_errors=n_err, n_blocks=n_blocks,
        n_block_errors=n_blk_err, ber=p, bler=n_blk_err / n_blocks, ber_interval=ber_iv,
        bler_interval=bler_iv, interval_method=interval, confidence=confidence,
        design_effect=deff, stopped="min_errors" if n_err >= min_errors else "max_bits",
        seconds=time.perf_counter() - t0, power=power, power_se=power_se)
