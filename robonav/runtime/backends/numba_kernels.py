"""The deployment policy step as one Numba kernel over the exported weights, and its plain NumPy reference.

What both compute, from the arrays of ``<model>.npz`` (layout: robonav.deploy.export.write_weights), exactly as
``ActorCritic.step`` and its ONNX graph do:

    x = clip((obs - obs_mean) / obs_std, -obs_clip, obs_clip)
    z = elu(encoder_w{k} @ z + encoder_b{k})                  for each encoder layer k (ELU, alpha 1)
    core 'lstm', layer l < actor_layers (gate order i, f, g, o):
        gates = lstm_w_ih{l} @ z + lstm_w_hh{l} @ h[l] + lstm_b{l}
        c'[l] = sigmoid(f) * c[l] + sigmoid(i) * tanh(g);  h'[l] = sigmoid(o) * tanh(c'[l]);  z = h'[l]
    core 'mlp': z = tanh(core_w @ z + core_b); h, c pass through
    head 'gaussian' (an actor-critic): action = clip(mu_w @ z + mu_b, -1, 1) * action_scale
    head 'argmax' (a Q network): action = primitives[argmax(q_w @ z + q_b)], the first index on ties (as ONNX's
        ArgMax and torch.argmax)
    state rows past actor_layers (a separate critic's) pass through unchanged

`pack_weights` lays every array out in one float32 vector, each matrix transposed to [in, out], so a
matrix-vector product is a run of contiguous updates ``y += x[k] * W^T[k, :]`` over k in input order. LLVM
vectorises that across outputs without fast-math, and the sum runs in the same order on every call and machine
(the dot-product form only vectorises when reassociation is allowed). Every array starts on a 64-byte boundary (a
vector load or store that straddles two cache lines costs about 1.4x here). `layout` (int64) says where each array
lies; `policy_step` reads nothing else, allocates nothing (compiled without NRT, robonav.sensors.jit), and takes
seven arguments (a numba call costs about 60 ns per argument). The recurrent state is one flat float32 vector
[2 * L * H]: h rows (l * H + j), then c rows (L * H + l * H + j), i.e. a [2, L, 1, H] array flattened.

`numpy_step` is the independent reference: it reads the unpacked arrays by name and uses NumPy matmuls.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from robonav.model.heads import HEADS, head_kind
from robonav.sensors.jit import inline_kernel, kernel

__all__ = ["ALIGN", "HEADER", "PackedWeights", "aligned_zeros", "numpy_head_scores", "numpy_step", "pack_weights",
           "policy_step"]

# layout header: sizes and flags, then offsets into the flat weight vector
OBS_DIM, HEAD_OUT, HIDDEN, STATE_LAYERS, ACTOR_LAYERS, RECURRENT, N_ENCODER, WIDTH, ARGMAX = range(9)
MEAN, STD, CLIP, HEAD_W, HEAD_B, TABLE = range(9, 15)
HEADER = 15
"""Header length (HEAD_OUT: the head's outputs, 2 or the primitives; TABLE: action_scale or the primitives
[A, 2]); 4-int records follow: per encoder layer (w, b, n_in, n_out), then per LSTM layer
(w_ih, w_hh, b, n_in) with n_out = 4H, or for an MLP core one (w, b, n_in, n_out = H)."""
ALIGN = 16
"""Floats per 64 bytes: every array in the packed weights and the scratch starts at a multiple of this."""


@dataclass(frozen=True)
class PackedWeights:
    """The weights as `policy_step` reads them."""

    weights: np.ndarray
    """float32 [N]: every array, matrices transposed to [in, out]."""
    layout: np.ndarray
    """int64: header (see HEADER) then one 4-int record per layer."""
    scratch_size: int
    """float32 elements of the kernel's scratch: two activation buffers of WIDTH and the gates (4H)."""


def _round_up(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


def aligned_zeros(size: int, dtype: type = np.float32) -> np.ndarray:
    """A zeroed 1-D array of ``size`` whose data starts on a 64-byte boundary."""
    itemsize = np.dtype(dtype).itemsize
    buf: np.ndarray = np.zeros(size + 64 // itemsize, dtype)
    skip = (-buf.ctypes.data % 64) // itemsize
    return buf[skip:skip + size]


def pack_weights(arrays: Mapping[str, np.ndarray]) -> PackedWeights:
    """Lay the npz arrays out for `policy_step` (arrays validated by the caller: ``numba_backend``)."""
    parts: list[tuple[int, np.ndarray]] = []
    size = 0

    def put(a: np.ndarray) -> int:
        nonlocal size
        flat = np.ascontiguousarray(a, dtype=np.float32).reshape(-1)
        parts.append((size, flat))
        size = _round_up(size + flat.size)
        return parts[-1][0]

    d = int(arrays["obs_mean"].shape[0])
    hidden, state_layers = int(arrays["hidden"]), int(arrays["state_layers"])
    actor_layers = int(arrays["actor_layers"])
    recurrent = str(arrays["core"]) == "lstm"
    header = [0] * HEADER
    header[MEAN], header[STD] = put(arrays["obs_mean"]), put(arrays["obs_std"])
    header[CLIP] = put(np.asarray(arrays["obs_clip"]).reshape(1))
    records: list[int] = []
    widths, k, n_in = [d, hidden], 0, d
    while f"encoder_w{k}" in arrays:
        w = arrays[f"encoder_w{k}"]  # [out, in]
        records += [put(w.T), put(arrays[f"encoder_b{k}"]), n_in, w.shape[0]]
        n_in = w.shape[0]
        widths.append(n_in)
        k += 1
    if recurrent:
        for layer in range(actor_layers):
            records += [put(arrays[f"lstm_w_ih{layer}"].T), put(arrays[f"lstm_w_hh{layer}"].T),
                        put(arrays[f"lstm_b{layer}"]), n_in]
            n_in = hidden
    else:
        records += [put(arrays["core_w"].T), put(arrays["core_b"]), n_in, hidden]
    head = head_kind(arrays)
    argmax = head == "argmax"
    w_name, b_name, table = HEADS[head]
    header[HEAD_W], header[HEAD_B] = put(arrays[w_name].T), put(arrays[b_name])
    header[TABLE], header[ARGMAX] = put(arrays[table]), int(argmax)
    header[OBS_DIM], header[HEAD_OUT], header[HIDDEN] = d, int(arrays[w_name].shape[0]), hidden
    widths.append(header[HEAD_OUT])  # an argmax head's scores go through an activation buffer
    header[STATE_LAYERS], header[ACTOR_LAYERS], header[RECURRENT] = state_layers, actor_layers, int(recurrent)
    header[N_ENCODER], header[WIDTH] = k, _round_up(max(widths))
    weights = aligned_zeros(size)
    for offset, flat in parts:
        weights[offset:offset + flat.size] = flat
    return PackedWeights(weights, np.array(header + records, dtype=np.int64), 2 * header[WIDTH] + 4 * hidden)


@kernel
def _accumulate(w: np.ndarray, w_off: int, x: np.ndarray, x_off: int, n_in: int, n_out: int, y: np.ndarray,
                y_off: int) -> None:
    """y[y_off + r] += sum over k in order of x[x_off + k] * w[w_off + k * n_out + r] (W^T [n_in, n_out])."""
    out = y[y_off:y_off + n_out]  # views: indices known to be >= 0 let LLVM vectorise (no wraparound checks)
    wt = w[w_off:w_off + n_in * n_out].reshape((n_in, n_out))
    k = 0
    while k + 2 <= n_in:  # two input rows per pass: half the loads and stores of y; still summed in k order
        x0, x1 = x[x_off + k], x[x_off + k + 1]
        for r in range(n_out):
            out[r] = out[r] + x0 * wt[k, r] + x1 * wt[k + 1, r]
        k += 2
    if k < n_in:
        x0 = x[x_off + k]
        for r in range(n_out):
            out[r] = out[r] + x0 * wt[k, r]


@inline_kernel
def _tanh(x: float) -> float:
    """tanh through one exp: (1 - e) / (1 + e) with e = exp(-2|x|), sign restored: within 9e-8 of the exact
    value (float32 tanh: 6e-8), where math.tanh costs about five times as much here."""
    e = math.exp(np.float32(-2.0) * abs(x))
    t = (np.float32(1.0) - e) / (np.float32(1.0) + e)
    return t if x >= 0 else -t


@inline_kernel
def _sigmoid1(x: float) -> float:
    return np.float32(1.0) / (np.float32(1.0) + math.exp(-x))


@kernel
def _affine(w: np.ndarray, w_off: int, b_off: int, x: np.ndarray, x_off: int, n_in: int, n_out: int,
            y: np.ndarray, y_off: int) -> None:
    """y[y_off : y_off + n_out] = b + W x, with W^T at w[w_off] and b at w[b_off]."""
    for r in range(n_out):
        y[y_off + r] = w[b_off + r]
    _accumulate(w, w_off, x, x_off, n_in, n_out, y, y_off)


@kernel
def policy_step(obs: np.ndarray, state_in: np.ndarray, state_out: np.ndarray, action: np.ndarray,
                w: np.ndarray, layout: np.ndarray, scratch: np.ndarray) -> None:
    """One step: obs float32 [1, D], state_in [2LH] -> action [2], state_out [2LH] (see the module docstring).

    ``state_out`` must not be ``state_in`` (the backend ping-pongs two buffers); ``scratch`` has
    PackedWeights.scratch_size elements.
    """
    one = np.float32(1.0)
    d, hidden, width = layout[OBS_DIM], layout[HIDDEN], layout[WIDTH]
    lh = layout[STATE_LAYERS] * hidden
    clip = w[layout[CLIP]]
    mean, std = layout[MEAN], layout[STD]
    for i in range(d):
        v = (obs[0, i] - w[mean + i]) / w[std + i]
        if v > clip:
            v = clip
        elif v < -clip:
            v = -clip
        scratch[i] = v
    cur, nxt, gates = 0, width, 2 * width  # two activation buffers and the gates, inside scratch
    rec = HEADER
    for _ in range(layout[N_ENCODER]):
        n_out = layout[rec + 3]
        _affine(w, layout[rec], layout[rec + 1], scratch, cur, layout[rec + 2], n_out, scratch, nxt)
        for r in range(nxt, nxt + n_out):
            if scratch[r] <= 0:
                scratch[r] = math.exp(scratch[r]) - one
        cur, nxt = nxt, cur
        rec += 4
    for j in range(2 * lh):  # rows the core does not write pass through (a separate critic's, an MLP core's)
        state_out[j] = state_in[j]
    if layout[RECURRENT]:
        for layer in range(layout[ACTOR_LAYERS]):
            h0 = layer * hidden
            _affine(w, layout[rec], layout[rec + 2], scratch, cur, layout[rec + 3], 4 * hidden, scratch, gates)
            _accumulate(w, layout[rec + 1], state_in, h0, hidden, 4 * hidden, scratch, gates)
            for j in range(hidden):
                ig = _sigmoid1(scratch[gates + j])
                fg = _sigmoid1(scratch[gates + hidden + j])
                gg = _tanh(scratch[gates + 2 * hidden + j])
                og = _sigmoid1(scratch[gates + 3 * hidden + j])
                c = fg * state_in[lh + h0 + j] + ig * gg
                h = og * _tanh(c)
                state_out[lh + h0 + j] = c
                state_out[h0 + j] = h
                scratch[cur + j] = h  # the next layer's (or the head's) input
            rec += 4
    else:
        _affine(w, layout[rec], layout[rec + 1], scratch, cur, layout[rec + 2], hidden, scratch, nxt)
        for j in range(hidden):
            scratch[cur + j] = _tanh(scratch[nxt + j])
    n_out = layout[HEAD_OUT]
    if layout[ARGMAX]:
        _affine(w, layout[HEAD_W], layout[HEAD_B], scratch, cur, hidden, n_out, scratch, nxt)
        best = 0
        for a in range(1, n_out):
            if scratch[nxt + a] > scratch[nxt + best]:
                best = a
        row = layout[TABLE] + best * action.shape[0]
        for k in range(action.shape[0]):
            action[k] = w[row + k]
        return
    _affine(w, layout[HEAD_W], layout[HEAD_B], scratch, cur, hidden, n_out, action, 0)
    for a in range(n_out):
        v = action[a]
        if v > one:
            v = one
        elif v < -one:
            v = -one
        action[a] = v * w[layout[TABLE] + a]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):  # exp(-x) = inf for x < -88 gives the right 0
        return np.float32(1.0) / (np.float32(1.0) + np.exp(-x))


def numpy_step(arrays: Mapping[str, np.ndarray], obs: np.ndarray, h: np.ndarray, c: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Reference step in float32 NumPy: obs [D] or [1, D], h, c [L, 1, H] -> (action [A], h' [L, 1, H], c')."""
    scores, h_new, c_new = numpy_head_scores(arrays, obs, h, c)
    if head_kind(arrays) == "argmax":
        return np.array(arrays["primitives"][int(np.argmax(scores))], np.float32), h_new, c_new
    return (np.clip(scores, -1.0, 1.0) * arrays["action_scale"]).astype(np.float32), h_new, c_new


def numpy_head_scores(arrays: Mapping[str, np.ndarray], obs: np.ndarray, h: np.ndarray, c: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`numpy_step` up to its head's affine map: (mu [2] or the primitives' Q values [A], h', c')."""
    f32 = np.float32
    x = (np.asarray(obs, f32).reshape(-1) - arrays["obs_mean"]) / arrays["obs_std"]
    clip = f32(arrays["obs_clip"])
    z = np.clip(x, -clip, clip).astype(f32)
    k = 0
    while f"encoder_w{k}" in arrays:
        a = arrays[f"encoder_w{k}"] @ z + arrays[f"encoder_b{k}"]
        z = np.where(a > 0, a, np.exp(np.minimum(a, 0)) - f32(1.0)).astype(f32)
        k += 1
    h_new, c_new = np.array(h, f32, copy=True), np.array(c, f32, copy=True)
    if str(arrays["core"]) == "lstm":
        hidden = int(arrays["hidden"])
        for layer in range(int(arrays["actor_layers"])):
            gates = (arrays[f"lstm_w_ih{layer}"] @ z + arrays[f"lstm_w_hh{layer}"] @ h[layer, 0]
                     + arrays[f"lstm_b{layer}"])
            i, f, g, o = (gates[n * hidden:(n + 1) * hidden] for n in range(4))
            c_new[layer, 0] = _sigmoid(f) * c[layer, 0] + _sigmoid(i) * np.tanh(g)
            h_new[layer, 0] = _sigmoid(o) * np.tanh(c_new[layer, 0])
            z = h_new[layer, 0]
    else:
        z = np.tanh(arrays["core_w"] @ z + arrays["core_b"]).astype(f32)
    w, b, _ = HEADS[head_kind(arrays)]
    return (arrays[w] @ z + arrays[b]).astype(f32), h_new, c_new
