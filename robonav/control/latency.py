"""Command latency: each env applies the command it was given a whole number of control ticks ago.

A real robot applies a command some time after the scan it answers was taken (transport, inference, the
motor controller's own period). The simulator reproduces that with this ring buffer, so a policy trained with
latency randomisation meets the same lag on the robot. Evaluation and HIL use one tick (docs/design.md).

>>> delay = CommandDelay(num_envs=2, max_delay=2, delays=np.array([0, 1]))
>>> delay.push(np.array([[1.0, 0.1], [1.0, 0.1]]))  # env 1 still applies the zero it was reset to
array([[1. , 0.1],
       [0. , 0. ]])
>>> delay.push(np.array([[2.0, 0.2], [2.0, 0.2]]))
array([[2. , 0.2],
       [1. , 0.1]])
"""

from __future__ import annotations

import numpy as np

from robonav.control.envs import env_index
from robonav.errors import RobonavError, UserError

__all__ = ["CommandDelay", "CommandShapeError", "DelayValueError"]


class CommandShapeError(RobonavError, ValueError):
    """CommandDelay.push was given commands that are not [num_envs, 2]."""


class DelayValueError(UserError, ValueError):
    """A delay, max_delay, num_envs or env id lies outside what the CommandDelay holds."""


class CommandDelay:
    """Delays commands by a whole number of control ticks per env (0 = applied this tick).

    One ring of max_delay + 1 slots shared by all envs and one write position: push writes every env's command
    into the slot at the write position and reads each env's slot `delays[i]` ticks back. Resetting an env
    zeroes its column in every slot, so until it has pushed `delays[i]` new commands it applies (0, 0).
    """

    def __init__(self, num_envs: int, max_delay: int = 2, delays: np.ndarray | int | None = None) -> None:
        if num_envs < 1:
            raise DelayValueError(f"CommandDelay: num_envs must be >= 1, actual: {num_envs}.")
        if max_delay < 0:
            raise DelayValueError(f"CommandDelay: max_delay must be >= 0 ticks, actual: {max_delay}.")
        self.num_envs = int(num_envs)
        self.max_delay = int(max_delay)
        self._ring = np.zeros((self.max_delay + 1, self.num_envs, 2), dtype=np.float64)  # [slots, N, 2]
        self._delays = np.zeros(self.num_envs, dtype=np.intp)
        self._write = 0
        self._envs = np.arange(self.num_envs)
        self.reset(delays=delays)

    @property
    def delays(self) -> np.ndarray:
        """A copy of each env's delay in ticks, [N] int."""
        return self._delays.copy()

    def reset(
        self, env_ids: np.ndarray | list[int] | None = None, delays: np.ndarray | int | None = None
    ) -> None:
        """Clears the queue of the given envs (all when None) to zeros and, if given, sets their delays.

        `delays` is one int for all the given envs or one per given env; None keeps their current delays.
        """
        index = env_index(env_ids, self.num_envs, "CommandDelay.reset", DelayValueError)
        self._ring[:, index] = 0.0
        if delays is None:
            return
        chosen = self._envs[index]  # [K] env numbers
        values = np.asarray(delays)
        if values.dtype.kind not in "iu" or values.ndim > 1 or values.size not in (1, chosen.size):
            raise DelayValueError(
                f"CommandDelay.reset: delays must be one int, or one int per reset env ({chosen.size}), "
                f"actual: dtype {values.dtype}, shape {values.shape}."
            )
        if values.size and (values.min() < 0 or values.max() > self.max_delay):
            raise DelayValueError(
                f"CommandDelay.reset: delays must lie in [0, {self.max_delay}] ticks (max_delay), actual: "
                f"{values.reshape(-1).tolist()}. Raise max_delay when building the CommandDelay."
            )
        self._delays[chosen] = values.reshape(-1)  # one value broadcasts over the chosen envs

    def push(self, commands: np.ndarray) -> np.ndarray:
        """Queues `commands` [N, 2] (v, omega) and returns the [N, 2] float64 command to apply now."""
        commands = np.asarray(commands, dtype=np.float64)
        if commands.shape != (self.num_envs, 2):
            raise CommandShapeError(
                f"CommandDelay.push: commands must have shape ({self.num_envs}, 2) as (v, omega) per env, "
                f"actual: {commands.shape}."
            )
        slots = self.max_delay + 1
        self._ring[self._write] = commands
        read = (self._write - self._delays) % slots  # [N] slot each env reads
        applied = self._ring[read, self._envs]  # [N, 2], a copy (fancy indexing)
        self._write = (self._write + 1) % slots
        return applied
