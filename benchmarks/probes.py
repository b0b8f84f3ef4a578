"""What the LSTM remembers: linear probes from a policy's core state to what the observation of the moment lacks.

For each condition it records ``--episodes`` episodes of a validation suite with the policy (robonav.eval.probes:
the eval settings, episodes ``make_episodes(suite, N, seed)``), fits ridge (or logistic) probes on 70 % of the
episodes and scores them on the other 30 %: R^2 (accuracy for a yes/no target) of the same probe on

    core         the policy's LSTM h and c after the tick (an MLP core's hidden layer)
    encoder      what the core received this tick (the memoryless part of the same network)
    observation  the observation vector itself (with its memory grids and guidance)
    memoryless   the core of ``--memoryless CKPT`` (an MLP-core policy) fed the same observations

with 95 % intervals from resampling held-out episodes and the paired difference to the observation probe. It
prints the table, and writes ``results/probes/<name>.json`` and ``<name>.png`` (atomically). Validation suites only:
policies are judged on ``val``, never on test, hand or office.

    python benchmarks/probes.py --policy default --conditions nominal,dynamic --episodes 40
"""

from __future__ import annotations

import os

for _v in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_v, "1")  # a BLAS thread per core made every probe fit 20x slower on the shared machine

import argparse  # noqa: E402
import io  # noqa: E402
import shlex  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_common import bench_header, write_json  # noqa: E402

SET_COLORS = {"core": "tab:blue", "encoder": "tab:cyan", "observation": "tab:gray", "memoryless": "tab:orange"}
R2_FLOOR = -0.5
"""Bars of scores below this are drawn down to it and labelled with their value."""


def load_model(spec: str) -> tuple[Any, Any]:
    """(torch model, eval SimConfig) of a checkpoint or shipped name; anything else is refused in one line."""
    from robonav.errors import UserError
    from robonav.eval.policies import resolve_policy

    resolved = resolve_policy(spec)
    model = getattr(resolved.factory(1), "model", None)
    if model is None:
        raise UserError(f"--policy/--memoryless {spec!r}: probes read the core's state, so they need a checkpoint "
                        "(.pt) or a shipped name (default, default-q), not a baseline or an exported model")
    return model, resolved.sim_config


def check_suite(suite: str) -> None:
    """Refuse anything but a generated validation suite (policies are never tuned on judged suites)."""
    from robonav.errors import UserError
    from robonav.sim.suites import SuiteError, parse_suite

    try:
        split = parse_suite(suite).split
    except SuiteError:
        split = ""
    if split != "val":
        raise UserError(f"--suite {suite!r}: probes run on validation suites only (val, val-9x9, ...); the test "
                        "split, hand and office are run once, for what ships")


def run(args: argparse.Namespace) -> dict[str, Any]:
    from robonav.errors import UserError
    from robonav.eval.conditions import apply_conditions
    from robonav.eval.episodes import make_episodes
    from robonav.eval.probes import probe_table, record_episodes

    check_suite(args.suite)
    model, config = load_model(args.policy)
    shadows = {}
    if args.memoryless:
        mlp, _ = load_model(args.memoryless)
        if mlp.cfg.core != "mlp" or mlp.obs_dim != model.obs_dim:
            raise UserError(f"--memoryless {args.memoryless}: expected an MLP-core policy of observation size "
                            f"{model.obs_dim}, found core {mlp.cfg.core!r} of size {mlp.obs_dim}")
        shadows["memoryless"] = mlp
    episodes = make_episodes(args.suite, args.episodes, seed=args.seed)
    out: dict[str, Any] = {
        **bench_header(None), "command": "python benchmarks/probes.py " + shlex.join(sys.argv[1:]),
        "settings": {k: getattr(args, k) for k in ("policy", "memoryless", "suite", "episodes", "seed", "envs",
                                                   "stride", "test_fraction", "resamples")},
        "label": args.label, "conditions": {}}
    for cond in args.conditions.split(","):
        t0 = time.perf_counter()
        records = record_episodes(model, episodes, apply_conditions(config, cond), shadows, num_envs=args.envs)
        t1 = time.perf_counter()
        table = probe_table(records, args.test_fraction, args.seed, args.stride, args.resamples)
        out["conditions"][cond] = {
            "success_rate": sum(r.success for r in records) / len(records),
            "ticks": int(sum(len(r.trajectory.pose) for r in records)),
            "record_s": round(t1 - t0, 1), "probe_s": round(time.perf_counter() - t1, 1), **table}
        print(f"[{cond}] {len(records)} episodes recorded in {t1 - t0:.0f} s, probed in "
              f"{time.perf_counter() - t1:.0f} s", file=sys.stderr)
    return out


def format_table(out: dict[str, Any]) -> str:
    """One line per condition and target: every feature set's score [95 % interval], side by side."""
    lines = []
    for cond, res in out["conditions"].items():
        lines.append(f"== {cond}: success {res['success_rate']:.2f}, {res['ticks']} ticks")
        for name, entry in res["targets"].items():
            if "skipped" in entry:
                lines.append(f"  {name:20s} skipped: {entry['skipped']}")
                continue
            metric = "R2 " if entry["kind"] == "regression" else "acc"
            cells = "  ".join(f"{s} {v['score']:+.3f} [{v['ci95'][0]:+.2f}, {v['ci95'][1]:+.2f}]"
                              for s, v in entry["scores"].items())
            extra = f"  (majority {entry['majority_accuracy']:.3f})" if "majority_accuracy" in entry else ""
            diff = entry.get("minus_observation", {}).get("core")
            d = f"  core-obs {diff['difference']:+.3f} [{diff['ci95'][0]:+.2f}, {diff['ci95'][1]:+.2f}]" if diff \
                else ""
            lines.append(f"  {name:20s} {metric} {cells}{extra}{d}")
    return "\n".join(lines)


def plot(out: dict[str, Any], path: Path) -> None:
    """Bars per target and feature set with 95 % intervals, one panel per condition; written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from robonav.atomic import write_bytes_atomic

    conds = list(out["conditions"])
    fig, axes = plt.subplots(len(conds), 1, figsize=(10, 3.2 * len(conds)), squeeze=False)
    for ax, cond in zip(axes[:, 0], conds):
        targets = {k: v for k, v in out["conditions"][cond]["targets"].items() if "scores" in v}
        sets = list(next(iter(targets.values()))["scores"]) if targets else []
        width = 0.8 / max(len(sets), 1)
        for j, s in enumerate(sets):
            xs = np.arange(len(targets)) + (j - (len(sets) - 1) / 2) * width
            vals = np.array([t["scores"][s]["score"] for t in targets.values()])
            lo = np.array([t["scores"][s]["ci95"][0] for t in targets.values()])
            hi = np.array([t["scores"][s]["ci95"][1] for t in targets.values()])
            shown = np.maximum(vals, R2_FLOOR)
            err = np.stack([np.clip(shown - np.maximum(lo, R2_FLOOR), 0, None), np.clip(hi - shown, 0, None)])
            ax.bar(xs, shown, width, yerr=err, capsize=2, color=SET_COLORS.get(s, None), label=s)
            for x, v in zip(xs, vals):
                if v < R2_FLOOR:
                    ax.text(x, -0.1, f"{v:.2f}", rotation=90, fontsize=6, va="top", ha="center", color="white")
        for x, t in enumerate(targets.values()):
            if "majority_accuracy" in t:
                ax.hlines(t["majority_accuracy"], x - 0.45, x + 0.45, colors="black", linestyles="--", lw=1)
                ax.text(x + 0.45, t["majority_accuracy"], "majority", fontsize=6, va="bottom", ha="right")
        names = [n + (" (acc)" if t["kind"] == "classification" else "") for n, t in targets.items()]
        ax.set_xticks(np.arange(len(targets)), names, fontsize=7, rotation=15)
        ax.axhline(0, color="black", lw=0.6)
        ax.set_ylim(R2_FLOOR, 1.05)
        ax.set_ylabel("held-out R^2 (accuracy)")
        res = out["conditions"][cond]
        ax.set_title(f"{out['settings']['policy']} on {out['settings']['suite']}, {cond}: "
                     f"{out['settings']['episodes']} episodes ({len(res['split']['test'])} held out), "
                     f"success {res['success_rate']:.2f}" + (f" - {out['label']}" if out.get("label") else ""),
                     fontsize=8)
        ax.legend(fontsize=7, ncol=len(sets), loc="upper right")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    write_bytes_atomic(path, buf.getvalue())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--policy", default="default", help="checkpoint (.pt) or shipped name whose core is probed")
    p.add_argument("--memoryless", default="", help="an MLP-core checkpoint probed on the same observations")
    p.add_argument("--label", default="", help="said on the plot and in the JSON (e.g. 'tooling demo')")
    p.add_argument("--suite", default="val", help="a validation suite (val, val-9x9, ...)")
    p.add_argument("--conditions", default="nominal,dynamic", help="named conditions, comma separated, each run")
    p.add_argument("--episodes", type=int, default=40)
    p.add_argument("--seed", type=int, default=0, help="episode list and split seed")
    p.add_argument("--envs", type=int, default=8, help="episodes run side by side")
    p.add_argument("--stride", type=int, default=2, help="probe every stride-th tick (neighbours are near copies)")
    p.add_argument("--test-fraction", type=float, default=0.3, help="episodes held out for scoring")
    p.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples of held-out episodes")
    p.add_argument("--name", default="", help="output name (default: the policy's file stem)")
    p.add_argument("--out", default="results/probes", help="folder for <name>.json and <name>.png")
    p.add_argument("--replot", default="", help="only redraw the PNG beside this JSON of an earlier run")
    args = p.parse_args(argv)
    if args.replot:
        import json

        plot(json.loads(Path(args.replot).read_text()), Path(args.replot).with_suffix(".png"))
        return 0
    from robonav.errors import UserError

    try:
        out = run(args)
    except UserError as e:
        print(f"probes: {e}", file=sys.stderr)
        return 2
    print(format_table(out))
    name = args.name or Path(args.policy).stem
    folder = Path(args.out)
    write_json(folder / f"{name}.json", out)
    plot(out, folder / f"{name}.png")
    print(f"wrote {folder / name}.json and .png", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
