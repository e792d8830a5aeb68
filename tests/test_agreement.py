"""`labelreview agreement`: Cohen's kappa per pair of reviewers and per class, and the accept/reject
agreement rate, on the items both reviewed (each reviewer's latest decision), on a hand-made case
whose figures are worked out in the comments."""

from __future__ import annotations

import pytest

from helpers import _sample, sample_images, sample_store, set_config, templates  # noqa: F401
from teams import ALICE, BOB, CAROL, cli, decider, finish, js
from labelreview.review import ReviewSession
from labelreview.review.agreement import cohen_kappa
from labelreview.store import Store


def test_kappa_of_known_tables():
    assert cohen_kappa(["a", "b", "a", "b"], ["a", "b", "a", "b"]) == 1.0
    assert cohen_kappa(["a", "a", "b", "b"], ["a", "b", "a", "b"]) == 0.0
    assert cohen_kappa(["a"] * 3, ["a"] * 3) is None  # one class throughout: undefined
    # 20 items: 10 yes/yes, 6 no/no, 2 yes/no, 2 no/yes -> po 0.8; each says yes 12 times -> pe 0.52
    a = ["y"] * 10 + ["n"] * 6 + ["y"] * 2 + ["n"] * 2
    b = ["y"] * 10 + ["n"] * 6 + ["n"] * 2 + ["y"] * 2
    assert cohen_kappa(a, b) == pytest.approx((0.8 - 0.52) / (1 - 0.52))


def test_agreement_per_pair_and_class(sample_store):
    set_config(sample_store, review={"double": True, "lease_seconds": 120})  # each sees the proposal
    finish(decider(sample_store, ALICE, [["accept", 1], ["accept", 2], ["relabel", 3, "cat"], ["accept", 4],
                                         ["reject", 5], ["accept", 6], ["relabel", 7, "cat"], ["accept", 8],
                                         ["accept", 9]]))
    with Store.open(sample_store, author=ALICE) as store:
        ReviewSession(store).undo()  # takes back her decision on 9: it does not count
    finish(decider(sample_store, BOB, [["relabel", 1, "cat"], ["accept", 2], ["relabel", 3, "cat"], ["accept", 4],
                                       ["reject", 5], ["accept", 6], ["accept", 7], ["reject", 8], ["accept", 9]]))
    assert cli("accept", "20", "--store", sample_store, author=CAROL)[0] == 0  # nothing in common with anyone
    report = js("agreement", "--store", sample_store)
    assert report["reviewers"] == [ALICE, BOB, CAROL]
    assert len(report["pairs"]) == 1
    p = report["pairs"][0]
    assert (p["a"], p["b"], p["items"]) == (ALICE, BOB, 8)
    # accept/reject: both kept 1-4, 6, 7, both rejected 5; Bob rejected 8, Alice kept it: 7 of 8
    assert p["accept_reject_items"] == 8 and p["accept_reject_agreement"] == pytest.approx(7 / 8)
    # classes on the 6 items neither rejected (1-4, 6, 7): same on 2, 3, 4, 6 -> po 4/6;
    # Alice dog 1, cup 1, cat 2, spoon 1, person 1; Bob cat 2, cup 1, spoon 1, person 2 -> pe 8/36
    assert p["class_items"] == 6 and p["class_agreement"] == pytest.approx(4 / 6)
    assert p["kappa"] == pytest.approx((4 / 6 - 8 / 36) / (1 - 8 / 36))
    cat = next(c for c in p["classes"] if c["class"] == "cat")
    # cat or not: Alice on 3 and 7, Bob on 1 and 3 -> po 4/6, pe (2/6)^2 + (4/6)^2 = 20/36 -> 0.25
    assert cat["items"] == 3 and cat["agreement"] == pytest.approx(1 / 3) and cat["kappa"] == pytest.approx(0.25)
    dog = next(c for c in p["classes"] if c["class"] == "dog")
    assert dog["items"] == 1 and dog["agreement"] == 0.0
    rc, out, _ = cli("agreement", "--store", sample_store)
    assert rc == 0 and "class kappa 0.571" in out and "accept/reject agreement 87.5% on 8" in out
