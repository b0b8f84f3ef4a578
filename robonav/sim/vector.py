"""Vector environments: one batched PyBullet world per process, and several processes for several cores.

``MazeVectorEnv`` steps N robots in N mazes with one ``stepSimulation`` and one batched range query per tick.
It autoresets in the SAME step (``metadata["autoreset_mode"] = AutoresetMode.SAME_STEP``): when an env ends,
its final observation is in ``infos["final_obs"]`` (a dense float32 [N, D] array, valid where
``infos["_final_obs"]``) and its episode metrics in ``infos["final_info"]``, and the returned observation is
already the first of the next episode. Trainers bootstrap truncated episodes from ``final_obs``.

Actions are normalised to [-1, 1] as in MazeEnv.

``ProcessVectorEnv`` splits the envs over worker processes, each owning a MazeVectorEnv, to use more cores.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv

from robonav.errors import UserError
from robonav.sim.config import MazeConfig, SimConfig
from robonav.sim.core import MazeSim
from robonav.sim.env import as_config
from robonav.sim.episodes import EpisodeSpec
from robonav.sim.maze import Maze

INFO_KEYS = ("is_success", "collisions", "mover_contacts", "path_length", "shortest_path_length", "episode_steps")


class MazeVectorEnv(VectorEnv):
    """N envs in one PyBullet world (see module docstring for autoreset semantics)."""

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": []}  # noqa: RUF012

    def __init__(self, num_envs: int = 8, maze: str | os.PathLike[str] | Maze | list[Maze] | dict | None = None,
                 config: SimConfig | dict | None = None, seed: int | None = None,
                 render_mode: str | None = None, wall_mode: str = "merged", per_env_rays: bool = False,
                 teacher: Any = None, per_env_observe: bool = False, **_: Any) -> None:
        """``teacher``: optional object with ``reset(env_ids)`` and ``act(obs, frames, sim) -> [N, 2]`` SI commands
        (the eval Policy protocol); its normalised action for the current observation is put in
        ``infos["teacher_action"]`` after every reset and step (imitation warm starts, R2D2's demonstrators), with
        ``infos["_teacher_action"]`` the envs it drives (its ``mask``, all by default).
        ``per_env_observe``: MazeSim's per-env observation path (the parity reference of the batched one)."""
        self.config = as_config(config)
        self.num_envs = num_envs
        self.sim = MazeSim(num_envs, self.config, maze, seed, wall_mode=wall_mode, per_env_rays=per_env_rays,
                           per_env_observe=per_env_observe)
        o = self.sim.observers[0]
        rc = self.config.robot
        self.single_observation_space = gym.spaces.Box(o.low, o.high, (o.dim,), np.float32)
        self.single_action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, num_envs)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, num_envs)
        self.render_mode = render_mode
        self._scale = np.array([rc.v_max, rc.omega_max])
        self.teacher = teacher

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        if seed is not None:
            self.sim.reseed(seed)
        episodes = (options or {}).get("episodes")
        for i in range(self.num_envs):
            self.sim.reset_env(i, None if episodes is None else episodes[i])
        if (options or {}).get("rebuild"):
            self.sim.world.rebuild()  # a physics world in a canonical state: what a fresh process would build
        infos = self._infos()
        self._teach(infos, np.arange(self.num_envs))
        return self.sim.obs.copy(), infos

    def step(self, actions):
        obs, reward, terminated, truncated = self.sim.step(self._scale * np.asarray(actions, np.float64))
        infos = self._infos()
        done = terminated | truncated
        if done.any():
            final_obs = np.zeros_like(obs)
            final_obs[done] = obs[done]
            final_info = {k: infos[k].copy() for k in INFO_KEYS}
            final_info["_is_success"] = done.copy()
            infos["final_obs"], infos["_final_obs"] = final_obs, done.copy()
            infos["final_info"], infos["_final_info"] = final_info, done.copy()
            for i in np.flatnonzero(done):
                self.sim.reset_env(int(i))
        self._teach(infos, np.flatnonzero(done))
        return self.sim.obs.copy(), reward, terminated, truncated, infos

    def set_teacher_enabled(self, enabled: bool) -> None:
        """Switch the teacher's labels on or off (off saves its cost once imitation is over)."""
        self._teacher_on = enabled

    def _teach(self, infos: dict[str, Any], started: np.ndarray) -> None:
        if self.teacher is None or not getattr(self, "_teacher_on", True):
            return
        if len(started):
            self.teacher.reset(started)
        act = self.teacher.act(self.sim.obs, self.sim.frames, self.sim)
        infos["teacher_action"] = np.clip(act / self._scale, -1.0, 1.0).astype(np.float32)
        infos["_teacher_action"] = np.array(getattr(self.teacher, "mask", np.ones(self.num_envs, bool)))

    # -- what a trainer needs beyond Gymnasium: curriculum and exact resume ---------------------------------

    def set_maze_config(self, config: MazeConfig) -> None:
        """Draw the mazes of episodes that start from now on from ``config`` (a curriculum stage)."""
        self.sim.sampler.config = config
        self.sim.sampler._current.clear()

    def episodes_in_flight(self) -> list[EpisodeSpec]:
        """The episode each env is running (restart them with ``reset(options={"episodes": ...})``)."""
        return [e for e in self.sim.episodes if e is not None]

    def rng_states(self) -> list[dict]:
        """States of the per-env episode-drawing generators (JSON-able)."""
        return [dict(r.bit_generator.state) for r in self.sim.rngs]

    def set_rng_states(self, states: list[dict]) -> None:
        for r, st in zip(self.sim.rngs, states):
            r.bit_generator.state = st

    def _infos(self) -> dict[str, Any]:
        s = self.sim
        goal_d = np.hypot(s.pose[:, 0] - s.goal_xy[:, 0], s.pose[:, 1] - s.goal_xy[:, 1])
        return {
            "is_success": goal_d < self.config.goal_radius,
            "collisions": s.collisions.copy(),
            "mover_contacts": s.mover_contacts.copy(),
            "in_collision": s.contact.copy(),
            "path_length": s.path_length.copy(),
            "shortest_path_length": s.shortest.copy(),
            "episode_steps": s.steps.copy(),
        }

    def close_extras(self, **kwargs: Any) -> None:
        self.sim.close()


class _Refused:
    """What a worker sends back instead of a result when a UserError stopped it: the parent raises it again."""

    def __init__(self, message: str) -> None:
        self.message = message


def _worker(conn, num_envs: int, maze, config: SimConfig, seed: int | None, teacher_factory) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    teacher = teacher_factory(num_envs) if teacher_factory is not None else None
    env = MazeVectorEnv(num_envs, maze, config, seed, teacher=teacher)
    try:
        while True:
            cmd, arg = conn.recv()
            if cmd == "step":
                obs, rew, term, trunc, infos = env.step(arg)
                conn.send((obs, rew, term, trunc, _complete(infos, obs)))
            elif cmd == "reset":
                seed, options = arg
                obs, infos = env.reset(seed=seed, options=options)
                conn.send((obs, _complete(infos, obs)))
            elif cmd == "call":
                name, args = arg
                conn.send(getattr(env, name)(*args))
            elif cmd == "close":
                break
    except (EOFError, KeyboardInterrupt):
        pass
    except UserError as e:  # bad settings met in a worker (a crowd a maze cannot hold): one line in the parent
        conn.send(_Refused(str(e)))
    finally:
        env.close()
        conn.close()


def _complete(infos: dict[str, Any], obs: np.ndarray) -> dict[str, Any]:
    """Give a worker's infos every key (final_* absent when no env ended) so the parts concatenate."""
    if "final_obs" not in infos:
        n = len(obs)
        infos["final_obs"], infos["_final_obs"] = np.zeros_like(obs), np.zeros(n, dtype=bool)
        infos["final_info"] = {k: np.zeros_like(infos[k]) for k in INFO_KEYS}
        infos["final_info"]["_is_success"] = np.zeros(n, dtype=bool)
        infos["_final_info"] = np.zeros(n, dtype=bool)
    return infos


def _merge(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Concatenate completed per-worker infos; drop final_* again when no env ended anywhere."""
    out: dict[str, Any] = {}
    for k, v in parts[0].items():
        if isinstance(v, dict):
            out[k] = {sk: np.concatenate([p[k][sk] for p in parts]) for sk in v}
        else:
            out[k] = np.concatenate([p[k] for p in parts])
    if not out["_final_obs"].any():
        for k in ("final_obs", "_final_obs", "final_info", "_final_info"):
            del out[k]
    return out


class ProcessVectorEnv(VectorEnv):
    """``num_envs`` split over ``workers`` processes, each a MazeVectorEnv (same autoreset semantics).

    Worker w gets seed ``seed + w`` (or None) and envs ``[w * k, (w + 1) * k)``; results are concatenated.
    """

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": []}  # noqa: RUF012

    def __init__(self, num_envs: int = 16, workers: int = 2, maze=None, config: SimConfig | dict | None = None,
                 seed: int | None = None, teacher_factory: Any = None) -> None:
        """``teacher_factory(num_envs)`` builds each worker's teacher (picklable: a class or module function)."""
        if num_envs % workers:
            raise ValueError(f"num_envs ({num_envs}) must be a multiple of workers ({workers})")
        self.config = as_config(config)
        self.num_envs, self.workers = num_envs, workers
        per = num_envs // workers
        ctx = mp.get_context("spawn")
        self._conns, self._procs = [], []
        for w in range(workers):
            a, b = ctx.Pipe()
            proc = ctx.Process(target=_worker, args=(b, per, maze, self.config,
                                                     None if seed is None else seed + w, teacher_factory),
                               daemon=True)
            proc.start()
            b.close()
            self._conns.append(a)
            self._procs.append(proc)
        from robonav.sim.observation import make_observer

        rc = self.config.robot
        o = make_observer(self.config.observation, rc.v_max, rc.omega_max, self.config.preprocessor)
        self.single_observation_space = gym.spaces.Box(o.low, o.high, (o.dim,), np.float32)
        self.single_action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, num_envs)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, num_envs)

    def _gather(self) -> list[Any]:
        """Every worker's answer; a worker's UserError raised here as one (the worker has stopped)."""
        res = []
        for c in self._conns:
            r = c.recv()
            if isinstance(r, _Refused):
                raise UserError(r.message)
            res.append(r)
        return res

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        per = self.num_envs // self.workers
        episodes = (options or {}).get("episodes")
        for w, c in enumerate(self._conns):
            opts = dict(options or {})
            if episodes is not None:
                opts["episodes"] = episodes[w * per:(w + 1) * per]
            c.send(("reset", (None if seed is None else seed + w, opts)))
        res = self._gather()
        return np.concatenate([r[0] for r in res]), _merge([r[1] for r in res])

    def step(self, actions):
        per = self.num_envs // self.workers
        actions = np.asarray(actions)
        for w, c in enumerate(self._conns):
            c.send(("step", actions[w * per:(w + 1) * per]))
        res = self._gather()
        return (np.concatenate([r[0] for r in res]), np.concatenate([r[1] for r in res]),
                np.concatenate([r[2] for r in res]), np.concatenate([r[3] for r in res]),
                _merge([r[4] for r in res]))

    def _call(self, name: str, per_worker_args: list[tuple] | None = None) -> list[Any]:
        for w, c in enumerate(self._conns):
            c.send(("call", (name, per_worker_args[w] if per_worker_args else ())))
        return self._gather()

    def set_maze_config(self, config: MazeConfig) -> None:
        self._call("set_maze_config", [(config,)] * self.workers)

    def episodes_in_flight(self) -> list[EpisodeSpec]:
        return [e for part in self._call("episodes_in_flight") for e in part]

    def set_teacher_enabled(self, enabled: bool) -> None:
        self._call("set_teacher_enabled", [(enabled,)] * self.workers)

    def rng_states(self) -> list[dict]:
        return [s for part in self._call("rng_states") for s in part]

    def set_rng_states(self, states: list[dict]) -> None:
        per = self.num_envs // self.workers
        self._call("set_rng_states", [(states[w * per:(w + 1) * per],) for w in range(self.workers)])

    def close_extras(self, **kwargs: Any) -> None:
        for c in self._conns:
            try:
                c.send(("close", None))
            except (BrokenPipeError, OSError):
                pass
        for proc in self._procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.terminate()
