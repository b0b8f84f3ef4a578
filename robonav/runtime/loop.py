"""The fixed-step on-robot loop: newest frame -> Preprocessor -> backend step -> safety layer -> publish, on time.

    loop = ControlLoop.for_backend(backend, driver, RealClock(), LoopConfig.for_model(backend.sidecar))
    summary = loop.run()              # until --ticks, SIGINT/SIGTERM or request_stop(); a stop is always sent

Schedule: tick k starts at ``t0 + k * period`` on the loop's clock (robonav.control: real, scaled, or manual in
tests), computed from k, never by adding periods, so it does not drift. A tick whose work ends after the next
tick's start is a deadline miss; when a tick overruns whole periods, the slots it covered are skipped (counted,
never run in a burst to catch up). The period is the model's (its sidecar); another is refused outside the
explicit stress mode, which reports timing, not navigation.

Per tick, on a new frame (a new (episode_id, seq), see robonav.runtime.driver): the Preprocessor turns it and the
previous safe command into the observation (Numba, its own buffers), the backend steps (state inside), the
shared safety layer of robonav.control filters the action on the frame's raw scan, and the driver publishes it.
No new frame: nothing is published; once no new frame has come for ``watchdog`` seconds the loop sends a stop
every tick until frames return (then it ramps up from rest). A frame the Preprocessor refuses (a scan that does
not fit its description, no beams, a non-finite goal) is answered with a stop at once: on doubt, stop. A scan
too sparse ahead or behind stops motion that way in the safety layer (its rule 6). An episode id change resets
the backend's hidden state, the safety layer's previous command and the fed-back command, and the Preprocessor
resets its memories and odometry origin on the same frame: all together, before that frame is used.

No allocation that outlives a tick and no garbage-collection pause inside a tick: buffers are preallocated, the hot
path writes timestamps into a preallocated row, and with ``gc_freeze`` the collector runs on the loop's schedule:
after warm-up a full collection, gc.freeze() (what warm-up built is never scanned again) and gc.disable(); then,
every ``telemetry_every`` ticks, after the tick's command is out, in the slack before the next deadline, the block of
rows goes into the per-stage histograms (robonav.runtime.telemetry) and one JSON line, and generation 0 is collected
(generation 1 every GC_GEN1_EVERY blocks; the permanent generation never), so cyclic garbage cannot pile up over
a long run while no tick pays for a collection. Stage latencies are real seconds
(``time.perf_counter``); deadlines, wake lateness and the watchdog are on the loop's clock.
"""

from __future__ import annotations

import gc
import math
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from robonav.control.clock import Clock, RealClock, ScaledClock
from robonav.control.safety import SafetyConfig, SafetyLayer, SingleFilter
from robonav.errors import UserError
from robonav.model.meta import PolicyMeta
from robonav.runtime.backends.base import Backend
from robonav.runtime.driver import Driver
from robonav.runtime.telemetry import StageHistograms, TelemetryWriter
from robonav.sensors.frame import ScanSpec, ScanSpecError, SensorFrame
from robonav.sensors.preprocessor import Preprocessor, SensorFrameError

__all__ = ["STAGES", "ControlLoop", "LoopConfig", "LoopConfigError", "LoopSetupError", "LoopSummary", "PeriodError"]

STAGES = ("wake", "frame", "pre", "policy", "safety", "publish", "tick")
"""Histogrammed stages: wake (lateness of the wake-up past the tick's start, clock seconds), frame (driver
latest_frame), pre (Preprocessor), policy (backend step), safety, publish (driver), tick (all of the tick's work)."""

# Columns of a tick's row: clock times, then perf_counter stamps after each stage, then whether a frame was used.
_DEADLINE, _WAKE, _END, _P0, _P_FRAME, _P_PRE, _P_POLICY, _P_SAFETY, _P_PUBLISH, _NEW = range(10)
GC_GEN1_EVERY = 10
"""Telemetry blocks between collections of generation 1 (generation 0 is collected after every block)."""


class LoopConfigError(UserError, ValueError):
    """A LoopConfig field has a value the loop cannot run with."""


class PeriodError(LoopConfigError):
    """A period other than the model's, outside the stress mode."""


class LoopSetupError(UserError, ValueError):
    """The backend, preprocessor, safety layer or driver do not fit together."""


@dataclass(frozen=True)
class LoopConfig:
    """How the loop runs; `LoopConfig.for_model` takes the period from the model's sidecar."""

    period: float
    """Control period (s): the model's, unless ``stress``."""
    stress: bool = False
    """Stress mode: ``period`` may differ from the model's; for timing reports, not navigation."""
    watchdog: float = 0.3
    """Seconds without a new sensor frame after which the loop sends a stop every tick (> period)."""
    ticks: int | None = None
    """Stop after this many ticks; None: run until a signal or request_stop()."""
    telemetry: str | None = None
    """JSON-lines telemetry file (appended); None: no file, the summary is still returned."""
    telemetry_every: int = 100
    """Ticks per telemetry block (histograms updated and one line written after the block's last tick)."""
    gc_freeze: bool = True
    """Freeze and disable the garbage collector while the loop runs (re-enabled after)."""
    handle_signals: bool = True
    """End the loop on SIGINT/SIGTERM (only where run() is called from the main thread)."""
    align: bool = False
    """Wait for the first frame and start tick 0 ``align_offset`` periods after it arrived, so the loop runs in
    step with the sensor (a frame is answered within the period it arrived in) instead of in an arbitrary phase.
    The loop waits on the driver's ``frame_ready()`` where it has one (the robot drivers: it takes nothing), else
    on latest_frame(), which must then return the same newest frame when asked again (a ReplayDriver does not)."""
    align_offset: float = 0.2
    """Periods between the first frame's arrival and tick 0 (align only): room for the frame's other chunks and
    for the sender's jitter."""
    spin: float = 0.0
    """Seconds (of the loop's clock) before each tick's start at which the loop stops sleeping and polls the clock
    instead (real and scaled clocks; a manual clock only moves when told): a core that went idle between ticks
    (a deep idle state, a descheduled virtual CPU, its caches taken by other work) makes every stage of the tick
    that wakes it slow. 0: sleep to the tick's start. Costs ``spin / period`` of the core."""
    prewarm: bool = False
    """At the start of the spin window, warm what the tick runs without changing it: the backend's step once on
    scratch (Backend.prewarm), the Preprocessor's buffers read (Preprocessor.prewarm) and the safety rules on
    scratch (SingleFilter.prewarm), so the tick finds its code and data in cache (needs ``spin`` > 0)."""

    def __post_init__(self) -> None:
        if not (0.0 < self.period < math.inf):
            raise LoopConfigError(f"LoopConfig.period must be finite and > 0 s, actual: {self.period!r}")
        if not (self.watchdog > self.period) or math.isinf(self.watchdog):
            raise LoopConfigError(f"LoopConfig.watchdog must be finite and longer than the period "
                                  f"({self.period} s), actual: {self.watchdog!r}: a shorter one stops the robot "
                                  "between two on-time frames")
        if self.ticks is not None and self.ticks < 0:
            raise LoopConfigError(f"LoopConfig.ticks must be >= 0 or None, actual: {self.ticks!r}")
        if not 0.0 <= self.align_offset < 1.0:
            raise LoopConfigError(f"LoopConfig.align_offset must be in [0, 1) periods, actual: {self.align_offset!r}")
        if not 0.0 <= self.spin < self.period:
            raise LoopConfigError(f"LoopConfig.spin must be in [0, period) seconds ({self.period}), actual: "
                                  f"{self.spin!r}")
        if self.prewarm and self.spin <= 0.0:
            raise LoopConfigError("LoopConfig.prewarm needs spin > 0: the warm step runs at the start of the spin "
                                  "window (a warm step followed by sleep leaves the caches to other work)")
        if self.telemetry_every < 1:
            raise LoopConfigError(f"LoopConfig.telemetry_every must be >= 1 tick, actual: {self.telemetry_every!r}")

    @classmethod
    def for_model(cls, sidecar: PolicyMeta, stress_hz: float | None = None, **kw: Any) -> LoopConfig:
        """The model's control period, or ``1 / stress_hz`` in stress mode; other fields from ``kw``."""
        if stress_hz is None:
            return cls(period=float(sidecar.control_period), **kw)
        if not (0.0 < stress_hz < math.inf):
            raise LoopConfigError(f"stress rate must be finite and > 0 Hz, actual: {stress_hz!r}")
        return cls(period=1.0 / stress_hz, stress=True, **kw)


@dataclass
class LoopSummary:
    """What a run did: counts, and per-stage latencies (us) from the histograms."""

    exit_reason: str = ""
    """'ticks', 'SIGINT', 'SIGTERM', a request_stop() reason, or 'error: <type>'."""
    ticks: int = 0
    """Ticks run (skipped slots not included)."""
    frames: int = 0
    """New frames processed and answered with a command."""
    deadline_misses: int = 0
    """Ticks whose work ended after the next tick's start."""
    skipped_ticks: int = 0
    """Schedule slots skipped because an overrun covered them."""
    held_ticks: int = 0
    """Ticks without a new frame, within the watchdog time (nothing published)."""
    stale_ticks: int = 0
    """Ticks without a new frame for longer than the watchdog (a stop published)."""
    bad_frames: int = 0
    """Frames the Preprocessor refused (non-finite goal, scan not fitting its description): answered with a stop."""
    stops: int = 0
    """Stop commands sent (watchdog, bad frames and shutdown)."""
    episodes: int = 0
    """Episode starts seen (episode id changes, the first included)."""
    period: float = 0.0
    """Control period (s)."""
    stress: bool = False
    """Whether the period was the stress mode's."""
    duration: float = 0.0
    """Clock seconds from the first tick's start to the end."""
    latency: dict[str, dict[str, float]] = field(default_factory=dict)
    """Per stage (STAGES): count, mean_us, p50_us, p90_us, p99_us, p999_us, max_us."""

    @property
    def miss_rate(self) -> float:
        """Deadline misses per tick (0 when no tick ran)."""
        return self.deadline_misses / self.ticks if self.ticks else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "miss_rate": self.miss_rate}


class ControlLoop:
    """One robot's fixed-step loop (see the module docstring). ``run()`` once per loop object."""

    def __init__(self, backend: Backend, preprocessor: Preprocessor, safety: SafetyLayer, driver: Driver,
                 clock: Clock, config: LoopConfig) -> None:
        _check_setup(backend, preprocessor, safety, config)
        self.backend, self.pre, self.safety, self.driver, self.clock = backend, preprocessor, safety, driver, clock
        self.config = config
        self.hist = StageHistograms(STAGES)
        self.summary = LoopSummary(period=config.period, stress=config.stress)
        self.last_action: np.ndarray | None = None
        """The backend's raw action of the last answered frame (before safety)."""
        self.last_command = np.zeros(2)
        """(v, omega) last published after safety, fed back to the Preprocessor; zero at an episode start."""
        self._rows = np.zeros((config.telemetry_every, 10))  # [ticks of a block, columns]
        self._i = 0  # next row
        self._events: list[dict[str, Any]] = []  # rare events (episode, watchdog, bad frame), written per block
        self._episode: int | None = None
        self._seq: int | None = None
        self._last_new = 0.0  # clock time of the last new frame (or of the start)
        self._stale = False
        self._scan: ScanSpec | None = None
        self._filter: SingleFilter | None = None  # the safety layer for self._scan's beams
        self._bad = False  # the newest frame was refused: the robot is held stopped
        self._stop_reason: str | None = None
        self._misses_flushed = 0
        self._blocks = 0
        self._ran = False
        self.on_tick: Callable[[float, bool, bool], None] | None = None
        """Called at the end of every tick with (clock time, whether the tick ended on time, whether the loop holds
        the robot stopped: no frames for the watchdog time, or a refused frame); robonav.runtime.sdnotify's
        ServiceWatchdog.tick feeds systemd from it."""

    @classmethod
    def for_backend(cls, backend: Backend, driver: Driver, clock: Clock, config: LoopConfig,
                    safety: SafetyConfig | None = None) -> ControlLoop:
        """A loop with the Preprocessor the model's sidecar describes and a one-robot safety layer."""
        spec = backend.sidecar.observation_spec
        if spec is None:
            raise LoopSetupError(f"{backend.name}: observation {backend.sidecar.observation!r}; the robot runs "
                                 "models trained on the Preprocessor's observation only ('plain' models need the "
                                 "simulator's observer: evaluate them with robonav eval)")
        return cls(backend, Preprocessor(spec), SafetyLayer(safety or SafetyConfig(), 1),
                   driver, clock, config)

    def request_stop(self, reason: str = "requested") -> None:
        """End the loop after the current tick (from another thread or a signal handler)."""
        self._stop_reason = reason

    def warmup(self) -> None:
        """Compile or load every kernel a tick runs (the Preprocessor's, its prewarm's, the safety rules') and run
        one backend step, then reset both (before t0): the first tick loads nothing."""
        self.pre.warmup()
        self.pre.prewarm()
        self.backend.step(np.zeros(self.pre.dim, np.float32))
        self.backend.reset()
        self.backend.prewarm()
        self.safety.single(ScanSpec.evenly_spaced(8).beam_angles(), self.config.period).prewarm()

    # -- the loop ----------------------------------------------------------------------------------------------

    def run(self, on_start: Callable[[], None] | None = None) -> LoopSummary:
        """Run until ``config.ticks``, a signal or request_stop(); send a stop, write the end record, return.
        ``on_start`` is called once the signal handlers are in place, just before the first tick."""
        cfg, s = self.config, self.summary
        if self._ran:
            raise LoopSetupError("ControlLoop.run() was called before on this loop; build a new loop for a new run")
        self._ran = True
        self.warmup()
        writer = TelemetryWriter(cfg.telemetry)
        handlers: dict[int, Any] = {}
        gc_enabled = gc.isenabled()
        t0 = self.clock.now()
        try:
            handlers = self._install_signals() if cfg.handle_signals else {}
            if cfg.gc_freeze:
                gc.collect()
                gc.freeze()
                gc.disable()
            writer.write({"event": "start", "period": cfg.period, "stress": cfg.stress, "watchdog": cfg.watchdog,
                          "backend": self.backend.name, "precision": self.backend.sidecar.precision,
                          "obs_dim": self.pre.dim, "clock": repr(self.clock), "wall_time": time.time()})
            if on_start is not None:
                on_start()
            t0 = self.clock.now()
            self._schedule(t0, writer)
        except BaseException as e:
            s.exit_reason = f"error: {type(e).__name__}"
            raise
        finally:
            try:
                self._send_stop()
            finally:
                s.duration = self.clock.now() - t0
                if cfg.gc_freeze:
                    gc.unfreeze()
                    if gc_enabled:
                        gc.enable()
                for signum, handler in handlers.items():
                    signal.signal(signum, handler)
                self._flush(writer)
                s.latency = self.hist.summary()
                writer.write({"event": "end", **s.to_dict()})
                writer.close()
        return s

    def _schedule(self, t0: float, writer: TelemetryWriter) -> None:
        """Tick k at t0 + k * period until a stop is asked for or the ticks are done; skip slots an overrun
        covered (never burst to catch up)."""
        cfg, clock, s = self.config, self.clock, self.summary
        period = cfg.period
        spin = cfg.spin if isinstance(clock, (RealClock, ScaledClock)) else 0.0  # a manual clock: never ends
        if cfg.align:
            t0 = self._align()
        self._last_new = t0
        k = 0
        while True:
            if self._stop_reason is not None:
                s.exit_reason = self._stop_reason
                return
            if cfg.ticks is not None and s.ticks >= cfg.ticks:
                s.exit_reason = "ticks"
                return
            deadline = t0 + k * period
            if spin > 0.0:
                clock.sleep_until(max(deadline - spin, clock.now()))
                if cfg.prewarm:
                    self.pre.prewarm()  # first: its reads are the largest, the step's weights go on top
                    self.backend.prewarm()
                    if self._filter is not None:
                        self._filter.prewarm()
                while clock.now() < deadline:  # poll: the core stays awake for the tick
                    pass
            else:
                clock.sleep_until(deadline)
            self._tick(deadline)
            if self._i == len(self._rows):
                self._flush(writer)
                self._collect()
            k += 1
            late = clock.now() - (t0 + k * period)
            if late >= period:
                skip = int(late // period)
                s.skipped_ticks += skip
                k += skip

    def _collect(self) -> None:
        """In a block's slack: collect generation 0, and 1 every GC_GEN1_EVERY blocks (module docstring)."""
        if self.config.gc_freeze:
            self._blocks += 1
            gc.collect(1 if self._blocks % GC_GEN1_EVERY == 0 else 0)

    def _align(self) -> float:
        """Poll the driver until a frame arrives (or a stop is asked for); the time tick 0 starts at. A driver with
        ``frame_ready()`` is asked that (it takes nothing, so tick 0 takes the first frame the loop sees and
        integrates its odometry); others are asked latest_frame()."""
        clock, period = self.clock, self.config.period
        ready = getattr(self.driver, "frame_ready", None)
        if not callable(ready):
            def ready() -> bool:
                return self.driver.latest_frame() is not None
        while self._stop_reason is None and not ready():
            clock.sleep_until(clock.now() + period / 50)
        return clock.now() + self.config.align_offset * period

    def _tick(self, deadline: float) -> None:
        """One tick's work; writes its row. The hot path: no allocation that outlives it."""
        perf = time.perf_counter
        s = self.summary
        row = self._rows[self._i]
        self._i += 1
        s.ticks += 1
        row[_DEADLINE] = deadline
        now = self.clock.now()
        row[_WAKE] = now
        row[_P0] = perf()
        frame = self.driver.latest_frame()
        row[_P_FRAME] = perf()
        if frame is not None and (frame.seq != self._seq or frame.episode_id != self._episode):
            self._seq = frame.seq
            self._last_new = now
            self._answer(frame, row)
        else:
            row[_P_PRE] = row[_P_POLICY] = row[_P_SAFETY] = row[_P_PUBLISH] = row[_P_FRAME]
            row[_NEW] = 0.0
            if now - self._last_new > self.config.watchdog:
                if not self._stale:
                    self._stale = True
                    self._events.append({"event": "watchdog", "tick": s.ticks, "t": now,
                                         "since_frame": now - self._last_new})
                s.stale_ticks += 1
                self._send_stop()
            else:
                s.held_ticks += 1
        end = self.clock.now()
        row[_END] = end
        on_time = end <= deadline + self.config.period
        if not on_time:
            s.deadline_misses += 1
        if self.on_tick is not None:
            self.on_tick(end, on_time, self._stale or self._bad)

    def _answer(self, frame: SensorFrame, row: np.ndarray) -> None:
        """Preprocess, step, filter and publish for a new frame."""
        perf = time.perf_counter
        s = self.summary
        if frame.episode_id != self._episode:  # a new goal or reset: everything starts over together
            self._episode = frame.episode_id
            self.backend.reset()
            self.safety.reset()
            self.last_command[:] = 0.0
            s.episodes += 1
            self._events.append({"event": "episode", "episode_id": frame.episode_id, "tick": s.ticks})
        elif self._stale:  # frames are back after a watchdog stop: the robot is at rest
            self.safety.reset()
            self.last_command[:] = 0.0
        if self._stale:
            self._stale = False
            self._events.append({"event": "frames_back", "tick": s.ticks})
        try:
            obs = self.pre(frame, self.last_command)  # resets itself on the new episode id
        except (SensorFrameError, ScanSpecError) as e:
            s.bad_frames += 1
            self._events.append({"event": "bad_frame", "tick": s.ticks, "seq": frame.seq, "reason": str(e)})
            self._bad = True  # doubt means stop: now, not after the watchdog time
            self.safety.reset()
            self.last_command[:] = 0.0
            self._send_stop()
            row[_P_PRE] = row[_P_POLICY] = row[_P_SAFETY] = row[_P_PUBLISH] = perf()
            row[_NEW] = 0.0
            return
        self._bad = False
        row[_P_PRE] = perf()
        action = self.backend.step(obs)
        self.last_action = action
        row[_P_POLICY] = perf()
        if frame.scan is not self._scan:  # drivers that build a ScanSpec per frame: rebuild only on a new one
            if self._filter is None or frame.scan != self._scan:
                self._filter = self.safety.single(frame.scan.beam_angles(), self.config.period)
            self._scan = frame.scan
        assert self._filter is not None
        v, omega = self._filter(float(action[0]), float(action[1]), frame.ranges)
        self.last_command[0] = v
        self.last_command[1] = omega
        row[_P_SAFETY] = perf()
        self.driver.publish(v, omega, frame.seq)
        row[_P_PUBLISH] = perf()
        row[_NEW] = 1.0
        s.frames += 1

    def _send_stop(self) -> None:
        self.summary.stops += 1
        self.driver.stop()

    # -- outside the hot path -----------------------------------------------------------------------------------

    def _flush(self, writer: TelemetryWriter) -> None:
        """Histogram the block of rows, write its line and the events it saw, start a new block."""
        n, self._i = self._i, 0
        for event in self._events:
            writer.write(event)
        self._events.clear()
        if n == 0:
            writer.flush()
            return
        rows = self._rows[:n]
        new = rows[:, _NEW] > 0.0
        h = self.hist
        h.add("wake", rows[:, _WAKE] - rows[:, _DEADLINE])
        h.add("frame", rows[:, _P_FRAME] - rows[:, _P0])
        for stage, a, b in (("pre", _P_FRAME, _P_PRE), ("policy", _P_PRE, _P_POLICY),
                            ("safety", _P_POLICY, _P_SAFETY), ("publish", _P_SAFETY, _P_PUBLISH)):
            h.add(stage, rows[new, b] - rows[new, a])
        tick = rows[:, _P_PUBLISH] - rows[:, _P0]
        h.add("tick", tick)
        s = self.summary
        writer.write({"event": "block", "tick": s.ticks, "t": float(rows[-1, _END]), "ticks": n,
                      "frames": int(new.sum()), "misses": s.deadline_misses - self._misses_flushed,
                      "tick_p50_us": round(1e6 * float(np.sort(tick)[(n - 1) // 2]), 1),
                      "tick_max_us": round(1e6 * float(tick.max()), 1),
                      "wake_max_us": round(1e6 * float((rows[:, _WAKE] - rows[:, _DEADLINE]).max()), 1),
                      "command": [float(self.last_command[0]), float(self.last_command[1])],
                      "episode_id": self._episode})
        writer.flush()
        self._misses_flushed = s.deadline_misses

    def _install_signals(self) -> dict[int, Any]:
        """SIGINT/SIGTERM -> request_stop(name); returns the previous handlers (none off the main thread)."""
        if threading.current_thread() is not threading.main_thread():
            return {}

        def on_signal(signum: int, _frame: object) -> None:
            self.request_stop(signal.Signals(signum).name)

        return {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}


def _check_setup(backend: Backend, pre: Preprocessor, safety: SafetyLayer, config: LoopConfig) -> None:
    """Refuse parts that do not fit: a closed backend, another observation layout, a batch safety layer, a
    period other than the model's outside stress mode."""
    side = backend.sidecar
    if not backend.is_open:
        raise LoopSetupError(f"{backend.name} is not open; open it (or use `with`) before building the loop")
    if side.observation_spec is not None and side.observation_spec != pre.spec:
        raise LoopSetupError(f"{backend.name}: the Preprocessor's ObservationSpec (D={pre.dim}) differs from the "
                             f"model's (D={side.obs_dim}): build it from the sidecar (ControlLoop.for_backend)")
    if pre.dim != side.obs_dim:
        raise LoopSetupError(f"{backend.name}: the Preprocessor writes {pre.dim} floats, the model takes "
                             f"{side.obs_dim}: build it from the sidecar (ControlLoop.for_backend)")
    if safety.num_envs != 1:
        raise LoopSetupError(f"the safety layer is built for {safety.num_envs} envs; the loop drives one robot: "
                             "SafetyLayer(config, num_envs=1)")
    if not config.stress and not math.isclose(config.period, side.control_period, rel_tol=1e-9):
        raise PeriodError(f"{backend.name}: period {config.period} s differs from the model's control period "
                          f"{side.control_period} s (its sidecar); the policy was trained at that period: run at it, "
                          "or use the stress mode (--stress HZ) for a timing report")
