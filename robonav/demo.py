"""`robonav demo`: the whole path on the shipped default policy, on a CPU machine, in a few minutes.

    robonav demo --out out/demo

1. export: the default checkpoint to ONNX (+ sidecar, weights), with a step-parity check against PyTorch;
2. quantize: INT8 (QDQ) with calibration on validation episodes;
3. HIL: for FP32 and INT8 in turn, the fastest CPU backend that runs that precision (Numba for FP32, ONNX
   Runtime for INT8: the Numba backend runs FP32 weights only) in the fixed-step loop of `robonav run`, driving
   the simulator-as-robot over UDP (`robonav hil`, two processes) on a few test mazes at a raised clock factor;
4. the same episodes through `robonav eval` (in process, no wire) for comparison;
5. one table (success, SPL, loop latency p50/p99, deadline misses, command age, per precision) and a picture of
   the trajectories (out/trajectories.png), plus everything each stage wrote, under ``--out``.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

StageProgress = Callable[[str, int, int], None]
"""progress(stage, done, total) (robonav.deploy.parity.StageProgress, not imported here: it pulls the simulator)."""

__all__ = ["format_table", "plot_trajectories", "run_demo"]


def _say(msg: str) -> None:
    print(f"[demo] {msg}", file=sys.stderr, flush=True)


def _bound(progress: StageProgress | None, stage: str) -> Callable[[int, int], None] | None:
    """``progress`` of one stage as progress(done, total)."""
    return None if progress is None else (lambda done, total: progress(stage, done, total))


def _prefixed(progress: StageProgress | None, prefix: str) -> StageProgress | None:
    """``progress`` with ``prefix`` before each of a sub-function's stage names."""
    return None if progress is None else (lambda stage, done, total: progress(f"{prefix}: {stage}", done, total))


def run_demo(out: str | Path, episodes: int = 4, suite: str = "test", seed: int = 0, clock_factor: float = 8.0,
             parity_steps: int = 300, progress: StageProgress | None = None) -> dict[str, Any]:
    """Run every stage; returns the results (also written to out/demo.json). ``progress(stage, done, total)``
    within each stage (robonav.deploy.parity.StageProgress); the stage names are also said on stderr."""
    import torch

    from robonav.deploy.export import export_onnx
    from robonav.deploy.parity import export_parity
    from robonav.deploy.quantize import QuantizeConfig, quantize_int8
    from robonav.eval.episodes import make_episodes
    from robonav.eval.metrics import summarize
    from robonav.eval.policies import checkpoint_path, resolve_policy
    from robonav.eval.runner import run_episodes
    from robonav.hil.runner import HilSettings, run_hil

    torch.set_num_threads(1)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    stages: dict[str, float] = {}

    _say("1/4 export the default policy to ONNX and check step parity against PyTorch")
    checkpoint = checkpoint_path("default")
    done = export_onnx(checkpoint, out / "default.onnx")
    parity = export_parity(checkpoint, done.onnx, steps=parity_steps, parity_suite="val-3x3", episodes=0,
                           progress=_prefixed(progress, "1/4 export"))
    stages["export_s"] = time.perf_counter() - t0

    _say("2/4 quantize to INT8 (QDQ), calibrated on validation episodes")
    t = time.perf_counter()
    int8 = out / "default.int8.onnx"
    quantize_int8(done.onnx, int8, QuantizeConfig(calib_episodes=8, calib_samples=1024),
                  progress=_bound(progress, "2/4 quantize: calibration episodes"))
    stages["quantize_s"] = time.perf_counter() - t

    rows = []
    for precision, model, backend in (("fp32", done.onnx, "numba"), ("int8", int8, "ort")):
        _say(f"3/4 HIL {precision}: backend {backend} in the fixed-step loop, sim-robot over UDP, {episodes} "
             f"{suite} episodes at {clock_factor:g}x real time")
        t = time.perf_counter()
        settings = HilSettings(episodes=episodes, suite=suite, seed=seed, clock="scaled", clock_factor=clock_factor,
                               out=str(out / f"hil-{precision}"), trajectories=True)
        hil = run_hil(settings, "hil", [f"run.model={model.resolve()}", f"run.backend={backend}"],
                      _bound(progress, f"3/4 HIL {precision} episodes"))
        stages[f"hil_{precision}_s"] = time.perf_counter() - t
        _say(f"4/4 eval {precision}: the same episodes in process (robonav eval)")
        t = time.perf_counter()
        resolved = resolve_policy(str(model))
        factory, cfg = resolved.factory, resolved.sim_config
        specs = make_episodes(suite, episodes, seed)
        ev = summarize(run_episodes(factory, specs, cfg, num_envs=min(4, episodes),
                                    progress=_bound(progress, f"4/4 eval {precision} episodes")))
        stages[f"eval_{precision}_s"] = time.perf_counter() - t
        timing = hil["timing"]
        rows.append({"precision": precision, "backend": backend, "model": str(model),
                     "bytes": model.stat().st_size, "episodes": hil["episodes"],
                     "hil_success": hil["success_rate"], "hil_spl": hil["spl"], "eval_success": ev["success_rate"],
                     "eval_spl": ev["spl"], "loop_p50_us": timing["loop_p50_us"],
                     "loop_p99_us": timing["loop_p99_us"], "deadline_misses": timing["deadline_misses"],
                     "ticks": timing["ticks"], "command_age_p50_ms": timing["command_age_ms"]["p50"],
                     "verdict": hil["verdict"]["passed"], "hil_out": hil["out"]})
    picture = plot_trajectories([Path(r["hil_out"]) / "trajectories.npz" for r in rows],
                                [r["precision"] for r in rows], make_episodes(suite, episodes, seed),
                                out / "trajectories.png")
    result = {"rows": rows, "parity_max_abs_error": parity["step"]["max_abs_error"],
              "parity_passed": parity["step"]["passed"], "picture": str(picture), "suite": suite, "seed": seed,
              "clock_factor": clock_factor, "stages_s": {k: round(v, 1) for k, v in stages.items()},
              "wall_s": round(time.perf_counter() - t0, 1)}
    (out / "demo.json").write_text(json.dumps(result, indent=1))
    return result


def plot_trajectories(files: list[Path], labels: list[str], specs: list[Any], path: Path) -> Path:
    """One panel per episode: the maze, and each run's true path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    runs = [np.load(f) for f in files]
    n = len(specs)
    cols = min(n, 4)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.2 * rows), squeeze=False)
    colors = ("tab:blue", "tab:orange", "tab:green")
    for i, (ax, spec) in enumerate(zip(axes.flat, specs, strict=False)):
        m = spec.maze
        ext = (0.0, m.cols * m.cell, 0.0, m.rows * m.cell)
        ax.imshow(m.occupancy, origin="lower", extent=ext, cmap="Greys", vmin=0, vmax=1.3, interpolation="nearest")
        for run, label, color in zip(runs, labels, colors, strict=False):
            key = f"poses_{i}"
            if key in run:
                p = run[key]
                ax.plot(p[:, 0], p[:, 1], "-", color=color, lw=1.3, label=label, alpha=0.85)
        ax.plot(*m.cell_center(m.start), "o", color="tab:green", ms=7)
        ax.plot(*m.cell_center(m.goal), "*", color="tab:red", ms=12)
        ax.set_title(m.name or m.hash()[:8], fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_aspect("equal")
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7, loc="upper right")
    fig.suptitle("robonav demo: HIL paths over UDP (start o, goal *)", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def format_table(result: dict[str, Any]) -> str:
    """The demo's one table."""
    head = (f"{'precision':<10}{'backend':<8}{'model kB':>9}{'HIL success':>12}{'HIL SPL':>9}{'eval success':>13}"
            f"{'eval SPL':>9}{'loop p50 us':>12}{'p99 us':>9}{'misses':>9}{'cmd age ms':>11}")
    lines = [head, "-" * len(head)]
    for r in result["rows"]:
        lines.append(f"{r['precision']:<10}{r['backend']:<8}{r['bytes'] / 1e3:>9.0f}{r['hil_success']:>12.3f}"
                     f"{r['hil_spl']:>9.3f}{r['eval_success']:>13.3f}{r['eval_spl']:>9.3f}{r['loop_p50_us']:>12.1f}"
                     f"{r['loop_p99_us']:>9.1f}{r['deadline_misses']:>5}/{r['ticks']:<4}"
                     f"{r['command_age_p50_ms']:>10.1f}")
    n = result["rows"][0]["episodes"]
    lines.append(f"{n} {result['suite']} episodes (seed {result['seed']}) each, HIL at {result['clock_factor']:g}x "
                 f"real time over UDP (robonav hil: runtime and sim-robot as two processes); export parity max |error| "
                 f"{result['parity_max_abs_error']:.2e}; trajectories: {result['picture']}; {result['wall_s']} s")
    return "\n".join(lines)


def main(out: str, episodes: int, suite: str, seed: int, clock_factor: float, as_json: bool,
         progress: StageProgress | None = None) -> int:
    """``robonav demo``; ``progress``: see `run_demo`."""
    result = run_demo(out, episodes, suite, seed, clock_factor, progress=progress)
    print(json.dumps(result, sort_keys=True) if as_json else format_table(result))
    ok = result["parity_passed"] and all(r["verdict"] for r in result["rows"])
    return 0 if ok else 1

