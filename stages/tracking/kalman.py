"""Constant-velocity Kalman filter over boxes, vectorised over many tracks at once.

State per track: (cx, cy, w, h, vcx, vcy, vw, vh) — box centre and size in pixels and their
velocities in pixels per frame. Measurement: (cx, cy, w, h). Process and measurement noise
scale with the box size (as in DeepSORT/ByteTrack), so one setting suits small and large
objects alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_DIM = 4
_F = np.eye(2 * _DIM)
_F[:_DIM, _DIM:] = np.eye(_DIM)  # position += velocity (one frame)


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

    def _size_scale(self, wh: np.ndarray) -> np.ndarray:
        # (N, 4) with the width for x-like terms and the height for y-like terms.
        wh = np.maximum(wh, 1.0)
        return np.concatenate([wh, wh], axis=1)

    def initiate(self, xyxy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """New tracks from measured boxes: mean (N, 8) with zero velocity, covariance (N, 8, 8)."""
        z = xyxy_to_cxcywh(xyxy)
        mean = np.concatenate([z, np.zeros_like(z)], axis=1)
        s = self._size_scale(z[:, 2:])
        std = np.concatenate([2 * self.std_position * s, 10 * self.std_velocity * s], axis=1)
        cov = np.zeros((len(z), 2 * _DIM, 2 * _DIM))
        idx = np.arange(2 * _DIM)
        cov[:, idx, idx] = std**2
        return mean, cov

    def predict(self, mean: np.ndarray, cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One frame ahead for every track: (N, 8), (N, 8, 8) -> same shapes (new arrays)."""
        if len(mean) == 0:
            return mean.copy(), cov.copy()
        s = self._size_scale(mean[:, 2:4])
        q = np.concatenate([self.std_position * s, self.std_velocity * s], axis=1) ** 2
        mean = mean @ _F.T
        cov = _F @ cov @ _F.T
        idx = np.arange(2 * _DIM)
        cov[:, idx, idx] += q
        return mean, cov

    def update(self, mean: np.ndarray, cov: np.ndarray, xyxy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Correct N predicted states with their N measured boxes (row i with row i)."""
        if len(mean) == 0:
            return mean.copy(), cov.copy()
        z = xyxy_to_cxcywh(xyxy)
        r = (self.std_position * self._size_scale(mean[:, 2:4])) ** 2
        s_mat = cov[:, :_DIM, :_DIM].copy()  # H P H^T, H = [I 0]
        idx = np.arange(_DIM)
        s_mat[:, idx, idx] += r
        # K = P H^T S^-1 = (S^-1 H P)^T for symmetric P and S: solved rather than inverted.
        gain = np.linalg.solve(s_mat, cov[:, :_DIM, :]).transpose(0, 2, 1)
        innovation = z - mean[:, :_DIM]
        mean = mean + np.einsum("nij,nj->ni", gain, innovation)
        cov = cov - gain @ s_mat @ gain.transpose(0, 2, 1)
        return mean, cov

    @staticmethod
    def boxes(mean: np.ndarray) -> np.ndarray:
        """The xyxy boxes of states (N, 8)."""
        return cxcywh_to_xyxy(mean[:, :_DIM])
