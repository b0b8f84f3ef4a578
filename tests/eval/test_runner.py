"""The episode runner: every queued episode exactly once, in order, reset before it starts, deterministic."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from robonav.eval.episodes import make_episodes
from robonav.eval.metrics import summarize
from robonav.eval.runner import (
    EVAL_LATENCY_TICKS,
    ExpertPolicy,
    RandomPolicy,
    eval_config,
    mover_clearance,
    run_episodes,
)
from robonav.sensors.frame import SensorFrame
from robonav.sim.config import DYNAMIC_DENSITY, DynamicConfig, RandomizationConfig, SimConfig
from robonav.sim.core import MazeSim


class WatchfulPolicy(RandomPolicy):
    """Random commands; checks that every env is reset before the first tick of each of its episodes."""

    def __init__(self, num_envs: int) -> None:
        super().__init__(num_envs, seed=1)
        self.resets: list[int] = []
        self.pending: set[int] = set()
        self.seen = np.zeros(num_envs, dtype=np.int64)  # episode id each env last acted in
        self.started: list[int] = []  # episode ids in the order they were first acted in

    def reset(self, env_ids: np.ndarray) -> None:
        self.resets += env_ids.tolist()
        self.pending |= set(env_ids.tolist())

    def act(self, obs: np.ndarray, frames: list[SensorFrame | None], sim: MazeSim) -> np.ndarray:
        for i, frame in enumerate(frames):
            assert frame is not None
            if frame.episode_id != self.seen[i]:
                assert i in self.pending or frame.episode_id in self.started, \
                    f"env {i} started episode {frame.episode_id} without a reset"
                if frame.episode_id not in self.started:
                    self.pending.discard(i)
                    self.started.append(frame.episode_id)
                self.seen[i] = frame.episode_id
        return super().act(obs, frames, sim)


def test_every_queued_episode_runs_once_in_order() -> None:
    episodes = make_episodes("val-3x3", 5, seed=0)
    policies: list[WatchfulPolicy] = []

    def factory(n: int) -> WatchfulPolicy:
        policies.append(WatchfulPolicy(n))
        return policies[-1]

    calls: list[tuple[int, int]] = []
    results = run_episodes(factory, episodes, num_envs=2, progress=lambda done, total: calls.append((done, total)))
    assert [(r.maze_hash, r.seed) for r in results] == [(e.maze.hash(), e.seed) for e in episodes]
    assert [r.maze_name for r in results] == [e.maze.name for e in episodes]
    assert all(r.family == e.maze.family for r, e in zip(results, episodes))
    (policy,) = policies
    assert policy.num_envs == 2
    assert len(policy.resets) == 5 and sorted(set(policy.resets)) == [0, 1]   # one reset per episode
    assert len(policy.started) == 5 and not policy.pending
    assert calls == [(k, 5) for k in range(1, 6)]
    for r in results:
        assert r.steps >= 1 and r.path_length >= 0.0 and 0.0 <= r.spl <= 1.0


def test_more_envs_than_episodes_and_no_episodes() -> None:
    episodes = make_episodes("val-3x3", 2, seed=4)
    policies: list[WatchfulPolicy] = []

    def factory(n: int) -> WatchfulPolicy:
        policies.append(WatchfulPolicy(n))
        return policies[-1]

    assert len(run_episodes(factory, episodes, num_envs=8)) == 2
    assert policies[0].num_envs == 2  # no idle slot is made for nothing
    assert run_episodes(factory, [], num_envs=8) == []
    with pytest.raises(ValueError, match="num_envs must be >= 1, got 0"):
        run_episodes(factory, episodes, num_envs=0)


class Spinner:
    """Always drives in circles; checks that a slot idle for 10 ticks (its episode over, the queue empty) stands."""

    def __init__(self, num_envs: int) -> None:
        self.num_envs = num_envs
        self.checked = 0

    def reset(self, env_ids: np.ndarray) -> None:
        pass

    def act(self, obs: np.ndarray, frames: list[SensorFrame | None], sim: MazeSim) -> np.ndarray:
        idle = sim.steps >= sim.limit + 10  # time limit passed 10 ticks ago: a finished, unrefilled slot
        assert np.allclose(sim.velocity[idle], 0.0), "an idle slot was still driven"
        self.checked += int(idle.sum())
        return np.tile([0.5, 1.0], (self.num_envs, 1))


def test_idle_slots_stand_still_and_are_not_recorded() -> None:
    episodes = [make_episodes("val-3x3", 1)[0], make_episodes("val-7x7", 1)[0]]  # the second lasts far longer
    policies: list[Spinner] = []

    def factory(n: int) -> Spinner:
        policies.append(Spinner(n))
        return policies[-1]

    results = run_episodes(factory, episodes, num_envs=2)
    assert len(results) == 2 and policies[0].checked > 0
    assert results[1].steps > results[0].steps + 10


def test_runs_are_deterministic() -> None:
    episodes = make_episodes("val-3x3", 3, seed=2)
    first = run_episodes(lambda n: RandomPolicy(n, seed=5), episodes, num_envs=2)
    again = run_episodes(lambda n: RandomPolicy(n, seed=5), episodes, num_envs=2)
    assert first == again


def test_the_expert_solves_a_small_suite_whatever_the_batch() -> None:
    episodes = make_episodes("val-5x5", 12, seed=0)
    results = run_episodes(ExpertPolicy, episodes, num_envs=6)
    summary = summarize(results)
    assert summary["success_rate"] >= 0.95, summary
    assert summary["spl"] >= 0.9 and summary["collisions_per_episode"] == 0.0
    # A stateless policy gives the same results in batches of other sizes: envs do not leak into each other.
    assert run_episodes(ExpertPolicy, episodes[:4], num_envs=3) == results[:4]


def test_eval_config_turns_randomization_off_sets_one_tick_latency_and_keeps_the_rest() -> None:
    cfg = SimConfig(substeps=3, latency_ticks=3, randomization=RandomizationConfig(enabled=True, beams=(100, 120)))
    out = eval_config(cfg)
    assert out.randomization.enabled is False and out.randomization.beams == (100, 120)
    assert out.latency_ticks == EVAL_LATENCY_TICKS == 1
    assert out.substeps == 3 and out.scanner == cfg.scanner
    assert cfg.randomization.enabled is True and cfg.latency_ticks == 3  # the given config is not changed
    assert eval_config() == dataclasses.replace(SimConfig(), latency_ticks=1,
                                                randomization=RandomizationConfig(enabled=False))
    sim = MazeSim(1, out, seed=0)
    sim.reset_env(0, make_episodes("val-3x3", 1)[0])
    params = sim.params[0]
    assert params is not None and params.latency == 1 and params.scan.num_beams == cfg.scanner.num_beams
    sim.close()


def test_wall_clearance_by_hand() -> None:
    from robonav.eval.runner import CLEARANCE_REACH, wall_clearance

    occ = np.zeros((5, 5), dtype=bool)
    occ[0, 0] = True  # a wall cell at x, y in [0, 1]
    # From (1.5, 1.5) the wall's corner (1, 1) is sqrt(0.5) = 0.7071 away; minus a 0.2 m radius.
    assert wall_clearance(occ, 1.0, 1.5, 1.5, 0.2) == pytest.approx(0.5071068, abs=1e-6)
    # Beside a face: 0.3 m to the wall's east face x = 1 (the grid's south edge y = 0 is 1.2 away: outside is wall).
    assert wall_clearance(occ, 1.0, 1.3, 0.5 + 0.7, 0.1) == pytest.approx(0.3 * np.sqrt(1 + (0.2 / 0.3) ** 2) - 0.1)
    # Overlapping a wall: 0, never negative. Far from everything: the reach, minus the radius.
    assert wall_clearance(occ, 1.0, 1.05, 0.5, 0.2) == 0.0
    big = np.zeros((40, 40), dtype=bool)
    assert wall_clearance(big, 1.0, 20.5, 20.5, 0.2) == pytest.approx(CLEARANCE_REACH - 0.2)


def test_results_carry_duration_and_clearance_from_the_run() -> None:
    episodes = make_episodes("val-3x3", 2, seed=0)
    results = run_episodes(ExpertPolicy, episodes, num_envs=2)
    for r in results:
        assert r.duration == pytest.approx(r.steps * 0.1)
        # A 1 m corridor leaves at most 0.5 - 0.18 m to the nominal robot; the expert keeps off the walls.
        assert 0.0 < r.min_clearance <= 0.5 - 0.18 + 1e-9
        assert r.conditions == ("nominal",) and r.mover_contacts == 0


def test_mover_clearance_by_hand() -> None:
    centres, radii = np.array([[1.0, 0.0], [0.0, 3.0]]), np.array([0.25, 0.3])
    assert mover_clearance(centres, radii, 0.0, 0.0, 0.2) == pytest.approx(1.0 - 0.25 - 0.2)  # the nearer one
    assert mover_clearance(centres, radii, 0.7, 0.0, 0.2) == 0.0  # 0.3 m apart, 0.45 m of radii: overlap
    assert mover_clearance(np.zeros((0, 2)), np.zeros(0), 0.0, 0.0, 0.2) == math.inf


def test_results_carry_the_clearance_to_movers_apart_from_the_walls() -> None:
    episodes = make_episodes("val-5x5", 2, seed=0)
    cfg = dataclasses.replace(eval_config(), dynamic=DynamicConfig(density=DYNAMIC_DENSITY))
    moving = run_episodes(ExpertPolicy, episodes, config=cfg, num_envs=2)
    still = run_episodes(ExpertPolicy, episodes, num_envs=2)
    for m, s in zip(moving, still):
        assert s.min_clearance_movers == math.inf  # no movers: none ever came near
        # The expert ignores people; a mover walking the same corridors comes within a few metres of it.
        assert 0.0 <= m.min_clearance_movers < 3.0
        assert m.min_clearance <= 0.5 - 0.18 + 1e-9  # walls stay walls: movers do not enter min_clearance
        if m.mover_contacts:
            assert m.min_clearance_movers == 0.0
