"""The imitation warm start: teacher labels arrive with every observation and the student learns to follow them."""

from __future__ import annotations

import numpy as np

from robonav.policy.actor_critic import PolicyConfig
from robonav.sim.config import MazeConfig, SimConfig
from robonav.sim.vector import MazeVectorEnv
from robonav.train.config import CurriculumConfig, PPOTrainConfig
from robonav.train.imitation import ExpertTeacher, ImitationConfig
from robonav.train.ppo import PPOConfig
from robonav.train.trainer import Trainer


def test_teacher_labels_do_not_change_what_the_student_sees():
    cfg = SimConfig(observation="plain", maze=MazeConfig(width=(3, 3)))
    with_t = MazeVectorEnv(2, config=cfg, seed=1, teacher=ExpertTeacher(2))
    without = MazeVectorEnv(2, config=cfg, seed=1)
    _, i1 = with_t.reset(seed=4)
    _, i2 = without.reset(seed=4)
    assert "teacher_action" in i1 and "teacher_action" not in i2
    rng = np.random.default_rng(0)
    for _ in range(20):
        a = rng.uniform(-1, 1, (2, 2)).astype(np.float32)
        r1, r2 = with_t.step(a), without.step(a)
        np.testing.assert_array_equal(r1[0], r2[0])
        assert np.all(np.abs(r1[4]["teacher_action"]) <= 1.0)
    with_t.close()
    without.close()


def test_dagger_fits_the_expert(tmp_path):
    cfg = PPOTrainConfig(run="im", out=str(tmp_path), total_steps=10**7, workers=0, seed=0, checkpoint_every=10**6,
                      sim=SimConfig(observation="plain", maze=MazeConfig(width=(3, 3))),
                      policy=PolicyConfig(encoder=(64,), hidden=32),
                      ppo=PPOConfig(num_envs=8, steps=32, seq_len=16, lr=1e-3),
                      curriculum=CurriculumConfig(stages=((3, 3),)),
                      imitation=ImitationConfig(teacher="expert", updates=12, beta_start=1.0, beta_end=0.5))
    trainer = Trainer(cfg, progress=False)
    first = trainer.train(max_updates=1)["imitation_loss"]
    last = trainer.train(max_updates=10)["imitation_loss"]
    assert trainer.imitating
    trainer.train(max_updates=1)
    assert not trainer.imitating  # PPO takes over; the teacher is switched off
    assert float(trainer.model.log_std.detach()[0]) == cfg.imitation.log_std
    assert not trainer.envs._teacher_on
    trainer.save()
    trainer.close()
    assert last < 0.6 * first, f"imitation loss {first:.3f} -> {last:.3f}"
    # Resumed after the warm start, the envs label nothing: the teacher (the classical navigator in the shipped
    # recipes) would otherwise run beside every PPO step, its labels unused (it doubled a resumed run's rollouts).
    resumed = Trainer(cfg, resume=True, progress=False)
    assert resumed.updates == 12 and not resumed.imitating and not resumed.envs._teacher_on
    resumed.train(max_updates=1)
    assert "teacher_action" not in resumed.collector.envs.step(np.zeros((8, 2), np.float32))[4]
    resumed.close()
