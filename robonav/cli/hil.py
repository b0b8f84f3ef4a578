"""Verbs of hardware-in-the-loop: sim-robot, hil (runtime and sim-robot over UDP), replay, and the demo."""

from __future__ import annotations

import argparse
import json

from robonav.cli._common import BACKEND_CHOICES, _add_episode_list, _add_launch, _progress, _stage_bars


def cmd_sim_robot(args: argparse.Namespace) -> int:
    """The simulator as a robot behind the robot wire, until its episodes are played."""
    from robonav.hil.simrobot import SimRobotSettings, main
    from robonav.settings import load_settings

    settings = load_settings(SimRobotSettings, args.launch, args.overrides, section="robot", reader="robonav sim-robot",
                             suggest="hil")
    return main(settings, args.json)


def cmd_hil(args: argparse.Namespace) -> int:
    """Runtime and sim-robot as two processes over UDP (faults between them): navigation, timing, verdict."""
    import dataclasses

    from robonav.hil.runner import HilSettings, format_report, junit_xml, run_hil
    from robonav.settings import load_settings, load_yaml, require_sections, resolve_launch

    path = resolve_launch(args.launch)  # the runtime and the robot processes read run: and robot: of the same file
    require_sections(path, load_yaml(path), ("hil", "run", "robot"), "robonav hil", "hil")
    hil = [o for o in args.overrides if not o.startswith(("run.", "robot."))]
    settings = load_settings(HilSettings, args.launch, hil, section="hil", reader="robonav hil", suggest="hil")
    flags = {"episodes": args.episodes, "out": args.out}
    settings = dataclasses.replace(settings, **{k: v for k, v in flags.items() if v is not None})
    progress, close = _progress(args.json, "episodes")
    try:
        report = run_hil(settings, args.launch, [o for o in args.overrides if o.startswith(("run.", "robot."))],
                         progress)
    finally:
        close()
    if args.junit:
        junit_xml(report, args.junit)
    print(json.dumps(report, sort_keys=True) if args.json else format_report(report))
    return 0 if report["verdict"]["passed"] else 1


def cmd_replay(args: argparse.Namespace) -> int:
    """Rerun a wire recording offline; exit 0 when every command comes out bit for bit."""
    from robonav.errors import UserError
    from robonav.runtime.wire.replay import format_replay, replay

    if (args.truth or args.no_truth) and not args.mcap:
        raise UserError("robonav replay: --truth and --no-truth choose the true pose of the MCAP; give --mcap FILE too")
    if args.truth and args.no_truth:
        raise UserError("robonav replay: --truth FILE and --no-truth contradict each other; give one")
    truth = False if args.no_truth else (args.truth or True)
    result = replay(args.log, backend=args.backend, model=args.model, key_file=args.key_file, mcap=args.mcap,
                    truth=truth)
    print(json.dumps(result, sort_keys=True) if args.json else format_replay(result))
    return 0 if result["identical"] else 1


def cmd_demo(args: argparse.Namespace) -> int:
    """Export, INT8, the fastest CPU backend in the loop, HIL over UDP: one table and a picture."""
    from robonav.demo import main

    progress, close = _stage_bars(args.json)
    try:
        return main(args.out, args.episodes, args.mazes, args.seed, args.clock_factor, args.json, progress)
    finally:
        close()


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the sim-robot, hil, demo and replay verbs to the ``robonav`` subparsers."""
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
    p.add_argument("--backend", choices=BACKEND_CHOICES, help="backend (default: the recorded one)")
    p.add_argument("--model", help="step model (default: the recorded one)")
    p.add_argument("--key-file", help="the robot's wire key file, to verify a signed recording (default: "
                                      "$ROBONAV_WIRE_KEY_FILE; none: the recording is trusted)")
    p.add_argument("--mcap", metavar="FILE",
                   help="also write the run as MCAP for Foxglove/RViz: scans, odometry, TF, goal, commands, the "
                        "memories each second (FILE.mcap: one file; another name: a rosbag2 folder)")
    p.add_argument("--truth", metavar="FILE",
                   help="the HIL run's truth file: the MCAP gets /robonav/true_pose, /map and map -> odom (default: "
                        "trajectories.npz beside LOG, if there is one; robonav hil writes it with hil.record)")
    p.add_argument("--no-truth", action="store_true", help="write no true pose, even with a truth file beside LOG")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    p.set_defaults(func=cmd_replay)
