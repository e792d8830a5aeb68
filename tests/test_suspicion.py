"""The suspicion order: each signal on a small hand-made case, the stored scores, the queue, the CLI."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
from conftest import run_cli

from labelreview.model import AnnotationFilter, Category, ImageRecord, ImportBatch, Proposal
from labelreview.review import Queue, ReviewSession, suspicion
from labelreview.review.suspicion import Boxes, Params, compute, match, why_texts
from labelreview.store import Store, scores
from labelreview.store.scores import Columns

# ---------------------------------------------------------------------- hand-made columns


def columns(anns: list[dict], sizes: dict[int, tuple[int, int]] | None = None) -> Columns:
    """Columns as the loader makes them, from dicts: image, source, category, box, score, kind, p."""
    src, cat = {}, {}
    n = len(anns)

    def code(table, name):
        return table.setdefault(name, len(table))

    sizes = sizes or {}
    probs = [a.get("p") for a in anns]
    for a in anns:
        code(src, a.get("source", "vendor"))
        code(cat, a["category"])
    for p in probs:
        for c in (p or {}):
            code(cat, c)
    top = [max(p, key=p.get) if p else None for p in probs]
    return Columns(
        id=np.arange(1, n + 1, dtype=np.int64),
        image=np.array([a.get("image", 1) for a in anns], dtype=np.int64),
        source=np.array([src[a.get("source", "vendor")] for a in anns], dtype=np.int32),
        category=np.array([cat[a["category"]] for a in anns], dtype=np.int32),
        rejected=np.array([a.get("rejected", False) for a in anns], dtype=bool),
        is_label=np.array([a.get("kind") == "label" for a in anns], dtype=bool),
        crowd=np.zeros(n, bool),
        score=np.array([np.nan if a.get("score") is None else a["score"] for a in anns], dtype=float),
        box=np.array([a.get("box") or [np.nan] * 4 for a in anns], dtype=float).reshape(n, 4),
        image_w=np.array([sizes.get(a.get("image", 1), (np.nan, np.nan))[0] for a in anns], dtype=float),
        image_h=np.array([sizes.get(a.get("image", 1), (np.nan, np.nan))[1] for a in anns], dtype=float),
        self_p=np.array([np.nan if p is None else p.get(a["category"], 0.0) for a, p in zip(anns, probs)]),
        top_class=np.array([-1 if t is None else cat[t] for t in top], dtype=np.int32),
        top_p=np.array([np.nan if p is None else max(p.values()) for p in probs]),
        sources=list(src), categories=list(cat),
    )


def signals_of(anns, sizes=None, params=Params()) -> tuple[np.ndarray, list[list[dict]]]:
    cols = columns(anns, sizes)
    res = compute(cols, params)
    return res.score, [json.loads(w) if w else [] for w in why_texts(cols, res)]


def names(why: list[dict]) -> set[str]:
    return {s["signal"] for s in why}


def grid(n: int, source: str, category: str = "car", image_start: int = 1, jitter: float = 0.0,
         score: float | None = None, seed: int = 0) -> list[dict]:
    """One box per image, the same place on each, optionally jittered (a second source's view)."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        j = [rng.uniform(-jitter, jitter) for _ in range(4)]
        out.append({"image": image_start + i, "source": source, "category": category, "score": score,
                    "box": [10 + j[0], 10 + j[1], 40 + j[2], 30 + j[3]]})
    return out


# ---------------------------------------------------------------------- each signal


def test_low_score_and_near_threshold():
    score, why = signals_of([
        {"category": "car", "box": [0, 0, 10, 10], "score": 0.05},
        {"category": "car", "box": [50, 50, 10, 10], "score": 0.45},
        {"category": "car", "box": [100, 100, 10, 10], "score": 0.52},
        {"category": "car", "box": [150, 150, 10, 10], "score": 0.97},
    ])
    assert names(why[0]) == {"low-score"} and why[0][0]["value"] == 0.05
    assert names(why[1]) == {"low-score", "near-threshold"}
    assert names(why[2]) == {"near-threshold"}  # above the threshold, but only just
    assert why[3] == [] and score[3] == 0
    assert score[0] > score[1] > 0 and score[2] > 0


def test_class_mismatch_at_high_iou_names_the_other_class_and_source():
    base = grid(30, "vendor") + grid(30, "model", jitter=1, score=0.9)
    base[0]["category"] = "bus"  # the vendor calls image 1's car a bus
    score, why = signals_of(base)
    sig = {s["signal"]: s for s in why[0]}
    assert sig["class-mismatch"]["other"] == "car"
    assert sig["class-mismatch"]["source"] == "model"
    assert sig["class-mismatch"]["iou"] > 0.8
    assert sig["class-mismatch"]["id"] == 31  # the model's box on image 1
    # The prediction is the evidence, the label what to fix: the label ranks first.
    assert score[0] > score[30] > 0
    assert np.argmax(score) == 0
    assert all(s == 0 for s in score[1:30])


def test_unmatched_boxes_possible_spurious_and_possible_missing():
    anns = grid(30, "vendor") + grid(30, "model", jitter=1, score=0.9)
    anns.append({"image": 3, "source": "vendor", "category": "car", "box": [55, 60, 40, 30]})  # spurious?
    anns.append({"image": 4, "source": "model", "category": "car", "box": [55, 5, 40, 30],
                 "score": 0.95})  # a label missing from the vendor's?
    anns.append({"image": 99, "source": "vendor", "category": "car", "box": [55, 60, 40, 30]})
    score, why = signals_of(anns)
    assert names(why[60]) == {"unmatched"} and why[60][0]["source"] == "model"
    assert "unmatched" in names(why[61]) and why[61][0]["source"] == "vendor"
    # The model labelled nothing on image 99: no evidence either way.
    assert why[62] == []
    assert set(np.argsort(-score)[:2]) == {60, 61}


def test_unmatched_strength_follows_how_often_the_other_source_matches_such_boxes():
    # The model finds every large box but misses most tiny ones: a tiny unmatched box says less.
    anns = []
    for i in range(40):
        anns.append({"image": i + 1, "source": "vendor", "category": "car", "box": [0, 0, 60, 60]})
        anns.append({"image": i + 1, "source": "model", "category": "car", "box": [1, 1, 60, 60], "score": 0.9})
        anns.append({"image": i + 1, "source": "vendor", "category": "car", "box": [90, 90, 2, 2]})
        if i < 5:
            anns.append({"image": i + 1, "source": "model", "category": "car", "box": [90, 90, 2, 2],
                         "score": 0.9})
    anns.append({"image": 50, "source": "vendor", "category": "car", "box": [0, 0, 60, 60]})
    anns.append({"image": 50, "source": "model", "category": "car", "box": [70, 0, 20, 20], "score": 0.9})
    sizes = {i: (100, 100) for i in range(1, 51)}
    score, why = signals_of(anns, sizes)
    large_unmatched = len(anns) - 2
    tiny_unmatched = next(k for k, a in enumerate(anns)  # where the model missed a tiny box
                          if a["image"] == 10 and a["source"] == "vendor" and a["box"][2] == 2)
    strength = [{s["signal"]: s["strength"] for s in why[k]}["unmatched"] for k in (large_unmatched, tiny_unmatched)]
    assert strength[0] > 0.8 and strength[1] < 0.3


def test_low_iou_of_the_matched_pair():
    anns = grid(30, "vendor") + grid(30, "model", jitter=1, score=0.9)
    anns[0]["box"] = [24, 10, 40, 30]  # shifted by a third of its width: IoU about 0.5
    score, why = signals_of(anns)
    sig = {s["signal"]: s for s in why[0]}
    assert set(sig) == {"low-iou"} and 0.4 < sig["low-iou"]["iou"] < 0.6
    assert sig["low-iou"]["source"] == "model"
    assert np.argmax(score) == 0


def test_class_mismatch_needs_a_good_overlap():
    anns = grid(30, "vendor") + grid(30, "model", jitter=1, score=0.9)
    anns[30]["category"] = "bus"
    anns[30]["box"] = [35, 10, 40, 30]  # a different class that barely overlaps: another object
    score, why = signals_of(anns)
    assert names(why[0]) == {"unmatched"} and "class-mismatch" not in names(why[30])


def test_duplicates_same_class_same_source():
    score, why = signals_of([
        {"category": "person", "box": [10, 10, 50, 100], "score": 0.9},
        {"category": "person", "box": [12, 11, 50, 98], "score": 0.6},
        {"category": "dog", "box": [12, 11, 50, 98], "score": 0.9},  # overlaps, but another class
    ])
    assert names(why[0]) == {"duplicate"} and why[0][0]["id"] == 2
    assert "duplicate" in names(why[1]) and why[1][0]["iou"] > 0.9
    assert "duplicate" not in names(why[2])
    # The weaker copy is the likelier one to go.
    assert {s["signal"]: s["strength"] for s in why[1]}["duplicate"] > why[0][0]["strength"]


def test_degenerate_and_out_of_image_boxes():
    score, why = signals_of([
        {"category": "car", "box": [10, 10, 0.4, 20]},
        {"category": "car", "box": [80, 80, 40, 40]},  # a 100x100 image: mostly outside
        {"category": "car", "box": [10, 10, 20, 20]},
    ], sizes={1: (100, 100)})
    assert names(why[0]) == {"degenerate"} and score[0] > 0.9
    assert names(why[1]) == {"out-of-image"} and why[1][0]["value"] > 0.6
    assert why[2] == []


def test_size_and_shape_far_outside_the_class():
    rng = np.random.default_rng(0)
    anns = [{"image": i, "category": "car", "box": [0, 0, float(40 * s), float(20 * s)]}
            for i, s in enumerate(rng.uniform(0.8, 1.25, 40))]
    anns.append({"image": 100, "category": "car", "box": [0, 0, 600, 300]})  # 200x the usual area
    anns.append({"image": 101, "category": "car", "box": [0, 0, 5, 200]})  # standing on its end
    anns.append({"image": 102, "category": "car", "box": [0, 0, 42, 21]})
    score, why = signals_of(anns, sizes={i: (640, 480) for i in range(103)})
    assert "odd-size" in names(why[40])
    assert "odd-shape" in names(why[41])
    assert why[42] == []
    assert set(np.argsort(-score)[:2]) == {40, 41}


def test_small_classes_have_no_distribution_to_be_odd_in():
    anns = [{"image": i, "category": "car", "box": [0, 0, 40, 20]} for i in range(5)]
    anns.append({"image": 9, "category": "car", "box": [0, 0, 600, 300]})
    _, why = signals_of(anns)
    assert all(w == [] for w in why)


def test_low_self_confidence_from_class_probabilities():
    score, why = signals_of([
        {"category": "cat", "kind": "label", "p": {"cat": 0.1, "dog": 0.85, "fox": 0.05}},
        {"category": "dog", "kind": "label", "p": {"cat": 0.1, "dog": 0.85, "fox": 0.05}, "image": 2},
        {"category": "fox", "kind": "label", "image": 3},  # no probabilities: no signal
    ])
    sig = why[0][0]
    assert sig["signal"] == "low-self-confidence" and sig["value"] == 0.1
    assert sig["other"] == "dog" and sig["other_p"] == 0.85
    assert why[1] == [] and why[2] == []
    assert score[0] > 0.7


def test_image_labels_of_two_sources_disagree():
    anns = [{"image": i, "source": s, "category": "cat", "kind": "label"}
            for i in range(1, 21) for s in ("vendor-a", "vendor-b")]
    anns[0]["category"] = "dog"
    _, why = signals_of(anns)
    assert names(why[0]) == {"class-mismatch"} and why[0][0]["other"] == "cat"
    assert names(why[1]) == {"class-mismatch"} and why[1][0]["other"] == "dog"
    assert all(w == [] for w in why[2:])


def test_rejected_annotations_are_not_labels_any_more():
    anns = grid(30, "vendor") + grid(30, "model", jitter=1, score=0.9)
    anns[0]["rejected"] = True
    _, why = signals_of(anns)
    assert why[0] == []
    assert names(why[30]) == {"unmatched"}  # the model's box now has no label to match


# ---------------------------------------------------------------------- the machinery


def greedy(edges):
    """The textbook greedy matching, heaviest edge first, one at a time."""
    used, out = set(), {}
    for w, u, v in sorted(edges, reverse=True):
        if u not in used and v not in used:
            used |= {u, v}
            out[u], out[v] = v, u
    return out


def test_matching_in_rounds_equals_sequential_greedy():
    rng = random.Random(1)
    for _ in range(200):
        n_u, n_v = rng.randint(1, 8), rng.randint(1, 8)
        edges = {(u, n_u + v): rng.random() for u in range(n_u) for v in range(n_v) if rng.random() < 0.5}
        if not edges:
            continue
        u = np.array([e[0] for e in edges])
        v = np.array([e[1] for e in edges])
        w = np.array(list(edges.values()))
        partner = match(u, v, w, n_u + n_v)
        expected = greedy([(w_, u_, v_) for (u_, v_), w_ in edges.items()])
        assert {i: int(p) for i, p in enumerate(partner) if p >= 0} == expected


def test_pairs_do_not_depend_on_the_chunk_size():
    rng = np.random.default_rng(3)
    anns = [{"image": int(rng.integers(0, 5)), "category": "car",
             "box": [*rng.uniform(0, 50, 2).tolist(), *rng.uniform(5, 40, 2).tolist()]} for _ in range(120)]
    boxes = Boxes.of(columns(anns))
    big = boxes.pairs(0.1, 10_000_000)
    small = boxes.pairs(0.1, 7)
    assert len(big[0]) > 50
    for a, b in zip(big, small):
        assert np.array_equal(a, b)
    # And they are right: every pair on one image with IoU >= 0.1, checked one by one.
    image = columns(anns).image[boxes.rows]
    expected = {(i, j) for i in range(len(boxes.rows)) for j in range(i + 1, len(boxes.rows))
                if image[i] == image[j] and boxes.iou(np.array([i]), np.array([j]))[0] >= 0.1}
    assert set(zip(big[0].tolist(), big[1].tolist())) == expected


# ---------------------------------------------------------------------- the store


def batch(name: str, proposals: list[Proposal], n_images: int = 40) -> ImportBatch:
    images = [ImageRecord(key=str(i), file_name=f"{i:03d}.jpg", width=100, height=100, source_id=i)
              for i in range(1, n_images + 1)]
    return ImportBatch(format="coco", source_file=f"{name}.json", images=images,
                       categories=[Category("car"), Category("bus")],
                       proposals=proposals)


def boxes_for(source: str, n: int = 30, shift: float = 0.0) -> list[Proposal]:
    score = 0.9 if source == "model" else None
    return [Proposal(image_key=str(i), category="car", kind="bbox", bbox=[10 + shift, 10, 40, 30], score=score,
                     source_id=i) for i in range(1, n + 1)]


@pytest.fixture
def two_sources(empty_store, tmp_path):
    """Vendor labels and model predictions of the same 30 images; vendor's #1 is a bus."""
    vendor = boxes_for("vendor")
    vendor[0].category = "bus"
    vendor.append(Proposal(image_key="2", category="car", kind="bbox", bbox=[70, 70, 20, 20], source_id=99))
    model = boxes_for("model", shift=1.0)
    model.append(Proposal(image_key="3", category="car", kind="bbox", bbox=[60, 5, 30, 30], score=0.95,
                          source_id=98))
    with Store.open(empty_store) as store:
        for name, props in (("vendor", vendor), ("model", model)):
            store.ingest(batch(name, props), source=name, image_root=tmp_path / "images", check_images=False)
        store.checkpoint()
    return empty_store


def test_scores_are_stored_and_refreshed_when_data_arrives(two_sources, open_store, tmp_path):
    store = open_store(two_sources)
    assert suspicion.refresh(store)["mode"] == "full"
    assert suspicion.refresh(store)["mode"] == "fresh"
    stored = dict(store.conn.execute("SELECT annotation, score FROM suspicion").fetchall())
    # The bus and the model's car on it; the vendor's box the model lacks, and the model's the vendor lacks.
    assert set(stored) == {1, 32, 31, 62}
    assert store.conn.execute("SELECT count(*) FROM suspicion WHERE computed_at IS NULL").fetchone()[0] == 0
    # A decision changes the data: only the images it touched are rescored.
    ReviewSession(store, auto_checkpoint=False).relabel(1, "car")
    info = suspicion.refresh(store)
    assert info["mode"] == "partial" and info["annotations"] == 2
    after = dict(store.conn.execute("SELECT annotation, score FROM suspicion").fetchall())
    assert set(after) == {31, 62}
    # The partial result is what a full recompute gives, up to the store-wide rates it keeps.
    suspicion.refresh(store, force=True)
    full = dict(store.conn.execute("SELECT annotation, score FROM suspicion").fetchall())
    assert set(full) == set(after) and all(abs(full[k] - after[k]) < 0.05 for k in full)
    # A new import changes the data too: everything is rescored.
    more = [Proposal(image_key="40", category="car", kind="bbox", bbox=[1, 1, 0.5, 9], source_id=1)]
    store.ingest(batch("late", more), source="late", image_root=tmp_path / "images", check_images=False)
    assert suspicion.refresh(store)["mode"] == "full"
    assert store.conn.execute("SELECT max(annotation) FROM suspicion").fetchone()[0] == 63


def test_ranked_annotations_carry_score_and_why(two_sources, open_store):
    store = open_store(two_sources)
    anns = suspicion.ranked(store, AnnotationFilter(sources=["vendor"]))
    assert len(anns) == 31 and {a.source for a in anns} == {"vendor"}
    assert anns[0].id in (1, 31) and anns[0].suspicion > 0.5
    top = {a.id: a for a in anns[:2]}
    assert top[1].why[0]["signal"] == "class-mismatch" and top[1].why[0]["other"] == "car"
    assert top[31].why[0]["signal"] == "unmatched"
    assert anns[-1].suspicion == 0 and anns[-1].why == []
    assert [a.suspicion for a in anns] == sorted((a.suspicion for a in anns), reverse=True)
    assert len(suspicion.ranked(store, limit=3)) == 3


def test_queue_in_suspicion_order_per_annotation(two_sources, open_store):
    store = open_store(two_sources)
    q = Queue(store, order="suspicion", resume=False)
    ranked = [a.id for a in suspicion.ranked(store)]
    assert q.flat == ranked and len(q) == 62
    assert q.why(q.current)[0]["signal"] in ("class-mismatch", "unmatched")
    assert q.why(ranked[-1]) is None
    # Next image: the next run of items on another image, never back to an earlier place.
    seen = [q.position]
    while True:
        q.move_image(+1)
        if q.position == seen[-1]:
            break
        assert q.position > seen[-1]
        assert q.current_image != store.annotation(q.flat[seen[-1]]).image_id
        seen.append(q.position)
    q.move_image(-1)
    assert q.position == seen[-2]


def test_queue_image_navigation_unchanged_in_grouped_orders(two_sources, open_store):
    store = open_store(two_sources)
    q = Queue(store, order="file", resume=False)
    q.move(+1)  # the second item on image 1
    assert q.current_image == q.image_order[0]
    assert q.neighbours(1) == [q.image_order[1]]
    q.move_image(+1)
    assert q.current == q.image_items(q.image_order[1])[0]
    assert q.neighbours(1) == [q.image_order[2], q.image_order[0]]
    q.move_image(-5)
    assert q.position == 0


def test_cli_ls_suspicion_json(two_sources):
    r = run_cli("ls", "--order", "suspicion", "--json", "--limit", "4", "--store", str(two_sources))
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert len(rows) == 4
    assert rows[0]["suspicion"] >= rows[1]["suspicion"] >= rows[3]["suspicion"]
    assert {row["id"] for row in rows[:3]} == {1, 31, 62}  # the bus and the two unmatched boxes
    assert all(isinstance(row["why"], list) and row["why"] for row in rows)
    r = run_cli("ls", "--order", "suspicion", "--store", str(two_sources))
    assert r.returncode == 0 and "why here" in r.stdout.splitlines()[0]


def test_compare_two_sources(two_sources, open_store):
    store = open_store(two_sources)
    report = suspicion.compare(store, "vendor", "model")
    s = report["summary"]
    assert (s["a"], s["b"], s["matched"], s["class_mismatch"], s["only_in_a"], s["only_in_b"]) == \
        (31, 31, 29, 1, 1, 1)
    kinds = {(d["kind"], d["a"], d["b"]) for d in report["disagreements"]}
    assert kinds == {("class-mismatch", 1, 32), ("only-in-a", 31, None), ("only-in-b", None, 62)}
    bus = next(c for c in report["classes"] if c["class"] == "bus")
    assert bus["class_mismatch"] == 1
    with pytest.raises(Exception, match="no annotations from source 'nobody'"):
        suspicion.compare(store, "vendor", "nobody")


def test_cli_compare_table_and_json(two_sources):
    r = run_cli("compare", "vendor", "model", "--json", "--store", str(two_sources))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["summary"]["only_in_b"] == 1
    r = run_cli("compare", "vendor", "model", "--store", str(two_sources))
    assert r.returncode == 0, r.stderr
    assert "class-mismatch" in r.stdout and "only-in-b" in r.stdout and "bus" in r.stdout


def test_load_columns_reads_what_the_store_holds(two_sources, open_store):
    store = open_store(two_sources)
    cols = scores.load_columns(store.conn)
    assert len(cols) == 62 and cols.sources == ["vendor", "model"]
    assert cols.box[0].tolist() == [10, 10, 40, 30]
    assert np.isnan(cols.score[0]) and cols.score[31] == 0.9
    assert cols.image_w[0] == 100 and cols.categories[cols.category[0]] == "bus"
    only = scores.load_columns(store.conn, image_ids=[2])
    assert only.id.tolist() == [2, 31, 33]


def test_load_columns_survives_a_box_that_is_not_four_numbers(two_sources, open_store):
    store = open_store(two_sources)
    store.conn.execute("UPDATE annotations SET bbox = '[1, 2, 3]' WHERE id = 5")
    store.conn.execute("UPDATE annotations SET bbox = '[1, 2, 3, 4, 5]' WHERE id = 7")
    cols = scores.load_columns(store.conn)
    assert np.isnan(cols.box[[4, 6]]).all()
    assert cols.box[5].tolist() == [10, 10, 40, 30] and cols.id.tolist() == list(range(1, 63))
