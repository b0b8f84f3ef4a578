"""Verbs of the simulator and training: sim (one episode), train (a policy), eval (paired episodes)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from robonav.cli._common import _add_launch, _emit, _maze_arg


def cmd_sim(args: argparse.Namespace) -> int:
    """Drive one episode in the simulator, render it, print a summary."""
    import dataclasses

    import numpy as np

    from robonav.settings import load_settings
    from robonav.sim.config import SimConfig

    cfg = load_settings(SimConfig, args.launch, args.overrides, section="sim", reader="robonav sim", suggest="sim")
    maze = _maze_arg(args.maze)  # bad input refused before pybullet's import prints its banner to stderr
    from robonav.sim.env import MazeEnv
    from robonav.sim.expert import GeodesicExpert
    from robonav.sim.rollout import record_episode

    drivers = {"expert", "random", "stop"}
    factory = None
    if args.policy not in drivers:  # a checkpoint, default, or classical: built like eval builds it
        from robonav.eval.policies import resolve_policy

        resolved = resolve_policy(args.policy)
        factory, policy_cfg = resolved.factory, resolved.sim_config
        cfg = dataclasses.replace(cfg, observation=policy_cfg.observation, preprocessor=policy_cfg.preprocessor,
                                  period=policy_cfg.period)
    env = MazeEnv(maze=maze, config=cfg, seed=args.seed)
    expert = GeodesicExpert()
    env.action_space.seed(args.seed)
    if factory is not None:
        agent = factory(1)
        agent.reset(np.array([0]))

        def act(obs):
            return agent.act(obs[None], env.sim.frames, env.sim)[0] / env._scale
    else:
        act = {
            "expert": lambda obs: expert(env.sim)[0] / env._scale,
            "random": lambda obs: env.action_space.sample(),
            "stop": lambda obs: np.zeros(2),
        }[args.policy]
    trace = record_episode(env, act, seed=args.seed, max_steps=args.steps,
                           memory_every=0 if args.no_memory else (5 if args.gif else 10**9))
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


def cmd_average(args: argparse.Namespace) -> int:
    """Average the weights of kept checkpoints of one run into a release checkpoint."""
    from robonav.policy.checkpoint import average_checkpoints

    out = average_checkpoints(args.checkpoints, args.out)
    _emit({"out": str(out), "averaged": [str(c) for c in args.checkpoints]}, args.json)
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    """Train a policy from a launch file (recurrent PPO, or R2D2 with train.algo=r2d2); --resume continues the run."""
    import dataclasses

    from robonav.settings import load_settings
    from robonav.train.config import PPOTrainConfig, TrainConfig, TrainConfigError

    cfg = load_settings(TrainConfig, args.launch, args.overrides, section="train", reader="robonav train",
                        suggest="train")
    flags = {"address": args.ray, "workers": args.ray_workers}
    if any(v is not None for v in flags.values()):
        if not isinstance(cfg, PPOTrainConfig):
            raise TrainConfigError(f"--ray and --ray-workers serve recurrent PPO only, but train.algo is {cfg.algo!r}: "
                                   "leave them out, or train with algo ppo (--launch train)")
        ray = dataclasses.replace(cfg.ray, **{k: v for k, v in flags.items() if v is not None})
        cfg = dataclasses.replace(cfg, ray=ray)
    max_seconds = None if args.minutes is None else 60.0 * args.minutes
    if not isinstance(cfg, PPOTrainConfig):  # --updates counts R2D2's chunks (r2d2.chunk_steps environment steps)
        from robonav.train.q_trainer import QTrainer

        q = QTrainer(cfg, resume=args.resume, progress=not args.quiet)
        try:
            last = q.train(max_seconds=max_seconds, max_chunks=args.updates)
        finally:
            q.close()
        run_dir = q.dir
    else:
        from robonav.train.trainer import Trainer

        trainer: Trainer
        if cfg.ray.address is not None:  # rollout workers on a Ray cluster (robonav[dist])
            from robonav.train.distributed import DistributedTrainer

            trainer = DistributedTrainer(cfg, resume=args.resume, progress=not args.quiet)
        else:
            trainer = Trainer(cfg, resume=args.resume, progress=not args.quiet)
        try:
            last = trainer.train(max_updates=args.updates, max_seconds=max_seconds)
        finally:
            trainer.close()
        run_dir = trainer.dir
    _emit({"run_dir": str(run_dir), "checkpoint": str(run_dir / "last.pt"), **last}, args.json)
    return 0


def _render_episodes(factory, config, episodes, png_dir: Path | None, mcap_dir: Path | None = None) -> None:
    """Trajectory pictures (with the robot's memories, ``png_dir``) and MCAP runs (``mcap_dir``) of the given
    episodes, one rollout each, and the simulator settings they ran under beside them (settings.yaml, a launch
    file with ``sim:``)."""
    import numpy as np

    from robonav.settings import write_settings
    from robonav.sim.env import MazeEnv
    from robonav.sim.render import render_png
    from robonav.sim.rollout import record_episode

    for folder in (png_dir, mcap_dir):
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
    for k, ep in enumerate(episodes):
        env = MazeEnv(maze=ep.maze, config=config)
        agent = factory(1)
        agent.reset(np.array([0]))

        def act(obs, env=env, agent=agent):
            return agent.act(obs[None], env.sim.frames, env.sim)[0] / env._scale

        on_step = None
        if mcap_dir is not None:
            from robonav.eval.episode_mcap import EpisodeMcap

            on_step = EpisodeMcap()
        trace = record_episode(env, act, memory_every=10**9, episode=ep, on_step=on_step)
        if png_dir is not None:
            render_png(trace, png_dir / f"episode-{k:03d}.png")
        if on_step is not None and mcap_dir is not None:
            on_step.write(mcap_dir / f"episode-{k:03d}.mcap")
        env.close()
    for folder in (png_dir, mcap_dir):
        if folder is not None:
            write_settings(folder / "settings.yaml", {"sim": config})


def cmd_eval(args: argparse.Namespace) -> int:
    """Evaluate a policy on paired episodes under named conditions: success (95 % interval), SPL, collisions,
    contacts, time to goal, clearance, steps, per maze."""
    import dataclasses

    from robonav.eval.conditions import ConditionError, apply_conditions, apply_sim_settings, parse_conditions
    from robonav.eval.episodes import list_conditions, load_episodes, make_episodes, save_episodes
    from robonav.eval.metrics import summarize
    from robonav.eval.runner import run_episodes

    if args.mcap and any(Path(args.mcap).glob("episode-*.mcap")):
        from robonav.errors import UserError

        raise UserError(f"--mcap {args.mcap}: already holds episode-*.mcap files; eval writes new ones: give an "
                        "empty or new folder")
    asked = parse_conditions(args.condition) if args.condition else None
    listed = None
    if args.episode_list and Path(args.episode_list).exists():
        listed = list_conditions(args.episode_list)
        if asked is not None and asked != listed:
            raise ConditionError(f"--condition {','.join(asked)}: the episode list {args.episode_list} was made for "
                                 f"{','.join(listed)}; leave --condition out, or give another --episode-list")
    names = asked or listed or parse_conditions(None)
    from robonav.eval.policies import resolve_policy

    resolved = resolve_policy(args.policy)
    factory, config = resolved.factory, resolved.sim_config
    config = apply_sim_settings(apply_conditions(config, names), args.overrides)
    if listed is not None:
        episodes = load_episodes(args.episode_list)
        if args.episodes is not None:  # the first N of the list: still paired with any run of the same file
            episodes = episodes[:args.episodes]
    else:
        count = 200 if args.episodes is None else args.episodes
        episodes = [e for seed in (args.seeds or [args.seed]) for e in make_episodes(args.mazes, count, seed)]
        if args.start or args.goal:  # a Nav2 map with start and/or goal given (map frame, metres)
            from robonav.cli._common import _nav2_start_goal

            episodes = _nav2_start_goal(args, episodes)
        if args.episode_list:
            from robonav.settings import write_settings

            save_episodes(args.episode_list, episodes, names)
            write_settings(f"{args.episode_list}.settings.yaml", {"sim": config})  # what made the list

    from robonav.cli._common import _progress

    progress, progress_done = _progress(args.json, "episodes")

    shard_size = args.shard_size if args.shard_size is not None or args.ray is None else 4 * args.envs
    if args.ray is not None:  # one Ray task per shard; equal to the local run with the same --shard-size
        from robonav.eval.distributed import run_episodes_ray

        results = run_episodes_ray(factory, episodes, config, args.envs, shard_size, args.ray_workers, progress,
                                   address=args.ray)
    elif shard_size is not None:
        from robonav.eval.distributed import run_sharded

        results = run_sharded(factory, episodes, config, args.envs, shard_size, progress)
    else:
        results = run_episodes(factory, episodes, config, num_envs=args.envs, progress=progress)
    if args.render or args.mcap:
        _render_episodes(factory, config, episodes[: args.render_count], Path(args.render) if args.render else None,
                         Path(args.mcap) if args.mcap else None)
    if args.curve:
        from robonav.eval.plots import learning_curve

        learning_curve(args.curve, Path(args.render or ".") / "learning_curve.png")
    progress_done()
    results = [dataclasses.replace(r, conditions=names) for r in results]
    summary = summarize(results)
    summary.update(policy=args.policy, mazes=args.mazes if not args.episode_list else args.episode_list,
                   seed=args.seeds or args.seed, maze_hashes=sorted({e.maze.hash() for e in episodes}),
                   episode_seeds=[e.seed for e in episodes], settings=list(args.overrides))
    if shard_size is not None:
        summary["shard_size"] = shard_size
    if args.json:
        print(json.dumps(summary, sort_keys=True))
    else:
        lo, hi = summary["success_ci95"]
        print(f"{args.policy} on {summary['mazes']} ({','.join(names)}): {summary['episodes']} episodes, success "
              f"{summary['success_rate']:.3f} [{lo:.3f}, {hi:.3f}], SPL {summary['spl']:.3f}, collisions/episode "
              f"{summary['collisions_per_episode']:.2f}, episodes with contact {summary['collision_episodes']:.3f}, "
              f"time to goal {summary['time_to_goal']:.1f} s, min clearance {summary['min_clearance']:.3f} m "
              f"(to movers {summary['min_clearance_movers']:.3f} m), "
              f"mean steps {summary['mean_steps']:.0f}")
        for fam, row in sorted(summary.get("per_family", {}).items()):
            print(f"  {fam:<10} success {row['success_rate']:.3f}  SPL {row['spl']:.3f}  ({row['episodes']} episodes)")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the sim, train and eval verbs to the ``robonav`` subparsers."""
    p = sub.add_parser("sim", help="run one simulated episode, render it, print a summary")
    _add_launch(p, "sim")
    p.add_argument("--maze", help="maze file, or a generator family such as 'perfect' or 'rooms:9x9'")
    p.add_argument("--policy", default="expert",
                   help="who drives: expert (privileged, demo), random, stop, classical, guided, default, or a "
                        "checkpoint")
    p.add_argument("--seed", type=int, default=0, help="episode seed")
    p.add_argument("--steps", type=int, default=None, help="stop after this many ticks")
    p.add_argument("--render", metavar="PNG", help="write a top-down picture of the episode")
    p.add_argument("--gif", metavar="GIF", help="write an animated GIF of the episode")
    p.add_argument("--no-memory", action="store_true", help="do not overlay the obstacle and trajectory memory")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    p.set_defaults(func=cmd_sim)

    p = sub.add_parser("train",
                       help="train an LSTM policy with recurrent PPO or R2D2 (checkpoints, TensorBoard, resume)")
    _add_launch(p, "train")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in <out>/<run>/last.pt (its episodes in flight restart)")
    p.add_argument("--minutes", type=float, help="stop (with a checkpoint) after this many minutes: a sitting")
    p.add_argument("--updates", type=int,
                   help="stop (with a checkpoint) after this many updates (R2D2: chunks of r2d2.chunk_steps steps)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--ray", metavar="ADDRESS",
                   help="rollout workers on a Ray cluster (train.ray.address): 'auto' (the running cluster), "
                        "'local' (a private one here), HOST:6379 or ray://HOST:10001; needs robonav[dist]")
    p.add_argument("--ray-workers", type=int, metavar="N", help="Ray rollout workers (train.ray.workers)")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("average", help="average the weights of kept checkpoints of one run (a smoother greedy "
                                        "Q policy): a release checkpoint")
    p.add_argument("checkpoints", nargs="+", metavar="CHECKPOINT", help="kept checkpoints of one run, in order")
    p.add_argument("--out", required=True, help="the averaged release checkpoint to write")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    p.set_defaults(func=cmd_average)

    p = sub.add_parser("eval", help="evaluate a policy on paired episodes (success with 95 %% interval, SPL, ...)")
    p.add_argument("--policy", default="default",
                   help="a checkpoint path, an exported .onnx, 'default' or 'default-q' (shipped), 'classical', "
                        "'guided' (A* guidance + pure pursuit), 'expert' (privileged) or 'random'")
    p.add_argument("--condition", metavar="NAME[,NAME]",
                   help="named conditions to run under (default nominal, or the --episode-list's): nominal, dynamic, "
                        "fov120, fov90, odom-harsh, noisy, latency2, wide-robot")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="sim.KEY=VALUE",
                   help="override a simulator setting eval uses (robot, scanner, odometry, safety, dynamic, "
                        "latency_ticks, ...), e.g. --set sim.robot.radius=0.2 (repeatable; applied after --condition)")
    p.add_argument("--mazes", default="test", help="suite (test, test-9x9, val, hand, ...), maze file or folder")
    p.add_argument("--episodes", type=int, default=None,
                   help="number of episodes (default 200); with an existing --episode-list, its first N")
    p.add_argument("--seed", type=int, default=0, help="seed of the episode list")
    p.add_argument("--seeds", type=int, nargs="+", metavar="SEED",
                   help="several episode-list seeds: --episodes episodes for each, run as one list")
    p.add_argument("--episode-list", help="JSON-lines episode file: read if it exists, else written (pairing)")
    p.add_argument("--start", metavar="X,Y", help="--mazes MAP.yaml (Nav2): start in the map frame (else drawn)")
    p.add_argument("--goal", metavar="X,Y", help="--mazes MAP.yaml (Nav2): goal in the map frame (else drawn)")
    p.add_argument("--envs", type=int, default=8, help="episodes run side by side")
    p.add_argument("--render", metavar="DIR", help="save trajectory pictures of the first episodes in DIR")
    p.add_argument("--mcap", metavar="DIR",
                   help="save the first episodes as MCAP in DIR (episode-NNN.mcap: scans, odometry, commands, "
                        "memories, true pose, maze) for Foxglove or RViz")
    p.add_argument("--render-count", type=int, default=6, help="how many episodes --render and --mcap save")
    p.add_argument("--curve", metavar="PROGRESS", help="plot a run's progress.jsonl as DIR/learning_curve.png")
    p.add_argument("--ray", metavar="ADDRESS",
                   help="run the shards as Ray tasks: 'auto', 'local', HOST:6379 or ray://HOST:10001 (robonav[dist])")
    p.add_argument("--ray-workers", type=int, metavar="N", help="Ray tasks at a time (default: the cluster's CPUs)")
    p.add_argument("--shard-size", type=int, metavar="K",
                   help="run the list as consecutive shards of K episodes (default: one shard; with --ray, 4 x "
                        "--envs); per-episode results depend on K and --envs, never on --ray or its workers")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    p.set_defaults(func=cmd_eval)
