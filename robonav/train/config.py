"""Training settings: the `train.yaml` launch file, as typed dataclasses (unknown keys are errors)."""

from __future__ import annotations

from dataclasses import dataclass, field

from robonav.errors import UserError
from robonav.policy.actor_critic import PolicyConfig
from robonav.policy.q_network import QConfig
from robonav.sim.config import RandomizationConfig, SimConfig
from robonav.train.imitation import ImitationConfig
from robonav.train.ppo import PPOConfig
from robonav.train.r2d2.learner import R2D2Config

ALGOS = ("ppo", "r2d2")


class TrainConfigError(UserError, ValueError):
    """Training settings that name no learner robonav has."""


@dataclass(frozen=True)
class CurriculumConfig:
    """Maze sizes grow as the policy succeeds; every family is drawn at every stage."""

    stages: tuple[tuple[int, int], ...] = ((3, 3), (3, 5), (5, 7), (5, 9))
    """Passage-cell width ranges (inclusive), easiest first; heights are drawn from the same range."""
    promote_success: float = 0.8
    """Move to the next stage when the success rate over the last `window` episodes reaches this."""
    window: int = 200
    """Finished episodes the success rate is computed over."""


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
            raise ValueError(f"train.ray.workers must be >= 1, got {self.workers}")
        if self.num_cpus_per_worker <= 0:
            raise ValueError(f"train.ray.num_cpus_per_worker must be > 0, got {self.num_cpus_per_worker}")


def _train_sim() -> SimConfig:
    return SimConfig(observation="preprocessor", randomization=RandomizationConfig(enabled=True))


@dataclass(frozen=True)
class TrainConfig:
    """Everything `robonav train` needs; `train.yaml` holds one of these."""

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
    sim: SimConfig = field(default_factory=_train_sim)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    ppo: PPOConfig = field(default_factory=PPOConfig)
    curriculum: CurriculumConfig = field(default_factory=CurriculumConfig)
    imitation: ImitationConfig = field(default_factory=ImitationConfig)
    algo: str = "ppo"
    """The learner: 'ppo' (recurrent PPO, the `ppo` and `imitation` sections) or 'r2d2' (recurrent Q-learning
    from sequence replay, the `r2d2` and `q` sections; launch/train_q.yaml)."""
    r2d2: R2D2Config = field(default_factory=R2D2Config)
    """R2D2 learner settings (used when algo is 'r2d2')."""
    q: QConfig = field(default_factory=QConfig)
    """Q-network head: the motion primitives and the dueling head (used when algo is 'r2d2')."""
    ray: RayConfig = field(default_factory=RayConfig)
    """Rollout workers on a Ray cluster (PPO only; address None: the local trainer)."""

    def __post_init__(self) -> None:
        if self.algo not in ALGOS:
            raise TrainConfigError(f"train.algo must be one of {list(ALGOS)}, got {self.algo!r}: set "
                                   "train.algo=ppo (recurrent PPO) or train.algo=r2d2 (recurrent Q-learning)")
        if self.ray.address is not None:
            if self.algo != "ppo":
                raise TrainConfigError(f"train.ray.address is set ({self.ray.address!r}) but train.algo is "
                                       f"{self.algo!r}: Ray rollout workers serve recurrent PPO only; set "
                                       "train.algo=ppo or train.ray.address=null")
            if self.ppo.num_envs % self.ray.workers:
                raise TrainConfigError(f"train.ppo.num_envs ({self.ppo.num_envs}) must be a multiple of "
                                       f"train.ray.workers ({self.ray.workers}): each worker steps an equal share")
