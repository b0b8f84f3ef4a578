"""robonav/Maze-v0: Gymnasium's checker, registration, sensors as a robot reports them, reward and limits."""

from __future__ import annotations

import dataclasses
import math
import subprocess
import sys
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import robonav.sim  # noqa: F401  (registers the env)
from robonav.sensors import Preprocessor
from robonav.sensors.frame import SensorFrame
from robonav.sim.config import RandomizationConfig, ScannerConfig, SimConfig
from robonav.sim.env import MazeEnv
from robonav.sim.episodes import EpisodeSpec
from robonav.sim.maze import parse_maze
from robonav.sim.raycast import grid_raycast

HALL = parse_maze("\n".join(["#############"] + ["#S..........#"] + ["#...........#"] * 9
                             + ["#..........G#", "#############"]))


@pytest.mark.parametrize("maze", [None, HALL])
def test_env_checker_passes_without_warnings(maze):
    env = gym.make("robonav.sim:robonav/Maze-v0", maze=maze).unwrapped
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env)
    env.close()


def test_make_works_without_prior_import_and_without_arguments():
    code = ("import gymnasium as gym, sys; env = gym.make('robonav.sim:robonav/Maze-v0'); o, i = env.reset(seed=0);"
            "print(o.shape, i['maze'].split('-')[1]); assert 'torch' not in sys.modules")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "7x7" in out.stdout  # the default: a generated 7x7 maze from the train split


def test_frames_carry_no_true_pose():
    names = {f.name for f in dataclasses.fields(SensorFrame)}
    assert names == {"ranges", "scan", "odom_delta", "goal", "episode_id", "stamp", "seq", "extras"}


def _drive(env, steps, action=(0.6, 0.3)):
    frames, poses = [], [env.sim.pose[0].copy()]
    for _ in range(steps):
        env.step(np.array(action, np.float32))
        frames.append(env.sim.frame(0, np.zeros(3)))
        poses.append(env.sim.pose[0].copy())
    return frames, np.array(poses)


def test_odometry_drifts_from_the_true_pose():
    env = MazeEnv(maze=HALL, seed=0)
    env.reset(seed=4)
    sim = env.sim
    start = sim.pose[0].copy()
    c, s = math.cos(start[2]), math.sin(start[2])
    for _ in range(200):
        env.step(np.array([0.8, 0.25], np.float32))
    est = sim.observers[0].pose  # the Preprocessor's odometry-frame pose, integrated from the frames alone
    dx, dy = sim.pose[0, 0] - start[0], sim.pose[0, 1] - start[1]
    true_rel = np.array([c * dx + s * dy, -s * dx + c * dy])
    err = float(np.hypot(*(est[:2] - true_rel)))
    env.close()
    travelled = sim.path_length[0]
    assert travelled > 5.0
    assert err > 1e-3, "odometry must not be perfect"
    assert err < 0.25 * travelled, "drift should stay a fraction of the distance"


@pytest.mark.parametrize("dropout", [0.05, 0.2])
def test_scan_has_nan_dropouts_and_inf_no_returns_at_configured_rates(dropout):
    cfg = SimConfig(scanner=ScannerConfig(num_beams=360, dropout=dropout, noise_std=0.0))
    env = MazeEnv(maze=HALL, config=cfg, seed=1)
    env.reset(seed=2)
    scans = [env.sim.ranges[0, :360].copy()]
    for _ in range(60):
        env.step(np.array([0.5, 0.4], np.float32))
        scans.append(env.sim.ranges[0, :360].copy())
    env.close()
    s = np.array(scans)
    nan_rate = np.isnan(s).mean()
    assert abs(nan_rate - dropout) < 0.02 + 0.1 * dropout, nan_rate
    assert np.isposinf(s).any(), "an 11 m hall must leave beams with no return within 3.5 m"
    assert not np.isneginf(s).any()


def test_noise_free_scan_equals_the_exact_geometry():
    cfg = SimConfig(scanner=ScannerConfig(num_beams=90, dropout=0.0, noise_std=0.0))
    env = MazeEnv(maze=HALL, config=cfg, seed=0)
    env.reset(seed=0)
    env.step(np.array([0.5, 0.2], np.float32))
    sim = env.sim
    x, y, th = sim.pose[0]
    ang = th + sim.beam_rel[0, :90]
    ref = np.empty(90)
    grid_raycast(HALL.occupancy, 1.0, np.full(90, x), np.full(90, y), ang, 3.5, ref)
    np.testing.assert_array_equal(sim.ranges[0, :90], ref.astype(np.float32))
    env.close()


def test_time_limit_and_truncation():
    env = MazeEnv(maze=HALL, seed=0)
    _, info = env.reset(seed=0)
    expected = math.ceil((3.0 * info["shortest_path_length"] / 0.5 + 10.0) / 0.1)
    assert info["time_limit_steps"] == expected
    env.sim.limit[0] = 3
    out = [env.step(np.zeros(2, np.float32)) for _ in range(3)]
    assert [o[3] for o in out] == [False, False, True]
    assert not any(o[2] for o in out)
    env.close()


def test_reward_is_geodesic_progress_plus_terms_and_success_terminates():
    env = MazeEnv(maze=HALL, seed=0)
    env.reset(seed=0)
    sim = env.sim
    g0 = sim.geo[0]
    _, r, term, trunc, info = env.step(np.array([1.0, 0.0], np.float32))
    progress = g0 - info["geodesic_to_goal"]
    assert r == pytest.approx(progress * 1.0 - 0.01, abs=1e-6)  # no collision, no success this tick
    # Teleport next to the goal: the next tick reaches it, terminates and pays the bonus.
    gx, gy = sim.goal_xy[0]
    sim.world.place_robot(0, gx - 0.25, gy, 0.0)
    sim.pose[0] = sim.prev_pose[0] = (gx - 0.25, gy, 0.0)
    sim.geo[0] = sim._geodesic(0)
    _, r, term, trunc, info = env.step(np.array([1.0, 0.0], np.float32))
    assert term and not trunc and info["is_success"]
    assert r > 9.0
    env.close()


def test_randomization_varies_the_sensor_and_keeps_the_observation_size():
    cfg = SimConfig(randomization=RandomizationConfig(enabled=True))
    env = MazeEnv(maze=HALL, config=cfg, seed=0)
    beams, fovs, lat, radii = set(), set(), set(), set()
    for s in range(12):
        obs, _ = env.reset(seed=s)
        prm = env.sim.params[0]
        beams.add(prm.scan.num_beams)
        fovs.add(round(prm.scan.fov, 3))
        lat.add(prm.latency)
        radii.add(round(prm.radius, 4))
        assert obs.shape == env.observation_space.shape
        assert 90 <= prm.scan.num_beams <= 180
        env.step(env.action_space.sample())
    env.close()
    assert len(beams) > 5 and len(fovs) > 5 and lat == {0, 1, 2} and len(radii) > 5


def test_drift_scale_widens_only_the_per_episode_drift_and_scale_error():
    # odom_scale fixed at 1: the drift draws' spread grows by the drift_scale draw; per-tick noise stays nominal.
    base = RandomizationConfig(enabled=True, odom_scale=(1.0, 1.0))
    spread = {}
    for name, rnd in (("nominal", base), ("harsh", dataclasses.replace(base, drift_scale=(20.0, 20.0)))):
        env = MazeEnv(maze=HALL, config=SimConfig(randomization=rnd), seed=0)
        drift, trans = [], set()
        for s in range(40):
            env.reset(seed=s)
            prm = env.sim.params[0]
            drift.append(prm.heading_drift)
            trans.add(prm.trans_noise)
        env.close()
        spread[name] = float(np.std(drift))
        assert trans == {SimConfig().odometry.trans_noise}
    assert spread["nominal"] == pytest.approx(0.0005, rel=0.35)
    assert spread["harsh"] == pytest.approx(0.01, rel=0.35)


def test_file_maze_keeps_its_start_and_goal():
    env = MazeEnv(maze=HALL, seed=0)
    for s in range(3):
        env.reset(seed=s)
        ep = env.sim.episodes[0]
        assert ep.maze.start == HALL.start and ep.maze.goal == HALL.goal
    env.close()


def test_reset_options_take_an_explicit_episode():
    env = MazeEnv(seed=0)
    o1, i1 = env.reset(options={"episode": EpisodeSpec(HALL, seed=7)})
    o2, _ = env.reset(options={"episode": EpisodeSpec(HALL, seed=7)})
    np.testing.assert_array_equal(o1, o2)
    assert i1["maze_hash"] == HALL.hash()
    env.close()


def test_render_rgb_array():
    env = MazeEnv(maze=HALL, render_mode="rgb_array", seed=0)
    env.reset(seed=0)
    env.step(env.action_space.sample())
    img = env.render()
    assert img.ndim == 3 and img.shape[2] == 3 and img.dtype == np.uint8
    assert img.std() > 10  # not blank
    env.close()


def test_gym_make_with_maze_argument():
    env = gym.make("robonav.sim:robonav/Maze-v0", maze=HALL)
    _, info = env.reset(seed=0)
    assert info["maze_hash"] == HALL.hash()
    env.close()


def test_env_observation_is_the_preprocessor_output_for_the_same_frame():
    env = MazeEnv(maze=HALL, seed=0)
    obs, _ = env.reset(seed=1)
    pre = Preprocessor(env.sim.observers[0].spec)
    np.testing.assert_array_equal(obs, pre(env.sim.frames[0], env.sim.last_command[0]))
    rng = np.random.default_rng(0)
    for _ in range(50):
        obs, *_ = env.step(rng.uniform(-1, 1, 2).astype(np.float32))
        mine = pre(env.sim.frames[0], env.sim.last_command[0])
        np.testing.assert_array_equal(obs, mine)
    env.close()


def test_memory_channels_can_be_switched_off():
    full = MazeEnv(maze=HALL)
    off = MazeEnv(maze=HALL, config={"preprocessor": {"obstacle_coarse": False, "trajectory_coarse": False}})
    assert full.observation_space.shape[0] - off.observation_space.shape[0] == 2 * 144
    full.close()
    off.close()


@pytest.mark.parametrize("latency", [0, 1, 2])
def test_nominal_command_latency_in_ticks(latency):
    env = MazeEnv(maze=HALL, config={"latency_ticks": latency}, seed=0)
    env.reset(seed=0)
    moved = []
    for _ in range(4):
        before = env.sim.pose[0, :2].copy()
        env.step(np.array([1.0, 0.0], np.float32))
        moved.append(bool(np.hypot(*(env.sim.pose[0, :2] - before)) > 1e-4))
    env.close()
    assert moved == [False] * latency + [True] * (4 - latency)


def _facing_west_wall(blocked: float) -> MazeEnv:
    """HALL with the robot 0.03 m of clearance from the west wall, facing it (the safety layer's stop zone)."""
    cfg = SimConfig(reward=dataclasses.replace(SimConfig().reward, blocked=blocked))
    env = MazeEnv(maze=HALL, config=cfg, seed=0)
    env.reset(seed=0)
    sim = env.sim
    x, y = 1.0 + sim.radius[0] + sim.cfg.safety.side_margin + 0.03, sim.pose[0, 1]
    sim.world.place_robot(0, x, y, math.pi)
    sim.pose[0] = sim.prev_pose[0] = (x, y, math.pi)
    sim.geo[0] = sim._geodesic(0)
    sim._scan(np.arange(1))
    return env


def test_blocked_term_prices_what_the_safety_layer_takes_away_toward_a_wall():
    rewards = {}
    for blocked in (0.0, -0.1):
        env = _facing_west_wall(blocked)
        _, r_fwd, *_ = env.step(np.array([1.0, 0.0], np.float32))  # full speed into the wall: stopped
        assert env.sim.safety.obstacle_factor[0] == 0.0 and env.sim.last_command[0, 0] == 0.0
        _, r_half, *_ = env.step(np.array([0.5, 0.0], np.float32))  # half speed: half the price
        _, r_back, *_ = env.step(np.array([-1.0, 0.0], np.float32))  # away from the wall: free
        rewards[blocked] = (r_fwd, r_half, r_back)
        env.close()
    (f0, h0, b0), (f1, h1, b1) = rewards[0.0], rewards[-0.1]
    assert f1 - f0 == pytest.approx(-0.1, abs=1e-6)
    assert h1 - h0 == pytest.approx(-0.05, abs=1e-6)
    assert b1 == pytest.approx(b0, abs=1e-7)


def test_turn_change_term_prices_swinging_the_heading_by_hand():
    """omega_max 2 rad/s (actions normalised), the safety layer's rate limit 0.4 rad/s per tick: commands 0.1, 0.75
    (-> 0.5), 0.25 (= 0.5), 0.25, 0 (-> 0.1) pass as 0.1, 0.5, 0.5, 0.5, 0.1 rad/s; |delta omega| / omega_max =
    0.05, 0.2, 0, 0, 0.2, times the coefficient -0.02; nothing else in the reward moves."""
    rewards, passed = {}, []
    for coef in (0.0, -0.02):
        env = MazeEnv(maze=HALL, config=SimConfig(reward=dataclasses.replace(SimConfig().reward, turn_change=coef)),
                      seed=0)
        env.reset(seed=0)
        rewards[coef] = []
        for w in (0.05, 0.75, 0.25, 0.25, 0.0):
            rewards[coef].append(env.step(np.array([0.0, w], np.float32))[1])
            passed.append(env.sim.last_command[0, 1])
        env.close()
    np.testing.assert_allclose(passed[5:], [0.1, 0.5, 0.5, 0.5, 0.1], atol=1e-9)
    diff = np.array(rewards[-0.02]) - np.array(rewards[0.0])
    np.testing.assert_allclose(diff, [-0.001, -0.004, 0.0, 0.0, -0.004], atol=1e-6)
