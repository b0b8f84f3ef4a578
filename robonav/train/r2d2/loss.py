"""The R2D2 loss over a batch of replayed sequences: burn-in, then n-step double-Q TD errors in the rescaled space.

Each stored sequence is burn_in + seq_len transitions plus one bootstrap observation (robonav.train.r2d2.sequencer).

1. Start state: the stored state (the actor's input state of position 0), or zeros (``init_state='zero'``, the
   paper's baseline strategy).
2. Burn-in: the online AND the target network unroll the first ``burn_in`` positions from that state, only to
   rebuild their states; no loss is taken there.
3. Gradient rule (the paper's, pinned by tests): no gradient flows through the burn-in. The burn-in runs under
   ``torch.no_grad`` and the state after it is detached, so neither the burn-in observations nor the stored
   state receive gradient; BPTT runs over the trained part only.
4. Both networks unroll the trained part (one LSTM call each); targets are n-step double-Q
   (robonav.train.r2d2.targets) from Q after each transition (q[1:]); TD error delta = Q(s_t, a_t) - y_t.
5. Loss = sum_{b,t} w_b mask_bt l(delta_bt) / sum_{b,t} mask_bt with l = delta^2 / 2 (or Huber, delta 1), mask =
   valid trained transitions and w the importance weights: every trained transition counts once, scaled by its
   sequence's weight, so padding changes nothing.
6. New priorities: eta max |delta| + (1 - eta) mean |delta| over each sequence's masked steps.

Staleness made visible (the paper's section 3): the Q-value discrepancy at the first and the last trained step,
||q(s_hat) - q(s)||_2 / max_{a,j} |q(s_hat_j)_a| with s_hat the state the learner re-unrolled from the replayed
start (+ burn-in) and s the state the actor had at that step, both under the current online weights. The paper
divides by |max_{a,j} q|; robonav's Q values can be negative, so it divides by the largest |q| over the trained
valid steps of the sequence instead. With unchanged weights and stored states it is 0 (a test).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from robonav.policy.q_network import QNetwork
from robonav.policy.state import LstmState
from robonav.train.r2d2.replay import ReplayBatch, sequence_priorities
from robonav.train.r2d2.rescale import EPS
from robonav.train.r2d2.targets import n_step_targets


@dataclass
class LossOutput:
    """What one learner step needs and logs."""

    loss: torch.Tensor
    """Scalar, with gradient into the online network."""
    priorities: np.ndarray
    """[B] new replay priorities."""
    q_taken: torch.Tensor
    """[T', B] Q(s_t, a_t) over the trained part (detached; T' = seq_len)."""
    targets: torch.Tensor
    """[T', B] y_t (0 where masked)."""
    mask: torch.Tensor
    """[T', B] valid trained transitions."""
    metrics: dict[str, float]
    """loss, q_mean, target_mean, td_abs_mean, discrepancy_first, discrepancy_last."""


def initial_state(net: QNetwork, batch: ReplayBatch, init_state: str) -> LstmState:
    """The replayed start state: the stored one, or zeros."""
    if init_state == "stored":
        return batch.state
    if init_state == "zero":
        return net.initial_state(batch.obs.shape[1])
    raise ValueError(f"init_state must be 'zero' or 'stored', got {init_state!r}")


def unroll(online: QNetwork, target: QNetwork, batch: ReplayBatch, burn_in: int, init_state: str = "stored"
           ) -> tuple[torch.Tensor, torch.Tensor]:
    """(online Q [T', B, A] with gradient, target Q [T', B, A] without) over positions burn_in..T-1, after a
    gradient-free burn-in of both networks from the replayed start state."""
    t_len = batch.obs.shape[0]
    if not 0 <= burn_in < t_len - 1:
        raise ValueError(f"burn_in={burn_in} leaves no trained step in sequences of {t_len} positions "
                         "(burn_in + seq_len + 1): burn_in must be < the stored length")
    s0 = initial_state(online, batch, init_state)
    s_online = s_target = s0
    if burn_in > 0:
        with torch.no_grad():
            _, s_online = online(batch.obs[:burn_in], s0, batch.starts[:burn_in])
            _, s_target = target(batch.obs[:burn_in], s0, batch.starts[:burn_in])
    q_online, _ = online(batch.obs[burn_in:], s_online.detach(), batch.starts[burn_in:])
    with torch.no_grad():
        q_target, _ = target(batch.obs[burn_in:], s_target, batch.starts[burn_in:])
    return q_online, q_target


def weighted_td_loss(td: torch.Tensor, mask: torch.Tensor, weights: torch.Tensor,
                     kind: Literal["squared", "huber"] = "squared") -> torch.Tensor:
    """sum_{b,t} w_b mask_bt l(td_bt) / sum mask, l = td^2 / 2 or Huber (delta 1)."""
    if kind == "squared":
        per_step = 0.5 * td.pow(2)
    elif kind == "huber":
        per_step = F.huber_loss(td, torch.zeros_like(td), reduction="none", delta=1.0)
    else:
        raise ValueError(f"loss must be 'squared' or 'huber', got {kind!r}")
    m = mask.to(td.dtype)
    return (per_step * m * weights.unsqueeze(0)).sum() / m.sum().clamp(min=1.0)


def q_discrepancy(online: QNetwork, batch: ReplayBatch, q_replayed: torch.Tensor, burn_in: int, mask: torch.Tensor
                  ) -> tuple[float, float]:
    """Mean over the batch of the normalised Q gap at the first and the last trained valid step (see module)."""
    with torch.no_grad():
        q_rep = q_replayed[:-1]  # [T', B, A] at transitions
        batch_idx = torch.arange(q_rep.shape[1])
        last = mask.long().sum(0) - 1  # [B] index of the last valid trained step (the first is 0)
        scale = torch.where(mask.unsqueeze(-1), q_rep.abs(), torch.zeros_like(q_rep)).amax(dim=(0, 2))
        out = []
        for t, state in ((torch.zeros_like(last), batch.first_state), (last, batch.last_state)):
            pos = t + burn_in
            obs = batch.obs[pos, batch_idx].unsqueeze(0)  # [1, B, D]
            starts = batch.starts[pos, batch_idx].unsqueeze(0)
            q_actor, _ = online(obs, state, starts)
            gap = (q_rep[t, batch_idx] - q_actor[0]).norm(dim=-1)
            out.append(float((gap / scale.clamp(min=1e-8)).mean()))
    return out[0], out[1]


def r2d2_loss(online: QNetwork, target: QNetwork, batch: ReplayBatch, *, burn_in: int, n_step: int, gamma: float,
              eta: float = 0.9, init_state: str = "stored", loss: Literal["squared", "huber"] = "squared",
              rescale_eps: float = EPS, discrepancy: bool = True) -> LossOutput:
    """The loss, new priorities and metrics of one batch (steps 1-6 of the module docstring)."""
    q_online, q_target = unroll(online, target, batch, burn_in, init_state)
    rewards = batch.rewards[burn_in:-1]
    mask = batch.valid[burn_in:-1]
    with torch.no_grad():
        targets = n_step_targets(q_online.detach()[1:], q_target[1:], rewards, batch.terminated[burn_in:-1],
                                 batch.truncated[burn_in:-1], mask, n_step, gamma, rescale_eps)
    q_taken = q_online[:-1].gather(-1, batch.actions[burn_in:-1].unsqueeze(-1)).squeeze(-1)
    td = q_taken - targets
    value = weighted_td_loss(td, mask, batch.weights, loss)
    priorities = sequence_priorities(td.detach().abs(), mask, eta)
    m = mask.float()
    count = float(m.sum().clamp(min=1.0))
    metrics = {"loss": float(value.detach()), "q_mean": float((q_taken.detach() * m).sum()) / count,
               "target_mean": float((targets * m).sum()) / count,
               "td_abs_mean": float((td.detach().abs() * m).sum()) / count}
    if discrepancy:
        metrics["discrepancy_first"], metrics["discrepancy_last"] = q_discrepancy(
            online, batch, q_online.detach(), burn_in, mask)
    return LossOutput(value, priorities, q_taken.detach(), targets, mask, metrics)
