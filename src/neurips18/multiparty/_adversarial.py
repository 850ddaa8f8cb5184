"""Party-adversarial training (Hayes and Ohrimenko, NeurIPS 2018), on any PyTorch model.

A discriminator ``h`` sees the model's softmax output ``f(x)`` and the one-hot label ``y``
(the attack model of Nasr, Shokri and Houmansadr, CCS 2018) and predicts which party the
record came from. Training alternates, on every minibatch, a step of ``h`` on
``CE(h(f(x), y), party)`` with ``f`` frozen, and a step of ``f`` on

    CE(f(x), y) - lam * CE(h(f(x), y), party)

with ``h`` frozen. At the saddle point ``f``'s outputs carry no information about the party,
so a trend planted by one party cannot be learnt (nor can the party of a record be
recovered from the released model). ``lam = 0`` is plain training: ``f`` then follows
exactly the steps of ordinary minibatch SGD on ``CE(f(x), y)`` with the same batch order.

What the defence can hide is what ``h`` can see. A planted trend is suppressed when it
makes the attacker's records look different in ``(f(x), y)``: confident outputs where the
other parties' records of the same label get hesitant ones. On a task that is predicted
with certainty anyway the attacker's records look like everybody's and the trend survives;
and when the attack changes labels (the attacker's party then holds an excess of label
``l`` on records that look like the other label), the best ``f`` can do is to give the
planted value outputs like those of honest records labelled ``l``, so part of the planted
link remains. A clean-label attack (only the attribute changed) is hidden completely by an
``f`` that ignores the attribute.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from neurips18._validation import Interval, check, check_tensor, invalid

__all__ = ["MLP", "PartyDiscriminator", "TextCNN", "train_adversarial"]


class MLP(nn.Sequential):
    """A fully connected ReLU network ``n_in -> hidden... -> n_out`` (logits out)."""

    def __init__(self, n_in: int, n_out: int, hidden: Sequence[int] = (64, 64)) -> None:
        layers: list[nn.Module] = []
        width = n_in
        for h in hidden:
            layers += [nn.Linear(width, int(h)), nn.ReLU()]
            width = int(h)
        layers.append(nn.Linear(width, n_out))
        super().__init__(*layers)


class PartyDiscriminator(nn.Module):
    """``h``: predicts the party (logits over ``n_parties``) from a model's class
    probabilities and the one-hot true label, through a ReLU MLP of widths ``hidden``."""

    def __init__(self, n_classes: int, n_parties: int, hidden: Sequence[int] = (64,)) -> None:
        super().__init__()
        self.n_classes = int(n_classes)
        self.net = MLP(2 * self.n_classes, int(n_parties), hidden)

    def forward(self, probs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``y``: class indices, or the labels already one-hot (float, like ``probs``)."""
        onehot = y if y.dim() == 2 else F.one_hot(y, self.n_classes).to(probs.dtype)
        return self.net(torch.cat([probs, onehot], dim=1))


class TextCNN(nn.Module):
    """A small 1-D CNN over token ids: embedding, one convolution of ``kernel_size`` with
    ``channels`` filters, ReLU, max over positions, a linear layer to ``n_classes`` logits.
    Id 0 is padding (its embedding stays zero)."""

    def __init__(self, vocabulary_size: int, n_classes: int, *, embedding_dim: int = 64,
                 channels: int = 64, kernel_size: int = 5) -> None:
        super().__init__()
        self.kernel_size = int(kernel_size)
        self.embedding = nn.Embedding(int(vocabulary_size), int(embedding_dim), padding_idx=0)
        self.conv = nn.Conv1d(int(embedding_dim), int(channels), self.kernel_size)
        self.out = nn.Linear(int(channels), int(n_classes))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        if tokens.shape[1] < self.kernel_size:
            tokens = F.pad(tokens, (0, self.kernel_size - tokens.shape[1]))
        e = self.embedding(tokens.long()).transpose(1, 2)
        h = torch.relu(self.conv(e)).amax(dim=2)
        return self.out(h)


def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 4096) -> float:
    was = model.training
    model.eval()
    device = next(model.parameters()).device
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), batch):
            correct += int((model(x[i:i + batch].to(device)).argmax(1).cpu()
                            == y[i:i + batch]).sum())
    model.train(was)
    return 100.0 * correct / max(len(x), 1)


def _disc_accuracy(model: nn.Module, h: nn.Module, x: torch.Tensor, y: torch.Tensor,
                   p: torch.Tensor, m: int = 2048) -> float:
    """h's accuracy at naming the party of (up to) ``m`` of the epoch's records; ``y`` holds
    the labels one-hot, as h gets them in its training steps. Both networks are evaluated
    in eval mode and put back in the mode they were in: a pass in training mode would
    update batch-norm statistics and draw dropout masks from torch's global generator, so
    the monitor would change the model it reports on."""
    modes = [(net, net.training) for net in (model, h)]
    try:
        for net, _ in modes:
            net.eval()
        with torch.no_grad():
            probs = torch.softmax(model(x[:m]), dim=1)
            return float((h(probs, y[:m].to(probs.dtype)).argmax(1) == p[:m]).double().mean())
    finally:
        for net, was in modes:
            net.train(was)


def train_adversarial(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    parties: torch.Tensor,
    *,
    discriminator: nn.Module | None,
    discriminator_optimizer: torch.optim.Optimizer | None,
    lam: float,
    epochs: int,
    batch_size: int,
    generator: torch.Generator,
    discriminator_steps: int = 1,
    n_classes: int | None = None,
    test: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> dict[str, Any]:
    """Train ``model`` (``f``, logits out) against ``discriminator`` (``h``, e.g. a
    :class:`PartyDiscriminator`) for ``epochs`` passes over ``(x, y, parties)``. ``h`` is
    always called as ``h(probabilities, one_hot_labels)`` (two float tensors of shape
    ``(batch, n_classes)``), in its steps and in the accuracy recorded per epoch.

    Each epoch visits the records in a random order drawn from ``generator``
    (``torch.randperm``) in batches of ``batch_size``, dropping the last incomplete batch.
    On each batch ``h`` takes ``discriminator_steps`` steps on the party cross-entropy of
    the detached outputs, then ``f`` one step on ``CE(f(x), y) - lam * CE(h(f(x), y),
    party)``. With ``discriminator=None`` (or ``lam = 0``) ``f``'s steps are plain training
    (``h``, if given, is still trained, as a monitor of what ``f`` leaks).

    ``x`` is a float tensor of features, or the integer token ids of a text model; ``y``
    and ``parties`` are int64 class and party indices. The model and the discriminator must
    be on one device; batches are moved there. With ``test=(x_test, y_test)`` the test
    accuracy (percent) is recorded after every epoch.

    Returns ``{"acc", "curve", "loss", "disc_loss", "disc_acc", "steps", "seconds"}``: the
    last test accuracy, the accuracy after each epoch, and per epoch the mean task loss,
    the mean party cross-entropy of ``h`` and its accuracy at the epoch's end (on up to
    2,048 training records). ``n_classes`` (default: the discriminator's ``n_classes``,
    else ``y.max() + 1``) sizes the one-hot labels given to ``h``.
    """
    lam = check("lam", lam, Interval(float, 0, None))
    n_classes = check("n_classes", n_classes, None, Interval(int, 1, None))
    epochs = check("epochs", epochs, Interval(int, 0, None))
    batch_size = check("batch_size", batch_size, Interval(int, 1, None))
    discriminator_steps = check("discriminator_steps", discriminator_steps,
                                Interval(int, 1, None))
    if not isinstance(generator, torch.Generator):
        raise invalid("generator", generator, "a torch.Generator")
    check_tensor("x", x, floating=x.is_floating_point() if isinstance(x, torch.Tensor)
                 else True)
    n = len(x)
    for name, t in (("y", y), ("parties", parties)):
        check_tensor(name, t, ndim=1, floating=False)
        if len(t) != n:
            raise invalid(name, t, f"one entry per row of x ({n}), got {len(t)}")
    if epochs > 0 and batch_size > n:  # the incomplete batch is dropped: no step at all
        raise invalid("batch_size", batch_size, f"at most the {n} records of x (the last "
                      "incomplete batch is dropped, so no training step would be taken)")
    if (discriminator is None) != (discriminator_optimizer is None):
        raise invalid("discriminator_optimizer", discriminator_optimizer,
                      "given together with discriminator (both or neither)")
    if n_classes is None:
        n_classes = int(getattr(discriminator, "n_classes", 0)) or int(y.max()) + 1
    device = next(model.parameters()).device
    adversarial = discriminator is not None and lam > 0
    curve: list[float] = []
    hist: dict[str, list[float]] = {"loss": [], "disc_loss": [], "disc_acc": []}
    steps = 0
    t0 = time.perf_counter()
    model.train()
    if discriminator is not None:
        discriminator.train()
    disc_params = list(discriminator.parameters()) if discriminator is not None else []
    disc_trainable = [q.requires_grad for q in disc_params]
    for _ in range(epochs):
        perm = torch.randperm(n, generator=generator)
        # one gather per epoch; the batches are then contiguous slices (the same values as
        # indexing with each slice of the permutation)
        xs, ys = x[perm].to(device), y[perm].to(device)
        if discriminator is not None:
            ps = parties[perm].to(device)
            oh = F.one_hot(ys, n_classes).to(torch.get_default_dtype())
        losses: list[torch.Tensor] = []
        d_losses: list[torch.Tensor] = []
        for i in range(0, n - batch_size + 1, batch_size):
            xb, yb = xs[i:i + batch_size], ys[i:i + batch_size]
            optimizer.zero_grad(set_to_none=True)
            logits = model(xb)
            loss = F.cross_entropy(logits, yb)
            losses.append(loss.detach())
            if discriminator is not None:
                pb, ob = ps[i:i + batch_size], oh[i:i + batch_size]
                probs = torch.softmax(logits, dim=1)
                if ob.dtype != probs.dtype:
                    ob = ob.to(probs.dtype)
                detached = probs.detach()
                for _k in range(discriminator_steps):  # h steps, f frozen
                    discriminator_optimizer.zero_grad(set_to_none=True)  # type: ignore[union-attr]
                    h_logits = discriminator(detached, ob)
                    d_loss = F.cross_entropy(h_logits, pb)
                    d_loss.backward()
                    discriminator_optimizer.step()  # type: ignore[union-attr]
                d_losses.append(d_loss.detach())
            if adversarial:  # the f step, against the updated h, which stays fixed
                for q in disc_params:
                    q.requires_grad_(False)
                try:
                    loss = loss - lam * F.cross_entropy(discriminator(probs, ob), pb)
                    loss.backward()
                finally:  # each h parameter gets back its own flag (frozen ones stay so)
                    for q, trainable in zip(disc_params, disc_trainable, strict=True):
                        q.requires_grad_(trainable)
            else:
                loss.backward()
            optimizer.step()
            steps += 1
        nb = len(losses)
        hist["loss"].append(float(torch.stack(losses).mean()) if nb else float("nan"))
        hist["disc_loss"].append(float(torch.stack(d_losses).mean()) if d_losses
                                 else float("nan"))
        hist["disc_acc"].append(_disc_accuracy(model, discriminator, xs, oh, ps)
                                if discriminator is not None else float("nan"))
        if test is not None:
            curve.append(_accuracy(model, *test))
    return {"acc": curve[-1] if curve else None, "curve": curve, **hist, "steps": steps,
            "seconds": time.perf_counter() - t0}
