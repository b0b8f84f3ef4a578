"""Probe targets on hand-made trajectories, mover visibility on a hand-made scan, and a recording end to end:
real MazeSim episodes on val-3x3 with random-weights policies, whose recorded features replay exactly."""

from __future__ import annotations

import dataclasses
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from robonav.eval.episodes import make_episodes
from robonav.eval.probes import TARGETS, Trajectory, probe_table, record_episodes, trajectory_targets, visible_movers
from robonav.eval.runner import eval_config
from robonav.policy.actor_critic import ActorCritic, PolicyConfig
from robonav.sim.observation import make_observer


def test_visible_movers_on_a_hand_made_scan():
    pose = np.array([1.0, 1.0, math.pi / 2])  # facing +y
    beam_rel = np.array([0.0, -math.pi / 2, math.pi / 2, math.pi])  # ahead (+y), right (+x), left (-x), behind
    ranges = np.array([2.0, np.inf, np.nan, 0.5], dtype=np.float32)  # hit at (1, 3); no return; invalid; (1, 0.5)
    movers = np.array([[1.0, 3.3],    # rim at 3.0: the forward beam ends on it -> visible
                       [3.0, 1.0],    # to the right, where the beam saw nothing -> not visible
                       [1.0, 4.5],    # behind the forward hit -> not visible
                       [-1.0, 1.0],   # to the left, where the reading was invalid -> not visible
                       [1.0, 0.4]])   # 0.1 m past the rear hit, radius 0.06 + 0.05 tolerance -> visible
    radius = np.array([0.3, 0.3, 0.3, 0.3, 0.06])
    assert visible_movers(pose, beam_rel, ranges, movers, radius).tolist() == [True, False, False, False, True]
    assert visible_movers(pose, beam_rel, ranges, movers, radius, tol=0.0).tolist() == [True, False, False, False,
                                                                                       False]
    assert visible_movers(pose, beam_rel, ranges, np.zeros((0, 2)), np.zeros(0)).shape == (0,)


def _trajectory() -> Trajectory:
    """Six ticks: the robot sits at the origin facing +y and turns a little; one mover, visible at ticks 1 and 2."""
    t_len = 6
    th = np.array([math.pi / 2, math.pi / 2, math.pi / 2 + 0.1, math.pi / 2 + 0.1, math.pi / 2 + 0.3,
                   math.pi / 2 + 0.3])
    pose = np.stack([np.zeros(t_len), np.zeros(t_len), th], axis=1)
    odom = np.array([0.0, 0.0, 0.08, 0.0, 0.21, 0.0])  # the odometry saw 0.08 of the 0.1 turn and 0.21 of 0.2
    pos = np.array([[0.0, 1.0], [1.0, 1.0], [2.0, 1.0], [3.0, 1.0], [4.0, 1.0], [5.0, 1.0]])[:, None, :]
    vel = np.tile([[[10.0, 0.0]]], (t_len, 1, 1))  # 1 m per 0.1 s tick along +x
    vis = np.array([False, True, True, False, False, False])[:, None]
    return Trajectory(pose=pose, odom_dtheta=odom, path_length=np.arange(t_len) * 0.1, geodesic=5.0 - np.arange(t_len),
                      mover_pos=pos, mover_vel=vel, mover_visible=vis)


def test_targets_of_a_hand_made_trajectory():
    tg = trajectory_targets(_trajectory(), recent=2)
    assert set(tg) == set(TARGETS)
    vel, vel_ok = tg["mover_velocity"]
    assert vel_ok.tolist() == [False, True, True, False, False, False]
    # Maze +x seen from a robot facing +y is the robot's right: (0, -10) at tick 1 (heading exactly pi/2).
    assert vel[1] == pytest.approx([0.0, -10.0], abs=1e-12)
    pos, hidden = tg["last_seen_position"]
    assert hidden.tolist() == [False, False, False, True, True, True]  # never seen yet, seen, seen, then hidden
    # Tick 3: last seen at tick 2 at (2, 1); robot at the origin heading pi/2 + 0.1:
    c, s = math.cos(math.pi / 2 + 0.1), math.sin(math.pi / 2 + 0.1)
    assert pos[3] == pytest.approx([c * 2 + s * 1, -s * 2 + c * 1], abs=1e-12)
    assert pos[5] == pytest.approx([math.cos(math.pi / 2 + 0.3) * 2 + math.sin(math.pi / 2 + 0.3),
                                    -math.sin(math.pi / 2 + 0.3) * 2 + math.cos(math.pi / 2 + 0.3)], abs=1e-12)
    since, ok = tg["ticks_since_seen"]
    assert ok.tolist() == hidden.tolist()
    assert since[3:, 0] == pytest.approx(np.log1p([1, 2, 3]))
    recent, ok = tg["mover_seen_recently"]
    assert recent[3:, 0].tolist() == [1, 1, 0]  # within 2 ticks at ticks 3 and 4, not at 5
    # Heading drift: true change minus odometry's: tick 2: 0.1 - 0.08; tick 4: 0.3 - 0.29.
    drift, ok = tg["heading_drift"]
    assert ok.all()
    assert drift[:, 0] == pytest.approx([0.0, 0.0, 0.02, 0.02, 0.01, 0.01], abs=1e-12)
    assert tg["distance_travelled"][0][:, 0] == pytest.approx(np.arange(6) * 0.1)
    assert tg["geodesic_to_goal"][0][:, 0] == pytest.approx(5.0 - np.arange(6))


def test_mover_targets_are_undefined_without_movers():
    traj = _trajectory()
    traj.mover_pos, traj.mover_vel = np.zeros((6, 0, 2)), np.zeros((6, 0, 2))
    traj.mover_visible = np.zeros((6, 0), dtype=bool)
    tg = trajectory_targets(traj)
    for name, target in TARGETS.items():
        assert tg[name][1].any() != target.movers, name


def _random_policy(obs_dim: int, core: str, seed: int) -> ActorCritic:
    torch.manual_seed(seed)
    model = ActorCritic(obs_dim, PolicyConfig(encoder=(32,), core=core, hidden=16))
    with torch.no_grad():
        model.mu.weight.normal_(0.0, 0.5)  # move: the default initialisation barely does
        model.mu.bias.fill_(0.5)
    return model.eval()


def test_recording_end_to_end_replays_exactly():
    cfg = dataclasses.replace(eval_config(), time_limit_factor=0.5, time_limit_extra=0.0)  # short episodes
    obs_dim = make_observer(cfg.observation, cfg.robot.v_max, cfg.robot.omega_max, cfg.preprocessor).dim
    lstm, mlp = _random_policy(obs_dim, "lstm", 0), _random_policy(obs_dim, "mlp", 1)
    episodes = make_episodes("val-3x3", 3, seed=0)
    records = record_episodes(lstm, episodes, cfg, shadows={"memoryless": mlp}, num_envs=2)
    assert [r.index for r in records] == [0, 1, 2]
    for rec in records:
        t_len = len(rec.trajectory.pose)
        assert t_len > 1
        assert rec.features["core"].shape == (t_len, 32)  # h and c of 16 each
        assert rec.features["encoder"].shape == (t_len, 32)
        assert rec.features["observation"].shape == (t_len, obs_dim)
        assert rec.features["memoryless"].shape == (t_len, 16)
        assert rec.trajectory.path_length[0] == 0.0 and (np.diff(rec.trajectory.path_length) >= 0).all()
        # The recorded state is the step form's state from the recorded observations, reset at the start.
        h = c = torch.zeros(1, 1, 16)
        with torch.no_grad():
            for t, obs in enumerate(torch.as_tensor(rec.features["observation"])):
                _, h, c = lstm.step(obs[None], h, c)
                assert np.allclose(rec.features["core"][t], np.concatenate([h[0, 0], c[0, 0]]), atol=1e-5)
            memoryless = mlp.actor.core(mlp.actor.encoder(mlp.normalizer(torch.as_tensor(
                rec.features["observation"]))))
        assert np.allclose(rec.features["memoryless"], memoryless.numpy(), atol=1e-5)
    table = probe_table(records, test_fraction=0.3, seed=0, stride=1, resamples=20)
    assert table["split"] == {"train": [0, 1], "test": [2]}
    for name, target in TARGETS.items():
        entry = table["targets"][name]
        if target.movers:
            assert "skipped" in entry  # nominal: no movers
        else:
            assert set(entry["scores"]) == {"core", "encoder", "observation", "memoryless"}
            assert set(entry["minus_observation"]) == {"core", "encoder", "memoryless"}
            assert entry["rows_test"] == len(records[2].trajectory.pose)


@pytest.mark.parametrize("args,message", [
    (["--suite", "test"], "--suite 'test': probes run on validation suites only"),
    (["--suite", "hand"], "--suite 'hand': probes run on validation suites only"),
    (["--policy", "classical"], "--policy/--memoryless 'classical': probes read the core's state"),
])
def test_benchmark_refuses_judged_suites_and_stateless_policies_in_one_line(args, message, tmp_path):
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "probes.py"
    done = subprocess.run([sys.executable, str(script), *args, "--out", str(tmp_path)], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 2
    lines = [ln for ln in done.stderr.splitlines() if not ln.startswith("pybullet build time")]
    assert len(lines) == 1 and lines[0].startswith(f"probes: {message}"), done.stderr
    assert not list(tmp_path.iterdir())
