"""`robonav replay LOG`: rerun a wire recording offline and check that the commands come out bit for bit.

The recording (robonav.runtime.wire.recording, written by the UDP driver with ``run.record``) holds every datagram the
runtime received and sent and, per tick, which frame the loop took. Replay feeds the received datagrams through
the same receiver and odometry bookkeeping as the driver (robonav.runtime.wire.receiver, PoseDeltas), rebuilds the
frames the loop took, in order, and runs them through the real `ControlLoop` (Preprocessor, backend, safety layer)
on a manual clock. What the loop's state depends on besides the frames is whether it went stale between two of
them (a watchdog stop resets the safety layer and the fed-back command): a stop sent between two takes is replayed
as enough frameless ticks to go stale again. Every command the replay publishes is compared with the one that
went on the wire: same count, same answered frame, the same float64 v and omega.

Signed recordings (wire version 2): with the robot's key (``--key-file``, or $ROBONAV_WIRE_KEY_FILE /
$ROBONAV_WIRE_KEY) every recorded datagram is verified as the driver verified it, and a datagram altered in the
file is dropped as the driver would have dropped a forged one (the replay then reports the mismatch); without a
key the recording is trusted: signed datagrams are decoded unverified (``verified`` false in the result). The
replay window runs without its clock bound: a recording is old by nature.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from robonav.control.clock import ManualClock
from robonav.control.safety import SafetyConfig
from robonav.runtime.driver import ReplayDriver
from robonav.runtime.loop import ControlLoop, LoopConfig
from robonav.runtime.wire import protocol as wire
from robonav.runtime.wire.receiver import Receiver
from robonav.runtime.wire.recording import RX, TAKE, TX, WireLogError, read_log
from robonav.runtime.wire.truth import TRUTH_NAME, EpisodeTruth, TruthError, load_truth
from robonav.sensors.frame import SensorFrame
from robonav.sensors.odometry import PoseDeltas

__all__ = ["find_truth", "format_replay", "frames_and_commands", "replay"]


def frames_and_commands(records: list[Any], watchdog: float, period: float, key: bytes | None = None
                        ) -> tuple[list[SensorFrame | None], np.ndarray]:
    """The loop's input to replay (frames taken, None for the frameless ticks of a watchdog stop) and the logged
    commands, float64 [n, 3] (v, omega, answers_seq), stops left out. ``key``: the robot's wire key (None: trust
    the recording)."""
    rx = Receiver(key=None if key is None else wire.link_key(key, wire.ROBOT_TO_RUNTIME), trust_signed=key is None,
                  freshness_s=None)
    tx_key = None if key is None else wire.link_key(key, wire.RUNTIME_TO_ROBOT)
    deltas = PoseDeltas()
    newest: wire.ScanFrame | None = None
    frames: list[SensorFrame | None] = []
    commands: list[tuple[float, float, int]] = []
    stopped = False
    stale_ticks = int(math.ceil(watchdog / period)) + 2
    for i, rec in enumerate(records):
        if rec.kind == RX:
            try:
                msg = rx.receive(rec.data)
            except wire.WireError:
                continue  # the driver dropped it too
            if isinstance(msg, wire.ScanFrame):
                newest = msg
        elif rec.kind == TAKE:
            episode, seq = rec.take()
            if newest is None or (newest.episode_id, newest.seq) != (episode, seq):
                have = None if newest is None else (newest.episode_id, newest.seq)
                raise WireLogError(f"record {i}: the loop took frame (episode {episode}, seq {seq}) but the "
                                   f"recorded datagrams complete {have}; the recording is incomplete or altered.")
            if stopped and frames:
                frames.extend([None] * stale_ticks)
            stopped = False
            frames.append(newest.to_sensor_frame(deltas.delta(episode, newest.odom_pose)))
        elif rec.kind == TX:
            try:
                sent = wire.decode(rec.data, tx_key, trust_signed=True)
            except wire.WireError:
                continue
            if isinstance(sent, wire.Command):
                if sent.stop:
                    stopped = True
                else:
                    commands.append((sent.v, sent.omega, sent.answers_seq))
    return frames, np.array(commands, dtype=np.float64).reshape(-1, 3)


class _TapDriver(ReplayDriver):
    """A ReplayDriver that hands each new frame and the Preprocessor's memory after it to a `RunMcap`, at the
    time the recorded loop took that frame; with ``truths`` (Truth.align's, one per frame taken) also its true pose,
    and each episode's maze and start pose where the episode's first frame was taken."""

    def __init__(self, frames: list[SensorFrame | None], takes: list[float], run: Any,
                 truths: list[tuple[EpisodeTruth, np.ndarray]] | None = None) -> None:
        super().__init__(frames)
        self.takes, self.run, self.truths = takes, run, truths
        self.loop: Any = None
        self._taken = 0
        self._new: SensorFrame | None = None
        self._episode: int | None = None

    def latest_frame(self) -> SensorFrame | None:
        i = self.calls
        frame = super().latest_frame()
        if i < len(self.frames) and self.frames[i] is not None:
            self._new = frame
        return frame

    def _answered(self) -> None:
        if self._new is not None:
            t = self.takes[self._taken]
            if self.truths is not None:
                episode, pose = self.truths[self._taken]
                if episode.episode_id != self._episode:
                    self._episode = episode.episode_id
                    self.run.world(t, episode.occupancy, episode.cell, episode.poses[0])
                self.run.true_pose(t, pose)
            self.run.frame(t, self._new)
            self.run.memory(t, self.loop.pre)
            self._taken += 1
            self._new = None

    def publish(self, v: float, omega: float, answers_seq: int) -> None:
        super().publish(v, omega, answers_seq)
        self._answered()

    def stop(self) -> None:
        super().stop()
        self._answered()


def sent_commands(records: list[Any], key: bytes | None = None) -> list[tuple[float, float, float]]:
    """(recorder time, v, omega) of every command the recording sent, stops (0, 0) included."""
    tx_key = None if key is None else wire.link_key(key, wire.RUNTIME_TO_ROBOT)
    out = []
    for rec in records:
        if rec.kind != TX:
            continue
        try:
            sent = wire.decode(rec.data, tx_key, trust_signed=True)
        except wire.WireError:
            continue
        if isinstance(sent, wire.Command):
            out.append((rec.t, 0.0, 0.0) if sent.stop else (rec.t, sent.v, sent.omega))
    return out


def find_truth(log: str | Path, truth: str | Path | bool) -> Path | None:
    """The truth file for ``log``: ``truth`` itself (TruthError where it does not exist), or with True the
    TRUTH_NAME beside ``log`` where there is one, with False none."""
    if truth is False:
        return None
    if truth is True:
        beside = Path(log).parent / TRUTH_NAME
        return beside if beside.is_file() else None
    if not Path(truth).is_file():
        raise TruthError(f"--truth {truth}: no such file; give the trajectories.npz of the HIL run that recorded "
                         f"{log} (robonav hil with hil.record)")
    return Path(truth)


def replay(log: str | Path, backend: str | None = None, model: str | None = None, key_file: str | None = None,
           mcap: str | Path | None = None, memory_every: float = 1.0, truth: str | Path | bool = True
           ) -> dict[str, Any]:
    """Rerun ``log`` with its recorded backend and model (or the ones given); the comparison as a dict. The wire
    key comes from ``key_file`` or the environment (robonav.runtime.wire.keys); none: the recording is trusted.

    ``mcap``: also write the run there (robonav.runtime.ros2.mcap): the frames the loop took at their recorded
    times, the commands that went on the wire at theirs, and the replayed Preprocessor's memories every
    ``memory_every`` seconds (the run's own while the replay is identical). A robot knows no true pose; a HIL
    run's sim-robot does: with a ``truth`` file (robonav.runtime.wire.truth; True: the one beside ``log`` if any,
    False: none) the MCAP also holds /robonav/true_pose for every frame taken and each episode's /map and
    map -> odom, and a truth file of another run is refused (TruthError) before anything runs."""
    from robonav.runtime.backends.registry import open_backend
    from robonav.runtime.wire.keys import load_key

    key = load_key(key_file)
    records, torn = read_log(log)
    meta = records[0].meta()
    kind = backend or meta.get("backend")
    path = model or meta.get("model")
    if not kind or not path:
        raise WireLogError(f"{log}: the recording names no backend or model; give --backend and --model")
    period, watchdog = float(meta["period"]), float(meta["watchdog"])
    frames, logged = frames_and_commands(records[1:], watchdog, period, key)
    kwargs = meta.get("backend_kwargs", {}) if kind == meta.get("backend") else {}
    run, truth_path, truths = None, None, None
    if mcap is not None:
        from robonav.runtime.ros2.mcap import McapError, RunMcap

        if Path(mcap).exists():
            raise McapError(f"--mcap {mcap}: exists; replay writes a new file: remove it or give another path")
        run = RunMcap(memory_every=memory_every)
        truth_path = find_truth(log, truth)
        if truth_path is not None:
            truths = load_truth(truth_path).align([f for f in frames if f is not None], log)
    with open_backend(kind, Path(path), **kwargs) as b:
        takes = [r.t for r in records if r.kind == TAKE]
        driver = (ReplayDriver(frames or [None]) if run is None else _TapDriver(frames or [None], takes, run, truths))
        config = LoopConfig(period=period, stress=bool(meta.get("stress")), watchdog=watchdog, ticks=len(frames),
                            telemetry=None, gc_freeze=False, handle_signals=False)
        loop = ControlLoop.for_backend(b, driver, ManualClock(), config, SafetyConfig(**meta["safety"]))
        if isinstance(driver, _TapDriver):
            driver.loop = loop
        loop.run()
    log_rows = driver.log
    replayed = log_rows[log_rows[:, 3] == 0.0, :3]
    n = min(len(replayed), len(logged))
    equal = replayed[:n] == logged[:n]
    first = int(np.flatnonzero(~equal.all(axis=1))[0]) if n and not equal.all() else None
    diff = float(np.abs(replayed[:n, :2] - logged[:n, :2]).max()) if n else 0.0
    written = {}
    if run is not None and mcap is not None:
        for t, v, omega in sent_commands(records, key):
            run.command(t, v, omega)
        run.write(mcap)
        written = {"mcap": str(mcap), "mcap_messages": dict(sorted(run.counts.items())),
                   "truth": None if truth_path is None else str(truth_path)}
    return {**written, "log": str(log), "backend": kind, "model": str(path), "records": len(records), "torn": torn,
            "frames": sum(f is not None for f in frames), "commands_logged": len(logged),
            "commands_replayed": len(replayed), "max_abs_diff": diff, "verified": key is not None,
            "identical": len(replayed) == len(logged) and first is None,
            "first_mismatch": None if first is None else {"index": first, "logged": logged[first].tolist(),
                                                           "replayed": replayed[first].tolist()}}


def format_replay(r: dict[str, Any]) -> str:
    """Two lines for people."""
    verdict = "IDENTICAL" if r["identical"] else "DIFFERENT"
    lines = [f"replay {r['log']}: {verdict}: {r['commands_replayed']} commands replayed of {r['commands_logged']} "
             f"logged from {r['frames']} frames ({r['backend']}, {r['model']}); max |diff| {r['max_abs_diff']:.3g}"]
    if r["first_mismatch"]:
        lines.append(f"  first mismatch at command {r['first_mismatch']['index']}: logged "
                     f"{r['first_mismatch']['logged']}, replayed {r['first_mismatch']['replayed']}")
    if r["torn"]:
        lines.append(f"  note: {r['torn']}")
    if r.get("mcap"):
        counts = ", ".join(f"{k} {v}" for k, v in r["mcap_messages"].items())
        lines.append(f"  wrote {r['mcap']}: {counts}" + (f" (truth: {r['truth']})" if r.get("truth") else ""))
    return "\n".join(lines)
