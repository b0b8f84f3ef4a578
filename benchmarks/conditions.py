"""The yardstick table: policies x suites x named conditions on paired episodes.

Every cell runs one policy on one suite under one condition (robonav.eval.conditions) with the episodes
``make_episodes(suite, N, seed=0)``: every policy and every condition of a suite meets the same mazes, starts,
goals and noise seeds, so any two cells of a row or a column compare pairwise. N is ``--episodes`` (200), and
``--test-nominal-episodes`` (500) for test under nominal (its first 200 are the other cells' 200).

Cells run one at a time in this process (one thread); each finished cell is written at once (atomically) into
``--out`` (JSON) and the Markdown table beside it, and a cell already in the JSON with the same episode count is
skipped, so a killed run resumes and the table grows cell by cell. A cell among movers measured under an
older mover model (``robonav.sim.dynamic.MOVER_MODEL``), or of a learned policy whose weights file has changed
since (a new ``default``), is stale and runs again. A condition this build lacks
(``dynamic`` before moving obstacles exist) is reported and skipped.

    python benchmarks/conditions.py --policies classical,guided,default,default-q \\
        --suites test,test-9x9,test-11x11,test-c0.8,office,hand
"""

from __future__ import annotations

import os

for _v in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import datetime  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

SUITES = ("test", "test-9x9", "test-11x11", "test-c0.8", "office", "hand")
POLICIES = ("classical", "guided", "default", "default-q", "expert")


def _commit() -> str:
    """The commit measured: $ROBONAV_COMMIT (a run from an exported snapshot), else the checkout's HEAD."""
    if os.environ.get("ROBONAV_COMMIT"):
        return os.environ["ROBONAV_COMMIT"]
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              check=True, cwd=Path(__file__).parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def cell_key(suite: str, condition: str, policy: str) -> str:
    """Key of one cell in the JSON."""
    return f"{suite}|{condition}|{policy}"


def mover_model(condition: str) -> int | None:
    """The mover model a cell under ``condition`` is measured in; None where the condition has no movers."""
    from robonav.eval.conditions import apply_conditions, parse_conditions
    from robonav.sim.config import SimConfig

    return _model() if apply_conditions(SimConfig(), parse_conditions(condition)).dynamic.peak_density > 0 else None


def _model() -> int:
    from robonav.sim.dynamic import MOVER_MODEL

    return MOVER_MODEL


def weights_id(policy: str) -> str | None:
    """The first 16 hex digits of the sha256 of the weights a learned policy runs (a shipped name's checkpoint,
    or the file given); None for the baselines, which read no model."""
    from robonav.eval.policies import NAMED_POLICIES, SHIPPED_POLICIES, checkpoint_path

    if policy in NAMED_POLICIES and policy not in SHIPPED_POLICIES:
        return None
    return hashlib.sha256(checkpoint_path(policy).read_bytes()).hexdigest()[:16]


def column(arg: str) -> tuple[str, str]:
    """(label, --policy value) of one --policies entry: ``LABEL=SPEC``, or a policy that labels itself."""
    label, sep, spec = arg.partition("=")
    return (label, spec) if sep else (arg, arg)


def reusable(done: dict[str, Any] | None, episodes: int, condition: str, weights: str | None = None) -> bool:
    """A cell already measured counts when it has ``episodes`` episodes, the current mover model (cells written
    before models were recorded are model 1) and the same weights (``weights_id``): a policy shipped anew under
    an old name, or a checkpoint file written again, is measured again."""
    if done is None or done["episodes"] != episodes or done.get("weights") != weights:
        return False
    model = mover_model(condition)
    return model is None or done.get("mover_model", 1) == model


def run_cell(policy: str, suite: str, condition: str, episodes: int, envs: int,
             weights: str | None) -> dict[str, Any]:
    """One cell: the summary (no per-maze rows) plus per-episode success, SPL and contact, for pairing;
    ``weights`` is the policy's `weights_id`, taken before it is loaded (a training run may rewrite the file)."""
    from robonav.eval.conditions import apply_conditions, parse_conditions
    from robonav.eval.episodes import make_episodes
    from robonav.eval.metrics import summarize
    from robonav.eval.policies import resolve_policy
    from robonav.eval.runner import run_episodes

    names = parse_conditions(condition)
    resolved = resolve_policy(policy)
    config = apply_conditions(resolved.sim_config, names)
    factory = resolved.factory
    eps = make_episodes(suite, episodes, seed=0)
    start = time.perf_counter()
    results = [dataclasses.replace(r, conditions=names) for r in run_episodes(factory, eps, config, num_envs=envs)]
    summary = summarize(results)
    for key in ("per_maze", "maze_hashes"):
        summary.pop(key)
    summary.update(policy=policy, suite=suite, seconds=round(time.perf_counter() - start, 1),
                   success=[int(r.success) for r in results], spl_each=[round(r.spl, 4) for r in results],
                   contact=[int(r.contact) for r in results], commit=_commit(), mover_model=mover_model(condition),
                   weights=weights,
                   load_average_1min=round(os.getloadavg()[0], 1),
                   date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
    return summary


def _fmt(x: float, digits: int = 3) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def markdown(cells: dict[str, dict[str, Any]], policies: list[str], suites: list[str],
             conditions: list[str], settings: dict[str, Any]) -> str:
    """The table: one row per suite x condition, per policy success [95 % Wilson] and SPL; then contacts,
    time to goal and clearance; then the paired success difference of each learned policy against guided."""
    from robonav.eval.metrics import mcnemar_exact, newcombe_paired_interval

    lines = [f"# Policies x suites x conditions ({settings['date']}, commit {settings['commit']})", "",
             f"Command: `{settings['command']}`. Paired episodes (`make_episodes(suite, N, seed=0)`); "
             f"{settings['machine']}; one thread. Cells among movers: mover model {_model()} "
             "(robonav.sim.dynamic.MOVER_MODEL). A `-` cell is not run yet; `expert` is the privileged upper "
             "reference (true map and pose), never deployable.", "",
             "## Success [95 % Wilson] and SPL", "",
             "| suite | condition | " + " | ".join(policies) + " |",
             "|---|---|" + "---|" * len(policies)]
    for s in suites:
        for c in conditions:
            row = []
            for p in policies:
                cell = cells.get(cell_key(s, c, p))
                if cell is None:
                    row.append("-")
                    continue
                lo, hi = cell["success_ci95"]
                row.append(f"{cell['success_rate']:.3f} [{lo:.2f}, {hi:.2f}] / {cell['spl']:.2f} "
                           f"(n={cell['episodes']})")
            if any(r != "-" for r in row):
                lines.append(f"| {s} | {c} | " + " | ".join(row) + " |")
    lines += ["", "## Episodes with contact, time to goal (s, successes), mean minimum clearance (m)", "",
              "| suite | condition | " + " | ".join(policies) + " |", "|---|---|" + "---|" * len(policies)]
    for s in suites:
        for c in conditions:
            row = []
            for p in policies:
                cell = cells.get(cell_key(s, c, p))
                row.append("-" if cell is None else f"{_fmt(cell['collision_episodes'])} / "
                           f"{_fmt(cell['time_to_goal'], 1)} / {_fmt(cell['min_clearance'])}")
            if any(r != "-" for r in row):
                lines.append(f"| {s} | {c} | " + " | ".join(row) + " |")
    others = [p for p in policies if p != "guided"]
    lines += ["", "## Paired success difference against guided (same episodes): diff [95 % Newcombe], McNemar p",
              "", "| suite | condition | " + " | ".join(f"{p} - guided" for p in others) + " |",
              "|---|---|" + "---|" * len(others)]
    for s in suites:
        for c in conditions:
            base = cells.get(cell_key(s, c, "guided"))
            row = []
            for p in others:
                cell = cells.get(cell_key(s, c, p))
                if base is None or cell is None:
                    row.append("-")
                    continue
                n = min(len(cell["success"]), len(base["success"]))
                a, b = cell["success"][:n], base["success"][:n]
                both = sum(x and y for x, y in zip(a, b))
                only_a = sum(x and not y for x, y in zip(a, b))
                only_b = sum(y and not x for x, y in zip(a, b))
                lo, hi = newcombe_paired_interval(both, only_a, only_b, n - both - only_a - only_b)
                p_value = mcnemar_exact(only_a, only_b)
                row.append(f"{(only_a - only_b) / n:+.3f} [{lo:+.2f}, {hi:+.2f}], p={p_value:.2g}")
            if any(r != "-" for r in row):
                lines.append(f"| {s} | {c} | " + " | ".join(row) + " |")
    lines += ["", "A difference whose interval holds 0 is within the noise of that many episodes."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--policies", default=",".join(POLICIES[:4]),
                    help="comma-separated --policy values, in run order; LABEL=SPEC names a column (a candidate "
                         "checkpoint: broad-s0=runs/broad-s0/best.pt)")
    ap.add_argument("--suites", default=",".join(SUITES), help="comma-separated suites, in run order")
    ap.add_argument("--conditions", default=None, help="comma-separated condition names (default: all), in run order")
    ap.add_argument("--episodes", type=int, default=200, help="episodes per cell")
    ap.add_argument("--test-nominal-episodes", type=int, default=500, help="episodes of the test x nominal cells")
    ap.add_argument("--envs", type=int, default=8, help="episodes run side by side")
    ap.add_argument("--out", default="results/conditions/table.json", help="the JSON; the Markdown goes beside it")
    args = ap.parse_args(argv)

    from robonav.atomic import write_text_atomic
    from robonav.eval.conditions import CONDITIONS, ConditionError

    policies = [column(p) for p in args.policies.split(",")]
    suites = args.suites.split(",")
    conditions = args.conditions.split(",") if args.conditions else list(CONDITIONS)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    settings = {"command": "python benchmarks/conditions.py " + " ".join(sys.argv[1:] if argv is None else argv),
                "machine": f"{platform.machine()} {platform.processor() or ''} ({os.cpu_count()} cores, shared)",
                "threads": 1, "envs": args.envs, "episode_seed": 0, "commit": _commit(),
                "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}

    def load() -> dict[str, Any]:
        return json.loads(out.read_text()) if out.exists() else {"cells": {}, "skipped": {}}

    def save(key: str, cell: dict[str, Any] | None, why: str = "") -> None:
        data = load()  # read again: another run may have added cells meanwhile
        if cell is not None:
            data["cells"][key] = cell
            data["skipped"].pop(key, None)
        else:
            data["skipped"][key] = why
        data["settings"] = settings
        write_text_atomic(out, json.dumps(data, indent=1, sort_keys=True) + "\n")
        cells = data["cells"]
        order = lambda known, found: list(known) + sorted(set(found) - set(known))  # noqa: E731
        write_text_atomic(out.with_suffix(".md"), markdown(
            cells, order(POLICIES, [k.split("|")[2] for k in cells]), order(SUITES, [k.split("|")[0] for k in cells]),
            order(CONDITIONS, [k.split("|")[1] for k in cells]), settings))

    for suite in suites:
        for label, policy in policies:
            for condition in conditions:
                n = args.test_nominal_episodes if (suite, condition) == ("test", "nominal") else args.episodes
                key = cell_key(suite, condition, label)
                weights = weights_id(policy)
                if reusable(load()["cells"].get(key), n, condition, weights):
                    continue
                try:
                    cell = run_cell(policy, suite, condition, n, args.envs, weights)
                except ConditionError as e:
                    print(f"skip {key}: {e}", file=sys.stderr, flush=True)
                    save(key, None, str(e))
                    continue
                print(f"{key}: success {cell['success_rate']:.3f} SPL {cell['spl']:.3f} contact "
                      f"{cell['collision_episodes']:.3f} ({n} episodes, {cell['seconds']:.0f} s)", file=sys.stderr,
                      flush=True)
                save(key, cell)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
