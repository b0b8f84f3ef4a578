"""The R2D2 learner on a small simulated 3x3 maze: the epsilon ladder, the replay-ratio bound, target copies, the
frozen normaliser, zero Q discrepancy with unchanged weights on real env data, and an exact resume."""

from __future__ import annotations

import dataclasses
import io

import gymnasium as gym
import numpy as np
import pytest
import torch

from robonav.policy.actor_critic import PolicyConfig
from robonav.policy.q_network import QConfig
from robonav.sim.config import MazeConfig, SimConfig
from robonav.sim.vector import MazeVectorEnv
from robonav.train.r2d2.learner import R2D2Config, R2D2Error, R2D2Learner, epsilon_ladder

SIM = SimConfig(observation="plain", maze=MazeConfig(width=(3, 3)))
POLICY = PolicyConfig(encoder=(16,), hidden=8)
SMALL = R2D2Config(seq_len=8, overlap=4, burn_in=4, n_step=3, batch=4, capacity=64, warmup_steps=64,
                   target_every=5, replay_ratio=2.0, lr=1e-3)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _learner(cfg: R2D2Config = SMALL, seed: int = 3) -> R2D2Learner:
    return R2D2Learner(MazeVectorEnv(4, config=SIM, seed=seed), cfg, POLICY, seed=seed)


def test_epsilon_ladder_is_ape_x():
    # eps_i = 0.4^(1 + 7 i / 3) for 4 envs: 0.4, 0.4^(10/3), 0.4^(17/3), 0.4^8
    np.testing.assert_allclose(epsilon_ladder(4), [0.4, 0.4 ** (10 / 3), 0.4 ** (17 / 3), 0.4 ** 8], rtol=1e-12)
    assert epsilon_ladder(1).tolist() == [0.4]


def test_settings_and_envs_it_cannot_run_are_refused():
    with pytest.raises(R2D2Error, match="overlap must be in"):
        R2D2Config(seq_len=8, overlap=8)
    with pytest.raises(R2D2Error, match="init_state must be"):
        R2D2Config(init_state="random")  # type: ignore[arg-type]
    env = MazeVectorEnv(2, config=SIM, seed=0)
    try:
        with pytest.raises(R2D2Error, match=r"exceed the robot's limits \(v_max, omega_max\) = \(0.5, 2.0\)"):
            R2D2Learner(env, SMALL, POLICY, QConfig(primitives=((0.5, 0.0), (0.0, 2.5))))
    finally:
        env.close()
    cartpole = gym.vector.SyncVectorEnv([lambda: gym.make("CartPole-v1")])
    with pytest.raises(R2D2Error, match="autoreset_mode SAME_STEP only"):
        R2D2Learner(cartpole, SMALL, POLICY, action_limits=(0.5, 2.0))
    cartpole.close()


def test_replay_ratio_bound_target_copies_and_frozen_normaliser():
    learner = _learner()
    learner.train(64)  # the warmup: no learning, the normaliser moves
    assert learner.updates == 0
    stats = learner.online.normalizer.mean.clone()
    assert stats.abs().sum() > 0
    out = learner.train(160)
    cfg = learner.cfg
    sampled = learner.updates * cfg.batch * cfg.seq_len
    allowed = cfg.replay_ratio * (learner.env_steps - cfg.warmup_steps)
    assert sampled <= allowed < sampled + cfg.batch * cfg.seq_len + cfg.replay_ratio * learner.num_envs
    assert out["learner_steps"] == learner.updates == 10
    assert torch.equal(learner.online.normalizer.mean, stats), "statistics frozen once learning starts"
    # updates = 10 is a multiple of target_every = 5: the target is the online network now.
    for k, v in learner.online.state_dict().items():
        assert torch.equal(v, learner.target.state_dict()[k]), k
    learner.train(16)  # 16 more env steps allow 32 more sampled transitions: one update
    assert learner.updates == 11
    assert any(not torch.equal(v, learner.target.state_dict()[k]) for k, v in learner.online.state_dict().items())
    for key in ("loss", "q_mean", "discrepancy_first", "discrepancy_last", "param_lag", "success_rate"):
        assert np.isfinite(out[key]), key
    learner.envs.close()


def test_stored_states_reproduce_the_actors_q_on_env_data():
    """lr 0 and no warmup normalisation: the weights the actor used are the learner's, so the Q discrepancy of
    every sampled batch is 0 at the first and the last trained step (and it is not without stored states)."""
    cfg = dataclasses.replace(SMALL, lr=0.0, warmup_steps=0)
    learner = _learner(cfg)
    out = learner.train(240)
    assert learner.updates > 10
    assert out["discrepancy_first"] < 1e-6 and out["discrepancy_last"] < 1e-6
    learner.envs.close()
    zero = _learner(dataclasses.replace(cfg, init_state="zero", burn_in=0))
    assert zero.train(240)["discrepancy_last"] > 1e-3
    zero.envs.close()


def _snapshot(learner: R2D2Learner) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in learner.online.state_dict().items()}


def test_a_state_dict_does_not_change_the_run():
    snapped = _learner()
    snapped.train(96)
    snapped.state_dict()
    snapped.train(96)
    plain = _learner()
    plain.train(192)
    for k, v in _snapshot(plain).items():
        assert torch.equal(snapped.online.state_dict()[k], v), f"taking a state changed the run in {k}"
    np.testing.assert_array_equal(snapped.replay.priorities, plain.replay.priorities)
    assert plain.updates > 0
    snapped.envs.close()
    plain.envs.close()


def test_resume_restarts_the_episodes_in_flight_and_continues_everything_else():
    full = _learner()
    full.train(96)
    saved = full.state_dict()
    buf = io.BytesIO()
    torch.save(saved, buf)  # before the in-place load below, which may share arrays with ``saved``
    buf.seek(0)
    full.load_state_dict(saved)  # the resume rule in place: episodes in flight restart, open sequences dropped
    full.train(96)
    expected, expected_replay = _snapshot(full), full.replay.priorities.copy()
    full.envs.close()

    resumed = _learner(seed=11)  # another seed: everything must come from the saved state
    resumed.load_state_dict(torch.load(buf, weights_only=True))
    assert resumed.env_steps == 96 and resumed.updates == saved["counters"]["updates"]
    resumed.train(96)
    for k, v in expected.items():
        assert torch.equal(resumed.online.state_dict()[k], v), f"resumed run differs in {k}"
    np.testing.assert_array_equal(resumed.replay.priorities, expected_replay)
    assert resumed.updates > saved["counters"]["updates"], "the resumed part must learn (else the test is weak)"
    resumed.envs.close()
    other = _learner(dataclasses.replace(SMALL, gamma=0.9))
    with pytest.raises(R2D2Error, match=r"saved r2d2 settings differ .* settings the run started with"):
        other.load_state_dict(saved)
    other.envs.close()
    wider = R2D2Learner(MazeVectorEnv(4, config=SIM, seed=0), SMALL, PolicyConfig(encoder=(16,), hidden=16))
    with pytest.raises(R2D2Error, match="saved policy settings differ"):
        wider.load_state_dict(saved)
    wider.envs.close()
