"""Top-down pictures of episodes: a PNG of the maze with the path, scan and goal, and an animated GIF.

matplotlib (the ``[sim]`` extra) is imported inside the functions that draw, with the Agg backend.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from robonav.sim.maze import Maze


@dataclass
class EpisodeTrace:
    """What one episode looked like, tick by tick (true poses: this is for people, not for the policy)."""

    maze: Maze
    poses: list[np.ndarray] = field(default_factory=list)
    """True (x, y, theta) per tick, starting with the reset pose."""
    scans: list[np.ndarray] = field(default_factory=list)
    """REP 117 ranges per tick."""
    angles: list[np.ndarray] = field(default_factory=list)
    """Beam angles (robot frame) per tick."""
    goal_xy: tuple[float, float] = (0.0, 0.0)
    info: dict = field(default_factory=dict)
    memory: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    """Memory snapshots by tick: (occupied cell centres [K, 2], visited cell centres [M, 2]) in world coordinates,
    drawn from the robot's own odometry frame, so odometry drift shows as a misaligned map."""
    memory_cell: float = 0.125
    """Side of a memory cell (m), for drawing."""


def _draw(ax, trace: EpisodeTrace, upto: int | None = None, radius: float = 0.18) -> None:
    import matplotlib.patches as mpatches

    m = trace.maze
    ext = (0.0, m.cols * m.cell, 0.0, m.rows * m.cell)
    ax.imshow(m.occupancy, origin="lower", extent=ext, cmap="Greys", vmin=0, vmax=1.3, interpolation="nearest")
    n = len(trace.poses) if upto is None else upto + 1
    snaps = [k for k in trace.memory if k < n]
    if snaps:
        occupied, visited = trace.memory[max(snaps)]
        size = (72.0 * trace.memory_cell / max(ext[1], ext[3]) * 4.0) ** 2
        if len(visited):
            ax.scatter(visited[:, 0], visited[:, 1], s=size, marker="s", c="tab:cyan", alpha=0.35, lw=0,
                       label="trajectory memory")
        if len(occupied):
            ax.scatter(occupied[:, 0], occupied[:, 1], s=size, marker="s", c="tab:red", alpha=0.5, lw=0,
                       label="obstacle memory")
    poses = np.asarray(trace.poses[:n])
    ax.plot(poses[:, 0], poses[:, 1], "-", color="tab:blue", lw=1.5, label="path")
    x, y, th = poses[-1]
    sx, sy = m.cell_center(m.start)
    ax.plot(sx, sy, "o", color="tab:green", ms=8, label="start")
    ax.plot(*trace.goal_xy, "*", color="tab:red", ms=14, label="goal")
    if trace.scans:
        r = np.asarray(trace.scans[min(n, len(trace.scans)) - 1], dtype=np.float64)
        a = np.asarray(trace.angles[min(n, len(trace.angles)) - 1])
        ok = np.isfinite(r)
        ax.scatter(x + r[ok] * np.cos(a[ok] + th), y + r[ok] * np.sin(a[ok] + th), s=3, c="tab:orange",
                   label="scan")
    ax.add_patch(mpatches.Circle((x, y), radius, fc="tab:blue", ec="k", alpha=0.7))
    ax.plot([x, x + 0.35 * np.cos(th)], [y, y + 0.35 * np.sin(th)], "k-", lw=1.5)
    ax.set_xlim(ext[0] - 0.2, ext[1] + 0.2)
    ax.set_ylim(ext[2] - 0.2, ext[3] + 0.2)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])


def _title(trace: EpisodeTrace, upto: int | None = None) -> str:
    info = trace.info
    name = trace.maze.name or trace.maze.hash()
    if upto is not None:
        return f"{name}  t={upto}"
    ok = "success" if info.get("is_success") else "no success"
    return (f"{name}: {ok}, {info.get('episode_steps', len(trace.poses) - 1)} steps, "
            f"path {info.get('path_length', 0):.1f} m / shortest {info.get('shortest_path_length', 0):.1f} m, "
            f"{info.get('collisions', 0)} collisions")


def memory_snapshot(observer, start_pose: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(occupied, visited) cell centres in world coordinates from a Preprocessor's grids, or None for observers
    without memory. The grids live in the odometry frame, whose origin is the start pose."""
    if not hasattr(observer, "memory"):
        return None
    occ, vis = observer.memory(0)  # [x cell, y cell]
    res = observer.spec.config.grid_resolution
    ox, oy = observer.grid_origin
    x0, y0, th = start_pose
    c, s = np.cos(th), np.sin(th)
    out = []
    for mask in (occ > 0, vis > 0):
        ix, iy = np.nonzero(mask)
        px, py = ox + (ix + 0.5) * res, oy + (iy + 0.5) * res
        out.append(np.stack([x0 + c * px - s * py, y0 + s * px + c * py], axis=1))
    return out[0], out[1]


def render_png(trace: EpisodeTrace, path: str | Path, dpi: int = 120) -> Path:
    """Write a top-down PNG of the whole episode; returns its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = trace.maze
    fig, ax = plt.subplots(figsize=(max(4.0, m.cols * 0.35), max(4.0, m.rows * 0.35) + 0.4))
    _draw(ax, trace)
    ax.set_title(_title(trace), fontsize=8)
    ax.legend(loc="upper right", fontsize=6, framealpha=0.8)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp, dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    tmp.replace(path)
    return path


def render_gif(trace: EpisodeTrace, path: str | Path, every: int = 5, fps: int = 10, dpi: int = 70) -> Path:
    """Write an animated GIF with one frame per ``every`` ticks; returns its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.animation import FuncAnimation, PillowWriter

    m = trace.maze
    fig, ax = plt.subplots(figsize=(max(3.0, m.cols * 0.25), max(3.0, m.rows * 0.25)))
    ticks = list(range(0, len(trace.poses), every))
    if ticks[-1] != len(trace.poses) - 1:
        ticks.append(len(trace.poses) - 1)

    def draw(k: int):
        ax.clear()
        _draw(ax, trace, upto=k)
        ax.set_title(_title(trace, k), fontsize=7)
        return []

    anim = FuncAnimation(fig, draw, frames=ticks, blit=False)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.gif")
    anim.save(tmp, writer=PillowWriter(fps=fps), dpi=dpi)
    plt.close(fig)
    tmp.replace(path)
    return path


def render_rgb(sim, i: int, trail: np.ndarray) -> np.ndarray:
    """An RGB array [H, W, 3] of env i now (Gymnasium's ``render_mode="rgb_array"``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ep = sim.episodes[i]
    nb = int(sim.counts[i])
    trace = EpisodeTrace(ep.maze, list(trail), [sim.ranges[i, :nb]], [sim.beam_rel[i, :nb]],
                         tuple(sim.goal_xy[i]), sim.info(i))
    fig, ax = plt.subplots(figsize=(4, 4), dpi=80)
    _draw(ax, trace, radius=sim.params[i].radius)
    fig.canvas.draw()
    img = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()  # type: ignore[attr-defined]
    plt.close(fig)
    return img
