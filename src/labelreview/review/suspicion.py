"""Suspects first: how likely each annotation is a label error, and why, computed over the whole store.

Every signal is a strength in [0, 1] for one annotation, with the values that explain it (the
"why here" a reviewer sees). The suspicion of an annotation combines its signals as independent
evidence, ``1 - prod(1 - weight * strength)``, so two weak reasons outrank one of them alone and no
single signal type has to be calibrated against the others beyond its weight.

Signals (weights in ``WEIGHTS``):

- ``low-score`` / ``near-threshold``: the proposal's own score is below the decision threshold,
  or close to it on either side. Damped when another source confirms the box (same class, good IoU).
- ``class-mismatch``: another source has a box at IoU >= ``swap_iou`` with a different class
  (as strong as that box's score, when it has one).
- ``low-iou``: another source's matching box (same class) overlaps poorly: below ``loc_iou``, or
  far below how well the two sources usually agree (robust z of the logit IoU): bad localization.
- ``unmatched``: another source that labelled this image has nothing here: a spurious box, or, for a
  prediction, a label missing from the other source. Its strength is how often that source does
  match boxes like this one (same class; same score decile, or same size band when unscored), so
  a model's usual misses (small boxes, say) count less than a surprising one.
- ``duplicate``: the same source has another box of the same class at IoU >= ``dup_iou``.
- ``degenerate`` / ``out-of-image``: a box with no area, or reaching outside its image.
- ``odd-size`` / ``odd-shape``: area (relative to the image) or aspect ratio far outside the
  class's distribution (robust z-score: median and MAD).
- ``low-self-confidence``: the proposal's own class probabilities ({class: p}) give its current
  class a low probability (the label-quality score of confident learning).

When a prediction (a scored proposal) and a label (unscored) disagree on class or on the box, the
label is what the reviewer must fix; the prediction is the evidence, so it counts less (``EVIDENCE``).

The columns come from ``store.scores`` (the SQLite side); everything here is numpy over arrays of
all annotations: pairs of boxes on an image are generated, matched and scored without a Python loop
per annotation (loops run over source pairs, chunks of pairs and matching rounds only).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np
import orjson

from ..model import Annotation, AnnotationFilter, LabelreviewError
from ..store import scores
from ..store.scores import Columns
from ..store.store import utc_now

#: Bump when the scoring changes, so stored scores are recomputed.
VERSION = 1

WEIGHTS: dict[str, float] = {
    "class-mismatch": 0.95,
    "unmatched": 0.9,
    "duplicate": 0.9,
    "degenerate": 1.0,
    "out-of-image": 0.8,
    "low-iou": 0.8,
    "low-self-confidence": 0.9,
    "odd-size": 0.5,
    "odd-shape": 0.5,
    "low-score": 0.4,
    "near-threshold": 0.3,
}
SIGNALS = tuple(WEIGHTS)
#: A prediction that disagrees with a label is the evidence, the label is what to fix: the
#: prediction's class-mismatch and low-iou count this much.
EVIDENCE = 0.3
_W = np.array([WEIGHTS[s] for s in SIGNALS])
_CODE = {s: i for i, s in enumerate(SIGNALS)}

#: Peer bins for the unmatched rate: 10 score deciles, then 4 size bands for unscored boxes.
_SCORE_BINS = 10
_SIZE_EDGES = np.array([-3.0, -2.0, -1.0])  # log10 of the box's share of the image area
_BINS = _SCORE_BINS + len(_SIZE_EDGES) + 1
_PRIOR = 5.0  # pseudo-count pulling a sparse bin's rate to its class's, and a class's to the source's


@dataclass(frozen=True)
class Params:
    threshold: float = 0.5  # the decision threshold the proposals' scores are used with
    band: float = 0.1  # near-threshold: |score - threshold| below this
    match_iou: float = 0.1  # two boxes below this IoU are not the same object
    swap_iou: float = 0.5  # a class mismatch counts at or above this IoU
    loc_iou: float = 0.7  # a matched pair below this IoU: possible bad localization
    dup_iou: float = 0.7  # same source and class at or above this IoU: duplicate
    outlier_z: float = 4.0  # robust z-score where odd-size / odd-shape start
    min_class: int = 20  # a class needs this many boxes before its distribution is trusted
    self_conf: float = 0.5  # low-self-confidence: probability of the given class below this
    max_pairs: int = 4_000_000  # box pairs held at once (memory bound on crowded images)


DEFAULT = Params()


# ---------------------------------------------------------------------- signal rows


@dataclass
class Signals:
    """One row per (annotation, signal) that fired; columns as arrays, appended per signal type."""

    node: list[np.ndarray] = field(default_factory=list)
    kind: list[np.ndarray] = field(default_factory=list)
    strength: list[np.ndarray] = field(default_factory=list)
    value: list[np.ndarray] = field(default_factory=list)  # the measured value shown to the reviewer
    other: list[np.ndarray] = field(default_factory=list)  # the other annotation (row index), -1
    other_cat: list[np.ndarray] = field(default_factory=list)  # category code, -1
    other_src: list[np.ndarray] = field(default_factory=list)  # source code, -1
    iou: list[np.ndarray] = field(default_factory=list)

    def add(self, name: str, node: np.ndarray, strength: np.ndarray, *, value=np.nan, other=-1,
            other_cat=-1, other_src=-1, iou=np.nan) -> None:
        node = np.asarray(node, dtype=np.int64)
        strength = np.clip(np.broadcast_to(np.asarray(strength, dtype=np.float64), node.shape), 0.0, 1.0)
        keep = strength > 0.005
        if not keep.any():
            return
        n = node.shape

        def col(v, dtype):
            return np.broadcast_to(np.asarray(v, dtype=dtype), n)[keep]

        self.node.append(node[keep])
        self.kind.append(np.full(int(keep.sum()), _CODE[name], dtype=np.int16))
        self.strength.append(strength[keep])
        self.value.append(col(value, np.float64))
        self.other.append(col(other, np.int64))
        self.other_cat.append(col(other_cat, np.int32))
        self.other_src.append(col(other_src, np.int32))
        self.iou.append(col(iou, np.float64))

    def arrays(self) -> dict[str, np.ndarray]:
        names = ("node", "kind", "strength", "value", "other", "other_cat", "other_src", "iou")
        dtypes = (np.int64, np.int16, np.float64, np.float64, np.int64, np.int32, np.int32, np.float64)
        return {k: (np.concatenate(getattr(self, k)) if getattr(self, k) else np.zeros(0, dt))
                for k, dt in zip(names, dtypes)}


@dataclass
class Result:
    score: np.ndarray  # per annotation row, in [0, 1]
    signals: dict[str, np.ndarray]  # the rows of Signals.arrays()
    stats: dict[str, Any]  # store-wide statistics (by name), reusable for a partial recompute


# ---------------------------------------------------------------------- the computation


def compute(cols: Columns, params: Params = DEFAULT, stats: dict[str, Any] | None = None) -> Result:
    """Score every row of ``cols``. With ``stats`` (from an earlier run over the whole store) the
    class distributions and match rates are taken from there, so a few images can be rescored."""
    n = len(cols)
    sig = Signals()
    known = stats or {}
    geometry = _geometry(cols, params, sig, known.get("geometry"))
    _self_confidence(cols, params, sig)
    boxes = Boxes.of(cols)
    pairs = boxes.pairs(params.match_iou, params.max_pairs)
    _duplicates(cols, boxes, pairs, params, sig)
    confirmed, match = _cross_sources(cols, boxes, pairs, params, sig, known.get("match"))
    _score(cols, params, sig, confirmed)

    arrays = sig.arrays()
    w = _W[arrays["kind"]] * arrays["strength"]
    log_keep = np.bincount(arrays["node"], weights=np.log1p(-np.minimum(w, 0.999)), minlength=n)
    return Result(1.0 - np.exp(log_keep), arrays,
                  stats if stats is not None else {"geometry": geometry, "match": match})


def _geometry(cols: Columns, params: Params, sig: Signals, known: dict | None) -> dict:
    """Degenerate and out-of-image boxes; area and aspect ratio far outside the class's."""
    x, y, w, h = cols.box.T
    has = np.isfinite(cols.box).all(axis=1) & ~cols.is_label
    bad = has & ((w < 1) | (h < 1))
    sig.add("degenerate", np.flatnonzero(bad), 1.0, value=np.minimum(w, h)[bad])
    with np.errstate(invalid="ignore"):
        dims = np.isfinite(cols.image_w) & np.isfinite(cols.image_h)
        ok = has & ~bad
        sel = np.flatnonzero(ok & dims)
        if len(sel):
            iw, ih = cols.image_w[sel], cols.image_h[sel]
            ix = np.clip(x[sel] + w[sel], 0, iw) - np.clip(x[sel], 0, iw)
            iy = np.clip(y[sel] + h[sel], 0, ih) - np.clip(y[sel], 0, ih)
            outside = 1.0 - (ix * iy) / (w[sel] * h[sel])
            far = (outside > 0.01) | (x[sel] < -2) | (y[sel] < -2) | (x[sel] + w[sel] > iw + 2) | \
                  (y[sel] + h[sel] > ih + 2)
            sig.add("out-of-image", sel[far], np.maximum(0.3, np.minimum(1.0, 3 * outside[far])),
                    value=np.round(outside[far], 4))
    # Robust z of log relative area and log aspect, per (class, whether the image size is known).
    ok_idx = np.flatnonzero(ok)
    names = cols.categories
    known_dims = dims[ok_idx]
    area = w[ok_idx] * h[ok_idx]
    rel = np.where(known_dims, area / np.where(known_dims, cols.image_w[ok_idx] * cols.image_h[ok_idx], 1.0),
                   area)
    feats = {"size": np.log(rel), "shape": np.log(w[ok_idx] / h[ok_idx])}
    group = cols.category[ok_idx].astype(np.int64) * 2 + known_dims
    n_groups = 2 * max(len(names), 1)
    table: dict[str, list[float]] = {}
    if known is None:
        cnt = np.bincount(group, minlength=n_groups)
        med_s, mad_s = _group_median_mad(group, feats["size"], n_groups)
        med_a, mad_a = _group_median_mad(group, feats["shape"], n_groups)
        for g in np.flatnonzero(cnt):
            table[f"{names[g // 2]}|{g % 2}"] = [float(med_s[g]), float(mad_s[g]), float(med_a[g]),
                                                 float(mad_a[g]), int(cnt[g])]
    else:
        table = known
    stat = np.full((n_groups, 5), np.nan)
    for g in range(n_groups):
        row = table.get(f"{names[g // 2]}|{g % 2}") if g // 2 < len(names) else None
        if row:
            stat[g] = row
    enough = stat[group, 4] >= params.min_class
    # Floors on the spread: boxes of one class always vary by a quarter in area, a tenth in shape.
    for name, feat, m, d, floor in (("odd-size", feats["size"], 0, 1, 0.25),
                                    ("odd-shape", feats["shape"], 2, 3, 0.1)):
        with np.errstate(invalid="ignore", divide="ignore"):
            z = (feat - stat[group, m]) / np.maximum(1.4826 * stat[group, d], floor)
        fire = enough & (np.abs(z) > params.outlier_z)
        sig.add(name, ok_idx[fire], (np.abs(z[fire]) - params.outlier_z) / params.outlier_z + 0.25,
                value=np.round(z[fire], 2))
    return table


def _group_median_mad(group: np.ndarray, v: np.ndarray, n_groups: int) -> tuple[np.ndarray, np.ndarray]:
    """Median and median absolute deviation of ``v`` per group (one sort by group; a loop over groups)."""
    order = np.argsort(group, kind="stable")
    bounds = np.searchsorted(group[order], np.arange(n_groups + 1))
    med = np.full(n_groups, np.nan)
    mad = np.full(n_groups, np.nan)
    for g in np.flatnonzero(np.diff(bounds)):
        x = v[order[bounds[g]:bounds[g + 1]]]
        med[g] = np.median(x)
        mad[g] = np.median(np.abs(x - med[g]))
    return med, mad


def _self_confidence(cols: Columns, params: Params, sig: Signals) -> None:
    p = cols.self_p
    fire = np.flatnonzero(np.isfinite(p) & (p < params.self_conf))
    other = np.where(cols.top_class[fire] != cols.category[fire], cols.top_class[fire], -1)
    sig.add("low-self-confidence", fire, 1.0 - p[fire], value=np.round(p[fire], 4), other_cat=other,
            iou=np.where(other >= 0, np.round(cols.top_p[fire], 4), np.nan))


def _score(cols: Columns, params: Params, sig: Signals, confirmed: np.ndarray) -> None:
    """Low score: below the threshold, up to 1 at 0. Near the threshold: within the band either side."""
    s = cols.score
    fin = np.flatnonzero(np.isfinite(s) & ~cols.rejected)
    s_f = s[fin]
    damp = np.where(confirmed[fin], 0.25, 1.0)  # another source agrees: the low score matters less
    low = s_f < params.threshold
    sig.add("low-score", fin[low], damp[low] * (params.threshold - s_f[low]) / params.threshold,
            value=np.round(s_f[low], 4))
    near = np.abs(s_f - params.threshold) < params.band
    sig.add("near-threshold", fin[near], damp[near] * (1 - np.abs(s_f[near] - params.threshold) / params.band),
            value=np.round(s_f[near], 4))


# ---------------------------------------------------------------------- boxes, pairs, matching


@dataclass
class Boxes:
    """The annotations that take part in matching, sorted by (image, geometry kind)."""

    rows: np.ndarray  # row index into the columns
    group: np.ndarray  # dense group number (one image; image-level labels form their own group)
    x0: np.ndarray
    y0: np.ndarray
    x1: np.ndarray
    y1: np.ndarray
    n_groups: int

    @classmethod
    def of(cls, cols: Columns) -> "Boxes":
        x, y, w, h = cols.box.T
        with np.errstate(invalid="ignore"):
            has = np.isfinite(cols.box).all(axis=1) & (w >= 1) & (h >= 1) & ~cols.is_label
        take = (has | cols.is_label) & ~cols.rejected & ~cols.crowd
        rows = np.flatnonzero(take)
        key = cols.image[rows] * 2 + cols.is_label[rows]
        order = np.argsort(key, kind="stable")
        rows, key = rows[order], key[order]
        new = np.r_[True, key[1:] != key[:-1]] if len(key) else np.zeros(0, bool)
        group = np.cumsum(new) - 1
        lab = cols.is_label[rows]
        # Image-level labels are "boxes" covering the whole image: any two overlap with IoU 1.
        bx = np.where(lab[:, None], np.array([0.0, 0.0, 1.0, 1.0]), cols.box[rows])
        return cls(rows, group, bx[:, 0], bx[:, 1], bx[:, 0] + bx[:, 2], bx[:, 1] + bx[:, 3],
                   int(new.sum()))

    def pairs(self, min_iou: float, max_pairs: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every pair (i < j, positions in this sort) on the same image with IoU >= min_iou."""
        n = len(self.rows)
        if n < 2:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
        starts = np.flatnonzero(np.r_[True, self.group[1:] != self.group[:-1]])
        ends = np.r_[starts[1:], n]
        end_of = np.repeat(ends, ends - starts)
        k = end_of - np.arange(n) - 1  # partners after each box within its image
        cum = np.cumsum(k)
        out_i, out_j, out_v = [], [], []
        lo = 0
        while lo < n:  # chunks of boxes whose pairs fit in max_pairs
            base = cum[lo - 1] if lo else 0
            hi = max(lo + 1, int(np.searchsorted(cum, base + max_pairs, side="right")))
            kk = k[lo:hi]
            left = np.repeat(np.arange(lo, hi), kk)
            right = left + 1 + (np.arange(len(left)) - np.repeat(np.cumsum(kk) - kk, kk))
            # Most boxes on an image do not even overlap in x: drop those before the full IoU.
            near = (np.minimum(self.x1[left], self.x1[right]) > np.maximum(self.x0[left], self.x0[right]))
            left, right = left[near], right[near]
            v = self.iou(left, right)
            keep = v >= min_iou
            out_i.append(left[keep])
            out_j.append(right[keep])
            out_v.append(v[keep])
            lo = hi
        return np.concatenate(out_i), np.concatenate(out_j), np.concatenate(out_v)

    def iou(self, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        iw = np.minimum(self.x1[i], self.x1[j]) - np.maximum(self.x0[i], self.x0[j])
        ih = np.minimum(self.y1[i], self.y1[j]) - np.maximum(self.y0[i], self.y0[j])
        inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
        ai = (self.x1[i] - self.x0[i]) * (self.y1[i] - self.y0[i])
        aj = (self.x1[j] - self.x0[j]) * (self.y1[j] - self.y0[j])
        return inter / np.maximum(ai + aj - inter, 1e-12)


def _duplicates(cols: Columns, boxes: Boxes, pairs, params: Params, sig: Signals) -> None:
    i, j, v = pairs
    ri, rj = boxes.rows[i], boxes.rows[j]
    dup = (cols.source[ri] == cols.source[rj]) & (cols.category[ri] == cols.category[rj]) & \
          (v >= params.dup_iou)
    ri, rj, v = ri[dup], rj[dup], v[dup]
    # The weaker of the two (lower score; without scores, the later one) is the likelier copy.
    si = np.nan_to_num(cols.score[ri], nan=-1.0)
    sj = np.nan_to_num(cols.score[rj], nan=-1.0)
    j_weaker = (sj < si) | ((sj == si) & (rj > ri))
    for a, b, weaker in ((ri, rj, ~j_weaker), (rj, ri, j_weaker)):
        sig.add("duplicate", a, np.where(weaker, 1.0, 0.5), other=b, iou=np.round(v, 4))


def match(u: np.ndarray, v: np.ndarray, w: np.ndarray, n_nodes: int) -> np.ndarray:
    """One-to-one greedy matching (heaviest edge first), computed in rounds: an edge that is the
    heaviest of both its ends is in the greedy matching; take all of those, drop their ends, repeat.
    Returns each node's partner or -1. Weights are made distinct first (ties by edge order)."""
    partner = np.full(n_nodes, -1, dtype=np.int64)
    if len(u) == 0:
        return partner
    rank = np.empty(len(w), dtype=np.float64)
    rank[np.argsort(w, kind="stable")] = np.arange(len(w), dtype=np.float64)
    alive = np.arange(len(u))
    for _ in range(64):
        if not len(alive):
            return partner
        eu, ev, ew = u[alive], v[alive], rank[alive]
        best = np.full(n_nodes, -1.0)
        np.maximum.at(best, eu, ew)
        np.maximum.at(best, ev, ew)
        dom = (ew == best[eu]) & (ew == best[ev])
        partner[eu[dom]] = ev[dom]
        partner[ev[dom]] = eu[dom]
        alive = alive[(partner[eu] < 0) & (partner[ev] < 0)]
    for e in alive[np.argsort(-rank[alive], kind="stable")]:  # long chains: finish one by one
        if partner[u[e]] < 0 and partner[v[e]] < 0:
            partner[u[e]], partner[v[e]] = v[e], u[e]
    return partner


def cross_match(cols: Columns, boxes: Boxes, pairs, params: Params, s: int, t: int):
    """Match source s's boxes to source t's, per image. Returns (partner position per box or -1,
    IoU per box with its partner, whether each box's image has boxes of the other source)."""
    i, j, v = pairs
    n = len(boxes.rows)
    src = cols.source[boxes.rows]
    cat = cols.category[boxes.rows]
    fwd = (src[i] == s) & (src[j] == t)
    back = (src[i] == t) & (src[j] == s)
    u = np.where(fwd, i, j)[fwd | back]
    w_ = np.where(fwd, j, i)[fwd | back]
    iou = v[fwd | back]
    same = cat[u] == cat[w_]
    ok = same | (iou >= params.swap_iou)  # different classes only count as one object if they overlap well
    u, w_, iou, same = u[ok], w_[ok], iou[ok], same[ok]
    partner = match(u, w_, iou + 0.05 * same, n)  # the same class breaks near-ties
    piou = np.full(n, np.nan)
    hit = np.flatnonzero(partner >= 0)
    piou[hit] = boxes.iou(hit, partner[hit])
    # "The other source labelled this image": any annotation of it there, even a rejected one.
    k = np.int64(len(cols.sources))
    kind_of = cols.image * 2 + cols.is_label
    have = np.unique(kind_of * k + cols.source)
    other = np.where(src == s, t, s)
    covered = np.isin(kind_of[boxes.rows] * k + other, have)
    return partner, piou, covered


def _peer_bin(cols: Columns, rows: np.ndarray) -> np.ndarray:
    s = cols.score[rows]
    x, y, w, h = cols.box[rows].T
    with np.errstate(invalid="ignore", divide="ignore"):
        img = cols.image_w[rows] * cols.image_h[rows]
        share = np.log10(w * h / np.where(np.isfinite(img), img, 640.0 * 480.0))
    size = _SCORE_BINS + np.searchsorted(_SIZE_EDGES, np.nan_to_num(share, nan=-2.5))
    dec = np.clip(np.floor(np.nan_to_num(s) * _SCORE_BINS), 0, _SCORE_BINS - 1)
    return np.where(np.isfinite(s), dec, size).astype(np.int64)


def _match_rates(cols: Columns, rows: np.ndarray, hit: np.ndarray) -> dict[str, list[float]]:
    """How often the other source matches boxes like these: per class and peer bin, shrunk to the
    class's rate and that to the source's when there are few."""
    cat = cols.category[rows].astype(np.int64)
    key = cat * _BINS + _peer_bin(cols, rows)
    n_cat = len(cols.categories)
    total = (hit.sum() + 1.0) / (len(hit) + 2.0)
    hc = np.bincount(cat, weights=hit, minlength=n_cat)
    nc = np.bincount(cat, minlength=n_cat)
    rate_c = (hc + _PRIOR * total) / (nc + _PRIOR)
    hk = np.bincount(key, weights=hit, minlength=n_cat * _BINS).reshape(n_cat, _BINS)
    nk = np.bincount(key, minlength=n_cat * _BINS).reshape(n_cat, _BINS)
    rate = (hk + _PRIOR * rate_c[:, None]) / (nk + _PRIOR)
    out = {"*": [float(total)] * _BINS}
    for c in np.flatnonzero(nc):
        out[cols.categories[c]] = [round(float(r), 5) for r in rate[c]]
    return out


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 0.01, 0.995)
    return np.log(p / (1 - p))


def _iou_spread(iou: np.ndarray) -> list[float]:
    """Median and MAD of the logit IoU of two sources' matched boxes: how well they usually agree."""
    if len(iou) < 20:
        return [float(_logit(np.array(0.85))), 0.5]
    t = _logit(iou)
    m = float(np.median(t))
    return [m, float(np.median(np.abs(t - m)))]


def _cross_sources(cols: Columns, boxes: Boxes, pairs, params: Params, sig: Signals,
                   known: dict | None):
    """Class mismatches, poor overlaps and unmatched boxes between every two sources."""
    confirmed = np.zeros(len(cols), dtype=bool)
    stats: dict[str, Any] = {}
    src_rows = cols.source[boxes.rows]
    present = np.unique(src_rows)
    scored = np.isfinite(cols.score)
    for a_i, s in enumerate(present):
        for t in present[a_i + 1:]:
            partner, piou, covered = cross_match(cols, boxes, pairs, params, int(s), int(t))
            for me, other in ((int(s), int(t)), (int(t), int(s))):
                pos = np.flatnonzero((src_rows == me) & covered)
                rows = boxes.rows[pos]
                p = partner[pos]
                hit = p >= 0
                key = f"{cols.sources[me]}|{cols.sources[other]}"
                pair_stats = (known or {}).get(key)
                if pair_stats is None:
                    same_hit = hit.copy()
                    same_hit[hit] = cols.category[rows[hit]] == cols.category[boxes.rows[p[hit]]]
                    pair_stats = {"rates": _match_rates(cols, rows, hit.astype(np.float64)),
                                  "iou": _iou_spread(piou[pos[same_hit]])}
                stats[key] = pair_stats
                rates = pair_stats["rates"]
                # unmatched
                um = rows[~hit]
                if len(um):
                    table = np.array([rates.get(c, rates["*"]) for c in cols.categories])
                    strength = table[cols.category[um], _peer_bin(cols, um)]
                    sig.add("unmatched", um, strength, other_src=other)
                # matched: compare class and overlap
                mrow, mpos = rows[hit], pos[hit]
                orow = boxes.rows[p[hit]]
                iou = piou[mpos]
                same = cols.category[mrow] == cols.category[orow]
                o_score = cols.score[orow]
                evidence = np.where(scored[mrow] & ~scored[orow], EVIDENCE, 1.0)
                mis = ~same
                sig.add("class-mismatch", mrow[mis],
                        np.where(np.isfinite(o_score[mis]), o_score[mis], 0.9) * evidence[mis],
                        other=orow[mis], other_cat=cols.category[orow[mis]], other_src=other,
                        iou=np.round(iou[mis], 4))
                # Poor overlap: below loc_iou, or far below how well these two sources usually agree.
                m, d = pair_stats["iou"]
                z = (m - _logit(iou)) / max(1.4826 * d, 0.35)
                strength = np.maximum(np.clip((params.loc_iou - iou) / (params.loc_iou - params.match_iou), 0, 1),
                                      np.clip((z - 1.5) / 2.5, 0, 1) * (iou < 0.8))
                loose = same & (strength > 0.005)
                sig.add("low-iou", mrow[loose], strength[loose] * evidence[loose], other=orow[loose],
                        other_src=other, iou=np.round(iou[loose], 4))
                confirmed[mrow[same & (iou >= params.loc_iou)]] = True
    return confirmed, stats


# ---------------------------------------------------------------------- why, for people


def why_texts(cols: Columns, res: Result) -> list[str | None]:
    """Per row, the JSON list of its signals, strongest first (None when nothing fired).

    Built as text, a column of pieces per field: this runs for every signal of a million-annotation
    store, and numbers are formatted in bulk (one ``orjson.dumps`` of each column, split on commas).
    """
    a = res.signals
    out: list[str | None] = [None] * len(cols)
    n = len(a["node"])
    if not n:
        return out
    eff = _W[a["kind"]] * a["strength"]
    order = np.lexsort((-eff, a["node"]))
    node = a["node"][order]
    kind = a["kind"][order]

    def numbers(values: np.ndarray) -> list[str]:
        return orjson.dumps(values.tolist()).decode()[1:-1].split(",") if len(values) else []

    def field(key: str, rows: np.ndarray, texts) -> list[str]:
        col = [""] * n
        for i, t in zip(rows.tolist(), texts):
            col[i] = f',"{key}":{t}'
        return col

    start = [f'{{"signal":{orjson.dumps(s).decode()},"strength":' for s in SIGNALS]
    columns = [[start[k] for k in kind.tolist()], numbers(np.round(a["strength"][order], 3))]
    value = a["value"][order]
    has = np.flatnonzero(np.isfinite(value))
    columns.append(field("value", has, numbers(value[has])))
    cat = a["other_cat"][order]
    has = np.flatnonzero(cat >= 0)
    names = [orjson.dumps(c).decode() for c in cols.categories]
    columns.append(field("other", has, (names[c] for c in cat[has].tolist())))
    iou = a["iou"][order]
    is_p = kind == _CODE["low-self-confidence"]
    for key, mask in (("iou", ~is_p), ("other_p", is_p)):
        has = np.flatnonzero(np.isfinite(iou) & mask)
        columns.append(field(key, has, numbers(iou[has])))
    src = a["other_src"][order]
    has = np.flatnonzero(src >= 0)
    names = [orjson.dumps(s).decode() for s in cols.sources]
    columns.append(field("source", has, (names[s] for s in src[has].tolist())))
    other = a["other"][order]
    has = np.flatnonzero(other >= 0)
    columns.append(field("id", has, numbers(cols.id[other[has]])))
    frag = ["".join(p) for p in zip(*columns)]
    bounds = np.flatnonzero(np.r_[True, node[1:] != node[:-1], True])
    for lo, hi, row in zip(bounds[:-1].tolist(), bounds[1:].tolist(), node[bounds[:-1]].tolist()):
        out[row] = "[" + "},".join(frag[lo:hi]) + "}]"
    return out


# ---------------------------------------------------------------------- the store side


def refresh(store, params: Params = DEFAULT, *, force: bool = False) -> dict[str, Any]:
    """Bring the stored scores up to date: nothing if nothing changed, the images decisions touched
    if only decisions happened, else everything. Returns what was done."""
    conn = store.conn
    t0 = time.perf_counter()
    fp = scores.fingerprint(conn)  # read first: a change during the computation triggers another
    state = scores.load_state(conn)
    key = {"version": VERSION, "params": asdict(params)}
    same_key = bool(state) and state.get("key") == key
    if not force and same_key and state["fingerprint"] == fp:
        return {"mode": "fresh", "annotations": 0, "seconds": time.perf_counter() - t0}
    old = state["fingerprint"] if same_key else None
    # (A read-only store's own index keeps new scores in temporary tables: all of them, always.)
    partial = (not force and old is not None and getattr(store, "writes_index", True)
               and old["annotations"] == fp["annotations"]
               and old["max_annotation"] == fp["max_annotation"] and fp["events"] > old["events"])
    if partial:  # rescoring a few images with the last full run's statistics; many: start afresh
        images = scores.touched_images(conn, old["events"])
        partial = len(images) <= max(1000, conn.execute("SELECT count(*) FROM images").fetchone()[0] // 20)
    if partial:
        cols = scores.load_columns(conn, image_ids=images)
        res = compute(cols, params, stats=state["stats"])
        stats, replace = state["stats"], cols.id
    else:
        cols = scores.load_columns(conn)
        res = compute(cols, params)
        stats, replace = res.stats, None
    why = why_texts(cols, res)
    scores.save(store, cols.id, res.score, why, state={"key": key, "fingerprint": fp, "stats": stats},
                replace_ids=replace, computed_at=utc_now())
    return {"mode": "partial" if partial else "full", "annotations": len(cols),
            "seconds": time.perf_counter() - t0}


@dataclass(slots=True)
class Suspect(Annotation):
    """An annotation with its place in the suspicion order: the score and the signals behind it."""

    suspicion: float = 0.0
    why: list = field(default_factory=list)


_ANNOTATION_FIELDS = [f.name for f in fields(Annotation)]


def ranked(store, flt: AnnotationFilter | None = None, limit: int | None = None) -> list[Suspect]:
    """The filter's annotations, most suspicious first, each with ``suspicion`` and ``why``."""
    refresh(store)
    out = []
    for row, score, why in scores.ranked_rows(store, flt or AnnotationFilter(), limit):
        a = store._annotation(row)
        out.append(Suspect(**{k: getattr(a, k) for k in _ANNOTATION_FIELDS}, suspicion=round(score, 4),
                           why=why))
    return out


def queue_keys(store, flt: AnnotationFilter | None = None, also: int | None = None) -> list[tuple[int, int]]:
    """(annotation, image) of the filter's annotations in suspicion order (for the review queue);
    ``also``: that annotation too, matching or not."""
    refresh(store)
    return scores.ranked_keys(store, flt or AnnotationFilter(), also)


def why(store, ann_id: int) -> tuple[float, list]:
    """An annotation's stored suspicion and reasons (0 and [] when nothing is suspicious)."""
    return scores.why_of(store.conn, [ann_id]).get(ann_id, (0.0, []))


class WhyLookup:
    """``why`` per annotation for the review screen, read from the index when asked (a dict of
    every item's reasons would cost seconds and a gigabyte at 1M items)."""

    def __init__(self, store):
        self.store = store

    def get(self, ann_id: int, default=None) -> list | None:
        return why(self.store, ann_id)[1] or default

def describe(why: list[dict], limit: int = 3) -> str:
    """A short line for a table: ``class-mismatch car (model, IoU 0.86); unmatched (model)``."""
    parts = []
    for s in why[:limit]:
        name = s.get("signal", "?")
        bits = [str(s[k]) for k in ("other", "source") if k in s]
        if "iou" in s:
            bits.append(f"IoU {s['iou']:.2f}")
        elif "value" in s:
            bits.append(f"{s['value']:g}")
        parts.append(f"{name} ({', '.join(bits)})" if bits else name)
    return "; ".join(parts)


# ---------------------------------------------------------------------- compare two sources


def compare(store, source_a: str, source_b: str, params: Params = DEFAULT) -> dict[str, Any]:
    """Match two sources' boxes per image and list where they disagree."""
    if source_a == source_b:
        raise LabelreviewError("compare needs two different sources")
    cols = scores.load_columns(store.conn, sources=[source_a, source_b])
    missing = [s for s in (source_a, source_b) if s not in cols.sources]
    if missing:
        known = [r[0] for r in store.conn.execute("SELECT DISTINCT source FROM annotations ORDER BY source")]
        raise LabelreviewError(f"no annotations from source {', '.join(map(repr, missing))}; "
                               f"sources: {', '.join(known) or '(none)'}")
    sa, sb = cols.sources.index(source_a), cols.sources.index(source_b)
    boxes = Boxes.of(cols)
    pairs = boxes.pairs(params.match_iou, params.max_pairs)
    partner, piou, covered = cross_match(cols, boxes, pairs, params, sa, sb)
    src = cols.source[boxes.rows]
    cat = cols.category[boxes.rows]
    names = cols.categories
    ids = cols.id[boxes.rows]
    images = cols.image[boxes.rows]
    a_pos = np.flatnonzero((src == sa) & covered)
    b_pos = np.flatnonzero((src == sb) & covered)
    pa = partner[a_pos]
    hit = pa >= 0
    iou = piou[a_pos]
    same = np.zeros(len(a_pos), bool)
    same[hit] = cat[a_pos[hit]] == cat[pa[hit]]
    mismatch = hit & ~same
    loose = hit & same & (iou < params.loc_iou)
    only_a = a_pos[~hit]
    only_b = b_pos[partner[b_pos] < 0]

    def score_of(pos):
        s = cols.score[boxes.rows[pos]]
        return [None if v != v else round(v, 4) for v in s.tolist()]

    rows: list[dict[str, Any]] = []

    def emit(kind, a, b, iou_v):
        a_l = a.tolist() if a is not None else None
        b_l = b.tolist() if b is not None else None
        n = len(a_l if a_l is not None else b_l)
        img = images[a if a is not None else b].tolist()
        sa_ = score_of(a) if a is not None else [None] * n
        sb_ = score_of(b) if b is not None else [None] * n
        iv = [None if v != v else round(v, 4) for v in iou_v.tolist()] if iou_v is not None else [None] * n
        for k in range(n):
            rows.append({
                "image": img[k], "kind": kind,
                "a": int(ids[a_l[k]]) if a_l else None, "a_class": names[cat[a_l[k]]] if a_l else None,
                "a_score": sa_[k],
                "b": int(ids[b_l[k]]) if b_l else None, "b_class": names[cat[b_l[k]]] if b_l else None,
                "b_score": sb_[k], "iou": iv[k]})

    emit("class-mismatch", a_pos[mismatch], pa[mismatch], iou[mismatch])
    emit("low-iou", a_pos[loose], pa[loose], iou[loose])
    emit("only-in-a", only_a, None, None)
    emit("only-in-b", None, only_b, None)
    order = {"class-mismatch": 0, "low-iou": 1, "only-in-a": 2, "only-in-b": 3}
    rows.sort(key=lambda r: (r["image"], order[r["kind"]], r["a"] or 0, r["b"] or 0))
    file_names = dict(store.conn.execute("SELECT id, file_name FROM images").fetchall()) if rows else {}
    for r in rows:
        r["file_name"] = file_names.get(r["image"])

    per_class = []
    n_cat = len(names)

    def count(pos):
        return np.bincount(cat[pos], minlength=n_cat)

    ca, cb = count(a_pos), count(b_pos)
    cm, cmis, closs = count(a_pos[hit & same]), count(a_pos[mismatch]), count(a_pos[loose])
    coa, cob = count(only_a), count(only_b)
    for c in np.flatnonzero(ca + cb):
        per_class.append({"class": names[c], "a": int(ca[c]), "b": int(cb[c]), "matched": int(cm[c]),
                          "class_mismatch": int(cmis[c]), "low_iou": int(closs[c]),
                          "only_in_a": int(coa[c]), "only_in_b": int(cob[c])})
    per_class.sort(key=lambda r: -(r["class_mismatch"] + r["low_iou"] + r["only_in_a"] + r["only_in_b"]))
    both = np.unique(images[np.r_[a_pos, b_pos]])
    summary = {
        "source_a": source_a, "source_b": source_b, "images_compared": int(len(both)),
        "a": int(len(a_pos)), "b": int(len(b_pos)), "matched": int((hit & same).sum()),
        "class_mismatch": int(mismatch.sum()), "low_iou": int(loose.sum()),
        "only_in_a": int(len(only_a)), "only_in_b": int(len(only_b)),
        "a_not_compared": int(((src == sa) & ~covered).sum()),
        "b_not_compared": int(((src == sb) & ~covered).sum()),
        "iou_thresholds": {"match": params.match_iou, "class_mismatch": params.swap_iou,
                           "low_iou": params.loc_iou},
    }
    return {"summary": summary, "classes": per_class, "disagreements": rows}
