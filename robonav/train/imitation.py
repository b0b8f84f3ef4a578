"""Imitation warm start (DAgger, Ross et al. 2011) before PPO: the policy learns to act like a teacher.

The envs run a mixture (the teacher drives with probability beta, annealed from beta_start to beta_end over the
imitation updates; the student otherwise), every visited observation is labelled with the teacher's action,
and the student is fitted by BPTT over the same whole sequences PPO uses: mean-squared error of its mean action
to the label, plus the value loss on the mixture's returns so the critic is warm when PPO takes over.
Teachers: ``classical`` (frontier exploration + A* on its own obstacle memory: the same sensors as the policy)
or ``expert`` (privileged: the true map and pose). The student only ever sees its own observations, so the
deployed policy never sees privileged data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from robonav.policy.actor_critic import ActorCritic
from robonav.train.storage import SequenceBatch


@dataclass(frozen=True)
class ImitationConfig:
    """The `imitation:` section of train.yaml (off when updates is 0)."""

    teacher: str = "classical"
    """'classical' (non-privileged frontier + A*) or 'expert' (privileged geodesic follower)."""
    updates: int = 0
    """DAgger updates before PPO starts (0: no warm start)."""
    beta_start: float = 1.0
    """Probability that the teacher's action is executed, at the first imitation update."""
    beta_end: float = 0.0
    """... reached after ``beta_updates`` updates (linear in between), then held."""
    beta_updates: int = 0
    """Updates over which beta anneals (0: all imitation updates); the rest is pure DAgger on the student's own
    states, which is where its mistakes get labelled."""
    log_std: float = -1.0
    """Log standard deviation of the policy when PPO takes over (imitation fits only the mean)."""

    def __post_init__(self) -> None:
        if self.teacher not in ("classical", "expert"):
            raise ValueError(f"imitation.teacher must be 'classical' or 'expert', got {self.teacher!r}")


class ExpertTeacher:
    """The privileged GeodesicExpert behind the Policy protocol (reset, act)."""

    def __init__(self, num_envs: int) -> None:
        from robonav.sim.expert import GeodesicExpert

        self.expert = GeodesicExpert()

    def reset(self, env_ids: np.ndarray) -> None:
        pass

    def act(self, obs: np.ndarray, frames, sim) -> np.ndarray:
        return self.expert(sim)


def make_teacher(name: str, num_envs: int):
    """Teacher factory for env workers (module level, so it pickles)."""
    if name == "expert":
        return ExpertTeacher(num_envs)
    from robonav.eval.classical import ClassicalPolicy

    return ClassicalPolicy(num_envs)


class SubsetTeacher:
    """A teacher that drives only every ``every``-th env (local index % every == 0) of a vector env: the others
    get no frame (no planning cost) and a zero action; ``mask`` says which envs it drives (R2D2's demonstrators)."""

    def __init__(self, teacher, num_envs: int, every: int) -> None:
        self.teacher = teacher
        self.mask = np.arange(num_envs) % every == 0

    def reset(self, env_ids: np.ndarray) -> None:
        self.teacher.reset(np.asarray(env_ids, dtype=np.int64)[self.mask[env_ids]])

    def act(self, obs: np.ndarray, frames, sim) -> np.ndarray:
        return self.teacher.act(obs, [f if m else None for f, m in zip(frames, self.mask)], sim)


class TeacherFactory:
    """Picklable ``factory(num_envs)`` for ProcessVectorEnv workers; ``every`` > 1: a SubsetTeacher."""

    def __init__(self, name: str, every: int = 1) -> None:
        self.name, self.every = name, every

    def __call__(self, num_envs: int):
        teacher = make_teacher(self.name, num_envs)
        return teacher if self.every <= 1 else SubsetTeacher(teacher, num_envs, self.every)


def imitation_update(model: ActorCritic, optimizer: torch.optim.Optimizer, batch: SequenceBatch, epochs: int,
                     minibatches: int, vf_coef: float, max_grad_norm: float,
                     generator: torch.Generator | None = None) -> dict[str, float]:
    """Fit the student's mean action to the teacher's labels (and the critic to the returns) over sequences."""
    assert batch.targets is not None, "imitation needs teacher labels in the rollout storage"
    num_seq = batch.obs.shape[1]
    bc_total, v_total, count = 0.0, 0.0, 0
    for _ in range(epochs):
        for idx in torch.randperm(num_seq, generator=generator).chunk(minibatches):
            mb = batch.select(idx)
            mean, value, _ = model(mb.obs, mb.state, mb.episode_starts)
            bc_loss = ((mean - mb.targets) ** 2).sum(-1).mean()
            value_loss = 0.5 * ((value - mb.returns) ** 2).mean()
            loss = bc_loss + vf_coef * value_loss
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
            optimizer.step()
            bc_total += bc_loss.item()
            v_total += value_loss.item()
            count += 1
    return {"imitation_loss": bc_total / count, "value_loss": v_total / count}
