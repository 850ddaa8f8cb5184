"""Deepcode decoding throughput vs Sionna's LTE turbo decoder, side by side, one thread.

Decoded bits per CPU-second (float32) of

* ``deepcode-ours``: Deepcode with the PyTorch GRU cell (the models this package trains),
* ``deepcode-official``: Deepcode with the authors' weights (Keras GRU cell), when the
  official weights are in ``NEURIPS18_DATA_DIR``,
* ``turbo``: Sionna's LTE turbo decoder, K = 50, 3GPP interleaver, terminated, 6 MAP
  iterations (the ``coding-anchors`` extra),

each decoding the same number of blocks received at 0 dB (batches of ``--batch`` blocks).
After a warm-up the decoders run in interleaved rounds (ours, turbo; then turbo, ours;
``--rounds`` times); the speed ratio is the median over rounds of the per-round ratios of
CPU time, with its interquartile range, so a busy phase of a shared machine slows both
members of a round. Then 1e6 bits go end to end through ``simulate_ber`` (random bits,
encoding with feedback, the channel, decoding, counting) with the shipped model, timed in
wall-clock and CPU seconds.

Usage: python benchmarks/bench_coding.py [--rounds 7] [--blocks 4000] [--batch 1000]
       [--json results/bench/coding.json]
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from neurips18.coding import Deepcode, FeedbackChannel, simulate_ber  # noqa: E402


def _cpu_rate(decode, received: list[torch.Tensor], k: int) -> float:
    t = time.process_time()
    n = 0
    with torch.no_grad():
        for y in received:
            decode(y)
            n += y.shape[0] * k
    return n / max(time.process_time() - t, 1e-9)


def _iqr(xs: list[float]) -> list[float]:
    q = statistics.quantiles(xs, n=4) if len(xs) > 1 else [xs[0]] * 3
    return [q[0], q[2]]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--blocks", type=int, default=4000)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--e2e-bits", type=int, default=1_000_000)
    ap.add_argument("--json", default="results/bench/coding.json")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    ch = FeedbackChannel(0.0)
    decoders: dict[str, tuple] = {}

    from neurips18.coding.pretrained import available, load_pretrained

    ours = load_pretrained(0.0) if 0.0 in available() else None
    if ours is None:  # an untrained model has the same cost
        ours = Deepcode(50, generator=0)
        ours.calibrate(ch, n_blocks=2000, generator=1)
    decoders["deepcode-ours"] = (ours, ours.decode)
    try:
        from neurips18.datasets import load_deepcode_official

        off = Deepcode.from_official(load_deepcode_official("noiseless_feedback_forward_snr_0db",
                                                            download=False))
        decoders["deepcode-official"] = (off, off.decode)
    except Exception as exc:  # weights absent: column left out
        print(f"official weights not used: {exc}".splitlines()[0])
    turbo_note = None
    try:
        from neurips18.coding import TurboCode

        tc = TurboCode(50, num_iter=6, algorithm="map")
        decoders["turbo"] = (tc, tc.decoder_for(ch))
    except ImportError as exc:
        turbo_note = str(exc)
    received: dict[str, list[torch.Tensor]] = {}
    for name, (code, _) in decoders.items():
        ys = []
        for _ in range(-(-args.blocks // args.batch)):
            bits = torch.randint(0, 2, (args.batch, 50), generator=g)
            with torch.no_grad():
                ys.append(code.transmit(bits, ch, generator=g))
        received[name] = ys
    for name, (_, dec) in decoders.items():  # warm-up
        _cpu_rate(dec, received[name][:1], 50)
    rates: dict[str, list[float]] = {n: [] for n in decoders}
    order = list(decoders)
    for r in range(args.rounds):
        for name in order if r % 2 == 0 else order[::-1]:
            rates[name].append(_cpu_rate(decoders[name][1], received[name], 50))
    out: dict = {"decoded_bits_per_cpu_second": {}}
    for name, xs in rates.items():
        out["decoded_bits_per_cpu_second"][name] = {"median": statistics.median(xs),
                                                    "iqr": _iqr(xs), "rounds": xs}
    if "turbo" in rates:
        for name in ("deepcode-ours", "deepcode-official"):
            if name in rates:
                ratios = [a / b for a, b in zip(rates[name], rates["turbo"], strict=True)]
                out[f"ratio_{name}_vs_turbo"] = {"median": statistics.median(ratios),
                                                 "iqr": _iqr(ratios)}
    else:
        out["turbo"] = turbo_note
    # end to end: 1e6 bits through simulate_ber with the shipped model
    t0, c0 = time.perf_counter(), time.process_time()
    res = simulate_ber(ours, 0.0, min_errors=10**12, max_bits=args.e2e_bits,
                       batch_size=args.batch, generator=1, progress=False)
    out["end_to_end"] = {"bits": res.n_bits, "wall_seconds": time.perf_counter() - t0,
                         "cpu_seconds": time.process_time() - c0, "ber": res.ber,
                         "model": "shipped 0 dB model" if 0.0 in available() else "untrained"}
    out["targets"] = {"decoded_bits_per_cpu_second": 150_000, "ratio_vs_turbo": 1.3,
                      "end_to_end_wall_seconds_for_1e6_bits": 15.0}
    out["setup"] = {"threads": torch.get_num_threads(), "blocks_per_round": args.blocks,
                    "batch": args.batch, "rounds": args.rounds, "snr_db": 0.0,
                    "torch": torch.__version__, "platform": platform.platform(),
                    "command": " ".join(["python", *sys.argv])}
    try:
        from importlib.metadata import version

        out["setup"]["sionna"] = version("sionna-no-rt")
    except Exception:
        out["setup"]["sionna"] = None
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")
    for name, v in out["decoded_bits_per_cpu_second"].items():
        print(f"{name:20s} {v['median']:12,.0f} bits/CPU-s  (IQR {v['iqr'][0]:,.0f}-"
              f"{v['iqr'][1]:,.0f})")
    for k, v in out.items():
        if k.startswith("ratio_"):
            print(f"{k:32s} {v['median']:.2f}x (IQR {v['iqr'][0]:.2f}-{v['iqr'][1]:.2f})")
    e = out["end_to_end"]
    print(f"end to end {e['bits']:,} bits: {e['wall_seconds']:.1f} s wall, "
          f"{e['cpu_seconds']:.1f} s CPU")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
