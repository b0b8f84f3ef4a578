"""Pictures for evaluation: the learning curve of a training run and trajectory pictures of episodes.

matplotlib (the ``[sim]`` extra) is imported inside the functions that draw.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np


def read_progress(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a run's progress.jsonl (one per update); a torn last line (a killed run) is skipped."""
    rows = []
    for line in Path(path).read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def learning_curve(progress: str | Path, out: str | Path, smooth: int = 10) -> Path:
    """Success rate and SPL of the training episodes against environment steps, imitation phase shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_progress(progress)
    if not rows:
        raise ValueError(f"{progress}: no progress rows to plot; is it a robonav run's progress.jsonl?")
    steps = np.array([r["global_step"] for r in rows], dtype=float)
    success = np.array([r["success_rate"] for r in rows], dtype=float)
    k = max(1, min(smooth, len(rows)))
    csum = np.cumsum(np.concatenate([[0.0], success]))
    idx = np.arange(1, len(rows) + 1)
    trailing = (csum[idx] - csum[np.maximum(idx - k, 0)]) / np.minimum(idx, k)  # mean of the last k updates
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.plot(steps / 1e6, trailing, label="success (training episodes)")
    spl = [(r["global_step"], r["spl"]) for r in rows if "spl" in r]
    if spl:
        s, v = np.array(spl).T
        ax.plot(s / 1e6, v, ".", ms=2, alpha=0.4, label="SPL (finished episodes)")
    imitation = [r["global_step"] for r in rows if "imitation_loss" in r]
    if imitation:
        ax.axvspan(0, max(imitation) / 1e6, color="tab:orange", alpha=0.12, label="imitation (DAgger)")
    stages = [(r["global_step"], r["stage"]) for a, r in itertools.pairwise(rows) if r["stage"] != a["stage"]]
    for s_, st in stages:
        ax.axvline(s_ / 1e6, color="grey", lw=0.8, ls=":")
        ax.text(s_ / 1e6, 1.02, f"stage {st}", fontsize=6, rotation=90, va="bottom")
    ax.set_xlabel("environment steps (millions)")
    ax.set_ylabel("rate")
    ax.set_ylim(0, 1.1)
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title(Path(progress).parent.name, fontsize=9)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return out
