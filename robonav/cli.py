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


def _add_episode_list(p: argparse.ArgumentParser, episodes: int, what: str, envs: bool = True) -> None:
    """--episodes/--mazes/--seed (and --envs) of a verb that runs a list of paired episodes."""
    p.add_argument("--episodes", type=int, default=episodes, help=f"{what} episodes (default: %(default)s; 0 skips)")
    p.add_argument("--mazes", default="test", help=f"suite of the {what} episodes (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help=f"seed of the {what} episode list")
    if envs:
        p.add_argument("--envs", type=int, default=8, help="episodes run side by side")


def _emit(result: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(result, sort_keys=True))
    else:
        width = max(len(k) for k in result)
        for k, v in result.items():
            print(f"{k:<{width}}  {v:.4g}" if isinstance(v, float) else f"{k:<{width}}  {v}")


def _maze_arg(spec: str | None):
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
    import dataclasses

    import numpy as np

    from robonav.settings import load_settings
    from robonav.sim.config import SimConfig
    from robonav.sim.env import MazeEnv
    from robonav.sim.expert import GeodesicExpert
    from robonav.sim.rollout import record_episode

    cfg = load_settings(SimConfig, args.launch, args.overrides, section="sim")
    drivers = {"expert", "random", "stop"}
    factory = None
    if args.policy not in drivers:  # a checkpoint, default, or classical: built like eval builds it
        factory, policy_cfg = _policy_and_config(args.policy)
        cfg = dataclasses.replace(cfg, observation=policy_cfg.observation, preprocessor=policy_cfg.preprocessor,
                                  period=policy_cfg.period)
    env = MazeEnv(maze=_maze_arg(args.maze), config=cfg, seed=args.seed)
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


def cmd_train(args: argparse.Namespace) -> int:
    """Train a policy from a launch file (recurrent PPO, or R2D2 with train.algo=r2d2); --resume continues the run."""
    from robonav.settings import load_settings
    from robonav.train.config import TrainConfig

    overrides = list(args.overrides)
    if args.ray is not None:
        overrides.append(f"train.ray.address={args.ray}")
    if args.ray_workers is not None:
        overrides.append(f"train.ray.workers={args.ray_workers}")
    cfg = load_settings(TrainConfig, args.launch, overrides, section="train")
    max_seconds = None if args.minutes is None else 60.0 * args.minutes
    trainer: Any
    if cfg.algo == "r2d2":
        from robonav.train.q_trainer import QTrainer

        trainer = QTrainer(cfg, resume=args.resume, progress=not args.quiet)
    elif cfg.ray.address is not None:  # rollout workers on a Ray cluster (robonav[dist])
        from robonav.train.distributed import DistributedTrainer

        trainer = DistributedTrainer(cfg, resume=args.resume, progress=not args.quiet)
    else:
        from robonav.train.trainer import Trainer

        trainer = Trainer(cfg, resume=args.resume, progress=not args.quiet)
    try:
        if cfg.algo == "r2d2":  # --updates counts R2D2's chunks (r2d2.chunk_steps environment steps each)
            last = trainer.train(max_seconds=max_seconds, max_chunks=args.updates)
        else:
            last = trainer.train(max_updates=args.updates, max_seconds=max_seconds)
    finally:
        trainer.close()
    result = {"run_dir": str(trainer.dir), "checkpoint": str(trainer.dir / "last.pt"), **last}
    _emit(result, args.json)
    return 0


SHIPPED_POLICIES = ("default", "default-q")
"""Policies in the package (robonav/data/policies): PPO's and R2D2's."""


def _shipped_or_path(spec: str) -> Path:
    """The shipped checkpoint a name like 'default' or 'default-q' means, else the path given."""
    from robonav.data import resource

    return resource("policies", f"{spec}.pt") if spec in SHIPPED_POLICIES else Path(spec)


def _policy_and_config(spec: str):
    """(policy factory, eval SimConfig) for --policy: classical | expert | random | default | a checkpoint | X.onnx."""
    import dataclasses

    from robonav.eval.runner import ExpertPolicy, RandomPolicy, eval_config

    if spec == "classical":
        from robonav.eval.classical import ClassicalPolicy

        return ClassicalPolicy, eval_config()
    if spec == "expert":
        return ExpertPolicy, eval_config()
    if spec == "random":
        return RandomPolicy, eval_config()
    if spec.endswith(".onnx"):  # an exported or quantized step model, run by ONNX Runtime; settings from its sidecar
        from robonav.deploy.parity import eval_setup

        return eval_setup(spec)
    import torch

    from robonav.policy.agent import TorchAgent, load_policy
    from robonav.sensors.spec import ObservationSpec
    from robonav.sim.config import SimConfig

    # A batch of a few envs per step: one thread is fastest, and a second one only spins against the simulator
    # (with both cores busy, two threads made each step 10x slower here).
    torch.set_num_threads(1)
    path = _shipped_or_path(spec)
    model, meta = load_policy(path)
    sim = SimConfig(observation=meta["observation"], period=meta["control_period"])
    if meta.get("observation_spec"):
        sim = dataclasses.replace(sim, preprocessor=ObservationSpec.from_dict(meta["observation_spec"]).config)
    return (lambda n: TorchAgent(model, n)), eval_config(sim)


def _render_episodes(factory, config, episodes, folder: Path) -> None:
    """Trajectory pictures (with the robot's memories) of the first episodes, one PNG each."""
    import numpy as np

    from robonav.sim.env import MazeEnv
    from robonav.sim.render import render_png
    from robonav.sim.rollout import record_episode

    for k, ep in enumerate(episodes):
        env = MazeEnv(maze=ep.maze, config=config)
        agent = factory(1)
        agent.reset(np.array([0]))

        def act(obs, env=env, agent=agent):
            return agent.act(obs[None], env.sim.frames, env.sim)[0] / env._scale

        trace = record_episode(env, act, memory_every=10**9, episode=ep)
        render_png(trace, folder / f"episode-{k:03d}.png")
        env.close()


def cmd_eval(args: argparse.Namespace) -> int:
    """Evaluate a policy on paired episodes: success (95 % interval), SPL, collisions, steps, per maze."""
    from robonav.eval.episodes import load_episodes, make_episodes, save_episodes
    from robonav.eval.metrics import summarize
    from robonav.eval.runner import run_episodes

    factory, config = _policy_and_config(args.policy)
    if args.episode_list and Path(args.episode_list).exists():
        episodes = load_episodes(args.episode_list)
        if args.episodes is not None:  # the first N of the list: still paired with any run of the same file
            episodes = episodes[:args.episodes]
    else:
        count = 200 if args.episodes is None else args.episodes
        episodes = [e for seed in (args.seeds or [args.seed]) for e in make_episodes(args.mazes, count, seed)]
        if args.episode_list:
            save_episodes(args.episode_list, episodes)

    def progress(done: int, total: int) -> None:
        if not args.json:
            print(f"\r{done}/{total} episodes", end="", file=sys.stderr, flush=True)

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
    if args.render:
        _render_episodes(factory, config, episodes[: args.render_count], Path(args.render))
    if args.curve:
        from robonav.eval.plots import learning_curve

        learning_curve(args.curve, Path(args.render or ".") / "learning_curve.png")
    if not args.json:
        print(file=sys.stderr)
    summary = summarize(results)
    summary.update(policy=args.policy, mazes=args.mazes if not args.episode_list else args.episode_list,
                   seed=args.seeds or args.seed, maze_hashes=sorted({e.maze.hash() for e in episodes}),
                   episode_seeds=[e.seed for e in episodes])
    if shard_size is not None:
        summary["shard_size"] = shard_size
    if args.json:
        print(json.dumps(summary, sort_keys=True))
    else:
        lo, hi = summary["success_ci95"]
        print(f"{args.policy} on {summary['mazes']}: {summary['episodes']} episodes, success "
              f"{summary['success_rate']:.3f} [{lo:.3f}, {hi:.3f}], SPL {summary['spl']:.3f}, collisions/episode "
              f"{summary['collisions_per_episode']:.2f}, mean steps {summary['mean_steps']:.0f}")
        for fam, row in sorted(summary.get("per_family", {}).items()):
            print(f"  {fam:<10} success {row['success_rate']:.3f}  SPL {row['spl']:.3f}  ({row['episodes']} episodes)")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """Export a checkpoint to ONNX (+ sidecar, weights), then measure step parity and the closed-loop noise floor."""
    import torch

    from robonav.deploy.export import export_onnx
    from robonav.deploy.parity import export_parity

    torch.set_num_threads(1)  # a small batch-1 policy: more threads only contend with the simulator
    checkpoint = _shipped_or_path(args.policy)
    done = export_onnx(checkpoint, args.out)
    parity = export_parity(checkpoint, done.onnx, steps=args.parity_steps, parity_suite=args.parity_mazes,
                           episodes=args.episodes, suite=args.mazes, seed=args.seed, num_envs=args.envs)
    step, closed = parity["step"], parity["closed_loop"] or {}
    result: dict[str, Any] = {
        "onnx": str(done.onnx), "sidecar": str(done.sidecar), "weights": str(done.weights) if done.weights else None,
        "bytes_onnx": done.bytes, "bytes_weights": done.weights.stat().st_size if done.weights else None,
        "opset": done.meta.opset,
        "ir_version": done.meta.ir_version, "ops": done.ops, "parity_max_abs_error": step["max_abs_error"],
        "parity_tolerance": step["tolerance"], "parity_steps": step["steps"], "parity_episodes": step["episodes"],
        "parity_passed": step["passed"], "closed_loop_episodes": closed.get("episodes", 0),
        "closed_loop_flips": closed.get("flips"), "success_torch": closed.get("success_torch"),
        "success_onnx": closed.get("success_onnx"), "mcnemar_p": closed.get("mcnemar_p"),
    }
    _emit(result, args.json)
    return 0 if step["passed"] else 1


def cmd_quantize(args: argparse.Namespace) -> int:
    """FP16 or INT8 (QDQ) model from an FP32 export, judged against it in closed loop on paired episodes."""
    from robonav.deploy.parity import judge
    from robonav.deploy.quantize import QuantizeConfig, quantize_fp16, quantize_int8
    from robonav.eval.episodes import make_episodes

    src = Path(args.onnx)
    out = Path(args.out) if args.out else src.with_name(f"{src.stem}.{args.precision}.onnx")
    if args.precision == "fp16":
        sidecar = quantize_fp16(src, out)
    else:
        config = QuantizeConfig(calibration=args.calibration, calib_suite=args.calib_mazes,
                                calib_episodes=args.calib_episodes, calib_seed=args.calib_seed,
                                calib_samples=args.calib_samples, recurrent=args.recurrent, outputs=args.outputs,
                                num_envs=args.envs)
        sidecar, _ = quantize_int8(src, out, config)
    result: dict[str, Any] = {"onnx": str(src), "out": str(out), "precision": args.precision,
                              "calibration": sidecar.extra.get("calibration"),
                              **{k: sidecar.extra.get(k) for k in ("recurrent", "matmul_outputs")}}
    if args.episodes > 0:
        result.update(judge(src, out, make_episodes(args.mazes, args.episodes, args.seed), args.envs),
                      mazes=args.mazes, seed=args.seed)
    if args.json:
        print(json.dumps(result, sort_keys=True))
    else:
        from robonav.deploy.parity import format_judgement

        print(format_judgement(result))
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    """A TensorRT engine and its sidecar from a step model, built on this device; exit 2 where it cannot be."""
    from robonav.deploy.build import BuildConfig, BuildError, build_engine

    config = BuildConfig(precision=args.precision, workspace_mb=args.workspace_mb, timing_cache=args.timing_cache,
                         dla_core=args.dla_core)
    try:
        done = build_engine(args.onnx, args.out, config)
    except BuildError as e:
        print(f"robonav build: {e}", file=sys.stderr)
        return 2
    facts = done.meta.extra["engine"]
    _emit({"engine": str(done.engine), "sidecar": str(done.sidecar), "precision": done.meta.precision,
           "strongly_typed": facts["strongly_typed"], "tensorrt": facts["tensorrt"], "gpu": facts["gpu"],
           "compute_capability": facts["compute_capability"], "timing_cache": str(done.timing_cache),
           "bytes": done.engine.stat().st_size}, args.json)
    return 0


def _run_settings(args: argparse.Namespace):
    """RunSettings of the launch file's ``run:`` section, --set overrides, then the verb's own flags."""
    import dataclasses

    from robonav.runtime.run import RunSettings
    from robonav.settings import load_settings

    settings = load_settings(RunSettings, args.launch, args.overrides, section="run")
    flags = {"backend": args.backend, "model": args.model, "ticks": getattr(args, "ticks", None),
             "stress_hz": getattr(args, "stress", None), "driver": getattr(args, "driver", None)}
    return dataclasses.replace(settings, **{k: v for k, v in flags.items() if v is not None})


def _sim_driver(sidecar, sim, period: float):
    """driver: sim: a simulated robot with the model's evaluation settings, playing ``sim``'s episode list."""
    import dataclasses

    from robonav.settings import SettingsError

    try:
        from robonav.deploy.parity import sim_config
        from robonav.eval.episodes import make_episodes
        from robonav.sim.driver import SimDriver
    except ModuleNotFoundError as e:
        raise SettingsError(f"driver: sim needs the simulator ({e.name} is not installed): pip install "
                            "'robonav[sim]', or run with the robot's driver") from e
    config = dataclasses.replace(sim_config(sidecar), period=period)
    return SimDriver(config, make_episodes(sim.suite, sim.episodes, sim.seed), seed=sim.seed)


def cmd_run(args: argparse.Namespace) -> int:
    """The fixed-step on-robot loop until --ticks or SIGINT/SIGTERM (a stop is always sent)."""
    from robonav.runtime.run import run_loop

    return run_loop(_run_settings(args), _sim_driver, args.json)


def cmd_selftest(args: argparse.Namespace) -> int:
    """Preprocessor and backend parity on recorded episodes and a timing check, on this machine: PASS or FAIL."""
    from robonav.runtime.selftest import selftest_verb

    return selftest_verb(_run_settings(args), _sim_driver, recording=args.recording, record_to=args.record,
                         steps=args.steps, suite=args.mazes, seed=args.seed, budget=args.budget,
                         tolerance=args.tolerance, as_json=args.json, warmup=args.warmup)


def cmd_sim_robot(args: argparse.Namespace) -> int:
    """The simulator as a robot behind the robot wire, until its episodes are played."""
    from robonav.hil.simrobot import SimRobotSettings, main
    from robonav.settings import load_settings

    return main(load_settings(SimRobotSettings, args.launch, args.overrides, section="robot"), args.json)


def cmd_hil(args: argparse.Namespace) -> int:
    """Runtime and sim-robot as two processes over UDP (faults between them): navigation, timing, verdict."""
    import dataclasses

    from robonav.hil.runner import HilSettings, format_report, junit_xml, run_hil
    from robonav.settings import load_settings

    hil = [o for o in args.overrides if not o.startswith(("run.", "robot."))]
    settings = load_settings(HilSettings, args.launch, hil, section="hil")
    flags = {"episodes": args.episodes, "out": args.out}
    settings = dataclasses.replace(settings, **{k: v for k, v in flags.items() if v is not None})
    report = run_hil(settings, args.launch, [o for o in args.overrides if o.startswith(("run.", "robot."))])
    if args.junit:
        junit_xml(report, args.junit)
    print(json.dumps(report, sort_keys=True) if args.json else format_report(report))
    return 0 if report["verdict"]["passed"] else 1


def cmd_replay(args: argparse.Namespace) -> int:
    """Rerun a wire recording offline; exit 0 when every command comes out bit for bit."""
    from robonav.runtime.replay import format_replay, replay

    result = replay(args.log, backend=args.backend, model=args.model)
    print(json.dumps(result, sort_keys=True) if args.json else format_replay(result))
    return 0 if result["identical"] else 1


def cmd_demo(args: argparse.Namespace) -> int:
    """Export, INT8, the fastest CPU backend in the loop, HIL over UDP: one table and a picture."""
    from robonav.demo import main

    return main(args.out, args.episodes, args.mazes, args.seed, args.clock_factor, args.json)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="robonav", description=__doc__.splitlines()[0])
    from robonav import __version__

    parser.add_argument("--version", action="version", version=f"robonav {__version__}")
    sub = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    p = sub.add_parser("sim", help="run one simulated episode, render it, print a summary")
    _add_launch(p, "sim")
    p.add_argument("--maze", help="maze file, or a generator family such as 'perfect' or 'rooms:9x9'")
    p.add_argument("--policy", default="expert",
                   help="who drives: expert (privileged, demo), random, stop, classical, default, or a checkpoint")
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
    p.add_argument("--resume", action="store_true", help="continue <out>/<run>/last.pt exactly")
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

    p = sub.add_parser("eval", help="evaluate a policy on paired episodes (success with 95 %% interval, SPL, ...)")
    p.add_argument("--policy", default="default",
                   help="a checkpoint path, an exported .onnx, 'default' or 'default-q' (shipped), 'classical', "
                        "'expert' (privileged) or 'random'")
    p.add_argument("--mazes", default="test", help="suite (test, test-9x9, val, hand, ...), maze file or folder")
    p.add_argument("--episodes", type=int, default=None,
                   help="number of episodes (default 200); with an existing --episode-list, its first N")
    p.add_argument("--seed", type=int, default=0, help="seed of the episode list")
    p.add_argument("--seeds", type=int, nargs="+", metavar="SEED",
                   help="several episode-list seeds: --episodes episodes for each, run as one list")
    p.add_argument("--episode-list", help="JSON-lines episode file: read if it exists, else written (pairing)")
    p.add_argument("--envs", type=int, default=8, help="episodes run side by side")
    p.add_argument("--render", metavar="DIR", help="save trajectory pictures of the first episodes in DIR")
    p.add_argument("--render-count", type=int, default=6, help="how many episodes --render draws")
    p.add_argument("--curve", metavar="PROGRESS", help="plot a run's progress.jsonl as DIR/learning_curve.png")
    p.add_argument("--ray", metavar="ADDRESS",
                   help="run the shards as Ray tasks: 'auto', 'local', HOST:6379 or ray://HOST:10001 (robonav[dist])")
    p.add_argument("--ray-workers", type=int, metavar="N", help="Ray tasks at a time (default: the cluster's CPUs)")
    p.add_argument("--shard-size", type=int, metavar="K",
                   help="run the list as consecutive shards of K episodes (default: one shard; with --ray, 4 x "
                        "--envs); per-episode results depend on K and --envs, never on --ray or its workers")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("export", help="export a checkpoint to ONNX with its sidecar and weights; check parity")
    p.add_argument("--policy", default="default", help="a checkpoint path, or 'default' / 'default-q' (shipped)")
    p.add_argument("--out", required=True, help="the .onnx to write (<out>.json and <out>.npz go beside it)")
    p.add_argument("--parity-steps", type=int, default=1000,
                   help="record at least this many ticks of --parity-mazes episodes for step parity")
    p.add_argument("--parity-mazes", default="val", help="suite of the step-parity recordings")
    _add_episode_list(p, 200, "noise-floor (torch vs ONNX Runtime, closed loop)")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("quantize", help="FP16 or INT8 (QDQ) model from an FP32 export, judged in closed loop")
    p.add_argument("--onnx", required=True, help="the FP32 .onnx written by robonav export")
    p.add_argument("--precision", required=True, choices=("fp16", "int8"), help="target precision")
    p.add_argument("--out", help="the .onnx to write (default: <onnx stem>.<precision>.onnx)")
    p.add_argument("--calibration", default="minmax", choices=("minmax", "percentile", "entropy"),
                   help="INT8 activation range method (default: %(default)s)")
    p.add_argument("--calib-episodes", type=int, default=16, help="validation episodes rolled out for calibration")
    p.add_argument("--calib-mazes", default="val", help="calibration suite: validation split only (val, val-5x5, ...)")
    p.add_argument("--calib-seed", type=int, default=0, help="seed of the calibration episode list")
    p.add_argument("--calib-samples", type=int, default=2048, help="control steps fed to the calibrator")
    p.add_argument("--recurrent", default="int8", choices=("int8", "float"),
                   help="INT8: quantize the recurrent matmul h @ W_hh too, or keep it float")
    p.add_argument("--outputs", default="int8", choices=("int8", "float"),
                   help="INT8: also quantize MatMul/Gemm outputs (ONNX Runtime then runs int8 kernels), or not")
    _add_episode_list(p, 200, "closed-loop judgement")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    p.set_defaults(func=cmd_quantize)

    p = sub.add_parser("build", help="on the target: a TensorRT engine (+ sidecar) from a step model")
    p.add_argument("--onnx", required=True, help="the step model (.onnx with its .json): FP32, FP16 or INT8 (QDQ)")
    p.add_argument("--out", required=True, help="the .engine to write (<out>.json beside it); a stem of its own")
    p.add_argument("--precision", choices=("fp32", "fp16", "int8"),
                   help="engine precision (default: the model's; an FP32 model may also build as fp16)")
    p.add_argument("--workspace-mb", type=int, default=256, help="builder workspace limit, MiB (default: %(default)s)")
    p.add_argument("--timing-cache", help="timing cache file, read and updated (default: <out folder>/robonav.timing-"
                                          "cache)")
    p.add_argument("--dla-core", type=int, help="build for this DLA core with GPU fallback (fp16/int8 only)")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    p.set_defaults(func=cmd_build)

    p = sub.add_parser("run", help="the fixed-step on-robot loop (policy, safety layer, driver) until a signal")
    _add_launch(p, "robot")
    p.add_argument("--backend", choices=("ort", "numba", "torch", "trt"), help="inference backend (run.backend)")
    p.add_argument("--model", help="step model .onnx / .engine, or 'default' (launch: run.model)")
    p.add_argument("--driver", choices=("sim", "udp", "ros2"),
                   help="where frames come from and commands go (run.driver)")
    p.add_argument("--ticks", type=int, help="stop after this many ticks (default: run until SIGINT/SIGTERM)")
    p.add_argument("--stress", type=float, metavar="HZ", help="run at HZ instead of the model's period: timing only")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("selftest", help="on the target: parity on recorded episodes and a timing check, PASS/FAIL")
    _add_launch(p, "robot")
    p.add_argument("--backend", choices=("ort", "numba", "torch", "trt"), help="backend to test (launch: run.backend)")
    p.add_argument("--model", help="step model .onnx / .engine, or 'default' (launch: run.model)")
    p.add_argument("--recording", help="selftest recording (default: <model>.selftest.npz beside the model; where "
                                       "absent, one is recorded now on the simulator)")
    p.add_argument("--record", metavar="NPZ", help="record the model's episodes with ONNX Runtime into NPZ and exit")
    p.add_argument("--steps", type=int, default=1000, help="ticks to record (default: %(default)s)")
    p.add_argument("--mazes", default="val", help="suite of the recorded episodes (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed of the recorded episode list")
    p.add_argument("--budget", type=float, default=0.5, help="share of the control period the tick's p99 may take")
    p.add_argument("--tolerance", type=float, help="max |action error| (SI units) instead of the precision's bound")
    p.add_argument("--warmup", action="store_true",
                   help="only open the backend and compile (or load cached) Numba kernels, then exit: no checks")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    p.set_defaults(func=cmd_selftest)

    p = sub.add_parser("sim-robot", help="the simulator as a robot behind the robot wire (UDP), for HIL")
    _add_launch(p, "hil")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    p.set_defaults(func=cmd_sim_robot)

    p = sub.add_parser("hil", help="runtime + sim-robot as two processes over UDP, faults between: a HIL run")
    _add_launch(p, "hil")
    p.add_argument("--episodes", type=int, help="episodes to drive (launch: hil.episodes)")
    p.add_argument("--out", help="folder for logs, reports and telemetry (launch: hil.out; default: a temp folder)")
    p.add_argument("--junit", metavar="FILE", help="write a JUnit verdict for the scenario")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    p.set_defaults(func=cmd_hil)

    p = sub.add_parser("demo", help="the whole path on the default policy: export, INT8, loop, HIL over UDP")
    p.add_argument("--out", default="out/demo", help="folder for everything the stages write (default: %(default)s)")
    _add_episode_list(p, 4, "HIL and eval (per precision)", envs=False)
    p.add_argument("--clock-factor", type=float, default=8.0, help="HIL clock seconds per real second")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("replay", help="rerun a wire recording offline and check the commands bit for bit")
    p.add_argument("log", help="wire recording (robonav run --set record=FILE, or robonav hil with hil.record)")
    p.add_argument("--backend", choices=("ort", "numba", "torch", "trt"), help="backend (default: the recorded one)")
    p.add_argument("--model", help="step model (default: the recorded one)")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    p.set_defaults(func=cmd_replay)
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
    """Bad launch files, settings, maze files, refused models and calibration suites: the message says it all."""
    from robonav.settings import SettingsError

    if isinstance(e, SettingsError):
        return True
    for module, name in (("robonav.sim.maze", "MazeError"), ("robonav.runtime.sidecar", "ModelRefusedError"),
                         ("robonav.deploy.quantize", "CalibrationSplitError"),
                         ("robonav.deploy.parity", "CheckpointMismatchError"),
                         ("robonav.runtime.backends", "BackendUnavailableError"),
                         ("robonav.runtime.loop", "LoopSetupError"), ("robonav.runtime.loop", "LoopConfigError"),
                         ("robonav.runtime.selftest", "RecordingError"), ("robonav.hil.runner", "HilError"),
                         ("robonav.hil.simrobot", "SimRobotError"),
                         ("robonav.runtime.wirelog", "WireLogError"),
                         ("robonav.eval.distributed", "ShardError"),
                         ("robonav.train.distributed", "WorkerRestartError")):
        mod = sys.modules.get(module)
        if mod is not None and isinstance(e, getattr(mod, name)):
            return True
    return False


if __name__ == "__main__":
    sys.exit(main())
