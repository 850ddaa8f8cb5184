"""The mrs judge on crafted data: matched-accuracy CART, and size rows without a verdict
when the anchor is much less accurate."""

from __future__ import annotations

import dataclasses

from neurips18.repro import mrs


def _run(acc, rules, cart, ripper=None):
    out = {"mrs": {"accuracy": acc, "rules": rules, "conditions": 2 * rules, "features": rules,
                   "rule_text": ["a in {x}"], "trace": [0.0]},
           "cart": cart}
    if ripper is not None:
        out["ripper"] = ripper
    return out


def _cart(*accs):
    return [{"depth": d + 1, "accuracy": a, "rules": d + 1, "conditions": 3 * (d + 1),
             "features": d + 1} for d, a in enumerate(accs)]


def _cfg(**kw):
    base = mrs.PROFILES["full"]
    return dataclasses.replace(base, datasets=("mushroom",), seeds=3,
                               anchors={"ripper": ("mushroom",)}, **kw)


def _data(runs):
    return {"results": {"mushroom": runs},
            "synthetic": {"repeats": [{"recovered": True}]},
            "anchors_installed": {"ripper": True, "brs": False}}


def test_matched_cart_is_the_shallowest_tree_within_001():
    path = _cart(0.90, 0.985, 0.99, 0.999)
    assert mrs.matched_cart(path, 0.995)["depth"] == 2  # 0.985 >= 0.995 - 0.01
    assert mrs.matched_cart(path, 1.0)["depth"] == 3
    assert mrs.matched_cart(_cart(0.5, 0.6), 0.9) is None


def test_size_rows_are_judged_against_the_matched_tree():
    ripper = {"accuracy": 0.90, "rules": 9, "conditions": 20, "features": 9}
    runs = [_run(0.996, 2, _cart(0.9, 0.99, 1.0), ripper) for _ in range(3)]
    rows = {r.metric: r for r in mrs.judge(_data(runs), _cfg()).rows}
    cart_rules = rows["mushroom: rules, ours - matched CART (paired by split)"]
    assert cart_rules.ours == 0.0 and cart_rules.verdict == "pass"  # 2 rules vs depth 2
    cart_conds = rows["mushroom: conditions, ours - matched CART (paired by split)"]
    assert cart_conds.ours == -2.0 and cart_conds.verdict == "pass"
    # RIPPER is 0.096 less accurate: its accuracy row fails, its size rows have no verdict
    acc = rows["mushroom: accuracy, ours - RIPPER (wittgenstein) (paired by split)"]
    assert acc.verdict == "pass"  # ours is more accurate: the claim "within 0.01" holds
    size = rows["mushroom: rules, ours - RIPPER (wittgenstein) (paired by split)"]
    assert size.verdict == "no-reference" and size.key == "anchor_size_unmatched"


def test_a_claim_the_interval_does_not_support_fails_and_quick_shows_without_verdict():
    ripper = [{"accuracy": a, "rules": r, "conditions": 2 * r, "features": r}
              for a, r in ((0.99, 3), (0.995, 1), (0.99, 2))]
    runs = [_run(0.99, rr, _cart(0.99), rp) for rr, rp in zip((2, 2, 2), ripper, strict=True)]
    rows = {r.metric: r for r in mrs.judge(_data(runs), _cfg()).rows}
    size = rows["mushroom: rules, ours - RIPPER (wittgenstein) (paired by split)"]
    assert size.ours == 0.0 and size.interval[1] > 0 and size.verdict == "fail"
    quick = {r.metric: r for r in mrs.judge(_data(runs), _cfg(
        shown_only=("anchor_accuracy", "anchor_size"))).rows}
    assert quick[size.metric].verdict == "no-reference"
    assert quick["mushroom: accuracy, ours - RIPPER (wittgenstein) (paired by split)"
                 ].verdict == "no-reference"
