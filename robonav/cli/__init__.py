"""The ``robonav`` command: one verb per stage, each importing only what it needs (docs/design.md "CLI").

Verbs that measure something take ``--json`` and print one JSON object on one line, the last line of stdout;
progress and logs go to stderr. What a user can cause (a ``robonav.errors.UserError``: a bad flag, launch file,
maze, model or setting) is printed as one line ``robonav VERB: <message>`` with exit status 2 and no traceback
(``robonav --debug VERB`` shows it); anything else that escapes is a bug and keeps its traceback. Ctrl-C exits
130 quietly.

The verbs live in one module per way of running robonav, each owning its ``cmd_*`` functions and its
``register(sub)``: ``sim_train`` (sim, train, average, eval), ``deploy`` (export, quantize, build, run, selftest) and
``hil`` (sim-robot, hil, demo, replay); ``_common`` holds what they share. Importing this package stays light:
heavy modules (torch, pybullet, onnx, ray, gymnasium) are imported inside the ``cmd_*`` functions only.
"""

from __future__ import annotations

import argparse
import sys

from robonav.cli import deploy, hil, sim_train
from robonav.errors import UserError

__all__ = ["EXIT_INTERRUPTED", "EXIT_USER_ERROR", "build_parser", "main", "one_line"]

EXIT_USER_ERROR = 2
"""Exit status of a user error (argparse uses the same for a bad command line)."""
EXIT_INTERRUPTED = 130
"""Exit status after Ctrl-C (128 + SIGINT), as shells report it."""


def build_parser() -> argparse.ArgumentParser:
    """The ``robonav`` parser: --version, --debug, then the verbs each verb module registers, in --help order."""
    parser = argparse.ArgumentParser(prog="robonav", description=__doc__.splitlines()[0])
    from robonav import __version__

    parser.add_argument("--version", action="version", version=f"robonav {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show the traceback of a user error too (bad input is otherwise one line)")
    sub = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    for verbs in (sim_train, deploy, hil):  # the order of the verbs in --help
        verbs.register(sub)
    return parser


def one_line(message: object) -> str:
    """``message`` on one line: its lines stripped and joined (a YAML parser's message spans several)."""
    return " ".join(part.strip() for part in str(message).splitlines() if part.strip())


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``robonav`` console script."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except UserError as e:
        if args.debug:
            raise
        print(f"robonav {args.verb}: {one_line(e)}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        if args.debug:
            raise
        return EXIT_INTERRUPTED
