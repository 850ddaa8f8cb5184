"""Reproduction: Kim, Jiang, Kannan, Oh, Viswanath, Deepcode (NeurIPS 2018).

What is reproduced (capability :mod:`neurips18.coding`):

* the authors' eight pretrained models (noiseless feedback at forward SNR -1, 0, 1, 2 dB;
  noisy feedback at feedback SNR -3, 3, 10, 20 dB with forward 0 dB) run through our
  implementation (:meth:`~neurips18.coding.Deepcode.from_official`), their BER compared with
  an independent measurement of the same models (the project's brief: a separate float64
  port) by an exact test of equal error rates;
* BER and BLER against SNR (-1 to 2 dB) for Deepcode, Sionna's LTE turbo code (K = 50,
  3GPP interleaver, terminated, 6 MAP iterations), three named Schalkwijk-Kailath variants
  and uncoded BPSK, in the same run; the headline ratios Deepcode vs turbo at 0 and 0.5 dB
  judged on their 95 % intervals;
* the models trained by this package (:mod:`neurips18.coding.pretrained`) against the
  official ones at -1 and 0 dB, and a short training run from scratch;
* the official models at block lengths they were not trained for (K = 100, 1000).

SNR axis everywhere: unit average power per channel symbol, noise sigma = 10^(-SNR/20)
(the paper's axis); Eb/N0 = SNR + 10 log10(1 / (2 R)) is recorded for every point with the
code's exact rate (Deepcode 50/153, turbo 50/162, SK 1/3, BPSK 1). The paper's own figure
values were not recovered; its curves are compared through the authors' models and the
anchors measured here. At SNRs between the official models' training SNRs the model
trained at the nearest SNR below is used (fixed in advance).
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from typing import Any

from neurips18.repro.core import (
    MEASURED,
    Judgement,
    Profile,
    Reference,
    References,
    Reproduction,
    RunContext,
)

CITATION = (
    "Kim, Jiang, Kannan, Oh, Viswanath. Deepcode: Feedback Codes via Deep Learning. "
    "NeurIPS 2018. arXiv:1807.00801"
)

_OFFICIAL_NOISELESS = {-1.0: "noiseless_feedback_forward_snr_-1db",
                       0.0: "noiseless_feedback_forward_snr_0db",
                       1.0: "noiseless_feedback_forward_snr_1db",
                       2.0: "noiseless_feedback_forward_snr_2db"}
_OFFICIAL_NOISY = {-3.0: "feedback_snr_-3.0db_forward_snr_0db",
                   3.0: "feedback_snr_3.0db_forward_snr_0db",
                   10.0: "feedback_snr_10.0db_forward_snr_0db",
                   20.0: "feedback_snr_20.0db_forward_snr_0db"}
# The brief's independent measurement of the official models (float64 port): BER and bits.
_BRIEF_NOISELESS = {-1.0: (1.51e-4, 1_000_000), 0.0: (3.0e-6, 5_000_000)}
_BRIEF_NOISY = {-3.0: 2.91e-2, 3.0: 1.49e-2, 10.0: 2.59e-3, 20.0: 2.6e-5}  # bits not given
_BRIEF_TURBO = {0.0: 4.59e-3, 0.5: 1.37e-3, 1.0: 4.37e-4}  # Sionna, bits not given
# Every value of the brief is itself a Monte-Carlo estimate, so each comparison with it is a
# two-sample test of equal rates. The brief's sample: the bits it gives (noiseless rows);
# where it gives none, its stated rule "~100 error events per point" ("BER 1e-6 needs ~1e8
# bits": events are bit errors), i.e. 100 bit errors over 100 / BER bits. Its errors are
# taken to cluster within blocks as ours do (the same model on the same channel): both
# samples are divided by the design effect measured here. A value of the brief with no
# stated sample would be compared as exact (none is, at present).
_BRIEF_ERRORS_PER_POINT = 100
_ANCHOR_MISSING = "anchor not installed: pip install 'neurips18[coding-anchors]'"
_SK_VARIANTS = ("ideal", "float32", "noisy-feedback")


@dataclass(frozen=True)
class Config(Profile):
    curve_snrs: tuple[float, ...]
    deepcode_max_bits: dict[str, int]  # forward SNR (as text) -> bit budget
    noisy_max_bits: dict[str, int]  # feedback SNR (as text) -> bit budget
    turbo_max_bits: int
    baseline_max_bits: int
    sk_feedback_snr_db: float
    ours_max_bits: dict[str, int]
    lengths: tuple[int, ...]
    length_snr_db: float
    length_max_bits: int
    min_errors: int
    batch_size: int
    train_steps: int
    train_hidden: int
    train_gain_min: float
    claims_0db: bool
    claims_0p5db: bool
    claims_ours: bool
    claims_lengths: bool
    turbo_min_errors: int = 0  # bit errors to reach for the turbo code (0: min_errors)

    def check(self) -> None:
        for s in self.curve_snrs:
            if not -1.0 <= s <= 2.0:
                raise ValueError(f"curve_snrs must lie in [-1, 2] dB (official models), got {s}")
        for k in self.deepcode_max_bits:
            if float(k) not in self.curve_snrs:
                raise ValueError(f"deepcode_max_bits key {k} is not in curve_snrs")
        if 0.0 not in self.curve_snrs:
            raise ValueError("curve_snrs must include 0 dB (the headline claim)")
        if self.min_errors < 1 or self.batch_size < 1:
            raise ValueError("min_errors and batch_size must be >= 1")


# Full profile: the official and our models get 2e7 bits at 0 dB and 3e6 at -1 dB (about
# 60 and 400 errors at the official BERs), so that "ours within 2x of official", judged on
# the upper 95 % bound of the ratio, can be established for a model as good as the official
# one (with ~15 errors each the bound exceeds 2 even for equal rates). The 0.5 dB claim
# (turbo >= 1000x Deepcode on the lower 95 % bound) needs Deepcode's upper bound near 1e-6:
# 2e7 bits there too (with 3e6 it could pass only with no error at all), and the turbo code
# measured to 5,000 bit errors (its interval enters the ratio's bound; at 500 errors, about
# 40 effective ones after the design effect, it alone spans +-25 %).
PROFILES = {
    "smoke": Config(
        curve_snrs=(-1.0, 0.0), deepcode_max_bits={"-1.0": 20_000, "0.0": 20_000},
        noisy_max_bits={"-3.0": 10_000, "20.0": 10_000}, turbo_max_bits=5_000,
        baseline_max_bits=5_000, sk_feedback_snr_db=20.0, ours_max_bits={"-1.0": 10_000},
        lengths=(100,), length_snr_db=-1.0, length_max_bits=10_000, min_errors=100,
        batch_size=200, train_steps=4, train_hidden=8, train_gain_min=0.0,
        claims_0db=False, claims_0p5db=False, claims_ours=False, claims_lengths=False),
    "quick": Config(
        curve_snrs=(-1.0, 0.0, 0.5, 1.0),
        deepcode_max_bits={"-1.0": 400_000, "0.0": 1_000_000, "0.5": 200_000, "1.0": 200_000},
        noisy_max_bits={"-3.0": 100_000, "3.0": 100_000, "10.0": 200_000, "20.0": 1_000_000},
        turbo_max_bits=100_000, baseline_max_bits=50_000, sk_feedback_snr_db=20.0,
        ours_max_bits={"-1.0": 200_000, "0.0": 200_000}, lengths=(100, 1000),
        length_snr_db=-1.0, length_max_bits=200_000, min_errors=300, batch_size=1000,
        train_steps=60, train_hidden=50, train_gain_min=10.0,
        claims_0db=True, claims_0p5db=False, claims_ours=False, claims_lengths=False),
    "full": Config(
        curve_snrs=(-1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0),
        deepcode_max_bits={"-1.0": 3_000_000, "-0.5": 500_000, "0.0": 20_000_000,
                           "0.5": 20_000_000, "1.0": 1_000_000, "1.5": 500_000,
                           "2.0": 500_000},
        noisy_max_bits={"-3.0": 200_000, "3.0": 200_000, "10.0": 500_000,
                        "20.0": 2_000_000},
        turbo_max_bits=4_000_000, turbo_min_errors=5_000, baseline_max_bits=200_000,
        sk_feedback_snr_db=20.0,
        ours_max_bits={"-1.0": 3_000_000, "0.0": 20_000_000}, lengths=(100, 1000),
        length_snr_db=-1.0, length_max_bits=1_000_000, min_errors=500, batch_size=1000,
        train_steps=100, train_hidden=50, train_gain_min=10.0,
        claims_0db=True, claims_0p5db=True, claims_ours=True, claims_lengths=True),
}

REFERENCES = References(
    Reference("official_vs_brief", "official {snr:g} dB model through our code: BER "
              "{ber:.3g} [{lo:.3g}, {hi:.3g}] ({err} errors / {bits:.3g} bits) vs the brief's "
              "{bref:.3g} ({ref_bits}); p-value of equal rates", 0.05,
              source="brief: independent float64 port of the official models (bits given); "
                     "claim: consistent (two-sample exact test, p >= 0.05)", mode="min"),
    Reference("noisy_vs_brief", "official feedback-{fb:g} dB model (forward 0 dB): BER "
              "{ber:.3g} [{lo:.3g}, {hi:.3g}] ({err} errors / {bits:.3g} bits) vs the brief's "
              "{bref:.3g} ({ref_bits}); p-value of equal rates", 0.05,
              source="brief: independent port (bits not given; its stated ~100 bit errors "
                     "per point); claim: consistent (two-sample exact test, p >= 0.05)",
              mode="min"),
    Reference("turbo_ratio", "lower 95% bound of BER(turbo) / BER(Deepcode) at {snr:g} dB "
              "(turbo {tb:.3g}, Deepcode {db:.3g})", None,
              source="issue target: >= {target:g}x (paper: 'orders of magnitude'; its "
                     "figure values not recovered)", mode="min"),
    Reference("turbo_ratio_100", "lower 95% bound of BER(turbo) / BER(Deepcode) at {snr:g} "
              "dB (turbo {tb:.3g}, Deepcode {db:.3g})", 100.0,
              source="issue target: >= 100x at 0 dB", mode="min"),
    Reference("turbo_ratio_1000", "lower 95% bound of BER(turbo) / BER(Deepcode) at {snr:g} "
              "dB (turbo {tb:.3g}, Deepcode {db:.3g})", 1000.0,
              source="issue target: >= 1000x at 0.5 dB", mode="min"),
    Reference("turbo_vs_brief", "Sionna turbo at {snr:g} dB: BER {ber:.3g} [{lo:.3g}, "
              "{hi:.3g}] vs the brief's {bref:.3g} ({ref_bits}); p-value of equal rates", None,
              source="brief (Sionna measurement; bits not given, its stated ~100 bit errors "
                     "per point): informative"),
    Reference("sk_beaten", "lower 95% bound of BER({sk}) / BER(Deepcode) at 0 dB "
              "(SK {skb:.3g}, Deepcode {db:.3g})", 100.0,
              source="claim tested: Deepcode beats this SK variant by >= 100x", mode="min"),
    Reference("sk_ideal", "SK (ideal: float64, noiseless feedback) at {snr:g} dB: BER upper "
              "95% bound ({err} errors / {bits:.3g} bits); Deepcode BER {db:.3g}", None,
              source="informative: ideal SK is not beaten where it makes no errors"),
    Reference("uncoded", "uncoded BPSK at {snr:g} dB: BER (Q(sqrt(SNR)) = {q:.4g})",
              MEASURED, source="closed form Q(10^(SNR/20))", tol=0.1, mode="rel"),
    Reference("ours_vs_official", "upper 95% bound of BER(ours) / BER(official) at {snr:g} "
              "dB (ours {ob:.3g} [{lo:.3g}, {hi:.3g}], official {fb:.3g})", 2.0,
              source="issue target: our trained model within 2x of the official BER",
              mode="max"),
    Reference("ours_info", "our trained model at {snr:g} dB: BER {ob:.3g} [{lo:.3g}, {hi:.3g}]"
              " / official {fb:.3g}", None,
              source="informative in this profile (the 2x claim is judged in the full "
                     "profile)"),
    Reference("train_gain", "short training from scratch ({blocks} blocks, hidden {hidden}) "
              "at 0 dB: BER(uncoded) / BER(trained) ({tb:.3g})", None,
              source="claim tested: training works (gain >= {gain:g}x over uncoded BPSK)",
              mode="min"),
    Reference("length", "official {snr:g} dB model at K = {k}: upper 95% bound of "
              "BER(K) / BER(50) (BER {kb:.3g} vs {b50:.3g})", 2.0,
              source="claim tested (paper: Deepcode generalises to longer blocks): within "
                     "2x of K = 50", mode="max"),
    Reference("length_info", "official {snr:g} dB model at K = {k}: BER {kb:.3g} [{lo:.3g}, "
              "{hi:.3g}] vs {b50:.3g} at K = 50", None,
              source="informative in this profile (judged in the full profile)"),
)


# ----------------------------------------------------------------------------- helpers
def _seed(base: int, key: str) -> int:
    return (base * 1_000_003 + zlib.crc32(key.encode())) % (2**62)


def _sim(code: Any, channel: Any, key: str, seed: int, max_bits: int, cfg: Config,
         min_errors: int = 0) -> dict:
    import warnings

    import torch

    from neurips18.coding import PowerWarning, simulate_ber

    g = torch.Generator().manual_seed(_seed(seed, key))
    # a code off unit power (simulate_ber measures it) is recorded (``power``) and stated
    # in the notes rather than printed
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PowerWarning)
        r = simulate_ber(code, channel, min_errors=min_errors or cfg.min_errors,
                         max_bits=max_bits,
                         batch_size=cfg.batch_size, generator=g, progress=False)
    d = r.to_dict()
    d["wall_seconds"] = d.pop("seconds")
    return d


def _official(name: str) -> Any:
    from neurips18.coding import Deepcode
    from neurips18.datasets import load_deepcode_official

    return Deepcode.from_official(load_deepcode_official(name))


CALIBRATION_BLOCKS = 20_000
"""Blocks over which a model used between its training SNRs has its normalisation
statistics measured again (``Deepcode.calibrate``)."""


def _model_for(snr: float) -> float:
    return max(s for s in _OFFICIAL_NOISELESS if s <= snr + 1e-9)


def _eff(r: dict) -> tuple[float, float]:
    """Effective (errors, trials) after the design effect of clustered bit errors."""
    d = r["design_effect"]
    return r["n_errors"] / d, r["n_bits"] / d


def ratio_lower(num: dict, den: dict, confidence: float = 0.95) -> float:
    """Lower ``confidence`` bound of BER(num) / BER(den): the conditional binomial
    (Clopper-Pearson) interval for the ratio of two rates, on effective counts."""
    lo, _ = _ratio_interval(*_eff(num), *_eff(den), confidence)
    return lo


def ratio_upper(num: dict, den: dict, confidence: float = 0.95) -> float:
    _, hi = _ratio_interval(*_eff(num), *_eff(den), confidence)
    return hi


def _ratio_interval(e1: float, n1: float, e2: float, n2: float,
                    confidence: float) -> tuple[float, float]:
    from scipy import stats

    t = e1 + e2
    if t <= 0:
        return 0.0, math.inf
    a = 1 - confidence
    lo = 0.0 if e1 <= 0 else float(stats.beta.ppf(a / 2, e1, e2 + 1))
    hi = 1.0 if e2 <= 0 else float(stats.beta.ppf(1 - a / 2, e1 + 1, e2))
    k = n2 / n1

    def rho(p: float) -> float:
        return math.inf if p >= 1 else p / (1 - p) * k

    return rho(lo), rho(hi)


def brief_sample(ber: float, bits: int | None, design_effect: float) -> tuple[float, float]:
    """Effective (errors, trials) of a value of the brief: its ``bits`` if given, else its
    stated rule of about 100 bit errors per point; both divided by ``design_effect``."""
    n = float(bits) if bits is not None else _BRIEF_ERRORS_PER_POINT / ber
    return ber * n / design_effect, n / design_effect


def _vs_brief(r: dict, ber: float, bits: int | None) -> tuple[float, str]:
    """Two-sided p-value that our result ``r`` and the brief's value have equal rates, and
    a description of the brief's sample."""
    e1, n1 = _eff(r)
    e2, n2 = brief_sample(ber, bits, r["design_effect"])
    what = (f"{round(ber * bits)} / {bits:.0e} bits" if bits is not None
            else f"~{_BRIEF_ERRORS_PER_POINT} errors / {_BRIEF_ERRORS_PER_POINT / ber:.3g} bits")
    return _p_equal(e1, n1, e2, n2, ber), what


def _p_equal(e1: float, n1: float, e2: float, n2: float | None, rate2: float) -> float:
    """Two-sided exact p-value that rate 1 equals rate 2: conditional binomial for two
    counts, or a binomial test against the fixed rate ``rate2`` when ``n2`` is None."""
    from scipy import stats

    if n2 is None:
        n, p = n1, rate2
    else:
        n, p = e1 + e2, n1 / (n1 + n2)
        if n <= 0:
            return 1.0
    # P(X <= e1) and P(X >= e1) for X ~ Bin(n, p), continuous in e1 via the beta function
    le = 1.0 if e1 >= n else float(stats.beta.sf(p, e1 + 1, n - e1))
    ge = 1.0 if e1 <= 0 else float(stats.beta.cdf(p, e1, n - e1 + 1))
    return min(1.0, 2 * min(le, ge))


# ----------------------------------------------------------------------------- run
def _curve(ctx: RunContext) -> dict[str, Any]:
    from neurips18.coding import FeedbackChannel, SchalkwijkKailath, UncodedBPSK

    cfg: Config = ctx.config
    out: dict[str, Any] = {"deepcode": {}, "turbo": {}, "sk": {}, "uncoded": {}}
    if ctx.has("official"):
        for snr in ctx.progress(cfg.curve_snrs, desc="Deepcode (official)"):
            key = f"{snr:g}"
            budget = cfg.deepcode_max_bits.get(f"{snr:.1f}")
            if budget is None:
                continue
            ms = _model_for(snr)

            def one(snr: float = snr, ms: float = ms, budget: int = budget) -> dict:
                import torch

                model = _official(_OFFICIAL_NOISELESS[ms])
                if ms != snr:
                    # its normalisation statistics belong to its training SNR: measured
                    # again here, so that it sends unit power at this one
                    model.calibrate(FeedbackChannel(snr), n_blocks=CALIBRATION_BLOCKS,
                                    generator=torch.Generator().manual_seed(
                                        _seed(ctx.seed, f"calibrate{snr}")))
                model = _to_device(model, ctx)
                r = _sim(model, FeedbackChannel(snr), f"deepcode{snr}", ctx.seed, budget, cfg)
                r["model_snr_db"] = ms
                r["calibrated_at_db"] = snr if ms != snr else None
                return r

            out["deepcode"][key] = ctx.cached(f"deepcode_{key}", one)
    turbo = _turbo()
    for snr in ctx.progress(cfg.curve_snrs, desc="turbo / SK / BPSK"):
        key = f"{snr:g}"
        if turbo is not None:
            out["turbo"][key] = ctx.cached(
                f"turbo_{key}", lambda snr=snr: _sim(turbo, snr, f"turbo{snr}", ctx.seed,
                                                     cfg.turbo_max_bits, cfg,
                                                     cfg.turbo_min_errors))
        for v in _SK_VARIANTS:
            sk = SchalkwijkKailath(50, variant=v, feedback_snr_db=cfg.sk_feedback_snr_db
                                   if v == "noisy-feedback" else None)
            out["sk"].setdefault(v, {})[key] = ctx.cached(
                f"sk_{v}_{key}", lambda sk=sk, snr=snr, v=v: _sim(
                    sk, snr, f"sk{v}{snr}", ctx.seed, cfg.baseline_max_bits, cfg))
        out["uncoded"][key] = ctx.cached(
            f"uncoded_{key}", lambda snr=snr: _sim(UncodedBPSK(50), snr, f"bpsk{snr}",
                                                   ctx.seed, cfg.baseline_max_bits, cfg))
    out["turbo_installed"] = turbo is not None
    return out


def _turbo() -> Any:
    try:
        from neurips18.coding import TurboCode

        return TurboCode(50, num_iter=6, algorithm="map")
    except ImportError:
        return None


def _to_device(model: Any, ctx: RunContext) -> Any:
    from neurips18.repro._common import to_device

    # simulation runs on the CPU (the draws come from CPU generators); the model is moved
    # to the run's device and back so a device run exercises the move
    return to_device(model, ctx.device).cpu() if ctx.device != "cpu" else to_device(model,
                                                                                     "cpu")


def _noisy(ctx: RunContext) -> dict[str, Any]:
    from neurips18.coding import FeedbackChannel

    cfg: Config = ctx.config
    out = {}
    for fb_key, budget in cfg.noisy_max_bits.items():
        fb = float(fb_key)

        def one(fb: float = fb, budget: int = budget) -> dict:
            model = _to_device(_official(_OFFICIAL_NOISY[fb]), ctx)
            return _sim(model, FeedbackChannel(0.0, fb), f"noisy{fb}", ctx.seed, budget, cfg)

        out[f"{fb:g}"] = ctx.cached(f"noisy_{fb:g}", one)
    return out


def _ours(ctx: RunContext) -> dict[str, Any]:
    from neurips18.coding import FeedbackChannel
    from neurips18.coding.pretrained import available, load_pretrained

    cfg: Config = ctx.config
    out: dict[str, Any] = {"available": available(), "models": {}}
    for snr_key, budget in cfg.ours_max_bits.items():
        snr = float(snr_key)
        if snr not in out["available"]:
            continue

        def one(snr: float = snr, budget: int = budget) -> dict:
            model = _to_device(load_pretrained(snr), ctx)
            r = _sim(model, FeedbackChannel(snr), f"ours{snr}", ctx.seed, budget, cfg)
            rec = model.training_record
            r["training"] = {k: rec.get(k) for k in ("blocks", "cpu_seconds", "schedule",
                                                     "command", "loss_per_phase",
                                                     "initial_model",
                                                     "cpu_seconds_with_initial")}
            return r

        out["models"][f"{snr:g}"] = ctx.cached(f"ours_{snr:g}", one)
    return out


def _train_small(ctx: RunContext) -> dict[str, Any]:
    import torch

    from neurips18.coding import Deepcode, FeedbackChannel, TrainingPhase, train_deepcode

    cfg: Config = ctx.config
    g = torch.Generator().manual_seed(_seed(ctx.seed, "train"))
    model = _to_device(Deepcode(50, cfg.train_hidden, generator=g), ctx)
    sched = (TrainingPhase(cfg.train_steps * 200, 200, 0.02),)
    model = train_deepcode(0.0, hidden=cfg.train_hidden, schedule=sched, generator=g,
                           calibration_blocks=5000, progress=False, model=model,
                           device=ctx.device)
    r = _sim(model, FeedbackChannel(0.0), "trained-small", ctx.seed, 50_000, cfg)
    r["blocks"] = cfg.train_steps * 200
    r["train_cpu_seconds"] = model.training_record["cpu_seconds"]
    return r


def _lengths(ctx: RunContext) -> dict[str, Any]:
    from neurips18.coding import FeedbackChannel

    cfg: Config = ctx.config
    out = {}
    base = _OFFICIAL_NOISELESS[_model_for(cfg.length_snr_db)]
    for k in (50, *cfg.lengths):

        def one(k: int = k) -> dict:
            model = _to_device(_official(base).with_block_length(k), ctx)
            return _sim(model, FeedbackChannel(cfg.length_snr_db), f"length{k}", ctx.seed,
                        cfg.length_max_bits, cfg)

        out[str(k)] = ctx.cached(f"length_{k}", one)
    return out


def run(ctx: RunContext) -> dict[str, Any]:
    data: dict[str, Any] = {"curve": _curve(ctx)}
    data["noisy"] = _noisy(ctx) if ctx.has("official") else {}
    data["ours"] = _ours(ctx)
    data["train_small"] = ctx.cached("train_small", lambda: _train_small(ctx))
    data["lengths"] = _lengths(ctx) if ctx.has("official") else {}
    return data


# ----------------------------------------------------------------------------- judge
def judge(data: dict[str, Any], cfg: Config) -> Judgement:
    rows = []
    curve = data["curve"]
    dc, tb = curve["deepcode"], curve["turbo"]
    notes = [
        "SNR axis: unit average power per channel symbol, sigma = 10^(-SNR/20) (the paper's "
        "axis); each result records Eb/N0 with the code's exact rate (Deepcode 50/153, turbo "
        "50/162, SK 50/150, BPSK 1).",
        "BER intervals are 95 % Clopper-Pearson intervals on counts divided by the design "
        "effect (bit errors cluster within blocks; blocks are independent). Ratios use the "
        "conditional binomial interval for the ratio of two rates on those counts; "
        "'lower bound >= target' means the claim holds with 95 % confidence.",
        "Consistency with the brief's measurements (the official models, Sionna's turbo) is "
        "a two-sample exact test of equal rates (conditional binomial): the brief's values "
        "are Monte-Carlo estimates too, their sample the bits the brief gives (noiseless "
        "-1 and 0 dB) or else its stated rule of ~100 bit errors per point (100 errors over "
        "100 / BER bits); both samples divided by the design effect measured here. p >= 0.05 "
        "means no detectable difference.",
        "Schalkwijk-Kailath variants: 'ideal' = float64 arithmetic, noiseless feedback; "
        "'float32' = the same scheme in float32 (a 2^50-point PAM needs ~50 bits of "
        "resolution); 'noisy-feedback' = float64 with an AWGN feedback link at "
        f"{cfg.sk_feedback_snr_db:g} dB. Each uses 150 channel uses for 50 bits.",
        "Deepcode at an SNR between the official models' training SNRs uses the model trained "
        "at the nearest SNR below (chosen in advance), with its encoder normalisation and "
        "decoder batch-norm statistics measured again at that SNR (Deepcode.calibrate, "
        f"{CALIBRATION_BLOCKS:,} blocks) so that it sends unit power there.",
    ]
    powers = {k: r["power"] for k, r in curve.get("deepcode", {}).items()
              if r.get("power") is not None}
    if powers:
        off = sorted((float(k), p) for k, p in powers.items() if abs(p - 1.0) > 0.02)
        notes.append(
            "Deepcode's average power per symbol, measured at every curve point (simulate_ber's"
            f" 'power'): {min(powers.values()):.3f} to {max(powers.values()):.3f}" + (
                "; off 1 at " + ", ".join(
                    f"{k:g} dB ({p:.3f}: effective SNR {k + 10 * math.log10(max(p, 1e-12)):.2f}"
                    " dB)" for k, p in off) if off else "") + ".")
    if not curve.get("turbo_installed", True):
        notes.append(f"Sionna turbo rows: {_ANCHOR_MISSING}.")
    # official vs the brief
    for snr, (ref, ref_bits) in _BRIEF_NOISELESS.items():
        r = dc.get(f"{snr:g}")
        if r is None:
            continue
        p, what = _vs_brief(r, ref, ref_bits)
        rows.append(REFERENCES.row("official_vs_brief", p, snr=snr, ber=r["ber"],
                                   lo=r["ber_interval"][0], hi=r["ber_interval"][1],
                                   err=r["n_errors"], bits=r["n_bits"], bref=ref,
                                   ref_bits=what))
    for fb_key, r in data["noisy"].items():
        ref = _BRIEF_NOISY[float(fb_key)]
        p, what = _vs_brief(r, ref, None)
        rows.append(REFERENCES.row("noisy_vs_brief", p, fb=float(fb_key), ber=r["ber"],
                                   lo=r["ber_interval"][0], hi=r["ber_interval"][1],
                                   err=r["n_errors"], bits=r["n_bits"], bref=ref,
                                   ref_bits=what))
    # headline ratios
    for snr, key, enabled in ((0.0, "turbo_ratio_100", cfg.claims_0db),
                              (0.5, "turbo_ratio_1000", cfg.claims_0p5db)):
        d, t = dc.get(f"{snr:g}"), tb.get(f"{snr:g}")
        if d is None:
            continue
        if t is None:
            rows.append(REFERENCES.row("turbo_ratio", None, snr=snr, tb=math.nan,
                                       db=d["ber"], target=100 if snr == 0 else 1000))
            continue
        lo = ratio_lower(t, d)
        rk = key if enabled else "turbo_ratio"
        rows.append(REFERENCES.row(rk, lo, snr=snr, tb=t["ber"], db=d["ber"],
                                   target=100 if snr == 0 else 1000))
    # SK
    d0 = dc.get("0")
    sk = curve["sk"]
    if d0 is not None:
        for v in ("float32", "noisy-feedback"):
            s0 = sk[v]["0"]
            if v == "noisy-feedback" and "20" in data["noisy"]:
                den = data["noisy"]["20"]  # Deepcode trained and run with 20 dB feedback
                name = f"SK, feedback {cfg.sk_feedback_snr_db:g} dB"
            else:
                den, name = d0, f"SK ({v})"
            rows.append(REFERENCES.row("sk_beaten", ratio_lower(s0, den), sk=name,
                                       skb=s0["ber"], db=den["ber"]))
    for snr_key, s in sk["ideal"].items():
        d = dc.get(snr_key)
        rows.append(REFERENCES.row("sk_ideal", s["ber_interval"][1], snr=float(snr_key),
                                   err=s["n_errors"], bits=s["n_bits"],
                                   db=math.nan if d is None else d["ber"]))
    for snr_key, u in curve["uncoded"].items():
        q = _q(10 ** (float(snr_key) / 20))
        rows.append(REFERENCES.row("uncoded", u["ber"], ref=q, snr=float(snr_key), q=q))
    for snr_key, t in tb.items():
        ref = _BRIEF_TURBO.get(float(snr_key))
        if ref is None:
            continue
        p, what = _vs_brief(t, ref, None)
        rows.append(REFERENCES.row("turbo_vs_brief", p, snr=float(snr_key), ber=t["ber"],
                                   lo=t["ber_interval"][0], hi=t["ber_interval"][1], bref=ref,
                                   ref_bits=what))
    # ours
    ours = data["ours"]
    if not ours["models"]:
        notes.append("No trained model is shipped with the package (neurips18/coding/"
                     "weights/): the rows comparing ours with the official models are absent.")
    for snr_key, o in ours["models"].items():
        f = dc.get(snr_key)
        if f is None:
            continue
        fmt = dict(snr=float(snr_key), ob=o["ber"], lo=o["ber_interval"][0],
                   hi=o["ber_interval"][1], fb=f["ber"])
        if cfg.claims_ours:
            rows.append(REFERENCES.row("ours_vs_official", ratio_upper(o, f), **fmt))
        else:
            rows.append(REFERENCES.row("ours_info", o["ber"], **fmt))
        tr = o.get("training") or {}
        init = tr.get("initial_model") or {}
        chain = (f" (started from the model for {init.get('snr_db')} dB: "
                 f"{tr.get('cpu_seconds_with_initial')} CPU s with its training)"
                 if init else "")
        notes.append(f"Our {snr_key} dB model: {tr.get('blocks')} training blocks, "
                     f"{tr.get('cpu_seconds')} CPU s on one thread{chain}; made by `"
                     f"{_short_command(tr.get('command'))}`{_schedule_note(tr)}.")
    # training from scratch
    ts = data["train_small"]
    u0 = curve["uncoded"].get("0")
    if u0 is not None:
        gain = u0["ber"] / ts["ber"] if ts["ber"] > 0 else math.inf
        ref = REFERENCES["train_gain"]
        row = REFERENCES.row("train_gain", gain, blocks=ts["blocks"], hidden=cfg.train_hidden,
                             tb=ts["ber"], gain=cfg.train_gain_min)
        if cfg.train_gain_min > 0:
            from neurips18.repro.core import compare

            row = compare(row.metric, gain, cfg.train_gain_min,
                          source=ref.source.format(gain=cfg.train_gain_min), tol=0.0,
                          mode="min", key="train_gain")
        rows.append(row)
    # block lengths
    lens = data["lengths"]
    if "50" in lens:
        b50 = lens["50"]
        for k, r in lens.items():
            if k == "50":
                continue
            fmt = dict(snr=cfg.length_snr_db, k=int(k), kb=r["ber"], b50=b50["ber"],
                       lo=r["ber_interval"][0], hi=r["ber_interval"][1])
            if cfg.claims_lengths:
                rows.append(REFERENCES.row("length", ratio_upper(r, b50), **fmt))
            else:
                rows.append(REFERENCES.row("length_info", r["ber"], **fmt))
        notes.append("Other block lengths: the K = 50 model's networks unchanged; the first "
                     "four and last five positions keep their normalisation statistics and "
                     "power weights, the middle positions take the mean of the trained "
                     "middle positions' statistics and weight 1 "
                     "(Deepcode.with_block_length).")
    return Judgement(rows, notes)


def _schedule_note(training: dict[str, Any]) -> str:
    """Which named schedule of ``neurips18.coding.SCHEDULES`` made a model, and how to
    repeat it when the recorded command does not name it."""
    from dataclasses import asdict

    from neurips18.coding import SCHEDULES

    sched = [{"snr_offset_db": 0.0, **p} for p in training.get("schedule") or []]
    for name, phases in SCHEDULES.items():
        if sched == [asdict(p) for p in phases]:
            if "--schedule" in str(training.get("command") or ""):
                return f" (schedule '{name}')"
            return f" (schedule '{name}': add `--schedule {name}` to repeat it)"
    return ""


def _short_command(cmd: Any) -> str:
    if not cmd:
        return "?"
    parts = str(cmd).split()
    if parts and parts[0].endswith("pretrained.py"):
        parts[0] = "python -m neurips18.coding.pretrained"
    # the machine's scratch paths say nothing to a reader: keep the file names
    return " ".join(p.rsplit("/", 1)[-1] if p.startswith("/") else p for p in parts)


def _q(x: float) -> float:
    return 0.5 * math.erfc(x / math.sqrt(2))


# ----------------------------------------------------------------------------- figure
def plot(data: dict[str, Any], fig: Any) -> None:
    curve = data["curve"]
    ax1, ax2, ax3 = (fig.add_subplot(1, 3, i) for i in (1, 2, 3))

    def draw(ax: Any, pts: dict[str, dict], label: str, style: str, x_of: Any = float) -> None:
        # points with errors: the estimate with its 95 % interval, joined by the line; a
        # point with no error: a downward marker at its upper 95 % bound, in the curve's
        # colour and not joined (a bound is not an estimate the line may pass through)
        if not pts:
            return
        items = sorted(pts.items(), key=lambda kv: x_of(kv[0]))
        seen = [(x_of(k), r) for k, r in items if r["n_errors"] > 0]
        zero = [(x_of(k), r["ber_interval"][1]) for k, r in items if r["n_errors"] == 0]
        color = None
        if seen:
            line = ax.errorbar([x for x, _ in seen], [r["ber"] for _, r in seen],
                               yerr=[[r["ber"] - r["ber_interval"][0] for _, r in seen],
                                     [r["ber_interval"][1] - r["ber"] for _, r in seen]],
                               fmt=style, capsize=3, label=label, ms=4)
            color = line[0].get_color()
        if zero:
            ax.plot(*zip(*zero, strict=True), "v", color=color or style[0], ms=6,
                    mfc="none", label=None if seen else f"{label}: no error (95% bound)")

    draw(ax1, curve["deepcode"], "Deepcode (official)", "b-o")
    draw(ax1, {k: v for k, v in data["ours"]["models"].items()}, "Deepcode (ours)", "c--s")
    draw(ax1, curve["turbo"], "turbo (Sionna, 6 MAP)", "r-^")
    for v, st in (("ideal", "k:"), ("float32", "m-."), ("noisy-feedback", "y-.")):
        draw(ax1, curve["sk"].get(v, {}), f"SK ({v})", st)
    draw(ax1, curve["uncoded"], "uncoded BPSK", "g-")
    ax1.set_yscale("log")
    ax1.set(xlabel="SNR (dB, unit power per symbol)", ylabel="BER",
            title="BER, K = 50 (95% intervals; v = no error, its bound)")
    ax1.legend(fontsize=6)
    noisy = data["noisy"]
    draw(ax2, noisy, "Deepcode (official), forward 0 dB", "b-o")
    ax2.set_yscale("log")
    ax2.set(xlabel="feedback SNR (dB)", ylabel="BER", title="noisy feedback")
    lens = data["lengths"]
    draw(ax3, lens, "Deepcode (official)", "b-o", x_of=int)
    ax3.set_xscale("log")
    ax3.set_yscale("log")
    ax3.set(xlabel="block length K", ylabel="BER", title="other block lengths")
    fig.tight_layout()


def _needs_official() -> None:
    from neurips18.datasets import DEEPCODE_OFFICIAL_MODELS, load_deepcode_official

    for name in DEEPCODE_OFFICIAL_MODELS:
        load_deepcode_official(name, download=False)


REPRODUCTION = Reproduction(
    name="deepcode",
    title="Deepcode: Feedback Codes via Deep Learning",
    citation=CITATION,
    capability="coding",
    profiles=PROFILES,
    references=REFERENCES,
    run=run,
    judge=judge,
    plot=plot,
    needs={"official": _needs_official},
    uses_device=True,
    description="Deepcode (official and our trained models) vs LTE turbo (Sionna), "
                "Schalkwijk-Kailath variants and uncoded BPSK: BER/BLER vs SNR, noisy "
                "feedback, other block lengths.",
)
