"""Does the memory matter? Train each variant for the same wall clock with several seeds, evaluate all on the
same paired episodes, and print success and SPL per variant with intervals.

Variants (all from launch/train.yaml, only the named settings changed):
  mlp          memoryless: the same encoder, an MLP instead of the LSTM, every observation block
  lstm-nomem   LSTM without the memory grids: no obstacle or trajectory patches, no guidance (it plans on them)
  lstm-mem     LSTM with them: the default recipe
  lstm-noguide LSTM with the patches but without the guidance block (optional: --variants ... lstm-noguide)

Each run is a `robonav train` subprocess with one torch thread and the envs in the learner's process
(train.workers=0), ``--parallel`` runs at a time (the issue's protocol: two at a time, one thread each, 20 minutes
per run). Then every final checkpoint runs the same episode list through `robonav eval`. A run counts as done
when its eval JSON exists in ``--out``; rerunning skips done runs and restarts unfinished ones from scratch
(so an interrupted ablation loses at most the runs in flight).

    python benchmarks/ablation.py --minutes 20 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

_PATCHES = ("obstacle_fine", "obstacle_coarse", "trajectory_fine", "trajectory_coarse")
VARIANTS: dict[str, list[str]] = {
    "mlp": ["train.policy.core=mlp"],
    "lstm-nomem": [f"train.sim.preprocessor.{p}=false" for p in (*_PATCHES, "guidance")],
    "lstm-mem": [],
    "lstm-noguide": ["train.sim.preprocessor.guidance=false"],
}
T_975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", NUMBA_NUM_THREADS="1")
    return env


def train_and_eval(name: str, launch: str, sets: list[str], args: argparse.Namespace) -> tuple[dict, dict, float]:
    """One `robonav train` subprocess (``--minutes``, one thread, envs in its process) from scratch in
    ``args.runs``/name, then `robonav eval` of its last.pt on ``args.episode_list``: (train JSON, eval JSON, wall s)."""
    run_dir = Path(args.runs) / name
    shutil.rmtree(run_dir, ignore_errors=True)  # an unfinished run restarts from scratch
    sets = [f"train.run={name}", f"train.out={args.runs}", "train.workers=0", "train.threads=1", *sets]
    cmd = [sys.executable, "-m", "robonav.cli", "train", "--launch", launch, "--minutes", str(args.minutes),
           "--quiet", "--json"]
    for s in sets:
        cmd += ["--set", s]
    t0 = time.perf_counter()
    train = subprocess.run(cmd, env=_env(), capture_output=True, text=True)
    if train.returncode != 0:
        raise RuntimeError(f"{name}: training failed ({train.returncode}):\n{train.stderr[-3000:]}")
    trained = json.loads(train.stdout.strip().splitlines()[-1])
    ev = subprocess.run([sys.executable, "-m", "robonav.cli", "eval", "--policy", str(run_dir / "last.pt"),
                         "--episode-list", str(args.episode_list), "--episodes", str(args.episodes), "--envs", "8",
                         "--json"], env=_env(), capture_output=True, text=True)
    if ev.returncode != 0:
        raise RuntimeError(f"{name}: eval failed ({ev.returncode}):\n{ev.stderr[-3000:]}")
    return trained, json.loads(ev.stdout.strip().splitlines()[-1]), time.perf_counter() - t0


def save_result(done: Path, out: dict) -> None:
    """Atomically: a half-written result never counts as done."""
    tmp = done.with_suffix(".tmp")
    tmp.write_text(json.dumps(out))
    tmp.replace(done)


def run_one(variant: str, seed: int, args: argparse.Namespace) -> dict:
    """Train and evaluate one (variant, seed); returns the eval result (read back if already done)."""
    name = f"{variant}-s{seed}"
    done = Path(args.out) / f"{name}.json"
    if done.exists():
        return json.loads(done.read_text())
    trained, result, wall = train_and_eval(name, args.launch, [f"train.seed={seed}", *VARIANTS[variant], *args.set],
                                           args)
    out = {"variant": variant, "seed": seed, "minutes": args.minutes, "wall_s": wall,
           "global_step": trained.get("global_step"), "update": trained.get("update"),
           "success_rate": result["success_rate"], "spl": result["spl"], "episodes": args.episodes,
           "success_ci": result.get("success_ci95")}
    save_result(done, out)
    print(f"{name}: success {out['success_rate']:.3f}, SPL {out['spl']:.3f} after {out['global_step']} steps",
          file=sys.stderr, flush=True)
    return out


def mean_ci(values: list[float]) -> tuple[float, float, float]:
    """Mean and its 95 % t-interval over seeds."""
    n = len(values)
    m = sum(values) / n
    if n < 2:
        return m, math.nan, math.nan
    sd = math.sqrt(sum((v - m) ** 2 for v in values) / (n - 1))
    half = T_975.get(n - 1, 1.96) * sd / math.sqrt(n)
    return m, m - half, m + half


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return max(0.0, c - h), min(1.0, c + h)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--variants", nargs="+", default=["mlp", "lstm-nomem", "lstm-mem"], choices=list(VARIANTS))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--minutes", type=float, default=20.0, help="training wall clock per run")
    p.add_argument("--parallel", type=int, default=2, help="runs at a time (one thread each)")
    p.add_argument("--episodes", type=int, default=200, help="paired eval episodes per run (the whole list)")
    p.add_argument("--episode-list", default="results/test200.jsonl")
    p.add_argument("--launch", default="train")
    p.add_argument("--set", action="append", default=[], help="extra --set for every run")
    p.add_argument("--runs", default="runs/ablation", help="where the training runs go")
    p.add_argument("--out", default="results/ablation", help="one JSON per finished run")
    p.add_argument("--json", action="store_true", help="print one JSON summary as the last line")
    args = p.parse_args()
    Path(args.out).mkdir(parents=True, exist_ok=True)
    jobs = [(v, s) for s in args.seeds for v in args.variants]
    print(f"ablation: {len(jobs)} runs of {args.minutes} min, {args.parallel} at a time, 1 thread each; eval on "
          f"{args.episodes} episodes of {args.episode_list}", file=sys.stderr, flush=True)
    with ThreadPoolExecutor(args.parallel) as pool:
        results = list(pool.map(lambda job: run_one(job[0], job[1], args), jobs))
    summary = {}
    print(f"\n{'variant':<14}{'seeds':>6}{'success mean [95% t-CI]':>30}{'pooled success [Wilson]':>28}"
          f"{'SPL mean':>10}{'env steps':>12}")
    for v in args.variants:
        rs = [r for r in results if r["variant"] == v]
        m, lo, hi = mean_ci([r["success_rate"] for r in rs])
        k = sum(round(r["success_rate"] * r["episodes"]) for r in rs)
        n = sum(r["episodes"] for r in rs)
        plo, phi = wilson(k, n)
        spl = sum(r["spl"] for r in rs) / len(rs)
        steps = sum(r["global_step"] or 0 for r in rs) / len(rs)
        summary[v] = {"seeds": [r["seed"] for r in rs], "success": [r["success_rate"] for r in rs],
                      "success_mean": m, "success_ci": [lo, hi], "pooled": k / n, "pooled_ci": [plo, phi],
                      "spl_mean": spl, "mean_env_steps": steps}
        print(f"{v:<14}{len(rs):>6}{f'{m:.3f} [{lo:.3f}, {hi:.3f}]':>30}{f'{k / n:.3f} [{plo:.3f}, {phi:.3f}]':>28}"
              f"{spl:>10.3f}{steps:>12.0f}")
    print(f"settings: {args.minutes} min per run, {args.parallel} runs at a time, 1 torch thread, workers=0, "
          f"{args.episodes} episodes of {args.episode_list} per run")
    if args.json:
        print(json.dumps({"minutes": args.minutes, "episodes": args.episodes, "variants": summary}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
