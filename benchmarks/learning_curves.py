"""Success against environment steps for several training runs on one plot (e.g. PPO's default and R2D2's
default-q): every kept checkpoint of each run (update-NNNNNN.pt, chunk-NNNNNN.pt and last.pt) runs the same
paired held-out episodes (the validation split, never trained on, never the test split) with the deterministic
policy, so the curves compare learners, not their exploration noise or curriculum stage.

Each (checkpoint, episode list) result is cached in ``--out`` (default_policy.py's cache, keyed by the
checkpoint's path), so rerunning after a run has kept more checkpoints evaluates only the new ones. Jobs run two
at a time, one thread each.

    python benchmarks/learning_curves.py --run PPO=results/train-logs/default --run R2D2=runs/default-q
"""

from __future__ import annotations

import os

for _v in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
from concurrent.futures import ProcessPoolExecutor  # noqa: E402
from pathlib import Path  # noqa: E402

from ablation import wilson  # noqa: E402
from default_policy import _episodes, _job  # noqa: E402


def checkpoints(run: Path, stride: int = 1) -> list[Path]:
    """Every ``stride``-th kept checkpoint of a run in training order, with last.pt at the end."""
    kept = sorted(run.glob("update-*.pt")) + sorted(run.glob("chunk-*.pt"))
    return kept[stride - 1::stride] + ([run / "last.pt"] if (run / "last.pt").exists() else [])


def env_steps(path: Path) -> int:
    from robonav.policy.checkpoint import load_checkpoint

    return int(load_checkpoint(path)["meta"]["global_step"])


def plot(curves: dict[str, list[dict]], progress: dict[str, Path], out: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from robonav.eval.plots import read_progress

    fig, ax = plt.subplots(figsize=(10, 4.2))
    colors = ("tab:blue", "tab:red", "tab:green", "tab:purple", "tab:orange", "tab:brown", "tab:gray")
    if len(curves) > len(colors):
        raise SystemExit(f"learning_curves: at most {len(colors)} runs on one plot, got {len(curves)}")
    for (label, points), color in zip(curves.items(), colors):
        x = [p["env_steps"] / 1e6 for p in points]
        ax.plot(x, [p["success"] for p in points], "o-", color=color, ms=3, label=f"{label}: held-out success")
        ax.fill_between(x, [p["ci"][0] for p in points], [p["ci"][1] for p in points], color=color, alpha=0.15)
        rows = read_progress(progress[label])
        ax.plot([r["global_step"] / 1e6 for r in rows], [r["success_rate"] for r in rows], color=color, lw=0.6,
                alpha=0.45, label=f"{label}: training episodes (its curriculum stage, exploring)")
        imitation = [r["global_step"] for r in rows if "imitation_loss" in r]
        if imitation:
            ax.axvspan(0, max(imitation) / 1e6, color=color, alpha=0.07, label=f"{label}: imitation warm start")
    ax.set_xlabel("environment steps (millions)")
    ax.set_ylabel("success rate")
    ax.set_ylim(0, 1.05)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the axes: no curve hidden
    ax.set_title(title, fontsize=9)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", action="append", required=True, metavar="LABEL=FOLDER",
                   help="a training run's folder (with progress.jsonl and kept checkpoints), repeatable")
    p.add_argument("--suite", default="val", help="held-out episodes: a validation suite (val is 7x7)")
    p.add_argument("--episodes", type=int, default=100)
    p.add_argument("--out", default="results/learning_curves")
    p.add_argument("--figure", default="results/figures/learning_curves_ppo_r2d2.png")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--stride", action="append", default=[], metavar="LABEL=K",
                   help="evaluate every K-th kept checkpoint of run LABEL (default: every one)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    runs: dict[str, Path] = {}
    for item in args.run:
        label, sep, folder = item.partition("=")
        if not sep or not (Path(folder) / "progress.jsonl").exists():
            p.error(f"--run {item!r}: expected LABEL=FOLDER with FOLDER/progress.jsonl")
        runs[label] = Path(folder)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    _episodes(out, args.suite, args.episodes)  # written once, before the workers read it
    strides = {label: int(k) for label, _, k in (item.partition("=") for item in args.stride)}
    jobs = [(label, ck) for label, run in runs.items() for ck in checkpoints(run, strides.get(label, 1))]
    with ProcessPoolExecutor(args.workers) as pool:
        rows = list(pool.map(_job, [str(ck) for _, ck in jobs], [args.suite] * len(jobs),
                             [args.episodes] * len(jobs), [str(out)] * len(jobs)))
    curves: dict[str, list[dict]] = {label: [] for label in runs}
    for (label, ck), results in zip(jobs, rows):
        k = sum(bool(r["success"]) for r in results)
        spl = sum(r["spl"] for r in results) / len(results)
        curves[label].append({"checkpoint": str(ck), "env_steps": env_steps(ck), "success": k / len(results),
                              "ci": list(wilson(k, len(results))), "spl": spl, "episodes": len(results)})
    for points in curves.values():
        points.sort(key=lambda pt: pt["env_steps"])
    print(f"held-out success against environment steps ({args.episodes} paired episodes of suite {args.suite!r} "
          "per checkpoint, deterministic policy)")
    for label, points in curves.items():
        print(f"\n{label} ({runs[label]})\n{'env steps':>12}  {'success [95% Wilson]':<24}{'SPL':>6}")
        for pt in points:
            print(f"{pt['env_steps']:>12,}  {pt['success']:.3f} [{pt['ci'][0]:.3f}, {pt['ci'][1]:.3f}]{'':<4}"
                  f"{pt['spl']:>6.3f}")
        first = next((pt["env_steps"] for pt in points if pt["success"] >= 0.8), None)
        print(f"first checkpoint at >= 0.8 held-out success: {first if first is not None else 'none'} env steps")
    figure = plot(curves, {label: run / "progress.jsonl" for label, run in runs.items()}, Path(args.figure),
                  f"held-out success ({args.suite}, {args.episodes} paired episodes per checkpoint)")
    print(f"\nfigure: {figure}", file=sys.stderr)
    (out / "curves.json").write_text(json.dumps(curves, indent=1))
    if args.json:
        print(json.dumps(curves))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
