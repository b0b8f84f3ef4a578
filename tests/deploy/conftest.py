"""Session fixtures of the deploy tests: one tiny policy, exported, recorded and quantized once per session.

The policy is untrained but not trivial: normaliser statistics away from (0, 1) and an action head large enough
that actions reach the clamp, so the graph's normalisation, clamp and scaling all matter. Its observation is the
real preprocessor's with small patches (D = 101), run in 3x3 validation mazes.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from robonav.policy.actor_critic import ActorCritic, PolicyConfig
from robonav.policy.checkpoint import save_checkpoint
from robonav.sensors.spec import ObservationSpec, PreprocessorConfig

PREPROCESSOR = PreprocessorConfig(num_bins=16, fine_pixels=4, coarse_pixels=4, grid_cells=128)
CALIB_SUITE = "val-3x3"


def make_checkpoint(path, config: PolicyConfig, seed: int = 0):
    """A random ActorCritic for PREPROCESSOR's observation, saved as a robonav checkpoint at ``path``."""
    spec = ObservationSpec(PREPROCESSOR)
    torch.manual_seed(seed)
    model = ActorCritic(spec.size, config)
    with torch.no_grad():
        model.normalizer.mean.uniform_(-0.5, 0.5)
        model.normalizer.var.uniform_(0.05, 2.0)
        model.mu.weight.normal_(0.0, 1.0)
        model.mu.bias.uniform_(-0.2, 0.2)
    meta = {"policy": {**dataclasses.asdict(config), "encoder": list(config.encoder)}, "obs_dim": spec.size,
            "observation_spec": spec.to_dict(), "action_limits": [0.5, 2.0], "control_period": 0.1,
            "observation": "preprocessor"}
    return save_checkpoint(path, model.state_dict(), meta)


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread():
    """A training run shares the cores: one thread keeps the tiny policy fast and the tests steady."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.pt", PolicyConfig(encoder=(32,), hidden=16))


@pytest.fixture(scope="session")
def exported(checkpoint, tmp_path_factory):
    from robonav.deploy.export import export_onnx

    return export_onnx(checkpoint, tmp_path_factory.mktemp("onnx") / "tiny.onnx")


@pytest.fixture(scope="session")
def policy(checkpoint):
    from robonav.policy.agent import load_policy

    return load_policy(checkpoint)[0]


@pytest.fixture(scope="session")
def recording(exported, policy):
    """At least 1,000 ticks of 3x3 validation episodes driven by the torch policy, back to back."""
    from robonav.deploy.parity import record_steps, sim_config
    from robonav.policy.agent import TorchAgent

    rec = record_steps(lambda n: TorchAgent(policy, n), sim_config(exported.meta), 1000, CALIB_SUITE, 0, 3)
    assert rec.steps >= 1000 and len(rec.segments) >= 2
    return rec


@pytest.fixture(scope="session")
def calibration(exported):
    """Calibration rollouts of the FP32 model on CALIB_SUITE (two episodes), recorded once."""
    from robonav.deploy.parity import record_episodes, sim_config
    from robonav.deploy.quantize import calibration_episodes
    from robonav.runtime.backends.onnx_backend import OnnxPolicy

    config = quant_config()
    return record_episodes(lambda n: OnnxPolicy(exported.onnx, n), calibration_episodes(config),
                           sim_config(exported.meta), 2)


def quant_config(**kw):
    from robonav.deploy.quantize import QuantizeConfig

    return QuantizeConfig(**{"calib_suite": CALIB_SUITE, "calib_episodes": 2, "calib_samples": 512, "num_envs": 2,
                             **kw})


@pytest.fixture(scope="session")
def int8(exported, calibration):
    from robonav.deploy.quantize import quantize_int8

    out = exported.onnx.with_name("tiny.int8.onnx")
    sidecar, _ = quantize_int8(exported.onnx, out, quant_config(), calibration)
    return out, sidecar


@pytest.fixture(scope="session")
def fp16(exported):
    from robonav.deploy.quantize import quantize_fp16

    out = exported.onnx.with_name("tiny.fp16.onnx")
    return out, quantize_fp16(exported.onnx, out)


@pytest.fixture(scope="session")
def fp32_actions(exported, recording):
    from robonav.deploy.parity import backend_actions
    from robonav.runtime.backends.onnx_backend import OnnxBackend

    with OnnxBackend(exported.onnx) as backend:
        return backend_actions(backend, recording)


@pytest.fixture()
def rng():
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def helpers():
    """The module's helpers for test files (conftest modules are not importable under --import-mode=importlib)."""
    import types

    return types.SimpleNamespace(make_checkpoint=make_checkpoint, quant_config=quant_config, suite=CALIB_SUITE,
                                 preprocessor=PREPROCESSOR)
