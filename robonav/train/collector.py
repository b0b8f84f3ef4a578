"""PPO's acting half: a vector env, a policy to act with, and the per-env state between rollouts.

`Collector.collect(storage)` runs ``ppo.steps`` steps of every env and fills a `RolloutStorage` (obs, episode
starts, the LSTM state at each sequence start, actions, logprobs, values, rewards with time-limit truncations
bootstrapped, dones, and teacher labels while imitating), then returns what the learner needs besides the storage:
the value of the observation after the rollout (for GAE) and the finished episodes' statistics.

The local `Trainer` owns one Collector acting with the learner's own model; a Ray rollout worker
(robonav.train.distributed) owns one acting with a copy that the learner overwrites every update. Sampling uses
``generator`` when given (a Ray worker's own stream) and the global torch RNG otherwise (the local trainer, whose
RNG state is checkpointed).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from robonav.policy.actor_critic import ActorCritic
from robonav.sim.episodes import EpisodeSpec
from robonav.train.gae import bootstrap_truncations
from robonav.train.storage import RolloutStorage


@dataclass
class RolloutStats:
    """What one rollout gives the learner besides the storage."""

    last_value: torch.Tensor
    """V(obs after the last step) [N], with the state and episode starts of that step: GAE's bootstrap."""
    successes: list[float] = field(default_factory=list)
    """1.0 / 0.0 per finished episode, in the order they finished (the curriculum's window)."""
    lengths: list[float] = field(default_factory=list)
    """Steps of each finished episode."""
    spl: list[float] = field(default_factory=list)
    """SPL of each finished episode."""

    def summary(self) -> dict[str, float]:
        """The rollout's episode scalars for the log: episodes, and their mean steps and SPL when any finished."""
        out = {"episodes": float(len(self.lengths))}
        if self.lengths:
            out.update(episode_steps=float(np.mean(self.lengths)), spl=float(np.mean(self.spl)))
        return out


class Collector:
    """Acts in ``envs`` (SAME_STEP autoreset, normalised actions) with ``model``; keeps obs, LSTM state and episode
    starts between rollouts, so consecutive rollouts continue the same episodes."""

    def __init__(self, envs: Any, model: ActorCritic, gamma: float,
                 generator: torch.Generator | None = None) -> None:
        """``gamma`` discounts the bootstrapped value of truncated episodes; ``generator`` draws the action noise
        and the DAgger coin (None: the global torch RNG)."""
        self.envs, self.model, self.gamma, self.generator = envs, model, gamma, generator
        self.num_envs = int(envs.num_envs)
        self.obs = torch.zeros(0)
        self.state = model.initial_state(self.num_envs)
        self.episode_starts = torch.ones(self.num_envs)
        self.teacher_action: torch.Tensor | None = None

    def restart(self, seed: int | None = None, episodes: list[EpisodeSpec] | None = None) -> None:
        """(Re)start every env (at ``episodes`` if given, rebuilding the world as a fresh process would) with a
        zero LSTM state; ``seed`` reseeds the envs' episode draws (the first start of a run)."""
        opts = None if episodes is None else {"episodes": episodes, "rebuild": True}
        obs, info = self.envs.reset(seed=seed, options=opts)
        self.obs = torch.as_tensor(obs)
        self.teacher_action = torch.as_tensor(info["teacher_action"]) if "teacher_action" in info else None
        self.state = self.model.initial_state(self.num_envs)
        self.episode_starts = torch.ones(self.num_envs)

    def stop_teacher(self) -> None:
        """Imitation is over: the envs stop labelling and the collector forgets the last label."""
        if hasattr(self.envs, "set_teacher_enabled"):
            self.envs.set_teacher_enabled(False)
        self.teacher_action = None

    def collect(self, storage: RolloutStorage, imitating: bool = False, beta: float = 0.0) -> RolloutStats:
        """Fill ``storage`` (cleared first) with ``storage.steps`` steps of every env.

        ``imitating``: DAgger: the teacher's action is executed with probability ``beta``, the student's
        deterministic mean action otherwise, and the teacher's labels are stored.
        """
        storage.clear()
        stats = RolloutStats(last_value=torch.zeros(0))
        model, gen = self.model, self.generator
        for _ in range(storage.steps):
            with torch.no_grad():
                mean, value, new_state = model.act(self.obs, self.state, self.episode_starts)
                dist = model.distribution(mean)
                actions = torch.normal(dist.loc, dist.scale, generator=gen)  # = dist.sample() when gen is None
                targets = self.teacher_action
                if imitating:  # DAgger: the deterministic student (what gets deployed) or, with prob. beta, the teacher
                    assert targets is not None, "imitation needs envs that report teacher_action"
                    use_teacher = torch.rand(len(actions), generator=gen) < beta
                    actions = torch.where(use_teacher[:, None], targets, mean.clamp(-1.0, 1.0))
                logprobs = dist.log_prob(actions).sum(-1)
            obs, reward, terminated, truncated, info = self.envs.step(actions.numpy())
            if "teacher_action" in info:
                self.teacher_action = torch.as_tensor(info["teacher_action"])
            reward = torch.as_tensor(reward, dtype=torch.float32)
            if truncated.any():  # bootstrap time limits from the final observation (same state, same step)
                idx = torch.as_tensor(np.flatnonzero(truncated))
                final = torch.as_tensor(info["final_obs"][truncated])
                with torch.no_grad():
                    _, v_final, _ = model.act(final, new_state.select(idx), torch.zeros(len(idx)))
                reward = bootstrap_truncations(reward, idx, v_final, self.gamma)
            dones = torch.as_tensor(terminated | truncated, dtype=torch.float32)
            storage.add(self.obs, self.episode_starts, self.state, actions, logprobs, value, reward, dones,
                        targets if imitating else None)
            self.obs, self.state, self.episode_starts = torch.as_tensor(obs), new_state, dones
            if "final_info" in info:
                fi = info["final_info"]
                for i in np.flatnonzero(info["_final_info"]):
                    ok = float(fi["is_success"][i])
                    stats.successes.append(ok)
                    stats.lengths.append(float(fi["episode_steps"][i]))
                    stats.spl.append(ok * fi["shortest_path_length"][i] / max(fi["path_length"][i],
                                                                              fi["shortest_path_length"][i]))
        with torch.no_grad():
            _, stats.last_value, _ = model.act(self.obs, self.state, self.episode_starts)
        return stats
