"""Deepcode models trained by this package, shipped with it.

``load_pretrained(snr_db)`` returns the model trained for noiseless feedback at forward SNR
``snr_db``. Each file records in ``model.training_record`` the schedule, the CPU time and the
command that made it; the command is, for ``snr_db = s``::

    python -m neurips18.coding.pretrained --snr-db s --seed S --schedule NAME \\
        --out <file> [--checkpoint <file>] [--init-snr-db s0]

run on one thread (``OMP_NUM_THREADS=1``); an interrupted run resumes from its checkpoint.
``--schedule`` defaults to ``long``, which made the shipped -1 dB file; the 0 dB file is
that model fine-tuned with ``--schedule finetune --init-snr-db -1`` (each file's
``training_record["schedule"]`` and ``["command"]``; see ``weights/README.md``).
"""

from __future__ import annotations

import argparse
import os
from importlib import resources

__all__ = ["available", "load_pretrained"]

_FILES = {-1.0: "deepcode_snr_-1db.pt", 0.0: "deepcode_snr_0db.pt"}
SEEDS = {-1.0: 101, 0.0: 102}


def available() -> list[float]:
    """Forward SNRs (dB) with a shipped model."""
    root = resources.files("neurips18.coding") / "weights"
    return sorted(s for s, f in _FILES.items() if (root / f).is_file())


def load_pretrained(snr_db: float):  # type: ignore[no-untyped-def]
    """The shipped Deepcode model for noiseless feedback at forward ``snr_db`` dB."""
    import io

    from neurips18._validation import invalid
    from neurips18.coding._deepcode import Deepcode

    try:
        key = float(snr_db)
    except (TypeError, ValueError):
        key = None  # type: ignore[assignment]
    root = resources.files("neurips18.coding") / "weights"
    if key not in _FILES or not (root / _FILES[key]).is_file():
        raise invalid("snr_db", snr_db, f"one of {available()} (the shipped models)")
    return Deepcode.load(io.BytesIO((root / _FILES[key]).read_bytes()))


def main(argv: list[str] | None = None) -> int:
    import torch

    from neurips18.coding._training import SCHEDULES, train_deepcode

    ap = argparse.ArgumentParser(prog="python -m neurips18.coding.pretrained",
                                 description="Train a Deepcode model (noiseless feedback).")
    ap.add_argument("--snr-db", type=float, required=True)
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--schedule", choices=sorted(SCHEDULES), default="long",
                    help="a named schedule of neurips18.coding._training (default: long, "
                         "which made the shipped -1 dB file; the 0 dB one is it fine-tuned "
                         "with --schedule finetune --init-snr-db -1)")
    ap.add_argument("--init-snr-db", type=float, default=None,
                    help="start from the shipped model for this forward SNR (fine-tuning; "
                         "with --schedule finetune)")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    init = None if args.init_snr_db is None else load_pretrained(args.init_snr_db)
    model = train_deepcode(args.snr_db, generator=args.seed, checkpoint=args.checkpoint,
                           schedule=SCHEDULES[args.schedule], progress=not args.no_progress,
                           model=init)
    tmp = args.out + ".tmp"
    model.save(tmp)
    os.replace(tmp, args.out)
    rec = model.training_record
    print(f"saved {args.out}: {rec['blocks']} blocks, {rec['cpu_seconds']} CPU s, "
          f"final losses {rec['loss_per_phase']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
