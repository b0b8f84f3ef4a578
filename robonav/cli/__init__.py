"""The ``robonav`` command: one verb per stage, each importing only what it needs (DESIGN.md "CLI").

Verbs that measure something take ``--json`` and print one JSON object on one line, the last line of stdout;
progress and logs go to stderr.

The verbs live in one module per way of running robonav, each owning its ``cmd_*`` functions and its
``register(sub)``: ``sim_train`` (sim, train, average, eval), ``deploy`` (export, quantize, build, run, selftest) and
``hil`` (sim-robot, hil, demo, replay); ``_common`` holds what they share. Importing this package stays light:
heavy modules (torch, pybullet, onnx, ray, gymnasium) are imported inside the ``cmd_*`` functions only.
"""

from __future__ import annotations

import argparse
import sys

from robonav.cli import deploy, hil, sim_train
from robonav.cli._common import SHIPPED_POLICIES, _policy_and_config, _shipped_or_path

__all__ = ["SHIPPED_POLICIES", "_is_user_error", "_policy_and_config", "_shipped_or_path", "build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The ``robonav`` parser: --version, then the verbs each verb module registers, in --help order."""
    parser = argparse.ArgumentParser(prog="robonav", description=__doc__.splitlines()[0])
    from robonav import __version__

    parser.add_argument("--version", action="version", version=f"robonav {__version__}")
    sub = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    for verbs in (sim_train, deploy, hil):  # the order of the verbs in --help
        verbs.register(sub)
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
    for module, name in (("robonav.sim.maze", "MazeError"), ("robonav.model.sidecar", "ModelRefusedError"),
                         ("robonav.deploy.quantize", "CalibrationSplitError"),
                         ("robonav.deploy.parity", "CheckpointMismatchError"),
                         ("robonav.runtime.backends.registry", "BackendUnavailableError"),
                         ("robonav.runtime.loop", "LoopSetupError"), ("robonav.runtime.loop", "LoopConfigError"),
                         ("robonav.runtime.selftest", "RecordingError"), ("robonav.hil.runner", "HilError"),
                         ("robonav.hil.simrobot", "SimRobotError"),
                         ("robonav.runtime.wire.recording", "WireLogError"),
                         ("robonav.eval.distributed", "ShardError"),
                         ("robonav.policy.checkpoint", "CheckpointError"),
                         ("robonav.eval.policies", "PolicyNotFoundError"),
                         ("robonav.train.distributed", "WorkerRestartError")):
        mod = sys.modules.get(module)
        if mod is not None and isinstance(e, getattr(mod, name)):
            return True
    return False
