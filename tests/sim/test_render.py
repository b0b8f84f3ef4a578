"""Pictures of episodes, with the robot's own memories overlaid in world coordinates."""

from __future__ import annotations

import numpy as np

from robonav.sim.env import MazeEnv
from robonav.sim.expert import GeodesicExpert
from robonav.sim.maze import parse_maze
from robonav.sim.render import render_gif, render_png
from robonav.sim.rollout import record_episode

MAZE = parse_maze("#########\n#S..#...#\n###.#.#.#\n#...#.#.#\n#.###.#.#\n#.....#G#\n#########")


def test_memory_overlay_lands_on_the_walls(tmp_path):
    env = MazeEnv(maze=MAZE, seed=0)
    expert = GeodesicExpert()
    trace = record_episode(env, lambda obs: expert(env.sim)[0] / env._scale, seed=0, max_steps=120,
                           memory_every=20)
    env.close()
    assert sorted(trace.memory)[:2] == [0, 20] and max(trace.memory) == 120
    occupied, visited = trace.memory[120]
    assert len(occupied) > 50 and len(visited) > 20
    # Occupied cells lie on (or right beside) true wall cells: odometry drift over 120 ticks is small.
    rows, cols = MAZE.rows, MAZE.cols
    ix = np.clip(np.floor(occupied[:, 0]).astype(int), 0, cols - 1)
    iy = np.clip(np.floor(occupied[:, 1]).astype(int), 0, rows - 1)
    near_wall = MAZE.occupancy[iy, ix] | MAZE.occupancy[np.clip(iy + 1, 0, rows - 1), ix] | \
        MAZE.occupancy[np.clip(iy - 1, 0, rows - 1), ix] | MAZE.occupancy[iy, np.clip(ix + 1, 0, cols - 1)] | \
        MAZE.occupancy[iy, np.clip(ix - 1, 0, cols - 1)]
    assert near_wall.mean() > 0.95
    # Visited cells follow the true path.
    path = np.array(trace.poses)[:, :2]
    d = np.min(np.linalg.norm(visited[:, None, :] - path[None, :, :], axis=2), axis=1)
    assert np.median(d) < 0.3
    png = render_png(trace, tmp_path / "ep.png")
    gif = render_gif(trace, tmp_path / "ep.gif", every=20)
    assert png.read_bytes()[:4] == b"\x89PNG" and gif.read_bytes()[:3] == b"GIF"
