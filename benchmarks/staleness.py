"""R2D2's staleness ablation (Kapturowski et al. 2019, section 3) on robonav's 5x5 mazes: how the start state of a
replayed sequence changes the Q-value discrepancy and what the policy learns.

Variants (launch/train_q.yaml, only the named settings changed):
  zero           every replayed sequence starts from a zero LSTM state, no burn-in
  stored         from the state the actor stored (the input state of the sequence's first step), no burn-in
  stored-burnin  from the stored state, then 40 burn-in steps that only rebuild it (robonav's default)

Every run trains on 5x5 mazes of the train split only (one curriculum stage) for the same wall clock, with one
torch thread and the envs in its own process (train.workers=0); ``--parallel`` runs at a time (default: all
three at once, so they share the machine alike). The discrepancy is the learner's own metric (the normalised gap
between Q from the replayed state and Q from the actor's state, same weights; robonav.train.r2d2.loss), at the
first and the last trained step of each sequence, averaged over the last quarter of each run's chunks (and over
the whole run). Each final checkpoint then runs the same paired 5x5 test episodes through `robonav eval`.
Resumable like ablation.py: a run with its JSON in ``--out`` is done and skipped.

    python benchmarks/staleness.py --minutes 30
"""

from __future__ import annotations

import argparse
import json
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ablation import mean_ci, save_result, train_and_eval, wilson

VARIANTS: dict[str, list[str]] = {
    "zero": ["train.r2d2.init_state=zero", "train.r2d2.burn_in=0"],
    "stored": ["train.r2d2.init_state=stored", "train.r2d2.burn_in=0"],
    "stored-burnin": ["train.r2d2.init_state=stored", "train.r2d2.burn_in=40"],
}
FIVE_BY_FIVE = ["train.curriculum.stages=[[5, 5]]"]


def _mean(rows: list[dict], key: str) -> float:
    values = [r[key] for r in rows if key in r]
    return sum(values) / len(values) if values else float("nan")


def discrepancy(progress: Path) -> dict[str, float]:
    """The staleness metrics of a run's progress.jsonl: over the last quarter of its chunks and over all."""
    rows = [json.loads(line) for line in progress.read_text().splitlines() if line.strip()]
    rows = [r for r in rows if r.get("learner_steps", 0) > 0]  # chunks that trained
    tail = rows[len(rows) * 3 // 4:]
    out = {f"{k}_last_quarter": _mean(tail, k) for k in ("discrepancy_first", "discrepancy_last", "param_lag")}
    out.update({f"{k}_all": _mean(rows, k) for k in ("discrepancy_first", "discrepancy_last")})
    out["trained_chunks"] = float(len(rows))
    return out


def episode_list(path: Path, suite: str, count: int) -> Path:
    """The paired eval episodes, written once (every later run is paired with the first)."""
    if not path.exists():
        from robonav.eval.episodes import make_episodes, save_episodes

        path.parent.mkdir(parents=True, exist_ok=True)
        save_episodes(path, make_episodes(suite, count, seed=0))
    return path


def run_one(variant: str, seed: int, args: argparse.Namespace) -> dict:
    """Train and evaluate one (variant, seed); the result JSON (read back if already done)."""
    name = f"{variant}-s{seed}"
    done = Path(args.out) / f"{name}.json"
    if done.exists():
        return json.loads(done.read_text())
    sets = [f"train.seed={seed}", "train.total_steps=100000000", *FIVE_BY_FIVE, *VARIANTS[variant], *args.set]
    trained, result, wall = train_and_eval(name, "train_q", sets, args)
    out = {"variant": variant, "seed": seed, "minutes": args.minutes, "wall_s": wall,
           "settings": VARIANTS[variant], "global_step": trained.get("global_step"),
           "learner_updates": trained.get("updates"), "train_success_rate": trained.get("success_rate"),
           "success_rate": result["success_rate"], "spl": result["spl"], "episodes": args.episodes,
           "success_ci": result.get("success_ci95"), **discrepancy(Path(args.runs) / name / "progress.jsonl")}
    save_result(done, out)
    print(f"{name}: success {out['success_rate']:.3f}, discrepancy first/last "
          f"{out['discrepancy_first_last_quarter']:.3f}/{out['discrepancy_last_last_quarter']:.3f} after "
          f"{out['global_step']} steps", file=sys.stderr, flush=True)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--minutes", type=float, default=30.0, help="training wall clock per run")
    p.add_argument("--parallel", type=int, default=3, help="runs at a time (one thread each)")
    p.add_argument("--episodes", type=int, default=200, help="paired eval episodes per run")
    p.add_argument("--episode-list", type=Path, default=Path("results/staleness/test5x5-200.jsonl"))
    p.add_argument("--set", action="append", default=[], help="extra --set for every run")
    p.add_argument("--runs", default="runs/staleness", help="where the training runs go")
    p.add_argument("--out", default="results/staleness", help="one JSON per finished run")
    p.add_argument("--json", action="store_true", help="print one JSON summary as the last line")
    args = p.parse_args()
    Path(args.out).mkdir(parents=True, exist_ok=True)
    episode_list(args.episode_list, "test-5x5", args.episodes)
    jobs = [(v, s) for s in args.seeds for v in args.variants]
    print(f"staleness: {len(jobs)} runs of {args.minutes} min on 5x5 mazes, {args.parallel} at a time, 1 thread "
          f"each; eval on {args.episodes} episodes of {args.episode_list}", file=sys.stderr, flush=True)
    with ThreadPoolExecutor(args.parallel) as pool:
        results = list(pool.map(lambda job: run_one(job[0], job[1], args), jobs))
    summary = {}
    print(f"\n{'variant':<15}{'seeds':>6}{'discrepancy first':>19}{'last':>8}{'param lag':>11}"
          f"{'test-5x5 success [95%]':>26}{'SPL':>7}{'env steps':>11}{'updates':>9}")
    for v in args.variants:
        rs = [r for r in results if r["variant"] == v]
        k = sum(round(r["success_rate"] * r["episodes"]) for r in rs)
        n = sum(r["episodes"] for r in rs)
        lo, hi = wilson(k, n) if len(rs) == 1 else mean_ci([r["success_rate"] for r in rs])[1:]
        row = {key: _mean(rs, key) for key in ("discrepancy_first_last_quarter", "discrepancy_last_last_quarter",
                                               "param_lag_last_quarter", "spl", "global_step", "learner_updates")}
        summary[v] = {"seeds": [r["seed"] for r in rs], "success": k / n, "success_ci": [lo, hi], **row}
        print(f"{v:<15}{len(rs):>6}{row['discrepancy_first_last_quarter']:>19.3f}"
              f"{row['discrepancy_last_last_quarter']:>8.3f}{row['param_lag_last_quarter']:>11.1f}"
              f"{f'{k / n:.3f} [{lo:.3f}, {hi:.3f}]':>26}{row['spl']:>7.3f}{row['global_step']:>11.0f}"
              f"{row['learner_updates']:>9.0f}")
    print(f"settings: {args.minutes} min per run on 5x5 mazes (train split), {args.parallel} runs at a time, 1 torch "
          f"thread, workers=0; discrepancy and parameter lag averaged over each run's last quarter of chunks; "
          f"{args.episodes} paired episodes of {args.episode_list} per run (Wilson interval for one seed, t over "
          "seeds otherwise)")
    if args.json:
        print(json.dumps({"minutes": args.minutes, "episodes": args.episodes, "variants": summary}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
