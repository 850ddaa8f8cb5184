"""Training by maximising the ELBO: minibatches, dynamic binarisation, early stopping on a
validation ELBO, progress bars, and a checkpoint after every epoch that a later ``fit``
resumes from (same data and settings give the same weights as an uninterrupted run)."""

from __future__ import annotations

import contextlib
import copy
import hashlib
import math
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from neurips18._validation import (
    InstanceOf,
    Interval,
    Options,
    as_torch_generator,
    check,
    invalid,
    torch_seeded,
)
from neurips18.hvae._vae import eval_mode

_FORMAT = 1


@dataclass
class TrainResult:
    """What :meth:`Trainer.fit` returns. ``history`` has one entry per epoch run:
    ``epoch``, ``train_elbo`` (mean over the epoch's minibatches, as trained), ``val_elbo``
    (``None`` without validation data) and ``seconds`` (wall time of the epoch).
    The model holds the weights of ``best_epoch`` (the last epoch without validation)."""

    history: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int = 0
    best_val_elbo: float | None = None
    stopped_early: bool = False
    resumed_from: int = 0

    @property
    def epochs_run(self) -> int:
        return len(self.history)

    def seconds_per_epoch(self) -> float:
        ts = [h["seconds"] for h in self.history if h.get("seconds") is not None]
        return sum(ts) / len(ts) if ts else math.nan


def _per_example_elbo(elbo: Any, n: int) -> torch.Tensor:
    """``model.elbo``'s output, refused unless it has one value per example: a batch mean
    (or sum) would still train, but the validation ELBO, summed over batches and divided by
    the number of examples, would come out wrong by the batch size, silently."""
    if not isinstance(elbo, torch.Tensor) or elbo.shape != (n,):
        raise invalid("model.elbo output", elbo,
                      f"a tensor of shape ({n},), one ELBO per example of the batch (not "
                      "their mean or sum)")
    return elbo


def _train_mode(model: nn.Module) -> None:
    """Training mode for the model, except for the submodules the user put in evaluation
    mode inside a model in training mode (a frozen, pretrained encoder with batch
    normalisation keeps its running statistics). ``model.train()`` would switch those on
    too; a model wholly in evaluation mode (e.g. after evaluating it) is switched whole."""
    if not model.training:
        model.train()


class Trainer:
    """Train a :class:`~neurips18.hvae.VAE` or :class:`~neurips18.hvae.HVAE` (any module
    with ``elbo(x, generator=...)`` returning one value per example) by minimising
    ``-mean(elbo)`` over minibatches.

    Parameters
    ----------
    model : nn.Module with ``elbo``
    optimizer : torch.optim.Optimizer or None
        Default: Adamax with lr 5e-4 and eps 1e-7 (the paper's settings).
    batch_size : int
        Default 100.
    max_epochs : int
    patience : int or None
        Stop after this many epochs without a better validation ELBO (needs validation
        data); the best epoch's weights are restored at the end. ``None``: no early stop.
    binarize : bool
        Dynamic binarisation: every minibatch is drawn as Bernoulli(pixel intensity) afresh
        (default ``True``); the validation set, if given, is binarised once, statically.
    checkpoint : path or None
        File written (atomically) after every epoch; ``fit`` resumes from it when it exists
        and matches the model, data and settings (the optimizer's among them, and which of
        the model's parameters it updates), and refuses one that does not, or that holds
        more than ``max_epochs`` epochs.
    progress : bool
        tqdm progress bars (epochs, and minibatches within an epoch).
    generator : torch.Generator or int
        Source of every random draw (shuffling, binarisation, the ELBO's noise). Each epoch
        runs with torch's global generator forked and seeded from its state, so that what
        the model draws from the global generator (dropout) is reproducible and resumes;
        the global generator is left unchanged. A checkpoint holds its run's seed (the
        generator's ``initial_seed()``); resuming it with another seed is refused.
    val_batch_size : int
        Examples per validation ELBO evaluation (default 1000). Its noise is drawn per
        batch, so the validation ELBO (and early stopping) depends on this size too.

    ``fit`` trains in training mode but leaves in evaluation mode any submodule the user
    put there (a frozen normalisation keeps its running statistics); a model wholly in
    evaluation mode is switched to training mode whole.
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer | None = None,
        *,
        batch_size: int = 100,
        max_epochs: int = 100,
        patience: int | None = None,
        binarize: bool = True,
        checkpoint: str | os.PathLike[str] | None = None,
        progress: bool = True,
        generator: Any = 0,
        val_batch_size: int = 1000,
    ) -> None:
        check("model", model, InstanceOf(nn.Module))
        if not callable(getattr(model, "elbo", None)):
            raise invalid("model", model, "a module with an elbo(x, generator=...) method")
        self.model: Any = model
        self.optimizer = check("optimizer", optimizer, InstanceOf(torch.optim.Optimizer), None)
        if self.optimizer is None:
            self.optimizer = torch.optim.Adamax(model.parameters(), lr=5e-4, eps=1e-7)
        else:
            own = {id(p) for p in model.parameters()}
            foreign = sum(id(p) not in own for g in self.optimizer.param_groups
                          for p in g["params"])
            if foreign:  # it would step other tensors and leave the model as it is
                raise invalid("optimizer", self.optimizer,
                              f"an optimizer of the model's parameters; {foreign} of its "
                              "parameters are not the model's")
        self.batch_size = check("batch_size", batch_size, Interval(int, 1, None))
        self.max_epochs = check("max_epochs", max_epochs, Interval(int, 1, None))
        self.patience = check("patience", patience, Interval(int, 1, None), None)
        self.binarize = check("binarize", binarize, Options({True, False}))
        self.checkpoint = None if checkpoint is None else Path(checkpoint)
        self.progress = check("progress", progress, Options({True, False}))
        self.generator = as_torch_generator(generator)
        self._seed = int(self.generator.initial_seed())  # checked against a checkpoint's
        self.val_batch_size = check("val_batch_size", val_batch_size, Interval(int, 1, None))

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _check_data(name: str, x: Any, binarize: bool) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or not torch.is_floating_point(x):
            raise invalid(name, x, "a floating-point torch.Tensor of shape (n, ...)")
        if x.dim() < 2 or x.shape[0] == 0:
            raise invalid(name, x, "a non-empty batch of shape (n, ...)")
        lo, hi = (float(v) for v in torch.aminmax(x))  # one pass over the data
        if not (math.isfinite(lo) and math.isfinite(hi)):  # NaN propagates to both
            raise invalid(name, x, "finite values")
        if binarize and not (lo >= 0.0 and hi <= 1.0):
            raise invalid(name, x, "intensities in [0, 1] for binarisation")
        return x

    def _fingerprint(self, x_train: torch.Tensor, x_val: torch.Tensor | None) -> str:
        h = hashlib.sha256()
        for name, p in self.model.state_dict().items():
            # the dtype too: a checkpoint of a float32 model loaded into model.double()
            # would continue a float32 run in float64 without a word
            h.update(f"{name}:{tuple(p.shape)}:{p.dtype};".encode())
        for t in (x_train, x_val):
            if t is None:
                h.update(b"none;")
                continue
            t = t.detach().cpu().contiguous()
            h.update(f"{tuple(t.shape)}:{t.dtype};".encode())
            # every byte (a sample and the sum let an edit that keeps the sum through)
            h.update(t.reshape(-1).view(torch.uint8).numpy())
        h.update(f"{self.batch_size};{self.patience};{self.binarize};"
                 f"{type(self.optimizer).__name__}".encode())
        return h.hexdigest()

    def _optimizer_settings(self) -> str:
        """The optimizer's hyperparameters (every parameter group's, without its tensors),
        as the user set them: loading a checkpoint's optimizer state replaces them."""
        groups = [{k: v for k, v in g.items() if k != "params"}
                  for g in self.optimizer.param_groups]
        return repr([sorted((k, repr(v)) for k, v in g.items()) for g in groups])

    def _optimizer_params(self) -> list[list[str]]:
        """The model's names of the parameters the optimizer updates, group by group: its
        saved state (momenta, step counts) is matched to parameters by position only."""
        names = {id(p): n for n, p in self.model.named_parameters(remove_duplicate=False)}
        return [[names.get(id(p), "?") for p in g["params"]] for g in self.optimizer.param_groups]

    def _device(self) -> torch.device:
        for p in self.model.parameters():
            return p.device
        return torch.device("cpu")

    def _save(self, state: dict[str, Any]) -> None:
        assert self.checkpoint is not None
        self.checkpoint.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.checkpoint.with_name(f".{self.checkpoint.name}.tmp")
        torch.save(state, tmp)
        os.replace(tmp, self.checkpoint)

    def _load(self, fingerprint: str, settings: str, params: list[list[str]]
              ) -> dict[str, Any] | None:
        if self.checkpoint is None or not self.checkpoint.exists():
            return None
        try:
            state = torch.load(self.checkpoint, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any unreadable file is reported the same way
            raise invalid("checkpoint", str(self.checkpoint),
                          f"a checkpoint written by Trainer ({type(exc).__name__}: {exc})"
                          ) from None
        if not isinstance(state, dict) or state.get("format") != _FORMAT:
            raise invalid("checkpoint", str(self.checkpoint), "a checkpoint written by Trainer")
        # the fingerprint sees parameter shapes only; the modules' description also holds
        # what leaves them unchanged (a flow's n_leapfrog, a dropout rate). Checkpoints
        # written before it was stored are compared by the fingerprint alone.
        # The same holds for the optimizer's hyperparameters (learning rate, weight decay),
        # which its loaded state would replace, and for the validation batch size (the
        # validation ELBO's noise is drawn per batch, and early stopping compares it).
        described = state.get("model_repr", repr(self.model))
        optimizer = state.get("optimizer_settings", settings)
        val_batch_size = state.get("val_batch_size", self.val_batch_size)
        if (state.get("fingerprint") != fingerprint or described != repr(self.model)
                or optimizer != settings or val_batch_size != self.val_batch_size):
            raise invalid("checkpoint", str(self.checkpoint),
                          "a checkpoint of this model (its modules, dtypes and settings, e.g. the "
                          "flow's n_leapfrog), data, batch size, val_batch_size, patience, "
                          "binarisation and optimizer (its type and settings, e.g. the "
                          "learning rate) (delete it to start afresh)")
        # which parameters the optimizer updates: its state is matched by position, so one
        # over other parameters (the encoder frozen this time) failed after the model had
        # been overwritten, and one over others of the same shapes resumed silently with the
        # first run's momenta on the wrong tensors (not stored by older checkpoints)
        theirs = state.get("optimizer_params", params)
        if theirs != params:
            raise invalid("checkpoint", str(self.checkpoint),
                          f"a checkpoint of an optimizer over the same parameters: it updated "
                          f"{_describe_params(theirs)}, this optimizer updates "
                          f"{_describe_params(params)} (delete it to start afresh)")
        seed = state.get("seed", self._seed)  # checkpoints written before it was stored
        if int(seed) != self._seed:
            raise invalid("generator", f"a generator seeded {self._seed}",
                          f"the seed of the run in checkpoint {str(self.checkpoint)!r}, "
                          f"{int(seed)}: resuming would continue that run, not start this "
                          "seed's (delete the checkpoint or pass its seed)")
        return state

    @contextlib.contextmanager
    def _global_rng(self, device: torch.device) -> Iterator[None]:
        """Run an epoch with torch's global generator forked and seeded from the state of
        ``generator`` (read, not drawn from): what the user's networks draw from it (dropout)
        is then replayed by a resumed run, and the caller's global state is left as it was."""
        digest = hashlib.sha256(self.generator.get_state().numpy().tobytes()).digest()
        seed = int.from_bytes(digest[:8], "little") >> 1
        if device.type == "cpu":
            with torch_seeded(seed):  # an accelerator's generator is left alone
                yield
            return
        with torch.random.fork_rng(devices=[device.index or 0], device_type=device.type):
            torch.manual_seed(seed)
            yield

    def _binarize(self, x: torch.Tensor) -> torch.Tensor:
        return torch.bernoulli(x, generator=self.generator) if self.binarize else x

    @torch.no_grad()
    def _validate(self, x_val: torch.Tensor, device: torch.device, seed: int) -> float:
        gen = torch.Generator().manual_seed(seed)  # same noise at every epoch
        total = 0.0
        with eval_mode(self.model):
            for i in range(0, x_val.shape[0], self.val_batch_size):
                xb = x_val[i:i + self.val_batch_size].to(device)
                elbo = _per_example_elbo(self.model.elbo(xb, generator=gen), xb.shape[0])
                total += float(elbo.double().sum())
        return total / x_val.shape[0]

    # ------------------------------------------------------------------ fit
    def fit(self, x_train: torch.Tensor, x_val: torch.Tensor | None = None) -> TrainResult:
        """Train on ``x_train`` (intensities in [0, 1] when binarising), early-stopping on
        ``x_val`` if given. Resumes from ``checkpoint`` when it exists. A non-finite
        training or validation ELBO raises ``FloatingPointError`` (the checkpoint keeps the
        last epoch that finished)."""
        from tqdm.auto import tqdm

        x_train = self._check_data("x_train", x_train, self.binarize)
        if x_val is not None:
            x_val = self._check_data("x_val", x_val, self.binarize)
            if x_val.shape[1:] != x_train.shape[1:]:
                raise invalid("x_val", x_val, f"examples shaped like x_train's "
                              f"{tuple(x_train.shape[1:])}")
        if x_train.shape[0] < self.batch_size:
            raise invalid("x_train", x_train, f"at least batch_size = {self.batch_size} "
                          "examples")
        if self.patience is not None and x_val is None:
            raise invalid("patience", self.patience, "None when no validation data is given")
        device = self._device()
        fingerprint = self._fingerprint(x_train, x_val)
        settings = self._optimizer_settings()
        opt_params = self._optimizer_params()
        state = self._load(fingerprint, settings, opt_params)
        result = TrainResult()
        if state is None:
            start = 0
            val_seed = int(torch.randint(0, 2 ** 62, (1,), generator=self.generator))
            best_state = None
            bad_epochs = 0
        else:
            if int(state["epoch"]) > self.max_epochs:  # it would return more than was asked
                raise invalid("max_epochs", self.max_epochs,
                              f"at least the {int(state['epoch'])} epochs of the checkpoint "
                              f"{str(self.checkpoint)!r} (or another checkpoint file)")
            try:  # first: it checks its groups' sizes before changing anything
                self.optimizer.load_state_dict(state["optimizer"])
            except ValueError as exc:  # an older checkpoint, without optimizer_params
                raise invalid("checkpoint", str(self.checkpoint),
                              f"a checkpoint of this optimizer's parameters ({exc})") from None
            self.model.load_state_dict(state["model"])
            self.generator.set_state(state["generator"])
            start = int(state["epoch"])
            val_seed = int(state["val_seed"])
            best_state = state["best_model"]
            bad_epochs = int(state["bad_epochs"])
            result.history = list(state["history"])
            result.best_epoch = int(state["best_epoch"])
            result.best_val_elbo = state["best_val_elbo"]
            result.stopped_early = bool(state["stopped_early"])
            result.resumed_from = start
        x_val_bin = None
        if x_val is not None:  # static binarisation, reproducible from the seed
            x_val_bin = (torch.bernoulli(x_val, generator=torch.Generator().manual_seed(
                val_seed + 1)) if self.binarize else x_val)
        n = x_train.shape[0]
        n_batches = n // self.batch_size
        epochs = tqdm(range(start + 1, self.max_epochs + 1), desc="epochs", leave=False,
                      disable=not self.progress or result.stopped_early,
                      initial=start, total=self.max_epochs)
        _train_mode(self.model)
        for epoch in epochs:
            if result.stopped_early:
                break
            t0 = time.perf_counter()
            with self._global_rng(device):
                perm = torch.randperm(n, generator=self.generator)
                total = torch.zeros((), dtype=torch.float64)
                batches = tqdm(range(n_batches), desc=f"epoch {epoch}", leave=False,
                               disable=not self.progress)
                for b in batches:
                    idx = perm[b * self.batch_size:(b + 1) * self.batch_size]
                    xb = self._binarize(x_train[idx]).to(device)
                    self.optimizer.zero_grad(set_to_none=True)
                    elbo = _per_example_elbo(self.model.elbo(xb, generator=self.generator),
                                             xb.shape[0]).mean()
                    if not bool(torch.isfinite(elbo)):
                        raise FloatingPointError(
                            f"non-finite ELBO ({float(elbo.detach())}) at epoch {epoch}, "
                            f"minibatch {b + 1}: lower the learning rate or the flow's "
                            "max_step_size, or set its grad_clip")
                    (-elbo).backward()
                    self.optimizer.step()
                    total += elbo.detach().double().cpu()
                train_elbo = float(total) / n_batches
                val = (None if x_val_bin is None
                       else self._validate(x_val_bin, device, val_seed))
            if val is not None and not math.isfinite(val):
                # a NaN compares false with everything: as the first epoch's value it stayed
                # the best for good (later, better epochs never replaced it) and early
                # stopping restored the weights that produced it; +inf would do the same.
                # Refused before the checkpoint is written, which keeps the last good epoch.
                raise FloatingPointError(
                    f"non-finite validation ELBO ({val}) at epoch {epoch}: the model diverges "
                    "on the validation data; lower the learning rate or the flow's "
                    "max_step_size, or set its grad_clip")
            if val is None:
                result.best_epoch = epoch
            elif result.best_val_elbo is None or val > result.best_val_elbo:
                result.best_epoch, result.best_val_elbo = epoch, val
                best_state = copy.deepcopy({k: v.detach().cpu()
                                            for k, v in self.model.state_dict().items()})
                bad_epochs = 0
            else:
                bad_epochs += 1
                if self.patience is not None and bad_epochs >= self.patience:
                    result.stopped_early = True
            result.history.append({"epoch": epoch, "train_elbo": train_elbo, "val_elbo": val,
                                   "seconds": time.perf_counter() - t0})
            epochs.set_postfix(train=f"{train_elbo:.2f}",
                               val="-" if val is None else f"{val:.2f}")
            if self.checkpoint is not None:
                self._save({
                    "format": _FORMAT, "fingerprint": fingerprint, "epoch": epoch,
                    "model_repr": repr(self.model), "optimizer_settings": settings,
                    "optimizer_params": opt_params,
                    "val_batch_size": self.val_batch_size,
                    "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                    "generator": self.generator.get_state(), "seed": self._seed,
                    "val_seed": val_seed,
                    "best_model": best_state, "bad_epochs": bad_epochs,
                    "history": result.history, "best_epoch": result.best_epoch,
                    "best_val_elbo": result.best_val_elbo,
                    "stopped_early": result.stopped_early,
                })
        epochs.close()
        if best_state is not None:
            self.model.load_state_dict(best_state)
        return result


def _describe_params(groups: list[list[str]]) -> str:
    shown = [", ".join(g[:3]) + (f", ... ({len(g)} in all)" if len(g) > 3 else "")
             for g in groups]
    return " | ".join(f"[{g}]" for g in shown) if shown else "nothing"
