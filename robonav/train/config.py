"""Training settings: the ``train:`` section of a launch file, as typed dataclasses (unknown keys are errors).

Each learner has its own settings type: `PPOTrainConfig` (launch/train.yaml: the ``ppo``, ``imitation`` and ``ray``
sections) and `R2D2TrainConfig` (launch/train_q.yaml, ``algo: r2d2``: the ``r2d2`` and ``q`` sections); both share
`RunConfig`'s run, environment, policy and curriculum fields. `TrainConfig` is their union, tagged by ``algo``:
``load_settings(TrainConfig, launch, section="train")`` builds the one the file's ``algo`` names (``ppo`` when
absent), so a launch file's layout is the same as before the split.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from robonav.errors import UserError
from robonav.policy.actor_critic import PolicyConfig
from robonav.policy.q_network import QConfig
from robonav.settings import from_dict
from robonav.sim.config import RandomizationConfig, SimConfig
from robonav.train.imitation import ImitationConfig
from robonav.train.ppo import PPOConfig
from robonav.train.r2d2.learner import R2D2Config

__all__ = ["ALGOS", "CurriculumConfig", "PPOTrainConfig", "R2D2TrainConfig", "RayConfig", "RunConfig",
           "TrainConfig", "TrainConfigError", "saved_config", "train_config"]

ALGOS = ("ppo", "r2d2")


class TrainConfigError(UserError, ValueError):
    """Training settings that name no learner robonav has, or that the named learner cannot run."""


@dataclass(frozen=True)
class CurriculumConfig:
    """Maze sizes grow as the policy succeeds; every family is drawn at every stage."""

    stages: tuple[tuple[int, int], ...] = ((3, 3), (3, 5), (5, 7), (5, 9))
    """Passage-cell width ranges (inclusive), easiest first; heights are drawn from the same range."""
    promote_success: float = 0.8
    """Move to the next stage when the success rate over the last `window` episodes reaches this."""
    window: int = 200
    """Finished episodes the success rate is computed over."""
    stage_steps: int = 0
    """Also move on after this many environment steps in a stage, whatever the success (0: on success only). In a
    world randomized from easy to very hard episodes the window may never reach ``promote_success``; this cap
    makes sure the run meets the largest mazes within its budget."""


@dataclass(frozen=True)
class RayConfig:
    """Rollouts on a Ray cluster (the `ray:` section; `robonav train --ray ADDRESS` sets ``address``). The PPO
    update is the same as the local trainer's; only where the envs step changes (robonav.train.distributed)."""

    address: str | None = None
    """None: no Ray, the local trainer (`workers` env processes). 'auto': the running cluster this machine belongs
    to (`ray start --head` / `ray start --address ...`); 'local': start a private Ray instance on this machine;
    'HOST:6379' or 'ray://HOST:10001': that cluster (ray.init's address)."""
    workers: int = 2
    """Rollout workers (Ray actors); each steps ppo.num_envs / workers envs in one batched world (train.workers is
    not used under Ray)."""
    num_cpus_per_worker: float = 1.0
    """CPUs Ray reserves for each rollout worker (its torch threads: at least 1)."""
    max_restarts: int = 20
    """Dead workers replaced per sitting before the run stops with an error (a crash loop, not a lost node)."""
    rollout_timeout_s: float = 0.0
    """A worker whose rollout takes longer is killed and replaced, and its rollout dropped (<= 0: wait forever)."""

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise TrainConfigError(f"train.ray.workers must be >= 1, got {self.workers}")
        if self.num_cpus_per_worker <= 0:
            raise TrainConfigError(f"train.ray.num_cpus_per_worker must be > 0, got {self.num_cpus_per_worker}")


def _train_sim() -> SimConfig:
    return SimConfig(observation="preprocessor", randomization=RandomizationConfig(enabled=True))


@dataclass(frozen=True)
class RunConfig:
    """What every learner's run has: its name and folder, its length, seeds and processes, the simulator, the
    policy network and the curriculum. Not used alone: PPOTrainConfig and R2D2TrainConfig add their learner."""

    run: str = "default"
    """Run name: outputs go to <out>/<run>/ (checkpoints, TensorBoard, progress.jsonl)."""
    out: str = "runs"
    """Folder of all runs."""
    total_steps: int = 30_000_000
    """Environment steps to train for (across resumes)."""
    seed: int = 0
    """Seed of everything: envs, policy initialisation, sampling."""
    threads: int = 1
    """torch threads of the learner."""
    workers: int = 2
    """Environment worker processes (0: the envs run in the learner's process)."""
    checkpoint_every: int = 25
    """Updates (R2D2: chunks of r2d2.chunk_steps steps) between checkpoints (last.pt is always the newest)."""
    keep_every: int = 100
    """Also checkpoint and keep a numbered copy (update-NNNNNN.pt; R2D2: chunk-NNNNNN.pt) every this many updates
    or chunks (0: never)."""
    eval_every: int = 0
    """Evaluate the policy greedily on the validation list every this many updates (R2D2: chunks), log
    val_success to progress.jsonl and keep the best so far as best.pt beside last.pt (0: never)."""
    eval_suites: tuple[str, ...] = ("val",)
    """Suites of the validation lists: validation-split suites only (val, val-11x11, val-c0.8, ...), never a
    judged one. Several stand for a world wider than one suite (sizes, corridor widths, families)."""
    eval_episodes: int = 16
    """Episodes of each suite's validation list (the same list every time: seed 0)."""
    eval_conditions: tuple[str, ...] = ("nominal",)
    """Named conditions (robonav.eval.conditions) every validation list runs under, each on the same episodes;
    val_success is the mean over suites and conditions, so the best checkpoint is the best across them."""
    sim: SimConfig = field(default_factory=_train_sim)
    """The simulator the envs run (observation, robot, mazes, randomization)."""
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    """The policy network (encoder, LSTM core)."""
    curriculum: CurriculumConfig = field(default_factory=CurriculumConfig)
    """Maze sizes by stage and the promotion rule."""


@dataclass(frozen=True)
class PPOTrainConfig(RunConfig):
    """Recurrent PPO's settings (launch/train.yaml): the run's, plus `ppo`, the imitation warm start and Ray."""

    algo: Literal["ppo"] = "ppo"
    """The learner: 'ppo' (recurrent PPO); the tag `TrainConfig` is chosen by (absent in a launch file: 'ppo')."""
    ppo: PPOConfig = field(default_factory=PPOConfig)
    """PPO's rollout and update settings."""
    imitation: ImitationConfig = field(default_factory=ImitationConfig)
    """DAgger warm start before PPO (updates: 0 turns it off)."""
    ray: RayConfig = field(default_factory=RayConfig)
    """Rollout workers on a Ray cluster (address None: the local trainer)."""

    def __post_init__(self) -> None:
        _check_algo(self.algo, "ppo")
        _check_eval(self)
        if self.ray.address is not None and self.ppo.num_envs % self.ray.workers:
            raise TrainConfigError(f"train.ppo.num_envs ({self.ppo.num_envs}) must be a multiple of "
                                   f"train.ray.workers ({self.ray.workers}): each worker steps an equal share")


@dataclass(frozen=True)
class R2D2TrainConfig(RunConfig):
    """Recurrent Q-learning's settings (launch/train_q.yaml, ``algo: r2d2``): the run's, plus `r2d2` and `q`."""

    algo: Literal["r2d2"] = "r2d2"
    """The learner: 'r2d2' (recurrent Q-learning from sequence replay)."""
    r2d2: R2D2Config = field(default_factory=R2D2Config)
    """R2D2 learner settings."""
    q: QConfig = field(default_factory=QConfig)
    """Q-network head: the motion primitives and the dueling head."""
    imitation: ImitationConfig = field(default_factory=lambda: ImitationConfig(updates=0))
    """PPO's warm start, read so a launch file may say it is off (train_q.yaml does): updates must be 0 (R2D2's
    demonstrations are r2d2.demo_every and r2d2.demo_teacher)."""

    def __post_init__(self) -> None:
        _check_algo(self.algo, "r2d2")
        _check_eval(self)
        if self.imitation.updates > 0:
            raise TrainConfigError(f"train.imitation.updates={self.imitation.updates}: the imitation warm start is "
                                   "PPO's; set train.imitation.updates=0 for algo r2d2 (launch/train_q.yaml does)")


TrainConfig = PPOTrainConfig | R2D2TrainConfig
"""The ``train:`` section of a launch file: the learner its ``algo`` names (settings.from_dict picks the arm)."""


def _check_eval(cfg: RunConfig) -> None:
    """Refuse evaluation settings that would judge training on a judged suite, or that cannot run."""
    from robonav.sim.suites import SuiteError, parse_suite

    if cfg.curriculum.stage_steps < 0:
        raise TrainConfigError(f"train.curriculum.stage_steps must be >= 0 (0: promote on success only), got "
                               f"{cfg.curriculum.stage_steps}")
    if cfg.eval_every < 0 or cfg.eval_episodes < 1:
        raise TrainConfigError(f"train.eval_every must be >= 0 and train.eval_episodes >= 1, got {cfg.eval_every} "
                               f"and {cfg.eval_episodes}")
    from robonav.eval.conditions import ConditionError, parse_conditions

    if not cfg.eval_suites:
        raise TrainConfigError("train.eval_suites is empty: give at least one validation suite, e.g. [val]")
    for suite in cfg.eval_suites:
        try:
            split = parse_suite(suite).split
        except SuiteError:
            split = None
        if split != "val":
            raise TrainConfigError(f"train.eval_suites: {suite!r} is not a validation suite: picking the best "
                                   "checkpoint on a judged suite (test, hand, a file) would leak it into the "
                                   "judgement; use validation suites, e.g. train.eval_suites=[val,val-11x11]")

    if not cfg.eval_conditions:
        raise TrainConfigError("train.eval_conditions is empty: give at least one condition, e.g. [nominal]")
    try:
        for name in cfg.eval_conditions:  # each its own run, so "nominal" sits beside the others
            parse_conditions(name)
    except ConditionError as e:
        raise TrainConfigError(str(e).replace("--condition", "train.eval_conditions", 1)) from None


def _check_algo(algo: str, own: str) -> None:
    if algo not in ALGOS:
        raise TrainConfigError(f"train.algo must be one of {list(ALGOS)}, got {algo!r}: set train.algo=ppo "
                               "(recurrent PPO) or train.algo=r2d2 (recurrent Q-learning)")
    if algo != own:
        raise TrainConfigError(f"train.algo is {algo!r}, but these are the settings of {own!r}: build them with "
                               "train_config(algo=...) or load_settings(TrainConfig, ...)")


def train_config(**fields: Any) -> PPOTrainConfig | R2D2TrainConfig:
    """The settings of the learner ``fields['algo']`` names ('ppo' when absent), built from ``fields``."""
    algo = fields.get("algo", "ppo")
    if algo not in ALGOS:
        _check_algo(algo, "ppo")
    cls: type[PPOTrainConfig] | type[R2D2TrainConfig] = PPOTrainConfig if algo == "ppo" else R2D2TrainConfig
    return cls(**fields)


C = TypeVar("C", PPOTrainConfig, R2D2TrainConfig)

_OTHER_SECTIONS: dict[type, tuple[str, ...]] = {PPOTrainConfig: ("r2d2", "q"), R2D2TrainConfig: ("ppo", "ray")}
"""Sections of the other learner that checkpoints written before the split carry in their ``config``."""


def saved_config(cls: type[C], data: dict[str, Any], where: str) -> C:
    """The settings a checkpoint's ``config`` holds, as ``cls``; a checkpoint from before the split (one object
    with every learner's sections) drops the other learner's sections, so such a run still resumes."""
    names = {f.name for f in dataclasses.fields(cls)}
    kept = {k: v for k, v in data.items() if k in names or k not in _OTHER_SECTIONS[cls]}
    return from_dict(cls, kept, where)
