"""The batched PyBullet world: many mazes side by side in one physics client, one robot in each.

Each maze's walls are ONE static body whose compound shape holds the maze's wall cells merged into as few
boxes as possible (plus an outer ring). The robot is a planar multibody (prismatic x, prismatic y, revolute z)
whose joints are driven by velocity motors with a force cap, so PyBullet resolves contacts: the robot really
collides and slides along walls. One ``stepSimulation`` advances every env; contacts come from one query.

``wall_mode="cells"`` builds one body per wall cell instead: the naive baseline of benchmarks/sim_throughput.py.

Moving obstacles (robonav.sim.dynamic) are heavy (80 kg) rigid cylinders in maximal coordinates (a multibody of
prismatic joints per slot cost ten times the physics). Each tick `drive_movers` puts each mover near its robot at
the mover model's position with the tick's velocity (the others sleep, costing nothing): within the tick they push
the robot like heavy bodies, and they end the tick where the model says (up to what the robot's push takes off,
which the next tick's reset undoes). Movers collide with robots only (not walls, not each other); rays see walls
and movers; contacts with movers are reported apart from wall contacts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pybullet as p

from robonav.errors import UserError
from robonav.sim.config import RobotConfig
from robonav.sim.maze import Maze

WALL_HEIGHT = 0.5
MAX_COMPOUND = 16
_ROBOT_GROUP, _WALL_GROUP, _MOVER_GROUP = 1, 2, 4  # collision filter bits: robots hit walls and movers
_RAY_MASK = _WALL_GROUP | _MOVER_GROUP
MOVER_MASS = 80.0  # kg: a person


class WorldError(UserError, RuntimeError):
    """The physics world cannot do what was asked (e.g. a maze larger than its slot)."""


def merge_wall_boxes(occ: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Cover the True cells of ``occ[iy, ix]`` with disjoint rectangles (ix0, iy0, w, h), greedily.

    Grows each box right as far as the row allows, then up while the whole span is wall: a perfect 7x7 maze
    (225 cells, ~130 walls) becomes about 30 boxes.
    """
    ny, nx = occ.shape
    used = np.zeros_like(occ, dtype=bool)
    boxes = []
    for iy in range(ny):
        ix = 0
        while ix < nx:
            if not occ[iy, ix] or used[iy, ix]:
                ix += 1
                continue
            w = 1
            while ix + w < nx and occ[iy, ix + w] and not used[iy, ix + w]:
                w += 1
            h = 1
            while iy + h < ny and occ[iy + h, ix:ix + w].all() and not used[iy + h, ix:ix + w].any():
                h += 1
            used[iy:iy + h, ix:ix + w] = True
            boxes.append((ix, iy, w, h))
            ix += w
    return boxes


@dataclass
class _Slot:
    origin: tuple[float, float]
    wall_bodies: list[int]
    wall_shapes: list[int]
    robot: int
    robot_shape: int
    radius: float
    maze: Maze | None = None
    movers: list[int] = field(default_factory=list)  # one rigid body per mover
    mover_radii: tuple[float, ...] = ()


class BatchedWorld:
    """``num_envs`` maze slots in one PyBullet DIRECT client. Poses are in each maze's own frame."""

    def __init__(self, num_envs: int, robot: RobotConfig, period: float = 0.1, substeps: int = 5,
                 slot_size: float = 64.0, wall_mode: str = "merged", rebuild_after: int = 2000) -> None:
        if wall_mode not in ("merged", "cells"):
            raise WorldError(f"wall_mode must be 'merged' or 'cells', got {wall_mode!r}")
        self.num_envs = num_envs
        self.robot_cfg = robot
        self.period = period
        self.substeps = substeps
        self.slot_size = slot_size
        self.wall_mode = wall_mode
        self.client = p.connect(p.DIRECT)
        self.rebuild_after = rebuild_after
        self._garbage = 0
        self._setup_physics()
        side = max(1, math.ceil(math.sqrt(num_envs)))
        self._slots: list[_Slot] = []
        self._body_to_env: dict[int, int] = {}
        self._crowd_to_env: dict[int, int] = {}
        self._cylinders: dict[tuple[float, float], int] = {}  # (radius, height) -> shape: shapes are never freed
        self.mover_height = 1.7
        self._mover_vel = np.zeros((num_envs, 0, 2))  # [N, M, 2] velocity each mover was last given
        self._mover_awake = np.zeros((num_envs, 0), dtype=bool)  # [N, M] simulated (not asleep)
        self._mover_bodies = np.zeros(num_envs, dtype=np.int64)  # bodies per slot
        for i in range(num_envs):
            origin = ((i % side) * slot_size, (i // side) * slot_size)
            slot = _Slot(origin, [], [], -1, -1, robot.radius)
            self._slots.append(slot)
            self._make_robot(i, robot.radius)
        self._force = np.full(num_envs, robot.wheel_friction * robot.mass * 9.81)
        self._motor_forces: list[list[float] | None] = [None] * num_envs  # per slot, from _force and radius

    # -- construction -------------------------------------------------------------------------------------

    def _setup_physics(self) -> None:
        cid = self.client
        p.setGravity(0, 0, 0, physicsClientId=cid)  # planar robot: joints carry it; no floor needed
        p.setPhysicsEngineParameter(fixedTimeStep=self.period / self.substeps, numSolverIterations=10,
                                    physicsClientId=cid)

    def rebuild(self) -> None:
        """Reset the PyBullet world and rebuild every slot as it is now.

        PyBullet never frees a removed body's collision shapes (``removeCollisionShape`` refuses: "it is
        used"), about 40 kB per 16-box compound; a training run that draws a new maze every episode would grow
        by gigabytes. ``resetSimulation`` does free them, so after ``rebuild_after`` discarded objects the world
        is rebuilt, robots keep their joint positions and velocities.
        """
        cid = self.client
        states = [p.getJointStates(s.robot, [0, 1, 2], physicsClientId=cid) for s in self._slots]
        p.resetSimulation(physicsClientId=cid)
        self._setup_physics()
        self._garbage = 0
        self._body_to_env.clear()
        self._crowd_to_env.clear()
        self._cylinders.clear()
        for i, slot in enumerate(self._slots):
            slot.robot, slot.wall_bodies, slot.wall_shapes, slot.movers = -1, [], [], []
            self._make_robot(i, slot.radius)
            for j, (q, qd, *_) in enumerate(states[i]):
                p.resetJointState(slot.robot, j, q, qd, physicsClientId=cid)
            if slot.maze is not None:
                self._build_walls(i, slot.maze)
            if slot.mover_radii:
                self.set_movers(i, slot.mover_radii)
        self._garbage = 0

    def _make_robot(self, i: int, radius: float) -> None:
        cid, slot, rc = self.client, self._slots[i], self.robot_cfg
        if slot.robot >= 0:
            p.removeBody(slot.robot, physicsClientId=cid)
            self._body_to_env.pop(slot.robot, None)
            self._garbage += 1
        shape = p.createCollisionShape(p.GEOM_CYLINDER, radius=radius, height=rc.height, physicsClientId=cid)
        body = p.createMultiBody(
            baseMass=0, basePosition=[slot.origin[0], slot.origin[1], rc.height / 2],
            linkMasses=[0.01, 0.01, rc.mass], linkCollisionShapeIndices=[-1, -1, shape],
            linkVisualShapeIndices=[-1, -1, -1], linkPositions=[[0, 0, 0]] * 3,
            linkOrientations=[[0, 0, 0, 1]] * 3, linkInertialFramePositions=[[0, 0, 0]] * 3,
            linkInertialFrameOrientations=[[0, 0, 0, 1]] * 3, linkParentIndices=[0, 1, 2],
            linkJointTypes=[p.JOINT_PRISMATIC, p.JOINT_PRISMATIC, p.JOINT_REVOLUTE],
            linkJointAxis=[[1, 0, 0], [0, 1, 0], [0, 0, 1]], physicsClientId=cid)
        p.changeDynamics(body, 2, lateralFriction=rc.wall_friction, linearDamping=0, angularDamping=0,
                         physicsClientId=cid)
        for j in range(3):
            p.changeDynamics(body, j, jointDamping=0, physicsClientId=cid)
            p.setCollisionFilterGroupMask(body, j, _ROBOT_GROUP, _WALL_GROUP | _MOVER_GROUP, physicsClientId=cid)
        p.setCollisionFilterGroupMask(body, -1, 0, 0, physicsClientId=cid)
        slot.robot, slot.robot_shape, slot.radius = body, shape, radius
        self._body_to_env[body] = i
        if hasattr(self, "_motor_forces"):
            self._motor_forces[i] = None

    def set_maze(self, i: int, maze: Maze) -> None:
        """Replace slot i's walls with ``maze`` (its walls plus a one-cell ring around the grid)."""
        cid, slot = self.client, self._slots[i]
        extent = (max(maze.rows, maze.cols) + 2) * maze.cell
        if extent > self.slot_size:
            raise WorldError(
                f"maze {maze.name or maze.hash()} spans {extent:.1f} m with its ring, more than the world's "
                f"slot_size {self.slot_size} m: raise sim.slot_size"
            )
        for b in slot.wall_bodies:
            p.removeBody(b, physicsClientId=cid)
        self._garbage += len(slot.wall_shapes)
        slot.wall_bodies, slot.wall_shapes, slot.maze = [], [], None
        if self._garbage > self.rebuild_after:
            self.rebuild()
        self._build_walls(i, maze)

    def _build_walls(self, i: int, maze: Maze) -> None:
        cid, slot = self.client, self._slots[i]
        occ = np.pad(maze.occupancy, 1, constant_values=True)  # ring; padded cell (0,0) is at (-cell, -cell)
        c = maze.cell
        ox, oy = slot.origin[0] - c, slot.origin[1] - c
        if self.wall_mode == "merged":
            boxes = merge_wall_boxes(occ)
        else:
            iy, ix = np.nonzero(occ)
            boxes = [(int(x), int(y), 1, 1) for x, y in zip(ix, iy)]
        half = [[w * c / 2, h * c / 2, WALL_HEIGHT / 2] for (_, _, w, h) in boxes]
        centers = [[(x + w / 2) * c, (y + h / 2) * c, WALL_HEIGHT / 2] for (x, y, w, h) in boxes]
        if self.wall_mode == "merged":
            # PyBullet's compound shapes hold at most 16 children (MAX_COMPOUND_COLLISION_SHAPES in its
            # shared-memory API; extra children are silently dropped), so the boxes go in chunks of 16.
            bodies = []
            for k in range(0, len(boxes), MAX_COMPOUND):
                shape = p.createCollisionShapeArray(
                    [p.GEOM_BOX] * len(half[k:k + MAX_COMPOUND]), halfExtents=half[k:k + MAX_COMPOUND],
                    collisionFramePositions=centers[k:k + MAX_COMPOUND], physicsClientId=cid)
                bodies.append(p.createMultiBody(0, shape, basePosition=[ox, oy, 0], physicsClientId=cid))
                slot.wall_shapes.append(shape)
        else:
            slot.wall_shapes = [p.createCollisionShape(p.GEOM_BOX, halfExtents=h_, physicsClientId=cid)
                                for h_ in half]
            bodies = [p.createMultiBody(0, s, basePosition=[ox + c_[0], oy + c_[1], c_[2]], physicsClientId=cid)
                      for s, c_ in zip(slot.wall_shapes, centers)]
        for b in bodies:
            p.changeDynamics(b, -1, lateralFriction=1.0, physicsClientId=cid)
            p.setCollisionFilterGroupMask(b, -1, _WALL_GROUP, _ROBOT_GROUP, physicsClientId=cid)
        slot.wall_bodies = bodies
        slot.maze = maze

    def set_movers(self, i: int, radii: tuple[float, ...] | list[float]) -> None:
        """Give slot i one cylinder per entry of ``radii`` (none: no movers); place them with `drive_movers`."""
        cid, slot = self.client, self._slots[i]
        for b in slot.movers:
            p.removeBody(b, physicsClientId=cid)
            self._crowd_to_env.pop(b, None)
        self._garbage += len(slot.movers)
        slot.movers = []
        slot.mover_radii = tuple(float(r) for r in radii)
        self._mover_vel[i] = np.nan  # velocity last given (NaN: place on the next drive)
        self._mover_awake[i] = False
        self._mover_bodies[i] = len(slot.mover_radii)
        h = self.mover_height
        for r in slot.mover_radii:
            key = (round(r, 4), h)
            if key not in self._cylinders:
                self._cylinders[key] = p.createCollisionShape(p.GEOM_CYLINDER, radius=key[0], height=h,
                                                              physicsClientId=cid)
            b = p.createMultiBody(MOVER_MASS, self._cylinders[key], basePosition=[slot.origin[0], slot.origin[1],
                                                                                  h / 2],
                                  useMaximalCoordinates=True, physicsClientId=cid)
            # No damping; asleep until `drive_movers` wakes it; a push may spin or tilt it within a tick:
            # `drive_movers` resets the pose.
            p.changeDynamics(b, -1, linearDamping=0, angularDamping=0, lateralFriction=0.5,
                             activationState=p.ACTIVATION_STATE_ENABLE_SLEEPING, physicsClientId=cid)
            p.changeDynamics(b, -1, activationState=p.ACTIVATION_STATE_SLEEP, physicsClientId=cid)
            p.setCollisionFilterGroupMask(b, -1, _MOVER_GROUP, _ROBOT_GROUP, physicsClientId=cid)
            slot.movers.append(b)
            self._crowd_to_env[b] = i

    def drive_movers(self, pos: np.ndarray, vel: np.ndarray, counts: np.ndarray,
                     touched: np.ndarray | None = None, awake: np.ndarray | None = None) -> None:
        """Env i's movers k < counts[i] move at ``vel[i, k]`` this tick from ``pos[i, k]`` (maze frame).

        Only movers ``awake`` (default all; the simulator wakes those near their robot) are simulated; the others
        sleep where they are, costing no physics (an awake free body costs about 15 us a substep here). Of the
        awake ones only those whose velocity changed are reset, and all of an env ``touched`` marks (its robot
        pushed them): a free rigid body keeps its velocity exactly, so the others are already where ``pos`` says.
        """
        cid, h = self.client, self.mover_height / 2
        n, m = pos.shape[0], pos.shape[1]
        if self._mover_vel.shape[1] < m:  # grow the per-mover state (new columns: asleep, never placed)
            grow = m - self._mover_vel.shape[1]
            self._mover_vel = np.concatenate([self._mover_vel, np.full((n, grow, 2), np.nan)], axis=1)
            self._mover_awake = np.concatenate([self._mover_awake, np.zeros((n, grow), dtype=bool)], axis=1)
        last_v, was = self._mover_vel[:, :m], self._mover_awake[:, :m]
        live = np.arange(m)[None, :] < np.minimum(np.asarray(counts), self._mover_bodies)[:, None]  # [N, M]
        on = live if awake is None else live & awake
        reset = on & ((vel != last_v).any(axis=2) | ~was)
        if touched is not None:
            reset |= on & np.asarray(touched)[:, None]
        for i, k in zip(*np.nonzero(reset)):
            b = self._slots[i].movers[k]
            if not was[i, k]:
                p.changeDynamics(b, -1, activationState=p.ACTIVATION_STATE_WAKE_UP, physicsClientId=cid)
            ox, oy = self._slots[i].origin
            p.resetBasePositionAndOrientation(b, [pos[i, k, 0] + ox, pos[i, k, 1] + oy, h], (0.0, 0.0, 0.0, 1.0),
                                              physicsClientId=cid)
            p.resetBaseVelocity(b, [vel[i, k, 0], vel[i, k, 1], 0.0], (0.0, 0.0, 0.0), physicsClientId=cid)
        for i, k in zip(*np.nonzero(was & ~on & live)):
            b = self._slots[i].movers[k]
            p.resetBaseVelocity(b, (0.0, 0.0, 0.0), (0.0, 0.0, 0.0), physicsClientId=cid)
            p.changeDynamics(b, -1, activationState=p.ACTIVATION_STATE_SLEEP, physicsClientId=cid)
        self._mover_vel[:, :m] = np.where(on[:, :, None], vel, np.nan)
        self._mover_awake[:, :m] = on

    def mover_positions(self, i: int) -> np.ndarray:
        """[M, 2] positions of slot i's movers as PyBullet has them (maze frame)."""
        slot = self._slots[i]
        xy = [p.getBasePositionAndOrientation(b, physicsClientId=self.client)[0][:2] for b in slot.movers]
        return np.array(xy).reshape(-1, 2) - slot.origin

    def place_robot(self, i: int, x: float, y: float, theta: float, radius: float | None = None,
                    wheel_friction: float | None = None) -> None:
        """Teleport slot i's robot to (x, y, theta) at rest; rebuild it if its radius changes."""
        rc = self.robot_cfg
        if radius is not None and abs(radius - self._slots[i].radius) > 1e-9:
            self._make_robot(i, radius)
        body = self._slots[i].robot
        for j, q in enumerate((x, y, theta)):
            p.resetJointState(body, j, q, 0.0, physicsClientId=self.client)
        mu = rc.wheel_friction if wheel_friction is None else wheel_friction
        self._force[i] = mu * rc.mass * 9.81
        self._motor_forces[i] = None

    # -- stepping -----------------------------------------------------------------------------------------

    def apply_velocities(self, vxy_w: np.ndarray) -> None:
        """Set motor targets: ``vxy_w[i] = (vx, vy, omega)`` in the maze frame (m/s, rad/s)."""
        cid, joints, forces = self.client, [0, 1, 2], self._motor_forces
        for i, (slot, target) in enumerate(zip(self._slots, vxy_w.tolist())):
            limits = forces[i]
            if limits is None:  # set again after a robot is placed or rebuilt
                f = float(self._force[i])
                limits = forces[i] = [f, f, f * slot.radius * 2.0]
            p.setJointMotorControlArray(slot.robot, joints, p.VELOCITY_CONTROL, targetVelocities=target,
                                        forces=limits, physicsClientId=cid)

    def step(self) -> None:
        """Advance one control period (``substeps`` physics steps) for every env."""
        for _ in range(self.substeps):
            p.stepSimulation(physicsClientId=self.client)

    def poses(self, out: np.ndarray | None = None) -> np.ndarray:
        """True poses [N, 3] (x, y, theta) in each maze's frame; theta wrapped to (-pi, pi]."""
        out = np.empty((self.num_envs, 3)) if out is None else out
        cid, joints = self.client, [0, 1, 2]
        out[:] = [[q[0] for q in p.getJointStates(slot.robot, joints, physicsClientId=cid)] for slot in self._slots]
        out[:, 2] = np.arctan2(np.sin(out[:, 2]), np.cos(out[:, 2]))
        return out

    def contacts(self) -> tuple[np.ndarray, np.ndarray]:
        """(in_contact bool [N], deepest penetration [N] in metres) from one query over the whole world."""
        hit, mover, depth = self.contacts_split()
        return hit | mover, depth

    def contacts_split(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(wall contact bool [N], mover contact bool [N], deepest penetration [N] in metres), one query."""
        hit = np.zeros(self.num_envs, dtype=bool)
        mover = np.zeros(self.num_envs, dtype=bool)
        depth = np.zeros(self.num_envs)
        crowds = self._crowd_to_env
        for cp in p.getContactPoints(physicsClientId=self.client):
            i = self._body_to_env.get(cp[1], self._body_to_env.get(cp[2]))
            if i is None:
                continue
            if cp[1] in crowds or cp[2] in crowds:
                mover[i] = True
            else:
                hit[i] = True
            depth[i] = max(depth[i], -cp[8])
        return hit, mover, depth

    def raycast(self, xs: np.ndarray, ys: np.ndarray, angles: np.ndarray, counts: np.ndarray,
                max_range: float, out: np.ndarray, per_env_batches: bool = False) -> None:
        """PyBullet rays: ``xs, ys, angles, out`` [N, B] in maze frames; misses give +inf.

        One ``rayTestBatch`` for all envs by default; ``per_env_batches`` issues one per env (naive baseline).
        """
        z = self.robot_cfg.height * 0.75
        frm, to, idx = [], [], []
        for i, slot in enumerate(self._slots):
            n = int(counts[i])
            ox, oy = slot.origin
            x0, y0 = xs[i, :n] + ox, ys[i, :n] + oy
            x1, y1 = x0 + max_range * np.cos(angles[i, :n]), y0 + max_range * np.sin(angles[i, :n])
            f = np.stack([x0, y0, np.full(n, z)], 1).tolist()
            t = np.stack([x1, y1, np.full(n, z)], 1).tolist()
            if per_env_batches:
                res = p.rayTestBatch(f, t, collisionFilterMask=_RAY_MASK, physicsClientId=self.client)
                fr = np.array([r[2] if r[0] >= 0 else np.inf for r in res])
                out[i, :n] = np.where(np.isfinite(fr), fr * max_range, np.inf)
            else:
                frm += f
                to += t
                idx.append(n)
        if per_env_batches:
            return
        res = p.rayTestBatch(frm, to, collisionFilterMask=_RAY_MASK, physicsClientId=self.client)
        fr = np.array([r[2] if r[0] >= 0 else np.inf for r in res])
        k = 0
        for i, n in enumerate(idx):
            out[i, :n] = np.where(np.isfinite(fr[k:k + n]), fr[k:k + n] * max_range, np.inf)
            k += n

    def close(self) -> None:
        """Disconnect the physics client."""
        if self.client >= 0:
            p.disconnect(physicsClientId=self.client)
            self.client = -1
