"""What the verbs share: launch and episode-list options, result printing, --maze and --policy resolution."""

from __future__ import annotations

import argparse
import json
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
    """--maze: a maze file, a generator family like 'perfect' or 'rooms:9x9', or None for the launch default."""
    if spec is None:
        return None
    if Path(spec).exists():
        return spec
    from robonav.settings import SettingsError
    from robonav.sim.generate import FAMILIES, MAX_SIZE, MIN_SIZE

    fam, _, size = spec.partition(":")
    if fam not in FAMILIES:
        raise SettingsError(f"--maze {spec!r} is neither a file nor a family ({', '.join(FAMILIES)}); give a maze "
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


SHIPPED_POLICIES = ("default", "default-q")
"""Policies in the package (robonav/data/policies): PPO's and R2D2's."""


def _shipped_or_path(spec: str) -> Path:
    """The shipped checkpoint a name like 'default' or 'default-q' means, else the path given."""
    from robonav.data import resource

    return resource("policies", f"{spec}.pt") if spec in SHIPPED_POLICIES else Path(spec)


def _policy_and_config(spec: str):
    """(policy factory, eval SimConfig) for --policy: classical | guided | expert | random | default | a checkpoint |
    X.onnx."""
    import dataclasses

    from robonav.eval.runner import ExpertPolicy, RandomPolicy, eval_config

    if spec == "classical":
        from robonav.eval.classical import ClassicalPolicy

        return ClassicalPolicy, eval_config()
    if spec == "guided":
        from robonav.eval.guided import guided_setup

        return guided_setup()
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
