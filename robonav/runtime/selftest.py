"""``robonav selftest``: before a robot drives, check on the target that this install computes what the dev
machine computed, and fast enough.

A selftest recording (``<model>.selftest.npz``, written on a dev machine by ``robonav selftest --record``) holds
the raw sensor frames of whole simulated episodes that the control loop drove with ONNX Runtime, the command fed
back with each frame, the observations the Preprocessor made of them and the reference actions. On the target,
three checks run on it, with no simulator:

1. preprocessor: the frames and fed-back commands through this install's Preprocessor (Numba, compiled here)
   give the recorded observations (max |error| <= OBS_TOLERANCE);
2. parity: the backend, fed the recorded observations and reset at every episode start, gives the reference
   actions within its precision's bound (`PARITY_BOUNDS`);
3. timing: the real control loop replays the frames back to back (manual clock, so no waiting) and the tick's
   p99 compute time stays within ``budget`` of the control period.

PASS needs all three. The parity bounds are provisional (set on this workplace's CPU, not yet on a Jetson):
FP32 max |action error| <= 1e-4 (SI units), FP16 and INT8 a share of steps whose action differs by more than
5 % of its range (the quantize judgement's measure) <= 2 % and 5 %.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from robonav.atomic import atomic_path
from robonav.control.clock import ManualClock
from robonav.control.safety import SafetyConfig
from robonav.errors import UserError
from robonav.runtime.backends.base import Backend
from robonav.runtime.driver import Driver, ReplayDriver
from robonav.runtime.loop import ControlLoop, LoopConfig
from robonav.runtime.run import DriverFactory, RunSettings
from robonav.sensors.frame import ScanSpec, SensorFrame
from robonav.sensors.preprocessor import Preprocessor
from robonav.sensors.spec import ObservationSpec
from robonav.settings import SettingsError

__all__ = ["BUDGET", "FORMAT", "OBS_TOLERANCE", "PARITY_BOUNDS", "RecordingDriver", "RecordingError",
           "SelftestRecording", "record", "recording_path", "replay_actions", "replay_obs", "run_selftest",
           "selftest_verb"]

FORMAT = "robonav.selftest/1"
OBS_TOLERANCE = 1e-5
"""Max |observation error| of the target's Preprocessor against the recording."""
PARITY_BOUNDS = {"fp32": ("max_abs_error", 1e-4), "fp16": ("deviation_rate", 0.02), "int8": ("deviation_rate", 0.05)}
"""Per precision of the backend's model: (measure, bound) of its actions against the recording's reference."""
BUDGET = 0.5
"""Share of the control period the tick's p99 compute time may take."""
DEVIATION = 0.05
"""An action 'deviates' when some axis differs by more than this share of its range (2 * limit)."""


class RecordingError(UserError, ValueError):
    """A selftest recording that is missing, malformed, or made for another observation layout."""


@dataclass
class SelftestRecording:
    """Frames, fed-back commands, observations and reference actions of recorded episodes (T ticks)."""

    scan: ScanSpec
    """The scanner description every recorded frame shares."""
    ranges: np.ndarray
    """float32 [T, B] raw scans (REP 117 values)."""
    odom: np.ndarray
    """float64 [T, 3] odometry deltas."""
    goal: np.ndarray
    """float64 [T, 2] goals in the odometry frame."""
    episode: np.ndarray
    """int64 [T] episode ids."""
    seq: np.ndarray
    """int64 [T] frame sequence numbers."""
    command: np.ndarray
    """float64 [T, 2] the command fed back to the Preprocessor with each frame (0 at an episode start)."""
    obs: np.ndarray
    """float32 [T, D] the observations the Preprocessor made."""
    actions: np.ndarray
    """float32 [T, A] the reference backend's actions on them."""
    meta: dict[str, Any] = field(default_factory=dict)
    """Reference model (file, sha256, precision), control period, observation spec, how it was recorded."""

    @property
    def steps(self) -> int:
        """Recorded ticks T."""
        return len(self.episode)

    @property
    def starts(self) -> np.ndarray:
        """bool [T]: True where an episode begins."""
        out = np.ones(len(self.episode), dtype=bool)
        out[1:] = self.episode[1:] != self.episode[:-1]
        return out

    def frames(self) -> list[SensorFrame]:
        """The recorded frames as SensorFrames (views into the arrays)."""
        return [SensorFrame(self.ranges[t], self.scan, self.odom[t], self.goal[t], episode_id=int(self.episode[t]),
                            stamp=float(t), seq=int(self.seq[t])) for t in range(self.steps)]

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the recording as a compressed .npz (no pickles), atomically (robonav.atomic)."""
        path = Path(path)
        meta = {**self.meta, "format": FORMAT, "scan": asdict(self.scan)}
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez_compressed(f, ranges=self.ranges, odom=self.odom, goal=self.goal, episode=self.episode,
                                seq=self.seq, command=self.command, obs=self.obs, actions=self.actions,
                                meta=np.array(json.dumps(meta)))
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> SelftestRecording:
        """Read a recording written by `save`; refuses another format with the reason."""
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
            meta = json.loads(str(arrays.pop("meta")))
            scan = dict(meta.pop("scan"))
        except (OSError, ValueError, KeyError) as e:
            raise RecordingError(f"{path}: not a readable selftest recording ({type(e).__name__}: {e}); record "
                                 "one with `robonav selftest --record FILE --model MODEL.onnx` on a dev machine") from e
        if meta.get("format") != FORMAT:
            raise RecordingError(f"{path}: format {meta.get('format')!r}, expected {FORMAT!r}; record it again "
                                 "with this robonav")
        if scan.get("angles") is not None:
            scan["angles"] = tuple(scan["angles"])
        return cls(ScanSpec(**scan), meta=meta, **arrays)


def recording_path(model: str | os.PathLike[str]) -> Path:
    """Where a model's recording is looked for: ``<model stem>.selftest.npz`` beside it."""
    return Path(model).with_suffix(".selftest.npz")


class RecordingDriver:
    """Wraps a driver and keeps every new frame (copied) and the command the loop feeds back with it."""

    def __init__(self, inner: Driver) -> None:
        self.inner = inner
        self.frames: list[SensorFrame] = []
        self.commands: list[tuple[float, float]] = []
        self._key: tuple[int, int] | None = None
        self._last = (0.0, 0.0)

    def latest_frame(self) -> SensorFrame | None:
        frame = self.inner.latest_frame()
        if frame is not None and (frame.episode_id, frame.seq) != self._key:
            if self._key is None or frame.episode_id != self._key[0]:
                self._last = (0.0, 0.0)  # the loop resets the fed-back command on a new episode
            self._key = (frame.episode_id, frame.seq)
            self.frames.append(SensorFrame(np.array(frame.ranges, np.float32), frame.scan,
                                           np.array(frame.odom_delta, np.float64), np.array(frame.goal, np.float64),
                                           frame.episode_id, frame.stamp, frame.seq))
            self.commands.append(self._last)
        return frame

    def publish(self, v: float, omega: float, answers_seq: int) -> None:
        self._last = (v, omega)
        self.inner.publish(v, omega, answers_seq)

    def stop(self) -> None:
        self._last = (0.0, 0.0)
        self.inner.stop()

    def close(self) -> None:
        self.inner.close()


def _spec(backend: Backend) -> ObservationSpec:
    """The backend's model's ObservationSpec; RecordingError for a 'plain' model (the robot runs the Preprocessor)."""
    spec = backend.sidecar.observation_spec
    if spec is None:
        raise RecordingError(f"{backend.name}: a model of the simulator's 'plain' observation has no Preprocessor "
                             "to check; the robot runs models trained on the Preprocessor's observation only")
    return spec


def _spec_json(spec: ObservationSpec) -> Any:
    """``spec.to_dict()`` as it reads back from JSON (lists, not tuples), to compare with a recording's."""
    return json.loads(json.dumps(spec.to_dict()))


def replay_obs(recording: SelftestRecording, spec: ObservationSpec) -> np.ndarray:
    """Observations [T, D] of a fresh Preprocessor fed the recorded frames and commands."""
    pre = Preprocessor(spec)
    out = np.empty((recording.steps, spec.size), dtype=np.float32)
    for t, frame in enumerate(recording.frames()):
        out[t] = pre(frame, recording.command[t])
    return out


def replay_actions(backend: Backend, obs: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Actions [T, A] of an open backend over ``obs``, reset where ``starts``."""
    out = np.empty((len(obs), len(backend.sidecar.action_limits)), dtype=np.float32)
    for t in range(len(obs)):
        if starts[t]:
            backend.reset()
        out[t] = backend.step(obs[t])
    return out


def record(reference: Backend, driver: Driver, steps: int, safety: SafetyConfig | None = None,
           **meta: Any) -> SelftestRecording:
    """Drive ``driver`` with the control loop on ``reference`` (manual clock) for ``steps`` ticks and keep what
    happened; ``meta`` is stored with it (for example the episode suite)."""
    recorder = RecordingDriver(driver)
    config = LoopConfig.for_model(reference.sidecar, ticks=steps, gc_freeze=False, handle_signals=False)
    ControlLoop.for_backend(reference, recorder, ManualClock(), config, safety).run()
    frames = recorder.frames
    if not frames:
        raise RecordingError("the driver gave no frame to record")
    scan = frames[0].scan
    if any(f.scan != scan for f in frames):
        raise RecordingError("the recorded frames use more than one scan description; record with a fixed scanner "
                             "(randomization off)")
    side = reference.sidecar
    spec = _spec(reference)
    rec = SelftestRecording(
        scan=scan, ranges=np.stack([f.ranges for f in frames]), odom=np.stack([f.odom_delta for f in frames]),
        goal=np.stack([f.goal for f in frames]), episode=np.array([f.episode_id for f in frames], np.int64),
        seq=np.array([f.seq for f in frames], np.int64), command=np.array(recorder.commands, np.float64),
        obs=np.empty((0, spec.size), np.float32), actions=np.empty((0, 2), np.float32),
        meta={"model_file": side.model_file, "model_sha256": side.model_sha256, "precision": side.precision,
              "reference": reference.name, "control_period": side.control_period,
              "observation_spec": _spec_json(spec), **meta})
    rec.obs = replay_obs(rec, spec)
    rec.actions = replay_actions(reference, rec.obs, rec.starts)
    rec.meta["episodes"] = int(rec.starts.sum())
    return rec


def run_selftest(backend: Backend, recording: SelftestRecording, budget: float = BUDGET,
                 tolerance: float | None = None, safety: SafetyConfig | None = None) -> dict[str, Any]:
    """The three checks of the module docstring on an open backend; a flat dict of figures with ``passed``."""
    side = backend.sidecar
    spec = _spec(backend)
    if recording.meta.get("observation_spec") != _spec_json(spec):
        raise RecordingError(f"the recording was made for model {recording.meta.get('model_file')!r} with another "
                             f"observation layout than {side.model_file!r}; record one for this model "
                             "(robonav selftest --record)")
    out: dict[str, Any] = {"backend": backend.name, "precision": side.precision, "steps": recording.steps,
                           "episodes": int(recording.starts.sum()), "reference": recording.meta.get("reference"),
                           "reference_precision": recording.meta.get("precision")}

    obs_error = float(np.abs(replay_obs(recording, spec) - recording.obs).max(initial=0.0))
    out.update(preprocessor_max_abs_error=obs_error, preprocessor_tolerance=OBS_TOLERANCE,
               preprocessor_passed=obs_error <= OBS_TOLERANCE)

    actions = replay_actions(backend, recording.obs, recording.starts).astype(np.float64)
    error = np.abs(actions - recording.actions.astype(np.float64))  # [T, A]
    span = 2.0 * np.asarray(side.action_limits, dtype=np.float64)
    figures = {"max_abs_error": float(error.max(initial=0.0)),
               "deviation_rate": float((error > DEVIATION * span).any(axis=1).mean()) if len(error) else 0.0}
    measure, bound = ("max_abs_error", tolerance) if tolerance is not None else PARITY_BOUNDS[side.precision]
    out.update(parity_max_abs_error=figures["max_abs_error"], parity_deviation_rate=figures["deviation_rate"],
               parity_criterion=f"{measure} <= {bound:g}", parity_passed=figures[measure] <= bound)

    config = LoopConfig.for_model(side, ticks=recording.steps, gc_freeze=True, handle_signals=False)
    loop = ControlLoop.for_backend(backend, ReplayDriver(recording.frames()), ManualClock(), config, safety)
    latency = loop.run().latency
    limit_us = budget * side.control_period * 1e6
    for stage in ("pre", "policy", "safety", "tick"):
        out[f"timing_{stage}_p50_us"] = latency[stage].get("p50_us")
        out[f"timing_{stage}_p99_us"] = latency[stage].get("p99_us")
    out.update(timing_tick_max_us=latency["tick"].get("max_us"), timing_budget_us=limit_us,
               timing_passed=bool(latency["tick"].get("p99_us", float("inf")) <= limit_us))
    out["passed"] = bool(out["preprocessor_passed"] and out["parity_passed"] and out["timing_passed"])
    return out


def format_result(result: dict[str, Any]) -> str:
    """PASS/FAIL per check with its figures, for people."""
    def mark(ok: bool) -> str:
        return "PASS" if ok else "FAIL"

    r = result
    return "\n".join([
        f"{mark(r['passed'])}  selftest of {r['backend']} ({r['precision']}) on {r['steps']} recorded ticks, "
        f"{r['episodes']} episodes (reference {r['reference']}, {r['reference_precision']})",
        f"  {mark(r['preprocessor_passed'])}  preprocessor: max |obs error| {r['preprocessor_max_abs_error']:.3g} "
        f"(<= {r['preprocessor_tolerance']:g})",
        f"  {mark(r['parity_passed'])}  parity: max |action error| {r['parity_max_abs_error']:.3g}, "
        f"{100 * r['parity_deviation_rate']:.2f} % of steps off by > {100 * DEVIATION:g} % of range "
        f"(needs {r['parity_criterion']})",
        f"  {mark(r['timing_passed'])}  timing: tick p50 {r['timing_tick_p50_us']} us, p99 {r['timing_tick_p99_us']} "
        f"us, max {r['timing_tick_max_us']} us (p99 budget {r['timing_budget_us']:.0f} us); policy p50 "
        f"{r['timing_policy_p50_us']} us, preprocessor p50 {r['timing_pre_p50_us']} us, safety p50 "
        f"{r['timing_safety_p50_us']} us",
    ])


def selftest_verb(settings: RunSettings, make_driver: DriverFactory, *, recording: str | None = None,
                  record_to: str | None = None, steps: int = 1000, suite: str = "val", seed: int = 0,
                  budget: float = BUDGET, tolerance: float | None = None, as_json: bool = False,
                  warmup: bool = False) -> int:
    """``robonav selftest``: with ``record_to``, record the model's episodes with ONNX Runtime on the simulator
    and save them; with ``warmup``, only open the backend and compile (or load from the cache) every Numba
    kernel the loop runs; else run the checks on ``recording`` (default ``<model>.selftest.npz``; where absent,
    a dev machine records one now) and print PASS/FAIL. Returns the exit code (1: FAIL)."""
    from robonav.runtime.backends.registry import open_backend
    from robonav.runtime.run import backend_kwargs, model_path

    model = model_path(settings.model)
    if warmup:
        t0 = time.perf_counter()
        with open_backend(settings.backend, model, **backend_kwargs(settings)) as backend:
            spec = _spec(backend)
            Preprocessor(spec).warmup()
            backend.step(np.zeros(spec.size, np.float32))
            name = backend.name
        seconds = time.perf_counter() - t0
        print(json.dumps({"warm": name, "seconds": round(seconds, 3)}) if as_json else
              f"warm: {name} and the Preprocessor kernels in {seconds:.1f} s")
        return 0
    if record_to is not None:
        rec = _record_now(model, make_driver, steps, suite, seed, settings.safety, None)
        rec.save(record_to)
        made = {"recording": str(record_to), "steps": rec.steps, "episodes": rec.meta["episodes"], "suite": suite,
                "seed": seed, "reference": rec.meta["reference"]}
        print(json.dumps(made, sort_keys=True) if as_json else
              f"wrote {record_to}: {rec.steps} ticks of {rec.meta['episodes']} {suite} episodes driven by "
              f"{rec.meta['reference']}")
        return 0
    path = Path(recording) if recording else recording_path(model)
    if recording is not None and not path.is_file():
        raise RecordingError(f"{path}: no such selftest recording; record one with `robonav selftest --record "
                             f"{path.name} --model MODEL.onnx` on a dev machine")
    with open_backend(settings.backend, model, **backend_kwargs(settings)) as backend:
        if path.is_file():
            rec, source = SelftestRecording.load(path), str(path)
        else:
            rec = _record_now(model, make_driver, steps, suite, seed, settings.safety, path)
            source = f"recorded now: {suite} episodes, seed {seed}"
        result = run_selftest(backend, rec, budget, tolerance, settings.safety)
    result["recording"] = source
    print(json.dumps(result, sort_keys=True) if as_json else format_result(result))
    return 0 if result["passed"] else 1


def _record_now(model: Path, make_driver: DriverFactory, steps: int, suite: str, seed: int,
                safety: SafetyConfig, missing: Path | None) -> SelftestRecording:
    """Record ``steps`` ticks of ``suite`` episodes on the simulator with ONNX Runtime on ``model``; where that
    cannot run here (a robot), say how to bring a recording instead."""
    from robonav.runtime.backends.registry import BackendUnavailableError, open_backend
    from robonav.runtime.run import SimDriverSettings

    hint = (f"no selftest recording {missing} here, and " if missing is not None else "") + \
        "recording one needs the simulator and ONNX Runtime on the .onnx model (a dev machine: robonav[sim,deploy]): "\
        f"run `robonav selftest --record {recording_path(model).name} --model MODEL.onnx` there and copy the file " \
        "beside the model (or pass --recording)"
    if model.suffix != ".onnx":
        raise RecordingError(f"{model} is not an .onnx model; {hint}")
    try:
        with open_backend("ort", model) as reference:
            period = reference.sidecar.control_period
            driver = make_driver(reference.sidecar, SimDriverSettings(suite, max(1, steps // 100), seed), period)
            try:
                return record(reference, driver, steps, safety, suite=suite, seed=seed)
            finally:
                driver.close()
    except (ModuleNotFoundError, BackendUnavailableError, SettingsError) as e:  # no simulator or ONNX Runtime
        raise RecordingError(f"{hint} ({e})") from e
