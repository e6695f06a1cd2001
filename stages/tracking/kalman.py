"""Constant-velocity Kalman filter over boxes, vectorised over many tracks at once.

State per track: (cx, cy, w, h, vcx, vcy, vw, vh) — box centre and size in pixels and their
velocities in pixels per frame. Measurement: (cx, cy, w, h). Process and measurement noise
scale with the box size (as in DeepSORT/ByteTrack), so one setting suits small and large
objects alike.

The motion, the noise and the measurement all act on each coordinate on its own, so the 8x8
covariance is four independent 2x2 blocks (a coordinate and its velocity) and zero elsewhere.
It is kept as those blocks, shape (N, 2, 2, 4): `cov[n, a, b, i]` is the covariance of
(coordinate i, or its velocity if a = 1) with (coordinate i, or its velocity if b = 1). Predict
and update are then a few element-wise operations on (N, 4) arrays, with the same results as
the 8x8 matrix products (products with the exact zeros add nothing) at a fraction of the cost
for the few tracks of a frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_DIM = 4
_SCALE = np.array([0, 1, 0, 1])  # the width for x-like terms, the height for y-like terms


def xyxy_to_cxcywh(xyxy: np.ndarray) -> np.ndarray:
    """(N, 4) corners -> (N, 4) centre x, centre y, width, height."""
    xyxy = np.asarray(xyxy, np.float64).reshape(-1, 4)
    wh = xyxy[:, 2:] - xyxy[:, :2]
    return np.concatenate([xyxy[:, :2] + wh / 2, wh], axis=1)


def cxcywh_to_xyxy(cxcywh: np.ndarray) -> np.ndarray:
    """(N, 4) centre x, centre y, width, height -> (N, 4) corners (size clamped to >= 1 px)."""
    cxcywh = np.asarray(cxcywh, np.float64).reshape(-1, 4)
    half = np.maximum(cxcywh[:, 2:], 1.0) / 2
    return np.concatenate([cxcywh[:, :2] - half, cxcywh[:, :2] + half], axis=1)


@dataclass(frozen=True)
class BoxKalman:
    """Kalman filter settings.

    std_position: standard deviation of position/size noise, as a fraction of the box size
        (per frame for the process, per measurement for the detector).
    std_velocity: standard deviation of velocity noise, fraction of the box size per frame.
    """

    std_position: float = 1.0 / 20
    std_velocity: float = 1.0 / 160

    @staticmethod
    def _size_scale(wh: np.ndarray) -> np.ndarray:
        # (N, 4) with the width for x-like terms and the height for y-like terms.
        return np.maximum(wh, 1.0).take(_SCALE, axis=1)

    def initiate(self, xyxy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """New tracks from measured boxes: mean (N, 8) with zero velocity, covariance (N, 2, 2, 4)."""
        z = xyxy_to_cxcywh(xyxy)
        mean = np.concatenate([z, np.zeros_like(z)], axis=1)
        s = self._size_scale(z[:, 2:])
        cov = np.zeros((len(z), 2, 2, _DIM))
        cov[:, 0, 0] = (2 * self.std_position * s) ** 2
        cov[:, 1, 1] = (10 * self.std_velocity * s) ** 2
        return mean, cov

    def predict(self, mean: np.ndarray, cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One frame ahead for every track: (N, 8), (N, 2, 2, 4) -> same shapes (new arrays)."""
        s = self._size_scale(mean[:, 2:4])
        mean = mean.copy()
        mean[:, :_DIM] += mean[:, _DIM:]  # F x: position += velocity
        cov = cov.copy()
        cov[:, 0] += cov[:, 1]  # F P: the position row gains the velocity row ...
        cov[:, :, 0] += cov[:, :, 1]  # ... and (F P) F^T the position column the velocity column
        cov[:, 0, 0] += (self.std_position * s) ** 2
        cov[:, 1, 1] += (self.std_velocity * s) ** 2
        return mean, cov

    def update(self, mean: np.ndarray, cov: np.ndarray, xyxy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Correct N predicted states with their N measured boxes (row i with row i)."""
        z = xyxy_to_cxcywh(xyxy)
        # S = H P H^T + R is diagonal (one variance per coordinate): S^-1 is a reciprocal, multiplied
        # as OpenBLAS's np.linalg.solve does with a diagonal S, so the bits are the matrix form's.
        s = cov[:, 0, 0] + (self.std_position * self._size_scale(mean[:, 2:4])) ** 2
        gain = cov[:, 0] * (1.0 / s)[:, None]  # K = P H^T S^-1: (N, 2, 4), position and velocity
        innovation = z - mean[:, :_DIM]
        mean = mean + (gain * innovation[:, None]).reshape(-1, 2 * _DIM)
        cov = cov - (gain * s[:, None])[:, :, None] * gain[:, None]  # P - K S K^T
        return mean, cov

    @staticmethod
    def boxes(mean: np.ndarray) -> np.ndarray:
        """The xyxy boxes of states (N, 8)."""
        return cxcywh_to_xyxy(mean[:, :_DIM])
