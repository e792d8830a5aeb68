"""Property tests of the event log and the fold (DESIGN.md's testing layers): any sequence of
decisions by two reviewers and an adjudicator on one store (blind double review or not), as the review layer makes
them, leaves a log that
`verify` proves, an index that a rebuild from the files reproduces exactly, and one event for
every decision the reviewer was told was made."""

from __future__ import annotations

import shutil

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from helpers import build_sample, set_config, templates  # noqa: F401
from teams import ALICE, BOB, CAROL, open_conflicts, states
from labelreview.model import LabelreviewError
from labelreview.review import ReviewSession
from labelreview.store import Store
from labelreview.store.verify import verify

OPS = st.lists(
    # (resolve listed thrice: there is something to resolve only after two reviewers disagreed)
    st.tuples(st.sampled_from(["accept", "relabel", "flag", "reject", "undo", "resolve", "resolve", "resolve",
                               "accept_rest"]),
              st.integers(min_value=1, max_value=3),  # annotations 1-3: two reviewers collide often
              st.sampled_from([ALICE, BOB]),
              st.sampled_from(["dog", "cat", "cup"]),
              st.sampled_from(["occluded", "loose-box"])),
    min_size=1, max_size=30)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=OPS, double=st.booleans())
def test_any_sequence_of_decisions_is_proved_and_rebuilt_exactly(templates, tmp_path_factory, ops, double):
    root, _ = templates.copy("sample", build_sample, tmp_path_factory.mktemp("prop") / "copy")
    if double:  # blind double review: decisions wait for a second reviewer, disagreements conflict
        set_config(root, review={"double": True, "lease_seconds": 120})
    made = 0
    stores = {who: Store.open(root, author=who) for who in (ALICE, BOB, CAROL)}
    try:
        sessions = {who: ReviewSession(store, auto_checkpoint=False) for who, store in stores.items()}
        for action, ann, who, category, reason in ops:
            s = sessions[who]
            if action == "resolve":  # Carol adjudicates: picks a competing decision, else decides anew
                s = sessions[CAROL]
                competing = s.conflicts(ann)
                if not competing:
                    continue
                pick = competing[len(ops) % len(competing)]["hash"]
                decide = (lambda: s.resolve(ann, pick=pick)) if reason == "occluded" else \
                    (lambda: s.resolve(ann, category=category, status="relabeled"))
            elif action == "accept_rest":  # A: the pending labels of image 2 (annotations 2-5)
                try:
                    done, _ = s.accept_all([2, 3, 4, 5])
                except LabelreviewError:
                    continue
                made += len(done)
                continue
            else:
                decide = {"accept": lambda: s.accept(ann), "relabel": lambda: s.relabel(ann, category),
                          "flag": lambda: s.flag(ann, reason), "reject": lambda: s.reject(ann),
                          "undo": s.undo}[action]
            try:
                made_now = decide()
            except LabelreviewError:  # refused (an undo of a label the other changed since): nothing written
                continue
            made += made_now is not None
            if action == "resolve":
                event("a conflict resolved")  # (hypothesis statistics: that the path is taken)
        store = stores[ALICE]
        assert store.counts()["events"] == made  # every decision acknowledged is in the log, nothing else
        report = verify(store, images=False)
        assert report.ok, [p.as_dict() for p in report.problems]
        assert report.events == made
        before, conflicts = states(root), open_conflicts(root)
    finally:
        for s in stores.values():
            s.close()
    with Store.open(root) as store:
        store.reindex()
    assert states(root) == before and open_conflicts(root) == conflicts  # the files hold all of it
    shutil.rmtree(root.parent)
