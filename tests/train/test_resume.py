"""A checkpoint round-trips, leaves the run as it was, and ``--resume`` continues it.

The rule it pins: a checkpoint does not touch the episodes in flight; a resumed run restarts them from their
saved (maze, seed) with a zero LSTM state, and everything else continues exactly.
"""

from __future__ import annotations

import dataclasses

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


def test_a_checkpoint_does_not_change_the_run(tmp_path):
    """Saving is an observation, not an event: a run checkpointed after every update makes exactly the updates of
    one checkpointed only at its end, and its episodes run through the checkpoints (the old rule restarted them
    at each one, so no episode longer than the checkpoint period could ever end)."""
    def cfg(run: str, checkpoint_every: int) -> PPOTrainConfig:  # time limits of 30 to 60 steps
        c = _cfg(tmp_path, run, 6)
        sim = dataclasses.replace(c.sim, time_limit_factor=0.3, time_limit_extra=0.0)
        return dataclasses.replace(c, sim=sim, checkpoint_every=checkpoint_every)

    every = Trainer(cfg("every", 1), progress=False)
    rows = [every.train(max_updates=1) for _ in range(6)]  # six sittings in one process: six saves
    p_every = _params(every)
    every.close()
    once = Trainer(cfg("once", 100), progress=False)
    once.train()
    p_once = _params(once)
    once.close()
    for k in p_once:
        assert torch.equal(p_every[k], p_once[k]), f"checkpoints changed the run in {k}"
    period = STEPS // 4  # env steps between checkpoints, per env
    assert max(r.get("episode_steps", 0.0) for r in rows) > period, "episodes must outlive a checkpoint"


def test_validation_does_not_change_the_run(tmp_path):
    """Evaluating every update (its own envs, its own draws from torch's stream) leaves the training path as it
    was: the same weights as the run that never evaluates."""
    checked = Trainer(dataclasses.replace(_cfg(tmp_path, "checked", 3), eval_every=1, eval_suites=("val-3x3",),
                                          eval_episodes=2), progress=False)
    checked.train()
    p_checked = _params(checked)
    checked.close()
    assert (tmp_path / "checked" / "best.pt").exists()
    plain = Trainer(_cfg(tmp_path, "plain", 3), progress=False)
    plain.train()
    for k, v in _params(plain).items():
        assert torch.equal(p_checked[k], v), f"validation changed the run in {k}"
    plain.close()


def test_resume_restarts_the_episodes_in_flight_and_continues_everything_else(tmp_path):
    """--resume == the uninterrupted run with its episodes in flight restarted (saved maze and seed, zero LSTM
    state) where the checkpoint was taken: weights, optimiser, counters and RNG streams continue exactly."""
    full = Trainer(_cfg(tmp_path, "full", 3), progress=False)
    full.train(max_updates=2)  # saves last.pt after update 2 and goes on in this process
    p_two = _params(full)
    in_flight = full.envs.episodes_in_flight()
    full.restart_envs(in_flight)
    full.train()
    p_full = _params(full)
    full.close()

    first = Trainer(_cfg(tmp_path, "split", 3), progress=False)
    first.train(max_updates=2)
    first.close()
    resumed = Trainer(_cfg(tmp_path, "split", 3), resume=True, progress=False)
    assert resumed.updates == 2 and resumed.global_step == 2 * STEPS
    assert [(e.maze.to_text(), e.seed) for e in resumed.envs.episodes_in_flight()] == \
        [(e.maze.to_text(), e.seed) for e in in_flight]
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
