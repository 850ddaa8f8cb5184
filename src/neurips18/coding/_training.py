"""Training Deepcode end to end on the simulated feedback channel."""

from __future__ import annotations

import copy
import os
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F

from neurips18._validation import Interval, as_torch_generator, check, invalid
from neurips18.coding._channels import FeedbackChannel
from neurips18.coding._deepcode import Deepcode

__all__ = ["DEFAULT_SCHEDULE", "FINETUNE_SCHEDULE", "LONG_SCHEDULE", "SCHEDULES", "TrainingPhase",
           "train_deepcode"]


@dataclass(frozen=True)
class TrainingPhase:
    """``blocks`` training blocks (rounded up to whole mini-batches: ``steps`` batches of
    ``batch_size``, which ``training_record["blocks"]`` counts) at learning rate ``lr``,
    the forward channel at the target SNR plus ``snr_offset_db`` (a curriculum: a negative
    offset trains on a noisier channel than the one the model is for)."""

    blocks: int
    batch_size: int
    lr: float
    snr_offset_db: float = 0.0

    def __post_init__(self) -> None:
        # kept as plain Python numbers: a NumPy one (np.int64 from a config array) went
        # into every checkpoint, which torch.load(weights_only=True) then refused, so a
        # run could not resume from its own file; and Deepcode.save wrote it as a string
        for name, rule in (("blocks", Interval(int, 1, None)),
                           ("batch_size", Interval(int, 2, None)),
                           ("lr", Interval(float, 0.0, 1.0, closed="right")),
                           ("snr_offset_db", Interval(float, -20.0, 20.0))):
            object.__setattr__(self, name, check(name, getattr(self, name), rule))

    @property
    def steps(self) -> int:
        return -(-self.blocks // self.batch_size)


# Adam with global gradient-norm clipping at 1 (the official code's optimiser settings:
# lr 0.02, clipnorm 1), then two tenfold decays with larger batches. The paper's own
# schedule is not public; this one is ours and is recorded in every checkpoint.
DEFAULT_SCHEDULE: tuple[TrainingPhase, ...] = (
    TrainingPhase(80_000, 200, 0.02),
    TrainingPhase(100_000, 500, 0.002),
    TrainingPhase(60_000, 1000, 0.0002),
)

# The long schedule, which made the shipped -1 dB model (neurips18.coding.pretrained; the
# 0 dB one is that model fine-tuned, below): 3.9 million blocks, 13,500 steps, about 1.3
# CPU-hours on one thread. The official code's proportions of learning rates (lr, lr / 10,
# lr / 100, lr / 1000 in about 3 : 2 : 2 : 1), batches growing
# from 100 to 1000 as the rate falls (more steps early, less gradient noise late), and the
# first phase 1 dB below the target SNR: the authors started a model from one trained at a
# lower SNR (their evaluation script's loading chain); here the same idea within one run.
LONG_SCHEDULE: tuple[TrainingPhase, ...] = (
    TrainingPhase(600_000, 100, 0.02, snr_offset_db=-1.0),
    TrainingPhase(800_000, 200, 0.02),
    TrainingPhase(1_000_000, 500, 0.002),
    TrainingPhase(1_000_000, 1000, 0.0002),
    TrainingPhase(500_000, 1000, 0.00002),
)

# Fine-tuning a trained model at a higher SNR (the authors' chain of models, each started
# from the one for the SNR below): 1.8 million blocks, about 0.35 CPU-hours on one thread,
# at the lower rates of the long schedule, all at the target SNR.
FINETUNE_SCHEDULE: tuple[TrainingPhase, ...] = (
    TrainingPhase(600_000, 500, 0.002),
    TrainingPhase(800_000, 1000, 0.0002),
    TrainingPhase(400_000, 1000, 0.00002),
)

SCHEDULES: dict[str, tuple[TrainingPhase, ...]] = {"default": DEFAULT_SCHEDULE,
                                                    "long": LONG_SCHEDULE,
                                                    "finetune": FINETUNE_SCHEDULE}


def _schedule(schedule: Any) -> tuple[TrainingPhase, ...]:
    if not isinstance(schedule, tuple | list) or not schedule:
        raise invalid("schedule", schedule, "a non-empty sequence of TrainingPhase")
    out = []
    for i, p in enumerate(schedule):
        if isinstance(p, TrainingPhase):
            out.append(p)
        elif isinstance(p, tuple | list) and len(p) in (3, 4):
            out.append(TrainingPhase(*p))
        else:
            raise invalid(f"schedule[{i}]", p, "a TrainingPhase or (blocks, batch_size, lr"
                          "[, snr_offset_db])")
    return tuple(out)


def train_deepcode(
    snr_db: float,
    *,
    feedback_snr_db: float | None = None,
    delay: int = 1,
    block_length: int = 50,
    hidden: int = 50,
    schedule: Any = DEFAULT_SCHEDULE,
    generator: Any,
    checkpoint: str | os.PathLike[str] | None = None,
    checkpoint_every: int = 200,
    calibration_blocks: int = 100_000,
    progress: bool = True,
    model: Deepcode | None = None,
    device: Any = "cpu",
) -> Deepcode:
    """Train a Deepcode model for the feedback channel at ``snr_db`` (forward) and
    ``feedback_snr_db`` (``None``: noiseless feedback).

    Each step draws fresh bits and channel noise from ``generator`` (a ``torch.Generator``
    or an int seed), encodes with batch normalisation statistics, decodes, and minimises
    the binary cross-entropy over the ``block_length`` information bits with Adam, the
    global gradient norm clipped at 1. ``schedule`` is a sequence of
    :class:`TrainingPhase` (or ``(blocks, batch_size, lr[, snr_offset_db])`` tuples;
    :data:`DEFAULT_SCHEDULE` (240,000 blocks) is the default, :data:`LONG_SCHEDULE`
    (3.9 million blocks) made the shipped models; :data:`SCHEDULES` names both); a
    phase with an SNR offset trains at ``snr_db + snr_offset_db``. At the end the
    encoder's normalisation statistics and the decoder's batch-norm statistics are measured
    on ``calibration_blocks`` fresh blocks (:meth:`Deepcode.calibrate`).

    ``device``: where the model trains (the draws are made on the CPU); the returned
    model is on the CPU. ``checkpoint``: a file written every ``checkpoint_every`` steps
    (model, optimiser and generator state); a call with the same file and arguments
    (the same seed, or a generator in the same state) resumes from it and gives the same
    model as an uninterrupted run; a file of another channel, model or seed is refused.
    ``model``: start from a copy of these weights (its ``block_length`` and ``hidden``
    must be the ones given, else it is an error; the model passed in is not modified).
    The returned model is in eval mode; its ``training_record`` holds the schedule, the
    seed state, the steps, the loss per phase, the CPU time, the torch version and the
    command line.
    """
    channel = FeedbackChannel(snr_db, feedback_snr_db, delay=delay)
    delay = channel.delay  # checked, as plain Python numbers for the checkpoint's settings
    block_length = check("block_length", block_length, Interval(int, 8, 100_000))
    sched = _schedule(schedule)
    checkpoint_every = check("checkpoint_every", checkpoint_every, Interval(int, 1, None))
    calibration_blocks = check("calibration_blocks", calibration_blocks,
                               Interval(int, 2, None))
    g = as_torch_generator(generator)
    start_state = _digest(g.get_state())  # which draws this call makes, before any
    initial: dict[str, Any] | None = None
    if model is None:
        model = Deepcode(block_length, hidden, generator=g)
    elif not isinstance(model, Deepcode):
        raise invalid("model", model, "a Deepcode model or None")
    elif model.block_length != block_length:
        raise invalid("model", model, f"a model for block_length={block_length}")
    elif model.hidden != check("hidden", hidden, Interval(int, 1, 4096)):
        # the model's own width is what trains; a different hidden= would go unused
        raise invalid("model", model, f"a model with hidden={hidden} (this one has "
                                      f"hidden={model.hidden}; pass hidden={model.hidden})")
    else:
        model = copy.deepcopy(model)  # the caller's model is left as it was
        rec = dict(model.training_record or {})
        initial = {"sha": _state_digest(model),
                   **{k: rec[k] for k in ("snr_db", "feedback_snr_db", "blocks",
                                          "cpu_seconds", "command", "source") if k in rec}}
    device = torch.device(device)
    model.to(device)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=sched[0].lr)
    settings = {"snr_db": channel.forward_snr_db, "feedback_snr_db": channel.feedback_snr_db,
                "delay": delay, "block_length": block_length, "hidden": model.hidden,
                "schedule": [asdict(p) for p in sched], "generator_start_sha": start_state}
    if initial is not None:  # a run from given weights resumes only from the same weights
        settings["initial_model_sha"] = initial["sha"]
    state: dict[str, Any] = {"phase": 0, "step": 0, "losses": [[] for _ in sched],
                             "cpu_seconds": 0.0}
    losses_len = len(sched)
    if checkpoint is not None:
        if not isinstance(checkpoint, str | os.PathLike):
            raise invalid("checkpoint", checkpoint, "a file path or None")
        parent = os.path.dirname(os.path.abspath(os.fspath(checkpoint)))
        if not os.path.isdir(parent) or os.path.isdir(checkpoint):
            # found out at the first save otherwise, checkpoint_every steps into the run
            raise invalid("checkpoint", checkpoint, "a file in an existing directory")
    if checkpoint is not None and os.path.isfile(checkpoint):
        try:
            saved = torch.load(checkpoint, map_location="cpu", weights_only=True)
        except Exception as exc:  # a truncated or foreign file
            raise ValueError(f"checkpoint {os.fspath(checkpoint)!r} is not a readable "
                             f"train_deepcode checkpoint ({type(exc).__name__}: {exc}); "
                             "remove it or use another file") from None
        if not isinstance(saved, dict) or not _resumable(saved.get("settings"),
                                                         saved.get("state"), settings):
            old = saved.get("settings") if isinstance(saved, dict) else None
            differ = sorted(k for k in settings if not isinstance(old, dict)
                            or old.get(k, settings[k]) != settings[k])
            hint = (" (generator_start_sha: another seed, or a generator in another state "
                    "than at the first call)" if "generator_start_sha" in differ else "")
            raise ValueError(f"checkpoint {os.fspath(checkpoint)!r} was written with other "
                             f"settings ({old}; differing: {differ}{hint}); use another "
                             "file")
        model.load_state_dict(saved["model"])
        opt.load_state_dict(saved["optimizer"])
        g.set_state(saved["generator"])
        state = saved["state"]
        state["losses"] = (list(state["losses"]) + [[] for _ in sched])[:losses_len]
        if state["phase"] < len(sched) and state["step"] >= sched[state["phase"]].steps:
            state["phase"], state["step"] = state["phase"] + 1, 0

    def save() -> None:
        if checkpoint is None:
            return
        tmp = f"{os.fspath(checkpoint)}.tmp"
        torch.save({"settings": settings, "model": model.state_dict(),
                    "optimizer": opt.state_dict(), "generator": g.get_state(),
                    "state": state}, tmp)
        os.replace(tmp, checkpoint)

    from tqdm.auto import tqdm

    K, P = block_length, block_length + 1
    dt = model.encoder_out.weight.dtype
    total = sum(p.steps for p in sched)
    done = sum(p.steps for p in sched[: state["phase"]]) + state["step"]
    bar = tqdm(total=total, initial=done, disable=not progress, desc="train Deepcode",
               leave=False)
    t_cpu = time.process_time()
    for pi in range(state["phase"], len(sched)):
        phase = sched[pi]
        for grp in opt.param_groups:
            grp["lr"] = phase.lr
        ch = channel if phase.snr_offset_db == 0.0 else FeedbackChannel(
            channel.forward_snr_db + phase.snr_offset_db, feedback_snr_db, delay=delay)
        acc, n_acc = 0.0, 0
        for step in range(state["step"], phase.steps):
            B = phase.batch_size
            # bits and noise in the model's own dtype (as transmit and calibrate draw
            # them), not torch's default one: a float64 model trained on float32 noise,
            # and a float32 model under a float64 default dtype failed in the encoder RNN
            bits = torch.randint(0, 2, (B, K), generator=g).to(dt)
            real = ch.sample(B, P, generator=g, dtype=dt)
            logits = model(bits.to(device), real.feedback.to(device), real.noise.to(device))
            loss = F.binary_cross_entropy_with_logits(logits, bits.to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            acc += float(loss.detach())
            n_acc += 1
            bar.update(1)
            if (step + 1) % checkpoint_every == 0 or step + 1 == phase.steps:
                state["losses"][pi].append(acc / n_acc)
                acc, n_acc = 0.0, 0
                state["step"] = step + 1
                state["cpu_seconds"] += time.process_time() - t_cpu
                t_cpu = time.process_time()
                bar.set_postfix(loss=f"{state['losses'][pi][-1]:.4g}")
                save()
        state["phase"], state["step"] = pi + 1, 0
        save()
    bar.close()
    state["cpu_seconds"] += time.process_time() - t_cpu
    t0 = time.process_time()
    model.to("cpu").calibrate(channel, n_blocks=calibration_blocks, generator=g)
    model.training_record = {
        **settings,
        "seed_state_sha": _digest(g.get_state()),
        "steps": total,
        "blocks": sum(p.steps * p.batch_size for p in sched),
        "loss_per_phase": [(ls[-1] if ls else None) for ls in state["losses"]],
        "loss_curve": state["losses"],
        "optimizer": "Adam, global gradient-norm clipping 1.0",
        "calibration_blocks": calibration_blocks,
        "cpu_seconds": round(state["cpu_seconds"] + time.process_time() - t0, 1),
        "threads": torch.get_num_threads(),
        "torch": str(torch.__version__),
        "command": " ".join(sys.argv),
    }
    if initial is not None:
        # where the weights started, and the CPU time of the whole chain (this run's plus
        # the starting model's, when its record states it)
        model.training_record["initial_model"] = initial
        before = initial.get("cpu_seconds")
        if isinstance(before, int | float):
            model.training_record["cpu_seconds_with_initial"] = round(
                model.training_record["cpu_seconds"] + float(before), 1)
    return model


def _resumable(old: Any, state: Any, new: dict[str, Any]) -> bool:
    """Whether a checkpoint written with settings ``old`` continues a run with settings
    ``new``: the same channel and model, and a schedule that agrees with the old one on
    every step already taken (the phases after the current one may differ, and the current
    phase may end at any step not yet passed). Such a run equals an uninterrupted run with
    the new schedule."""
    if not isinstance(old, dict) or not isinstance(state, dict):
        return False
    # the generator's state at the start (another seed is another run); checkpoints
    # written before it was recorded are compared on the rest
    skip = {"schedule"} | ({"generator_start_sha"} - old.keys())
    if {k: v for k, v in old.items() if k not in skip} != \
            {k: v for k, v in new.items() if k not in skip}:
        return False
    a = [{"snr_offset_db": 0.0, **p} for p in old["schedule"]]
    b = [{"snr_offset_db": 0.0, **p} for p in new["schedule"]]
    ph, st = int(state["phase"]), int(state["step"])
    if ph > len(b) or a[:ph] != b[:ph]:
        return False
    if ph < len(a) and st > 0:
        if ph >= len(b):
            return False
        cur_a, cur_b = a[ph], b[ph]
        steps_b = -(-cur_b["blocks"] // cur_b["batch_size"])
        same = all(cur_a[k] == cur_b[k] for k in ("batch_size", "lr", "snr_offset_db"))
        return same and st <= steps_b and st * cur_b["batch_size"] <= cur_b["blocks"] + \
            cur_b["batch_size"]
    return True


def _state_digest(model: torch.nn.Module) -> str:
    import hashlib

    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def _digest(t: torch.Tensor) -> str:
    import hashlib

    return hashlib.sha256(t.numpy().tobytes()).hexdigest()[:16]
