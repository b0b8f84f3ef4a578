"""The fused CUDA step (robonav.runtime.backends.cuda_step) against the NumPy reference, run in Numba's CUDA
simulator on the CPU (a subprocess with NUMBA_ENABLE_CUDASIM=1); its refusals. Its speed needs a GPU
(benchmarks/gpu_step.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from random_weights import random_arrays

from robonav.runtime.backends.numba_kernels import numpy_step, pack_weights

SIMULATED = """
import sys
import numpy as np
from robonav.runtime.backends.cuda_step import CudaStepper
from robonav.runtime.backends.numba_kernels import pack_weights

data = dict(np.load(sys.argv[1], allow_pickle=False))
obs, resets = data.pop("_obs"), data.pop("_resets")
stepper = CudaStepper(pack_weights(data), batch=obs.shape[1], threads=8)
actions = []
for t in range(obs.shape[0]):
    if resets[t] >= 0:
        stepper.reset([int(resets[t])])
    actions.append(stepper.step(obs[t]).copy())
np.savez(sys.argv[2], actions=np.array(actions), state=stepper.state_host())
"""


def _reference(arrays, obs, resets):
    """numpy_step row by row: actions [T, B, 2] and the final state [B, 2LH] (h rows, then c rows)."""
    layers, hidden = int(arrays["state_layers"]), int(arrays["hidden"])
    b = obs.shape[1]
    h = np.zeros((b, layers, 1, hidden), np.float32)
    c = np.zeros_like(h)
    actions = np.zeros((obs.shape[0], b, 2), np.float32)
    for t in range(obs.shape[0]):
        if resets[t] >= 0:
            h[resets[t]] = c[resets[t]] = 0.0
        for r in range(b):
            actions[t, r], h[r], c[r] = numpy_step(arrays, obs[t, r], h[r], c[r])
    return actions, np.concatenate([h.reshape(b, -1), c.reshape(b, -1)], axis=1)


@pytest.mark.parametrize("case", ["lstm-2-layers-critic", "lstm-argmax", "mlp"])
def test_the_fused_kernel_matches_the_numpy_step_in_the_cuda_simulator(case, tmp_path):
    rng = np.random.default_rng(3)
    kw = {"lstm-2-layers-critic": dict(layers=2, critic=True), "lstm-argmax": dict(primitives=5),
          "mlp": dict(core="mlp")}[case]
    arrays = random_arrays(rng, 10, (16, 12), 6, **kw)
    obs = rng.normal(0.0, 2.0, (5, 3, 10)).astype(np.float32)  # 5 steps of 3 robots
    resets = np.array([-1, -1, 1, -1, 0])  # robot 1 starts over before step 2, robot 0 before step 4
    np.savez(tmp_path / "in.npz", **arrays, _obs=obs, _resets=resets)
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1"}
    done = subprocess.run([sys.executable, "-c", SIMULATED, str(tmp_path / "in.npz"), str(tmp_path / "out.npz")],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    got = np.load(tmp_path / "out.npz")
    want_actions, want_state = _reference(arrays, obs, resets)
    np.testing.assert_allclose(got["actions"], want_actions, atol=2e-5)
    np.testing.assert_allclose(got["state"], want_state, atol=2e-5)
    if case == "lstm-2-layers-critic":  # state layers 2, 3 are the critic's: the step passes them through (zeros)
        lh = 4 * 6
        assert not got["state"][:, 2 * 6:lh].any() and not got["state"][:, lh + 2 * 6:].any()
        assert got["state"][:, :2 * 6].any() and got["state"][:, lh:lh + 2 * 6].any()
    assert np.abs(want_actions).max() > 0.05  # the reference moves: the comparison is not of zeros


def test_refusals_name_what_is_wrong():
    from numba import cuda

    from robonav.runtime.backends.cuda_step import CudaStepError, CudaStepper

    arrays = random_arrays(np.random.default_rng(0), 1100, (8,), 4)  # an observation wider than shared memory
    with pytest.raises(CudaStepError, match=r"widest layer \(1104\) or hidden size \(4\) exceeds"):
        CudaStepper(pack_weights(arrays))
    small = pack_weights(random_arrays(np.random.default_rng(0), 6, (8,), 4))
    if cuda.is_available():
        pytest.skip("a CUDA device is here: the no-device refusal cannot be shown")
    with pytest.raises(CudaStepError, match="no CUDA device here"):
        CudaStepper(small)
