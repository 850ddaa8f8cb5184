"""The shared train/evaluate loop of repro._common: evaluations as many as asked for."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from neurips18._validation import ValidationError
from neurips18.repro._common.training import train


def _setup(n=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=g)
    y = torch.randint(0, 2, (n,), generator=g)
    model = nn.Linear(3, 2)
    return model, torch.optim.SGD(model.parameters(), lr=0.1), x, y


@pytest.mark.parametrize("evals", [1, 2, 3, 4])
def test_evaluations_per_epoch_as_asked_and_evenly_spaced(evals):
    model, opt, x, y = _setup()
    out = train(model, opt, x, y, epochs=2, batch_size=10, test=(x, y),
                generator=torch.Generator().manual_seed(0), evals_per_epoch=evals)
    assert len(out["curve"]) == len(out["curve_steps"]) == 2 * evals
    assert out["curve_steps"][evals - 1] == 4 and out["curve_steps"][-1] == 8
    assert len(set(out["curve_steps"])) == 2 * evals


@pytest.mark.parametrize("evals", [5, 8, 0, -1, 2.0, True])
def test_more_evaluations_than_batches_are_refused(evals):
    # 40 records in batches of 10: 4 steps per epoch. 5 or 8 evaluations asked for gave 4
    # (the rounded marks coincided), 0 gave none, without a word
    model, opt, x, y = _setup()
    before = model.weight.detach().clone()
    with pytest.raises(ValidationError, match=r"Invalid evals_per_epoch: .*\[1, 4\].*batches"):
        train(model, opt, x, y, epochs=1, batch_size=10, test=(x, y),
              generator=torch.Generator().manual_seed(0), evals_per_epoch=evals)
    # nothing was trained before the refusal
    torch.testing.assert_close(model.weight.detach(), before, rtol=0, atol=0)


def test_evals_per_epoch_does_not_matter_without_a_test_set():
    model, opt, x, y = _setup()
    out = train(model, opt, x, y, epochs=1, batch_size=10,
                generator=torch.Generator().manual_seed(0), evals_per_epoch=8)
    assert out["steps"] == 4 and out["curve"] == []


def test_labels_that_do_not_pair_up_with_the_inputs_are_refused():
    """With 50 labels for 40 inputs the loop trained on the first 40 and evaluate scored
    against them, silently (a longer x than y failed inside torch only in some batches)."""
    from neurips18.repro._common.training import evaluate

    model, opt, x, y = _setup()
    longer = torch.cat([y, y[:10]])
    kw = {"epochs": 1, "batch_size": 10, "generator": torch.Generator().manual_seed(0)}
    with pytest.raises(ValidationError, match=r"Invalid y: .*\(expected 40 labels, one per "
                       r"row of x\)"):
        train(model, opt, x, longer, **kw)
    with pytest.raises(ValidationError, match=r"Invalid test\[1\]: .*40 labels"):
        train(model, opt, x, y, test=(x, longer), **kw)
    with pytest.raises(ValidationError, match=r"Invalid y: .*40 labels"):
        evaluate(model, x, longer, batch_size=64)
