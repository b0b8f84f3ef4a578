"""robonav.eval: episode lists, metrics (success, SPL, collisions) and running episodes with any policy.

Torch-free. Modules, one role each:

- ``episodes``   `make_episodes`, `save_episodes`, `load_episodes`: what an evaluation runs, paired across policies
- ``metrics``    `EpisodeResult`, `summarize`, `paired_comparison`, `wilson_interval` (pure Python)
- ``runner``     the `Policy` protocol, `run_episodes`, `eval_config`, and the expert and random policies
- ``policies``   `resolve_policy`: what --policy names (a name, a checkpoint, an .onnx, an .engine) as a policy
                 factory, its PolicyMeta and its eval settings; `NAMED_POLICIES`, the registry of names
- ``conditions`` the named conditions (nominal, dynamic, fov120, ...) and `apply_conditions`
- ``classical``  `ClassicalPolicy`: the classical baseline (optimistic A* + pure pursuit on the robot's own map),
                 resting on robonav.sensors' planner (cost map, A*) and scanmatch (laser odometry)
- ``guided``     `GuidedPolicy`: the shipped observation's A* guidance block driven by pure pursuit

Names are loaded on first use, so ``import robonav.eval.metrics`` does not pull in the simulator.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "make_episodes": "episodes", "save_episodes": "episodes", "load_episodes": "episodes",
    "EpisodeListError": "episodes",
    "EpisodeResult": "metrics", "summarize": "metrics", "paired_comparison": "metrics",
    "wilson_interval": "metrics", "PairingError": "metrics",
    "Policy": "runner", "run_episodes": "runner", "eval_config": "runner", "ExpertPolicy": "runner",
    "RandomPolicy": "runner",
    "resolve_policy": "policies", "ResolvedPolicy": "policies", "PolicyNotFoundError": "policies",
    "ClassicalPolicy": "classical", "ClassicalConfig": "classical",
    "CONDITIONS": "conditions", "apply_conditions": "conditions", "ConditionError": "conditions",
    "GuidedPolicy": "guided",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'robonav.eval' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"robonav.eval.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value
