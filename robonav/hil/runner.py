"""`robonav hil`: the runtime and the simulator-as-robot as two processes on loopback, with faults between them.

    robonav hil --launch hil --episodes 6 --json --junit hil.xml

Starts, from one launch file (launch/hil.yaml: its ``hil:`` section here, ``run:`` for the runtime, ``robot:`` for
the sim-robot), the fault proxy when any network or sensor fault is on, the runtime (`robonav run`, driver udp) and
the sim-robot (`robonav sim-robot`), each a real subprocess on real UDP sockets, all on clocks at the same
clock factor. The sim-robot plays the episodes and exits; the runner then stops the runtime (SIGTERM) and the
proxy and merges the three reports: navigation (the keys `robonav eval` prints), timing (loop latency, deadline
misses, message loss, command age at the robot) and the faults seen, with one verdict per scenario (checks that
must hold under any fault: no crash, never a stale command applied, the robot stopped within one watchdog period
plus one sensor period whenever commands stopped, every episode finished, every bad message counted). With
``faults.kill_runtime_after`` the runtime is SIGKILLed that many clock seconds after the robot's first answered
frame and started again. The wire is signed: the runner writes a fresh key to ``out/wire.key`` (mode 600) and hands
it to every process in the environment ($ROBONAV_WIRE_KEY_FILE), never on a command line.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from xml.sax.saxutils import escape, quoteattr

from robonav.errors import UserError
from robonav.hil.faults import FaultConfig
from robonav.runtime.wire import ENV_KEY, ENV_KEY_FILE, TRUTH_NAME, write_key_file
from robonav.settings import SettingsError, write_settings

__all__ = ["HilError", "HilSettings", "junit_xml", "run_hil", "scenario_name", "verdict"]


class HilError(UserError, RuntimeError):
    """A HIL process failed to start or to finish in time (the message names it and where its log is)."""


@dataclass(frozen=True)
class HilSettings:
    """The HIL bench (the ``hil:`` section of launch/hil.yaml); each side's own settings are in ``run:`` and
    ``robot:``, and the runner overrides their addresses, clock and episodes so all three agree."""

    episodes: int = 6
    """Episodes the sim-robot plays (the list once, unless duration asks for more)."""
    duration: float = 0.0
    """Clock seconds the run lasts at least (soaks): the episode list is played again as often as needed."""
    suite: str = "test"
    """Episode suite (the same list `robonav eval --suite` makes)."""
    seed: int = 0
    """Seed of the episode list."""
    clock: str = "scaled"
    """real (soaks at 1x) or scaled (faster than real time)."""
    clock_factor: float = 4.0
    """Clock seconds per real second, for every process (scaled clock)."""
    faults: FaultConfig = field(default_factory=FaultConfig)
    """What the proxy injects (none by default: no proxy runs)."""
    restart_after: float = 0.5
    """Clock seconds between killing the runtime (faults.kill_runtime_after) and starting it again."""
    timeout: float = 900.0
    """Real seconds the whole run may take before the runner gives up."""
    out: str | None = None
    """Folder for the processes' logs, reports, telemetry and wire recording (None: a new temporary folder)."""
    record: bool = False
    """Record the runtime's wire traffic (out/wire.rnavlog) for `robonav replay`, and the robot's truth beside it
    (out/trajectories.npz: `robonav replay --mcap` writes the true pose and the maze from it)."""
    trajectories: bool = False
    """Save the robot's truth (out/trajectories.npz: true poses per tick and per frame, the mazes) without
    recording the wire, for pictures."""
    signed: bool = True
    """Sign the wire with a fresh key (out/wire.key, mode 600, handed over by $ROBONAV_WIRE_KEY_FILE); false: an
    unsigned wire (loopback development), any inherited key variables removed."""

    def __post_init__(self) -> None:
        if self.episodes < 1:
            raise SettingsError(f"hil.episodes must be >= 1, got {self.episodes}")
        if not 0.0 < self.clock_factor < math.inf:
            raise SettingsError(f"hil.clock_factor must be finite and > 0, got {self.clock_factor}")
        if self.clock == "real" and self.clock_factor != 1.0:
            raise SettingsError(f"hil.clock is real but clock_factor is {self.clock_factor}: use clock: scaled")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def scenario_name(faults: FaultConfig) -> str:
    """'none', or the faults that are on, e.g. 'loss=0.1,kill_runtime_after=20'."""
    on = {k: v for k, v in faults.to_dict().items()
          if k not in ("seed", "directions") and v not in (0, 0.0)}
    return ",".join(f"{k}={v:g}" for k, v in on.items()) or "none"


class _Process:
    """One child process with its stdout and stderr in files under the run folder."""

    def __init__(self, name: str, argv: list[str], out: Path, key_file: Path | None = None) -> None:
        self.name, self.argv = name, argv
        self.stdout_path, self.stderr_path = out / f"{name}.out", out / f"{name}.err"
        self._out: IO[str] = open(self.stdout_path, "a")  # closed in wait()
        self._err: IO[str] = open(self.stderr_path, "a")
        env = {k: v for k, v in os.environ.items() if k not in (ENV_KEY, ENV_KEY_FILE)}
        env["PYTHONUNBUFFERED"] = "1"
        if key_file is not None:
            env[ENV_KEY_FILE] = str(key_file)
        self.proc = subprocess.Popen(argv, stdout=self._out, stderr=self._err, env=env)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.wait(10.0)

    def wait(self, timeout: float | None) -> int:
        rc = self.proc.wait(timeout)
        self._out.close()
        self._err.close()
        return rc

    def last_json(self) -> dict[str, Any] | None:
        """The last line of stdout that parses as a JSON object."""
        for line in reversed(self.stdout_path.read_text().splitlines()):
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if isinstance(obj, dict):
                return obj
        return None

    def first_json(self, timeout: float) -> dict[str, Any]:
        """Wait for the first JSON line on stdout (the proxy's addresses)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for line in self.stdout_path.read_text().splitlines():
                if line.startswith("{"):
                    return json.loads(line)
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise HilError(f"{self.name} did not report its addresses within {timeout} s; see {self.stderr_path}")


def _cli(verb: str, launch: str, sets: list[str]) -> list[str]:
    argv = [sys.executable, "-m", "robonav.cli", verb, "--launch", launch, "--json"]
    for s in sets:
        argv += ["--set", s]
    return argv


def run_hil(settings: HilSettings, launch: str, overrides: list[str] | tuple[str, ...] = (),
            progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Run one HIL scenario as the module docstring says; returns the merged report. ``progress(done, total)``:
    episodes the sim-robot finished, out of ``episodes``. The resolved settings go to out/settings.yaml."""
    s = settings
    out = Path(s.out) if s.out else Path(tempfile.mkdtemp(prefix="robonav-hil-"))
    out.mkdir(parents=True, exist_ok=True)
    s = dataclasses.replace(s, out=str(out))
    write_settings(out / "settings.yaml", {"hil": s})
    runtime_port, robot_port = _free_port(), _free_port()
    clock = [f"clock={s.clock}", f"clock_factor={s.clock_factor}"]
    run_extra = [o for o in overrides if o.startswith("run.")]
    robot_extra = [o for o in overrides if o.startswith("robot.")]
    if len(run_extra) + len(robot_extra) != len(overrides):
        raise SettingsError(f"run_hil: overrides for the sides must start with run. or robot., got {list(overrides)}")
    procs: list[_Process] = []
    key = out / "wire.key" if s.signed else None
    if key is not None:
        write_key_file(key)
    faults = dataclasses.replace(s.faults, kill_runtime_after=0.0)
    started = time.monotonic()
    try:
        robot_to, runtime_to = f"127.0.0.1:{runtime_port}", f"127.0.0.1:{robot_port}"
        proxy = None
        if faults.any:
            proxy = _Process("proxy", [sys.executable, "-m", "robonav.hil.proxy", "--runtime", robot_to,
                                       "--robot", runtime_to, "--faults", json.dumps(faults.to_dict()),
                                       "--clock", s.clock, "--clock-factor", str(s.clock_factor), "--json"], out,
                             key)
            procs.append(proxy)
            ports = proxy.first_json(30.0)
            robot_to = "{}:{}".format(*ports["robot_side"])
            runtime_to = "{}:{}".format(*ports["runtime_side"])
        run_sets = [*run_extra, "run.driver=udp", f"run.udp.bind=127.0.0.1:{runtime_port}",
                    f"run.udp.robot={runtime_to}", f"run.telemetry={out / 'runtime.jsonl'}",
                    *(f"run.{c}" for c in clock)]
        if s.record:
            run_sets.append(f"run.record={out / 'wire.rnavlog'}")
        runtime = _Process("runtime", _cli("run", launch, run_sets), out, key)
        procs.append(runtime)
        robot = _Process("sim-robot", _cli("sim-robot", launch, [
            *robot_extra, f"robot.bind=127.0.0.1:{robot_port}", f"robot.runtime={robot_to}",
            f"robot.episodes={s.episodes}", f"robot.suite={s.suite}", f"robot.seed={s.seed}",
            f"robot.duration={s.duration}",
            *([f"robot.trajectories={out / TRUTH_NAME}"] if s.trajectories or s.record else []),
            *(f"robot.{c}" for c in clock)]), out, key)
        procs.append(robot)
        restarts = 0
        kill_at = None  # real time of the kill, counted from the robot's first answered frame
        kill = s.faults.kill_runtime_after > 0
        reported, look_at = 0, 0.0
        while robot.proc.poll() is None:
            if progress is not None and time.monotonic() >= look_at:  # the sim-robot logs each finished episode
                look_at = time.monotonic() + 0.5
                done = robot.stderr_path.read_text().count('"event": "episode"')
                if done != reported:
                    reported = done
                    progress(min(done, s.episodes), s.episodes)
            if kill and kill_at is None and '"connected"' in robot.stderr_path.read_text():
                kill_at = time.monotonic() + s.faults.kill_runtime_after / s.clock_factor
            if time.monotonic() - started > s.timeout:
                raise HilError(f"the sim-robot did not finish {s.episodes} episodes within {s.timeout} s; see "
                               f"{robot.stderr_path} and {runtime.stderr_path}")
            if runtime.proc.poll() is not None and not kill:
                raise HilError(f"the runtime exited (code {runtime.proc.returncode}) before the sim-robot finished; "
                               f"see {runtime.stderr_path}")
            if kill_at is not None and time.monotonic() >= kill_at:
                runtime.stop(signal.SIGKILL)  # a crash: no stop command, no report, the robot's watchdog acts
                restarts += 1
                kill_at, kill = None, False
                time.sleep(s.restart_after / s.clock_factor)
                runtime = _Process("runtime", _cli("run", launch, run_sets), out, key)
                procs.append(runtime)
            time.sleep(0.05)
        robot_rc = robot.wait(10.0)
        if progress is not None:
            progress(min(robot.stderr_path.read_text().count('"event": "episode"'), s.episodes), s.episodes)
        robot_report = robot.last_json()
        if robot_rc != 0 or robot_report is None:
            raise HilError(f"the sim-robot failed (exit code {robot_rc}); see {robot.stderr_path}")
        runtime_rc = runtime.stop(signal.SIGTERM)
        runtime_report = runtime.last_json()  # the last runtime's (a killed one reports nothing)
        proxy_report = None
        if proxy is not None:
            proxy.stop(signal.SIGTERM)
            proxy_report = proxy.last_json()
    finally:
        for p in procs:
            if p.proc.poll() is None:
                p.stop(signal.SIGKILL, 5.0)
    report = merge(s, robot_report, runtime_report, proxy_report, runtime_rc, restarts)
    report["processes"] = [{"name": p.name, "pid": p.proc.pid, "exit_code": p.proc.returncode} for p in procs]
    report["wall_s"] = round(time.monotonic() - started, 2)
    report["out"] = str(out)
    (out / "report.json").write_text(json.dumps(report, indent=1, sort_keys=True))
    return report


def navigation(episodes: list[dict[str, Any]]) -> dict[str, Any]:
    """The sim-robot's episodes summarised exactly as `robonav eval` summarises its own (success_rate with its
    interval, spl, collisions_per_episode, mean_steps, per_maze, per_family), plus each episode's result (``results``,
    robonav.eval.metrics.EpisodeResult fields) for paired comparisons."""
    from dataclasses import asdict

    from robonav.eval.metrics import EpisodeResult, summarize

    results = [EpisodeResult.from_info(e, e.get("family", "")) for e in episodes]
    return {**summarize(results), "results": [asdict(r) for r in results]}


def merge(s: HilSettings, robot: dict[str, Any], runtime: dict[str, Any] | None, proxy: dict[str, Any] | None,
          runtime_rc: int, restarts: int) -> dict[str, Any]:
    """One report: navigation, timing, faults and the scenario's verdict."""
    rt = runtime or {}
    tick = (rt.get("latency") or {}).get("tick") or {}
    counts = robot["counts"]
    frames_sent = counts["frames_sent"]
    timing = {"loop_p50_us": tick.get("p50_us"), "loop_p99_us": tick.get("p99_us"), "loop_max_us": tick.get("max_us"),
              "ticks": rt.get("ticks"), "deadline_misses": rt.get("deadline_misses"), "miss_rate": rt.get("miss_rate"),
              "frames_sent": frames_sent, "frames_received": rt.get("udp_frames"),
              "frame_loss": (1.0 - rt["udp_frames"] / frames_sent) if rt.get("udp_frames") is not None
              and frames_sent else None,
              "commands_received": counts["commands"], "command_age_ms": robot["command_age_ms"],
              "watchdog_stops": counts["watchdog_stops"], "watchdog_stop_delay_ms": robot["watchdog_stop_delay_ms"],
              "robot_overruns": counts["overruns"], "robot_max_late_ms": robot.get("robot_max_late_ms"),
              "clock_factor": s.clock_factor, "period": robot["period"],
              "watchdog": robot["watchdog"]}
    faults = {"scenario": scenario_name(s.faults), "config": s.faults.to_dict(), "runtime_restarts": restarts,
              "signed": s.signed,
              "runtime_rejected": {k: v for k, v in (rt.get("udp_rejected") or {}).items() if v},
              "robot_rejected": {k: v for k, v in robot["rejected"].items() if v},
              "stale_dropped": counts["stale_dropped"], "stale_applied": counts["stale_applied"],
              "runtime_received": rt.get("udp_received"), "bad_frames": rt.get("bad_frames"),
              "stale_ticks": rt.get("stale_ticks"), "proxy": proxy}
    report = {**navigation(robot["episodes"]), "timing": timing, "faults": faults,
              "runtime_exit": {"code": runtime_rc, "reason": rt.get("exit_reason")}}
    report["verdict"] = verdict(s, report, robot)
    return report


def verdict(s: HilSettings, report: dict[str, Any], robot: dict[str, Any]) -> dict[str, Any]:
    """The checks every scenario must pass, each True/False with the figure it judged; ``passed`` = all."""
    f = report["faults"]
    limit = robot["watchdog"] + robot["period"] + 1e-9
    max_delay = robot.get("max_stop_delay_s")
    proxy = f["proxy"] or {}
    # The runtime drains its socket until it is stopped, after the robot's last frame: every corrupted datagram
    # that reached it must be in its counts. Datagrams the proxy sent before the runtime's socket was up are lost
    # (delivered by the proxy, never received), so they are owed no count. The robot's side is not checked: it
    # exits with commands still in flight.
    to_rt = proxy.get("to_runtime") or {}
    injected = to_rt.get("corrupted", 0)
    unreceived = max(0, to_rt.get("delivered", 0) - (f.get("runtime_received") or 0))
    counted = sum(f["runtime_rejected"].values()) + unreceived
    checks = {
        "runtime_clean_exit": {"ok": report["runtime_exit"]["code"] == 0,
                               "value": report["runtime_exit"]["code"]},
        "all_episodes_finished": {"ok": report["episodes"] == s.episodes if s.duration <= 0 else
                                  report["episodes"] >= 1, "value": report["episodes"]},
        "no_stale_command_applied": {"ok": f["stale_applied"] == 0, "value": f["stale_applied"]},
        "stopped_within_watchdog": {"ok": max_delay is None or max_delay <= limit, "value": max_delay,
                                    "limit": round(limit, 6)},
        "bad_messages_counted": {"ok": counted >= injected, "value": counted, "injected_corrupt": injected},
    }
    return {"passed": all(c["ok"] for c in checks.values()), "checks": checks, "scenario": f["scenario"]}


def junit_xml(report: dict[str, Any], path: str | Path) -> None:
    """A JUnit file with one test case per scenario (its failed checks in the failure message)."""
    v = report["verdict"]
    failed = {k: c for k, c in v["checks"].items() if not c["ok"]}
    case = f'  <testcase classname="robonav.hil" name={quoteattr(v["scenario"])} time="{report.get("wall_s", 0)}"'
    body = ("/>\n" if not failed else
            f">\n    <failure message={quoteattr(', '.join(failed))}>{escape(json.dumps(failed))}</failure>\n"
            "  </testcase>\n")
    xml = (f'<?xml version="1.0" encoding="UTF-8"?>\n<testsuite name="robonav-hil" tests="1" '
           f'failures="{int(bool(failed))}">\n{case}{body}</testsuite>\n')
    tmp = Path(f"{path}.tmp")
    tmp.write_text(xml)
    tmp.replace(path)


def format_report(r: dict[str, Any]) -> str:
    """A few lines for people: navigation, timing, faults, verdict."""
    t, f, v = r["timing"], r["faults"], r["verdict"]
    age = t["command_age_ms"]
    lines = [f"HIL scenario {f['scenario']}: {'PASS' if v['passed'] else 'FAIL'} ({r['wall_s']} s, folder {r['out']})",
             f"  navigation: {r['episodes']} episodes, success {r['success_rate']:.3f} "
             f"[{r['success_ci95'][0]:.3f}, {r['success_ci95'][1]:.3f}], SPL {r['spl']:.3f}, collisions/episode "
             f"{r['collisions_per_episode']:.2f}, mean steps {r['mean_steps']:.1f}",
             f"  loop: p50 {t['loop_p50_us']} us, p99 {t['loop_p99_us']} us, max {t['loop_max_us']} us; deadline "
             f"misses {t['deadline_misses']} of {t['ticks']} ticks; clock x{t['clock_factor']:g}",
             f"  wire: {t['frames_sent']} frames sent, {t['frames_received']} received (loss {t['frame_loss']}); "
             f"command age at the robot p50 {age['p50']} ms, p99 {age['p99']} ms, max {age['max']} ms (clock)",
             f"  faults: runtime rejected {f['runtime_rejected']}, robot rejected {f['robot_rejected']}, stale "
             f"dropped {f['stale_dropped']}, applied {f['stale_applied']}, watchdog stops {t['watchdog_stops']}, "
             f"runtime restarts {f['runtime_restarts']}"]
    for name, c in v["checks"].items():
        lines.append(f"  [{'ok' if c['ok'] else 'FAIL'}] {name}: {c['value']}")
    return "\n".join(lines)
