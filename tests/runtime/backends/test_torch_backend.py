"""The PyTorch backend: the module rebuilt from exported weights against ActorCritic.step, the CPU backend against
ONNX Runtime over recorded episodes, and (marked gpu) the CUDA-graph backend: parity, ping-pong, transfers."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from robonav.deploy.export import write_weights
from robonav.policy.actor_critic import ActorCritic, PolicyConfig
from robonav.runtime.backends.torch_backend import TOLERANCE, TorchBackend, TorchUnavailableError, step_module

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (torch.cuda.is_available() is False)")


def random_policy(d: int, config: PolicyConfig, seed: int = 0) -> ActorCritic:
    torch.manual_seed(seed)
    model = ActorCritic(d, config)
    with torch.no_grad():  # statistics away from (0, 1) and a head that reaches the clamp
        model.normalizer.mean.uniform_(-0.5, 0.5)
        model.normalizer.var.uniform_(0.05, 2.0)
        model.mu.weight.normal_(0.0, 1.0)
    return model.eval()


@pytest.mark.parametrize("config", [
    PolicyConfig(encoder=(9,), hidden=5),
    PolicyConfig(encoder=(11, 7), hidden=6, layers=2, separate_critic=True),
    PolicyConfig(encoder=(8,), hidden=4, core="mlp"),
])
def test_module_from_weights_is_the_actor_critic_step(config, tmp_path):
    model = random_policy(13, config)
    path = write_weights(model, tmp_path / "w.npz")
    with np.load(path) as f:
        step = step_module(dict(f))
    h = torch.randn(model.state_layers, 1, config.hidden)
    c = torch.randn(model.state_layers, 1, config.hidden)
    h2, c2 = h, c
    with torch.no_grad():
        for _ in range(5):
            obs = 3.0 * torch.randn(1, 13)
            want, h, c = model.step(obs, h, c)
            got, h2, c2 = step(obs, h2, c2)
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
            torch.testing.assert_close((h2, c2), (h, c), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dueling", [True, False])
def test_module_from_weights_is_the_q_network_step(dueling, tmp_path):
    """The Q head exported as one affine map (a dueling head folded: V + A - mean A) scores the primitives as
    QNetwork.head does, and the module and the Numba kernel drive QNetwork.step's primitive."""
    from robonav.policy.q_network import QConfig, QNetwork
    from robonav.runtime.backends.numba_kernels import numpy_head_scores, numpy_step

    torch.manual_seed(3)
    model = QNetwork(13, PolicyConfig(encoder=(9,), hidden=6), QConfig(dueling=dueling)).eval()
    with torch.no_grad():
        model.normalizer.var.uniform_(0.05, 2.0)
        for head in (model.advantage_head, model.value_head):
            if head is not None:
                head.weight.normal_(0.0, 1.0)
                head.bias.normal_(0.0, 1.0)
    with np.load(write_weights(model, tmp_path / "q.npz")) as f:
        arrays = dict(f)
    step = step_module(arrays)
    h = torch.zeros(1, 1, 6)
    c = torch.zeros(1, 1, 6)
    h2, c2, h3, c3 = h, c, h.numpy(), c.numpy()
    chosen = set()
    with torch.no_grad():
        for _ in range(30):
            obs = 3.0 * torch.randn(1, 13)
            feat, _, _ = model.body.step(model.normalizer(obs), h, c)
            scores, _, _ = numpy_head_scores(arrays, obs.numpy(), h3, c3)
            np.testing.assert_allclose(scores, model.head(feat)[0].numpy(), rtol=1e-5, atol=1e-5)
            want, h, c = model.step(obs, h, c)
            got, h2, c2 = step(obs, h2, c2)
            ref, h3, c3 = numpy_step(arrays, obs.numpy(), h3, c3)
            torch.testing.assert_close(got, want, rtol=0, atol=0)
            np.testing.assert_array_equal(ref, want[0].numpy())
            chosen.add(tuple(want[0].tolist()))
    assert len(chosen) >= 2  # the argmax moved between primitives


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A random LSTM policy (D = 101, encoder 32, H = 16), exported (.onnx, .json, .npz)."""
    from robonav.deploy.export import export_onnx
    from robonav.policy.checkpoint import save_checkpoint
    from robonav.sensors.spec import ObservationSpec, PreprocessorConfig

    spec = ObservationSpec(PreprocessorConfig(num_bins=16, fine_pixels=4, coarse_pixels=4, grid_cells=128))
    config = PolicyConfig(encoder=(32,), hidden=16)
    meta = {"policy": {**dataclasses.asdict(config), "encoder": list(config.encoder)}, "obs_dim": spec.size,
            "observation_spec": spec.to_dict(), "action_limits": [0.5, 2.0], "control_period": 0.1,
            "observation": "preprocessor"}
    folder = tmp_path_factory.mktemp("torch")
    checkpoint = save_checkpoint(folder / "tiny.pt", random_policy(spec.size, config, 1).state_dict(), meta)
    return export_onnx(checkpoint, folder / "tiny.onnx")


def parity(backend, recording, reference):
    from robonav.deploy.parity import backend_actions, compare_actions

    with backend:
        return compare_actions(backend_actions(backend, recording), reference, len(recording.segments), TOLERANCE)


def test_cpu_matches_onnx_runtime_over_recorded_episodes(exported, recording, ort_actions):
    report = parity(TorchBackend(exported.onnx), recording, ort_actions)
    print(f"torch CPU vs ONNX Runtime FP32: max |action error| {report.max_abs_error:.3g} over {report.steps} steps "
          f"of {report.episodes} episodes (tolerance {TOLERANCE:g})")
    assert report.steps >= 1000 and report.passed, report


def test_cpu_reset_zeroes_the_state(exported, recording):
    obs = recording.segments[0][:4]
    with TorchBackend(exported.weights) as backend:  # the .npz path names the same model
        first = [backend.step(o) for o in obs]
        assert np.abs(backend.state[0]).max() > 0
        backend.reset()
        assert not backend.state[0].any() and not backend.state[1].any()
        np.testing.assert_array_equal(first, [backend.step(o) for o in obs])
        assert not backend.uses_graphs


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_cuda_without_a_gpu_is_refused_with_the_reason(exported):
    with pytest.raises(TorchUnavailableError, match=r"device 'cuda' asked for, but torch.cuda.is_available\(\) is "
                                                    r"False .* use device='cpu' or the Numba backend"):
        TorchBackend(exported.onnx, device="cuda").open()


@pytest.mark.gpu
@cuda
@pytest.mark.parametrize("graphs", [True, False])
def test_cuda_matches_onnx_runtime_over_recorded_episodes(exported, recording, ort_actions, graphs):
    backend = TorchBackend(exported.onnx, device="cuda", cuda_graph=graphs)
    report = parity(backend, recording, ort_actions)
    print(f"torch CUDA (graphs {graphs}) on {torch.cuda.get_device_name()}: max |action error| "
          f"{report.max_abs_error:.3g} over {report.steps} steps (tolerance {TOLERANCE:g})")
    assert report.passed, report


@pytest.mark.gpu
@cuda
def test_cuda_graph_step_moves_only_obs_in_and_action_out(exported, recording):
    from torch.profiler import ProfilerActivity, profile

    obs = recording.segments[0]
    steps = 20
    with TorchBackend(exported.onnx, device="cuda") as backend:
        assert backend.uses_graphs
        for o in obs[:3]:
            backend.step(o)
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            for o in obs[3:3 + steps]:
                backend.step(o)
            torch.cuda.synchronize()
    names = [e.name for e in prof.events()]
    h2d = sum("HtoD" in n for n in names)
    d2h = sum("DtoH" in n for n in names)
    assert (h2d, d2h) == (steps, steps), (h2d, d2h)


@pytest.mark.gpu
@cuda
def test_repointing_a_captured_input_changes_nothing():
    """Why the backends capture two graphs: a graph replays the addresses it was captured with."""
    a, b = torch.full((4,), 1.0, device="cuda"), torch.full((4,), 5.0, device="cuda")
    out = torch.zeros(4, device="cuda")
    src = a
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out.copy_(src * 2)
    src = b  # "re-point" the input
    graph.replay()
    torch.cuda.synchronize()
    assert src is b and out.tolist() == [2.0] * 4  # still reads a
    a.fill_(3.0)
    graph.replay()
    torch.cuda.synchronize()
    assert out.tolist() == [6.0] * 4
