"""robonav's recurrent PPO against sb3-contrib's RecurrentPPO: same simulator, same wall clock, same val episodes.

Two processes run side by side, one core's worth each (one torch thread, envs in the learner's process:
train.workers=0), for ``--minutes`` of training each:
  robonav   robonav's Trainer with the launch file's recipe (curriculum, imitation warm start if it has one)
  sb3       RecurrentPPO("MlpLstmPolicy") on the same SimConfig through benchmarks/sb3_adapter.py, with the RL Zoo's
            recommended hyperparameters for PyBullet tasks (`ZOO_PYBULLET`, from rl-baselines3-zoo
            hyperparams/ppo_lstm.yml): VecNormalize, 16 envs, n_steps 256, batch 128, 10 epochs, gae_lambda 0.9,
            LSTM 128 for actor and critic, no MLP layers, ReLU, no orthogonal init; robonav's curriculum runs through
            a callback (same stages and promotion rule), and a snapshot is saved every ``--snapshot-minutes``
Both log rollout success (over the curriculum window, per stage) and episode return against wall-clock time.
Afterwards each greedily evaluates its final policy on the same val episodes (an episode-list file in --out), and
the table puts side by side: wall time, env steps, steps/s, rollout success and return, greedy success [95 %]
and SPL, and the time robonav needed to reach SB3's final rollout success with its ratio to SB3's time (target:
at most 1/3, and robonav ends higher). If SB3 ends at zero success, it says so and compares returns instead.
"Reached" means: at a later curriculum stage than SB3's last, or at that stage with at least SB3's value over at
least as many episodes; while robonav's imitation teacher drives (DAgger, beta > 0), rollout success is the
teacher's, so rows whose window holds such episodes do not count.

    nice python benchmarks/train_vs_sb3.py --minutes 30 --out results/train_vs_sb3 [--json]
"""

from __future__ import annotations

import os

for _v in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import multiprocessing as mp  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections import deque  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

ZOO_PYBULLET: dict[str, Any] = {"n_steps": 256, "batch_size": 128, "gamma": 0.99, "gae_lambda": 0.9, "n_epochs": 10}
"""rl-baselines3-zoo ppo_lstm.yml, &pybullet-defaults (HalfCheetahBulletEnv-v0 and kin); the rest SB3's defaults
(learning_rate 3e-4, clip_range 0.2, ent_coef 0, vf_coef 0.5, max_grad_norm 0.5)."""
ZOO_ENVS = 16
"""n_envs of the same recipe (used unless --envs is given)."""


def _zoo_policy_kwargs() -> dict[str, Any]:
    from torch import nn

    return {"ortho_init": False, "activation_fn": nn.ReLU, "net_arch": {"pi": [], "vf": []},
            "enable_critic_lstm": True, "lstm_hidden_size": 128}


# -- the two workers (each in its own process) ----------------------------------------------------------------

class _EpisodeReturns:
    """A vector env as the trainer sees it, plus the returns of finished episodes (robonav's log has none);
    the window is cleared on every curriculum promotion, like the trainer's success window."""

    def __init__(self, envs: Any, window: int) -> None:
        self.envs, self.episodes = envs, 0
        self.returns: deque[float] = deque(maxlen=window)
        self._running = np.zeros(envs.num_envs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.envs, name)

    def reset(self, **kwargs: Any):
        self._running[:] = 0.0
        return self.envs.reset(**kwargs)

    def step(self, actions):
        obs, reward, terminated, truncated, info = self.envs.step(actions)
        self._running += reward
        done = terminated | truncated
        self.returns.extend(self._running[done].tolist())
        self.episodes += int(done.sum())
        self._running[done] = 0.0
        return obs, reward, terminated, truncated, info

    def set_maze_config(self, config: Any) -> None:
        self.returns.clear()
        self.envs.set_maze_config(config)


def _eval(factory: Any, job: dict[str, Any], cfg: Any) -> tuple[list[dict[str, Any]], float]:
    """Greedy results of ``factory``'s policy on the benchmark's episode list, as `robonav eval` runs them."""
    from robonav.eval.episodes import load_episodes
    from robonav.eval.runner import eval_config, run_episodes
    from robonav.sim.config import SimConfig

    t0 = time.perf_counter()
    sim = eval_config(SimConfig(observation=cfg.sim.observation, preprocessor=cfg.sim.preprocessor,
                                period=cfg.sim.period))
    results = run_episodes(factory, load_episodes(job["episodes"]), sim, num_envs=job["eval_envs"])
    return [dataclasses.asdict(r) for r in results], time.perf_counter() - t0


def run_robonav(job: dict[str, Any]) -> None:
    """Train with robonav's Trainer for the budget, evaluate, write <out>/robonav/result.json."""
    import torch

    from robonav.policy.agent import TorchAgent, load_policy
    from robonav.settings import from_dict
    from robonav.train.config import TrainConfig
    from robonav.train.trainer import Trainer, make_envs

    class TimedTrainer(Trainer):
        """The Trainer, logging per row: wall time since train() began, the window sizes, episode returns, and
        ``policy_only``: no episode in the success window finished before the imitation teacher stopped driving
        (while it drives, rollout success is the teacher's, not the policy's)."""

        def train(self, max_updates: int | None = None, max_seconds: float | None = None) -> dict[str, float]:
            self.t_start, self.teacher_mark = time.perf_counter(), 0
            self.rows: list[dict[str, Any]] = []
            write_row = self.book.write_row

            def timed_row(row: dict[str, Any]) -> None:  # before progress.jsonl and TensorBoard see the row
                rets, done, window = self.envs.returns, self.envs.episodes, len(self.curriculum.successes)
                row.update(wall_s=time.perf_counter() - self.t_start, success_window=window,
                           episode_return=float(np.mean(rets)) if rets else math.nan, return_window=len(rets),
                           episodes=done, policy_only=done - self.teacher_mark >= window)
                self.rows.append(dict(row))
                write_row(row)

            self.book.write_row = timed_row  # type: ignore[method-assign]
            return super().train(max_updates, max_seconds)

        def collect(self, storage: Any) -> Any:
            teacher = self.imitating and self.beta() > 0
            rollout = super().collect(storage)
            if teacher:
                self.teacher_mark = self.envs.episodes
            return rollout

    torch.set_num_threads(1)
    cfg = from_dict(TrainConfig, job["cfg"], "train")
    t0 = time.perf_counter()
    trainer = TimedTrainer(cfg, progress=False, envs=_EpisodeReturns(make_envs(cfg), cfg.curriculum.window))
    setup_s = time.perf_counter() - t0
    trainer.train(max_seconds=job["seconds"])
    trainer.close()
    model, _ = load_policy(trainer.dir / "last.pt")
    results, eval_s = _eval(lambda n: TorchAgent(model, n), job, cfg)
    _write(job, {"envs": cfg.ppo.num_envs, "rows": trainer.rows, "setup_s": setup_s, "eval_s": eval_s,
                 "eval": results, "checkpoint": str(trainer.dir / "last.pt")})


def run_sb3(job: dict[str, Any]) -> None:
    """Train RecurrentPPO for the budget (snapshots on the way), evaluate, write <out>/sb3/result.json."""
    import torch
    from sb3_adapter import CurriculumCallback, SB3Policy, SB3VecEnv, load_obs_stats, save_obs_stats
    from sb3_contrib import RecurrentPPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.vec_env import VecMonitor, VecNormalize

    from robonav.settings import from_dict
    from robonav.sim.vector import MazeVectorEnv
    from robonav.train.config import TrainConfig
    from robonav.train.trainer import stage_config

    out = Path(job["out"]) / "sb3"
    (out / "snapshots").mkdir(parents=True, exist_ok=True)

    class Clock(BaseCallback):
        """Stops learning when the budget is spent; saves a snapshot every ``every`` seconds."""

        def __init__(self, seconds: float, every: float) -> None:
            super().__init__()
            self.seconds, self.every = seconds, every

        def _on_training_start(self) -> None:
            self.t0 = self.t_snap = time.perf_counter()

        def _on_step(self) -> bool:
            now = time.perf_counter()
            if self.every > 0 and now - self.t_snap >= self.every:
                self.t_snap = now
                name = f"sb3-{(now - self.t0) / 60:06.2f}min"
                self.model.save(out / "snapshots" / f"{name}.zip")
                save_obs_stats(venv, out / "snapshots" / f"{name}-obs_stats.npz")
            return now - self.t0 < self.seconds

    torch.set_num_threads(1)
    cfg = from_dict(TrainConfig, job["cfg"], "train")
    cc, n = cfg.curriculum, job["envs"] or ZOO_ENVS
    t0 = time.perf_counter()
    vec = MazeVectorEnv(n, config=dataclasses.replace(cfg.sim, maze=stage_config(cfg, 0)), seed=cfg.seed)
    venv = VecNormalize(VecMonitor(SB3VecEnv(vec)), gamma=ZOO_PYBULLET["gamma"])
    model = RecurrentPPO("MlpLstmPolicy", venv, seed=cfg.seed, device="cpu", policy_kwargs=_zoo_policy_kwargs(),
                         **ZOO_PYBULLET)
    curriculum = CurriculumCallback(cc.promote_success, cc.window, len(cc.stages), lambda k: stage_config(cfg, k),
                                    log_path=out / "progress.jsonl")
    setup_s = time.perf_counter() - t0
    model.learn(total_timesteps=10**12, callback=[curriculum, Clock(job["seconds"], job["snapshot_s"])])
    model.save(out / "final.zip")
    stats = save_obs_stats(venv, out / "final-obs_stats.npz")
    venv.close()
    scale = (cfg.sim.robot.v_max, cfg.sim.robot.omega_max)
    norm = load_obs_stats(stats)
    results, eval_s = _eval(lambda k: SB3Policy(model, k, scale, norm), job, cfg)
    _write(job, {"envs": n, "rows": curriculum.rows, "setup_s": setup_s, "eval_s": eval_s, "eval": results,
                 "checkpoint": str(out / "final.zip")})


def _write(job: dict[str, Any], result: dict[str, Any]) -> None:
    path = Path(job["out"]) / job["role"] / "result.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result))


def _worker(role: str, job: dict[str, Any]) -> None:
    {"robonav": run_robonav, "sb3": run_sb3}[role]({**job, "role": role})


# -- comparison ---------------------------------------------------------------------------------------------------

def time_to_reach(rows: list[dict[str, Any]], stage: int, value: float, key: str, min_window: int) -> float | None:
    """Wall seconds of the first row past curriculum ``stage``, or at it with ``row[key] >= value`` over at least
    ``min_window`` episodes; None if no row gets there. Rows whose window holds teacher-driven episodes
    (``policy_only`` false) do not count."""
    window = "success_window" if key == "success_rate" else "return_window"
    for r in rows:
        if not r.get("policy_only", True):
            continue
        if r["stage"] > stage or (r["stage"] == stage and r[window] >= min_window and r[key] >= value):
            return float(r["wall_s"])
    return None


def _latest(rows: list[dict[str, Any]], t: float) -> dict[str, Any] | None:
    before = [r for r in rows if r["wall_s"] <= t]
    return before[-1] if before else None


def _cell(r: dict[str, Any] | None) -> str:
    if r is None:
        return f"{'-':>37}"
    mark = " " if r.get("policy_only", True) else "*"
    return (f"{r['global_step']:>10,} {r['stage']:>3} {r['success_rate']:>6.3f}{mark}({r['success_window']:>3}) "
            f"{r['episode_return']:>7.2f}")


def compare(res: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Print the side-by-side table and return its figures (the --json object)."""
    from robonav.eval.metrics import EpisodeResult, paired_comparison, summarize

    names = {"robonav": "robonav", "sb3": "SB3 RecurrentPPO"}
    evals = {k: [EpisodeResult(**d) for d in v["eval"]] for k, v in res.items()}
    figures: dict[str, Any] = {}
    for k, v in res.items():
        last = v["rows"][-1]
        s = summarize(evals[k])
        figures[k] = {"envs": v["envs"], "wall_s": last["wall_s"], "env_steps": last["global_step"],
                      "steps_per_s": last["global_step"] / max(last["wall_s"], 1e-9), "stage": last["stage"],
                      "rollout_success": last["success_rate"], "success_window": last["success_window"],
                      "episode_return": last["episode_return"], "episodes": last["episodes"],
                      "greedy_success": s["success_rate"], "greedy_success_ci95": s["success_ci95"],
                      "spl": s["spl"], "spl_ci95": s["spl_ci95"], "eval_episodes": s["episodes"],
                      "setup_s": v["setup_s"], "eval_s": v["eval_s"], "checkpoint": v["checkpoint"]}
    step = max(max(f["wall_s"] for f in figures.values()) / 10, 1.0)
    print("\nrollout progress against wall-clock time: env steps, stage, success (episodes in window), return;"
          "\n* = the window holds episodes robonav's imitation teacher drove")
    print(f"{'t (min)':>8} | {'robonav':^37} | {names['sb3']:^37}")
    for j in range(1, 11):
        t = j * step
        print(f"{t / 60:>8.2f} | {_cell(_latest(res['robonav']['rows'], t))} | {_cell(_latest(res['sb3']['rows'], t))}")
    rows = [("envs", "{envs}"), ("wall time (s)", "{wall_s:.0f}"), ("env steps", "{env_steps:,}"),
            ("steps/s", "{steps_per_s:.0f}"), ("curriculum stage", "{stage}"),
            ("rollout success (episodes)", "{rollout_success:.3f} ({success_window})"),
            ("rollout return", "{episode_return:.2f}"), ("greedy success", "{greedy_success:.3f}"),
            ("  95 % interval", "[{greedy_success_ci95[0]:.3f}, {greedy_success_ci95[1]:.3f}]"),
            ("greedy SPL", "{spl:.3f}"), ("  95 % interval", "[{spl_ci95[0]:.3f}, {spl_ci95[1]:.3f}]")]
    print(f"\n{'':<28}{names['robonav']:>20}{names['sb3']:>20}")
    for label, fmt in rows:
        print(f"{label:<28}{fmt.format(**figures['robonav']):>20}{fmt.format(**figures['sb3']):>20}")
    sb3, rn = figures["sb3"], figures["robonav"]
    zero = sb3["rollout_success"] == 0.0
    key, target = ("episode_return", sb3["episode_return"]) if zero else ("success_rate", sb3["rollout_success"])
    window = sb3["success_window"] if key == "success_rate" else res["sb3"]["rows"][-1]["return_window"]
    reach = None if not math.isfinite(target) else time_to_reach(res["robonav"]["rows"], sb3["stage"], target, key,
                                                                 window)
    ratio = None if reach is None else reach / max(sb3["wall_s"], 1e-9)
    paired = paired_comparison(evals["robonav"], evals["sb3"])
    what = "return" if zero else "rollout success"
    print()
    if zero:
        print(f"SB3 ended at zero rollout success (stage {sb3['stage']}, {sb3['success_window']} episodes in the "
              f"window, greedy {sb3['greedy_success']:.3f}): comparing episode returns instead")
    if window == 0:
        print("SB3 finished no training episode in its budget: no success or return to reach")
    else:
        print(f"SB3's final {what}: {target:.3f} at stage {sb3['stage']} over {window} episodes")
    if reach is None:
        print(f"robonav never reached it in {rn['wall_s']:.0f} s")
    else:
        print(f"robonav reached it after {reach:.0f} s = {ratio:.3f} x SB3's {sb3['wall_s']:.0f} s (target <= 0.333)")
    lo, hi = paired["success_diff_ci95"]
    print(f"greedy success robonav - SB3 on the same {paired['episodes']} episodes: {paired['success_diff']:+.3f} "
          f"[{lo:+.3f}, {hi:+.3f}], McNemar p = {paired['mcnemar_p']:.3g}; SPL {paired['spl_diff']:+.3f}"
          + ("" if paired["significant"] else " (within the noise of this many episodes)"))
    higher = rn["greedy_success"] > sb3["greedy_success"] or (  # a tie (both 0): later stage, or higher return
        rn["greedy_success"] == sb3["greedy_success"] and (rn["stage"], rn["episode_return"]) > (sb3["stage"], target))
    met = ratio is not None and ratio <= 1 / 3 and higher
    print(f"target (reach SB3's final {what} in <= 1/3 of its time and end higher): {'met' if met else 'not met'}")
    return {"robonav": rn, "sb3": sb3, "paired": paired, "sb3_zero_success": zero, "compared_on": key,
            "sb3_final_value": target, "robonav_time_to_reach_s": reach, "time_ratio": ratio, "target_met": met}


def _plain(x: Any) -> Any:
    """JSON-safe copy: NaN and infinities become None (strict JSON has no NaN)."""
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


# -- the driver -----------------------------------------------------------------------------------------------

def _poll(out: Path, run: str, t0: float) -> None:
    def last(path: Path) -> str:
        try:
            r = json.loads(path.read_text().splitlines()[-1])
        except (OSError, IndexError, ValueError):
            return "no update yet"
        return f"step {r['global_step']:,} stage {r['stage']} success {r['success_rate']:.2f}"

    print(f"[{(time.perf_counter() - t0) / 60:5.1f} min] robonav: {last(out / 'robonav' / run / 'progress.jsonl')}"
          f" | sb3: {last(out / 'sb3' / 'progress.jsonl')}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--launch", default="train", help="robonav's training launch file (default: %(default)s)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="override a launch-file setting for both (the environment) or robonav (its recipe)")
    ap.add_argument("--minutes", type=float, default=30.0, help="training wall clock of each (default: 30)")
    ap.add_argument("--envs", type=int, help="envs of both (default: the launch file's for robonav, 16 for SB3)")
    ap.add_argument("--eval-episodes", type=int, default=200, help="greedy val episodes per policy (default: 200)")
    ap.add_argument("--eval-suite", default="val", help="maze suite of the greedy eval (default: val, 7x7)")
    ap.add_argument("--eval-envs", type=int, default=8, help="eval episodes run side by side (default: 8)")
    ap.add_argument("--snapshot-minutes", type=float, default=5.0, help="SB3 snapshot interval (default: 5)")
    ap.add_argument("--out", default="results/train_vs_sb3", help="output folder (must not hold a previous run)")
    ap.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    args = ap.parse_args(argv)

    from robonav.eval.episodes import make_episodes, save_episodes
    from robonav.settings import load_settings, to_dict
    from robonav.train.config import TrainConfig

    out = Path(args.out)
    if (out / "robonav").exists() or (out / "sb3").exists():
        raise SystemExit(f"train_vs_sb3: {out} already holds a benchmark run (robonav/ or sb3/); give a new --out "
                         "or delete it (the trainer appends to an existing run's progress log)")
    cfg = load_settings(TrainConfig, args.launch, args.overrides, section="train")
    ppo = cfg.ppo if args.envs is None else dataclasses.replace(cfg.ppo, num_envs=args.envs)
    cfg = dataclasses.replace(cfg, out=str(out / "robonav"), run="run", workers=0, threads=1, ppo=ppo)
    out.mkdir(parents=True, exist_ok=True)
    episodes = out / "episodes.jsonl"
    save_episodes(episodes, make_episodes(args.eval_suite, args.eval_episodes, 0))
    job = {"cfg": to_dict(cfg), "seconds": 60.0 * args.minutes, "envs": args.envs, "out": str(out),
           "episodes": str(episodes), "eval_envs": args.eval_envs, "snapshot_s": 60.0 * args.snapshot_minutes}
    print(f"train_vs_sb3: {args.minutes:g} min each, one thread each, robonav {ppo.num_envs} envs (imitation "
          f"updates {cfg.imitation.updates}, curriculum {list(cfg.curriculum.stages)}), SB3 {args.envs or ZOO_ENVS} "
          f"envs with {ZOO_PYBULLET} + VecNormalize, same curriculum by callback; greedy eval on "
          f"{args.eval_episodes} {args.eval_suite} episodes; outputs in {out}", file=sys.stderr)
    ctx = mp.get_context("spawn")
    procs = {role: ctx.Process(target=_worker, args=(role, job), name=role) for role in ("robonav", "sb3")}
    t0 = time.perf_counter()
    for p in procs.values():
        p.start()
    while any(p.is_alive() for p in procs.values()):
        for p in procs.values():
            p.join(timeout=max(5.0, min(60.0, 6.0 * args.minutes)) / len(procs))
        _poll(out, cfg.run, t0)
    failed = [r for r, p in procs.items() if p.exitcode != 0]
    if failed:
        print(f"train_vs_sb3: {', '.join(failed)} failed (exit codes "
              f"{[procs[r].exitcode for r in failed]}); see the traceback above", file=sys.stderr)
        return 1
    res = {role: json.loads((out / role / "result.json").read_text()) for role in procs}
    summary = compare(res)
    summary["settings"] = {"minutes": args.minutes, "eval_suite": args.eval_suite, "launch": args.launch,
                           "overrides": args.overrides, "sb3_hyperparameters": ZOO_PYBULLET,
                           "robonav_imitation_updates": cfg.imitation.updates, "threads": 1}
    (out / "summary.json").write_text(json.dumps(_plain(summary), indent=1))
    if args.json:
        print(json.dumps(_plain(summary)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
