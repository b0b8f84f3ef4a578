"""Random policy weights in the layout of robonav.deploy.export.write_weights, for the step kernels' tests."""

from __future__ import annotations

import math

import numpy as np


def random_arrays(rng: np.random.Generator, d: int, encoder: tuple[int, ...], hidden: int, layers: int = 1,
                  critic: bool = False, core: str = "lstm", gain: float = 1.0, primitives: int = 0
                  ) -> dict[str, np.ndarray]:
    """Weights in the layout of robonav.deploy.export.write_weights, random (``gain`` scales the matrices); with
    ``primitives`` > 0 a Q network's argmax head over that many (v, omega) pairs, else the Gaussian head."""
    def w(*shape: int) -> np.ndarray:
        return (gain * rng.normal(0.0, 1.0 / math.sqrt(shape[-1]), size=shape)).astype(np.float32)

    a = {"format": np.array("robonav.weights/1"), "core": np.array(core), "obs_clip": np.float32(5.0),
         "obs_mean": rng.normal(size=d).astype(np.float32), "obs_std": rng.uniform(0.05, 3.0, d).astype(np.float32)}
    width = d
    for k, out in enumerate(encoder):
        a[f"encoder_w{k}"], a[f"encoder_b{k}"], width = w(out, width), w(out), out
    if core == "lstm":
        for layer in range(layers):
            a[f"lstm_w_ih{layer}"], a[f"lstm_w_hh{layer}"] = w(4 * hidden, width), w(4 * hidden, hidden)
            a[f"lstm_b{layer}"], width = w(4 * hidden), hidden
    else:
        a["core_w"], a["core_b"] = w(hidden, width), w(hidden)
    if primitives:
        a["head"], a["q_w"], a["q_b"] = np.array("argmax"), w(primitives, hidden), w(primitives)
        a["primitives"] = rng.uniform(-2.0, 2.0, (primitives, 2)).astype(np.float32)
    else:
        a["mu_w"], a["mu_b"] = w(2, hidden), w(2)
        a["action_scale"] = np.array([0.5, 2.0], np.float32)
    a["actor_layers"], a["hidden"] = np.int64(layers), np.int64(hidden)
    a["state_layers"] = np.int64(layers * (1 + critic))
    return a
