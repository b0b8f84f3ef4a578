"""Verbs of deployment: export and quantize a policy, build a TensorRT engine, run and selftest on the target."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from robonav.cli._common import BACKEND_CHOICES, _add_episode_list, _add_launch, _emit, _stage_bars


def cmd_export(args: argparse.Namespace) -> int:
    """Export a checkpoint to ONNX (+ sidecar, weights), then measure step parity and the closed-loop noise floor."""
    import torch

    from robonav.deploy.export import export_onnx
    from robonav.deploy.parity import export_parity

    torch.set_num_threads(1)  # a small batch-1 policy: more threads only contend with the simulator
    from robonav.eval.policies import checkpoint_path

    checkpoint = checkpoint_path(args.policy)
    done = export_onnx(checkpoint, args.out)
    progress, close = _stage_bars(args.json)
    try:
        parity = export_parity(checkpoint, done.onnx, steps=args.parity_steps, parity_suite=args.parity_mazes,
                               episodes=args.episodes, suite=args.mazes, seed=args.seed, num_envs=args.envs,
                               progress=progress)
    finally:
        close()
    step, closed = parity["step"], parity["closed_loop"] or {}
    result: dict[str, Any] = {
        "onnx": str(done.onnx), "sidecar": str(done.sidecar), "weights": str(done.weights),
        "bytes_onnx": done.bytes, "bytes_weights": done.weights.stat().st_size,
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
    progress, close = _stage_bars(args.json)
    try:
        if args.precision == "fp16":
            sidecar = quantize_fp16(src, out)
        else:
            config = QuantizeConfig(calibration=args.calibration, calib_suite=args.calib_mazes,
                                    calib_episodes=args.calib_episodes, calib_seed=args.calib_seed,
                                    calib_samples=args.calib_samples, recurrent=args.recurrent, outputs=args.outputs,
                                    num_envs=args.envs)
            calibrating = None if progress is None else (lambda d, t: progress("calibration episodes", d, t))
            sidecar, _ = quantize_int8(src, out, config, progress=calibrating)
        result: dict[str, Any] = {"onnx": str(src), "out": str(out), "precision": args.precision,
                                  "calibration": sidecar.extra.get("calibration"),
                                  **{k: sidecar.extra.get(k) for k in ("recurrent", "matmul_outputs")}}
        if args.episodes > 0:
            result.update(judge(src, out, make_episodes(args.mazes, args.episodes, args.seed), args.envs,
                                progress), mazes=args.mazes, seed=args.seed)
    finally:
        close()
    if args.json:
        print(json.dumps(result, sort_keys=True))
    else:
        from robonav.deploy.parity import format_judgement

        print(format_judgement(result))
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    """A TensorRT engine and its sidecar from a step model, built on this device, or (--engine) an engine built
    elsewhere checked against the model's contract and given its sidecar; exit 2 where it cannot be (a BuildError is
    a UserError: one line)."""
    from robonav.deploy.build import BuildConfig, BuildError, build_engine, import_engine

    if args.engine is not None:
        unused = [flag for flag, value in (("--workspace-mb", args.workspace_mb), ("--timing-cache", args.timing_cache),
                                           ("--dla-core", args.dla_core)) if value is not None]
        if unused:
            raise BuildError(f"--engine takes an engine already built: {', '.join(unused)} apply only to building "
                             "from --onnx; pass them to trtexec instead")
        done = import_engine(args.engine, args.onnx, args.out, args.precision)
    else:
        if args.out is None:
            raise BuildError("robonav build --onnx needs --out FILE.engine (or --engine FILE.engine to take an engine "
                             "built by trtexec)")
        config = BuildConfig(precision=args.precision, workspace_mb=args.workspace_mb or 256,
                             timing_cache=args.timing_cache, dla_core=args.dla_core)
        done = build_engine(args.onnx, args.out, config)
    facts = done.meta.extra["engine"]
    _emit({"engine": str(done.engine), "sidecar": str(done.sidecar), "precision": done.meta.precision,
           "built_by": facts["built_by"], "strongly_typed": facts["strongly_typed"], "tensorrt": facts["tensorrt"],
           "gpu": facts["gpu"], "compute_capability": facts["compute_capability"],
           "timing_cache": None if done.timing_cache is None else str(done.timing_cache),
           "bytes": done.engine.stat().st_size}, args.json)
    return 0


def _run_settings(args: argparse.Namespace):
    """RunSettings of the launch file's ``run:`` section, --set overrides, then the verb's own flags."""
    import dataclasses

    from robonav.runtime.run import RunSettings
    from robonav.settings import load_settings

    settings = load_settings(RunSettings, args.launch, args.overrides, section="run", reader=f"robonav {args.verb}",
                             suggest="robot")
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
    """The fixed-step on-robot loop until --ticks or SIGINT/SIGTERM (a stop is always sent); a recording run
    writes its resolved settings beside the recording (<record>.settings.yaml, a launch file with ``run:``)."""
    from robonav.runtime.run import run_loop
    from robonav.settings import write_settings

    settings = _run_settings(args)
    if settings.record:
        write_settings(f"{settings.record}.settings.yaml", {"run": settings})
    return run_loop(settings, _sim_driver, args.json, args.ros_args)


def cmd_bag(args: argparse.Namespace) -> int:
    """Shadow run on a recorded rosbag2: the loop on its scans and odometry; commands and memory into OUT."""
    import dataclasses

    from robonav.runtime.ros2.bag import BagSettings, format_bag, shadow_run
    from robonav.runtime.run import open_run_backend
    from robonav.settings import SettingsError

    try:
        import rosbags  # noqa: F401
    except ModuleNotFoundError as e:
        raise SettingsError("robonav bag reads rosbag2 with rosbags, which is not installed: pip install "
                            "'robonav[ros]'") from e
    settings = _run_settings(args)
    goal = None
    if args.goal is not None:
        try:
            x, y = (float(v) for v in args.goal.split(","))
        except ValueError:
            raise SettingsError(f"--goal {args.goal!r}: expected x,y in metres in the odometry frame, e.g. "
                                "3.5,-1") from None
        goal = (x, y)
    bag = BagSettings(scan_topic=args.scan_topic, odom_topic=args.odom_topic, goal_topic=args.goal_topic, goal=goal,
                      storage=args.storage, memory_every=args.memory_every, watchdog=settings.watchdog)
    backend = open_run_backend(dataclasses.replace(settings, model=args.policy))
    try:
        result = shadow_run(args.bag, args.out, backend, bag, settings.safety)
    finally:
        backend.close()
    print(json.dumps(result, sort_keys=True) if args.json else format_bag(result))
    return 0


def cmd_selftest(args: argparse.Namespace) -> int:
    """Preprocessor and backend parity on recorded episodes and a timing check, on this machine: PASS or FAIL."""
    from robonav.runtime.selftest import selftest_verb

    return selftest_verb(_run_settings(args), _sim_driver, recording=args.recording, record_to=args.record,
                         steps=args.steps, suite=args.mazes, seed=args.seed, budget=args.budget,
                         tolerance=args.tolerance, as_json=args.json, warmup=args.warmup)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the export, quantize, build, run and selftest verbs to the ``robonav`` subparsers."""
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

    p = sub.add_parser("build", help="on the target: a TensorRT engine (+ sidecar) from a step model, or a sidecar "
                                     "for an engine trtexec built (--engine)")
    p.add_argument("--onnx", required=True, help="the step model (.onnx with its .json): FP32, FP16 or INT8 (QDQ)")
    p.add_argument("--engine", help="an engine built from --onnx by trtexec on this device: check its I/O against "
                                    "the model's contract and write its sidecar (no build)")
    p.add_argument("--out", help="the .engine to write (<out>.json beside it), a stem of its own; with --engine: a "
                                 "folder or .engine path to copy the engine to (default: the sidecar goes beside it)")
    p.add_argument("--precision", choices=("fp32", "fp16", "int8"),
                   help="engine precision (default: the model's; an FP32 model may also build as fp16); with "
                        "--engine: what trtexec built it as")
    p.add_argument("--workspace-mb", type=int, help="builder workspace limit, MiB (default: 256)")
    p.add_argument("--timing-cache", help="timing cache file, read and updated (default: <out folder>/robonav.timing-"
                                          "cache)")
    p.add_argument("--dla-core", type=int, help="build for this DLA core with GPU fallback (fp16/int8 only)")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    p.set_defaults(func=cmd_build)

    p = sub.add_parser("run", help="the fixed-step on-robot loop (policy, safety layer, driver) until a signal")
    _add_launch(p, "robot")
    p.add_argument("--backend", choices=BACKEND_CHOICES, help="inference backend (run.backend)")
    p.add_argument("--model", help="step model .onnx / .engine, or 'default' (launch: run.model)")
    p.add_argument("--driver", choices=("sim", "udp", "ros2"),
                   help="where frames come from and commands go (run.driver)")
    p.add_argument("--ticks", type=int, help="stop after this many ticks (default: run until SIGINT/SIGTERM)")
    p.add_argument("--stress", type=float, metavar="HZ", help="run at HZ instead of the model's period: timing only")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    p.add_argument("--ros-args", dest="ros_args", nargs=argparse.REMAINDER, metavar="ARGS",
                   help="driver ros2, last: ROS arguments (-p name:=value, --params-file FILE, -r from:=to)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("bag", help="shadow run on a recorded rosbag2: the commands and memory the policy would have "
                                   "produced, into another bag")
    p.add_argument("bag", metavar="IN", help="rosbag2 (folder; sqlite3 or MCAP) with LaserScan and Odometry")
    p.add_argument("--policy", default="default", help="step model .onnx / .engine, or 'default' (shipped)")
    p.add_argument("--out", required=True, help="the rosbag2 to write (must not exist)")
    _add_launch(p, "robot")
    p.add_argument("--backend", choices=BACKEND_CHOICES, help="inference backend (run.backend)")
    p.add_argument("--goal", metavar="X,Y", help="goal in the odometry frame at the bag's start (else --goal-topic)")
    p.add_argument("--scan-topic", default="/scan", help="LaserScan topic (default: %(default)s)")
    p.add_argument("--odom-topic", default="/odom", help="Odometry topic (default: %(default)s)")
    p.add_argument("--goal-topic", default="/goal_pose",
                   help="PoseStamped goals (odometry frame; default: %(default)s)")
    p.add_argument("--storage", choices=("sqlite3", "mcap"), help="OUT's storage (default: the input's)")
    p.add_argument("--memory-every", type=float, default=1.0, help="seconds between memory grids in OUT (0: none)")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    p.set_defaults(func=cmd_bag, model=None)

    p = sub.add_parser("selftest", help="on the target: parity on recorded episodes and a timing check, PASS/FAIL")
    _add_launch(p, "robot")
    p.add_argument("--backend", choices=BACKEND_CHOICES, help="backend to test (launch: run.backend)")
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
