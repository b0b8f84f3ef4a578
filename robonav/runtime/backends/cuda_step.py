"""The policy step fused into one Numba CUDA kernel, the recurrent state kept on the device, for one robot or many.

`CudaStepper(packed, batch)` holds the packed weights (robonav.runtime.backends.numba_kernels.pack_weights: the
same layout the CPU kernel reads), the state [batch, 2 L H] and pinned host buffers on the device; ``step(obs)``
is one host-to-device copy of the observations, one kernel launch, one device-to-host copy of the actions. h and
c never leave the device; ``reset(rows)`` zeroes rows there.

The kernel runs one thread block per batch row. The block's threads compute a layer's outputs side by side (each
output a dot product over the layer's input in input order, reading the transposed [in, out] weights so that
neighbouring threads read neighbouring words), the activations live in shared memory, and the layers are
separated by barriers: normalise and clip the observation, the ELU encoder, the LSTM layers (or the MLP core),
the head (Gaussian: clip and scale; argmax: the first best primitive). What it computes is `numpy_step`'s,
held to it by tests that run the kernel in Numba's CUDA simulator (NUMBA_ENABLE_CUDASIM=1, on the CPU); its
speed is measured on a GPU by benchmarks/gpu_step.py.

Importing this module imports numba.cuda, which needs no GPU; building a `CudaStepper` needs one (or the
simulator) and says so in one line otherwise.
"""

from __future__ import annotations

import math

import numpy as np
from numba import cuda, float32, int32

from robonav.runtime.backends.base import BackendError
from robonav.runtime.backends.numba_kernels import (
    ACTOR_LAYERS,
    ARGMAX,
    CLIP,
    HEAD_B,
    HEAD_OUT,
    HEAD_W,
    HEADER,
    HIDDEN,
    MEAN,
    N_ENCODER,
    OBS_DIM,
    RECURRENT,
    STATE_LAYERS,
    STD,
    TABLE,
    WIDTH,
    PackedWeights,
)

__all__ = ["MAX_HIDDEN", "MAX_WIDTH", "CudaStepError", "CudaStepper", "cuda_step_kernel"]

MAX_WIDTH = 1024
"""Largest layer width (observation included) the kernel's shared memory holds."""
MAX_HIDDEN = 256
"""Largest LSTM hidden size (its gates take 4 x this in shared memory)."""


class CudaStepError(BackendError):
    """No CUDA device (nor the simulator), or a model larger than the kernel's shared memory."""


@cuda.jit(device=True, inline=True)
def _sigmoid(x):
    return float32(1.0) / (float32(1.0) + math.exp(-x))


@cuda.jit
def cuda_step_kernel(obs, state, action, w, layout):
    """One step of every batch row: obs [B, D], state [B, 2LH] (updated in place), action [B, A]."""
    row = cuda.blockIdx.x
    tid = cuda.threadIdx.x
    nthreads = cuda.blockDim.x
    buf = cuda.shared.array(2 * MAX_WIDTH, float32)  # two activation buffers
    gates = cuda.shared.array(4 * MAX_HIDDEN, float32)
    hc = cuda.shared.array(2 * MAX_HIDDEN, float32)  # this layer's h and c as they came in
    best = cuda.shared.array(1, int32)
    one = float32(1.0)
    d, hidden = layout[OBS_DIM], layout[HIDDEN]
    lh = layout[STATE_LAYERS] * hidden
    clip = w[layout[CLIP]]
    mean, std = layout[MEAN], layout[STD]
    for i in range(tid, d, nthreads):
        v = (obs[row, i] - w[mean + i]) / w[std + i]
        if v > clip:  # the CPU kernel's comparisons, so a NaN passes through alike
            v = clip
        elif v < -clip:
            v = -clip
        buf[i] = v
    cuda.syncthreads()
    cur, nxt = 0, MAX_WIDTH
    rec = HEADER
    for _ in range(layout[N_ENCODER]):
        wo, bo, n_in, n_out = layout[rec], layout[rec + 1], layout[rec + 2], layout[rec + 3]
        for r in range(tid, n_out, nthreads):
            acc = w[bo + r]
            for k in range(n_in):
                acc += buf[cur + k] * w[wo + k * n_out + r]
            buf[nxt + r] = acc if acc > 0 else math.exp(acc) - one
        cuda.syncthreads()
        cur, nxt = nxt, cur
        rec += 4
    if layout[RECURRENT]:
        for layer in range(layout[ACTOR_LAYERS]):
            h0 = layer * hidden
            wi, wh, bo, n_in = layout[rec], layout[rec + 1], layout[rec + 2], layout[rec + 3]
            for j in range(tid, hidden, nthreads):
                hc[j] = state[row, h0 + j]
                hc[MAX_HIDDEN + j] = state[row, lh + h0 + j]
            cuda.syncthreads()
            n_out = 4 * hidden
            for r in range(tid, n_out, nthreads):
                acc = w[bo + r]
                for k in range(n_in):
                    acc += buf[cur + k] * w[wi + k * n_out + r]
                for k in range(hidden):
                    acc += hc[k] * w[wh + k * n_out + r]
                gates[r] = acc
            cuda.syncthreads()
            for j in range(tid, hidden, nthreads):
                c = _sigmoid(gates[hidden + j]) * hc[MAX_HIDDEN + j] + _sigmoid(gates[j]) * math.tanh(
                    gates[2 * hidden + j])
                h = _sigmoid(gates[3 * hidden + j]) * math.tanh(c)
                state[row, lh + h0 + j] = c
                state[row, h0 + j] = h
                buf[cur + j] = h  # the next layer's (or the head's) input: every read of z is done
            cuda.syncthreads()
            rec += 4
    else:
        wo, bo, n_in = layout[rec], layout[rec + 1], layout[rec + 2]
        for r in range(tid, hidden, nthreads):
            acc = w[bo + r]
            for k in range(n_in):
                acc += buf[cur + k] * w[wo + k * hidden + r]
            buf[nxt + r] = math.tanh(acc)
        cuda.syncthreads()
        cur, nxt = nxt, cur
    n_out = layout[HEAD_OUT]
    wo, bo = layout[HEAD_W], layout[HEAD_B]
    for r in range(tid, n_out, nthreads):
        acc = w[bo + r]
        for k in range(hidden):
            acc += buf[cur + k] * w[wo + k * n_out + r]
        buf[nxt + r] = acc
    cuda.syncthreads()
    width = action.shape[1]
    if layout[ARGMAX]:
        if tid == 0:
            b = 0
            for a in range(1, n_out):
                if buf[nxt + a] > buf[nxt + b]:
                    b = a
            best[0] = b
        cuda.syncthreads()
        for k in range(tid, width, nthreads):
            action[row, k] = w[layout[TABLE] + best[0] * width + k]
        return
    for a in range(tid, n_out, nthreads):
        v = buf[nxt + a]
        if v > one:
            v = one
        elif v < -one:
            v = -one
        action[row, a] = v * w[layout[TABLE] + a]


class CudaStepper:
    """The fused step for ``batch`` robots (or envs): weights, layout and state on the device, pinned host I/O."""

    def __init__(self, packed: PackedWeights, batch: int = 1, threads: int = 256) -> None:
        lay = packed.layout
        if lay[WIDTH] > MAX_WIDTH or lay[HIDDEN] > MAX_HIDDEN:
            raise CudaStepError(f"CudaStepper: the model's widest layer ({int(lay[WIDTH])}) or hidden size "
                                f"({int(lay[HIDDEN])}) exceeds the kernel's shared memory ({MAX_WIDTH}, "
                                f"{MAX_HIDDEN}); run it on the numba or ort backend")
        if batch < 1 or threads < 1:
            raise CudaStepError(f"CudaStepper: batch and threads must be >= 1, got {batch} and {threads}")
        if not cuda.is_available():
            raise CudaStepError("CudaStepper: no CUDA device here (numba.cuda.is_available() is False); use the "
                                "numba backend on the CPU, or NUMBA_ENABLE_CUDASIM=1 to run the kernel simulated")
        self.batch, self.threads = int(batch), int(threads)
        self.obs_dim = int(lay[OBS_DIM])
        size = 2 * int(lay[STATE_LAYERS]) * int(lay[HIDDEN])
        self.stream = cuda.stream()
        self.w = cuda.to_device(packed.weights, stream=self.stream)
        self.layout = cuda.to_device(lay, stream=self.stream)
        self.state = cuda.to_device(np.zeros((self.batch, size), np.float32), stream=self.stream)
        self._zeros = cuda.to_device(np.zeros(size, np.float32), stream=self.stream)
        self.obs_host = cuda.pinned_array((self.batch, self.obs_dim), np.float32)
        self.action_host = cuda.pinned_array((self.batch, 2), np.float32)
        self.obs_dev = cuda.device_array((self.batch, self.obs_dim), np.float32, stream=self.stream)
        self.action_dev = cuda.device_array((self.batch, 2), np.float32, stream=self.stream)
        self.stream.synchronize()

    def reset(self, rows: np.ndarray | None = None) -> None:
        """Zero the state of ``rows`` (all when None), on the device."""
        for r in range(self.batch) if rows is None else np.asarray(rows, np.int64).reshape(-1).tolist():
            self.state[int(r)].copy_to_device(self._zeros, stream=self.stream)
        self.stream.synchronize()

    def step(self, obs: np.ndarray) -> np.ndarray:
        """obs float32 [batch, D] -> actions [batch, 2] (this stepper's pinned buffer: copy it to keep it)."""
        if obs.shape != (self.batch, self.obs_dim) or obs.dtype != np.float32:
            raise CudaStepError(f"CudaStepper.step: expected float32 [{self.batch}, {self.obs_dim}], got "
                                f"{obs.dtype} {list(obs.shape)}")
        self.obs_host[:] = obs
        self.obs_dev.copy_to_device(self.obs_host, stream=self.stream)
        cuda_step_kernel[self.batch, self.threads, self.stream](self.obs_dev, self.state, self.action_dev, self.w,
                                                                self.layout)
        self.action_dev.copy_to_host(self.action_host, stream=self.stream)
        self.stream.synchronize()
        return self.action_host

    def state_host(self) -> np.ndarray:
        """A host copy of the state [batch, 2LH] (h rows, then c rows): for tests, not for a control loop."""
        return np.asarray(self.state.copy_to_host())
