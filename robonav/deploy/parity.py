"""Parity between the forms of one policy: step by step on recorded episodes, and closed loop on paired episodes.

Step parity (issue 13): record simulator episodes once (the observations a policy really met, several episodes
back to back so the sequence crosses resets), then feed the same observations to two forms (torch ``step``, an
ONNX Runtime backend, a quantized model), each feeding its own state back and resetting where an episode starts,
and report the largest action difference against a tolerance (the Polygraphy comparator habit).

Closed loop: run the same paired episodes with two forms through the evaluation runner and count the episodes
whose outcome flips. Between torch and its FP32 export that count is the noise floor every later comparison
(FP16, INT8) is read against: tiny float differences steer a closed loop onto another path.

Torch is imported only inside the functions that need it. `sim_config` (a model's evaluation settings) lives in
robonav.eval.policies and is re-exported here.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from robonav.errors import UserError
from robonav.eval.metrics import EpisodeResult, paired_comparison
from robonav.eval.policies import sim_config
from robonav.eval.runner import Policy, PolicyFactory, run_episodes
from robonav.model.sidecar import read_sidecar
from robonav.runtime.backends.base import Backend
from robonav.sim.config import SimConfig
from robonav.sim.episodes import EpisodeSpec

StageProgress = Callable[[str, int, int], None]
"""progress(stage, done, total): what a long function reports as it goes (the CLI draws bars; default none)."""

__all__ = ["TOLERANCE", "CheckpointMismatchError", "ParityReport", "Recording", "RecordingPolicy", "StageProgress",
           "action_deviation_rate", "backend_actions", "closed_loop_comparison", "compare_actions",
           "export_parity", "format_judgement", "judge", "record_episodes", "record_steps", "run_paired",
           "sim_config", "step_parity", "torch_actions"]

TOLERANCE = 1e-5
"""Max |action| error (SI units) FP32 ONNX Runtime may show against torch (issue 13)."""


class CheckpointMismatchError(UserError, ValueError):
    """A checkpoint compared with a model that was exported from another checkpoint."""


@dataclass
class Recording:
    """Observations of whole episodes, in episode order, and what each episode gave."""

    segments: list[np.ndarray]
    """Per episode: float32 [T_k, D], the observation of every control tick of the episode."""
    results: list[EpisodeResult]
    """The runner's result of each episode (same order)."""

    @property
    def steps(self) -> int:
        return sum(len(s) for s in self.segments)

    def sequence(self) -> tuple[np.ndarray, np.ndarray]:
        """All episodes back to back: obs float32 [T, D] and episode_starts bool [T] (True where one begins)."""
        starts = np.zeros(self.steps, dtype=bool)
        offsets = np.cumsum([0] + [len(s) for s in self.segments[:-1]])
        starts[offsets] = True
        return np.concatenate(self.segments), starts


class RecordingPolicy:
    """Wraps a Policy and keeps the observations each episode showed it (for parity and calibration).

    The runner hands episodes to slots in queue order and resets a slot before its episode's first tick, so the
    n-th slot reset opens the n-th episode's segment. Idle slots keep acting after the queue empties; their
    extra ticks are cut off by `segments`, which trims each segment to the episode's length.
    """

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.open: dict[int, int] = {}  # slot -> episode index it runs
        self.frames: list[list[np.ndarray]] = []

    def reset(self, env_ids: np.ndarray) -> None:
        for i in np.asarray(env_ids, dtype=np.int64).reshape(-1).tolist():
            self.open[i] = len(self.frames)
            self.frames.append([])
        self.policy.reset(env_ids)

    def act(self, obs: np.ndarray, frames: Any, sim: Any) -> np.ndarray:
        for i, k in self.open.items():
            self.frames[k].append(np.array(obs[i], dtype=np.float32))
        return self.policy.act(obs, frames, sim)

    def segments(self, results: list[EpisodeResult]) -> list[np.ndarray]:
        if len(results) != len(self.frames):
            raise RuntimeError(f"recorded {len(self.frames)} episode starts for {len(results)} results: the runner "
                               "no longer resets once per episode in queue order")
        out = []
        for k, r in enumerate(results):
            if len(self.frames[k]) < r.steps:
                raise RuntimeError(f"episode {k} lasted {r.steps} ticks but {len(self.frames[k])} were recorded")
            out.append(np.stack(self.frames[k][: r.steps]))
        return out


def record_episodes(factory: PolicyFactory, episodes: list[EpisodeSpec], config: SimConfig,
                    num_envs: int = 8, progress: Callable[[int, int], None] | None = None) -> Recording:
    """Run ``episodes`` with the policy ``factory`` makes (through robonav.eval's runner) and keep what it saw;
    ``progress(done, total)`` after each finished episode."""
    recorders: list[RecordingPolicy] = []

    def wrapped(n: int) -> RecordingPolicy:
        recorders.append(RecordingPolicy(factory(n)))
        return recorders[-1]

    results = run_episodes(wrapped, episodes, config, num_envs=num_envs, progress=progress)
    return Recording(recorders[0].segments(results) if recorders else [], results)


def backend_actions(backend: Backend, recording: Recording) -> np.ndarray:
    """Actions [T, A] of an open backend over the recording, reset at every episode start."""
    from robonav.runtime.selftest import replay_actions

    obs, starts = recording.sequence()
    return replay_actions(backend, obs, starts)


def torch_actions(model: Any, recording: Recording) -> np.ndarray:
    """Actions [T, 2] of ``ActorCritic.step`` over the recording: state fed back, zeroed at every episode start."""
    import torch

    obs, starts = recording.sequence()
    zero = model.initial_state(1)
    h, c = zero.h, zero.c
    out = np.empty((len(obs), 2), dtype=np.float32)
    with torch.no_grad():
        for t in range(len(obs)):
            if starts[t]:
                h, c = zero.h, zero.c
            a, h, c = model.step(torch.from_numpy(obs[t : t + 1]), h, c)
            out[t] = a.numpy()[0]
    return out


@dataclass(frozen=True)
class ParityReport:
    """Largest action error of one form against a reference over a recording (Polygraphy-style)."""

    steps: int
    """Control ticks compared."""
    episodes: int
    """Episodes in the recording (resets = episodes - 1 inside the sequence)."""
    max_abs_error: float
    """max over steps and axes of |action - reference action| (SI units)."""
    max_rel_error: float
    """The same relative to max(|reference|, 1e-6)."""
    worst_step: int
    """Step of the largest absolute error."""
    tolerance: float
    """Allowed max_abs_error."""

    @property
    def passed(self) -> bool:
        return self.max_abs_error <= self.tolerance

    def to_dict(self) -> dict[str, Any]:
        return {"steps": self.steps, "episodes": self.episodes, "max_abs_error": self.max_abs_error,
                "max_rel_error": self.max_rel_error, "worst_step": self.worst_step, "tolerance": self.tolerance,
                "passed": self.passed}


def compare_actions(actions: np.ndarray, reference: np.ndarray, episodes: int,
                    tolerance: float = TOLERANCE) -> ParityReport:
    """ParityReport of ``actions`` against ``reference`` (both [T, A])."""
    err = np.abs(actions.astype(np.float64) - reference.astype(np.float64))
    rel = err / np.maximum(np.abs(reference.astype(np.float64)), 1e-6)
    worst = int(np.unravel_index(int(err.argmax()), err.shape)[0]) if err.size else 0
    return ParityReport(len(actions), episodes, float(err.max(initial=0.0)), float(rel.max(initial=0.0)), worst,
                        tolerance)


def step_parity(model: Any, onnx_path: str | os.PathLike[str], recording: Recording,
                tolerance: float = TOLERANCE) -> ParityReport:
    """Torch ``step`` against the ONNX Runtime backend, step by step over ``recording`` through its resets."""
    from robonav.runtime.backends.onnx_backend import OnnxBackend

    reference = torch_actions(model, recording)
    with OnnxBackend(onnx_path) as backend:
        actions = backend_actions(backend, recording)
    return compare_actions(actions, reference, len(recording.segments), tolerance)


def action_deviation_rate(actions: np.ndarray, reference: np.ndarray, limits: tuple[float, ...],
                          fraction: float = 0.05) -> float:
    """Share of steps where some axis differs by more than ``fraction`` of its range (2 * limit: [-limit, limit])."""
    if len(actions) == 0:
        return 0.0
    bound = fraction * 2.0 * np.asarray(limits, dtype=np.float64)
    return float((np.abs(actions - reference) > bound).any(axis=1).mean())


def closed_loop_comparison(a: list[EpisodeResult], b: list[EpisodeResult]) -> dict[str, Any]:
    """Paired comparison of A and B on the same episodes plus ``flips`` (episodes whose success differs)."""
    out = paired_comparison(a, b)
    out["flips"] = out["only_a"] + out["only_b"]
    return out


def run_paired(factories: dict[str, PolicyFactory], episodes: list[EpisodeSpec], config: SimConfig,
               num_envs: int = 8, progress: Callable[[str, int, int], None] | None = None
               ) -> dict[str, list[EpisodeResult]]:
    """Results of each policy on the same episodes and config (the eval runner, as ``robonav eval`` runs it)."""
    out = {}
    for name, factory in factories.items():
        report = None if progress is None else (lambda d, t, name=name: progress(name, d, t))
        out[name] = run_episodes(factory, episodes, config, num_envs=num_envs, progress=report)
    return out


def record_steps(factory: PolicyFactory, config: SimConfig, min_steps: int, suite: str = "val", seed: int = 0,
                 num_envs: int = 4, progress: Callable[[int, int], None] | None = None) -> Recording:
    """Episodes ``suite``/``seed`` 0, 1, ... recorded with ``factory``, batch by batch, until >= ``min_steps``;
    ``progress(steps recorded, min_steps)`` after each batch."""
    from robonav.eval.episodes import make_episodes

    recording = Recording([], [])
    if progress is not None:  # the bar's clock starts now, not after the first batch
        progress(0, min_steps)
    while recording.steps < min_steps:
        have = len(recording.results)
        batch = make_episodes(suite, have + num_envs, seed)[have:]
        more = record_episodes(factory, batch, config, num_envs)
        recording = Recording(recording.segments + more.segments, recording.results + more.results)
        if progress is not None:
            progress(min(recording.steps, min_steps), min_steps)
    return recording


def export_parity(checkpoint: str | os.PathLike[str], onnx_path: str | os.PathLike[str], steps: int = 1000,
                  parity_suite: str = "val", episodes: int = 200, suite: str = "test", seed: int = 0,
                  num_envs: int = 8, tolerance: float = TOLERANCE, progress: StageProgress | None = None
                  ) -> dict[str, Any]:
    """Step parity (torch vs ONNX Runtime over >= ``steps`` recorded ticks of ``parity_suite`` episodes) and the
    closed-loop noise floor (torch vs ONNX Runtime on ``episodes`` paired episodes of ``suite``, 0 to skip);
    both are stored in the model's sidecar (``extra.parity``) and returned. ``progress``: see `StageProgress`."""
    from robonav.eval.episodes import make_episodes
    from robonav.model.sidecar import write_sidecar
    from robonav.policy.agent import TorchAgent, load_policy
    from robonav.policy.checkpoint import file_hash
    from robonav.runtime.backends.onnx_backend import OnnxPolicy

    sidecar = read_sidecar(onnx_path)
    checkpoint = Path(checkpoint)
    if file_hash(checkpoint) != sidecar.checkpoint_sha256:
        raise CheckpointMismatchError(f"{checkpoint} is not the checkpoint {onnx_path} was exported from (sha256 "
                                      "differs from the sidecar's checkpoint_sha256); compare a model with its own "
                                      "checkpoint")
    model, _ = load_policy(checkpoint)
    config = sim_config(sidecar)
    recording = record_steps(lambda n: TorchAgent(model, n), config, steps, parity_suite, 0, min(num_envs, 4),
                             _stage(progress, "parity recording steps"))
    step = step_parity(model, onnx_path, recording, tolerance).to_dict()
    closed = None
    if episodes > 0:
        paired = make_episodes(suite, episodes, seed)
        runs = run_paired({"torch": lambda n: TorchAgent(model, n), "onnx": lambda n: OnnxPolicy(onnx_path, n)},
                          paired, config, num_envs,
                          None if progress is None else (lambda name, d, t: progress(f"closed loop {name}", d, t)))
        c = closed_loop_comparison(runs["onnx"], runs["torch"])
        closed = {"suite": suite, "episodes": episodes, "seed": seed, "flips": c["flips"],
                  "success_torch": c["success_rate_b"], "success_onnx": c["success_rate_a"], "spl_torch": c["spl_b"],
                  "spl_onnx": c["spl_a"], "success_diff": c["success_diff"],
                  "success_diff_ci95": c["success_diff_ci95"], "mcnemar_p": c["mcnemar_p"]}
    parity = {"step": {**step, "suite": parity_suite}, "closed_loop": closed}
    write_sidecar(onnx_path, sidecar.with_extra(parity=parity))
    return parity


def judge(fp32: str | os.PathLike[str], quantized: str | os.PathLike[str], episodes: list[EpisodeSpec],
          num_envs: int = 8, progress: StageProgress | None = None) -> dict[str, Any]:
    """A quantized model against its FP32 export on the same episodes: closed loop through the eval runner, and
    step by step on the FP32 run's observations.

    Keys: ``episodes``, ``steps`` (of the FP32 run), ``success_fp32``, ``success_quantized``, ``success_diff``
    (quantized - FP32) with ``success_diff_ci95`` (Newcombe), ``spl_*`` likewise, ``mcnemar_p``, ``flips``,
    ``action_deviation_rate`` (share of steps where the quantized model, fed the FP32 run's observations and
    its own state, differs by more than 5 % of an axis's range), ``max_action_error``, ``bytes_fp32``,
    ``bytes_quantized``, ``size_ratio``, and ``noise_floor`` (the export's torch vs FP32 closed loop, if run).
    """
    from robonav.runtime.backends.onnx_backend import OnnxBackend, OnnxPolicy

    ref, test = read_sidecar(fp32), read_sidecar(quantized)
    config = sim_config(ref)
    recording = record_episodes(lambda n: OnnxPolicy(fp32, n), episodes, config, num_envs,
                                _stage(progress, "judge fp32"))
    results = run_episodes(lambda n: OnnxPolicy(quantized, n), episodes, config, num_envs=num_envs,
                           progress=_stage(progress, f"judge {test.precision}"))
    with OnnxBackend(fp32) as a, OnnxBackend(quantized) as b:
        ref_actions, test_actions = backend_actions(a, recording), backend_actions(b, recording)
    c = closed_loop_comparison(results, recording.results)
    size_fp32, size_q = Path(fp32).stat().st_size, Path(quantized).stat().st_size
    return {
        "precision": test.precision, "episodes": c["episodes"], "steps": recording.steps,
        "success_fp32": c["success_rate_b"], "success_quantized": c["success_rate_a"],
        "success_diff": c["success_diff"], "success_diff_ci95": c["success_diff_ci95"],
        "spl_fp32": c["spl_b"], "spl_quantized": c["spl_a"], "spl_diff": c["spl_diff"],
        "spl_diff_ci95": c["spl_diff_ci95"], "mcnemar_p": c["mcnemar_p"], "flips": c["flips"],
        "action_deviation_rate": action_deviation_rate(test_actions, ref_actions, ref.action_limits),
        "max_action_error": float(np.abs(test_actions - ref_actions).max(initial=0.0)),
        "bytes_fp32": size_fp32, "bytes_quantized": size_q, "size_ratio": size_q / size_fp32,
        "noise_floor": (ref.extra.get("parity") or {}).get("closed_loop"),
    }


def _stage(progress: StageProgress | None, stage: str) -> Callable[[int, int], None] | None:
    """``progress`` bound to one stage (None stays None)."""
    return None if progress is None else (lambda done, total: progress(stage, done, total))


def format_judgement(r: dict[str, Any]) -> str:
    """The ``robonav quantize`` table: FP32 against the quantized model, the export's noise floor beside it."""
    lines = [f"wrote {r['out']} ({r['precision']})"]
    if "episodes" not in r:
        return lines[0]
    lo, hi = r["success_diff_ci95"]
    slo, shi = r["spl_diff_ci95"]
    floor = r.get("noise_floor")
    lines += [
        f"{r['episodes']} paired episodes of {r['mazes']} (seed {r['seed']}), {r['steps']} FP32 steps",
        f"  {'':<12}{'FP32':>9}{r['precision'].upper():>9}{'diff':>9}  95 % interval",
        f"  {'success':<12}{r['success_fp32']:>9.3f}{r['success_quantized']:>9.3f}{r['success_diff']:>+9.3f}"
        f"  [{lo:+.3f}, {hi:+.3f}]  McNemar p {r['mcnemar_p']:.3f}, {r['flips']} flips",
        f"  {'SPL':<12}{r['spl_fp32']:>9.3f}{r['spl_quantized']:>9.3f}{r['spl_diff']:>+9.3f}  [{slo:+.3f}, {shi:+.3f}]",
        f"  {'bytes':<12}{r['bytes_fp32']:>9}{r['bytes_quantized']:>9}{r['size_ratio']:>9.3f}  (ratio)",
        f"  steps whose action differs by > 5 % of its range: {100 * r['action_deviation_rate']:.2f} % "
        f"(max |diff| {r['max_action_error']:.4f})",
        f"  noise floor (export, torch vs FP32 ONNX): {floor['flips']} flips in {floor['episodes']} episodes of "
        f"{floor['suite']} (seed {floor['seed']})" if floor else
        "  noise floor: not measured (run robonav export with --episodes > 0)",
    ]
    return "\n".join(lines)
