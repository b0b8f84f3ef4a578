"""Sensor and odometry error models of the simulator: what turns the true world into what a robot reports.

Scans are corrupted as a real driver reports them (REP 117): Gaussian range noise, NaN for invalid readings
(dropouts), +inf where nothing returns within range_max, -inf nearer than range_min. Odometry is the true motion
seen through a per-episode wheel-scale error and heading drift plus per-tick noise proportional to the motion.
"""

from __future__ import annotations

import numpy as np


def corrupt_scan(true_ranges: np.ndarray, counts: np.ndarray, noise_std: np.ndarray, dropout: np.ndarray,
                 range_min: float, range_max: float, rngs: list[np.random.Generator], out: np.ndarray) -> None:
    """REP 117 scan [N, B] from exact distances [N, B]; columns past ``counts[i]`` become NaN (padding).

    Each env draws from its own episode stream ``rngs[i]``, so an episode's noise depends only on its seed.
    """
    n, b = true_ranges.shape
    gauss = np.zeros((n, b))
    drop = np.ones((n, b))
    for i, (rng, k) in enumerate(zip(rngs, counts.tolist())):
        rng.standard_normal(out=gauss[i, :k])  # the same numbers as standard_normal(k), drawn in place
        rng.random(out=drop[i, :k])
    noisy = true_ranges + gauss * noise_std[:, None]
    with np.errstate(over="ignore"):  # +inf (no return) cast to float32 stays +inf
        np.copyto(out, noisy, casting="unsafe")
    out[noisy < range_min] = -np.inf
    out[~(noisy <= range_max)] = np.inf  # beyond range, and exact misses (inf + noise)
    out[drop < dropout[:, None]] = np.nan
    out[np.arange(b)[None, :] >= counts[:, None]] = np.nan


def odometry_delta(true_delta: np.ndarray, scale: np.ndarray, heading_drift: np.ndarray,
                   trans_noise: np.ndarray, rot_noise: np.ndarray, rngs: list[np.random.Generator]) -> np.ndarray:
    """Measured (dx, dy, dtheta) [N, 3] from the true delta [N, 3] in the previous robot frame.

    ``scale`` multiplies distance (wheel-radius error), ``heading_drift`` adds rad per metre driven (wheel-base
    error), and the per-tick noise is proportional to the distance and angle moved, so a robot at rest reports
    no motion (encoders do not drift while standing).
    """
    dist = np.hypot(true_delta[:, 0], true_delta[:, 1])
    turn = np.abs(true_delta[:, 2])
    k = (1.0 + scale)[:, None]
    z = np.empty((len(dist), 3))
    for i, rng in enumerate(rngs):
        rng.standard_normal(out=z[i])
    out = np.empty_like(true_delta)
    out[:, :2] = true_delta[:, :2] * k + z[:, :2] * (trans_noise * dist)[:, None]
    out[:, 2] = true_delta[:, 2] + heading_drift * dist + z[:, 2] * (rot_noise * turn + 0.5 * rot_noise * dist)
    return out
