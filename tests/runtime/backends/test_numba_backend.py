"""The Numba backend: kernel against its NumPy reference and by hand, against ONNX Runtime over recorded episodes
through resets, its refusals, and its import floor."""

from __future__ import annotations

import dataclasses
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, note, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent))
from random_weights import random_arrays

from robonav.model.sidecar import ModelHashError, file_sha256, read_sidecar, write_sidecar
from robonav.runtime.backends.base import BackendStateError
from robonav.runtime.backends.numba_backend import TOLERANCE, NumbaBackend, WeightsError
from robonav.runtime.backends.numba_kernels import (
    HEADER,
    aligned_zeros,
    numpy_head_scores,
    numpy_step,
    pack_weights,
    policy_step,
)


def kernel_run(arrays, obs_seq, h, c):
    """Actions [T, 2] and the final (h, c) of policy_step over obs_seq, from state (h, c)."""
    packed = pack_weights(arrays)
    lh = h.size
    s_in, s_out = aligned_zeros(2 * lh), aligned_zeros(2 * lh)
    s_in[:lh], s_in[lh:] = h.reshape(-1), c.reshape(-1)
    action, scratch = np.zeros(2, np.float32), aligned_zeros(packed.scratch_size)
    out = []
    for obs in obs_seq:
        policy_step(obs.reshape(1, -1), s_in, s_out, action, packed.weights, packed.layout, scratch)
        s_in, s_out = s_out, s_in
        out.append(action.copy())
    return np.array(out), s_in[:lh].reshape(h.shape), s_in[lh:].reshape(h.shape)


def test_one_step_pinned_by_hand():
    """D = 2, one encoder unit, H = 1, distinct gate pre-activations (so gate order i, f, g, o matters)."""
    a = random_arrays(np.random.default_rng(0), 2, (1,), 1)
    a.update(obs_mean=np.array([0.0, 1.0], np.float32), obs_std=np.array([1.0, 4.0], np.float32),
             obs_clip=np.float32(5.0), encoder_w0=np.array([[1.0, 2.0]], np.float32),
             encoder_b0=np.array([-1.0], np.float32), lstm_w_ih0=np.array([[1.0], [2.0], [-3.0], [4.0]], np.float32),
             lstm_w_hh0=np.array([[0.5], [0.0], [0.0], [0.0]], np.float32), lstm_b0=np.zeros(4, np.float32),
             mu_w=np.array([[1.0], [-3.0]], np.float32), mu_b=np.zeros(2, np.float32))
    obs = np.array([7.0, -3.0], np.float32)
    # x = clip((7 - 0) / 1, (-3 - 1) / 4) to +-5 = (5, -1); encoder 5 * 1 + -1 * 2 - 1 = 2, ELU(2) = 2;
    # gates from z = 2 and h = 0.2: i = 2 * 1 + 0.2 * 0.5 = 2.1, f = 2 * 2 = 4, g = 2 * -3 = -6, o = 2 * 4 = 8
    i, f, g, o = 2.1, 4.0, -6.0, 8.0
    sig = lambda v: 1.0 / (1.0 + math.exp(-v))  # noqa: E731
    c_new = sig(f) * 0.5 + sig(i) * math.tanh(g)  # 0.491007 + 0.890903 * -0.999988 = -0.399885
    h_new = sig(o) * math.tanh(c_new)  # 0.999665 * -0.379851 = -0.379723
    mu = (h_new, -3.0 * h_new)  # (-0.379723, 1.139170): clipped to (-0.379723, 1), scaled by (0.5, 2): (-0.18986, 2)
    expected = np.array([0.5 * mu[0], 2.0 * 1.0], np.float32)
    h, c = np.full((1, 1, 1), 0.2, np.float32), np.full((1, 1, 1), 0.5, np.float32)
    actions, h2, c2 = kernel_run(a, [obs], h, c)
    np.testing.assert_allclose(actions[0], expected, atol=1e-6)
    np.testing.assert_allclose([h2.item(), c2.item()], [h_new, c_new], atol=1e-6)
    ref, rh, rc = numpy_step(a, obs, h, c)
    np.testing.assert_allclose(ref, expected, atol=1e-6)
    np.testing.assert_allclose([rh.item(), rc.item()], [h_new, c_new], atol=1e-6)


def test_q_head_picks_the_first_best_primitive_by_hand():
    """H = 1 feature h' = -0.379723 (the step above); q = q_w h' + q_b ties at the top between rows 1 and 3: both
    the kernel and the reference return row 1's primitive, as ONNX's ArgMax and torch.argmax do."""
    a = random_arrays(np.random.default_rng(0), 2, (1,), 1, primitives=4)
    a.update(obs_mean=np.array([0.0, 1.0], np.float32), obs_std=np.array([1.0, 4.0], np.float32),
             encoder_w0=np.array([[1.0, 2.0]], np.float32), encoder_b0=np.array([-1.0], np.float32),
             lstm_w_ih0=np.array([[1.0], [2.0], [-3.0], [4.0]], np.float32),
             lstm_w_hh0=np.array([[0.5], [0.0], [0.0], [0.0]], np.float32), lstm_b0=np.zeros(4, np.float32),
             q_w=np.zeros((4, 1), np.float32), q_b=np.array([1.0, 3.0, 2.0, 3.0], np.float32),
             primitives=np.array([[0.5, 0.0], [0.35, 1.0], [0.0, -1.5], [-0.15, 0.0]], np.float32))
    obs, h, c = np.array([7.0, -3.0], np.float32), np.full((1, 1, 1), 0.2, np.float32), np.full((1, 1, 1), 0.5,
                                                                                                  np.float32)
    arc_left, turn_right = a["primitives"][1], a["primitives"][2]
    np.testing.assert_array_equal(kernel_run(a, [obs], h, c)[0][0], arc_left)
    np.testing.assert_array_equal(numpy_step(a, obs, h, c)[0], arc_left)
    a["q_w"] = np.array([[0.0], [0.0], [-10.0], [0.0]], np.float32)  # row 2: 2 + 3.797 = 5.797 wins outright
    np.testing.assert_array_equal(kernel_run(a, [obs], h, c)[0][0], turn_right)
    np.testing.assert_array_equal(numpy_step(a, obs, h, c)[0], turn_right)


configs = st.fixed_dictionaries({
    "d": st.integers(1, 45), "encoder": st.lists(st.integers(1, 37), min_size=0, max_size=3).map(tuple),
    "hidden": st.integers(1, 21), "layers": st.integers(1, 2), "critic": st.booleans(),
    "core": st.sampled_from(["lstm", "mlp"]), "gain": st.sampled_from([0.1, 1.0, 4.0]), "seed": st.integers(0, 99),
    "primitives": st.sampled_from([0, 0, 2, 7, 40])})
adversarial = st.sampled_from([0.0, -0.0, 1e-30, -1e-30, 1e30, -1e30, np.inf, -np.inf, 3.0, -2.5])


@settings(max_examples=40, deadline=None)
@given(cfg=configs, specials=st.lists(adversarial, min_size=1, max_size=6))
def test_kernel_matches_numpy_reference(cfg, specials):
    """Odd sizes, both cores, both heads, stacked layers, a separate critic's pass-through rows, huge and infinite
    inputs."""
    rng = np.random.default_rng(cfg.pop("seed"))
    a = random_arrays(rng, **cfg)
    layers, hidden = int(a["state_layers"]), cfg["hidden"]
    obs_seq = [rng.normal(0.0, 3.0, cfg["d"]).astype(np.float32) for _ in range(4)]
    obs_seq[1][: len(specials)] = np.array(specials, np.float32)[: cfg["d"]]
    h = rng.uniform(-1, 1, (layers, 1, hidden)).astype(np.float32)
    c = rng.normal(0, 2, (layers, 1, hidden)).astype(np.float32)
    actions, kh, kc = kernel_run(a, obs_seq, h, c)
    # float32 sums in another order differ by a few ulps; each layer multiplies that by up to its gain
    tol = {"rtol": 1e-5, "atol": 2e-6 * max(1.0, cfg["gain"]) ** (len(cfg["encoder"]) + cfg["layers"])}
    rh, rc = h, c
    for t, obs in enumerate(obs_seq):
        ref, _, _ = numpy_step(a, obs, rh, rc)
        scores, rh, rc = numpy_head_scores(a, obs, rh, rc)
        if cfg["primitives"]:  # the kernel's primitive is the reference's, or within the sum-order error of its Q
            picked = np.flatnonzero((a["primitives"] == actions[t]).all(axis=1))
            assert picked.size and scores[picked[0]] >= scores.max() - tol["atol"] - tol["rtol"] * abs(scores.max())
            if (actions[t] != ref).any():
                note(f"step {t}: a near-tie ({scores.max() - scores[picked[0]]:.3g}) resolved the other way")
        else:
            np.testing.assert_allclose(actions[t], ref, **tol)
    np.testing.assert_allclose(kh, rh, **tol)
    np.testing.assert_allclose(kc, rc, **tol)
    n = int(a["actor_layers"])
    np.testing.assert_array_equal(kh[n:], h[n:])  # critic rows pass through bit for bit
    if cfg["core"] == "mlp":
        np.testing.assert_array_equal(kc, c)


def test_packed_arrays_start_on_cache_lines():
    packed = pack_weights(random_arrays(np.random.default_rng(1), 13, (7, 5), 3, layers=2))
    assert packed.weights.ctypes.data % 64 == 0
    offsets = [int(x) for x in packed.layout[9:HEADER]] + [int(x) for x in
                                                          packed.layout[HEADER:].reshape(-1, 4)[:, :2].ravel()]
    assert all(o % 16 == 0 for o in offsets)


# ---- against ONNX Runtime on recorded episodes ---------------------------------------------------------------

@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A random two-layer LSTM policy with a separate critic (D = 101), exported (.onnx, .json, .npz)."""
    import torch

    from robonav.deploy.export import export_onnx
    from robonav.policy.actor_critic import ActorCritic, PolicyConfig
    from robonav.policy.checkpoint import save_checkpoint
    from robonav.sensors.spec import ObservationSpec, PreprocessorConfig

    spec = ObservationSpec(PreprocessorConfig(num_bins=16, fine_pixels=4, coarse_pixels=4, grid_cells=128))
    config = PolicyConfig(encoder=(32, 24), hidden=16, layers=2, separate_critic=True)
    torch.manual_seed(0)
    model = ActorCritic(spec.size, config)
    with torch.no_grad():  # statistics away from (0, 1) and a head that reaches the clamp
        model.normalizer.mean.uniform_(-0.5, 0.5)
        model.normalizer.var.uniform_(0.05, 2.0)
        model.mu.weight.normal_(0.0, 1.0)
    meta = {"policy": {**dataclasses.asdict(config), "encoder": list(config.encoder)}, "obs_dim": spec.size,
            "observation_spec": spec.to_dict(), "action_limits": [0.5, 2.0], "control_period": 0.1,
            "observation": "preprocessor"}
    folder = tmp_path_factory.mktemp("numba")
    with torch.inference_mode(False):
        checkpoint = save_checkpoint(folder / "tiny.pt", model.state_dict(), meta)
    return export_onnx(checkpoint, folder / "tiny.onnx")


def test_matches_onnx_runtime_over_recorded_episodes(exported, recording, ort_actions):
    from robonav.deploy.parity import backend_actions, compare_actions

    with NumbaBackend(exported.onnx) as backend:
        report = compare_actions(backend_actions(backend, recording), ort_actions, len(recording.segments),
                                 TOLERANCE)
    print(f"Numba vs ONNX Runtime FP32: max |action error| {report.max_abs_error:.3g} over {report.steps} steps of "
          f"{report.episodes} episodes (tolerance {TOLERANCE:g})")
    assert report.steps >= 1000 and report.passed, report


def test_parity_bites_on_a_changed_weight_and_on_a_missed_reset(exported, recording, ort_actions, tmp_path):
    from robonav.deploy.parity import Recording, backend_actions, compare_actions

    (tmp_path / "m.onnx").write_bytes(exported.onnx.read_bytes())
    with np.load(exported.weights) as f:
        arrays = dict(f)
    arrays["mu_b"] = arrays["mu_b"] + np.float32(1e-3)
    np.savez(tmp_path / "m.npz", **arrays)
    write_sidecar(tmp_path / "m.onnx", dataclasses.replace(read_sidecar(exported.onnx), model_file="m.onnx",
                                                           weights_sha256=file_sha256(tmp_path / "m.npz")))
    with NumbaBackend(tmp_path / "m.onnx") as backend:
        changed = compare_actions(backend_actions(backend, recording), ort_actions, 1)
    assert not changed.passed and changed.max_abs_error > 1e-4
    glued = Recording([np.concatenate(recording.segments)], recording.results[:1])  # one long "episode"
    with NumbaBackend(exported.onnx) as backend:
        no_reset = compare_actions(backend_actions(backend, glued), ort_actions, 1)
    assert not no_reset.passed


def test_reset_zeroes_the_state_and_steps_are_independent_copies(exported, recording):
    obs = recording.segments[0][:5]
    with NumbaBackend(exported.onnx) as backend:
        first = [backend.step(o) for o in obs]
        h, c = backend.state
        assert np.abs(h).max() > 0 and np.abs(c).max() > 0
        backend.reset()
        assert not np.any(backend.state[0]) and not np.any(backend.state[1])
        again = [backend.step(o) for o in obs]
    np.testing.assert_array_equal(first, again)
    assert first[0] is not first[1] and not np.shares_memory(first[0], first[1])


def test_prewarm_between_steps_changes_neither_state_nor_actions(exported, recording):
    obs = recording.segments[0][:20]
    with NumbaBackend(exported.onnx) as plain, NumbaBackend(exported.onnx) as warmed:
        want = [plain.step(o) for o in obs]
        got = []
        for o in obs:
            warmed.prewarm()
            got.append(warmed.step(o))
        warmed.prewarm()
        np.testing.assert_array_equal(warmed.state[0], plain.state[0])
        np.testing.assert_array_equal(warmed.state[1], plain.state[1])
    np.testing.assert_array_equal(got, want)


def test_refuses_missing_mismatched_or_foreign_weights(exported, tmp_path):
    sidecar = read_sidecar(exported.onnx)
    (tmp_path / "x.onnx").write_bytes(exported.onnx.read_bytes())
    with pytest.raises(WeightsError, match=r"no weights file; `robonav export` writes it"):
        NumbaBackend(tmp_path / "x.onnx", sidecar=dataclasses.replace(sidecar, model_file="x.onnx")).open()
    with pytest.raises(WeightsError, match=r"runs FP32 weights, but tiny.onnx is int8"):
        NumbaBackend(exported.onnx, sidecar=dataclasses.replace(sidecar, precision="int8")).open()
    (tmp_path / "tiny.onnx").write_bytes(exported.onnx.read_bytes())

    def forged(arrays: dict[str, np.ndarray]):
        """``arrays`` as tiny.npz and a sidecar that vouches for them: the checks past the hash must still bite."""
        np.savez(tmp_path / "tiny.npz", **arrays)
        return dataclasses.replace(sidecar, weights_sha256=file_sha256(tmp_path / "tiny.npz"))

    with np.load(exported.weights) as f:
        arrays = dict(f)
    arrays["lstm_w_hh1"] = arrays["lstm_w_hh1"][:, :-1]
    with pytest.raises(WeightsError, match=r"lstm_w_hh1 expected \(64, 16\), found \(64, 15\).*another export"):
        NumbaBackend(tmp_path / "tiny.onnx", sidecar=forged(arrays)).open()
    q = random_arrays(np.random.default_rng(2), sidecar.obs_dim, (32, 24), 16, layers=2, critic=True, primitives=3)
    for change, message in [({"primitives": q["primitives"][:1], "q_w": q["q_w"][:1], "q_b": q["q_b"][:1]},
                             r"1 motion primitives, expected at least 2"),
                            ({"q_b": q["q_b"][:2]}, r"q_b expected \(3,\), found \(2,\)"),
                            ({"head": np.array("beta")}, r"head 'beta', expected one of \['argmax', 'gaussian'\]")]:
        with pytest.raises(WeightsError, match=message):
            NumbaBackend(tmp_path / "tiny.onnx", sidecar=dataclasses.replace(
                forged({**q, **change}), head=None)).open()
    with pytest.raises(WeightsError, match=r"head 'argmax', expected 'gaussian' \(the sidecar's head\)"):
        NumbaBackend(tmp_path / "tiny.onnx", sidecar=forged(q)).open()
    del q["q_b"]
    with pytest.raises(WeightsError, match=r"lacks \['q_b'\]"):
        NumbaBackend(tmp_path / "tiny.onnx", sidecar=dataclasses.replace(forged(q), head=None)).open()
    with pytest.raises(ModelHashError, match=r"tiny.npz: weights sha256 [0-9a-f]{64} differs from the sidecar's "
                                             r"0{64}"):
        NumbaBackend(exported.onnx, sidecar=dataclasses.replace(sidecar, weights_sha256="0" * 64)).open()
    backend = NumbaBackend(exported.weights)  # the .npz path names the same model
    assert backend.path == exported.onnx
    with pytest.raises(BackendStateError, match=r"step\(\) on a backend that is not open"):
        backend.step(np.zeros(sidecar.obs_dim, np.float32))


def test_imports_neither_torch_nor_onnx_even_when_running(exported):
    code = ("import sys, numpy as np; from robonav.runtime.backends.numba_backend import NumbaBackend; "
            f"b = NumbaBackend({str(exported.onnx)!r}).open(); b.step(np.zeros({exported.meta.obs_dim}, np.float32)); "
            "print([m for m in ('torch', 'onnx', 'onnxruntime', 'pybullet', 'gymnasium') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
