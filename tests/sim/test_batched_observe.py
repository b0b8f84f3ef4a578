"""The batched observation tick (one Numba call for every env's Preprocessor and geodesic) against the per-env
Python path it replaced: the same observations, rewards, outcomes, infos and frames, bit for bit."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from robonav.data import resource
from robonav.sensors import Preprocessor, ScanSpec, SensorFrame, SensorFrameError
from robonav.sensors.batch import PreprocessorBatch
from robonav.sensors.preprocessor import step_kernel
from robonav.sensors.spec import ObservationSpec
from robonav.sim.config import DynamicConfig, RandomizationConfig, SimConfig
from robonav.sim.generate import generate_maze
from robonav.sim.geodesic import distance_field, geodesic_at, geodesic_at_batch
from robonav.sim.maze import parse_maze
from robonav.sim.observation import batch_observer, make_observer
from robonav.sim.vector import MazeVectorEnv

SMALL = parse_maze("#######\n#S....#\n#.###.#\n#....G#\n#######")


def _shipped_config(**kw) -> SimConfig:
    spec = ObservationSpec.from_dict(json.loads(resource("policies", "default.json").read_text())
                                     ["observation_spec"])
    assert spec.config.guidance  # the shipped observation plans: the batched path must carry its A* state too
    return SimConfig(observation="preprocessor", preprocessor=spec.config, **kw)


def _record(env: MazeVectorEnv, ticks: int) -> tuple[list[bytes], int]:
    """Every tick's outputs and frames as bytes, and the number of episodes that ended."""
    out = []
    obs, info = env.reset(seed=11)
    out.append(obs.tobytes())
    rng = np.random.default_rng(2)
    ended = 0
    for _ in range(ticks):
        a = rng.uniform(-1, 1, (env.num_envs, 2)).astype(np.float32)
        a[:, 0] = np.abs(a[:, 0])  # mostly forward: collisions and goals, not spinning in place
        obs, rew, term, trunc, info = env.step(a)
        ended += int((term | trunc).sum())
        out += [obs.tobytes(), rew.tobytes(), term.tobytes(), trunc.tobytes()]
        for key in sorted(k for k in info if not isinstance(info[k], dict)):
            out.append(np.asarray(info[key]).tobytes())
        for frame in env.sim.frames:
            assert frame is not None
            out += [frame.ranges.tobytes(), np.asarray(frame.odom_delta).tobytes(), frame.goal.tobytes(),
                    repr((frame.episode_id, frame.stamp, frame.seq, frame.scan.spec_id)).encode()]
    return out, ended


@pytest.mark.parametrize("budget", [0, 40])  # 40: plans spread over steps, the budgeted search state batched too
def test_batched_tick_is_bit_identical_to_the_per_env_path(budget):
    cfg = _shipped_config(dynamic=DynamicConfig(density=0.08), randomization=RandomizationConfig(enabled=True),
                          time_limit_factor=0.3, time_limit_extra=2.0)
    cfg = dataclasses.replace(cfg, preprocessor=dataclasses.replace(cfg.preprocessor, guidance_budget=budget))
    mazes = [SMALL, generate_maze("perfect", 7, 7, seed=1), generate_maze("rooms", 7, 7, seed=2)]
    runs = {}
    for per_env in (False, True):
        env = MazeVectorEnv(4, maze=mazes, config=cfg, seed=5, per_env_observe=per_env)
        assert (env.sim._batch is None) == per_env
        runs[per_env] = _record(env, 150)
        if not per_env:
            movers = int(env.sim.crowd.count.sum())
            sizes = {f.shape for f in env.sim.fields}
        env.close()
    (batched, ended), (reference, ended_ref) = runs[False], runs[True]
    assert movers > 0 and len(sizes) > 1  # movers moved, and fields of several shapes shared the padded plane
    assert ended == ended_ref and ended >= 4  # resets inside the run, in both
    assert len(batched) == len(reference)
    first = next((k for k, (a, b) in enumerate(zip(batched, reference)) if a != b), None)
    assert first is None, f"batched and per-env outputs differ first at record {first}"


def test_geodesic_batch_matches_one_field_at_a_time():
    mazes = [SMALL, generate_maze("braided", 9, 9, seed=3)]
    fields = [distance_field(m.occupancy, m.cell, m.cell_center(m.goal), 4) for m in mazes]
    plane = np.full((2, max(f.shape[0] for f in fields), max(f.shape[1] for f in fields)), np.inf)
    for i, f in enumerate(fields):
        plane[i, :f.shape[0], :f.shape[1]] = f
    rng = np.random.default_rng(0)
    for _ in range(200):  # points in free space, in walls, off the grid on every side
        xs = rng.uniform(-1.0, 9.0, 2)
        ys = rng.uniform(-1.0, 9.0, 2)
        got = geodesic_at_batch(plane, np.array([m.cell / 4 for m in mazes]), xs, ys)
        want = [geodesic_at(f, m.cell, 4, xs[i:i + 1], ys[i:i + 1])[0] for i, (f, m) in enumerate(zip(fields, mazes))]
        assert got.tobytes() == np.array(want).tobytes()
    got = geodesic_at_batch(plane, np.array([0.25, 0.25]), np.array([np.nan, 1.0]), np.array([1.0, np.inf]))
    assert np.isnan(got).all()


def _frame(rng, scan: ScanSpec, episode: int) -> SensorFrame:
    ranges = rng.uniform(0.05, 4.0, scan.num_beams).astype(np.float32)
    ranges[rng.random(scan.num_beams) < 0.1] = np.nan
    return SensorFrame(ranges, scan, rng.normal(0.0, 0.03, 3), np.array([3.0, -1.0]), episode_id=episode)


def test_preprocessor_batch_matches_each_preprocessor():
    cfg = _shipped_config().preprocessor
    scans = [ScanSpec.evenly_spaced(360), ScanSpec.evenly_spaced(180, np.radians(270.0)), ScanSpec.evenly_spaced(90)]
    solo = [Preprocessor(ObservationSpec(cfg)) for _ in scans]
    pres = [Preprocessor(ObservationSpec(cfg)) for _ in scans]
    batch = PreprocessorBatch(pres)
    rng = np.random.default_rng(4)
    ranges = np.full((3, 360), np.nan, np.float32)
    out = np.zeros((3, pres[0].dim), np.float32)
    with pytest.raises(RuntimeError, match="no episode yet"):
        batch(ranges, np.zeros((3, 3)), np.zeros((3, 2)), np.zeros((3, 2)), out)
    for i, s in enumerate(scans):  # an episode's first frame goes through the Preprocessor itself
        f = _frame(rng, s, episode=1)
        solo[i](f, (0.0, 0.0))
        pres[i](f, (0.0, 0.0))
        batch.refresh(i)
    signatures = set(step_kernel.signatures)
    for _ in range(60):
        frames = [_frame(rng, s, episode=1) for s in scans]
        command = rng.uniform(-0.5, 0.5, (3, 2))
        odom = np.array([f.odom_delta for f in frames])
        goal = np.array([f.goal for f in frames])
        for i, f in enumerate(frames):
            ranges[i, :f.ranges.shape[0]] = f.ranges
        batch(ranges, odom, goal, command, out)
        want = np.array([p(f, command[i]) for i, (p, f) in enumerate(zip(solo, frames))])
        assert out.tobytes() == want.tobytes()
    assert set(step_kernel.signatures) == signatures  # the batch passes the per-env call's types: no new compile
    for p, q in zip(pres, solo):  # each batched Preprocessor still reads its own state through its views
        assert p.pose.tobytes() == q.pose.tobytes() and p.step_count == q.step_count == 61
        for got, want in zip(p.memory(1), q.memory(1)):
            np.testing.assert_array_equal(got, want)
    goal[1] = (np.inf, 0.0)
    with pytest.raises(SensorFrameError, match=r"env 1"):
        batch(ranges, odom, goal, command, out)


def test_plain_observers_and_laser_odometry_keep_the_per_env_path():
    assert batch_observer([make_observer("plain") for _ in range(2)]) is None
    cfg = _shipped_config().preprocessor
    from dataclasses import replace

    assert batch_observer([make_observer("preprocessor", preprocessor=replace(cfg, laser_odometry=True))]) is None
    assert isinstance(batch_observer([make_observer("preprocessor", preprocessor=cfg)]), PreprocessorBatch)
