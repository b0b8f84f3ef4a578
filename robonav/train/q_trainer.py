"""R2D2 training as `robonav train` runs it (``algo: r2d2``), with PPO's trainer outward behaviour.

Top to bottom: make the envs (``r2d2.num_envs`` of them) and the learner (robonav.train.r2d2.learner), then loop
in chunks of ``r2d2.chunk_steps`` environment steps: act + learn -> curriculum -> log (progress.jsonl,
TensorBoard, tqdm) -> checkpoint every ``checkpoint_every`` chunks and when the run stops.

Resume rule, as in PPO: a checkpoint leaves the running episodes alone; a resumed run restarts each env's episode
in flight from the saved (maze, seed) with a zero state. The replay's contents are NOT in
last.pt (about 1 GB at the default capacity): a resumed run refills, i.e. starts with an empty replay and acts
``r2d2.warmup_steps`` more steps with the loaded online network before learning again; weights, target network,
optimiser, counters, the curriculum and every RNG stream (actor, replay sampling, torch, env episode draws)
continue exactly.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from robonav.errors import UserError
from robonav.policy.checkpoint import load_checkpoint, save_checkpoint
from robonav.settings import to_dict
from robonav.train.config import R2D2TrainConfig, saved_config
from robonav.train.imitation import TeacherFactory
from robonav.train.r2d2.learner import STATE_FORMAT, R2D2Learner
from robonav.train.run import Curriculum, RunBook, observation_spec, policy_meta
from robonav.train.trainer import vector_env

LOSS_KEYS = ("loss", "q_mean", "discrepancy_first", "discrepancy_last", "param_lag")
"""Row keys logged under TensorBoard's ``losses/`` group (the rest go under ``charts/``)."""


class QTrainerError(UserError, ValueError):
    """Settings or a checkpoint the R2D2 trainer cannot run or resume with."""


def make_q_envs(cfg: R2D2TrainConfig):
    """R2D2's vector env: ``r2d2.num_envs`` envs; the teacher drives every ``r2d2.demo_every``-th one, if set."""
    r2 = cfg.r2d2
    return vector_env(cfg, r2.num_envs, TeacherFactory(r2.demo_teacher, r2.demo_every) if r2.demo_every else None)


class QTrainer:
    """Holds an R2D2 run's envs, learner and bookkeeping (a RunBook, a Curriculum); ``train()`` runs until
    ``total_steps``."""

    def __init__(self, cfg: R2D2TrainConfig, resume: bool = False, progress: bool = True, envs: Any = None) -> None:
        """``envs``: a ready vector env (SAME_STEP autoreset, normalised actions) instead of the simulator."""
        if not isinstance(cfg, R2D2TrainConfig):
            raise QTrainerError(f"QTrainer trains algo 'r2d2', got train.algo={getattr(cfg, 'algo', None)!r}: use "
                                "robonav.train.trainer.Trainer for PPO")
        self.cfg = cfg
        self.book = RunBook(cfg, LOSS_KEYS, "chunk", progress)
        torch.set_num_threads(cfg.threads)  # two threads on a shared 2-core machine made the LSTM ~30x slower
        torch.manual_seed(cfg.seed)
        if envs is None:
            envs = make_q_envs(cfg)
        self.envs = envs
        self.simulated = hasattr(envs, "set_maze_config")
        """True for robonav's simulator (the curriculum sets its mazes)."""
        self.chunks = 0
        self.wall_s = 0.0
        self.curriculum = Curriculum(cfg)
        if self.simulated:
            envs.set_maze_config(self.curriculum.maze())
        rc = cfg.sim.robot
        self.learner = R2D2Learner(envs, cfg.r2d2, cfg.policy, cfg.q, (rc.v_max, rc.omega_max), cfg.seed)
        self.obs_dim = int(envs.single_observation_space.shape[0])
        self.obs_spec = observation_spec(cfg)
        if resume:
            self.load(self.book.last)

    @property
    def dir(self) -> Path:
        """The run's folder, <out>/<run>/."""
        return self.book.dir

    @property
    def global_step(self) -> int:
        """Environment steps of the run (all envs, across sittings): the learner's count."""
        return self.learner.env_steps

    # -- the loop -------------------------------------------------------------------------------------------

    def train(self, max_seconds: float | None = None, max_chunks: int | None = None) -> dict[str, float]:
        """Train until total_steps, or stop early after ``max_chunks`` chunks or ``max_seconds`` (a sitting);
        the run is checkpointed when it stops, so ``--resume`` continues it."""
        cfg = self.cfg
        last: dict[str, float] = {}
        with self.book.sitting(self.global_step, self.chunks, max_chunks, max_seconds) as sitting:
            while self.global_step < cfg.total_steps:
                t0, step0 = time.perf_counter(), self.global_step
                if cfg.r2d2.lr_schedule == "linear":  # a function of the step count: a resumed run continues it
                    self.learner.set_lr(cfg.r2d2.lr * max(0.0, 1.0 - self.global_step / cfg.total_steps))
                out = self.learner.train(min(cfg.r2d2.chunk_steps, cfg.total_steps - self.global_step))
                self.chunks += 1
                self.curriculum.record(self.learner.finished)
                self.learner.finished.clear()
                self.wall_s += time.perf_counter() - t0
                last = {"global_step": self.global_step, "chunk": self.chunks, "wall_s": self.wall_s,
                        "stage": self.curriculum.stage, "success_rate": self.curriculum.success_rate,
                        "epsilon": float(np.mean(self.learner.epsilons)),
                        "lr": float(self.learner.optimizer.param_groups[0]["lr"]), **{
                            k: v for k, v in out.items() if k not in ("env_steps", "success_rate")}}
                sitting.log(last, self.global_step)
                if self.curriculum.promote(self.global_step) and self.simulated:
                    self.envs.set_maze_config(self.curriculum.maze())
                sitting.advance(self.global_step - step0, sps=f"{out['steps_per_s']:.0f}",
                                success=f"{last['success_rate']:.2f}", stage=self.curriculum.stage,
                                replay=int(out["replay_size"]))
                if sitting.round_done(self.chunks, self.global_step, self.save):
                    break
        return last

    # -- checkpoints ----------------------------------------------------------------------------------------

    def save(self) -> Path:
        """Checkpoint to last.pt atomically, without the replay's contents (module docstring)."""
        state = self.learner.state_dict(include_replay=False)
        env = state["env"] or {"episodes": None, "rng_states": None}
        c = state["counters"]
        meta = {
            "algo": "r2d2", **policy_meta(self.cfg, self.obs_dim, self.obs_spec), "q": to_dict(self.cfg.q),
            "config": to_dict(self.cfg), "global_step": c["env_steps"], "updates": c["updates"],
            "episodes_finished": c["episodes"], "chunks": self.chunks, "wall_s": self.wall_s,
            **self.curriculum.state(), "learner_successes": state["successes"],
            "learner_rng": state["rng"], "replay_rng": state["replay_rng"],
            "torch_rng": state["torch_rng"].tolist(), "env_rngs": env["rng_states"], "episodes": env["episodes"],
        }
        rest = {"format": state["format"], "config": state["config"], "target": state["target"],
                "optimizer": state["optimizer"]}
        return save_checkpoint(self.book.last, state["online"], meta, rest)

    def load(self, path: Path) -> None:
        """Continue from checkpoint ``path``: weights, target, optimiser, counters, curriculum and every RNG
        stream; the replay refills (module docstring)."""
        ck = load_checkpoint(path)
        meta, rest = ck["meta"], ck["optimizer"]
        if meta.get("algo") != "r2d2" or not isinstance(rest, dict) or rest.get("format") != STATE_FORMAT:
            raise QTrainerError(f"{path}: not an R2D2 training checkpoint (algo {meta.get('algo', 'ppo')!r}"
                                f"{', no learner state' if not isinstance(rest, dict) else ''}): resume a run "
                                "with the algo it started with, or start a new run name")
        saved = saved_config(R2D2TrainConfig, meta["config"], f"{path}:config")
        differ = [k for k in ("policy", "q", "r2d2") if getattr(saved, k) != getattr(self.cfg, k)]
        if differ:
            raise QTrainerError(f"{path}: the checkpoint's {', '.join(differ)} settings differ from the launch "
                                "file's; resume with the launch file the run started with")
        self.chunks, self.wall_s = int(meta["chunks"]), float(meta["wall_s"])
        self.curriculum.load(meta["stage"], meta["successes"], meta.get("stage_start", 0))
        if self.simulated:
            self.envs.set_maze_config(self.curriculum.maze())
        env = None if meta["episodes"] is None else {"episodes": meta["episodes"], "rng_states": meta["env_rngs"]}
        self.learner.load_state_dict({
            "format": rest["format"], "config": rest["config"], "online": ck["model"], "target": rest["target"],
            "optimizer": rest["optimizer"],
            "counters": {"env_steps": meta["global_step"], "updates": meta["updates"],
                         "episodes": meta["episodes_finished"]},
            "successes": meta["learner_successes"], "rng": meta["learner_rng"], "replay_rng": meta["replay_rng"],
            "torch_rng": torch.tensor(meta["torch_rng"], dtype=torch.uint8), "env": env,
        })  # no "replay": the learner refills

    def close(self) -> None:
        self.envs.close()
