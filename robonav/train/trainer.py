"""Recurrent PPO training, top to bottom: make envs and model, then loop rollout -> GAE -> update -> log -> save.

Resume rule (pinned by tests/train/test_resume.py): a checkpoint is taken between updates; right after saving,
and after loading on ``--resume``, every env restarts the episode it was running from that episode's saved
(maze, seed) and the LSTM state starts from zero, so a resumed run makes exactly the update the uninterrupted
run makes.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import torch
from gymnasium.vector import AutoresetMode

from robonav.policy.actor_critic import ActorCritic
from robonav.policy.checkpoint import load_checkpoint, save_checkpoint
from robonav.settings import to_dict
from robonav.sim.episodes import EpisodeSpec
from robonav.sim.maze import parse_maze
from robonav.train.collector import Collector
from robonav.train.config import PPOTrainConfig, RunConfig, TrainConfigError, saved_config
from robonav.train.gae import compute_gae
from robonav.train.imitation import TeacherFactory, imitation_update
from robonav.train.ppo import explained_variance, ppo_update
from robonav.train.run import Curriculum, RunBook, observation_spec, policy_meta, stage_config
from robonav.train.storage import Rollout, RolloutStorage

__all__ = ["LOSS_KEYS", "Trainer", "episodes_from_json", "episodes_to_json", "make_envs", "policy_meta",
           "stage_config", "vector_env"]

LOSS_KEYS = ("policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction")
"""Row keys logged under TensorBoard's ``losses/`` group (the rest go under ``charts/``)."""


def vector_env(cfg: RunConfig, num_envs: int, teacher: TeacherFactory | None):
    """The vector env of a run: one batched world, or ``cfg.workers`` processes of them; ``teacher`` labels (PPO's
    imitation) or drives (R2D2's demonstrators) where given."""
    from robonav.sim.vector import MazeVectorEnv, ProcessVectorEnv

    if cfg.workers > 0:
        return ProcessVectorEnv(num_envs, cfg.workers, config=cfg.sim, seed=cfg.seed, teacher_factory=teacher)
    return MazeVectorEnv(num_envs, config=cfg.sim, seed=cfg.seed,
                         teacher=teacher(num_envs) if teacher is not None else None)


def make_envs(cfg: PPOTrainConfig):
    """PPO's vector env: ``ppo.num_envs`` envs; the teacher labels the imitation warm start, if there is one."""
    im = cfg.imitation
    return vector_env(cfg, cfg.ppo.num_envs, TeacherFactory(im.teacher) if im.updates > 0 else None)


def episodes_to_json(eps: list[EpisodeSpec]) -> list[dict]:
    """Episodes in flight as a checkpoint keeps them: (maze text, seed)."""
    return [{"maze": e.maze.to_text(), "seed": e.seed} for e in eps]


def episodes_from_json(items: list[dict]) -> list[EpisodeSpec]:
    """The inverse of `episodes_to_json`."""
    return [EpisodeSpec(parse_maze(d["maze"], "<checkpoint>"), int(d["seed"])) for d in items]


class Trainer:
    """Holds a run's envs, model, optimiser, counters and bookkeeping (a RunBook, a Curriculum); ``train()`` runs
    until ``total_steps``. Where the rollouts come from is `collect` (the Ray trainer's override)."""

    def __init__(self, cfg: PPOTrainConfig, resume: bool = False, progress: bool = True, envs=None) -> None:
        """``envs``: a ready vector env (SAME_STEP autoreset, normalised actions) instead of the simulator."""
        if not isinstance(cfg, PPOTrainConfig):
            raise TrainConfigError(f"the PPO trainer takes PPOTrainConfig, got {type(cfg).__name__} (train.algo="
                                   f"{getattr(cfg, 'algo', None)!r}): use robonav.train.q_trainer.QTrainer for r2d2")
        self.cfg = cfg
        self.book = RunBook(cfg, LOSS_KEYS, "update", progress)
        torch.set_num_threads(cfg.threads)
        torch.manual_seed(cfg.seed)
        self.envs = envs if envs is not None else make_envs(cfg)
        mode = self.envs.metadata.get("autoreset_mode")
        if mode != AutoresetMode.SAME_STEP:
            raise ValueError(f"the trainer handles vector envs with autoreset_mode SAME_STEP only, got {mode}: "
                             "final observations are needed to bootstrap truncated episodes")
        self.simulated = hasattr(self.envs, "set_maze_config")
        """True for robonav's simulator (curriculum, episodes in flight and env RNGs are checkpointed)."""
        self.obs_dim = obs_dim = self.envs.single_observation_space.shape[0]
        rc = cfg.sim.robot
        self.model = ActorCritic(obs_dim, cfg.policy, (rc.v_max, rc.omega_max))
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg.ppo.lr, eps=1e-5)
        self.generator = torch.Generator().manual_seed(cfg.seed)
        self.global_step, self.updates = 0, 0
        self.curriculum = Curriculum(cfg)
        self.obs_spec = observation_spec(cfg)
        self.collector = Collector(self.envs, self.model, cfg.ppo.gamma)  # acts with the learner's own model
        episodes = None
        if resume:
            episodes = self.load(self.book.last)
            if 0 < cfg.imitation.updates <= self.updates:  # resumed after the warm start: no labels to pay for
                self.collector.stop_teacher()
        if self.simulated:
            self.envs.set_maze_config(self.curriculum.maze())
        self.restart_envs(episodes)

    @property
    def dir(self) -> Path:
        """The run's folder, <out>/<run>/."""
        return self.book.dir

    def restart_envs(self, episodes: list[EpisodeSpec] | None) -> None:
        """(Re)start every env, at the given episodes if any, with zero LSTM state."""
        self.collector.restart(self.cfg.seed if episodes is None and self.updates == 0 else None, episodes)

    # -- the loop -------------------------------------------------------------------------------------------

    def train(self, max_updates: int | None = None, max_seconds: float | None = None) -> dict[str, float]:
        """Train until total_steps, or stop early after ``max_updates`` updates or ``max_seconds`` (a sitting);
        the run is checkpointed when it stops, so ``--resume`` continues it."""
        cfg, ppo = self.cfg, self.cfg.ppo
        storage = RolloutStorage(ppo.steps, ppo.num_envs, self.obs_dim, ppo.seq_len,
                                 (self.model.state_layers, cfg.policy.hidden))
        last: dict[str, float] = {}
        with self.book.sitting(self.global_step, self.updates, max_updates, max_seconds) as sitting:
            while self.global_step < cfg.total_steps:
                t0 = time.perf_counter()
                rollout = self.collect(storage)  # the storage, or fewer envs when a Ray worker was lost
                self.global_step += rollout.steps
                self.curriculum.record(rollout.successes)
                t_roll = time.perf_counter() - t0
                losses, returns = self.learn(rollout.storage, rollout.last_value)
                self.updates += 1
                if self.updates == cfg.imitation.updates:
                    self._end_imitation()
                elapsed = time.perf_counter() - t0
                last = {
                    "global_step": self.global_step, "update": self.updates, "stage": self.curriculum.stage,
                    "success_rate": self.curriculum.success_rate,
                    "steps_per_s": rollout.steps / elapsed, "rollout_s": t_roll, "update_s": elapsed - t_roll,
                    "explained_variance": explained_variance(rollout.storage.values.flatten(), returns.flatten()),
                    "lr": self.optimizer.param_groups[0]["lr"], **rollout.stats, **losses,
                }
                sitting.log(last, self.global_step)
                if self.curriculum.promote(self.global_step) and self.simulated:
                    self.envs.set_maze_config(self.curriculum.maze())
                sitting.advance(rollout.steps, sps=f"{last['steps_per_s']:.0f}",
                                success=f"{last['success_rate']:.2f}", stage=self.curriculum.stage)
                if sitting.round_done(self.updates, self.global_step, self.save):
                    break
        return last

    def collect(self, storage: RolloutStorage) -> Rollout:
        """One rollout of every env into ``storage`` (the Collector, acting with the learner's model) and its
        bootstrap values, finished episodes and log scalars."""
        stats = self.collector.collect(storage, self.imitating, self.beta())
        return Rollout(storage, stats.last_value, list(stats.successes), stats.summary())

    def learn(self, storage: RolloutStorage, last_value: torch.Tensor) -> tuple[dict[str, float], torch.Tensor]:
        """One update from complete rollouts: GAE, the annealed learning rate, the PPO (or imitation) epochs,
        then the normaliser's statistics (frozen during rollout and update). Returns (losses, returns)."""
        cfg, ppo = self.cfg, self.cfg.ppo
        advantages, returns = compute_gae(storage.rewards, storage.values, storage.dones, last_value,
                                          ppo.gamma, ppo.lam)
        frac = min(1.0, self.global_step / cfg.total_steps)
        for g in self.optimizer.param_groups:
            g["lr"] = ppo.lr + frac * (ppo.lr_final - ppo.lr)
        batch = storage.sequences(advantages, returns)
        if self.imitating:
            losses = imitation_update(self.model, self.optimizer, batch, ppo.epochs, ppo.minibatches,
                                      ppo.vf_coef, ppo.max_grad_norm, self.generator)
        else:
            losses = ppo_update(self.model, self.optimizer, batch, ppo, self.generator)
        self.model.normalizer.update(storage.obs)
        return losses, returns

    @property
    def imitating(self) -> bool:
        """True during the imitation warm start (the first ``imitation.updates`` updates)."""
        return self.updates < self.cfg.imitation.updates

    def beta(self) -> float:
        """Probability that the teacher's action is executed in this update's rollout (imitation only)."""
        im = self.cfg.imitation
        span = im.beta_updates if im.beta_updates > 0 else im.updates
        frac = self.updates / max(1, span - 1)
        return im.beta_start + min(1.0, frac) * (im.beta_end - im.beta_start)

    def _end_imitation(self) -> None:
        with torch.no_grad():
            self.model.log_std.fill_(self.cfg.imitation.log_std)
        self.collector.stop_teacher()
        print(f"imitation: done after {self.updates} updates; PPO from step {self.global_step}", file=sys.stderr)

    # -- checkpoints ----------------------------------------------------------------------------------------

    def save(self) -> Path:
        """Checkpoint to last.pt (atomically). The episodes in flight run on untouched: a resumed run restarts them
        from their saved (maze, seed) with zero LSTM state (the resume rule). Restarting them here instead would
        make resume exact, but no episode longer than the checkpoint period could ever end (docs/training.md)."""
        episodes = self.envs.episodes_in_flight() if self.simulated else None
        meta = {
            **policy_meta(self.cfg, self.obs_dim, self.obs_spec),
            "config": to_dict(self.cfg), "global_step": self.global_step, "updates": self.updates,
            **self.curriculum.state(),
            "torch_rng": torch.get_rng_state().tolist(), "generator": self.generator.get_state().tolist(),
            "env_rngs": self.envs.rng_states() if self.simulated else None,
            "episodes": episodes_to_json(episodes) if episodes is not None else None,
            **self.extra_meta(),
        }
        return save_checkpoint(self.book.last, self.model.state_dict(), meta, self.optimizer.state_dict())

    def extra_meta(self) -> dict[str, Any]:
        """More checkpoint meta where the rollouts come from elsewhere (the Ray workers' streams); none here."""
        return {}

    def load(self, path: Path) -> list[EpisodeSpec] | None:
        """Continue from checkpoint ``path``: weights, optimiser, counters, curriculum, RNG streams; returns the
        episodes in flight to restart (None outside the simulator)."""
        ck = load_checkpoint(path)
        meta = ck["meta"]
        saved = saved_config(PPOTrainConfig, meta["config"], f"{path}:config")
        if saved.policy != self.cfg.policy or saved.ppo.num_envs != self.cfg.ppo.num_envs:
            raise TrainConfigError(f"{path}: the checkpoint's policy or num_envs differ from the launch file's; "
                                   "resume with the launch file the run started with")
        self.model.load_state_dict(ck["model"])
        if ck["optimizer"] is not None:
            self.optimizer.load_state_dict(ck["optimizer"])
        self.global_step, self.updates = meta["global_step"], meta["updates"]
        self.curriculum.load(meta["stage"], meta["successes"], meta.get("stage_start", 0))
        torch.set_rng_state(torch.tensor(meta["torch_rng"], dtype=torch.uint8))
        self.generator.set_state(torch.tensor(meta["generator"], dtype=torch.uint8))
        if self.simulated:
            self.envs.set_rng_states(meta["env_rngs"])
            return episodes_from_json(meta["episodes"])
        return None

    def close(self) -> None:
        self.envs.close()
