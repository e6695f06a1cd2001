"""Association of tracks to detections: box similarity and one-to-one matching.

A similarity function takes track boxes (T, 4) and detection boxes (N, 4), both xyxy pixels,
and returns a (T, N) matrix where higher is better; `iou_matrix` is the default, any function
with that shape contract can be injected into the trackers (norfair-style).
The matchers return index pairs whose similarity is at least `min_similarity`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.optimize import linear_sum_assignment

Similarity = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""(tracks (T, 4) xyxy, detections (N, 4) xyxy) -> (T, N) float, higher is more alike."""


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of every box of `a` (T, 4) with every box of `b` (N, 4), xyxy.

    Returns float32 (T, N) in 0..1; degenerate boxes (zero area) have IoU 0 with everything.
    """
    a = np.asarray(a, np.float32).reshape(-1, 4)
    b = np.asarray(b, np.float32).reshape(-1, 4)
    # Column by column on purpose: a (T, N, 2) intermediate is several times slower at T = N = 1000.
    iw = np.minimum(a[:, None, 2], b[None, :, 2])
    iw -= np.maximum(a[:, None, 0], b[None, :, 0])
    np.clip(iw, 0, None, out=iw)
    ih = np.minimum(a[:, None, 3], b[None, :, 3])
    ih -= np.maximum(a[:, None, 1], b[None, :, 1])
    np.clip(ih, 0, None, out=ih)
    inter = iw
    inter *= ih
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    union = area_a[:, None] + area_b[None, :]
    union -= inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def _empty_pairs() -> tuple[np.ndarray, np.ndarray]:
    return np.zeros(0, np.intp), np.zeros(0, np.intp)


def match_hungarian(similarity: np.ndarray, min_similarity: float) -> tuple[np.ndarray, np.ndarray]:
    """Optimal one-to-one matching (max total similarity) among pairs >= `min_similarity`.

    Returns (rows, cols) index arrays of equal length, sorted by row.
    """
    sim = np.asarray(similarity, np.float64)
    valid = sim >= min_similarity
    rows_ok = np.flatnonzero(valid.any(axis=1))
    cols_ok = np.flatnonzero(valid.any(axis=0))
    if len(rows_ok) == 0:
        return _empty_pairs()
    # Rows/columns with no admissible pair cannot be matched: solve the smaller problem.
    sub = sim[np.ix_(rows_ok, cols_ok)]
    sub_valid = valid[np.ix_(rows_ok, cols_ok)]
    # An inadmissible pair costs more than any full set of admissible ones, so it is
    # only chosen when nothing else is possible, and is then dropped below.
    scale = np.abs(sub[sub_valid]).max() + 1.0
    cost = np.where(sub_valid, -sub, 2.0 * min(sub.shape) * scale + 1.0)
    r, c = linear_sum_assignment(cost)
    keep = sub_valid[r, c]
    return rows_ok[r[keep]], cols_ok[c[keep]]


def match_greedy(similarity: np.ndarray, min_similarity: float) -> tuple[np.ndarray, np.ndarray]:
    """Greedy matching: repeatedly take the most similar remaining pair >= `min_similarity`.

    Done in vectorised rounds: every pair that is the best of both its row and its column
    is taken at once (the same result as sorting all pairs, for distinct similarities).
    Returns (rows, cols), sorted by row.
    """
    sim = np.array(similarity, np.float64, copy=True)
    if sim.size == 0:
        return _empty_pairs()
    sim[sim < min_similarity] = -np.inf
    rows_out, cols_out = [], []
    while True:
        best_col = np.argmax(sim, axis=1)
        best_val = sim[np.arange(len(sim)), best_col]
        best_row = np.argmax(sim, axis=0)
        rows = np.flatnonzero(np.isfinite(best_val) & (best_row[best_col] == np.arange(len(sim))))
        if len(rows) == 0:
            break
        cols = best_col[rows]
        rows_out.append(rows)
        cols_out.append(cols)
        sim[rows, :] = -np.inf
        sim[:, cols] = -np.inf
    if not rows_out:
        return _empty_pairs()
    rows_all = np.concatenate(rows_out)
    cols_all = np.concatenate(cols_out)
    order = np.argsort(rows_all)
    return rows_all[order], cols_all[order]
