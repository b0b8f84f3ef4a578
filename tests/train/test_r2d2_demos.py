"""R2D2's demonstrators: a teacher drives some envs (snapped to the primitives), their steps join the replay, and
their episodes stay out of the learner's success rate."""

from __future__ import annotations

import numpy as np
import pytest

from robonav.policy.actor_critic import PolicyConfig
from robonav.sim.config import MazeConfig, SimConfig
from robonav.sim.vector import MazeVectorEnv, ProcessVectorEnv
from robonav.train.imitation import TeacherFactory
from robonav.train.r2d2.learner import R2D2Config, R2D2Error, R2D2Learner, nearest_primitive

SIM = SimConfig(observation="plain", maze=MazeConfig(width=(3, 3)))
POLICY = PolicyConfig(encoder=(16,), hidden=8)
DEMOS = R2D2Config(seq_len=8, overlap=4, burn_in=4, n_step=3, batch=4, capacity=64, warmup_steps=10**9,
                   demo_every=2)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class Recorder:
    """A real vector env that remembers the actions it was given and the teacher commands it reported."""

    def __init__(self, env: MazeVectorEnv) -> None:
        self.env, self.sent, self.taught, self.ended = env, [], [], []

    def __getattr__(self, name: str):
        return getattr(self.env, name)

    def reset(self, **kw):
        obs, info = self.env.reset(**kw)
        self.taught.append(info["teacher_action"].copy())
        return obs, info

    def step(self, actions):
        self.sent.append(np.array(actions))
        out = self.env.step(actions)
        self.taught.append(out[4]["teacher_action"].copy())
        self.ended.append(out[4]["_final_info"].copy() if "_final_info" in out[4] else np.zeros(self.num_envs, bool))
        return out


def test_nearest_primitive_by_hand():
    table = np.array([[1.0, 0.0], [0.4, 0.0], [0.0, 1.0], [0.0, -1.0], [-0.3, 0.0]])
    actions = np.array([[0.8, 0.1], [0.5, -0.05], [0.1, 0.7], [0.2, -0.9], [-1.0, 0.0], [0.0, 0.0]])
    # distances^2 to each row: (0.8,0.1) -> 0.05, 0.17, ...: row 0; (0.1,0.7) -> row 2; (0,0): 0.16 vs 0.09 -> row 4
    assert nearest_primitive(table, actions).tolist() == [0, 1, 2, 3, 4, 4]


def test_subset_teacher_drives_every_kth_env_of_each_worker():
    env = MazeVectorEnv(4, config=SIM, seed=0, teacher=TeacherFactory("classical", every=2)(4))
    try:
        _, info = env.reset(seed=1)
        assert info["_teacher_action"].tolist() == [True, False, True, False]
        for _ in range(5):
            _, _, _, _, info = env.step(np.full((4, 2), 0.3, np.float32))
            assert not info["teacher_action"][[1, 3]].any()  # no frame, no plan: a zero command
            assert np.abs(info["teacher_action"][[0, 2]]).sum() > 0
    finally:
        env.close()
    penv = ProcessVectorEnv(4, 2, config=SIM, seed=0, teacher_factory=TeacherFactory("classical", every=2))
    try:  # each worker's local env 0 is driven: global 0 and 2
        _, info = penv.reset(seed=1)
        assert info["_teacher_action"].tolist() == [True, False, True, False]
    finally:
        penv.close()


def test_demonstrators_act_by_the_snapped_teacher_and_stay_out_of_the_success_rate():
    env = Recorder(MazeVectorEnv(4, config=SIM, seed=2, teacher=TeacherFactory("classical", every=2)(4)))
    learner = R2D2Learner(env, DEMOS, POLICY, seed=2)
    learner.train(4 * 400)
    sent = np.stack(env.sent)  # [T, 4, 2] normalised commands
    taught = np.stack(env.taught[:-1])  # the teacher's command for the observation each action answered
    for i in (0, 2):
        want = learner.action_table[nearest_primitive(learner.action_table, taught[:, i])]
        np.testing.assert_array_equal(sent[:, i], want)
    ended = np.stack(env.ended)
    assert ended[:, [0, 2]].sum() > 0 and ended[:, [1, 3]].sum() > 0  # both kinds finished episodes
    assert len(learner.demo_successes) == ended[:, [0, 2]].sum()
    assert len(learner.successes) == ended[:, [1, 3]].sum()
    assert np.mean(learner.demo_successes) > np.mean(learner.successes)  # the teacher beats an untrained net
    env.close()


def test_demonstrators_need_a_teacher():
    with pytest.raises(R2D2Error, match="demo_every must be >= 0"):
        R2D2Config(demo_every=-1)
    env = MazeVectorEnv(2, config=SIM, seed=0)
    try:
        with pytest.raises(R2D2Error, match=r"demo_every=2 needs an env with a teacher"):
            R2D2Learner(env, DEMOS, POLICY)
    finally:
        env.close()
