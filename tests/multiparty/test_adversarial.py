"""train_adversarial on PyTorch models: plain training at lam = 0, the discriminator's view,
the defence against a planted trend, and bad input."""

from __future__ import annotations

import pytest
import torch

from neurips18._validation import ValidationError
from neurips18.multiparty import MLP, PartyDiscriminator, TextCNN, train_adversarial


def _data(n=1200, seed=0):
    """Noisy labels (as in default prediction): P(y = 1) = sigmoid(x0 + x1 - 1.5)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 6, generator=g)
    y = (torch.rand(n, generator=g) < torch.sigmoid(x[:, 0] + x[:, 1] - 1.5)).long()
    parties = torch.randint(0, 4, (n,), generator=g)
    return x, y, parties


def _models(seed=0, n_parties=4):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        f = MLP(6, 2, (16, 16))
        h = PartyDiscriminator(2, n_parties, (16,))
    return f, h


@pytest.mark.parametrize("with_discriminator", [False, True])
def test_lam_zero_is_plain_training(with_discriminator):
    """lam = 0 gives, step for step, the weights of the project's plain training loop."""
    from neurips18.repro._common import train

    x, y, parties = _data()
    f1, h = _models()
    f2, _ = _models()
    o1 = torch.optim.SGD(f1.parameters(), lr=0.05, momentum=0.9)
    o2 = torch.optim.SGD(f2.parameters(), lr=0.05, momentum=0.9)
    train(f1, o1, x, y, epochs=3, batch_size=50, generator=torch.Generator().manual_seed(5))
    h_opt = torch.optim.SGD(h.parameters(), lr=0.05) if with_discriminator else None
    out = train_adversarial(f2, o2, x, y, parties, discriminator=h if with_discriminator
                            else None, discriminator_optimizer=h_opt, lam=0.0, epochs=3,
                            batch_size=50, generator=torch.Generator().manual_seed(5))
    assert out["steps"] == 3 * 24
    for a, b in zip(f1.parameters(), f2.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def _planted(n=2000, seed=0):
    """The contamination attack in miniature: party 0 sets feature 5 to 3 (a value others
    almost never have) and the label to 1 in a quarter of its records; elsewhere the label
    depends on features 0 and 1 only. The defence works by making these records look
    like everybody else's in (f(x), y): it needs honest positives that are not predicted
    with confidence, hence the noisy labels."""
    x, y, parties = _data(n, seed)
    own = torch.nonzero(parties == 0).flatten()
    g = torch.Generator().manual_seed(seed + 7)
    hit = own[torch.randperm(len(own), generator=g)[: len(own) // 4]]
    x[hit, 5] = 3.0
    y[hit] = 1
    return x, y, parties


def _fit(lam, seed=0, epochs=20):
    x, y, parties = _planted()
    f, h = _models(seed)
    out = train_adversarial(
        f, torch.optim.SGD(f.parameters(), lr=0.05, momentum=0.9), x, y, parties,
        discriminator=h, discriminator_optimizer=torch.optim.SGD(h.parameters(), lr=0.05,
                                                                 momentum=0.9),
        lam=lam, epochs=epochs, batch_size=64, generator=torch.Generator().manual_seed(seed))
    # the planted link on fresh records: feature 5 set to 3, true label 0
    g = torch.Generator().manual_seed(99)
    probe = torch.randn(4000, 6, generator=g)
    probe = probe[probe[:, 0] + probe[:, 1] < -0.5]
    probe[:, 5] = 3.0
    with torch.no_grad():
        success = float((f(probe).argmax(1) == 1).float().mean())
    return success, out


def test_the_defence_weakens_a_planted_trend():
    """Plain training learns party 0's planted link; the adversarial fit (lam = 30) learns
    it far less (fixed seed; a gap of 0.3 is far outside the seed-to-seed spread)."""
    plain, _ = _fit(0.0)
    defended, _ = _fit(30.0)
    assert plain > 0.6, plain
    assert defended < plain - 0.3, (plain, defended)


def test_the_discriminator_sees_the_party_when_it_leaks():
    _, out = _fit(0.0, epochs=10)
    # with lam = 0 h is trained as a monitor: it beats chance (1/4) on the leaking model
    assert out["disc_acc"][-1] > 0.3
    assert len(out["loss"]) == 10 and out["loss"][-1] < out["loss"][0]


def test_text_cnn_trains_on_token_ids():
    g = torch.Generator().manual_seed(0)
    n, length = 600, 12
    tokens = torch.randint(2, 50, (n, length), generator=g)
    y = (tokens == 7).any(1).long()  # class 1: the document holds token 7
    parties = torch.randint(0, 3, (n,), generator=g)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        f = TextCNN(50, 2, embedding_dim=16, channels=16, kernel_size=3)
        h = PartyDiscriminator(2, 3)
    out = train_adversarial(f, torch.optim.SGD(f.parameters(), lr=0.1, momentum=0.9), tokens,
                            y, parties, discriminator=h,
                            discriminator_optimizer=torch.optim.SGD(h.parameters(), lr=0.1),
                            lam=0.5, epochs=15, batch_size=32, generator=g,
                            test=(tokens, y))
    assert out["acc"] > 90.0
    short = f(torch.randint(2, 50, (4, 2)))  # shorter than the kernel: padded
    assert short.shape == (4, 2)


def test_bad_input():
    x, y, parties = _data(100)
    f, h = _models()
    opt = torch.optim.SGD(f.parameters(), lr=0.1)
    h_opt = torch.optim.SGD(h.parameters(), lr=0.1)
    kw = dict(discriminator=h, discriminator_optimizer=h_opt, epochs=1, batch_size=10,
              generator=torch.Generator())
    with pytest.raises(ValidationError, match="Invalid lam: -1"):
        train_adversarial(f, opt, x, y, parties, lam=-1, **kw)
    with pytest.raises(ValidationError, match="Invalid parties.*one entry per row"):
        train_adversarial(f, opt, x, y, parties[:50], lam=1, **kw)
    bad = x.clone()
    bad[3, 2] = float("nan")
    with pytest.raises(ValidationError, match="Invalid x.*NaN"):
        train_adversarial(f, opt, bad, y, parties, lam=1, **kw)
    with pytest.raises(ValidationError, match="Invalid generator"):
        train_adversarial(f, opt, x, y, parties, lam=1, **{**kw, "generator": 0})
    with pytest.raises(ValidationError, match="discriminator_optimizer"):
        train_adversarial(f, opt, x, y, parties, lam=1, **{**kw, "discriminator_optimizer":
                                                            None})
    # a batch larger than the data took no step at all and returned a NaN loss
    with pytest.raises(ValidationError, match="Invalid batch_size: 101.*at most the 100"):
        train_adversarial(f, opt, x, y, parties, lam=1, **{**kw, "batch_size": 101})


def test_the_shared_training_loop_refuses_a_batch_larger_than_the_data():
    from neurips18.repro._common.training import train

    x, y, _ = _data(30)
    f, _ = _models()
    opt = torch.optim.SGD(f.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="Invalid batch_size: 31"):
        train(f, opt, x, y, epochs=1, batch_size=31, generator=torch.Generator())
    assert train(f, opt, x, y, epochs=1, batch_size=30, generator=torch.Generator())[
        "steps"] == 1


def test_frozen_discriminator_parameters_stay_frozen():
    """The f step freezes h and then gives every parameter of h back its own flag: one the
    caller froze (requires_grad=False) stays frozen and is never moved by h's optimizer."""
    x, y, parties = _data(400)
    f, h = _models()
    first = h.net[0].weight
    first.requires_grad_(False)
    before = first.detach().clone()
    train_adversarial(f, torch.optim.SGD(f.parameters(), lr=0.05), x, y, parties,
                      discriminator=h,
                      discriminator_optimizer=torch.optim.SGD(h.parameters(), lr=0.05),
                      lam=1.0, epochs=2, batch_size=50,
                      generator=torch.Generator().manual_seed(0))
    assert first.requires_grad is False
    torch.testing.assert_close(first, before, rtol=0, atol=0)
    assert all(q.requires_grad for q in h.parameters() if q is not first)


def test_the_discriminator_monitor_leaves_batch_norm_and_dropout_alone():
    """With lam = 0 a discriminator is only a monitor: a model with batch norm and dropout
    takes exactly the steps of the run without one (the end-of-epoch accuracy of h is
    computed in eval mode: no update of the running statistics, no dropout mask drawn),
    and both networks are left in the mode they were in."""
    from torch import nn

    x, y, parties = _data(600)

    def model():
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(3)
            return nn.Sequential(nn.Linear(6, 16), nn.BatchNorm1d(16), nn.ReLU(),
                                 nn.Dropout(0.3), nn.Linear(16, 2))

    runs = []
    for with_h in (False, True):
        f = model()
        _, h = _models()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(11)  # dropout draws from torch's global generator
            train_adversarial(f, torch.optim.SGD(f.parameters(), lr=0.05), x, y, parties,
                              discriminator=h if with_h else None,
                              discriminator_optimizer=torch.optim.SGD(h.parameters(), lr=0.05)
                              if with_h else None, lam=0.0, epochs=3, batch_size=50,
                              generator=torch.Generator().manual_seed(5))
        assert f.training and h.training
        runs.append(f)
    plain, monitored = runs
    assert int(monitored[1].num_batches_tracked) == int(plain[1].num_batches_tracked) == 36
    for a, b in zip(plain.state_dict().values(), monitored.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_a_discriminator_of_one_hot_labels_is_monitored_as_it_is_trained():
    """h gets (probabilities, one-hot labels) in its steps and in the accuracy recorded at
    the end of each epoch: a discriminator written for one-hot labels (it concatenates
    them) trains and is monitored, not refused at the end of the first epoch."""
    from torch import nn

    class OneHotDiscriminator(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(4, 4)

        def forward(self, probs, onehot):
            assert onehot.shape == probs.shape and onehot.dtype == probs.dtype
            return self.lin(torch.cat([probs, onehot], dim=1))

    x, y, parties = _data(400)
    f, _ = _models()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        h = OneHotDiscriminator()
    out = train_adversarial(f, torch.optim.SGD(f.parameters(), lr=0.05), x, y, parties,
                            discriminator=h,
                            discriminator_optimizer=torch.optim.SGD(h.parameters(), lr=0.05),
                            lam=1.0, epochs=2, batch_size=50,
                            generator=torch.Generator().manual_seed(0))
    assert len(out["disc_acc"]) == 2 and all(0.0 <= a <= 1.0 for a in out["disc_acc"])
