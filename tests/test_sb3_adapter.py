"""benchmarks/sb3_adapter.py: SB3 drives robonav's vector env through the adapter as it drives its own VecEnvs.

The contract is SB3's own code: its vec-env utilities and wrappers (VecMonitor, VecNormalize, VecCheckNan) and
RecurrentPPO itself run on the adapter; the terminal observation is compared with a single MazeEnv that plays the
same episode with the same actions, so it is the real last observation and not a copy of the new one.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

sb3_contrib = pytest.importorskip("sb3_contrib")

from robonav.sim.config import MazeConfig, SimConfig  # noqa: E402
from robonav.sim.env import MazeEnv  # noqa: E402
from robonav.sim.vector import MazeVectorEnv  # noqa: E402


def _load_adapter():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "sb3_adapter.py"
    spec = importlib.util.spec_from_file_location("sb3_adapter", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["sb3_adapter"] = module
    spec.loader.exec_module(module)
    return module


ad = _load_adapter()

TINY = MazeConfig(width=(3, 3), height=(3, 3))
SHORT = SimConfig(maze=TINY, time_limit_factor=0.0, time_limit_extra=0.5)
"""3x3 mazes whose episodes truncate after 5 ticks (0.5 s), so episodes end within a few steps."""


def test_adapter_passes_sb3_vecenv_contract():
    from gymnasium import spaces
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import VecCheckNan, VecMonitor, VecNormalize
    from stable_baselines3.common.vec_env.util import obs_space_info

    env = ad.SB3VecEnv(MazeVectorEnv(2, config=SHORT, seed=0))
    keys, shapes, dtypes = obs_space_info(env.observation_space)  # SB3's check of the space's structure
    assert keys == [None] and shapes[None] == env.observation_space.shape and dtypes[None] == np.float32
    assert isinstance(env.action_space, spaces.Box) and env.action_space.shape == (2,)
    assert (env.action_space.low == -1).all() and (env.action_space.high == 1).all()  # normalised actions
    assert env.num_envs == 2 and env.render_mode is None
    assert env.get_attr("render_mode") == [None, None] and env.has_attr("set_maze_config")
    assert not env.has_attr("no_such_attribute")
    assert env.env_is_wrapped(Monitor) == [False, False]
    env.seed(7)
    first = env.reset()
    env.seed(7)
    assert np.array_equal(env.reset(), first)  # seed() makes the next reset reproducible
    assert first.shape == (2, *env.observation_space.shape) and first.dtype == np.float32
    assert len(env.reset_infos) == 2 and env.reset_infos[0]["episode_steps"] == 0

    wrapped = VecNormalize(VecMonitor(VecCheckNan(env, raise_exception=True)))
    wrapped.reset()
    rng = np.random.default_rng(0)
    episodes = 0
    for _ in range(12):
        obs, rewards, dones, infos = wrapped.step(rng.uniform(-1, 1, (2, 2)).astype(np.float32))
        assert isinstance(obs, np.ndarray) and obs.shape == first.shape
        assert rewards.shape == (2,) and rewards.dtype == np.float32 and dones.dtype == bool
        assert isinstance(infos, list) and len(infos) == 2
        for i in np.flatnonzero(dones):
            assert isinstance(infos[i]["is_success"], bool) and "terminal_observation" in infos[i]
            assert infos[i]["episode"]["l"] == infos[i]["episode_steps"]  # VecMonitor counted the same episode
            episodes += 1
    assert episodes >= 2
    wrapped.close()


def test_adapter_refuses_what_it_cannot_serve():
    import gymnasium as gym

    nxt = gym.vector.SyncVectorEnv([lambda: gym.make("CartPole-v1")] * 2)
    with pytest.raises(ad.AdapterError, match=r"autoreset_mode'\] must be SAME_STEP, actual .*NEXT_STEP"):
        ad.SB3VecEnv(nxt)
    nxt.close()
    env = ad.SB3VecEnv(MazeVectorEnv(2, config=SHORT, seed=0))
    with pytest.raises(ad.AdapterError, match=r"indices \[0\] name only some of the 2 envs"):
        env.env_method("set_maze_config", TINY, indices=[0])
    with pytest.raises(ad.AdapterError, match="no actions pending"):
        env.step_wait()
    env.close()


def _play_against_single_env(config: SimConfig, drive) -> tuple[dict, np.ndarray, np.ndarray, np.ndarray]:
    """Step the adapter (2 envs) and a MazeEnv on env 0's episode with env 0's actions until env 0 ends.
    Returns env 0's info at the end, the adapter's returned obs, and the single env's last obs and its flags."""
    vec = MazeVectorEnv(2, config=config, seed=3)
    env = ad.SB3VecEnv(vec)
    single = MazeEnv(config=config)
    obs = env.reset()
    one, _ = single.reset(options={"episode": vec.episodes_in_flight()[0]})
    assert np.array_equal(obs[0], one)
    try:
        for _ in range(400):
            actions = drive(vec)
            obs, _, dones, infos = env.step(actions)
            one, _, terminated, truncated, _ = single.step(actions[0])
            assert dones[0] == (terminated or truncated)
            if dones[0]:
                return infos[0], obs[0], one, np.array([terminated, truncated])
            assert np.array_equal(obs[0], one)
    finally:
        env.close()
        single.close()
    raise AssertionError("env 0 did not end within 400 ticks")


def test_terminal_observation_is_the_real_last_observation_on_truncation():
    rng = np.random.default_rng(1)
    info, returned, last, flags = _play_against_single_env(
        SHORT, lambda vec: rng.uniform(-1, 1, (2, 2)).astype(np.float32))
    assert flags.tolist() == [False, True]  # the 0.5 s time limit
    assert np.array_equal(info["terminal_observation"], last)
    assert not np.array_equal(returned, last)  # what step returned is the next episode's first observation
    assert info["TimeLimit.truncated"] is True and info["episode_steps"] == 5 and info["is_success"] is False


def test_terminal_observation_on_termination_at_the_goal():
    from robonav.sim.expert import GeodesicExpert

    expert = GeodesicExpert()
    config = dataclasses.replace(SHORT, time_limit_factor=3.0, time_limit_extra=10.0)
    scale = np.array([config.robot.v_max, config.robot.omega_max])
    info, _, last, flags = _play_against_single_env(
        config, lambda vec: (expert(vec.sim) / scale).astype(np.float32))
    assert flags.tolist() == [True, False]
    assert np.array_equal(info["terminal_observation"], last)
    assert info["TimeLimit.truncated"] is False and info["is_success"] is True


def test_recurrent_ppo_learns_with_the_curriculum_and_evaluates(tmp_path):
    import torch
    from stable_baselines3.common.vec_env import VecMonitor, VecNormalize

    from robonav.eval.runner import run_episodes
    from robonav.sim.episodes import EpisodeSpec
    from robonav.sim.generate import generate_maze
    from robonav.train.config import CurriculumConfig

    torch.set_num_threads(1)
    stages = ((3, 3), (4, 4))
    curriculum = CurriculumConfig(stages=stages, promote_success=0.0, window=2)  # promote once 2 episodes ended

    def stage_config(k: int) -> MazeConfig:
        return dataclasses.replace(TINY, width=stages[k], height=stages[k])

    vec = MazeVectorEnv(2, config=SHORT, seed=0)
    venv = VecNormalize(VecMonitor(ad.SB3VecEnv(vec)), gamma=0.99)
    model = sb3_contrib.RecurrentPPO("MlpLstmPolicy", venv, n_steps=16, batch_size=32, n_epochs=1, seed=0,
                                     device="cpu", policy_kwargs={"lstm_hidden_size": 16, "net_arch": []})
    cb = ad.CurriculumCallback(curriculum.promote_success, curriculum.window, len(stages), stage_config,
                               log_path=tmp_path / "progress.jsonl")
    model.learn(total_timesteps=32, callback=cb)
    assert model.num_timesteps == 32 and model._n_updates == 1
    row = cb.rows[0]
    assert row["global_step"] == 32 and row["stage"] == 0 and row["episodes"] >= 4  # 5-tick episodes, 2 envs
    assert row["success_window"] == 2 and row["return_window"] == 2 and np.isfinite(row["episode_return"])
    assert cb.stage == 1 and vec.sim.sampler.config.width == (4, 4)  # promoted through env_method
    assert (tmp_path / "progress.jsonl").read_text().count("\n") == len(cb.rows)

    stats = ad.load_obs_stats(ad.save_obs_stats(venv, tmp_path / "obs_stats.npz"))
    raw = venv.get_original_obs()
    assert isinstance(raw, np.ndarray)
    np.testing.assert_allclose(stats(raw), np.asarray(venv.normalize_obs(raw)), rtol=0, atol=1e-6)

    scale = (SHORT.robot.v_max, SHORT.robot.omega_max)
    policy = ad.SB3Policy(model, 2, scale, stats)
    x0, x1, x2 = (np.random.default_rng(k).normal(size=raw.shape).astype(np.float32) for k in range(3))
    policy.act(x0)
    policy.act(x1)
    policy.reset(np.array([1]))
    kept = policy.act(x2)
    fresh = ad.SB3Policy(model, 2, scale, stats).act(x2)
    assert kept[1] == pytest.approx(fresh[1]) and not np.allclose(kept[0], fresh[0])  # env 1 reset, env 0 kept
    assert (np.abs(kept) <= np.array(scale) + 1e-9).all()

    episodes = [EpisodeSpec(generate_maze("perfect", 3, 3, seed=s), seed=s) for s in (11, 12, 13)]
    results = run_episodes(lambda n: ad.SB3Policy(model, n, scale, stats), episodes, SHORT, num_envs=2)
    assert [r.seed for r in results] == [11, 12, 13] and all(r.steps == 5 for r in results)
    venv.close()
