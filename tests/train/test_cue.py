"""The recurrent learner end to end on a task only memory solves (the cue is shown 31 steps before it counts)."""

from __future__ import annotations

import pytest

from robonav.policy.actor_critic import PolicyConfig
from robonav.sim.config import SimConfig
from robonav.train.config import PPOTrainConfig
from robonav.train.cue import CueCorridorEnv
from robonav.train.ppo import PPOConfig
from robonav.train.trainer import Trainer


def _train(core: str, tmp_path, updates: int = 150) -> float:
    cfg = PPOTrainConfig(run=f"cue-{core}", out=str(tmp_path), total_steps=32 * 32 * updates, workers=0, seed=0,
                      checkpoint_every=10**9, sim=SimConfig(observation="plain"),
                      policy=PolicyConfig(encoder=(32,), hidden=32, core=core, init_log_std=0.0),
                      ppo=PPOConfig(num_envs=32, steps=32, seq_len=32, lr=1e-3, lr_final=1e-3, ent_coef=0.0,
                                    minibatches=2))
    trainer = Trainer(cfg, progress=False, envs=CueCorridorEnv(32, length=32, obs_dim=16, seed=0))
    out = trainer.train()
    trainer.close()
    return out["success_rate"]


@pytest.mark.slow
def test_lstm_solves_the_cue_task_and_the_memoryless_policy_cannot(tmp_path):
    lstm = _train("lstm", tmp_path)
    mlp = _train("mlp", tmp_path)
    assert lstm >= 0.95, f"LSTM success {lstm:.3f} over the last 200 episodes"
    assert 0.35 <= mlp <= 0.65, f"memoryless success {mlp:.3f} should stay near chance"
