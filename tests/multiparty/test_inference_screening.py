"""Party inference against models that leak and models that do not; the server's
screening of submissions."""

from __future__ import annotations

import numpy as np
import pytest

from neurips18._validation import ValidationError
from neurips18.multiparty import (
    PartyData,
    attack_success,
    contaminate,
    party_inference_attack,
    screen_parties,
    split_parties,
)

from .conftest import make_table


class _Constant:
    """Outputs that carry nothing about the party: probabilities from the features only."""

    classes_ = np.array([0, 1])

    def predict_proba(self, X):
        p = 1 / (1 + np.exp(-np.asarray(X)[:, 0]))
        return np.column_stack([1 - p, p])


def test_inference_is_at_chance_without_a_leak():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((4000, 3))
    y = rng.integers(0, 2, 4000)
    parties = np.repeat(np.arange(8), 500)
    r = party_inference_attack(_Constant(), X, y, parties, random_state=0)
    assert r.chance == 1 / 8 and r.n_parties == 8 and r.n_test == 2000
    assert r.majority == pytest.approx(1 / 8)
    # 2000 held-out guesses at p = 1/8: the standard error is 0.0074
    assert abs(r.accuracy - 1 / 8) < 0.03


def test_inference_finds_a_leaking_party():
    """A model whose output reveals party 0 (it is much more confident on party 0's
    records) lets the attack name party 0's records."""
    rng = np.random.default_rng(1)
    n = 3000
    parties = np.repeat(np.arange(3), 1000)
    y = rng.integers(0, 2, n)
    conf = np.where(parties == 0, 0.99, rng.uniform(0.5, 0.8, n))
    p1 = np.where(y == 1, conf, 1 - conf)
    table = np.column_stack([np.arange(n), np.zeros(n)])

    def leaky(X):
        i = np.asarray(X)[:, 0].astype(int)
        return np.column_stack([1 - p1[i], p1[i]])

    r = party_inference_attack(leaky, table, y, parties, random_state=0)
    assert r.per_party[0] > 0.95
    assert r.accuracy > 1 / 3 + 0.2


def test_inference_errors():
    X = np.zeros((10, 2))
    y = np.zeros(10)
    with pytest.raises(ValidationError, match="Invalid parties.*2 distinct"):
        party_inference_attack(_Constant(), X, y, np.zeros(10), random_state=0)
    with pytest.raises(ValidationError, match="Invalid parties"):
        party_inference_attack(_Constant(), X, y, np.zeros(9), random_state=0)
    with pytest.raises(ValidationError, match="Invalid parties.*without None"):
        party_inference_attack(_Constant(), X, y, np.array(["a", None] * 5, dtype=object),
                               random_state=0)
    with pytest.raises(ValidationError, match="Invalid model"):
        party_inference_attack(object(), X, y, np.arange(10) % 2, random_state=0)


def test_screening_flags_the_train_only_attacker_and_passes_honest_parties():
    X, y = make_table(9000, seed=5)
    d = split_parties(X, y, 6, validation_size=3000, random_state=0)
    s0 = screen_parties(d, random_state=0)
    assert not any(s0.flagged) and s0.release() == ("joint",) * 6
    assert all(0.35 < a < 0.65 for a in s0.auc)
    X0, y0 = d.party(0)
    Xc, yc, _ = contaminate(X0, y0, attribute="colour", value="teal", label=1,
                            n_records=250, generator=0)
    bad = d.replace_party(0, Xc, yc)
    s1 = screen_parties(bad, random_state=0)
    assert s1.flagged[0] and s1.release()[0] == "local"
    assert s1.p_value[0] < 1e-3 and not any(s1.flagged[1:])
    # an attacker that contaminates its validation records alike passes the check
    Xv0, yv0 = d.validation(0)
    Xvc, yvc, _ = contaminate(Xv0, yv0, attribute="colour", value="teal", label=1,
                              n_records=125, generator=1)
    stealthy = bad.replace_party(0, Xc, yc, X_val=Xvc, y_val=yvc)
    assert not screen_parties(stealthy, random_state=0).flagged[0]
    with pytest.raises(ValidationError, match="Invalid alpha"):
        screen_parties(d, alpha=0)
    with pytest.raises(ValidationError, match="Invalid data"):
        screen_parties((X, y))


def test_labels_that_do_not_match_the_model_are_refused():
    X = np.zeros((20, 2))
    y = np.array(["a", "b"] * 10)
    with pytest.raises(ValidationError, match="Invalid y.*model's classes"):
        party_inference_attack(_Constant(), X, y, np.arange(20) % 2, random_state=0)


def test_screening_encodes_text_columns_alike_for_both_sets():
    """A text (object) column with a rare value that some parties' training or validation
    sets lack, and string labels: honest parties still pass (each set encoded on its own
    would shift the codes of one set and tell them apart)."""
    X, y = make_table(4000, seed=6)
    colour = X["colour"].astype(str).to_numpy(dtype=object)
    colour[17] = "aqua"  # one record: it sorts before every other value
    X["colour"] = colour
    labels = np.where(y == 1, "default", "paid")
    d = split_parties(X, labels, 4, validation_size=1000, random_state=0)
    lacking = [i for i in range(4) if
               ("aqua" in set(d.X["colour"][d.parties == i]))
               != ("aqua" in set(d.X_val["colour"][d.val_parties == i]))]
    assert lacking  # the case at stake occurs
    s = screen_parties(d, random_state=0)
    assert not any(s.flagged), s
    assert all(0.35 < a < 0.65 for a in s.auc), s


def test_inference_refuses_missing_parties_and_labels():
    X = np.zeros((12, 2))
    y = np.arange(12) % 2
    parties = (np.arange(12) % 3).astype(object)
    parties[4] = np.nan  # np.unique over objects would count the parties wrongly
    with pytest.raises(ValidationError, match="Invalid parties.*without None, NaN or NA"):
        party_inference_attack(_Constant(), X, y, parties, random_state=0)
    labels = y.astype(object)
    labels[0] = None
    with pytest.raises(ValidationError, match="Invalid y.*without None, NaN or NA"):
        party_inference_attack(_Constant(), X, labels, np.arange(12) % 3, random_state=0)


def test_labels_and_parties_in_another_row_order_than_X_are_refused():
    """A user shuffles the frame of features but takes y and the parties from the
    original frame: the Series hold X's index labels in another order. They were paired by
    position, silently: the split got the wrong labels and a perfectly leaking model
    looked like chance (0.51 with two parties). Now y and parties are refused by name; a
    Series in X's order, or an array, is paired as before."""
    X, y = make_table(400)
    df = X.assign(y=y, party=np.repeat(["a", "b"], 200))
    Xs = df.sample(frac=1, random_state=0)
    ys, ps = df["y"], df["party"]

    class Leaky:
        classes_ = np.array([0, 1])

        def predict_proba(self, Z):
            a = (Z["party"] == "a").to_numpy(dtype=float)
            return np.column_stack([a, 1 - a])

    with pytest.raises(ValidationError, match="Invalid parties.*another order.*reindex"):
        party_inference_attack(Leaky(), Xs, ys.loc[Xs.index], ps, random_state=0)
    with pytest.raises(ValidationError, match="Invalid y.*another order"):
        party_inference_attack(Leaky(), Xs, ys, ps.loc[Xs.index], random_state=0)
    r = party_inference_attack(Leaky(), Xs, ys.loc[Xs.index], ps.loc[Xs.index],
                               random_state=0)
    assert r.accuracy == 1.0
    r = party_inference_attack(Leaky(), Xs, ys.loc[Xs.index].to_numpy(), ps.to_numpy(),
                               random_state=0)
    assert r.accuracy < 0.7  # positional pairing asked for explicitly: no check
    Xf = Xs.drop(columns=["y", "party"])
    with pytest.raises(ValidationError, match="Invalid y.*another order"):
        split_parties(Xf, ys, 2, validation_size=100, random_state=0)
    with pytest.raises(ValidationError, match="Invalid y.*another order"):
        contaminate(Xf, ys, attribute="colour", value="teal", label=1, n_records=3,
                    generator=0)
    with pytest.raises(ValidationError, match="Invalid y.*another order"):
        attack_success(Leaky(), Xf, ys, attribute="colour", value="teal", label=1)
    with pytest.raises(ValidationError, match="Invalid y.*another order"):
        PartyData(Xf, ys, np.zeros(400, dtype=int), Xf, ys.loc[Xf.index],
                  np.zeros(400, dtype=int))
    d = split_parties(Xf, ys.loc[Xf.index], 2, validation_size=100, random_state=0)
    np.testing.assert_array_equal(d.y, df.loc[d.X.index, "y"].to_numpy())


def test_parties_in_another_row_order_than_y_are_refused_when_X_has_no_index():
    """X as an array (a transformed frame) carries no index, but y and the parties given
    as Series do: a parties Series from before the shuffle was paired by position,
    silently (the attack then scored a perfectly leaking model near chance)."""
    X, y = make_table(400)
    df = X.assign(y=y, party=np.repeat(["a", "b"], 200))
    Xs = df.sample(frac=1, random_state=0)
    ys, ps = Xs["y"], df["party"]  # the parties not reordered
    Z = np.column_stack([(Xs["party"] == "a").to_numpy(dtype=float), Xs["a"].to_numpy()])

    class Leaky:
        classes_ = np.array([0, 1])

        def predict_proba(self, Z):
            return np.column_stack([Z[:, 0], 1 - Z[:, 0]])

    with pytest.raises(ValidationError, match="Invalid parties.*row order of y"):
        party_inference_attack(Leaky(), Z, ys, ps, random_state=0)
    r = party_inference_attack(Leaky(), Z, ys, ps.loc[Xs.index], random_state=0)
    assert r.accuracy == 1.0


def test_label_only_guesses_the_largest_party_for_a_label_it_never_saw():
    """A label held by one record only, which the split puts among the held-out records:
    the label-only guess named the first party (sorted), a small one, and came out below
    the best constant guess (0.89 against 0.90)."""
    rng = np.random.default_rng(0)
    n = 200
    parties = np.where(np.arange(n) < 20, "a_small", "b_big")
    y = rng.integers(0, 2, n)
    y[150] = 2
    X = rng.standard_normal((n, 2))

    class Blind:
        classes_ = np.array([0, 1, 2])

        def predict_proba(self, Z):
            return np.tile([0.3, 0.3, 0.4], (len(Z), 1))

    for seed in range(8):  # seeds 3 and 5 hold the label out of the attack's training
        r = party_inference_attack(Blind(), X, y, parties, random_state=seed)
        assert r.label_only >= r.majority
        assert r.label_only == pytest.approx(0.9)


def test_screening_an_object_array():
    """PartyData holds an object array (``frame.to_numpy()`` of mixed columns) as readily
    as a frame; screening it raised a bare ValueError (a text value cast to float). Text
    columns are now categories and number columns numbers, as for a frame."""
    X, y = make_table(4000, seed=6)
    Xo = X.astype(object).to_numpy()
    assert Xo.dtype == object
    d = split_parties(Xo, y, 4, validation_size=1000, random_state=0)
    s0 = screen_parties(d, random_state=0)
    assert not any(s0.flagged), s0
    X0, y0 = d.party(0)
    Xc, yc, _ = contaminate(X0, y0, attribute=3, value="teal", label=1, n_records=200,
                            generator=0)
    s1 = screen_parties(d.replace_party(0, Xc, yc), random_state=0)
    assert s1.flagged[0] and not any(s1.flagged[1:]), s1


def test_screening_documents_sees_a_planted_word():
    """A party of documents whose every training document starts with a word its
    validation documents never hold (the labels unchanged) is flagged; honest parties
    pass. Each document as one category of its own hid the word (AUC 0.47, p 0.84)."""
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(50)]
    docs = [" ".join(rng.choice(words, 10)) for _ in range(1200)]
    y = rng.integers(0, 2, 1200)
    d = split_parties(docs, y, 3, validation_size=600, random_state=0)
    X0, y0 = d.party(0)
    s = screen_parties(d.replace_party(0, ["zzz " + t for t in X0], y0), random_state=0)
    assert s.flagged[0] and s.p_value[0] < 1e-6 and s.auc[0] > 0.9, s
    assert not any(s.flagged[1:]) and all(0.35 < a < 0.65 for a in s.auc[1:]), s


def test_screening_sees_a_small_party():
    """A party of 40 training and 38 validation records, 30 of whose training records
    carry a value its validation records never hold, is flagged. The classifier kept
    scikit-learn's leaf of 20 records, which cannot split the 39 records it is fitted
    on: its scores were all equal, so such a party always passed (AUC 0.5, p = 1)."""
    rng = np.random.default_rng(3)
    tr, va = [40, 600], [38, 300]
    X = rng.standard_normal((sum(tr), 4))
    y = (X[:, 0] + rng.standard_normal(len(X)) > 0).astype(np.int64)
    X[:30, 3] = 5.0  # party 0's planted value, in its training records only
    Xv = rng.standard_normal((sum(va), 4))
    yv = (Xv[:, 0] + rng.standard_normal(len(Xv)) > 0).astype(np.int64)
    d = PartyData(X, y, np.repeat([0, 1], tr), Xv, yv, np.repeat([0, 1], va), 2)
    for seed in range(3):
        s = screen_parties(d, alpha=0.05, random_state=seed)
        assert s.flagged[0] and s.auc[0] > 0.75, s
    # an honest small party still passes: its scores are compared on held-out records
    honest = PartyData(Xv[:40] * 1.0, yv[:40], np.zeros(40, dtype=np.int64),
                       X[40:78], y[40:78], np.zeros(38, dtype=np.int64), 1)
    ps = [screen_parties(honest, random_state=seed).p_value[0] for seed in range(3)]
    assert all(p > 0.01 for p in ps), ps


def test_inference_finds_a_leak_on_few_records():
    """3 parties of 20 records, each told apart exactly by the model's output: the
    attack names every held-out record. Its classifier kept scikit-learn's leaf of 20
    records, which cannot split the 30 records it is trained on, so it guessed one party
    for all and reported the chance level (1/3): no leak."""
    rng = np.random.default_rng(0)
    parties = np.repeat(np.arange(3), 20)
    y = rng.integers(0, 2, 60)

    def leaky(X):
        p = 0.2 + 0.3 * np.asarray(X)[:, 0]
        return np.column_stack([1 - p, p])

    X = np.column_stack([parties.astype(float), rng.standard_normal(60)])
    for seed in range(3):
        r = party_inference_attack(leaky, X, y, parties, random_state=seed)
        assert r.accuracy > 0.9 and min(r.per_party) > 0.8, r
    # and a model that leaks nothing stays near chance on as few records
    noise = X[:, ::-1]  # _Constant reads the first column: here the noise
    acc = [party_inference_attack(_Constant(), noise, y, parties, random_state=s).accuracy
           for s in range(5)]
    assert np.mean(acc) < 0.6, acc


def test_inference_refuses_a_split_that_leaves_a_party_out():
    """A party of 2 records among parties of 300: test_size=0.1 gave it no held-out
    record (its recall came out NaN, with a bare numpy warning) and test_size=0.9 none to
    train on (the attack never saw it, its recall read 0). Both are refused by name."""
    rng = np.random.default_rng(0)
    parties = np.repeat([0, 1, 2], [2, 300, 300])
    X = rng.standard_normal((602, 2))
    y = rng.integers(0, 2, 602)
    for ts, what in ((0.1, "test it on"), (0.9, "train the attack on")):
        with pytest.raises(ValidationError, match=f"Invalid test_size.*{what}.*party 0 has 2"):
            party_inference_attack(_Constant(), X, y, parties, test_size=ts, random_state=0)
    r = party_inference_attack(_Constant(), X, y, parties, random_state=0)
    assert all(np.isfinite(r.per_party)), r


def test_screening_a_text_column_of_many_values():
    """A frame with a text column of ~340 distinct values (more than the 255 categories
    the classifier takes) raised scikit-learn's bare ValueError naming 'index 0' (not
    the column); such a column is now compared on its codes: honest parties pass and a
    party that plants one of its values in 200 records is flagged."""
    import pandas as pd

    rng = np.random.default_rng(0)
    n = 3000
    X = pd.DataFrame({"a": rng.standard_normal(n),
                      "city": [f"c{i}" for i in rng.integers(0, 400, n)]})
    y = rng.integers(0, 2, n)
    d = split_parties(X, y, 2, validation_size=1000, random_state=0)
    s0 = screen_parties(d, random_state=0)
    assert not any(s0.flagged), s0
    X0, y0 = d.party(0)
    Xc, yc, _ = contaminate(X0, y0, attribute="city", value="c0", label=1, n_records=200,
                            generator=0)
    s1 = screen_parties(d.replace_party(0, Xc, yc), random_state=0)
    assert s1.flagged[0] and not s1.flagged[1], s1


def test_inference_baseline_from_the_labels_alone():
    """Party 0 holds mostly label 1, party 1 mostly label 0, and the model's output
    depends on the features only: it leaks nothing, yet the attack (which is given the
    labels) names 90% of the parties. Only chance (0.5) was reported next to it, and the
    documentation promised chance for a model that leaks nothing; label_only now gives
    the accuracy of a guess from the label alone, which the attack does not beat."""
    rng = np.random.default_rng(0)
    parties = np.repeat([0, 1], 1000)
    u = rng.random(2000)
    y = np.where(parties == 0, u < 0.9, u < 0.1).astype(np.int64)
    X = rng.standard_normal((2000, 2))
    r = party_inference_attack(_Constant(), X, y, parties, random_state=0)
    assert r.chance == 0.5 and r.majority == 0.5 and r.accuracy > 0.85, r
    # 1000 held-out records at p = 0.9: the standard error is 0.0095
    assert abs(r.label_only - 0.9) < 0.03 and r.accuracy < r.label_only + 0.03, r
    # parties of equal size with labels alike: the baseline is chance
    r = party_inference_attack(_Constant(), X, rng.integers(0, 2, 2000), parties,
                               random_state=0)
    assert abs(r.label_only - 0.5) < 0.05, r
