"""BER of the shipped Deepcode models beside the authors' models, on the same draws.

For each forward SNR with a shipped model (-1 and 0 dB), ``simulate_ber`` runs our model
and the authors' (``Deepcode.from_official``, the weights in ``NEURIPS18_DATA_DIR``) with
the same generator seed and bit budget, and prints both BERs with their 95 %
Clopper-Pearson intervals and the ratio ours / authors' with a 95 % interval (the share of
our errors among all errors is binomial given their total; exact interval). Also: our
-1 dB model run at 0 dB. One thread. The numbers in ``src/neurips18/coding/weights/README.md``
come from

    NEURIPS18_DATA_DIR=../shared/data python benchmarks/compare_pretrained.py

Usage: python benchmarks/compare_pretrained.py [--seed 7] [--bits-m1 1000000]
       [--bits-0 5000000] [--cross-bits 2000000]
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from neurips18.coding import Deepcode, simulate_ber  # noqa: E402
from neurips18.coding.pretrained import load_pretrained  # noqa: E402
from neurips18.datasets import load_deepcode_official  # noqa: E402

_OFFICIAL = {-1.0: "noiseless_feedback_forward_snr_-1db",
             0.0: "noiseless_feedback_forward_snr_0db"}


def _ber(model, snr: float, bits: int, seed: int):  # type: ignore[no-untyped-def]
    return simulate_ber(model, snr, min_errors=10**12, max_bits=bits, batch_size=1000,
                        generator=seed, progress=False)


def _line(name: str, r) -> str:  # type: ignore[no-untyped-def]
    lo, hi = r.ber_interval
    return (f"  {name:9s} BER {r.ber:.3g} [{lo:.3g}, {hi:.3g}]  ({r.n_errors} errors / "
            f"{r.n_bits} bits, BLER {r.bler:.3g})")


def _ratio(ours, theirs) -> str:  # type: ignore[no-untyped-def]
    from scipy import stats

    a, b = ours.n_errors, theirs.n_errors
    if a + b == 0:
        return "  ratio: no errors in either"
    scale = theirs.n_bits / ours.n_bits
    lo = stats.beta.ppf(0.025, a, b + 1) if a else 0.0
    hi = stats.beta.ppf(0.975, a + 1, b) if b else 1.0
    point = (ours.ber / theirs.ber) if theirs.n_errors else float("inf")
    up = hi / (1 - hi) * scale if hi < 1 else float("inf")
    return f"  ratio ours / authors' {point:.3g}, 95 % [{lo / (1 - lo) * scale:.3g}, {up:.3g}]"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--bits-m1", type=int, default=1_000_000)
    ap.add_argument("--bits-0", type=int, default=5_000_000)
    ap.add_argument("--cross-bits", type=int, default=2_000_000)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    budget = {-1.0: args.bits_m1, 0.0: args.bits_0}
    for snr, bits in budget.items():
        ours = _ber(load_pretrained(snr), snr, bits, args.seed)
        theirs = _ber(Deepcode.from_official(load_deepcode_official(_OFFICIAL[snr],
                                                                    download=False)),
                      snr, bits, args.seed)
        print(f"forward SNR {snr:g} dB")
        print(_line("ours", ours))
        print(_line("authors'", theirs))
        print(_ratio(ours, theirs))
    cross = _ber(load_pretrained(-1.0), 0.0, args.cross_bits, args.seed)
    print("our -1 dB model at 0 dB")
    print(_line("ours", cross))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
