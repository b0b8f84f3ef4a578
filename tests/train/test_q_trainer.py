"""`robonav train` with algo r2d2 (QTrainer): outputs, the refill resume rule, loading for evaluation.

One tiny run on 3x3 mazes (4 envs, chunks of 64 steps, a small network) is shared by the tests of this file.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from robonav.policy.actor_critic import ActorCritic, PolicyConfig
from robonav.policy.agent import TorchAgent, load_policy
from robonav.policy.checkpoint import load_checkpoint
from robonav.policy.q_network import QNetwork
from robonav.settings import SettingsError, from_dict
from robonav.sim.config import MazeConfig, SimConfig
from robonav.train.config import (
    CurriculumConfig,
    PPOTrainConfig,
    R2D2TrainConfig,
    RunConfig,
    TrainConfig,
    TrainConfigError,
    train_config,
)
from robonav.train.q_trainer import QTrainer, QTrainerError
from robonav.train.r2d2.learner import R2D2Config

CHUNK = 64  # env steps per chunk (4 envs x 16)


def _cfg(tmp_path, run: str = "q", chunks: int = 6) -> R2D2TrainConfig:
    r2d2 = R2D2Config(num_envs=4, chunk_steps=CHUNK, seq_len=8, overlap=4, burn_in=4, n_step=3, batch=4,
                      capacity=64, warmup_steps=64, target_every=5, replay_ratio=2.0, lr=1e-3, adam_eps=1e-6)
    return R2D2TrainConfig(run=run, out=str(tmp_path), total_steps=CHUNK * chunks, workers=0, seed=5,
                       checkpoint_every=2, keep_every=0,
                       sim=SimConfig(observation="plain", maze=MazeConfig(width=(3, 3))),
                       policy=PolicyConfig(encoder=(16,), hidden=8), r2d2=r2d2,
                       curriculum=CurriculumConfig(stages=((3, 3),)))


def _weights(trainer: QTrainer) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in trainer.learner.online.state_dict().items()}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A run stopped after 3 chunks (checkpointed there), then resumed: (config, row log, trainer facts)."""
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("qrun")
    cfg = _cfg(tmp)
    first = QTrainer(cfg, progress=False)
    last = first.train(max_chunks=3)
    facts = {"last": last, "weights": _weights(first), "target": {k: v.clone() for k, v in
                                                                  first.learner.target.state_dict().items()},
             "updates": first.learner.updates, "steps": first.global_step, "replay": len(first.learner.replay),
             "rng": first.learner.rng.bit_generator.state, "replay_rng": first.learner.replay.rng.bit_generator.state}
    first.close()
    return cfg, tmp, facts


def test_a_run_writes_progress_rows_and_a_checkpoint(run):
    cfg, tmp, facts = run
    rows = [json.loads(line) for line in (tmp / "q" / "progress.jsonl").read_text().splitlines()]
    assert [r["global_step"] for r in rows] == [CHUNK, 2 * CHUNK, 3 * CHUNK]
    for key in ("wall_s", "success_rate", "epsilon", "replay_size", "stage", "updates"):
        assert key in rows[-1], key
    assert "loss" not in rows[0]  # the first chunk is the warmup (64 steps): no learner step yet
    for key in ("loss", "q_mean", "discrepancy_first", "discrepancy_last", "param_lag"):
        assert np.isfinite(rows[-1][key]), key
    assert facts["updates"] > 0 and facts["replay"] > 0
    ck = load_checkpoint(tmp / "q" / "last.pt")
    meta = ck["meta"]
    assert meta["algo"] == "r2d2" and meta["global_step"] == 3 * CHUNK and meta["updates"] == facts["updates"]
    assert meta["q"]["primitives"][0] == [0.5, 0.0] and len(meta["episodes"]) == 4
    assert "replay" not in ck["optimizer"] and from_dict(TrainConfig, meta["config"]) == cfg
    for k, v in facts["weights"].items():
        assert torch.equal(ck["model"][k], v), k


def test_resume_continues_counters_weights_and_rngs_with_an_empty_replay(run):
    cfg, _, facts = run
    resumed = QTrainer(cfg, resume=True, progress=False)
    try:
        lr = resumed.learner
        assert (lr.env_steps, lr.updates, resumed.chunks) == (3 * CHUNK, facts["updates"], 3)
        for k, v in facts["weights"].items():
            assert torch.equal(lr.online.state_dict()[k], v), f"online {k}"
        for k, v in facts["target"].items():
            assert torch.equal(lr.target.state_dict()[k], v), f"target {k}"
        assert lr.rng.bit_generator.state == facts["rng"] and lr.replay.rng.bit_generator.state == facts["replay_rng"]
        assert len(lr.replay) == 0 and lr.learn_from == 3 * CHUNK + cfg.r2d2.warmup_steps  # the refill
        lr.train(CHUNK - 4)  # inside the refill's warmup: acts, learns nothing
        assert lr.updates == facts["updates"] and len(lr.replay) > 0
        resumed.train(max_chunks=1)  # past it: learning again
        assert lr.updates > facts["updates"] and lr.env_steps == 5 * CHUNK - 4 and resumed.chunks == 4
        assert any(not torch.equal(lr.online.state_dict()[k], v) for k, v in facts["weights"].items())
    finally:
        resumed.close()


def test_resume_refuses_other_settings(run):
    cfg, _, _ = run
    other = dataclasses.replace(cfg, r2d2=dataclasses.replace(cfg.r2d2, burn_in=2))
    with pytest.raises(QTrainerError, match="r2d2 settings differ"):
        QTrainer(other, resume=True, progress=False)


def test_load_policy_gives_a_q_network_that_acts_for_n_envs(run):
    _, tmp, _ = run
    model, meta = load_policy(tmp / "q" / "last.pt")
    assert isinstance(model, QNetwork) and not model.training and meta["algo"] == "r2d2"
    agent = TorchAgent(model, 3)
    obs = np.random.default_rng(0).normal(size=(3, meta["obs_dim"])).astype(np.float32)
    first = agent.act(obs)
    primitives = model.primitives.numpy()
    assert first.shape == (3, 2) and first.dtype == np.float64
    assert all(any(np.allclose(a, p) for p in primitives) for a in first)
    # env 1 alone, from a fresh state, through the deployment step form: the same greedy primitive
    h, c = model.initial_state(1)
    with torch.no_grad():
        step, _, _ = model.step(torch.as_tensor(obs[1:2]), h, c)
    np.testing.assert_allclose(first[1], step[0].numpy())
    agent.act(obs)  # state carried; a reset starts env 0 again from zeros
    agent.reset(np.array([0]))
    np.testing.assert_allclose(agent.act(obs)[0], first[0])


def test_old_checkpoints_without_algo_stay_actor_critic(tmp_path):
    from robonav.train.trainer import Trainer

    common = {f.name: getattr(_cfg(tmp_path, "ppo"), f.name) for f in dataclasses.fields(RunConfig)}
    cfg = PPOTrainConfig(**{**common, "total_steps": 1})
    trainer = Trainer(cfg, progress=False)
    path = trainer.save()
    trainer.close()
    model, meta = load_policy(path)
    assert isinstance(model, ActorCritic) and "algo" not in meta


def test_eval_takes_a_q_checkpoint(run):
    _, tmp, _ = run
    out = subprocess.run([sys.executable, "-m", "robonav.cli", "eval", "--policy", str(tmp / "q" / "last.pt"),
                          "--mazes", "val-3x3", "--episodes", "2", "--json"], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary["episodes"] == 2 and 0.0 <= summary["success_rate"] <= 1.0


def test_export_takes_a_q_checkpoint_and_every_cpu_backend_runs_it(run, tmp_path):
    """The step traces to ONNX with exact parity (argmax), and the weights export writes beside it drive the Numba
    and PyTorch backends to ONNX Runtime's primitive on every recorded step, through resets."""
    from robonav.deploy.export import export_onnx
    from robonav.deploy.parity import backend_actions, export_parity, record_steps, sim_config
    from robonav.runtime.backends.onnx_backend import OnnxPolicy
    from robonav.runtime.backends.registry import open_backend

    _, tmp, _ = run
    checkpoint = tmp / "q" / "last.pt"
    done = export_onnx(checkpoint, tmp_path / "q.onnx")
    assert done.weights.is_file() and done.meta.extra["algo"] == "r2d2" and done.ops.get("ArgMax") == 1
    parity = export_parity(checkpoint, done.onnx, steps=100, parity_suite="val-3x3", episodes=0)
    assert parity["step"]["passed"] and parity["step"]["max_abs_error"] == 0.0
    recording = record_steps(lambda n: OnnxPolicy(done.onnx, n), sim_config(done.meta), 300, "val-3x3", 0, 3)
    with open_backend("ort", done.onnx) as backend:
        reference = backend_actions(backend, recording)
    assert len(np.unique(reference, axis=0)) >= 2  # more than one primitive chosen: the argmax is exercised
    for kind in ("numba", "torch"):
        with open_backend(kind, done.onnx) as backend:
            np.testing.assert_array_equal(backend_actions(backend, recording), reference, err_msg=kind)


def test_train_config_refuses_an_unknown_algo():
    with pytest.raises(TrainConfigError, match=r"train.algo must be one of \['ppo', 'r2d2'\], got 'dqn'"):
        train_config(algo="dqn")
    with pytest.raises(SettingsError, match="got 'dqn'"):
        from_dict(TrainConfig, {"algo": "dqn"})


def test_linear_lr_schedule_reaches_zero_at_total_steps(tmp_path):
    torch.set_num_threads(1)
    cfg = _cfg(tmp_path, run="sched", chunks=4)
    cfg = dataclasses.replace(cfg, r2d2=dataclasses.replace(cfg.r2d2, lr_schedule="linear"))
    trainer = QTrainer(cfg, progress=False)
    trainer.train()
    trainer.close()
    rows = [json.loads(line) for line in (tmp_path / "sched" / "progress.jsonl").read_text().splitlines()]
    # chunk k (0-based) starts at 64 k of 256 steps: lr = 1e-3 * (1 - k / 4), set before it acts
    assert [r["lr"] for r in rows] == pytest.approx([1e-3, 7.5e-4, 5e-4, 2.5e-4], rel=1e-12)
    with pytest.raises(Exception, match="lr_schedule must be 'constant' or 'linear'"):
        R2D2Config(lr_schedule="cosine")  # type: ignore[arg-type]
