"""CLEAR-MOT counting, frame by frame, with py-motmetrics 1.4's rules (its MOTAccumulator).

Matches of the previous frame are kept when still possible; the rest are assigned by minimum
total (1 - IoU) (Hungarian, scipy); a match that contradicts an object's previous one is an ID
switch. `pipeline.evaluation.mot` feeds it and turns the counts into a `MotReport`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment


@dataclass
class ClearMotCounts:
    """The CLEAR-MOT counts of a sequence, frame by frame (motmetrics' accumulator rules)."""

    last_match: dict[int, int] = field(default_factory=dict)  # object id -> its last predicted id
    matched_flags: dict[int, list[bool]] = field(default_factory=dict)  # object -> matched? per frame
    matches: int = 0
    switches: int = 0
    false_positives: int = 0
    misses: int = 0
    sum_distance: float = 0.0

    def fragmentations(self) -> int:
        """Fragmentations summed over all objects."""
        return sum(_fragmentations(flags) for flags in self.matched_flags.values())

    def add_frame(self, oids: list[int], hids: np.ndarray, dist: np.ndarray) -> None:
        """One frame: object ids, predicted ids, and their (1 - IoU) distances (NaN: cannot match)."""
        o_done = np.zeros(len(oids), bool)
        h_done = np.zeros(len(hids), bool)
        if len(oids) and len(hids):
            self._keep_last_matches(oids, hids, dist, o_done, h_done)
            self._assign_the_rest(oids, hids, dist, o_done, h_done)
        self.misses += int((~o_done).sum())
        self.false_positives += int((~h_done).sum())
        for o, done in zip(oids, o_done.tolist(), strict=True):
            self.matched_flags.setdefault(o, []).append(done)

    def _keep_last_matches(
        self, oids: list[int], hids: np.ndarray, dist: np.ndarray, o_done: np.ndarray, h_done: np.ndarray
    ) -> None:
        """Keep last frame's correspondences where they still hold."""
        for i, o in enumerate(oids):
            if o not in self.last_match:
                continue
            free = np.flatnonzero(~h_done & (hids == self.last_match[o]))
            if len(free) and np.isfinite(dist[i, free[0]]):
                o_done[i], h_done[free[0]] = True, True
                self.matches += 1
                self.sum_distance += dist[i, free[0]]

    def _assign_the_rest(
        self, oids: list[int], hids: np.ndarray, dist: np.ndarray, o_done: np.ndarray, h_done: np.ndarray
    ) -> None:
        """Assign the rest; a new partner for a previously matched object is a switch."""
        rest = dist.copy()
        rest[o_done, :] = np.nan
        rest[:, h_done] = np.nan
        for i, j in zip(*_assign(rest), strict=True):
            o, h = oids[i], int(hids[j])
            if o in self.last_match and self.last_match[o] != h:
                self.switches += 1
            else:
                self.matches += 1
            self.sum_distance += rest[i, j]
            self.last_match[o] = h
            o_done[i], h_done[j] = True, True


def _assign(dist: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Most matches, then least total distance, among the finite entries of `dist`."""
    valid = np.isfinite(dist)
    if not valid.any():
        return np.zeros(0, np.intp), np.zeros(0, np.intp)
    # Invalid pairs cost more than any full set of valid ones (motmetrics' construction).
    big = 2 * min(dist.shape) * (np.abs(dist[valid]).max() + 1) + 1
    r, c = linear_sum_assignment(np.where(valid, dist, big))
    keep = valid[r, c]
    return r[keep], c[keep]


def _fragmentations(matched: list[bool]) -> int:
    """Times a trajectory goes from matched to unmatched, between its first and last match."""
    m = np.asarray(matched, bool)
    hits = np.flatnonzero(m)
    if len(hits) == 0:
        return 0
    span = m[hits[0] : hits[-1] + 1]
    return int((span[:-1] & ~span[1:]).sum())
