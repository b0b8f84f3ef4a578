"""A checkpoint round-trips and ``--resume`` makes exactly the next update the uninterrupted run makes.

The rule it pins: at each checkpoint the episodes in flight restart from their saved (maze, seed) with a zero
LSTM state, in the uninterrupted run and after a resume alike.
"""

from __future__ import annotations

import dataclasses
import shutil

import torch

from robonav.policy.actor_critic import PolicyConfig
from robonav.sim.config import MazeConfig, RandomizationConfig, SimConfig
from robonav.train.config import CurriculumConfig, PPOTrainConfig
from robonav.train.ppo import PPOConfig
from robonav.train.trainer import Trainer

STEPS = 4 * 16  # env steps per update


def _cfg(tmp_path, run: str, updates: int) -> PPOTrainConfig:
    sim = SimConfig(observation="plain", randomization=RandomizationConfig(enabled=True),
                    maze=MazeConfig(width=(3, 3)))
    return PPOTrainConfig(run=run, out=str(tmp_path), total_steps=STEPS * updates, workers=0, seed=3,
                       checkpoint_every=2, sim=sim, policy=PolicyConfig(encoder=(16,), hidden=8),
                       ppo=PPOConfig(num_envs=4, steps=16, seq_len=8, epochs=2, minibatches=2),
                       curriculum=CurriculumConfig(stages=((3, 3),)))


def _params(trainer: Trainer) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in trainer.model.state_dict().items()}


def test_resume_reproduces_the_next_update(tmp_path):
    full = Trainer(_cfg(tmp_path, "full", 3), progress=False)
    full.train()
    p_full = _params(full)
    full.close()

    first = Trainer(_cfg(tmp_path, "split", 3), progress=False)
    first.train(max_updates=2)  # interrupted: saves last.pt after update 2
    p_two = _params(first)
    first.close()
    shutil.copy(tmp_path / "split" / "last.pt", tmp_path / "split" / "after2.pt")
    resumed = Trainer(_cfg(tmp_path, "split", 3), resume=True, progress=False)
    assert resumed.updates == 2 and resumed.global_step == 2 * STEPS
    for k, v in resumed.model.state_dict().items():
        assert torch.equal(v, p_two[k]), f"checkpoint did not round-trip {k}"
    resumed.train()
    p_resumed = _params(resumed)
    resumed.close()
    for k in p_full:
        assert torch.equal(p_full[k], p_resumed[k]), f"update 3 differs after resume in {k}"
    assert any(not torch.equal(p_two[k], p_resumed[k]) for k in p_two), "update 3 must change the weights"


def test_resume_refuses_a_different_policy(tmp_path):
    first = Trainer(_cfg(tmp_path, "r", 3), progress=False)
    first.train(max_updates=1)
    first.close()
    other = dataclasses.replace(_cfg(tmp_path, "r", 3), policy=PolicyConfig(encoder=(16,), hidden=16))
    try:
        Trainer(other, resume=True, progress=False)
    except ValueError as e:
        assert "policy or num_envs differ" in str(e)
    else:
        raise AssertionError("a different policy must be refused")
