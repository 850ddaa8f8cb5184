"""Library code that seeds torch for reproducible initial weights touches only the CPU
generator, and puts it back: torch.manual_seed also reseeds every CUDA and MPS generator,
which torch.random.fork_rng(devices=[]) does not restore, so a GPU user's accelerator
stream changed when they built a model. Recorded by standing in for the accelerators'
seeding functions (this machine has no GPU)."""

import pytest
import torch
from torch import nn


@pytest.fixture
def accelerator_seeds(monkeypatch):
    calls = []
    monkeypatch.setattr(torch.cuda, "manual_seed_all", lambda s: calls.append(("cuda", s)))
    monkeypatch.setattr(torch.cuda, "manual_seed", lambda s: calls.append(("cuda", s)))
    monkeypatch.setattr(torch.mps, "manual_seed", lambda s: calls.append(("mps", s)))
    return calls


def test_torch_seeded_seeds_the_cpu_generator_only_and_restores_it(accelerator_seeds):
    from neurips18._validation import torch_seeded

    before = torch.get_rng_state()
    with torch_seeded(5):
        a = torch.rand(3)
    assert torch.equal(torch.get_rng_state(), before)
    assert torch.equal(a, torch.rand(3, generator=torch.Generator().manual_seed(5)))
    assert accelerator_seeds == []


def test_building_and_training_hvae_models_seed_no_accelerator(accelerator_seeds):
    from neurips18.hvae import VAE, MLPDecoder, MLPEncoder, Trainer

    enc = MLPEncoder(3, input_dim=20, hidden=(16,), generator=0)
    dec = MLPDecoder(3, output_dim=20, hidden=(16,), generator=1)
    x = torch.rand(40, 20, generator=torch.Generator().manual_seed(2))
    Trainer(VAE(enc, dec), batch_size=20, max_epochs=1, progress=False).fit(x)
    assert accelerator_seeds == []
    again = MLPEncoder(3, input_dim=20, hidden=(16,), generator=0)
    for k, v in again.state_dict().items():  # the weights are still the generator's
        assert torch.equal(v, MLPEncoder(3, input_dim=20, hidden=(16,),
                                         generator=0).state_dict()[k])


def test_the_reproductions_model_builder_seeds_no_accelerator(accelerator_seeds):
    from neurips18.repro._common.training import init_model

    a = init_model(lambda: nn.Linear(4, 2), 3)
    b = init_model(lambda: nn.Linear(4, 2), 3)
    assert torch.equal(a.weight, b.weight) and accelerator_seeds == []


def test_fitting_the_party_adversarial_classifier_seeds_no_accelerator(accelerator_seeds):
    import numpy as np

    from neurips18.multiparty import PartyAdversarialClassifier

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(60, 4)), rng.integers(0, 2, 60)
    parties = np.repeat([0, 1, 2], 20)
    PartyAdversarialClassifier(hidden_layer_sizes=(8,), max_epochs=2, batch_size=20,
                               random_state=0).fit(X, y, parties=parties)
    assert accelerator_seeds == []


@pytest.mark.parametrize("bad", [1.9, True, "1", None, 2**64, -(2**63) - 1])
def test_a_seed_that_is_not_an_int_is_refused(bad):
    """init_model(f, 1.9) and init_model(f, True) built the model of seed 1 (int() of the
    seed), silently."""
    from neurips18._validation import ValidationError, torch_seeded
    from neurips18.repro._common.training import init_model

    with pytest.raises(ValidationError, match=r"Invalid seed: .*\(expected an int seed"):
        init_model(lambda: nn.Linear(4, 2), bad)
    before = torch.get_rng_state()
    with pytest.raises(ValidationError, match="Invalid seed"), torch_seeded(bad):
        pass
    assert torch.equal(torch.get_rng_state(), before)
    import numpy as np

    a = init_model(lambda: nn.Linear(4, 2), np.int64(3))
    assert torch.equal(a.weight, init_model(lambda: nn.Linear(4, 2), 3).weight)
