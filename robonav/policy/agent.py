"""A trained policy behind the Policy protocol of evaluation and HIL: deterministic actions, state per env.

The agent owns the LSTM state of every env; the loop that drives it owns the reset (``reset(env_ids)`` on every
episode or goal change), as in evaluation, HIL and on the robot.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from robonav.policy.actor_critic import ActorCritic, PolicyConfig
from robonav.policy.checkpoint import CheckpointError, load_checkpoint


def load_policy(path: str | Path) -> tuple[ActorCritic, dict[str, Any]]:
    """(model in eval mode, checkpoint meta) from a robonav checkpoint, without the trainer."""
    ck = load_checkpoint(path)
    meta = ck["meta"]
    try:
        pc = meta["policy"]
        cfg = PolicyConfig(**{**pc, "encoder": tuple(pc["encoder"])})
        model = ActorCritic(int(meta["obs_dim"]), cfg, tuple(meta["action_limits"]))  # type: ignore[arg-type]
        model.load_state_dict(ck["model"])
    except (KeyError, TypeError, RuntimeError) as e:
        raise CheckpointError(f"{path}: the checkpoint does not describe a robonav policy ({e})") from e
    model.eval()
    return model, meta


class TorchAgent:
    """Acts for N envs at once: ``act(obs [N, D], ...) -> [N, 2]`` commands (v m/s, omega rad/s)."""

    def __init__(self, model: ActorCritic, num_envs: int) -> None:
        self.model = model
        self.state = model.initial_state(num_envs)
        self.starts = torch.ones(num_envs)

    @classmethod
    def from_checkpoint(cls, path: str | Path, num_envs: int) -> TorchAgent:
        model, _ = load_policy(path)
        return cls(model, num_envs)

    def reset(self, env_ids: np.ndarray) -> None:
        self.starts[torch.as_tensor(np.asarray(env_ids, dtype=np.int64))] = 1.0

    @torch.no_grad()
    def act(self, obs: np.ndarray, frames: Any = None, sim: Any = None) -> np.ndarray:
        mean, _, self.state = self.model.act(torch.as_tensor(obs, dtype=torch.float32), self.state, self.starts)
        self.starts.zero_()
        return (mean.clamp(-1.0, 1.0) * self.model.action_scale).numpy().astype(np.float64)
