"""Association of tracks to detections: box similarity and one-to-one matching.

A similarity function takes track boxes (T, 4) and detection boxes (N, 4), both xyxy pixels,
and returns a (T, N) matrix where higher is better; `iou_matrix` is the default, any function
with that shape contract can be injected into the trackers (norfair-style).

Matching works on candidate pairs (rows, cols, similarity) at or above a threshold, so large
scenes stay cheap: `iou_pairs` finds the overlapping pairs without the dense T x N matrix
(it gives exactly the pairs of `iou_matrix` that are > 0 and >= the threshold), and most
pairs are unambiguous (one candidate on each side) and need no solver at all.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.optimize import linear_sum_assignment

from models.geometry import box_iou

Similarity = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""(tracks (T, 4) xyxy, detections (N, 4) xyxy) -> (T, N) float, higher is more alike."""

Pairs = tuple[np.ndarray, np.ndarray, np.ndarray]
"""Candidate matches: row (track) indices, column (detection) indices, similarity."""


iou_matrix: Similarity = box_iou
"""The default similarity: IoU of track boxes (T, 4) and detection boxes (N, 4), xyxy, float32 (T, N)."""


_DENSE_PAIRS = 64
"""Up to this many box pairs (T x N), `iou_pairs` tries every pair: fewer numpy calls than the sweep."""


def iou_pairs(a: np.ndarray, b: np.ndarray, min_iou: float) -> Pairs:
    """The pairs of boxes of `a` (T, 4) and `b` (N, 4) with IoU > 0 and >= `min_iou`.

    Sweeps `b` sorted by left edge, so the cost grows with the pairs that overlap in x,
    not with T x N. Same values as `iou_matrix` (float32); pairs by row of `a`, then by left
    edge of `b`.
    """
    a = np.asarray(a, np.float32).reshape(-1, 4)
    b = np.asarray(b, np.float32).reshape(-1, 4)
    if len(a) == 0 or len(b) == 0:
        return np.zeros(0, np.intp), np.zeros(0, np.intp), np.zeros(0, np.float32)
    order = np.argsort(b[:, 0], kind="stable")
    if len(a) * len(b) <= _DENSE_PAIRS:  # every pair, in the order the sweep gives them
        rows, k = np.divmod(np.arange(len(a) * len(b)), len(b))
        cols = order[k]
    else:
        rows, cols = _overlapping_in_x(a, b, order)
    pa, pb = a[rows], b[cols]
    # np.maximum rather than np.clip: the same numbers at a third of the call cost.
    iw = np.maximum(np.minimum(pa[:, 2], pb[:, 2]) - np.maximum(pa[:, 0], pb[:, 0]), 0)
    ih = np.maximum(np.minimum(pa[:, 3], pb[:, 3]) - np.maximum(pa[:, 1], pb[:, 1]), 0)
    inter = iw * ih
    union = (_area(a)[rows] + _area(b)[cols]) - inter
    iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    return select((rows, cols, iou), (iou > 0) & (iou >= min_iou))


def _area(xyxy: np.ndarray) -> np.ndarray:
    return np.maximum(xyxy[:, 2] - xyxy[:, 0], 0) * np.maximum(xyxy[:, 3] - xyxy[:, 1], 0)


def _overlapping_in_x(a: np.ndarray, b: np.ndarray, order: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The (row of a, column of b) pairs whose x ranges may overlap; `order` sorts b by left edge."""
    left = b[order, 0]
    widest = float(np.max(b[:, 2] - b[:, 0]))
    # A box of b can overlap box i of a only if its left edge is in (a.x1 - widest, a.x2).
    lo = np.searchsorted(left, a[:, 0] - widest, side="left")
    hi = np.searchsorted(left, a[:, 2], side="left")
    counts = np.maximum(hi - lo, 0)
    rows = np.repeat(np.arange(len(a)), counts)
    offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    return rows, order[np.repeat(lo, counts) + offsets]


def dense_pairs(similarity: np.ndarray, min_similarity: float) -> Pairs:
    """The entries of a (T, N) similarity matrix that are >= `min_similarity`."""
    sim = np.asarray(similarity)
    rows, cols = np.nonzero(sim >= min_similarity)
    return rows, cols, sim[rows, cols]


def select(pairs: Pairs, mask: np.ndarray) -> Pairs:
    """The candidate pairs where `mask` (one bool per pair) is true."""
    if mask.all():  # often so for the few boxes of a frame: no copies
        return pairs
    rows, cols, sim = pairs
    return rows[mask], cols[mask], sim[mask]


def unmatched(count: int, matched: np.ndarray) -> np.ndarray:
    """The indices in range(count) that are not in `matched`, ascending."""
    free = np.ones(count, bool)
    free[matched] = False
    return free.nonzero()[0]


def _sorted(rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if len(rows) > 1:
        order = np.argsort(rows, kind="stable")
        rows, cols = rows[order], cols[order]
    return rows.astype(np.intp, copy=False), cols.astype(np.intp, copy=False)


def _alone(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Which pairs are the only candidate of their row and of their column."""
    return (np.bincount(rows)[rows] == 1) & (np.bincount(cols)[cols] == 1)


def hungarian_pairs(rows: np.ndarray, cols: np.ndarray, sim: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Optimal one-to-one matching among candidate pairs: most matches, then most similarity.

    Pairs whose row and column have no other candidate are taken directly; the solver
    (scipy's linear_sum_assignment) only sees the contested rest. Returns (rows, cols) by row.
    """
    if len(rows) <= 1:
        return _sorted(rows, cols)
    alone = _alone(rows, cols)
    if alone.all():
        return _sorted(rows, cols)
    out_r, out_c = [rows[alone]], [cols[alone]]
    rest = ~alone
    ur, ri = np.unique(rows[rest], return_inverse=True)
    uc, ci = np.unique(cols[rest], return_inverse=True)
    values = np.asarray(sim[rest], np.float64)
    # A non-candidate costs more than any full set of candidates, so the solver only
    # takes one when nothing else is possible, and it is dropped below.
    big = 2.0 * min(len(ur), len(uc)) * (np.abs(values).max() + 1.0) + 1.0
    cost = np.full((len(ur), len(uc)), big)
    cost[ri, ci] = -values
    r, c = linear_sum_assignment(cost)
    ok = cost[r, c] < big
    out_r.append(ur[r[ok]])
    out_c.append(uc[c[ok]])
    return _sorted(np.concatenate(out_r), np.concatenate(out_c))


def greedy_pairs(rows: np.ndarray, cols: np.ndarray, sim: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Greedy matching among candidate pairs: the most similar remaining pair first.

    Done in vectorised rounds: every pair that comes first in both its row and its column
    (in one global order, ties broken by position) is taken at once; this gives the same
    result as taking pairs one by one. Returns (rows, cols) by row.
    """
    if len(rows) <= 1 or _alone(rows, cols).all():  # no pair competes with another
        return _sorted(rows, cols)
    order = np.argsort(-np.asarray(sim, np.float64), kind="stable")
    r, c = rows[order], cols[order]
    out_r, out_c = [], []
    while len(r):
        row_first = np.zeros(len(r), bool)
        row_first[np.unique(r, return_index=True)[1]] = True
        col_first = np.zeros(len(r), bool)
        col_first[np.unique(c, return_index=True)[1]] = True
        take = row_first & col_first
        out_r.append(r[take])
        out_c.append(c[take])
        left = ~np.isin(r, r[take]) & ~np.isin(c, c[take])
        r, c = r[left], c[left]
    if not out_r:
        return np.zeros(0, np.intp), np.zeros(0, np.intp)
    return _sorted(np.concatenate(out_r), np.concatenate(out_c))


def match_hungarian(similarity: np.ndarray, min_similarity: float) -> tuple[np.ndarray, np.ndarray]:
    """Optimal one-to-one matching on a (T, N) similarity matrix among pairs >= `min_similarity`.

    Most matches first, then the largest total similarity. Returns (rows, cols) by row.
    """
    return hungarian_pairs(*dense_pairs(similarity, min_similarity))


def match_greedy(similarity: np.ndarray, min_similarity: float) -> tuple[np.ndarray, np.ndarray]:
    """Greedy matching on a (T, N) similarity matrix among pairs >= `min_similarity`."""
    return greedy_pairs(*dense_pairs(similarity, min_similarity))
