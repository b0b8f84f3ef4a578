"""PyBullet world physics: walls stop the robot, it slides along them, contacts are detected and counted."""

from __future__ import annotations

import math

import numpy as np
import pytest

from robonav.control.safety import SafetyConfig
from robonav.sim.config import RobotConfig, SimConfig
from robonav.sim.core import MazeSim
from robonav.sim.episodes import EpisodeSpec
from robonav.sim.maze import parse_maze
from robonav.sim.world import BatchedWorld, merge_wall_boxes

ROOM = parse_maze("\n".join(["#########"] + ["#S......#"] + ["#.......#"] * 5 + ["#......G#", "#########"]))


def test_merged_boxes_cover_walls_exactly():
    rng = np.random.default_rng(0)
    occ = rng.random((23, 17)) < 0.4
    cover = np.zeros(occ.shape, dtype=int)
    boxes = merge_wall_boxes(occ)
    for x, y, w, h in boxes:
        cover[y:y + h, x:x + w] += 1
    assert np.array_equal(cover, occ.astype(int))
    assert len(boxes) < occ.sum() / 1.5  # merging really reduces the body count


@pytest.mark.parametrize("angle_deg", [30, 45, 60])
def test_robot_slides_along_a_wall_with_little_penetration(angle_deg):
    world = BatchedWorld(1, RobotConfig())
    world.set_maze(0, ROOM)
    # South wall's face at y = 1.0; start 0.4 m clear of it, heading down into it at angle_deg from the wall.
    y0, radius, v = 1.0 + 0.18 + 0.4, 0.18, 0.5
    heading = -math.radians(angle_deg)
    world.place_robot(0, 3.0, y0, heading)
    vel = np.array([[v * math.cos(heading), v * math.sin(heading), 0.0]])
    gaps, contacts = [], []
    for _ in range(40):  # 4 s
        world.apply_velocities(vel)
        world.step()
        x, y, _ = world.poses()[0]
        gaps.append(y - 1.0 - radius)
        contacts.append(world.contacts()[0][0])
    world.close()
    assert min(gaps) > -0.01, f"penetrated {-min(gaps):.4f} m into the wall"
    assert any(contacts), "touching the wall was not detected as a contact"
    assert gaps[-1] < 0.01, "the robot should be resting against the wall"
    # Sliding: the tangential component keeps the robot moving along the wall after contact.
    t_contact = 0.4 / (v * math.sin(math.radians(angle_deg)))
    slide = x - 3.0 - v * math.cos(math.radians(angle_deg)) * t_contact
    expected = v * math.cos(math.radians(angle_deg)) * (4.0 - t_contact)
    assert slide > 0.6 * expected, f"slid {slide:.3f} m along the wall, expected about {expected:.3f} m"


def test_collisions_are_counted_by_the_simulator():
    off = SafetyConfig(slow_distance=1e-6, stop_distance=0.0)  # let the robot hit the wall
    sim = MazeSim(1, SimConfig(safety=off), ROOM, seed=0)
    sim.reset_env(0, EpisodeSpec(ROOM, seed=3))
    sim.world.place_robot(0, 2.0, 1.6, -math.pi / 2)
    sim.pose[0] = sim.prev_pose[0] = (2.0, 1.6, -math.pi / 2)
    for _ in range(15):
        sim.step(np.array([[0.5, 0.0]]))
    assert sim.collisions[0] == 1  # one contact episode (onset), however many ticks it lasts
    assert sim.contact[0]
    for _ in range(10):  # back away, then drive in again: a second collision
        sim.step(np.array([[-0.5, 0.0]]))
    assert not sim.contact[0]
    for _ in range(30):
        sim.step(np.array([[0.5, 0.0]]))
    assert sim.collisions[0] == 2
    assert sim.info(0)["collisions"] == 2
    sim.close()


def test_safety_layer_keeps_the_robot_off_the_wall():
    sim = MazeSim(1, SimConfig(), ROOM, seed=0)
    sim.reset_env(0, EpisodeSpec(ROOM, seed=3))
    sim.world.place_robot(0, 2.0, 1.6, -math.pi / 2)
    sim.pose[0] = sim.prev_pose[0] = (2.0, 1.6, -math.pi / 2)
    for _ in range(30):
        sim.step(np.array([[0.5, 0.0]]))
    assert sim.collisions[0] == 0
    assert sim.pose[0, 1] - 1.0 - 0.18 > 0.02
    sim.close()


def test_world_rebuild_keeps_robots_and_walls():
    """PyBullet never frees removed shapes; the world rebuilds itself and nothing a user sees changes."""
    from robonav.sim.generate import generate_maze

    world = BatchedWorld(2, RobotConfig(), rebuild_after=5)
    mazes = [generate_maze("perfect", 5, 5, seed=s) for s in range(4)]
    world.set_maze(0, mazes[0])
    world.set_maze(1, mazes[1])
    world.place_robot(1, *mazes[1].cell_center(mazes[1].start), 0.3)
    before = world.poses().copy()
    for k in range(2, 4):  # each swap discards compounds until a rebuild happens
        world.set_maze(0, mazes[k])
    assert world._garbage < 5  # a rebuild ran and reset the count
    np.testing.assert_allclose(world.poses(), before, atol=1e-9)
    # Walls of the untouched slot 1 still stop rays exactly where the grid says.
    n = 8
    ang = np.linspace(-np.pi, np.pi, n, endpoint=False)
    out = np.empty((2, n))
    xs = np.full((2, n), before[1, 0])
    ys = np.full((2, n), before[1, 1])
    world.raycast(xs, ys, np.tile(ang, (2, 1)), np.array([0, n]), 3.5, out)
    from robonav.sim.raycast import grid_raycast

    ref = np.empty(n)
    grid_raycast(mazes[1].occupancy, 1.0, xs[1], ys[1], ang, 3.5, ref)
    np.testing.assert_allclose(out[1], ref, atol=1e-3)
    world.close()
