"""What the verbs share: launch and episode-list options, result printing, --maze and --policy resolution."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

BACKEND_CHOICES = ("ort", "numba", "torch", "trt")
"""--backend choices: the keys of robonav.runtime.backends.BACKENDS (not imported here: it pulls numpy into every
``robonav`` start-up), held equal to them by tests/test_cli.py."""


def _add_launch(p: argparse.ArgumentParser, default: str | None) -> None:
    p.add_argument("--launch", default=default,
                   help="launch file: a path, or a packaged name such as 'sim' (default: %(default)s)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a launch-file setting, e.g. --set sim.substeps=2 (repeatable)")


def _add_episode_list(p: argparse.ArgumentParser, episodes: int, what: str, envs: bool = True) -> None:
    """--episodes/--mazes/--seed (and --envs) of a verb that runs a list of paired episodes."""
    p.add_argument("--episodes", type=int, default=episodes, help=f"{what} episodes (default: %(default)s; 0 skips)")
    p.add_argument("--mazes", default="test", help=f"suite of the {what} episodes (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help=f"seed of the {what} episode list")
    if envs:
        p.add_argument("--envs", type=int, default=8, help="episodes run side by side")


def _emit(result: dict[str, Any], as_json: bool) -> None:
    """Print a verb's result: one sorted JSON object on one line with --json, else aligned key/value rows."""
    if as_json:
        print(json.dumps(result, sort_keys=True))
    else:
        width = max(len(k) for k in result)
        for k, v in result.items():
            print(f"{k:<{width}}  {v:.4g}" if isinstance(v, float) else f"{k:<{width}}  {v}")


def _maze_arg(spec: str | None):
    """--maze: a maze file, a generator family like 'perfect', 'rooms:9x9' or 'office:9x9' (any of
    `ALL_FAMILIES`), or None for the launch default."""
    if spec is None:
        return None
    if Path(spec).exists():
        return spec
    from robonav.settings import SettingsError
    from robonav.sim.generate import ALL_FAMILIES, MAX_SIZE, MIN_SIZE

    fam, _, size = spec.partition(":")
    if fam not in ALL_FAMILIES:
        raise SettingsError(f"--maze {spec!r} is neither a file nor a family ({', '.join(ALL_FAMILIES)}); give a maze "
                            "file path or e.g. --maze rooms:9x9")
    w, x, h = (size or "7x7").partition("x")
    if not w.isdigit() or not (h.isdigit() or not x):
        raise SettingsError(f"--maze {spec!r}: size expected as WIDTHxHEIGHT or WIDTH in passage cells, actual "
                            f"size: {size!r}; give e.g. --maze {fam}:9x9")
    width, height = int(w), int(h or w)
    for what, n in (("width", width), ("height", height)):
        if not MIN_SIZE <= n <= MAX_SIZE:
            raise SettingsError(f"--maze {spec!r}: {what} expected in {MIN_SIZE}..{MAX_SIZE} passage cells, actual "
                                f"{what}: {n}; give e.g. --maze {fam}:{min(max(width, MIN_SIZE), MAX_SIZE)}x"
                                f"{min(max(height, MIN_SIZE), MAX_SIZE)}")
    return {"families": [fam], "width": [width, width], "height": [height, height]}


def _nav2_start_goal(args: argparse.Namespace, episodes: list) -> list:
    """--start/--goal X,Y on a Nav2 map (--mazes MAP.yaml): the episodes with those cells."""
    from robonav.settings import SettingsError
    from robonav.sim.episodes import EpisodeSpec
    from robonav.sim.nav2map import is_nav2_map, nav2_mazes

    if not is_nav2_map(args.mazes):
        raise SettingsError(f"--start/--goal place the robot on a Nav2 map: give --mazes MAP.yaml, got {args.mazes!r}")
    points = {}
    for what in ("start", "goal"):
        text = getattr(args, what)
        if text is not None:
            try:
                x, y = (float(v) for v in text.split(","))
            except ValueError:
                raise SettingsError(f"--{what} {text!r}: expected X,Y in metres in the map frame, e.g. "
                                    "1.5,-2") from None
            points[what] = (x, y)
    seeds = args.seeds or [args.seed]
    per_seed = len(episodes) // len(seeds)
    mazes = [m for seed in seeds for m in nav2_mazes(args.mazes, per_seed, seed, points.get("start"),
                                                     points.get("goal"))]
    return [EpisodeSpec(m, e.seed) for m, e in zip(mazes, episodes)]


def _progress(as_json: bool, unit: str, desc: str | None = None
              ) -> tuple[Callable[[int, int], None], Callable[[], None]]:
    """(report(done, total), close()) of a progress bar on stderr: a tqdm bar (a count line where tqdm is not
    installed) while stderr is a terminal and the verb prints no JSON; otherwise silent. ``desc`` heads the bar."""
    if as_json or not sys.stderr.isatty():
        return (lambda done, total: None), (lambda: None)
    try:
        from tqdm import tqdm
    except ModuleNotFoundError:
        def line(done: int, total: int) -> None:
            print(f"\r{desc + ': ' if desc else ''}{done}/{total} {unit}", end="", file=sys.stderr, flush=True)

        return line, lambda: print(file=sys.stderr)
    bars: list[Any] = []

    def report(done: int, total: int) -> None:
        if not bars:  # a terminal reporting no size (0 x 0) would hide the bar: 80 x 24 then
            import shutil

            size = shutil.get_terminal_size()
            bars.append(tqdm(total=total, unit=unit, desc=desc, file=sys.stderr, ncols=size.columns,
                             nrows=size.lines))
        bars[0].update(done - bars[0].n)

    def close() -> None:
        if bars:
            bars[0].close()

    return report, close


StageProgress = Callable[[str, int, int], None]
"""progress(stage, done, total) of a library function with stages (export, quantize, hil, demo)."""


def _stage_bars(as_json: bool) -> tuple[StageProgress | None, Callable[[], None]]:
    """(progress(stage, done, total), close()) for a verb with stages: one bar per stage, described by its name, on
    stderr while it is a terminal and the verb prints no JSON; (None, no-op) otherwise, so the library stays quiet."""
    if as_json or not sys.stderr.isatty():
        return None, lambda: None
    current: list[Any] = []  # [stage, (report, close)]
    finished: set[str] = set()

    def close() -> None:
        if current:
            current[1][1]()
            current.clear()

    def progress(stage: str, done: int, total: int) -> None:
        if stage in finished:  # a repeated final report: its bar is closed already
            return
        if not current or current[0] != stage:
            close()
            current.extend([stage, _progress(False, "steps" if stage.endswith("steps") else "episodes", stage)])
        current[1][0](done, total)
        if done >= total:  # closed at once, so what the verb says next starts on a line of its own
            finished.add(stage)
            close()

    return progress, close
