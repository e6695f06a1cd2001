"""HOTA (Luiten et al., IJCV 2021): detection and association accuracy over IoU thresholds.

For each alpha in 0.05, 0.10, ..., 0.95: per frame, GT and predicted boxes are paired one to
one maximising IoU x the global alignment of their two identities (how much of their whole
trajectories overlap), and pairs with IoU >= alpha are true positives. DetA = TP / (TP + FN
+ FP); AssA = the mean over true positives of the Jaccard overlap of the two trajectories'
matched frames; HOTA(alpha) = sqrt(DetA * AssA), and HOTA is its mean over alpha. This is
the definition of the reference implementation (TrackEval), sums kept so sequences add up.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

ALPHAS = np.arange(0.05, 0.99, 0.05)  # the 19 thresholds, built as the reference does
_EPS = np.finfo(float).eps

Frame = tuple[np.ndarray, np.ndarray, np.ndarray]
"""(gt ids (G,), predicted ids (P,), IoU (G, P)) of one frame."""


@dataclass(frozen=True)
class HotaSums:
    """Per-alpha sums of one or more sequences (19 values each)."""

    tp: tuple[float, ...] = (0.0,) * len(ALPHAS)
    fn: tuple[float, ...] = (0.0,) * len(ALPHAS)
    fp: tuple[float, ...] = (0.0,) * len(ALPHAS)
    ass: tuple[float, ...] = (0.0,) * len(ALPHAS)  # sum over true positives of their association score
    loc: tuple[float, ...] = (0.0,) * len(ALPHAS)  # sum of the IoU of true positives

    def __add__(self, other: HotaSums) -> HotaSums:
        return HotaSums(
            *(tuple(np.add(a, b).tolist()) for a, b in zip(self._arrays(), other._arrays(), strict=True))
        )

    def _arrays(self) -> tuple[np.ndarray, ...]:
        return tuple(np.asarray(v, np.float64) for v in (self.tp, self.fn, self.fp, self.ass, self.loc))

    def curves(self) -> dict[str, np.ndarray]:
        """HOTA, DetA, AssA, LocA per alpha."""
        tp, fn, fp, ass, loc = self._arrays()
        det_a = tp / np.maximum(1.0, tp + fn + fp)
        ass_a = ass / np.maximum(1.0, tp)
        return {
            "hota": np.sqrt(det_a * ass_a),
            "det_a": det_a,
            "ass_a": ass_a,
            "loc_a": np.maximum(1e-10, loc) / np.maximum(1e-10, tp),
        }


def hota_sums(frames: Sequence[Frame]) -> HotaSums:
    """HOTA sums of one sequence from its frames' ids and IoU matrices."""
    gt_ids = np.unique(np.concatenate([f[0] for f in frames] or [np.zeros(0, np.int64)]))
    pred_ids = np.unique(np.concatenate([f[1] for f in frames] or [np.zeros(0, np.int64)]))
    indexed = [(np.searchsorted(gt_ids, o), np.searchsorted(pred_ids, h), iou) for o, h, iou in frames]

    # 1. How strongly each pair of identities is aligned over the whole sequence.
    potential = np.zeros((len(gt_ids), len(pred_ids)))
    gt_count = np.zeros(len(gt_ids))
    pred_count = np.zeros(len(pred_ids))
    for gi, pi, iou in indexed:
        denom = iou.sum(axis=0)[None, :] + iou.sum(axis=1)[:, None] - iou
        potential[np.ix_(gi, pi)] += np.divide(iou, denom, out=np.zeros_like(iou), where=denom > _EPS)
        gt_count[gi] += 1
        pred_count[pi] += 1
    alignment = potential / np.maximum(gt_count[:, None] + pred_count[None, :] - potential, _EPS)

    # 2. Per frame, the best pairing under that alignment, thresholded at every alpha.
    tp, fn, fp, loc = (np.zeros(len(ALPHAS)) for _ in range(4))
    alpha_idx, pair_codes = [], []
    for gi, pi, iou in indexed:
        if len(gi) == 0 or len(pi) == 0:
            fn += len(gi)
            fp += len(pi)
            continue
        r, c = linear_sum_assignment(-(alignment[np.ix_(gi, pi)] * iou))
        sim = iou[r, c]
        hit = sim[None, :] >= ALPHAS[:, None] - _EPS  # (alphas, pairs)
        n = hit.sum(axis=1)
        tp += n
        fn += len(gi) - n
        fp += len(pi) - n
        loc += (hit * sim[None, :]).sum(axis=1)
        a, k = np.nonzero(hit)
        alpha_idx.append(a)
        pair_codes.append(gi[r[k]] * len(pred_ids) + pi[c[k]])

    # 3. Association: Jaccard of the matched frames of each identity pair, per alpha.
    ass: np.ndarray = np.zeros(len(ALPHAS))  # float sums (bincount with weights)
    if alpha_idx:
        codes = np.concatenate(alpha_idx) * (len(gt_ids) * len(pred_ids)) + np.concatenate(pair_codes)
        unique, counts = np.unique(codes, return_counts=True)
        a, pair = np.divmod(unique, len(gt_ids) * len(pred_ids))
        g, p = np.divmod(pair, len(pred_ids))
        score = counts / np.maximum(1.0, gt_count[g] + pred_count[p] - counts)
        ass = np.bincount(a, weights=counts * score, minlength=len(ALPHAS))
    return HotaSums(*(tuple(v.tolist()) for v in (tp, fn, fp, ass, loc)))
