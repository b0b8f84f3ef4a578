"""Stable-Baselines3 on robonav's simulator: a VecEnv adapter, robonav's curriculum as a callback, and an SB3 model
behind the eval Policy protocol. Used by benchmarks/train_vs_sb3.py; nothing in robonav/ imports it.

- `SB3VecEnv` wraps a Gymnasium VectorEnv with SAME_STEP autoreset (robonav.sim.vector.MazeVectorEnv) in SB3's
  VecEnv interface: ``step`` returns (obs, rewards, dones, infos) with ``dones = terminated | truncated`` and a
  list of per-env info dicts; an env that ended carries its real last observation in
  ``info["terminal_observation"]`` (the returned obs is already the next episode's first, as SB3 expects),
  its episode metrics (``is_success``, ...) and ``info["TimeLimit.truncated"]`` (truncated and not terminated),
  which SB3 uses to bootstrap time limits. Actions stay normalised to [-1, 1]. The N envs share one
  MazeVectorEnv, so ``get_attr``/``set_attr``/``env_method`` act on it once, for all envs together.
- `CurriculumCallback` runs robonav's curriculum (robonav.train.config.CurriculumConfig) for an SB3 learner with
  the trainer's rule: after each rollout, if the success rate over the last ``window`` finished episodes reaches
  ``promote_success``, move to the next stage, forget the window and call ``set_maze_config`` on the env.
- `SB3Policy` acts for the evaluation runner (robonav.eval.runner.Policy) with a RecurrentPPO model:
  deterministic actions, LSTM state per env, reset by the runner; observations are normalised with the
  statistics VecNormalize had at the end of training (`save_obs_stats` / `load_obs_stats`, plain .npz).
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

__all__ = ["AdapterError", "CurriculumCallback", "ObsStats", "SB3Policy", "SB3VecEnv", "load_obs_stats",
           "save_obs_stats"]

_VECTOR_KEYS = ("final_obs", "final_info")


class AdapterError(ValueError):
    """A vector env or a request the SB3 adapter cannot serve (wrong autoreset mode, per-env calls on shared envs)."""


def _scalar(x: Any) -> Any:
    """A numpy element as a plain Python value (arrays stay arrays)."""
    return x.item() if isinstance(x, np.generic) else x


class SB3VecEnv(VecEnv):
    """SB3's VecEnv over a Gymnasium VectorEnv that autoresets in the same step (see the module docstring)."""

    def __init__(self, venv: VectorEnv) -> None:
        mode = venv.metadata.get("autoreset_mode")
        if mode != AutoresetMode.SAME_STEP:
            raise AdapterError(f"SB3VecEnv: the vector env's metadata['autoreset_mode'] must be SAME_STEP, actual "
                               f"{mode}: SB3 expects the next episode's first observation from step() and the last one "
                               "in info['terminal_observation']; use robonav.sim.vector.MazeVectorEnv")
        self.venv = venv
        self._actions: np.ndarray | None = None
        super().__init__(venv.num_envs, venv.single_observation_space, venv.single_action_space)

    # -- stepping ---------------------------------------------------------------------------------------------

    def reset(self) -> np.ndarray:
        """Reset every env. The batch is one vector env that takes one seed and one options dict: a seed set by
        ``seed(s)`` reseeds the whole batch from ``s`` (SB3 lists s, s+1, ...: the first is used), and the options
        of ``set_options(dict)`` go to the vector env as they are (e.g. MazeVectorEnv's ``{"episodes": [...]}``,
        one entry per env)."""
        obs, info = self.venv.reset(seed=self._seeds[0], options=self._options[0] or None)
        self.reset_infos = self._env_infos(info)
        self._reset_seeds()
        self._reset_options()
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        """Hold normalised actions [N, 2] for the next ``step_wait`` (the step itself is synchronous)."""
        self._actions = np.asarray(actions, dtype=np.float32)

    def step_wait(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]]]:
        """Step every env: (obs, rewards, dones, infos) in SB3's form (see the module docstring)."""
        if self._actions is None:
            raise AdapterError("SB3VecEnv.step_wait: no actions pending; call step_async(actions) first")
        obs, rewards, terminated, truncated, info = self.venv.step(self._actions)
        self._actions = None
        terminated, truncated = np.asarray(terminated, bool), np.asarray(truncated, bool)
        dones = terminated | truncated
        infos = self._env_infos(info)
        for d, time_limit in zip(infos, (truncated & ~terminated).tolist()):
            d["TimeLimit.truncated"] = time_limit
        ended = np.flatnonzero(dones)
        if len(ended):
            has_final = info.get("_final_obs")
            if has_final is None or not np.asarray(has_final)[ended].all():
                raise AdapterError(f"SB3VecEnv.step_wait: envs {ended.tolist()} ended but info['final_obs'] does not "
                                   "hold all their last observations; the vector env must report final_obs and "
                                   "_final_obs for every env that ends (Gymnasium SAME_STEP autoreset)")
            final_info = info.get("final_info", {})
            for e in ended.tolist():
                d = infos[e]
                d.update({k: _scalar(v[e]) for k, v in final_info.items() if not k.startswith("_")})
                d["terminal_observation"] = np.array(info["final_obs"][e])
                self.reset_infos[e] = {}  # the autoreset's own info is not reported by the vector env
        return obs, np.asarray(rewards, dtype=np.float32), dones, infos

    def _env_infos(self, info: dict[str, Any]) -> list[dict[str, Any]]:
        """Per-env slices of a Gymnasium vector info (arrays indexed by env; masks and final_* left out)."""
        columns: dict[str, list[Any]] = {}
        for k, v in info.items():
            if k.startswith("_") or k in _VECTOR_KEYS:
                continue
            if isinstance(v, np.ndarray) and v.ndim >= 1 and len(v) == self.num_envs:
                columns[k] = v.tolist() if v.ndim == 1 else list(v)  # Python scalars, or per-env arrays
        return [{k: col[i] for k, col in columns.items()} for i in range(self.num_envs)]

    def close(self) -> None:
        self.venv.close()

    # -- attributes and methods: one shared vector env --------------------------------------------------------

    def _all(self, indices: int | Iterable[int] | None, what: str) -> int:
        """How many envs ``indices`` names; a strict subset is refused, since the envs share one vector env."""
        idx = list(range(self.num_envs)) if indices is None else [indices] if isinstance(indices, int) \
            else list(indices)
        if sorted(idx) != list(range(self.num_envs)):
            raise AdapterError(f"SB3VecEnv.{what}: indices {idx} name only some of the {self.num_envs} envs, but "
                               "they share one vector env; call it for all envs (indices=None)")
        return len(idx)

    def get_attr(self, attr_name: str, indices: int | Iterable[int] | None = None) -> list[Any]:
        """The vector env's attribute, once per requested env (any subset may be read)."""
        value = getattr(self.venv, attr_name)
        n = self.num_envs if indices is None else 1 if isinstance(indices, int) else len(list(indices))
        return [value] * n

    def set_attr(self, attr_name: str, value: Any, indices: int | Iterable[int] | None = None) -> None:
        """Set an attribute of the shared vector env (for all envs only)."""
        self._all(indices, "set_attr")
        setattr(self.venv, attr_name, value)

    def env_method(self, method_name: str, *method_args: Any, indices: int | Iterable[int] | None = None,
                   **method_kwargs: Any) -> list[Any]:
        """Call a method of the shared vector env once (for all envs only); its result is repeated per env."""
        n = self._all(indices, "env_method")
        return [getattr(self.venv, method_name)(*method_args, **method_kwargs)] * n

    def env_is_wrapped(self, wrapper_class: type, indices: int | Iterable[int] | None = None) -> list[bool]:
        """No env is wrapped in a gymnasium.Wrapper (use VecMonitor for episode statistics)."""
        n = self.num_envs if indices is None else 1 if isinstance(indices, int) else len(list(indices))
        return [False] * n


class CurriculumCallback(BaseCallback):
    """robonav's curriculum for an SB3 learner, and a progress log in the trainer's keys.

    Build the env at stage 0 (``stage_config(0)`` as its maze config) so the first episodes come from it. Episode
    returns are read from VecMonitor's ``info["episode"]`` (wrap the adapter in VecMonitor, under VecNormalize).
    One row per rollout (``rows``, and appended to ``log_path`` as JSON lines): wall_s since training start,
    global_step, stage, success_rate and success_window (episodes it is over), episode_return and return_window,
    episodes (finished in all), steps_per_s since the previous row.
    """

    def __init__(self, promote_success: float, window: int, num_stages: int, stage_config: Callable[[int], Any],
                 log_path: str | Path | None = None) -> None:
        """``stage_config(k)``: the MazeConfig of stage k (robonav.train.trainer.stage_config)."""
        super().__init__()
        self.promote_success, self.window, self.num_stages = promote_success, window, num_stages
        self.stage_config = stage_config
        self.log_path = None if log_path is None else Path(log_path)
        self.stage, self.episodes = 0, 0
        self.successes: deque[float] = deque(maxlen=window)
        self.returns: deque[float] = deque(maxlen=window)
        self.rows: list[dict[str, float]] = []
        self._t0 = self._t_last = 0.0
        self._steps_last = 0

    def _on_training_start(self) -> None:
        self._t0 = self._t_last = time.perf_counter()
        self._steps_last = self.num_timesteps

    def _on_step(self) -> bool:
        dones, infos = self.locals["dones"], self.locals["infos"]
        for i in np.flatnonzero(dones):
            info = infos[i]
            self.successes.append(float(info["is_success"]))
            if "episode" in info:
                self.returns.append(float(info["episode"]["r"]))
            self.episodes += 1
        return True

    def _on_rollout_end(self) -> None:
        self._log_row()
        if (self.stage + 1 < self.num_stages and len(self.successes) == self.window
                and np.mean(self.successes) >= self.promote_success):
            self.stage += 1
            self.successes.clear()
            self.returns.clear()
            self.training_env.env_method("set_maze_config", self.stage_config(self.stage))

    def _on_training_end(self) -> None:
        if self.num_timesteps > self._steps_last:  # the cut-off last rollout (a time budget stops mid-rollout)
            self._log_row()

    def _log_row(self) -> None:
        now = time.perf_counter()
        row = {
            "wall_s": now - self._t0, "global_step": self.num_timesteps, "stage": self.stage,
            "success_rate": float(np.mean(self.successes)) if self.successes else 0.0,
            "success_window": len(self.successes),
            "episode_return": float(np.mean(self.returns)) if self.returns else float("nan"),
            "return_window": len(self.returns), "episodes": self.episodes,
            "steps_per_s": (self.num_timesteps - self._steps_last) / max(now - self._t_last, 1e-9),
        }
        self._t_last, self._steps_last = now, self.num_timesteps
        self.rows.append(row)
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.log_path, "a") as f:
                f.write(json.dumps(row) + "\n")


class ObsStats:
    """VecNormalize's observation normalisation, frozen: ``clip((obs - mean) / sqrt(var + eps), -clip, clip)``."""

    def __init__(self, mean: np.ndarray, var: np.ndarray, epsilon: float, clip: float) -> None:
        self.mean, self.var, self.epsilon, self.clip = mean, var, float(epsilon), float(clip)

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        return np.clip((obs - self.mean) / np.sqrt(self.var + self.epsilon), -self.clip, self.clip).astype(np.float32)


def save_obs_stats(vecnorm: VecNormalize, path: str | Path) -> Path:
    """Write VecNormalize's observation statistics to a .npz (no pickle)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    rms = vecnorm.obs_rms
    if isinstance(rms, dict):
        raise AdapterError(f"save_obs_stats: VecNormalize holds per-key statistics {sorted(rms)} (a Dict observation "
                           "space); only a flat Box observation, as robonav's, is supported")
    np.savez(p, mean=rms.mean, var=rms.var, epsilon=vecnorm.epsilon, clip=vecnorm.clip_obs)
    return p


def load_obs_stats(path: str | Path) -> ObsStats:
    """Read what `save_obs_stats` wrote."""
    with np.load(path) as z:
        return ObsStats(z["mean"], z["var"], float(z["epsilon"]), float(z["clip"]))


class SB3Policy:
    """A RecurrentPPO model behind robonav's eval Policy protocol: deterministic, LSTM state per env."""

    def __init__(self, model: Any, num_envs: int, action_scale: tuple[float, float],
                 normalize_obs: Callable[[np.ndarray], np.ndarray] | None = None) -> None:
        """``model``: a trained sb3_contrib.RecurrentPPO; ``action_scale``: (v_max, omega_max) of the normalised
        actions; ``normalize_obs``: the training run's VecNormalize statistics (`load_obs_stats`), if it had any."""
        self.model, self.num_envs = model, num_envs
        self.scale = np.asarray(action_scale, dtype=np.float64)
        self.normalize_obs = normalize_obs
        self.state: tuple[np.ndarray, ...] | None = None
        self.starts = np.ones(num_envs, dtype=bool)

    def reset(self, env_ids: np.ndarray) -> None:
        """Envs ``env_ids`` start an episode: their LSTM state is zeroed at the next ``act``."""
        self.starts[np.asarray(env_ids, dtype=np.int64)] = True

    def act(self, obs: np.ndarray, frames: Any = None, sim: Any = None) -> np.ndarray:
        """Commands [N, 2] (v m/s, omega rad/s) from observations [N, D]."""
        x = obs if self.normalize_obs is None else self.normalize_obs(obs)
        actions, self.state = self.model.predict(x, state=self.state, episode_start=self.starts, deterministic=True)
        self.starts[:] = False
        return np.clip(np.asarray(actions, dtype=np.float64), -1.0, 1.0) * self.scale
