"""Recurrent PPO training, top to bottom: make envs and model, then loop rollout -> GAE -> update -> log -> save.

Resume rule (pinned by tests/train/test_resume.py): a checkpoint is taken between updates; right after saving,
and after loading on ``--resume``, every env restarts the episode it was running from that episode's saved
(maze, seed) and the LSTM state starts from zero, so a resumed run makes exactly the update the uninterrupted
run makes.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import signal
import sys
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium.vector import AutoresetMode

from robonav import __version__
from robonav.policy.actor_critic import ActorCritic
from robonav.policy.checkpoint import load_checkpoint, save_checkpoint
from robonav.settings import from_dict, to_dict
from robonav.sim.config import MazeConfig
from robonav.sim.episodes import EpisodeSpec
from robonav.sim.maze import parse_maze
from robonav.train.collector import Collector
from robonav.train.config import TrainConfig
from robonav.train.gae import compute_gae
from robonav.train.imitation import TeacherFactory, imitation_update
from robonav.train.ppo import explained_variance, ppo_update
from robonav.train.storage import RolloutStorage


def make_envs(cfg: TrainConfig):
    """The vector env of a run: one batched world, or ``workers`` processes of them."""
    from robonav.sim.vector import MazeVectorEnv, ProcessVectorEnv

    im, r2 = cfg.imitation, cfg.r2d2
    if cfg.algo == "r2d2":  # the teacher drives R2D2's demonstrators, if any
        n, factory = r2.num_envs, TeacherFactory(r2.demo_teacher, r2.demo_every) if r2.demo_every else None
    else:  # the teacher labels PPO's imitation warm start
        n, factory = cfg.ppo.num_envs, TeacherFactory(im.teacher) if im.updates > 0 else None
    if cfg.workers > 0:
        return ProcessVectorEnv(n, cfg.workers, config=cfg.sim, seed=cfg.seed, teacher_factory=factory)
    return MazeVectorEnv(n, config=cfg.sim, seed=cfg.seed, teacher=factory(n) if factory is not None else None)


def stage_config(cfg: TrainConfig, stage: int) -> MazeConfig:
    lo, hi = cfg.curriculum.stages[stage]
    return dataclasses.replace(cfg.sim.maze, width=(lo, hi), height=(lo, hi))


def policy_meta(cfg: TrainConfig, obs_dim: int, obs_spec: dict | None) -> dict[str, Any]:
    """What deployment needs to rebuild and run the policy without the trainer."""
    rc = cfg.sim.robot
    return {"policy": to_dict(cfg.policy), "obs_dim": obs_dim, "observation_spec": obs_spec,
            "action_limits": [rc.v_max, rc.omega_max], "control_period": cfg.sim.period,
            "observation": cfg.sim.observation, "code_version": __version__}


def _episodes_to_json(eps: list[EpisodeSpec]) -> list[dict]:
    return [{"maze": e.maze.to_text(), "seed": e.seed} for e in eps]


def _episodes_from_json(items: list[dict]) -> list[EpisodeSpec]:
    return [EpisodeSpec(parse_maze(d["maze"], "<checkpoint>"), int(d["seed"])) for d in items]


class _StopOnSignal:
    """SIGINT/SIGTERM end the run after the current update, with a checkpoint (main thread only)."""

    def __init__(self) -> None:
        self.flag = False
        self._old: dict[int, Any] = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._set)

    def _set(self, signum: int, frame: Any) -> None:
        if self.flag:  # a second signal: stop now
            raise KeyboardInterrupt
        self.flag = True
        print("robonav train: stopping after this update (checkpointing); signal again to stop now",
              file=sys.stderr)

    def restore(self) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


class RunLog:
    """What every learner's run does alike (PPO's Trainer, R2D2's QTrainer): the curriculum's promotion rule, the
    progress bar, progress.jsonl and TensorBoard. Needs ``cfg``, ``dir``, ``progress``, ``global_step``,
    ``stage``, ``successes``, ``envs`` and ``_simulated`` on the learner's run object."""

    LOSS_KEYS: tuple[str, ...] = ("policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction")
    """Scalars that TensorBoard groups under losses/ (the rest go under charts/)."""

    cfg: TrainConfig
    dir: Path
    progress: bool
    global_step: int
    stage: int
    successes: deque[float]
    envs: Any
    _simulated: bool

    def save(self) -> Path:
        """Checkpoint to <dir>/last.pt (each learner's own)."""
        raise NotImplementedError

    def _obs_spec(self) -> dict | None:
        """The ObservationSpec (as a dict) the run's observer writes, saved with every checkpoint."""
        from robonav.model.meta import observation_spec

        sim = self.cfg.sim
        spec = observation_spec(sim.observation, sim.preprocessor, sim.robot.v_max, sim.robot.omega_max)
        return None if spec is None else spec.to_dict()

    def _round_done(self, done: int, first: int, max_rounds: int | None, start: float, max_seconds: float | None,
                    interrupted: _StopOnSignal, name: str) -> bool:
        """After round ``done`` (an update, a chunk): checkpoint when due (and keep a numbered copy every
        keep_every rounds); True when the sitting should stop (round or time budget, or a signal)."""
        cfg = self.cfg
        stop = (max_rounds is not None and done - first >= max_rounds) or (
            max_seconds is not None and time.perf_counter() - start >= max_seconds) or interrupted.flag
        keep = cfg.keep_every > 0 and done % cfg.keep_every == 0
        if done % cfg.checkpoint_every == 0 or self.global_step >= cfg.total_steps or stop or keep:
            self.save()
        if keep:
            shutil.copy(self.dir / "last.pt", self.dir / f"{name}-{done:06d}.pt")
        return stop

    def _curriculum(self) -> None:
        cc = self.cfg.curriculum
        if (self.stage + 1 < len(cc.stages) and len(self.successes) == cc.window
                and np.mean(self.successes) >= cc.promote_success):
            self.stage += 1
            self.successes.clear()
            if self._simulated:
                self.envs.set_maze_config(stage_config(self.cfg, self.stage))
            print(f"curriculum: stage {self.stage} {cc.stages[self.stage]} at step {self.global_step}",
                  file=sys.stderr)

    def _writer(self):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # tensorboard is in the [train] extra; progress.jsonl is always written
            return None
        return SummaryWriter(str(self.dir / "tb"))

    def _bar(self):
        if not self.progress:
            return None
        from tqdm import tqdm

        return tqdm(total=self.cfg.total_steps, initial=self.global_step, unit="step", file=sys.stderr,
                    dynamic_ncols=True)

    def _log(self, writer, row: dict[str, float]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.dir / "progress.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")
        if writer is not None:
            for k, v in row.items():
                writer.add_scalar(f"{'losses' if k in self.LOSS_KEYS else 'charts'}/{k}", v, self.global_step)

    @staticmethod
    def _end_sitting(interrupted: _StopOnSignal, bar, writer) -> None:
        """Give the signal handlers back and close the progress bar and the TensorBoard writer."""
        interrupted.restore()
        if bar is not None:
            bar.close()
        if writer is not None:
            writer.close()


class Trainer(RunLog):
    """Holds a run's envs, model, optimiser and counters; ``train()`` runs until ``total_steps``."""

    def __init__(self, cfg: TrainConfig, resume: bool = False, progress: bool = True, envs=None) -> None:
        """``envs``: a ready vector env (SAME_STEP autoreset, normalised actions) instead of the simulator."""
        self.cfg, self.progress = cfg, progress
        self.dir = Path(cfg.out) / cfg.run
        torch.set_num_threads(cfg.threads)
        torch.manual_seed(cfg.seed)
        self.envs = envs if envs is not None else make_envs(cfg)
        mode = self.envs.metadata.get("autoreset_mode")
        if mode != AutoresetMode.SAME_STEP:
            raise ValueError(f"the trainer handles vector envs with autoreset_mode SAME_STEP only, got {mode}: "
                             "final observations are needed to bootstrap truncated episodes")
        self._simulated = hasattr(self.envs, "set_maze_config")
        self.obs_dim = obs_dim = self.envs.single_observation_space.shape[0]
        rc = cfg.sim.robot
        self.model = ActorCritic(obs_dim, cfg.policy, (rc.v_max, rc.omega_max))
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg.ppo.lr, eps=1e-5)
        self.generator = torch.Generator().manual_seed(cfg.seed)
        self.global_step, self.updates, self.stage = 0, 0, 0
        self.successes: deque[float] = deque(maxlen=cfg.curriculum.window)
        self.obs_spec = self._obs_spec()
        self.collector = Collector(self.envs, self.model, cfg.ppo.gamma)  # acts with the learner's own model
        self._rollout_batch: RolloutStorage | None = None
        self._last_value = torch.zeros(0)
        episodes = None
        if resume:
            episodes = self._load(self.dir / "last.pt")
        if self._simulated:
            self.envs.set_maze_config(stage_config(cfg, self.stage))
        self._restart(episodes)

    def _restart(self, episodes: list[EpisodeSpec] | None) -> None:
        """(Re)start every env, at the given episodes if any, with zero LSTM state."""
        self.collector.restart(self.cfg.seed if episodes is None and self.updates == 0 else None, episodes)

    # -- the loop -------------------------------------------------------------------------------------------

    def train(self, max_updates: int | None = None, max_seconds: float | None = None) -> dict[str, float]:
        """Train until total_steps, or stop early after ``max_updates`` updates or ``max_seconds`` (a sitting);
        the run is checkpointed when it stops, so ``--resume`` continues it."""
        cfg, ppo = self.cfg, self.cfg.ppo
        start, first_update = time.perf_counter(), self.updates
        interrupted = _StopOnSignal()
        storage = RolloutStorage(ppo.steps, ppo.num_envs, self.obs_dim, ppo.seq_len,
                                 (self.model.state_layers, cfg.policy.hidden))
        writer = self._writer()
        bar = self._bar()
        last: dict[str, float] = {}
        while self.global_step < cfg.total_steps:
            t0 = time.perf_counter()
            ep_stats = self._rollout(storage)
            rollout = self._rollout_batch  # the storage, or fewer envs when a Ray worker was lost
            assert rollout is not None
            steps = rollout.steps * rollout.num_envs
            t_roll = time.perf_counter() - t0
            losses, returns = self._learn(rollout, self._last_value)
            self.updates += 1
            if self.updates == cfg.imitation.updates:
                self._end_imitation()
            elapsed = time.perf_counter() - t0
            last = {
                "global_step": self.global_step, "update": self.updates, "stage": self.stage,
                "success_rate": float(np.mean(self.successes)) if self.successes else 0.0,
                "steps_per_s": steps / elapsed, "rollout_s": t_roll, "update_s": elapsed - t_roll,
                "explained_variance": explained_variance(rollout.values.flatten(), returns.flatten()),
                "lr": self.optimizer.param_groups[0]["lr"], **ep_stats, **losses,
            }
            self._log(writer, last)
            self._curriculum()
            if bar is not None:
                bar.update(steps)
                bar.set_postfix(sps=f"{last['steps_per_s']:.0f}", success=f"{last['success_rate']:.2f}",
                                stage=self.stage)
            if self._round_done(self.updates, first_update, max_updates, start, max_seconds, interrupted, "update"):
                break
        self._end_sitting(interrupted, bar, writer)
        return last

    def _learn(self, storage: RolloutStorage, last_value: torch.Tensor) -> tuple[dict[str, float], torch.Tensor]:
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

    def _beta(self) -> float:
        im = self.cfg.imitation
        span = im.beta_updates if im.beta_updates > 0 else im.updates
        frac = self.updates / max(1, span - 1)
        return im.beta_start + min(1.0, frac) * (im.beta_end - im.beta_start)

    def _end_imitation(self) -> None:
        with torch.no_grad():
            self.model.log_std.fill_(self.cfg.imitation.log_std)
        self.collector.stop_teacher()
        print(f"imitation: done after {self.updates} updates; PPO from step {self.global_step}", file=sys.stderr)

    def _rollout(self, storage: RolloutStorage) -> dict[str, float]:
        """Fill ``storage`` (the Collector); keep it and its bootstrap value for the update, count the steps and
        the finished episodes. Returns the rollout's episode scalars for the log."""
        stats = self.collector.collect(storage, self.imitating, self._beta())
        self._rollout_batch, self._last_value = storage, stats.last_value
        self.global_step += storage.steps * storage.num_envs
        self.successes.extend(stats.successes)
        return stats.summary()

    def save(self) -> Path:
        """Checkpoint to last.pt (atomically), then restart the episodes in flight (the resume rule)."""
        episodes = self.envs.episodes_in_flight() if self._simulated else None
        meta = {
            **policy_meta(self.cfg, self.obs_dim, self.obs_spec),
            "config": to_dict(self.cfg), "global_step": self.global_step, "updates": self.updates,
            "stage": self.stage, "successes": list(self.successes),
            "torch_rng": torch.get_rng_state().tolist(), "generator": self.generator.get_state().tolist(),
            "env_rngs": self.envs.rng_states() if self._simulated else None,
            "episodes": _episodes_to_json(episodes) if episodes is not None else None,
            **self._extra_meta(),
        }
        path = save_checkpoint(self.dir / "last.pt", self.model.state_dict(), meta, self.optimizer.state_dict())
        self._restart(episodes)
        return path

    def _extra_meta(self) -> dict[str, Any]:
        """More checkpoint meta of a subclass (the Ray learner's worker streams); none for the local trainer."""
        return {}

    def _load(self, path: Path) -> list[EpisodeSpec] | None:
        ck = load_checkpoint(path)
        meta = ck["meta"]
        saved = from_dict(TrainConfig, meta["config"], f"{path}:config")
        if saved.policy != self.cfg.policy or saved.ppo.num_envs != self.cfg.ppo.num_envs:
            raise ValueError(f"{path}: the checkpoint's policy or num_envs differ from the launch file's; resume "
                             "with the launch file the run started with")
        self.model.load_state_dict(ck["model"])
        if ck["optimizer"] is not None:
            self.optimizer.load_state_dict(ck["optimizer"])
        self.global_step, self.updates, self.stage = meta["global_step"], meta["updates"], meta["stage"]
        self.successes.extend(meta["successes"])
        torch.set_rng_state(torch.tensor(meta["torch_rng"], dtype=torch.uint8))
        self.generator.set_state(torch.tensor(meta["generator"], dtype=torch.uint8))
        if self._simulated:
            self.envs.set_rng_states(meta["env_rngs"])
            return _episodes_from_json(meta["episodes"])
        return None

    def close(self) -> None:
        self.envs.close()
