"""Generalised advantage estimation (Schulman et al. 2016) with terminations and bootstrapped truncations.

``dones[t] = 1`` when the episode ended after action t, by termination OR truncation. A truncation is not the
end of the task: its reward must already carry ``gamma * V(final_obs)`` (added during the rollout, as SB3 does),
so the recursion can treat every done the same way and never bootstraps across an episode boundary.
"""

from __future__ import annotations

import torch


def compute_gae(rewards: torch.Tensor, values: torch.Tensor, dones: torch.Tensor, last_value: torch.Tensor,
                gamma: float, lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(advantages, returns), each [T, N], from rewards, values, dones [T, N] and V(obs after the rollout) [N].

    delta_t = r_t + gamma * V_{t+1} * (1 - done_t) - V_t
    A_t     = delta_t + gamma * lam * (1 - done_t) * A_{t+1}
    """
    t_len = rewards.shape[0]
    advantages = torch.zeros_like(rewards)
    next_adv = torch.zeros_like(last_value)
    next_value = last_value
    for t in reversed(range(t_len)):
        nonterminal = 1.0 - dones[t].float()
        delta = rewards[t] + gamma * next_value * nonterminal - values[t]
        next_adv = delta + gamma * lam * nonterminal * next_adv
        advantages[t] = next_adv
        next_value = values[t]
    return advantages, advantages + values


def bootstrap_truncations(rewards: torch.Tensor, envs: torch.Tensor, final_values: torch.Tensor,
                          gamma: float) -> torch.Tensor:
    """rewards [N] with ``gamma * V(final_obs)`` added for the envs truncated at this step (a copy)."""
    out = rewards.clone()
    out[envs] += gamma * final_values
    return out
