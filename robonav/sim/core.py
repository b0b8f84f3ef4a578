"""The batched simulation core: N robots in N mazes, stepped together. No Gymnasium here.

One control tick, for every env at once (docs/design.md "Data flow"):
    policy command -> safety layer (robonav.control, on the scan the policy saw) -> command latency
    -> motor limits -> movers (robonav.sim.dynamic, one Numba call) -> PyBullet (velocity motors, ``substeps``
    physics steps, contacts with walls and with movers apart)
    -> true pose -> wheel odometry with drift -> range scan (grid DDA or PyBullet rays, motion skew)
    -> REP 117 corruption -> observer -> obs; reward from geodesic progress.
Every stage runs for all envs at once: the Preprocessors in one Numba call (robonav.sensors.batch), the
geodesic progress in another; per-env Python is left only where PyBullet or an env's own random stream needs it.
The raw SensorFrames (what a robot driver sends) are built only when ``frames`` is read. ``per_env_observe``
keeps the per-env path (an observer call and a frame per env) as the parity reference.
MazeEnv (one env) and MazeVectorEnv (many) are thin Gymnasium shells around this class.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from robonav.control.latency import CommandDelay
from robonav.control.safety import SafetyLayer
from robonav.sensors.frame import ScanSpec, SensorFrame
from robonav.sim.config import SimConfig
from robonav.sim.dynamic import Crowd
from robonav.sim.episodes import EpisodeSpec, MazeSampler
from robonav.sim.geodesic import distance_field, geodesic_at, geodesic_at_batch
from robonav.sim.maze import Maze
from robonav.sim.noise import corrupt_scan, odometry_delta
from robonav.sim.observation import Observer, batch_observer, make_observer
from robonav.sim.raycast import grid_raycast_batch, grid_raycast_batch_circles
from robonav.sim.world import BatchedWorld

REFINE = 4  # sub-cells per cell of the geodesic distance field
WAKE_GAP = 0.6  # m: movers nearer the robot than this are simulated by PyBullet (they close at most 0.15 m a tick)


@dataclass
class EpisodeParams:
    """Per-episode draws (nominal values when randomization is off)."""

    scan: ScanSpec
    noise_std: float
    dropout: float
    skew: float
    radius: float
    wheel_friction: float
    latency: int
    odom_scale: float
    heading_drift: float
    trans_noise: float
    rot_noise: float


def _wrap(a: np.ndarray) -> np.ndarray:
    return np.arctan2(np.sin(a), np.cos(a))


class MazeSim:
    """Batched simulator state and stepping; see the module docstring for the tick."""

    def __init__(self, num_envs: int, config: SimConfig | None = None, maze=None, seed: int | None = None,
                 wall_mode: str = "merged", per_env_rays: bool = False, per_env_observe: bool = False) -> None:
        """``per_env_observe``: observe each env by its own Python calls (observer, frame, geodesic) instead of the
        batched kernels; the same numbers, slower (the parity reference of the batched path)."""
        self.cfg = cfg = config or SimConfig()
        self.num_envs = n = num_envs
        self.sampler = MazeSampler(maze, cfg.maze)
        self.world = BatchedWorld(n, cfg.robot, cfg.period, cfg.substeps, cfg.slot_size, wall_mode)
        self.per_env_rays = per_env_rays
        rnd = cfg.randomization
        self.max_beams = max(cfg.scanner.num_beams, rnd.beams[1] if rnd.enabled else 0)
        self.safety = SafetyLayer(cfg.safety, n)
        self.delay = CommandDelay(n, max_delay=max(2, rnd.latency_ticks[1], cfg.latency_ticks))
        self.observers: list[Observer] = [
            make_observer(cfg.observation, cfg.robot.v_max, cfg.robot.omega_max, cfg.preprocessor) for _ in range(n)]
        self.obs_dim = self.observers[0].dim
        self._batch = batch_observer(self.observers) if not per_env_observe else None
        self._per_env_geodesic = per_env_observe
        self.rngs = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(n)]
        self.ep_rngs = [np.random.default_rng(0) for _ in range(n)]  # per episode: noise, jitter, heading
        b = self.max_beams
        self.ranges = np.full((n, b), np.nan, dtype=np.float32)  # last REP 117 scan, NaN-padded
        self.beam_rel = np.zeros((n, b))  # beam angles in the robot frame
        self._skew = np.ones((n, b))  # per beam: share of the tick's motion done when it was measured
        self.counts = np.zeros(n, dtype=np.int64)
        self._true = np.zeros((n, b))
        self._rx, self._ry, self._ra = np.zeros((n, b)), np.zeros((n, b)), np.zeros((n, b))
        self.pose = np.zeros((n, 3))
        self.prev_pose = np.zeros((n, 3))
        self.velocity = np.zeros((n, 2))  # what the motors currently do (v, omega)
        self.last_command = np.zeros((n, 2))  # after the safety layer: fed back to the observer
        self.goal_xy = np.zeros((n, 2))
        self.goal_odom = np.zeros((n, 2))
        self.geo = np.zeros(n)
        self.steps = np.zeros(n, dtype=np.int64)
        self.limit = np.zeros(n, dtype=np.int64)
        self.collisions = np.zeros(n, dtype=np.int64)
        self.contact = np.zeros(n, dtype=bool)
        self.crowd = Crowd(n, cfg.dynamic)
        self.world.mover_height = cfg.dynamic.height
        self.mover_contacts = np.zeros(n, dtype=np.int64)  # contact events (onsets) with movers this episode
        self.mover_contact = np.zeros(n, dtype=bool)
        self.penetration = np.zeros(n)
        self.path_length = np.zeros(n)
        self.shortest = np.zeros(n)
        self.episode_id = np.zeros(n, dtype=np.int64)
        self.episodes: list[EpisodeSpec | None] = [None] * n
        self.params: list[EpisodeParams | None] = [None] * n
        self.fields: list[np.ndarray] = [np.zeros((1, 1))] * n
        self._fields = np.full((n, 1, 1), np.inf)  # the same fields, inf-padded to one shape, for one kernel call
        # Per-env numbers of the current EpisodeParams, as arrays the hot path reads (filled by reset_env).
        self.radius = np.zeros(n)
        self.noise_std, self.dropout = np.zeros(n), np.zeros(n)
        self.odom_scale, self.heading_drift = np.zeros(n), np.zeros(n)
        self.trans_noise, self.rot_noise = np.zeros(n), np.zeros(n)
        self._occ = np.ones((n, 1, 1), dtype=np.bool_)
        self._shapes = np.ones((n, 2), dtype=np.int64)
        self._cells = np.ones(n)
        self._next_episode_id = 1
        self.obs = np.zeros((n, self.obs_dim), dtype=np.float32)
        self._odom = np.zeros((n, 3))  # the odometry deltas of the latest frames
        self._frames: list[SensorFrame | None] | None = None  # built on demand (see ``frames``)

    # -- episodes -------------------------------------------------------------------------------------------

    def reseed(self, seed: int | None) -> None:
        """Restart every env's random stream from ``seed`` (Gymnasium ``reset(seed=...)``)."""
        self.rngs = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(self.num_envs)]

    def _draw_params(self, rng: np.random.Generator) -> EpisodeParams:
        cfg, rnd, sc, od = self.cfg, self.cfg.randomization, self.cfg.scanner, self.cfg.odometry
        beams, fov, noise, drop, skew = sc.num_beams, sc.fov_deg, sc.noise_std, sc.dropout, sc.skew
        radius, mu, lat, k, drift = cfg.robot.radius, cfg.robot.wheel_friction, cfg.latency_ticks, 1.0, 1.0
        if rnd.enabled:
            beams = int(rng.integers(rnd.beams[0], rnd.beams[1] + 1))
            fov = float(rng.uniform(*rnd.fov_deg))
            fov = 360.0 if fov >= 359.0 else fov
            noise, drop = float(rng.uniform(*rnd.noise_std)), float(rng.uniform(*rnd.dropout))
            skew = float(rng.uniform(*rnd.skew))
            radius, mu = float(rng.uniform(*rnd.radius)), float(rng.uniform(*rnd.wheel_friction))
            lat = int(rng.integers(rnd.latency_ticks[0], rnd.latency_ticks[1] + 1))
            k = float(rng.uniform(*rnd.odom_scale))
            if rnd.drift_scale != (1.0, 1.0):  # drawn only when asked, so older recipes keep their streams
                drift = float(rng.uniform(*rnd.drift_scale))
        scan = ScanSpec.evenly_spaced(beams, math.radians(fov), sc.range_min, sc.range_max)
        return EpisodeParams(
            scan=scan, noise_std=noise, dropout=drop, skew=skew, radius=radius, wheel_friction=mu, latency=lat,
            odom_scale=float(rng.normal(0.0, od.scale_std * k * drift)),
            heading_drift=float(rng.normal(0.0, od.heading_drift_std * k * drift)),
            trans_noise=od.trans_noise * k, rot_noise=od.rot_noise * k)

    def _set_grid(self, i: int, maze: Maze) -> None:
        occ = maze.occupancy
        h, w = occ.shape
        if h > self._occ.shape[1] or w > self._occ.shape[2]:
            big = np.ones((self.num_envs, max(h, self._occ.shape[1]), max(w, self._occ.shape[2])), np.bool_)
            big[:, : self._occ.shape[1], : self._occ.shape[2]] = self._occ
            self._occ = big
        self._occ[i, :h, :w] = occ
        self._shapes[i] = (h, w)
        self._cells[i] = maze.cell

    def reset_env(self, i: int, episode: EpisodeSpec | None = None) -> None:
        """Start a new episode in env i (drawn from the sampler unless ``episode`` is given)."""
        ep = episode if episode is not None else self.sampler.sample(i, self.rngs[i])
        rng = self.ep_rngs[i] = np.random.default_rng(ep.seed)
        prm = self._draw_params(rng)
        maze = ep.maze
        old = self.episodes[i]
        if old is None or old.maze.hash() != maze.hash() or old.maze.cell != maze.cell:
            self.world.set_maze(i, maze)
            self._set_grid(i, maze)
        sx, sy = maze.cell_center(maze.start)
        gx, gy = maze.cell_center(maze.goal)
        th = float(rng.uniform(-math.pi, math.pi))
        self.world.place_robot(i, sx, sy, th, prm.radius, prm.wheel_friction)
        if self.cfg.dynamic.peak_density > 0 or self.crowd.count[i]:
            self._spawn_movers(i, maze, ep.seed)
        self.pose[i] = self.prev_pose[i] = (sx, sy, th)
        self.velocity[i] = self.last_command[i] = 0.0
        self.goal_xy[i] = (gx, gy)
        c, s = math.cos(th), math.sin(th)
        self.goal_odom[i] = (c * (gx - sx) + s * (gy - sy), -s * (gx - sx) + c * (gy - sy))
        self._set_field(i, distance_field(maze.occupancy, maze.cell, (gx, gy), REFINE))
        self.geo[i] = self._geodesic(i)
        self.shortest[i] = float(geodesic_at(self.fields[i], maze.cell, REFINE, np.array([sx]), np.array([sy]))[0])
        cfg = self.cfg
        seconds = cfg.time_limit_factor * self.shortest[i] / cfg.robot.v_max + cfg.time_limit_extra
        self.limit[i] = math.ceil(seconds / cfg.period)
        self.steps[i] = self.collisions[i] = self.mover_contacts[i] = 0
        self.contact[i] = self.mover_contact[i] = False
        self.penetration[i] = self.path_length[i] = 0.0
        self.episode_id[i] = self._next_episode_id
        self._next_episode_id += 1
        self.episodes[i], self.params[i] = ep, prm
        self.radius[i], self.noise_std[i], self.dropout[i] = prm.radius, prm.noise_std, prm.dropout
        self.odom_scale[i], self.heading_drift[i] = prm.odom_scale, prm.heading_drift
        self.trans_noise[i], self.rot_noise[i] = prm.trans_noise, prm.rot_noise
        nb = prm.scan.num_beams
        self.counts[i] = nb
        self.beam_rel[i, :nb] = prm.scan.beam_angles()
        self._skew[i] = 1.0
        if prm.skew > 0 and nb > 1:
            self._skew[i, :nb] = 1.0 - prm.skew * (1.0 - np.arange(nb) / (nb - 1))
        self.safety.reset([i])
        self.delay.reset([i], np.array([prm.latency]))
        self.observers[i].reset()
        self._scan(np.array([i]))
        self._odom[i] = 0.0
        self._frames = None
        self.obs[i] = self.observers[i](self.frame(i, self._odom[i]), self.last_command[i])
        if self._batch is not None:
            self._batch.refresh(i)  # its Preprocessor has this episode's beam tables now

    def reset_all(self) -> np.ndarray:
        """Reset every env; returns the observations [N, D] (the internal buffer)."""
        for i in range(self.num_envs):
            self.reset_env(i)
        return self.obs

    def _spawn_movers(self, i: int, maze: Maze, seed: int) -> None:
        crowd = self.crowd
        crowd.spawn(i, maze, seed)
        k = int(crowd.count[i])
        self.world.set_movers(i, crowd.radius[i, :k].tolist())
        only = np.zeros_like(crowd.count)
        only[i] = k
        self.world.drive_movers(crowd.pos, np.zeros_like(crowd.vel), only, awake=self._movers_awake())

    def _movers_awake(self) -> np.ndarray:
        """[N, M] movers PyBullet must simulate: all for PyBullet rays, else those near enough to touch the robot
        within a few ticks (the grid raycaster reads the mover model, not PyBullet)."""
        crowd = self.crowd
        if self.cfg.raycaster == "pybullet":
            return np.ones(crowd.radius.shape, dtype=bool)
        gap = np.hypot(crowd.pos[:, :, 0] - self.pose[:, 0:1], crowd.pos[:, :, 1] - self.pose[:, 1:2]) \
            - crowd.radius - self.radius[:, None]
        return gap < WAKE_GAP

    # -- sensing --------------------------------------------------------------------------------------------

    def _set_field(self, i: int, field: np.ndarray) -> None:
        """Env i's goal distance field, kept as is and in the inf-padded plane that ``_geodesic_all`` reads."""
        self.fields[i] = field
        h, w = field.shape
        if h > self._fields.shape[1] or w > self._fields.shape[2]:
            big = np.full((self.num_envs, max(h, self._fields.shape[1]), max(w, self._fields.shape[2])), np.inf)
            big[:, : self._fields.shape[1], : self._fields.shape[2]] = self._fields
            self._fields = big
        self._fields[i] = np.inf
        self._fields[i, :h, :w] = field

    def _geodesic(self, i: int) -> float:
        x, y = self.pose[i, 0:1], self.pose[i, 1:2]
        return float(geodesic_at(self.fields[i], float(self._cells[i]), REFINE, x, y)[0])

    def _geodesic_all(self) -> np.ndarray:
        """Geodesic distance to the goal of every env [N], in one kernel call over the padded fields."""
        if self._per_env_geodesic:
            return np.array([self._geodesic(i) for i in range(self.num_envs)])
        return geodesic_at_batch(self._fields, self._cells / REFINE, self.pose[:, 0], self.pose[:, 1])

    def _scan(self, envs: np.ndarray) -> None:
        """Range scan for ``envs`` at their current pose, with motion skew along the last tick."""
        b = self.max_beams
        frac = self._skew[envs]
        p0, p1 = self.prev_pose[envs], self.pose[envs]
        dth = _wrap(p1[:, 2] - p0[:, 2])
        self._rx[envs] = p0[:, 0:1] + frac * (p1[:, 0:1] - p0[:, 0:1])
        self._ry[envs] = p0[:, 1:2] + frac * (p1[:, 1:2] - p0[:, 1:2])
        self._ra[envs] = p0[:, 2:3] + frac * dth[:, None] + self.beam_rel[envs]
        rmax = self.cfg.scanner.range_max
        true = self._true
        if self.cfg.raycaster == "grid" and self.crowd.any:
            circles, nc = self.crowd.circles_now(), self.crowd.count
            if len(envs) == self.num_envs:
                grid_raycast_batch_circles(self._occ, self._shapes, self._cells, self._rx, self._ry, self._ra,
                                           self.counts, rmax, circles, nc, true)
            else:
                sub = np.empty((len(envs), b))
                grid_raycast_batch_circles(self._occ[envs], self._shapes[envs], self._cells[envs], self._rx[envs],
                                           self._ry[envs], self._ra[envs], self.counts[envs], rmax, circles[envs],
                                           nc[envs], sub)
                true[envs] = sub
        elif self.cfg.raycaster == "grid":
            if len(envs) == self.num_envs:
                grid_raycast_batch(self._occ, self._shapes, self._cells, self._rx, self._ry, self._ra,
                                   self.counts, rmax, true)
            else:
                sub = np.empty((len(envs), b))
                grid_raycast_batch(self._occ[envs], self._shapes[envs], self._cells[envs], self._rx[envs],
                                   self._ry[envs], self._ra[envs], self.counts[envs], rmax, sub)
                true[envs] = sub
        else:
            sub = np.empty((len(envs), b))
            if len(envs) == self.num_envs:
                self.world.raycast(self._rx, self._ry, self._ra, self.counts, rmax, sub, self.per_env_rays)
            else:
                for k, i in enumerate(envs):  # resets only: one env at a time
                    one = np.empty((1, b))
                    self._raycast_one(int(i), one)
                    sub[k] = one[0]
            true[envs] = sub
        out = np.empty((len(envs), b), dtype=np.float32)
        corrupt_scan(true[envs], self.counts[envs], self.noise_std[envs], self.dropout[envs],
                     self.cfg.scanner.range_min, rmax, [self.ep_rngs[i] for i in envs], out)
        self.ranges[envs] = out

    def _raycast_one(self, i: int, out: np.ndarray) -> None:
        # PyBullet path for a single env: cast all slots' rays is wasteful; mask others with zero counts.
        counts = np.zeros_like(self.counts)
        counts[i] = self.counts[i]
        full = np.full((self.num_envs, self.max_beams), np.inf)
        self.world.raycast(self._rx, self._ry, self._ra, counts, self.cfg.scanner.range_max, full)
        out[0] = full[i]

    def frame(self, i: int, odom_delta: np.ndarray) -> SensorFrame:
        """The raw SensorFrame of env i, as a robot driver would emit it (no true pose)."""
        prm = self.params[i]
        assert prm is not None
        nb = prm.scan.num_beams
        return SensorFrame(ranges=self.ranges[i, :nb], scan=prm.scan, odom_delta=odom_delta,
                           goal=self.goal_odom[i], episode_id=int(self.episode_id[i]),
                           stamp=float(self.steps[i] * self.cfg.period), seq=int(self.steps[i]))

    @property
    def frames(self) -> list[SensorFrame | None]:
        """The latest raw SensorFrame of each env (what a robot driver sends), built when first read after a tick
        or reset: only drivers that read frames (the classical policy, teachers) pay for them. Their ranges and
        goal are views of the simulator's buffers, valid until the next tick."""
        if self._frames is None:
            self._frames = [None if self.params[i] is None else self.frame(i, self._odom[i].copy())
                            for i in range(self.num_envs)]
        return self._frames

    def _observe_all(self, odom: np.ndarray) -> None:
        """Observations of every env into ``self.obs``: one batched kernel call, else one observer call each."""
        if self._batch is not None:
            self._batch(self.ranges, odom, self.goal_odom, self.last_command, self.obs)
            return
        for i in range(self.num_envs):
            self.obs[i] = self.observers[i](self.frame(i, odom[i]), self.last_command[i])

    # -- stepping -------------------------------------------------------------------------------------------

    def step(self, actions: np.ndarray):
        """Advance every env one tick. Returns (obs, reward, terminated, truncated) arrays; no autoreset."""
        cfg, n = self.cfg, self.num_envs
        rc, T = cfg.robot, cfg.period
        a = np.asarray(actions, dtype=np.float64).reshape(n, 2)
        a = np.clip(np.nan_to_num(a), [-rc.v_max, -rc.omega_max], [rc.v_max, rc.omega_max])
        safe = self.safety.filter(a, self.ranges, self.beam_rel, T, radius=self.radius, num_beams=self.counts)
        turn_change = np.abs(safe[:, 1] - self.last_command[:, 1]) / rc.omega_max
        self.last_command[:] = safe
        cmd = self.delay.push(safe)
        # Motors: hardware acceleration limits, then the period jitter stretches this tick's motion.
        dv = np.clip(cmd - self.velocity, [-rc.accel_max * T, -rc.alpha_max * T], [rc.accel_max * T,
                                                                                   rc.alpha_max * T])
        self.velocity += dv
        v, w = self.velocity[:, 0].copy(), self.velocity[:, 1].copy()
        jit = cfg.randomization.period_jitter if cfg.randomization.enabled else 0.0
        if jit > 0:
            z = np.array([r.standard_normal() for r in self.ep_rngs])
            stretch = 1.0 + np.clip(jit * z, -3 * jit, 3 * jit)
            v *= stretch
            w *= stretch
        # Velocity of the chord of the tick's arc: free-space motion ends exactly on the diff-drive arc.
        half = 0.5 * w * T
        sinc = np.where(np.abs(half) > 1e-9, np.sin(half) / np.where(half == 0, 1, half), 1.0)
        heading = self.pose[:, 2] + half
        vel = np.stack([v * sinc * np.cos(heading), v * sinc * np.sin(heading), w], axis=1)
        self.world.apply_velocities(vel)
        if self.crowd.any:
            start = self.crowd.pos.copy()
            self.crowd.step(self._occ, self._shapes, self._cells, self.pose, self.radius, T)
            self.world.drive_movers(start, self.crowd.vel, self.crowd.count, self.mover_contact, self._movers_awake())
        self.world.step()
        self.prev_pose[:] = self.pose
        self.world.poses(self.pose)
        self.pose[:, 2] = self.prev_pose[:, 2] + _wrap(self.pose[:, 2] - self.prev_pose[:, 2])
        hit, mover_hit, depth = self.world.contacts_split()
        self.collisions += hit & ~self.contact
        self.contact[:] = hit
        self.mover_contacts += mover_hit & ~self.mover_contact
        self.mover_contact[:] = mover_hit
        self.penetration[:] = depth
        # Odometry: the true delta in the previous robot frame, seen through the episode's wheel errors.
        d = self.pose[:, :2] - self.prev_pose[:, :2]
        c, s = np.cos(self.prev_pose[:, 2]), np.sin(self.prev_pose[:, 2])
        true_delta = np.stack([c * d[:, 0] + s * d[:, 1], -s * d[:, 0] + c * d[:, 1],
                               self.pose[:, 2] - self.prev_pose[:, 2]], axis=1)
        self.path_length += np.hypot(d[:, 0], d[:, 1])
        odom = odometry_delta(true_delta, self.odom_scale, self.heading_drift, self.trans_noise, self.rot_noise,
                              self.ep_rngs)
        self._scan(np.arange(n))
        self.steps += 1
        geo = self._geodesic_all()
        progress = self.geo - geo
        self.geo[:] = geo
        success = np.hypot(self.pose[:, 0] - self.goal_xy[:, 0], self.pose[:, 1] - self.goal_xy[:, 1]) \
            < cfg.goal_radius
        rw = cfg.reward
        reward = rw.progress * progress + rw.success * success + rw.collision * (hit | mover_hit) + rw.time
        if rw.blocked:
            reward += rw.blocked * np.abs(a[:, 0]) / rc.v_max * (1.0 - self.safety.obstacle_factor)
        if rw.turn_change:
            reward += rw.turn_change * turn_change
        truncated = (self.steps >= self.limit) & ~success
        self._odom, self._frames = odom, None
        self._observe_all(odom)
        return self.obs, reward.astype(np.float32), success, truncated

    def info(self, i: int) -> dict:
        """Episode metrics of env i (for Gymnasium's info and for evaluation)."""
        ep = self.episodes[i]
        assert ep is not None
        return {
            "is_success": bool(np.hypot(*(self.pose[i, :2] - self.goal_xy[i])) < self.cfg.goal_radius),
            "collisions": int(self.collisions[i]),
            "mover_contacts": int(self.mover_contacts[i]),
            "in_collision": bool(self.contact[i]),
            "penetration": float(self.penetration[i]),
            "path_length": float(self.path_length[i]),
            "shortest_path_length": float(self.shortest[i]),
            "geodesic_to_goal": float(self.geo[i]),
            "episode_steps": int(self.steps[i]),
            "time_limit_steps": int(self.limit[i]),
            "maze": ep.maze.name or ep.maze.hash(),
            "maze_hash": ep.maze.hash(),
            "episode_seed": ep.seed,
        }

    def close(self) -> None:
        """Release the physics client."""
        self.world.close()
