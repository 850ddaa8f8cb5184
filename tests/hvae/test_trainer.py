"""The trainer: resuming a checkpoint gives the weights of an uninterrupted run; early
stopping restores the best epoch; bad input and mismatched checkpoints are refused."""

from __future__ import annotations

import pytest
import torch

from neurips18._validation import ValidationError
from neurips18.hvae import HVAE, VAE, HamiltonianFlow, MLPDecoder, MLPEncoder, Trainer


def _data(n=240, d=20, seed=0):
    g = torch.Generator().manual_seed(seed)
    protos = torch.rand(3, d, generator=g)
    return protos[torch.randint(0, 3, (n,), generator=g)].clamp(0.05, 0.95)


def _model(kind="hvae", seed=0):
    enc = MLPEncoder(3, input_dim=20, hidden=(16,), generator=seed)
    dec = MLPDecoder(3, output_dim=20, hidden=(16,), generator=seed + 1)
    if kind == "vae":
        return VAE(enc, dec)
    return HVAE(enc, dec, HamiltonianFlow(3, 2, tempering="free"))


def _weights(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("kind", ["vae", "hvae"])
def test_resumed_training_equals_uninterrupted(kind, tmp_path):
    x, xv = _data(), _data(60, seed=1)
    full = _model(kind)
    res_full = Trainer(full, batch_size=20, max_epochs=3, patience=5, progress=False,
                       generator=7).fit(x, xv)

    ckpt = tmp_path / "run.pt"
    part = _model(kind)
    Trainer(part, batch_size=20, max_epochs=1, patience=5, progress=False, generator=7,
            checkpoint=ckpt).fit(x, xv)
    # a new process: a freshly initialised model (other weights), a new trainer
    resumed = _model(kind, seed=123)
    res = Trainer(resumed, batch_size=20, max_epochs=3, patience=5, progress=False,
                  generator=7, checkpoint=ckpt).fit(x, xv)
    assert res.resumed_from == 1 and res.epochs_run == 3
    a, b = _weights(full), _weights(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)
    strip = [{k: v for k, v in h.items() if k != "seconds"} for h in res.history]
    assert strip == [{k: v for k, v in h.items() if k != "seconds"} for h in res_full.history]
    # running the finished command again trains nothing and returns the same state
    again = _model(kind, seed=5)
    res2 = Trainer(again, batch_size=20, max_epochs=3, patience=5, progress=False,
                   generator=7, checkpoint=ckpt).fit(x, xv)
    assert res2.resumed_from == 3 and all(torch.equal(a[k], _weights(again)[k]) for k in a)


def test_interrupted_mid_epoch_resumes_from_the_last_epoch(tmp_path, monkeypatch):
    x = _data()
    ckpt = tmp_path / "c.pt"
    ref = _model()
    Trainer(ref, batch_size=20, max_epochs=2, progress=False, generator=3).fit(x)
    model = _model()
    calls = {"n": 0}
    real = HVAE.elbo

    def flaky(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 12 + 5:  # epoch 2, minibatch 5
            raise KeyboardInterrupt
        return real(self, *a, **k)

    monkeypatch.setattr(HVAE, "elbo", flaky)
    with pytest.raises(KeyboardInterrupt):
        Trainer(model, batch_size=20, max_epochs=2, progress=False, generator=3,
                checkpoint=ckpt).fit(x)
    monkeypatch.setattr(HVAE, "elbo", real)
    model2 = _model(seed=9)
    res = Trainer(model2, batch_size=20, max_epochs=2, progress=False, generator=3,
                  checkpoint=ckpt).fit(x)
    assert res.resumed_from == 1
    a, b = _weights(ref), _weights(model2)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_early_stopping_restores_the_best_epoch():
    x, xv = _data(), _data(60, seed=1)
    model = _model("vae")
    opt = torch.optim.SGD(model.parameters(), lr=0.5)  # large steps: validation gets worse
    res = Trainer(model, opt, batch_size=20, max_epochs=40, patience=2, progress=False,
                  generator=0).fit(x, xv)
    vals = [h["val_elbo"] for h in res.history]
    assert res.best_val_elbo == max(vals)
    assert res.best_epoch == 1 + vals.index(max(vals))
    if res.stopped_early:
        assert res.epochs_run == res.best_epoch + 2
    # the model holds the best epoch's weights: its validation ELBO is the best one
    tr = Trainer(model, batch_size=20, progress=False)
    xv_bin = torch.bernoulli(xv, generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(model.elbo(xv_bin, generator=0)).all()
    assert tr.max_epochs == 100


def test_trainer_refuses_bad_input_and_foreign_checkpoints(tmp_path):
    x = _data()
    model = _model()
    with pytest.raises(ValidationError, match="Invalid x_train"):
        Trainer(model, progress=False).fit(x * 2)
    with pytest.raises(ValidationError, match="Invalid x_train"):
        Trainer(model, progress=False).fit(torch.full((200, 20), float("nan")))
    for bad in (float("nan"), float("inf"), -float("inf")):  # one bad value among many
        xb = x.clone()
        xb[7, 3] = bad
        with pytest.raises(ValidationError, match="Invalid x_train: .*finite values"):
            Trainer(model, binarize=False, progress=False).fit(xb)
    with pytest.raises(ValidationError, match="Invalid x_train"):
        Trainer(model, batch_size=500, progress=False).fit(x)
    with pytest.raises(ValidationError, match="Invalid patience"):
        Trainer(model, patience=3, progress=False).fit(x)
    with pytest.raises(ValidationError, match="Invalid x_val"):
        Trainer(model, progress=False).fit(x, torch.rand(10, 7))
    with pytest.raises(ValidationError, match="Invalid batch_size"):
        Trainer(model, batch_size=0)
    with pytest.raises(ValidationError, match="Invalid model"):
        Trainer(torch.nn.Linear(2, 2))
    ckpt = tmp_path / "c.pt"
    Trainer(model, batch_size=20, max_epochs=1, progress=False, checkpoint=ckpt).fit(x)
    with pytest.raises(ValidationError, match="Invalid checkpoint"):  # other data
        Trainer(_model(), batch_size=20, max_epochs=2, progress=False,
                checkpoint=ckpt).fit(_data(seed=5))
    with pytest.raises(ValidationError, match="Invalid checkpoint"):  # other batch size
        Trainer(_model(), batch_size=40, max_epochs=2, progress=False, checkpoint=ckpt).fit(x)
    with pytest.raises(ValidationError, match="Invalid checkpoint"):  # other dtype
        Trainer(_model().double(), batch_size=20, max_epochs=2, progress=False,
                checkpoint=ckpt).fit(x)
    ckpt.write_bytes(b"not a checkpoint")
    with pytest.raises(ValidationError, match="Invalid checkpoint"):
        Trainer(_model(), batch_size=20, progress=False, checkpoint=ckpt).fit(x)


def test_non_finite_elbo_stops_with_a_clear_error():
    x = _data()
    model = _model("vae")
    with torch.no_grad():
        model.decoder.out.weight.fill_(float("inf"))
    with pytest.raises(FloatingPointError, match="non-finite ELBO"):
        Trainer(model, batch_size=20, max_epochs=1, progress=False).fit(x)


def test_dynamic_binarisation_draws_fresh_pixels_and_training_improves():
    x = _data(200)
    model = _model()
    seen = []
    real = HVAE.elbo

    def spy(self, xb, **k):
        seen.append(xb.clone())
        return real(self, xb, **k)

    HVAE.elbo = spy
    try:
        Trainer(model, batch_size=200, max_epochs=2, progress=False, generator=0).fit(x)
    finally:
        HVAE.elbo = real
    assert all(set(torch.unique(b).tolist()) <= {0.0, 1.0} for b in seen)
    # column sums do not depend on the order: they differ because the pixels are redrawn
    assert not torch.equal(seen[0].sum(0), seen[1].sum(0))
    assert abs(float(seen[0].mean() - x.mean())) < 0.02
    vae = _model("vae")
    res = Trainer(vae, batch_size=20, max_epochs=5, progress=False, generator=1).fit(x)
    assert res.history[-1]["train_elbo"] > res.history[0]["train_elbo"]


def test_validation_gives_every_submodule_its_own_mode_back(monkeypatch):
    x, xv = _data(), _data(60, seed=1)
    model = _model("vae")
    seen = []
    real = Trainer._validate

    def spy(self, *a, **k):
        model.encoder.layers[0].eval()  # a user freezing one layer during training
        out = real(self, *a, **k)
        seen.append((model.training, model.encoder.layers[0].training))
        return out

    monkeypatch.setattr(Trainer, "_validate", spy)
    Trainer(model, batch_size=20, max_epochs=1, progress=False).fit(x, xv)
    assert seen == [(True, False)]


class _DropoutEncoder(MLPEncoder):  # a user encoder with dropout (torch's global generator)
    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.drop = torch.nn.Dropout(0.2)

    def forward(self, x):
        return super().forward(self.drop(x))


def _dropout_model(seed=0):
    return HVAE(_DropoutEncoder(3, input_dim=20, hidden=(16,), generator=seed),
                MLPDecoder(3, output_dim=20, hidden=(16,), generator=seed + 1),
                HamiltonianFlow(3, 2))


def test_a_model_with_dropout_resumes_and_repeats_digit_for_digit(tmp_path):
    """Dropout draws from torch's global generator, which the trainer's generator did not
    control: a resumed run (or a second process, whose global seed differs) silently gave
    other weights than an uninterrupted run."""
    x, xv = _data(), _data(60, seed=1)
    torch.manual_seed(1)
    full = _dropout_model()
    state = torch.random.get_rng_state()
    Trainer(full, batch_size=20, max_epochs=3, progress=False, generator=7).fit(x, xv)
    assert torch.equal(torch.random.get_rng_state(), state)  # the caller's state untouched
    ckpt = tmp_path / "c.pt"
    torch.manual_seed(2)
    Trainer(_dropout_model(), batch_size=20, max_epochs=1, progress=False, generator=7,
            checkpoint=ckpt).fit(x, xv)
    torch.manual_seed(3)  # another process: another global seed
    resumed = _dropout_model(seed=5)
    res = Trainer(resumed, batch_size=20, max_epochs=3, progress=False, generator=7,
                  checkpoint=ckpt).fit(x, xv)
    assert res.resumed_from == 1
    a, b = _weights(full), _weights(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_an_optimizer_of_another_models_parameters_is_refused():
    """It trained nothing: the model kept its initial weights, silently."""
    model, other = _model(), _model()
    with pytest.raises(ValidationError, match="Invalid optimizer: .*not the model's"):
        Trainer(model, torch.optim.Adam(other.parameters()), progress=False)
    # a subset of the model's parameters (some frozen) is fine
    Trainer(model, torch.optim.Adam(model.decoder.parameters()), progress=False)


def test_a_checkpoint_of_a_flow_with_other_settings_but_equal_shapes_is_refused(tmp_path):
    """A fixed-tempering flow with K = 5 and one with K = 10 have parameters of equal
    shapes: the K = 10 run resumed the K = 5 run's checkpoint, silently."""
    x = _data()

    def model(K):
        return HVAE(MLPEncoder(3, input_dim=20, hidden=(16,), generator=0),
                    MLPDecoder(3, output_dim=20, hidden=(16,), generator=1),
                    HamiltonianFlow(3, K))

    ckpt = tmp_path / "c.pt"
    Trainer(model(2), batch_size=20, max_epochs=1, progress=False, checkpoint=ckpt).fit(x)
    with pytest.raises(ValidationError, match="Invalid checkpoint: .*n_leapfrog"):
        Trainer(model(3), batch_size=20, max_epochs=2, progress=False, checkpoint=ckpt).fit(x)
    res = Trainer(model(2), batch_size=20, max_epochs=2, progress=False,
                  checkpoint=ckpt).fit(x)
    assert res.resumed_from == 1
    # a checkpoint written before the description was stored still resumes
    state = torch.load(ckpt, weights_only=True)
    del state["model_repr"]
    torch.save(state, ckpt)
    res = Trainer(model(2), batch_size=20, max_epochs=3, progress=False,
                  checkpoint=ckpt).fit(x)
    assert res.resumed_from == 2


def test_a_checkpoint_of_other_optimizer_settings_is_refused(tmp_path):
    """The fingerprint saw the optimizer's type only: a run resumed with Adam(lr=0.1) from
    a checkpoint of Adam(lr=1e-3) loaded the checkpoint's optimizer state, and with it its
    learning rate, and went on at lr = 1e-3, silently."""
    x = _data()
    ckpt = tmp_path / "c.pt"

    def run(lr, epochs, **kw):
        model = _model()
        opt = torch.optim.Adam(model.parameters(), lr=lr, **kw)
        res = Trainer(model, opt, batch_size=20, max_epochs=epochs, progress=False,
                      checkpoint=ckpt).fit(x)
        return res, opt

    run(1e-3, 1)
    with pytest.raises(ValidationError, match="Invalid checkpoint: .*optimizer"):
        run(0.1, 2)
    with pytest.raises(ValidationError, match="Invalid checkpoint: .*optimizer"):
        run(1e-3, 2, weight_decay=0.1)
    res, opt = run(1e-3, 2)  # the same settings resume
    assert res.resumed_from == 1 and opt.param_groups[0]["lr"] == 1e-3
    # a checkpoint written before the settings were stored still resumes
    state = torch.load(ckpt, weights_only=True)
    del state["optimizer_settings"]
    torch.save(state, ckpt)
    assert run(1e-3, 3)[0].resumed_from == 2


def test_a_checkpoint_of_more_epochs_than_max_epochs_is_refused(tmp_path):
    """max_epochs=1 with a checkpoint of 2 epochs returned the model of epoch 2 and a
    history of 2 epochs, silently: max_epochs was ignored."""
    x = _data()
    ckpt = tmp_path / "c.pt"
    Trainer(_model(), batch_size=20, max_epochs=2, progress=False, checkpoint=ckpt).fit(x)
    model = _model(seed=3)
    before = _weights(model)
    with pytest.raises(ValidationError, match="Invalid max_epochs: 1 .*2 epochs"):
        Trainer(model, batch_size=20, max_epochs=1, progress=False, checkpoint=ckpt).fit(x)
    assert all(torch.equal(before[k], v) for k, v in _weights(model).items())
    res = Trainer(_model(), batch_size=20, max_epochs=2, progress=False,
                  checkpoint=ckpt).fit(x)
    assert res.resumed_from == 2 and res.epochs_run == 2


def test_a_checkpoint_of_another_validation_batch_size_is_refused(tmp_path):
    """The validation ELBO's noise is drawn per validation batch, so its value depends on
    val_batch_size (-13.68 with 1000, -13.87 with 7 for the same weights here). A run
    resumed with another val_batch_size compared its epochs with a best value measured
    the other way, which decided early stopping and the weights restored, silently."""
    x, xv = _data(), _data(60, seed=1)
    ckpt = tmp_path / "c.pt"

    def run(vbs, epochs):
        return Trainer(_model(), batch_size=20, max_epochs=epochs, patience=1,
                       progress=False, val_batch_size=vbs, checkpoint=ckpt).fit(x, xv)

    first = run(1000, 1)
    with pytest.raises(ValidationError, match="Invalid checkpoint: .*val_batch_size"):
        run(7, 2)
    res = run(1000, 2)
    assert res.resumed_from == 1 and res.history[0] == first.history[0]
    state = torch.load(ckpt, weights_only=True)  # written before the size was stored
    del state["val_batch_size"]
    torch.save(state, ckpt)
    assert run(1000, 3).resumed_from == 2


def test_a_checkpoint_of_other_flow_training_settings_or_edited_data_is_refused(tmp_path):
    """grad_clip, learn_step_sizes, learn_tempering and cache_gradients were outside the
    check, and so was an edit of the data that kept its sum (two pixels swapped)."""
    x = _data()

    def model(**kw):
        return HVAE(MLPEncoder(3, input_dim=20, hidden=(16,), generator=0),
                    MLPDecoder(3, output_dim=20, hidden=(16,), generator=1),
                    HamiltonianFlow(3, 2, **kw))

    ckpt = tmp_path / "c.pt"
    Trainer(model(), batch_size=20, max_epochs=1, progress=False, checkpoint=ckpt).fit(x)
    for kw in ({"grad_clip": 0.01}, {"learn_step_sizes": False}, {"learn_tempering": False},
               {"cache_gradients": False}):
        with pytest.raises(ValidationError, match="Invalid checkpoint"):
            Trainer(model(**kw), batch_size=20, max_epochs=2, progress=False,
                    checkpoint=ckpt).fit(x)
    swapped = x.clone()
    swapped[0, 1], swapped[0, 2] = x[0, 2].item(), x[0, 1].item()
    assert not torch.equal(swapped, x)
    with pytest.raises(ValidationError, match="Invalid checkpoint"):
        Trainer(model(), batch_size=20, max_epochs=2, progress=False,
                checkpoint=ckpt).fit(swapped)
    res = Trainer(model(), batch_size=20, max_epochs=2, progress=False,
                  checkpoint=ckpt).fit(x)
    assert res.resumed_from == 1


class _FrozenNormEncoder(torch.nn.Module):
    """A user's encoder whose first block (a pretrained normalisation) is frozen in eval."""

    def __init__(self):
        super().__init__()
        self.norm = torch.nn.BatchNorm1d(20)
        self.head = MLPEncoder(3, input_dim=20, hidden=(16,), generator=0)

    def forward(self, x):
        return self.head(self.norm(x))


def test_fit_keeps_the_submodules_the_user_froze_in_eval_mode():
    """fit used to call model.train(), which switched a frozen batch normalisation back to
    training mode and rewrote its running statistics without a word."""
    x = _data()
    enc = _FrozenNormEncoder()
    enc.norm.eval()
    for p in enc.norm.parameters():
        p.requires_grad_(False)
    before = enc.norm.running_mean.clone()
    model = VAE(enc, MLPDecoder(3, output_dim=20, hidden=(16,), generator=1))
    Trainer(model, torch.optim.Adamax([p for p in model.parameters() if p.requires_grad]),
            batch_size=20, max_epochs=1, progress=False).fit(x)
    assert not enc.norm.training and model.training and enc.head.training
    assert torch.equal(enc.norm.running_mean, before)
    # a model wholly in evaluation mode (after evaluating it) trains in training mode
    whole = _model("vae")
    whole.eval()
    Trainer(whole, batch_size=20, max_epochs=1, progress=False).fit(x)
    assert all(m.training for m in whole.modules())


def test_a_model_whose_elbo_is_a_batch_mean_is_refused():
    # the contract is one ELBO per example; a batch mean trained as usual, but the validation
    # ELBO (summed over batches, divided by the examples) came out val_batch_size times too
    # small, without an error
    class MeanELBO(VAE):
        def elbo(self, x, *, generator=None):
            return super().elbo(x, generator=generator).mean()

    x, xv = _data(n=200), _data(n=100, seed=1)
    model = MeanELBO(MLPEncoder(2, 20, (8,), generator=1), MLPDecoder(2, 20, (8,), generator=2))
    trainer = Trainer(model, batch_size=50, max_epochs=1, progress=False, val_batch_size=50)
    with pytest.raises(ValidationError, match=r"one ELBO per example"):
        trainer.fit(x, xv)


def test_a_checkpoint_is_not_resumed_under_another_seed(tmp_path):
    """A checkpoint of seed 7 resumed by a trainer given seed 8 silently continued seed 7's
    run, so a user running a second seed got the first seed's model and history again."""
    x = _data()
    ckpt = tmp_path / "run.pt"
    Trainer(_model(), batch_size=20, max_epochs=1, progress=False, generator=7,
            checkpoint=ckpt).fit(x)
    with pytest.raises(ValueError, match=r"generator.*seeded 8.*7"):
        Trainer(_model(), batch_size=20, max_epochs=2, progress=False, generator=8,
                checkpoint=ckpt).fit(x)
    g = torch.Generator().manual_seed(7)
    res = Trainer(_model(), batch_size=20, max_epochs=2, progress=False, generator=g,
                  checkpoint=ckpt).fit(x)
    assert res.resumed_from == 1


class _ValidationDiverges(VAE):
    """A VAE whose first validation ELBO is NaN (as an unclamped flow diverging on the
    validation data gives), and finite afterwards."""

    def __init__(self, *a):
        super().__init__(*a)
        self.val_calls = 0

    def elbo(self, x, *, generator=None):
        e = super().elbo(x, generator=generator)
        if not self.training:
            self.val_calls += 1
            if self.val_calls == 1:
                e = e * float("nan")
        return e


def test_a_non_finite_validation_elbo_stops_instead_of_becoming_the_best_epoch(tmp_path):
    x, xv = _data(), _data(60, seed=1)
    model = _ValidationDiverges(MLPEncoder(3, input_dim=20, hidden=(16,), generator=0),
                                MLPDecoder(3, output_dim=20, hidden=(16,), generator=1))
    ckpt = tmp_path / "c.pt"
    # the NaN of epoch 1 used to stay the best value (nothing compares above it): training
    # stopped early after `patience` improving epochs and restored epoch 1's weights
    with pytest.raises(FloatingPointError, match="non-finite validation ELBO .* epoch 1"):
        Trainer(model, batch_size=20, max_epochs=6, patience=3, progress=False,
                checkpoint=ckpt).fit(x, xv)
    assert not ckpt.exists()  # nothing written for the diverged epoch


def test_a_checkpoint_of_an_optimizer_over_other_parameters_is_refused(tmp_path):
    x = _data()
    ckpt = tmp_path / "c.pt"
    first = _model("vae")
    mu = first.encoder.mu
    Trainer(first, torch.optim.Adamax(mu.parameters(), lr=1e-3), batch_size=20, max_epochs=1,
            progress=False, checkpoint=ckpt).fit(x)
    # the same settings over other parameters of the same shapes (sigma's head for mu's):
    # resumed without a word, with mu's momenta applied to sigma's head
    model = _model("vae", seed=3)
    sigma = model.encoder.sigma
    assert [p.shape for p in sigma.parameters()] == [p.shape for p in mu.parameters()]
    before = _weights(model)
    with pytest.raises(ValidationError, match="Invalid checkpoint: .*over the same parameters: "
                                              r"it updated \[encoder.mu.weight, encoder.mu.bias\]"):
        Trainer(model, torch.optim.Adamax(sigma.parameters(), lr=1e-3), batch_size=20,
                max_epochs=2, progress=False, checkpoint=ckpt).fit(x)
    # another number of parameters: torch's error came after the model had been overwritten
    with pytest.raises(ValidationError, match="Invalid checkpoint"):
        Trainer(model, torch.optim.Adamax(model.encoder.parameters(), lr=1e-3), batch_size=20,
                max_epochs=2, progress=False, checkpoint=ckpt).fit(x)
    assert all(torch.equal(before[k], v) for k, v in _weights(model).items())
    # the run's own optimizer resumes
    again = _model("vae", seed=4)
    res = Trainer(again, torch.optim.Adamax(again.encoder.mu.parameters(), lr=1e-3),
                  batch_size=20, max_epochs=2, progress=False, checkpoint=ckpt).fit(x)
    assert res.resumed_from == 1 and res.epochs_run == 2
