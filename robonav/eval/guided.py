"""The guided baseline: the A* guidance block of the shipped observation, driven by a small pure pursuit.

The shipped policies see a guidance block (robonav.sensors.guidance): the bearings of two points along an A*
path planned on the robot's own obstacle memory, the path length and whether a path was found. This policy
reads only that block and steers to the near point, so a learned policy's gain over it is what the network adds
to the planner it is handed. Nothing else of the observation is used; the safety layer still filters every
command, as for every policy.

Pure pursuit on the near point at bearing ``a`` (lookahead ``L`` along the path): curvature ``2 sin(a) / L``;
speed ``v_max`` scaled down by the turn ahead (``cos`` of the far point's bearing, at least `MIN_SPEED_SHARE`)
and by the remaining path near the goal; a point more than `TURN_IN_PLACE` rad off the heading is turned to in
place first.
"""

from __future__ import annotations

import json
import math

import numpy as np

from robonav.sensors.frame import SensorFrame
from robonav.sensors.spec import ObservationSpec
from robonav.sim.config import SimConfig

__all__ = ["GuidedPolicy", "guided_setup", "shipped_spec"]

TURN_IN_PLACE = 0.8
"""Bearing (rad) of the near point beyond which the robot turns in place before it drives."""
TURN_GAIN = 2.5
"""Turn rate (rad/s) per radian of bearing when turning in place."""
MIN_SPEED_SHARE = 0.3
"""Share of v_max kept however sharp the turn ahead."""
SLOW_DISTANCE = 1.0
"""Path length (m) below which the speed falls with the remaining distance (no overshoot at the goal)."""


def shipped_spec() -> ObservationSpec:
    """The ObservationSpec of the shipped default policy (its guidance settings are the ones judged)."""
    from robonav.data import resource

    meta = json.loads(resource("policies", "default.json").read_text(encoding="utf-8"))
    return ObservationSpec.from_dict(meta["observation_spec"])


class GuidedPolicy:
    """Pure pursuit on the guidance block of ``spec`` (default: the shipped one) for ``num_envs`` envs."""

    def __init__(self, num_envs: int, spec: ObservationSpec | None = None, v_max: float = 0.5,
                 omega_max: float = 2.0) -> None:
        self.spec = spec or shipped_spec()
        if not self.spec.config.guidance:
            raise ValueError("GuidedPolicy needs an ObservationSpec with the guidance block (guidance: true)")
        self.num_envs = num_envs
        self.block = self.spec.block("guidance").slice
        self.lookahead = self.spec.config.guidance_lookahead
        self.v_max, self.omega_max = v_max, omega_max

    def reset(self, env_ids: np.ndarray) -> None:
        """Stateless: the guidance block carries the plan."""

    def act(self, obs: np.ndarray, frames: list[SensorFrame | None], sim: object = None) -> np.ndarray:
        """Commands [N, 2] from the guidance block of each observation."""
        g = np.asarray(obs, dtype=np.float64)[:, self.block]  # [N, 6]
        return np.stack([self.command(row) for row in g])

    def command(self, g: np.ndarray) -> np.ndarray:
        """(v, omega) for one guidance block (sin, cos near; sin, cos far; length / PATH_CLIP; found)."""
        from robonav.sensors.guidance import PATH_CLIP

        near = math.atan2(g[0], g[1])
        far = math.atan2(g[2], g[3])
        if abs(near) > TURN_IN_PLACE:
            return np.array([0.0, float(np.clip(TURN_GAIN * near, -self.omega_max, self.omega_max))])
        length = float(g[4]) * PATH_CLIP
        v = self.v_max * max(MIN_SPEED_SHARE, math.cos(far), 0.0) * min(1.0, max(length, 0.2) / SLOW_DISTANCE)
        v = min(v, self.v_max)
        omega = 2.0 * math.sin(near) / self.lookahead * v
        return np.array([v, float(np.clip(omega, -self.omega_max, self.omega_max))])


def guided_setup() -> tuple[type[GuidedPolicy], SimConfig]:
    """(policy factory, eval SimConfig) for ``--policy guided``: the shipped observation, so the guidance block
    is the one the shipped policies see."""
    import dataclasses

    from robonav.eval.runner import eval_config

    spec = shipped_spec()
    return GuidedPolicy, eval_config(dataclasses.replace(SimConfig(), preprocessor=spec.config))
