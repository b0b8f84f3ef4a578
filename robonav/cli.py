"""The ``robonav`` command: one verb per stage, each importing only what it needs (DESIGN.md "CLI").

Verbs that measure something take ``--json`` and print one JSON object on one line, the last line of stdout;
progress and logs go to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def _add_launch(p: argparse.ArgumentParser, default: str | None) -> None:
    p.add_argument("--launch", default=default,
                   help="launch file: a path, or a packaged name such as 'sim' (default: %(default)s)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a launch-file setting, e.g. --set sim.substeps=2 (repeatable)")


def _emit(result: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(result, sort_keys=True))
    else:
        width = max(len(k) for k in result)
        for k, v in result.items():
            print(f"{k:<{width}}  {v:.4g}" if isinstance(v, float) else f"{k:<{width}}  {v}")


def _maze_arg(spec: str | None, seed: int):
    """--maze: a maze file, a generator family like 'perfect' or 'rooms:9x9', or None for the launch default."""
    if spec is None:
        return None
    if Path(spec).exists():
        return spec
    from robonav.sim.generate import FAMILIES

    fam, _, size = spec.partition(":")
    if fam in FAMILIES:
        w, _, h = (size or "7x7").partition("x")
        return {"families": [fam], "width": [int(w), int(w)], "height": [int(h or w), int(h or w)]}
    raise SystemExit(f"robonav sim: --maze {spec!r} is neither a file nor a family ({', '.join(FAMILIES)}); "
                     "give a maze file path or e.g. --maze rooms:9x9")


def cmd_sim(args: argparse.Namespace) -> int:
    """Drive one episode in the simulator, render it, print a summary."""
    import numpy as np

    from robonav.settings import load_settings
    from robonav.sim.config import SimConfig
    from robonav.sim.env import MazeEnv
    from robonav.sim.expert import GeodesicExpert
    from robonav.sim.rollout import record_episode

    cfg = load_settings(SimConfig, args.launch, [o.removeprefix("sim.") for o in args.overrides], section="sim")
    env = MazeEnv(maze=_maze_arg(args.maze, args.seed), config=cfg, seed=args.seed)
    rng = np.random.default_rng(args.seed)
    expert = GeodesicExpert()
    policies = {
        "expert": lambda obs: expert(env.sim)[0] / env._scale,
        "random": lambda obs: env.action_space.sample(),
        "stop": lambda obs: np.zeros(2),
    }
    env.action_space.seed(args.seed)
    del rng
    trace = record_episode(env, policies[args.policy], seed=args.seed, max_steps=args.steps)
    env.close()
    info = trace.info
    shortest, path = info["shortest_path_length"], info["path_length"]
    result: dict[str, Any] = {
        "maze": info["maze"], "policy": args.policy, "success": bool(info["is_success"]),
        "steps": info["episode_steps"], "path_length": round(path, 3), "shortest_path_length": round(shortest, 3),
        "spl": round(float(info["is_success"]) * shortest / max(path, shortest), 4),
        "collisions": info["collisions"],
    }
    if args.render:
        from robonav.sim.render import render_png

        result["png"] = str(render_png(trace, args.render))
    if args.gif:
        from robonav.sim.render import render_gif

        result["gif"] = str(render_gif(trace, args.gif))
    _emit(result, args.json)
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    """Train a policy with recurrent PPO from a launch file; --resume continues the run exactly."""
    from robonav.settings import load_settings
    from robonav.train.config import TrainConfig
    from robonav.train.trainer import Trainer

    cfg = load_settings(TrainConfig, args.launch, args.overrides, section="train")
    trainer = Trainer(cfg, resume=args.resume, progress=not args.quiet)
    try:
        last = trainer.train(max_updates=args.updates,
                             max_seconds=None if args.minutes is None else 60.0 * args.minutes)
    finally:
        trainer.close()
    result = {"run_dir": str(trainer.dir), "checkpoint": str(trainer.dir / "last.pt"), **last}
    _emit(result, args.json)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="robonav", description=__doc__.splitlines()[0])
    from robonav import __version__

    parser.add_argument("--version", action="version", version=f"robonav {__version__}")
    sub = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    p = sub.add_parser("sim", help="run one simulated episode, render it, print a summary")
    _add_launch(p, "sim")
    p.add_argument("--maze", help="maze file, or a generator family such as 'perfect' or 'rooms:9x9'")
    p.add_argument("--policy", choices=["expert", "random", "stop"], default="expert",
                   help="who drives: the privileged geodesic expert (demo), random actions, or nobody")
    p.add_argument("--seed", type=int, default=0, help="episode seed")
    p.add_argument("--steps", type=int, default=None, help="stop after this many ticks")
    p.add_argument("--render", metavar="PNG", help="write a top-down picture of the episode")
    p.add_argument("--gif", metavar="GIF", help="write an animated GIF of the episode")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    p.set_defaults(func=cmd_sim)

    p = sub.add_parser("train", help="train an LSTM policy with recurrent PPO (checkpoints, TensorBoard, resume)")
    _add_launch(p, "train")
    p.add_argument("--resume", action="store_true", help="continue <out>/<run>/last.pt exactly")
    p.add_argument("--minutes", type=float, help="stop (with a checkpoint) after this many minutes: a sitting")
    p.add_argument("--updates", type=int, help="stop (with a checkpoint) after this many updates")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    p.set_defaults(func=cmd_train)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``robonav`` console script."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except Exception as e:  # user errors get one clear line and exit code 2; anything else is a bug
        if not _is_user_error(e):
            raise
        print(f"robonav {args.verb}: {e}", file=sys.stderr)
        return 2


def _is_user_error(e: Exception) -> bool:
    """Bad launch files, settings and maze files: the message already says what and where."""
    from robonav.settings import SettingsError

    if isinstance(e, SettingsError):
        return True
    maze_mod = sys.modules.get("robonav.sim.maze")
    return maze_mod is not None and isinstance(e, maze_mod.MazeError)


if __name__ == "__main__":
    sys.exit(main())
