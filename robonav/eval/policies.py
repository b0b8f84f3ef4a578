"""Policy resolution: what ``--policy`` names, turned into a policy factory, its PolicyMeta and its eval settings.

One function serves eval, sim, run's shipped model, HIL, the demo and the benchmarks:

    resolved = resolve_policy("default")            # a name, a checkpoint, an .onnx or an .engine
    run_episodes(resolved.factory, episodes, resolved.sim_config)

- a name in `NAMED_POLICIES`: the shipped checkpoints ``default`` (recurrent PPO) and ``default-q`` (R2D2), and the
  baselines ``classical``, ``guided`` (the A* guidance block alone), ``expert`` (privileged) and ``random``. A
  new named policy is one more entry: a function of the name returning a `ResolvedPolicy`.
- an existing file: ``.onnx`` runs in ONNX Runtime and ``.engine`` in TensorRT, each checked against its sidecar
  (hash, I/O, metadata); anything else is read as a robonav checkpoint (``.pt``) and runs in torch.

Anything else is refused with one line listing what is accepted (`PolicyNotFoundError`). The eval settings come
from the policy's PolicyMeta (observation layout, control period) through `sim_config`; baselines read no model
and run the nominal settings.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from robonav.errors import UserError
from robonav.eval.runner import ExpertPolicy, PolicyFactory, RandomPolicy, eval_config
from robonav.model.meta import PolicyMeta
from robonav.sim.config import SimConfig

__all__ = ["MODEL_SUFFIXES", "NAMED_POLICIES", "SHIPPED_POLICIES", "BackendPolicy", "PolicyNotFoundError",
           "ResolvedPolicy", "checkpoint_path", "resolve_policy", "sim_config"]

SHIPPED_POLICIES = ("default", "default-q")
"""Checkpoints in the package (robonav/data/policies): PPO's and R2D2's."""
MODEL_SUFFIXES = {".onnx": "ort", ".engine": "trt"}
"""Model files --policy takes, and the backend that runs each (a checkpoint is any other existing file)."""


class PolicyNotFoundError(UserError, ValueError):
    """--policy names no known policy and no existing file."""


@dataclass(frozen=True)
class ResolvedPolicy:
    """A policy ready for `robonav.eval.runner.run_episodes`."""

    name: str
    """What was asked for (a name or a path)."""
    factory: PolicyFactory
    """Builds the policy for a number of envs."""
    meta: PolicyMeta | None
    """The trained policy's contract; None for baselines that read no model (classical, expert, random)."""
    sim_config: SimConfig
    """The evaluation settings the policy runs in (observation, period from ``meta``; eval_config applied)."""


def sim_config(meta: PolicyMeta | None) -> SimConfig:
    """The evaluation SimConfig of a policy: its observation builder, control period and preprocessor settings,
    with randomization off and eval's command latency (robonav.eval.runner.eval_config); nominal for None."""
    if meta is None:
        return eval_config()
    cfg = SimConfig(observation=meta.observation, period=meta.control_period)
    if meta.observation_spec is not None:
        cfg = dataclasses.replace(cfg, preprocessor=meta.observation_spec.config)
    return eval_config(cfg)


def checkpoint_path(spec: str) -> Path:
    """The shipped checkpoint a name like 'default' or 'default-q' means, else the path given."""
    if spec in SHIPPED_POLICIES:
        from robonav.data import resource

        return resource("policies", f"{spec}.pt")
    return Path(spec)


class BackendPolicy:
    """N robots on N runtime backends of one kind, each with its own state: ``act(obs [N, D]) -> [N, 2]``.

    Implements the Policy protocol of robonav.eval.runner for any backend (the TensorRT engine's eval path)."""

    def __init__(self, kind: str, model: str | os.PathLike[str], num_envs: int, **kw: Any) -> None:
        from robonav.runtime.backends.registry import open_backend

        self.backends = [open_backend(kind, model, **kw) for _ in range(num_envs)]

    def reset(self, env_ids: np.ndarray) -> None:
        for i in np.asarray(env_ids, dtype=np.int64).reshape(-1):
            self.backends[int(i)].reset()

    def act(self, obs: np.ndarray, frames: Any = None, sim: Any = None) -> np.ndarray:
        return np.stack([b.step(np.ascontiguousarray(obs[i], np.float32))
                         for i, b in enumerate(self.backends)]).astype(np.float64)

    def close(self) -> None:
        for backend in self.backends:
            backend.close()


def _baseline(factory: PolicyFactory) -> Callable[[str], ResolvedPolicy]:
    return lambda name: ResolvedPolicy(name, factory, None, sim_config(None))


def _classical(name: str) -> ResolvedPolicy:
    from robonav.eval.classical import ClassicalPolicy

    return ResolvedPolicy(name, ClassicalPolicy, None, sim_config(None))


def _checkpoint(spec: str) -> ResolvedPolicy:
    """A robonav checkpoint in torch (TorchAgent), its PolicyMeta read from the checkpoint's meta."""
    import torch

    from robonav.model.sidecar import file_sha256
    from robonav.policy.agent import TorchAgent, load_policy
    from robonav.policy.checkpoint import policy_meta

    # A batch of a few envs per step: one thread is fastest, and a second one only spins against the simulator
    # (with both cores busy, two threads made each step 10x slower here).
    torch.set_num_threads(1)
    path = checkpoint_path(spec)
    model, meta = load_policy(path)
    policy = policy_meta(model, meta, file_sha256(path))
    return ResolvedPolicy(spec, lambda n: TorchAgent(model, n), policy, sim_config(policy))


def _model(spec: str, threads: int = 1) -> ResolvedPolicy:
    """An .onnx (ONNX Runtime) or .engine (TensorRT) with its sidecar, checked when each backend opens."""
    from robonav.model.sidecar import read_sidecar

    path = Path(spec)
    sidecar = read_sidecar(path)
    kind = MODEL_SUFFIXES[path.suffix]
    factory: PolicyFactory
    if kind == "ort":
        from robonav.runtime.backends.onnx_backend import OnnxPolicy

        factory = lambda n: OnnxPolicy(path, n, threads)  # noqa: E731
    else:
        factory = lambda n: BackendPolicy(kind, path, n)  # noqa: E731
    return ResolvedPolicy(spec, factory, sidecar, sim_config(sidecar))


def _guided(spec: str) -> ResolvedPolicy:
    """The A* guidance block of the shipped observation, driven by pure pursuit (robonav.eval.guided)."""
    from robonav.eval.guided import guided_setup

    factory, config = guided_setup()
    return ResolvedPolicy(spec, factory, None, config)


NAMED_POLICIES: dict[str, Callable[[str], ResolvedPolicy]] = {
    "default": _checkpoint,
    "default-q": _checkpoint,
    "classical": _classical,
    "guided": _guided,
    "expert": _baseline(ExpertPolicy),
    "random": _baseline(RandomPolicy),
}
"""--policy names: each a function of the name returning its ResolvedPolicy. Add a named policy here."""


def resolve_policy(spec: str, threads: int = 1) -> ResolvedPolicy:
    """The policy ``spec`` names: a key of `NAMED_POLICIES`, or an existing .onnx, .engine or checkpoint file.

    ``threads``: ONNX Runtime's intra-op threads for an .onnx. Raises PolicyNotFoundError for anything else,
    and the model's own refusals (sidecar, hash, checkpoint) for a file that is not what it claims."""
    named = NAMED_POLICIES.get(spec)
    if named is not None:
        return named(spec)
    path = Path(spec)
    if not path.is_file():
        raise PolicyNotFoundError(
            f"--policy {spec!r}: neither a policy name ({', '.join(NAMED_POLICIES)}) nor an existing file; give "
            "one of those names, a checkpoint (.pt), an ONNX model (.onnx) or a TensorRT engine (.engine)")
    if path.suffix in MODEL_SUFFIXES:
        return _model(spec, threads)
    return _checkpoint(spec)
