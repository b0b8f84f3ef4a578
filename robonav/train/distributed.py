"""Recurrent PPO with its rollouts on a Ray cluster: rollout workers are Ray actors, the learner stays one process.

Each update the learner puts its weights in Ray's object store once (one object, whatever the worker count),
every `RolloutWorker` loads them into its acting copy and fills a rollout with its `Collector` (a batched
MazeVectorEnv of ``ppo.num_envs / ray.workers`` envs), and the learner concatenates the finished rollouts along
the env axis (worker order) and runs the local trainer's update unchanged (`Trainer.learn`: GAE, PPO or
imitation epochs, normaliser statistics), its curriculum, log and checkpoints. The hand-off is typed: the
DistributedTrainer's `collect` returns the joined rollouts as a `Rollout`, as the local Collector's does.

Worker ``w`` steps envs ``[w * k, (w + 1) * k)`` with env seed ``seed + w``, as ProcessVectorEnv's processes do,
and samples actions from its own torch.Generator (`worker_seeds`). A worker that dies (or outlives
``ray.rollout_timeout_s``) loses its rollout for that update, never part of one: the update uses the complete
rollouts of the others, a replacement (fresh seeds from seed, worker index and restart count) joins the next
update, and the restart is logged. If every worker is lost, the rollout is retried, never an update on nothing.

Resume: last.pt has the local trainer's format plus each worker's action-sampling stream and restart count. A run
resumed with the same ``ray.workers`` and no worker lost makes exactly the updates the uninterrupted run makes
(episodes in flight restart at every checkpoint, as locally). Otherwise (another worker count, a local
checkpoint, a replacement) the sampling streams start fresh: statistically the same run, not the same numbers.

Only this module (and robonav.eval.distributed, the benchmark and the Tune example) imports ray; it is imported
only when ``train.ray.address`` is set.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import numpy as np
import ray
import torch
from gymnasium.vector import AutoresetMode
from ray.exceptions import ObjectLostError, RayActorError

from robonav.errors import UserError
from robonav.policy.actor_critic import ActorCritic
from robonav.policy.checkpoint import load_checkpoint
from robonav.sim.config import MazeConfig
from robonav.sim.episodes import EpisodeSpec
from robonav.train.collector import Collector
from robonav.train.config import PPOTrainConfig, TrainConfigError
from robonav.train.run import stage_config
from robonav.train.storage import Rollout, RolloutStorage
from robonav.train.trainer import Trainer

LOST = (RayActorError, ObjectLostError)
"""What a lost worker raises when its result is fetched: the actor died, its node went away, its result is gone."""

ARRAYS = ("obs", "actions", "logprobs", "values", "rewards", "dones", "episode_starts", "targets")
"""RolloutStorage fields a worker sends, each [T, n, ...] (then seq_h, seq_c [K, L, n, H])."""


class WorkerRestartError(UserError, RuntimeError):
    """Rollout workers died more often than ``train.ray.max_restarts`` allows in one sitting."""


def worker_seeds(seed: int, worker: int, restart: int) -> tuple[int, int]:
    """(env seed, action-sampling seed) of worker ``worker``'s ``restart``-th replacement (0: the first one).

    The first incarnation's envs get ``seed + worker`` (ProcessVectorEnv's rule, so one worker steps the envs a
    local run steps); replacements draw both from ``SeedSequence([seed, worker, restart])``.
    """
    env_seed, torch_seed = np.random.SeedSequence([seed, worker, restart]).generate_state(2)
    return (seed + worker if restart == 0 else int(env_seed & 0x7FFF_FFFF)), int(torch_seed)


class RolloutWorker:
    """One Ray actor: a MazeVectorEnv of ``num_envs / workers`` envs and a Collector with an acting copy of the
    policy. Plain class; `WorkerPool` makes it a Ray actor (``ray.remote(RolloutWorker)``)."""

    def __init__(self, cfg: PPOTrainConfig, worker: int, restart: int, maze: MazeConfig, teacher: bool) -> None:
        from robonav.sim.vector import MazeVectorEnv
        from robonav.train.imitation import make_teacher

        torch.set_num_threads(max(1, int(cfg.ray.num_cpus_per_worker)))
        self.worker, self.incarnation = worker, restart
        n = cfg.ppo.num_envs // cfg.ray.workers
        self.env_seed, torch_seed = worker_seeds(cfg.seed, worker, restart)
        envs = MazeVectorEnv(n, config=cfg.sim, seed=self.env_seed,
                             teacher=make_teacher(cfg.imitation.teacher, n) if teacher else None)
        envs.set_maze_config(maze)
        rc = cfg.sim.robot
        model = ActorCritic(envs.sim.observers[0].dim, cfg.policy, (rc.v_max, rc.omega_max))
        self.collector = Collector(envs, model, cfg.ppo.gamma, torch.Generator().manual_seed(torch_seed))
        ppo = cfg.ppo
        self.storage = RolloutStorage(ppo.steps, n, model.obs_dim, ppo.seq_len, (model.state_layers,
                                                                                 cfg.policy.hidden))

    def restart(self, reseed: bool, episodes: list[EpisodeSpec] | None) -> None:
        """Restart every env (at ``episodes`` if given; ``reseed``: from the worker's env seed)."""
        self.collector.restart(self.env_seed if reseed else None, episodes)

    def rollout(self, weights: dict[str, np.ndarray], imitating: bool, beta: float) -> dict[str, Any]:
        """Act one rollout with ``weights``: the storage's arrays, the bootstrap value and the finished episodes."""
        model = self.collector.model
        model.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in weights.items()})
        stats = self.collector.collect(self.storage, imitating, beta)
        s = self.storage
        out: dict[str, Any] = {k: getattr(s, k).numpy() for k in ARRAYS if k != "targets" or imitating}
        out.update(seq_h=s.seq_h.numpy(), seq_c=s.seq_c.numpy(), last_value=stats.last_value.numpy(),
                   successes=stats.successes, lengths=stats.lengths, spl=stats.spl)
        return out

    def call(self, name: str, *args: Any) -> Any:
        """The env's or collector's method ``name`` (curriculum, teacher switch, resume state)."""
        if name == "stop_teacher":
            return self.collector.stop_teacher()
        if name == "generator_state":
            assert self.collector.generator is not None
            return self.collector.generator.get_state().numpy().tolist()
        if name == "set_generator_state":
            assert self.collector.generator is not None
            return self.collector.generator.set_state(torch.tensor(args[0], dtype=torch.uint8))
        return getattr(self.collector.envs, name)(*args)


class WorkerPool:
    """The rollout workers, behind the vector-env methods the Trainer calls (curriculum, teacher switch, resume
    state), so its save/load and curriculum code run unchanged. Replaces lost workers."""

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP}  # noqa: RUF012

    def __init__(self, cfg: PPOTrainConfig, worker_cls: type[RolloutWorker] = RolloutWorker) -> None:
        """``worker_cls``: the actor class (a RolloutWorker subclass, e.g. one that stalls on purpose in tests)."""
        import gymnasium as gym

        from robonav.sim.observation import make_observer

        self.cfg, self.num_envs, self.workers = cfg, cfg.ppo.num_envs, cfg.ray.workers
        rc = cfg.sim.robot
        o = make_observer(cfg.sim.observation, rc.v_max, rc.omega_max, cfg.sim.preprocessor)
        self.single_observation_space = gym.spaces.Box(o.low, o.high, (o.dim,), np.float32)
        self.maze, self.teacher = stage_config(cfg, 0), cfg.imitation.updates > 0
        self.restarts = [0] * self.workers
        self.replaced = 0  # in this sitting: bounded by ray.max_restarts
        self.lost = 0  # since the last rollout() (the log's workers_lost)
        self._remote = ray.remote(worker_cls).options(num_cpus=cfg.ray.num_cpus_per_worker, max_restarts=0)
        self.actors = [self._spawn(w) for w in range(self.workers)]

    def _spawn(self, w: int) -> Any:
        return self._remote.remote(self.cfg, w, self.restarts[w], self.maze, self.teacher)

    def _replace(self, w: int, why: str) -> None:
        """Kill worker ``w`` (if it still runs) and start its replacement with fresh seeds; its envs start anew."""
        self.replaced += 1
        self.lost += 1
        if self.replaced > self.cfg.ray.max_restarts:
            raise WorkerRestartError(
                f"ray: worker {w} lost ({why}), the {self.replaced}th loss in this sitting, over "
                f"train.ray.max_restarts={self.cfg.ray.max_restarts}: workers keep dying (see their logs with "
                "`ray logs` or the dashboard); fix the cause, or raise train.ray.max_restarts")
        try:
            ray.kill(self.actors[w], no_restart=True)
        except Exception:  # already gone
            pass
        self.restarts[w] += 1
        self.actors[w] = self._spawn(w)
        self.actors[w].restart.remote(True, None)
        print(f"ray: worker {w} lost ({why}); started replacement {self.restarts[w]} with env seed "
              f"{worker_seeds(self.cfg.seed, w, self.restarts[w])[0]}", file=sys.stderr)

    def _gather(self, refs: dict[Any, int], timeout: float | None = None) -> dict[int, Any]:
        """Results by worker of ``refs`` (ref -> worker); lost workers are replaced and left out."""
        out: dict[int, Any] = {}
        pending = list(refs)
        deadline = None if timeout is None else time.monotonic() + timeout
        while pending:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready, pending = ray.wait(pending, num_returns=1, timeout=left)
            if not ready:  # past the deadline: the laggards are treated as lost
                for ref in pending:
                    self._replace(refs[ref], f"no rollout within train.ray.rollout_timeout_s={timeout}")
                break
            w = refs[ready[0]]
            try:
                out[w] = ray.get(ready[0])
            except LOST as e:
                self._replace(w, type(e).__name__)
        return out

    def _call_all(self, method: str, per_worker: list[tuple]) -> list[Any]:
        """``actor.method(*per_worker[w])`` on every worker, in worker order; a lost worker is replaced and the
        call made again on its replacement."""
        results: dict[int, Any] = {}
        while len(results) < self.workers:
            todo = [w for w in range(self.workers) if w not in results]
            refs = {getattr(self.actors[w], method).remote(*per_worker[w]): w for w in todo}
            results.update(self._gather(refs))
        return [results[w] for w in range(self.workers)]

    def _split(self, items: list | None) -> list[list | None]:
        k = self.num_envs // self.workers
        return [None if items is None else items[w * k:(w + 1) * k] for w in range(self.workers)]

    # -- the learner's side ---------------------------------------------------------------------------------

    def rollout(self, weights: Any, imitating: bool, beta: float) -> list[dict[str, Any]]:
        """Every worker's complete rollout with the weights object ``weights`` (an ObjectRef), in worker order;
        lost workers' rollouts are dropped. Retries while no worker delivers."""
        timeout = self.cfg.ray.rollout_timeout_s if self.cfg.ray.rollout_timeout_s > 0 else None
        while True:
            refs = {a.rollout.remote(weights, imitating, beta): w for w, a in enumerate(self.actors)}
            parts = self._gather(refs, timeout)
            if parts:
                return [parts[w] for w in sorted(parts)]
            print("ray: every rollout worker was lost in this rollout; retrying with their replacements",
                  file=sys.stderr)

    def restart(self, reseed: bool, episodes: list[EpisodeSpec] | None) -> None:
        self._call_all("restart", [(reseed, part) for part in self._split(episodes)])

    # -- the vector-env methods the Trainer calls -----------------------------------------------------------

    def set_maze_config(self, config: MazeConfig) -> None:
        self.maze = config
        self._call_all("call", [("set_maze_config", config)] * self.workers)

    def set_teacher_enabled(self, enabled: bool) -> None:
        assert not enabled, "the teacher is only ever switched off"
        self.teacher = False
        self._call_all("call", [("stop_teacher",)] * self.workers)

    def episodes_in_flight(self) -> list[EpisodeSpec]:
        return [e for part in self._call_all("call", [("episodes_in_flight",)] * self.workers) for e in part]

    def rng_states(self) -> list[dict]:
        return [s for part in self._call_all("call", [("rng_states",)] * self.workers) for s in part]

    def set_rng_states(self, states: list[dict]) -> None:
        self._call_all("call", [("set_rng_states", part) for part in self._split(states)])

    def generator_states(self) -> list[list[int]]:
        return self._call_all("call", [("generator_state",)] * self.workers)

    def set_generator_states(self, states: list[list[int]]) -> None:
        self._call_all("call", [("set_generator_state", s) for s in states])

    def close(self) -> None:
        for a in self.actors:
            try:
                ray.kill(a, no_restart=True)
            except Exception:  # already gone
                pass
        self.actors = []


def concat_rollouts(parts: list[dict[str, Any]], seq_len: int) -> tuple[RolloutStorage, torch.Tensor]:
    """One RolloutStorage (and the bootstrap values [N]) from workers' rollouts, joined along the env axis in the
    given order: what one local Collector over all their envs would have stored."""
    first = parts[0]
    steps, _, obs_dim = first["obs"].shape
    layers, hidden = first["seq_h"].shape[1], first["seq_h"].shape[3]
    n = sum(p["obs"].shape[1] for p in parts)
    storage = RolloutStorage(steps, n, obs_dim, seq_len, (layers, hidden))
    for key in ARRAYS:
        if key in first:  # targets only while imitating
            setattr(storage, key, torch.from_numpy(np.concatenate([p[key] for p in parts], axis=1)))
    storage.seq_h = torch.from_numpy(np.concatenate([p["seq_h"] for p in parts], axis=2))  # [K, L, N, H]
    storage.seq_c = torch.from_numpy(np.concatenate([p["seq_c"] for p in parts], axis=2))
    storage.step = steps
    return storage, torch.from_numpy(np.concatenate([p["last_value"] for p in parts]))


def connect(address: str) -> bool:
    """``ray.init(address)`` unless Ray is already initialised (a Tune trial, a test); True if this call started
    it (so the caller shuts it down). 'auto': the running cluster; 'local': a private instance on this machine."""
    if ray.is_initialized():
        return False
    if address == "local":
        ray.init(address="local", include_dashboard=False)
    else:
        ray.init(address=address)
    return True


class DistributedTrainer(Trainer):
    """The PPO Trainer with its rollouts on Ray workers (``cfg.ray``): it replaces where rollouts come from
    (`collect`, `restart_envs`) and what the checkpoint adds (`extra_meta`, `load`); the update, curriculum, log
    and checkpoint are the Trainer's own."""

    def __init__(self, cfg: PPOTrainConfig, resume: bool = False, progress: bool = True,
                 worker_cls: type[RolloutWorker] = RolloutWorker) -> None:
        if cfg.ray.address is None:
            raise TrainConfigError("DistributedTrainer needs train.ray.address (e.g. 'auto' or 'local'); without Ray "
                                   "use robonav.train.trainer.Trainer")
        self._owns_ray = connect(cfg.ray.address)
        self.pool = WorkerPool(cfg, worker_cls)
        try:
            super().__init__(cfg, resume=resume, progress=progress, envs=self.pool)
        except BaseException:
            self.pool.close()
            raise

    def restart_envs(self, episodes: list[EpisodeSpec] | None) -> None:
        self.pool.restart(episodes is None and self.updates == 0, episodes)

    def collect(self, storage: RolloutStorage) -> Rollout:
        """One rollout of every worker with the current weights (one object in the store), joined along the env
        axis (``storage`` stays unused: the joined storage has the surviving workers' envs)."""
        weights = ray.put({k: v.numpy() for k, v in self.model.state_dict().items()})
        self.pool.lost = 0
        parts = self.pool.rollout(weights, self.imitating, self.beta())
        batch, last_value = concat_rollouts(parts, self.cfg.ppo.seq_len)
        successes, lengths, spl = [], [], []
        for p in parts:
            successes += p["successes"]
            lengths += p["lengths"]
            spl += p["spl"]
        out = {"episodes": float(len(lengths)), "rollout_envs": float(batch.num_envs),
               "workers_lost": float(self.pool.lost), "worker_restarts": float(sum(self.pool.restarts))}
        if lengths:
            out.update(episode_steps=float(np.mean(lengths)), spl=float(np.mean(spl)))
        return Rollout(batch, last_value, successes, out)

    def extra_meta(self) -> dict[str, Any]:
        return {"ray_workers": self.pool.workers, "worker_generators": self.pool.generator_states(),
                "worker_restarts": list(self.pool.restarts)}

    def load(self, path: Any) -> list[EpisodeSpec] | None:
        episodes = super().load(path)
        meta = load_checkpoint(path)["meta"]
        if meta.get("ray_workers") == self.pool.workers:  # the same split: the workers' streams continue exactly
            self.pool.set_generator_states(meta["worker_generators"])
            self.pool.restarts = [int(r) for r in meta["worker_restarts"]]  # later replacements get new seeds
        else:
            print(f"ray: {path} was written by {meta.get('ray_workers') or 'a local run'} (workers), this run has "
                  f"{self.pool.workers}: action sampling starts fresh streams (not an exact continuation)",
                  file=sys.stderr)
        return episodes

    def close(self) -> None:
        self.pool.close()
        if self._owns_ray:
            ray.shutdown()
