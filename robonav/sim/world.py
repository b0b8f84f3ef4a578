"""The batched PyBullet world: many mazes side by side in one physics client, one robot in each.

Each maze's walls are ONE static body whose compound shape holds the maze's wall cells merged into as few
boxes as possible (plus an outer ring). The robot is a planar multibody (prismatic x, prismatic y, revolute z)
whose joints are driven by velocity motors with a force cap, so PyBullet resolves contacts: the robot really
collides and slides along walls. One ``stepSimulation`` advances every env; contacts come from one query.

``wall_mode="cells"`` builds one body per wall cell instead: the naive baseline of benchmarks/sim_throughput.py.

Moving obstacles (robonav.sim.dynamic) of one slot are ONE multibody too: a static base with two prismatic joints
(x, then y) per mover, the second link holding the mover's cylinder. Each tick `drive_movers` resets those joints
to the movers' positions and gives their motors the tick's velocity with a large force, so within the tick the
movers push the robot like heavy bodies and end where the mover model says. Movers collide with robots only (not
walls, not each other); rays see walls and movers; contacts with movers are reported apart from wall contacts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pybullet as p

from robonav.sim.config import RobotConfig
from robonav.sim.maze import Maze

WALL_HEIGHT = 0.5
MAX_COMPOUND = 16
_ROBOT_GROUP, _WALL_GROUP, _MOVER_GROUP = 1, 2, 4  # collision filter bits: robots hit walls and movers
_RAY_MASK = _WALL_GROUP | _MOVER_GROUP
MOVER_MASS = 80.0  # kg: a person
MOVER_FORCE = 5000.0  # N: a mover's motors hold its velocity against the robot's drive (about 15 N)


class WorldError(RuntimeError):
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
    crowd: int = -1  # the movers' multibody, -1 when the slot has none
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
        for i in range(num_envs):
            origin = ((i % side) * slot_size, (i // side) * slot_size)
            slot = _Slot(origin, [], [], -1, -1, robot.radius)
            self._slots.append(slot)
            self._make_robot(i, robot.radius)
        self._force = np.full(num_envs, robot.wheel_friction * robot.mass * 9.81)

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
            slot.robot, slot.wall_bodies, slot.wall_shapes, slot.crowd = -1, [], [], -1
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
        if slot.crowd >= 0:
            p.removeBody(slot.crowd, physicsClientId=cid)
            self._crowd_to_env.pop(slot.crowd, None)
            slot.crowd = -1
            self._garbage += 1
        slot.mover_radii = tuple(float(r) for r in radii)
        if not slot.mover_radii:
            return
        h = self.mover_height
        shapes = []
        for r in slot.mover_radii:
            key = (round(r, 4), h)
            if key not in self._cylinders:
                self._cylinders[key] = p.createCollisionShape(p.GEOM_CYLINDER, radius=key[0], height=h,
                                                              physicsClientId=cid)
            shapes.append(self._cylinders[key])
        m = len(shapes)
        masses, cols, parents, types, axes = [], [], [], [], []
        for k in range(m):
            masses += [1.0, MOVER_MASS]
            cols += [-1, shapes[k]]
            parents += [0, 2 * k + 1]  # x joint on the base, y joint on the x link (1-based parent indices)
            types += [p.JOINT_PRISMATIC, p.JOINT_PRISMATIC]
            axes += [[1, 0, 0], [0, 1, 0]]
        body = p.createMultiBody(
            baseMass=0, basePosition=[slot.origin[0], slot.origin[1], h / 2], linkMasses=masses,
            linkCollisionShapeIndices=cols, linkVisualShapeIndices=[-1] * 2 * m, linkPositions=[[0, 0, 0]] * 2 * m,
            linkOrientations=[[0, 0, 0, 1]] * 2 * m, linkInertialFramePositions=[[0, 0, 0]] * 2 * m,
            linkInertialFrameOrientations=[[0, 0, 0, 1]] * 2 * m, linkParentIndices=parents,
            linkJointTypes=types, linkJointAxis=axes, physicsClientId=cid)
        p.setCollisionFilterGroupMask(body, -1, 0, 0, physicsClientId=cid)
        for j in range(2 * m):
            p.changeDynamics(body, j, jointDamping=0, linearDamping=0, angularDamping=0, lateralFriction=0.5,
                             physicsClientId=cid)
            group, mask = (_MOVER_GROUP, _ROBOT_GROUP) if j % 2 else (0, 0)
            p.setCollisionFilterGroupMask(body, j, group, mask, physicsClientId=cid)
        slot.crowd = body
        self._crowd_to_env[body] = i

    def drive_movers(self, pos: np.ndarray, vel: np.ndarray, counts: np.ndarray) -> None:
        """Put env i's movers k < counts[i] at ``pos[i, k]`` moving at ``vel[i, k]`` (maze frame) for this tick."""
        cid = self.client
        for i, slot in enumerate(self._slots):
            m = int(counts[i])
            if slot.crowd < 0 or m == 0:
                continue
            joints = list(range(2 * m))
            q = pos[i, :m].reshape(-1)  # [2m]: x0, y0, x1, y1, ... (joint order)
            qd = vel[i, :m].reshape(-1)
            p.resetJointStatesMultiDof(slot.crowd, joints, [[v] for v in q.tolist()],
                                       [[v] for v in qd.tolist()], physicsClientId=cid)
            p.setJointMotorControlArray(slot.crowd, joints, p.VELOCITY_CONTROL, targetVelocities=qd.tolist(),
                                        forces=[MOVER_FORCE] * (2 * m), physicsClientId=cid)

    def mover_positions(self, i: int) -> np.ndarray:
        """[M, 2] positions of slot i's movers as PyBullet has them (maze frame)."""
        slot = self._slots[i]
        if slot.crowd < 0:
            return np.zeros((0, 2))
        st = p.getJointStates(slot.crowd, list(range(2 * len(slot.mover_radii))), physicsClientId=self.client)
        return np.array([s[0] for s in st]).reshape(-1, 2)

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

    # -- stepping -----------------------------------------------------------------------------------------

    def apply_velocities(self, vxy_w: np.ndarray) -> None:
        """Set motor targets: ``vxy_w[i] = (vx, vy, omega)`` in the maze frame (m/s, rad/s)."""
        cid = self.client
        for i, slot in enumerate(self._slots):
            f = float(self._force[i])
            p.setJointMotorControlArray(
                slot.robot, [0, 1, 2], p.VELOCITY_CONTROL, targetVelocities=vxy_w[i].tolist(),
                forces=[f, f, f * slot.radius * 2.0], physicsClientId=cid)

    def step(self) -> None:
        """Advance one control period (``substeps`` physics steps) for every env."""
        for _ in range(self.substeps):
            p.stepSimulation(physicsClientId=self.client)

    def poses(self, out: np.ndarray | None = None) -> np.ndarray:
        """True poses [N, 3] (x, y, theta) in each maze's frame; theta wrapped to (-pi, pi]."""
        out = np.empty((self.num_envs, 3)) if out is None else out
        for i, slot in enumerate(self._slots):
            st = p.getJointStates(slot.robot, [0, 1, 2], physicsClientId=self.client)
            out[i, 0], out[i, 1], out[i, 2] = st[0][0], st[1][0], st[2][0]
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
