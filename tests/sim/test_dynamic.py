"""Moving obstacles: the mover model, its determinism and placement, PyBullet physics and the settings' refusals."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from robonav.control.safety import SafetyConfig
from robonav.settings import SettingsError, from_dict
from robonav.sim.config import DYNAMIC_DENSITY, DynamicConfig, RobotConfig, SimConfig
from robonav.sim.core import MazeSim
from robonav.sim.dynamic import Crowd, DynamicError, mover_count, spawn_cells
from robonav.sim.episodes import EpisodeSpec
from robonav.sim.generate import FAMILIES, generate_maze
from robonav.sim.maze import parse_maze
from robonav.sim.world import BatchedWorld

DYN = SimConfig(dynamic=DynamicConfig(density=DYNAMIC_DENSITY))
CORRIDOR = parse_maze("\n".join(["#########", "#S.....G#", "#########"]))  # free cells x in [1, 8), y in [1, 2)


def _crowd_in(maze, pos, tgt, speed=1.0, polite=False, radius=0.25, **cfg):
    """A one-env Crowd with one mover at ``pos`` walking to cell ``tgt`` (ix, iy)."""
    crowd = Crowd(1, DynamicConfig(density=1.0, pause_prob=0.0, block_prob=0.0, **cfg))
    crowd.pos[0, 0] = pos
    crowd.cur[0, 0] = (int(pos[0] // maze.cell), int(pos[1] // maze.cell))
    crowd.tgt[0, 0] = tgt
    crowd.radius[0, 0], crowd.speed[0, 0], crowd.polite[0, 0] = radius, speed, polite
    crowd.state[0, 0] = 12345
    crowd.count[0] = 1
    grid = maze.occupancy[None].copy()
    return crowd, grid, np.array([maze.occupancy.shape]), np.array([maze.cell])


def _walk(crowd, grid, shapes, cells, robot, ticks, radius=0.18):
    xs = []
    for _ in range(ticks):
        before = crowd.pos[0, 0].copy()
        crowd.step(grid, shapes, cells, np.array([robot], float), np.array([radius]), 0.1)
        np.testing.assert_allclose(crowd.pos[0, 0], before + 0.1 * crowd.vel[0, 0], atol=1e-12)
        xs.append(crowd.pos[0, 0].copy())
    return np.array(xs)


def test_the_reference_density_is_four_movers_in_a_7x7_maze():
    maze = generate_maze("perfect", 7, 7, seed=3)
    assert (~maze.occupancy).sum() == 97  # 49 passage cells + 48 openings of a spanning tree
    assert DYNAMIC_DENSITY == pytest.approx(4 / 97)
    assert mover_count(DYN.dynamic, maze, np.random.default_rng(0)) == 4  # 97 m^2 * 4/97 = 4.0: no rounding


def test_a_density_range_draws_each_episode_s_crowd_and_is_refused_on_its_top():
    # 97 m^2 free: densities drawn in [0, 8/97] give 0 to 8 movers, mean 4; the top decides the refusal.
    maze = generate_maze("perfect", 7, 7, seed=3)
    cfg = DynamicConfig(density=0.0, density_max=8 / 97)
    counts = [mover_count(cfg, maze, np.random.default_rng([s, 1])) for s in range(400)]
    assert min(counts) == 0 and max(counts) == 8
    assert np.mean(counts) == pytest.approx(4.0, abs=0.35)
    assert cfg.peak_density == pytest.approx(8 / 97) and DynamicConfig().peak_density == 0.0
    with pytest.raises(DynamicError, match=r"sim.dynamic.density_max 0.5 asks for 48.5 movers"):
        mover_count(DynamicConfig(density=0.0, density_max=0.5), maze, np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"sim.dynamic.density_max must be null or a number >= sim.dynamic.density"):
        DynamicConfig(density=0.1, density_max=0.05)
    # A range places as many as fit where the maze has too little room far from start and goal (small mazes in
    # a curriculum); a fixed density is refused there instead (above).
    crowd = Crowd(1, DynamicConfig(density=0.3, density_max=0.3, spawn_clearance=10.0))
    room = len(spawn_cells(maze, 10.0))
    crowd.spawn(0, maze, 1)
    assert room == 13 and crowd.count[0] == 13  # 0.3 x 97 m^2 asks for 29


def test_a_mover_walks_the_corridor_and_turns_back_in_the_dead_ends():
    # Speed 1 m/s, 0.1 s ticks: 0.1 m a tick. From x = 4.5 walking east, the east dead end (cell x=7, centre 7.5)
    # is 3 m away: 30 ticks; then back to the west dead end (centre 1.5), 6 m: 60 ticks; then east again.
    crowd, grid, shapes, cells = _crowd_in(CORRIDOR, (4.5, 1.5), (5, 1))
    xs = _walk(crowd, grid, shapes, cells, robot=(-50.0, -50.0, 0.0), ticks=100)[:, 0]
    assert xs[29] == pytest.approx(7.5) and xs.max() == pytest.approx(7.5)
    assert xs[89] == pytest.approx(1.5) and xs.min() == pytest.approx(1.5)
    assert xs[99] == pytest.approx(2.5)
    np.testing.assert_allclose(_walk(crowd, grid, shapes, cells, (-50.0, -50.0, 0.0), 1)[:, 1], 1.5)  # stays on y


@pytest.mark.parametrize("polite", [True, False])
def test_polite_movers_stop_short_and_oblivious_ones_walk_into_the_robot(polite):
    # Robot (radius 0.18) at x = 6.5; mover (radius 0.25) from x = 2.5 walking east at 0.5 m/s (0.05 m a tick).
    crowd, grid, shapes, cells = _crowd_in(CORRIDOR, (2.5, 1.5), (3, 1), speed=0.5, polite=polite,
                                           stop_distance=0.6, give_way=3.0)
    xs = _walk(crowd, grid, shapes, cells, robot=(6.5, 1.5, 0.0), ticks=80)[:, 0]  # contact near tick 72
    gap = 6.5 - xs[-1] - 0.25 - 0.18
    if polite:
        assert 0.6 - 0.05 < gap <= 0.6  # stopped on the first tick that found the gap within stop_distance
    else:
        assert -0.05 < gap <= 0.0  # walked until it touched
    # Held up for give_way = 3 s (30 ticks), it turns back: after 80 more ticks it is well west of where it stood.
    xs = _walk(crowd, grid, shapes, cells, robot=(6.5, 1.5, 0.0), ticks=80)[:, 0]
    assert xs[-1] < xs[0] - 1.0


def test_an_oblivious_mover_that_keeps_bumping_a_retreating_robot_gives_way_after_its_time_in_all():
    # The robot backs off one mover step (0.05 m) a tick after each touch, so contact never lasts: the mover is
    # held every other tick. Its held time adds up, and after give_way = 1 s (10 held ticks) it turns back
    # instead of pushing the robot down the corridor (a count that restarted on every lost contact never would).
    crowd, grid, shapes, cells = _crowd_in(CORRIDOR, (2.5, 1.5), (3, 1), speed=0.5, polite=False, give_way=1.0)
    robot_x, touched, touches, xs = 6.0, False, 0, []
    for _ in range(150):
        crowd.step(grid, shapes, cells, np.array([[robot_x, 1.5, 0.0]]), np.array([0.18]), 0.1)
        xs.append(crowd.pos[0, 0, 0])
        if touched:
            robot_x += 0.05
        touched = robot_x - crowd.pos[0, 0, 0] - 0.25 - 0.18 <= 1e-9
        touches += touched
    assert 10 <= touches <= 12
    assert xs[-1] < max(xs) - 1.0 and robot_x < 6.7  # it walked away; the robot was not pushed to the dead end


def test_movers_keep_to_free_cells_and_spawn_clear_of_start_and_goal():
    for family in FAMILIES:
        maze = generate_maze(family, 7, 7, seed=5)
        sim = MazeSim(1, DYN, maze, seed=1)
        try:
            for _ in range(3):
                sim.reset_env(0)
                ep = sim.episodes[0]
                assert ep is not None
                k = int(sim.crowd.count[0])
                assert k >= 4
                for rc in (ep.maze.start, ep.maze.goal):
                    x, y = ep.maze.cell_center(rc)
                    d = np.hypot(sim.crowd.pos[0, :k, 0] - x, sim.crowd.pos[0, :k, 1] - y)
                    assert d.min() >= DYN.dynamic.spawn_clearance
                for _ in range(150):
                    sim.step(np.zeros((1, 2)))
                    ix = np.floor(sim.crowd.pos[0, :k] / maze.cell).astype(int)
                    assert not maze.occupancy[ix[:, 1], ix[:, 0]].any(), f"{family}: a mover entered a wall"
        finally:
            sim.close()


def _trajectory(num_envs, slot, episode, ticks=120):
    sim = MazeSim(num_envs, DYN, seed=7)
    try:
        sim.reset_all()
        sim.reset_env(slot, episode)
        out = []
        for _ in range(ticks):
            sim.step(np.zeros((num_envs, 2)))
            out.append(sim.crowd.pos[slot, : sim.crowd.count[slot]].copy())
        return np.array(out)
    finally:
        sim.close()


def test_movers_are_deterministic_per_episode_whatever_else_runs():
    episode = EpisodeSpec(generate_maze("braided", 7, 7, seed=9), seed=4242)
    alone = _trajectory(1, 0, episode)
    beside = _trajectory(3, 2, episode)  # the same episode in slot 2, other episodes in slots 0 and 1
    assert alone.shape[1] >= 4 and np.ptp(alone, axis=0).max() > 1.0  # they really walk
    np.testing.assert_array_equal(alone, beside)
    other = _trajectory(1, 0, EpisodeSpec(episode.maze, seed=4243))
    assert not np.array_equal(alone[-1], other[-1])  # another seed, other movers


def test_density_zero_changes_nothing_and_movers_leave_the_other_streams_alone():
    maze = generate_maze("rooms", 7, 7, seed=2)
    a, b = MazeSim(2, SimConfig(), maze, seed=3), MazeSim(2, DYN, maze, seed=3)
    try:
        a.reset_all()
        b.reset_all()
        assert not a.crowd.any and all(not s.movers for s in a.world._slots)  # no body, no Numba call
        for i in range(2):
            ea, eb = a.episodes[i], b.episodes[i]
            assert ea is not None and eb is not None
            assert (ea.maze.hash(), ea.seed) == (eb.maze.hash(), eb.seed)  # same maze, start, goal, seed
            assert a.params[i] == b.params[i]
            np.testing.assert_array_equal(a.pose[i], b.pose[i])
            assert a.ep_rngs[i].bit_generator.state == b.ep_rngs[i].bit_generator.state  # noise stream untouched
        assert b.crowd.count.min() >= 4
        for _ in range(20):  # with the robots still, the wheel odometry noise is the same draw by draw
            a.step(np.zeros((2, 2)))
            b.step(np.zeros((2, 2)))
        for i in range(2):
            assert a.ep_rngs[i].bit_generator.state == b.ep_rngs[i].bit_generator.state
    finally:
        a.close()
        b.close()


def test_a_mover_pushes_the_robot_and_counts_apart_from_walls():
    world = BatchedWorld(1, RobotConfig())
    try:
        hall = parse_maze("\n".join(["#########"] + ["#S......#"] + ["#.......#"] * 5 + ["#......G#", "#########"]))
        world.set_maze(0, hall)
        world.place_robot(0, 4.5, 4.5, 0.0)
        world.set_movers(0, [0.25])
        pos, vel = np.array([[[2.5, 4.5]]]), np.array([[[1.0, 0.0]]])  # 1 m/s straight at the robot
        walls, movers = [], [False]
        for _ in range(30):
            world.apply_velocities(np.zeros((1, 3)))
            world.drive_movers(pos, vel, np.array([1]), np.array(movers[-1:]))  # touched: put it back on track
            world.step()
            pos = pos + 0.1 * vel
            np.testing.assert_allclose(world.mover_positions(0), pos[0], atol=2e-3)
            w, m, _ = world.contacts_split()
            walls.append(w[0])
            movers.append(m[0])
        # Contact begins once the mover's centre is 0.43 m from the robot's (x = 4.07): about 1.57 s in.
        assert any(movers) and not any(walls) and not movers[0]
        x = world.poses()[0, 0]
        assert x > 4.5 + 0.8, f"the robot was pushed only to x = {x:.2f}"
        assert x - pos[0, 0, 0] >= 0.43 - 0.02  # no deep overlap
    finally:
        world.close()


def test_the_simulator_counts_mover_contacts_apart_from_wall_collisions():
    off = SafetyConfig(slow_distance=1e-6, stop_distance=0.0)  # let the robot drive into the mover
    cfg = dataclasses.replace(DYN, safety=off, dynamic=dataclasses.replace(DYN.dynamic, spawn_clearance=0.0))
    sim = MazeSim(1, cfg, CORRIDOR, seed=0)
    try:
        sim.reset_env(0)
        x0, y0, _ = sim.pose[0]
        crowd = sim.crowd  # one mover standing 1.5 m ahead of the robot
        crowd.pos[0, 0], crowd.radius[0, 0], crowd.wait[0, 0], crowd.count[0] = (x0 + 1.5, y0), 0.25, 100.0, 1
        sim.world.set_movers(0, [0.25])
        sim.world.place_robot(0, x0, y0, 0.0)
        sim.pose[0, 2] = 0.0
        for _ in range(40):
            sim.step(np.array([[0.5, 0.0]]))
        info = sim.info(0)
        assert info["mover_contacts"] == 1 and info["collisions"] == 0
    finally:
        sim.close()


def test_too_dense_or_too_crowded_is_refused_by_name():
    maze = generate_maze("perfect", 7, 7, seed=3)
    with pytest.raises(DynamicError, match=r"sim.dynamic.density 1 asks for 97.0 movers .* more than "
                                            r"sim.dynamic.max_movers 32: give a density of at most 0.3299"):
        mover_count(DynamicConfig(density=1.0), maze, np.random.default_rng(0))
    crowd = Crowd(1, DynamicConfig(density=DYNAMIC_DENSITY, spawn_clearance=30.0))
    with pytest.raises(DynamicError, match=r"has 0 free cells at least sim.dynamic.spawn_clearance 30 m"):
        crowd.spawn(0, maze, 1)
    assert len(spawn_cells(maze, 0.0)) == 97


@pytest.mark.parametrize(("key", "value", "message"), [
    ("density", -0.1, "sim.dynamic.density must be a number >= 0"),
    ("speed", [1.0, 0.3], "sim.dynamic.speed must be \\[lo, hi\\] with 0 <= lo <= hi"),
    ("radius", [-0.2, 0.3], "sim.dynamic.radius must be \\[lo, hi\\]"),
    ("oblivious_fraction", 1.5, "sim.dynamic.oblivious_fraction must be a number in \\[0, 1\\]"),
    ("max_movers", 1000, "sim.dynamic.max_movers must be an integer in \\[0, 256\\]"),
    ("walkers", 3, "walkers"),
])
def test_bad_settings_are_refused_by_name(key, value, message):
    with pytest.raises((SettingsError, ValueError), match=message):
        from_dict(SimConfig, {"dynamic": {key: value}}, "sim")


def test_movers_in_narrow_cells_are_refused_never():
    # A 0.6 m cell: movers overlap walls (allowed: they pass only robots), the raycaster still sees both.
    maze = generate_maze("perfect", 5, 5, seed=1, cell=0.6)
    sim = MazeSim(1, dataclasses.replace(DYN, dynamic=dataclasses.replace(DYN.dynamic, spawn_clearance=1.0)),
                  maze, seed=0)
    try:
        sim.reset_env(0)
        for _ in range(10):
            sim.step(np.zeros((1, 2)))
        assert math.isfinite(float(np.nanmin(sim.ranges[0])))
    finally:
        sim.close()
