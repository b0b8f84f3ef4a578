"""The recurrent PPO update (Schulman et al. 2017) over minibatches of whole sequences.

Each minibatch is a set of length-S sequences with their stored input states; the model runs them with one LSTM
call per minibatch (split-and-pad at episode starts, robonav.policy.sequence), so there is no per-step Python loop.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from robonav.policy.actor_critic import ActorCritic
from robonav.train.storage import SequenceBatch


@dataclass(frozen=True)
class PPOConfig:
    """Rollout and update settings (the `ppo:` section of train.yaml)."""

    num_envs: int = 32
    """Parallel environments."""
    steps: int = 128
    """Steps per env per rollout (T)."""
    seq_len: int = 32
    """Truncated-BPTT sequence length (S); T must be a multiple."""
    epochs: int = 4
    """Passes over the rollout per update."""
    minibatches: int = 4
    """Minibatches of whole sequences per epoch."""
    gamma: float = 0.99
    """Discount."""
    lam: float = 0.95
    """GAE lambda."""
    clip: float = 0.2
    """Surrogate clip range."""
    value_clip: float = 0.0
    """Value-prediction clip range around the rollout's values (<= 0: off). Off by default: returns here are not
    normalised (a success is worth 10), and a 0.2 clip on values of that size stalls the critic."""
    vf_coef: float = 0.5
    """Value-loss weight."""
    ent_coef: float = 0.003
    """Entropy bonus weight."""
    max_grad_norm: float = 0.5
    """Gradient-norm clip."""
    lr: float = 3e-4
    """Initial learning rate."""
    lr_final: float = 3e-5
    """Learning rate at total_steps (linear annealing)."""
    target_kl: float = 0.03
    """Stop the epochs of an update early when the approximate KL passes this (<= 0: never)."""


def ppo_update(model: ActorCritic, optimizer: torch.optim.Optimizer, batch: SequenceBatch, cfg: PPOConfig,
               generator: torch.Generator | None = None) -> dict[str, float]:
    """Run the epochs of one PPO update in place; returns mean losses and diagnostics."""
    num_seq = batch.obs.shape[1]
    stats: dict[str, float] = {"policy_loss": 0.0, "value_loss": 0.0, "entropy": 0.0, "approx_kl": 0.0,
                               "clip_fraction": 0.0}
    count = 0
    for _ in range(cfg.epochs):
        perm = torch.randperm(num_seq, generator=generator)
        kl_epoch = []
        for idx in perm.chunk(cfg.minibatches):
            mb = batch.select(idx)
            mean, value, _ = model(mb.obs, mb.state, mb.episode_starts)
            dist = model.distribution(mean)
            logprobs = dist.log_prob(mb.actions).sum(-1)
            log_ratio = logprobs - mb.logprobs
            ratio = log_ratio.exp()
            adv = (mb.advantages - mb.advantages.mean()) / (mb.advantages.std() + 1e-8)
            policy_loss = torch.max(-adv * ratio, -adv * ratio.clamp(1 - cfg.clip, 1 + cfg.clip)).mean()
            if cfg.value_clip > 0:
                v_clipped = mb.values + (value - mb.values).clamp(-cfg.value_clip, cfg.value_clip)
                value_loss = 0.5 * torch.max((value - mb.returns) ** 2, (v_clipped - mb.returns) ** 2).mean()
            else:
                value_loss = 0.5 * ((value - mb.returns) ** 2).mean()
            entropy = dist.entropy().sum(-1).mean()
            loss = policy_loss + cfg.vf_coef * value_loss - cfg.ent_coef * entropy
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
            optimizer.step()
            with torch.no_grad():
                approx_kl = ((ratio - 1) - log_ratio).mean().item()
                stats["clip_fraction"] += ((ratio - 1).abs() > cfg.clip).float().mean().item()
            kl_epoch.append(approx_kl)
            stats["policy_loss"] += policy_loss.item()
            stats["value_loss"] += value_loss.item()
            stats["entropy"] += entropy.item()
            stats["approx_kl"] += approx_kl
            count += 1
        if cfg.target_kl > 0 and sum(kl_epoch) / len(kl_epoch) > cfg.target_kl:
            break
    return {k: v / max(count, 1) for k, v in stats.items()}


def explained_variance(values: torch.Tensor, returns: torch.Tensor) -> float:
    """1 - Var[returns - values] / Var[returns] (1: perfect critic, 0: no better than a constant)."""
    var = returns.var()
    return float("nan") if var == 0 else float(1 - (returns - values).var() / var)
