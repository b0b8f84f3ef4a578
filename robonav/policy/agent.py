"""A trained policy behind the Policy protocol of evaluation and HIL: deterministic actions, state per env.

The agent owns the LSTM state of every env; the loop that drives it owns the reset (``reset(env_ids)`` on every
episode or goal change), as in evaluation, HIL and on the robot. A checkpoint of either learner loads: recurrent PPO's
ActorCritic (the mean action) or R2D2's QNetwork (meta "algo": "r2d2"; the greedy motion primitive).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from robonav.policy.actor_critic import ActorCritic, PolicyConfig
from robonav.policy.checkpoint import CheckpointError, load_checkpoint
from robonav.policy.q_network import QConfig, QNetwork


def load_policy(path: str | Path) -> tuple[ActorCritic | QNetwork, dict[str, Any]]:
    """(model in eval mode, checkpoint meta) from a robonav checkpoint, without the trainer: a QNetwork where
    meta["algo"] is "r2d2", an ActorCritic otherwise (checkpoints from before the Q learner have no "algo")."""
    ck = load_checkpoint(path)
    meta = ck["meta"]
    algo = meta.get("algo", "ppo")
    try:
        pc = meta["policy"]
        cfg = PolicyConfig(**{**pc, "encoder": tuple(pc["encoder"])})
        model: ActorCritic | QNetwork
        if algo == "r2d2":
            qc = meta["q"]
            q_cfg = QConfig(**{**qc, "primitives": tuple(tuple(p) for p in qc["primitives"])})
            model = QNetwork(int(meta["obs_dim"]), cfg, q_cfg)
        elif algo == "ppo":
            model = ActorCritic(int(meta["obs_dim"]), cfg, tuple(meta["action_limits"]))  # type: ignore[arg-type]
        else:
            raise CheckpointError(f"{path}: the checkpoint's algo is {algo!r}, expected 'ppo' or 'r2d2': it was "
                                  "written by a newer robonav; upgrade robonav to load it")
        model.load_state_dict(ck["model"])
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        if isinstance(e, CheckpointError):
            raise
        raise CheckpointError(f"{path}: the checkpoint does not describe a robonav policy ({e})") from e
    model.eval()
    return model, meta


class TorchAgent:
    """Acts for N envs at once: ``act(obs [N, D], ...) -> [N, 2]`` commands (v m/s, omega rad/s): the actor's
    mean action, or a Q-network's greedy primitive (argmax, first index on ties, as ``QNetwork.step``)."""

    def __init__(self, model: ActorCritic | QNetwork, num_envs: int) -> None:
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
        obs_t = torch.as_tensor(obs, dtype=torch.float32)
        if isinstance(self.model, QNetwork):
            q, self.state = self.model(obs_t[None], self.state, self.starts[None])  # q [1, N, A]
            self.starts.zero_()
            return self.model.primitives[q[0].argmax(-1)].numpy().astype(np.float64)
        mean, _, self.state = self.model.act(obs_t, self.state, self.starts)
        self.starts.zero_()
        return (mean.clamp(-1.0, 1.0) * self.model.action_scale).numpy().astype(np.float64)
