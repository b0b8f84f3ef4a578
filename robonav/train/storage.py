"""Rollout storage: a [T, N] block of transitions plus the LSTM state at the start of every sequence.

Masking rule (one place): ``episode_starts[t, n] = 1`` means obs[t, n] begins an episode; the policy zeroes h, c
before step t. ``sequences()`` cuts the block into length-S chunks per env, each carrying the state that was the
input of its first step, ready for truncated BPTT over whole sequences.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from robonav.policy.state import LstmState


@dataclass
class SequenceBatch:
    """Whole sequences for the PPO update; tensors are [S, M, ...] for M = N * T / S sequences."""

    obs: torch.Tensor
    actions: torch.Tensor
    logprobs: torch.Tensor
    values: torch.Tensor
    advantages: torch.Tensor
    returns: torch.Tensor
    episode_starts: torch.Tensor
    state: LstmState
    """Input state of each sequence's first step, (layers, M, hidden)."""
    targets: torch.Tensor | None = None
    """Teacher actions (normalised) for imitation, [S, M, 2]."""

    def select(self, idx: torch.Tensor) -> SequenceBatch:
        """Sequences ``idx`` (a minibatch of whole sequences)."""
        return SequenceBatch(self.obs[:, idx], self.actions[:, idx], self.logprobs[:, idx], self.values[:, idx],
                             self.advantages[:, idx], self.returns[:, idx], self.episode_starts[:, idx],
                             self.state.select(idx), None if self.targets is None else self.targets[:, idx])


class RolloutStorage:
    """Fixed-size buffers for T steps of N envs; tensors stay torch tensors."""

    def __init__(self, steps: int, num_envs: int, obs_dim: int, seq_len: int, state_shape: tuple[int, int]) -> None:
        if steps % seq_len:
            raise ValueError(f"ppo.steps ({steps}) must be a multiple of ppo.seq_len ({seq_len})")
        t, n = steps, num_envs
        self.steps, self.num_envs, self.seq_len = t, n, seq_len
        self.obs = torch.zeros(t, n, obs_dim)
        self.actions = torch.zeros(t, n, 2)
        self.logprobs = torch.zeros(t, n)
        self.values = torch.zeros(t, n)
        self.rewards = torch.zeros(t, n)
        self.dones = torch.zeros(t, n)
        self.episode_starts = torch.zeros(t, n)
        self.targets = torch.zeros(t, n, 2)
        layers, hidden = state_shape
        chunks = t // seq_len
        self.seq_h = torch.zeros(chunks, layers, n, hidden)
        self.seq_c = torch.zeros(chunks, layers, n, hidden)
        self.step = 0

    def add(self, obs: torch.Tensor, episode_starts: torch.Tensor, state: LstmState, actions: torch.Tensor,
            logprobs: torch.Tensor, values: torch.Tensor, rewards: torch.Tensor, dones: torch.Tensor,
            targets: torch.Tensor | None = None) -> None:
        """Store step t; ``state`` is the policy's input state for this step (before masking)."""
        t = self.step
        if t >= self.steps:
            raise RuntimeError("rollout storage is full: call clear() before adding more steps")
        if t % self.seq_len == 0:
            k = t // self.seq_len
            self.seq_h[k] = state.h
            self.seq_c[k] = state.c
        self.obs[t], self.episode_starts[t], self.actions[t] = obs, episode_starts, actions
        self.logprobs[t], self.values[t], self.rewards[t], self.dones[t] = logprobs, values, rewards, dones
        if targets is not None:
            self.targets[t] = targets
        self.step += 1

    def clear(self) -> None:
        self.step = 0

    def sequences(self, advantages: torch.Tensor, returns: torch.Tensor) -> SequenceBatch:
        """All stored steps as M = N * T / S sequences of length S (chunk-major, then env)."""
        s, k, n = self.seq_len, self.steps // self.seq_len, self.num_envs

        def cut(x: torch.Tensor) -> torch.Tensor:  # [T, N, ...] -> [S, K*N, ...]
            return x.reshape(k, s, n, *x.shape[2:]).transpose(0, 1).reshape(s, k * n, *x.shape[2:])

        layers, hidden = self.seq_h.shape[1], self.seq_h.shape[3]
        # [K, L, N, H] -> [L, K*N, H] in the same chunk-major order as cut()
        h = self.seq_h.permute(1, 0, 2, 3).reshape(layers, k * n, hidden)
        c = self.seq_c.permute(1, 0, 2, 3).reshape(layers, k * n, hidden)
        return SequenceBatch(cut(self.obs), cut(self.actions), cut(self.logprobs), cut(self.values),
                             cut(advantages), cut(returns), cut(self.episode_starts), LstmState(h, c),
                             cut(self.targets))


@dataclass(frozen=True)
class Rollout:
    """One update's experience, handed from where the envs stepped (the local Collector, or the Ray workers) to the
    PPO update: `Trainer.collect` returns it."""

    storage: RolloutStorage
    """Complete rollouts [T, N, ...]: the learner's own storage, or the Ray workers' joined along the env axis (N
    smaller when a worker was lost)."""
    last_value: torch.Tensor
    """V(obs after the last step) [N]: GAE's bootstrap."""
    successes: list[float]
    """1.0 / 0.0 per episode that finished in it (the curriculum's window)."""
    stats: dict[str, float]
    """Its scalars for the log (episodes, episode_steps, spl; the Ray trainer adds its worker counts)."""

    @property
    def steps(self) -> int:
        """Environment steps in it (T x N)."""
        return self.storage.steps * self.storage.num_envs
