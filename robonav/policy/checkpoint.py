"""The checkpoint format: one file, loadable with ``torch.load(weights_only=True)``, written atomically.

    {"format": "robonav.checkpoint/1", "model": state_dict, "optimizer": state_dict | None, "meta": JSON text}

``meta`` holds the configs, the ObservationSpec, the action limits, control period, counters, RNG states, the
episodes in flight and the code version: everything needed to rebuild the policy without the trainer, and to
resume a run exactly. A corrupt or foreign file is refused with a message that says what it is and what to do.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from robonav.atomic import atomic_path
from robonav.errors import UserError
from robonav.model.meta import PolicyMeta
from robonav.model.sidecar import file_sha256
from robonav.sensors.spec import ObservationSpec

FORMAT = "robonav.checkpoint/1"


class CheckpointError(UserError, ValueError):
    """A file that is not a readable robonav checkpoint."""


def save_checkpoint(path: str | Path, model: dict[str, torch.Tensor], meta: dict[str, Any],
                    optimizer: dict[str, Any] | None = None) -> Path:
    """Write atomically (robonav.atomic: temporary file, fsync, rename, fsync of the folder): a killed run never
    leaves half a file."""
    path = Path(path)
    payload = {"format": FORMAT, "model": model, "optimizer": optimizer, "meta": json.dumps(meta, sort_keys=True)}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """{"model", "optimizer", "meta" (a dict)} from a robonav checkpoint; anything else raises CheckpointError."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file; give the path of a .pt written by robonav train")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated, corrupt, or a pickle that is not plain weights
        raise CheckpointError(
            f"{path}: not a readable checkpoint ({type(e).__name__}: {str(e).splitlines()[0][:200]}); "
            "the file is corrupt or was not written by robonav: use another checkpoint (train writes "
            "last.pt and numbered ones) or retrain"
        ) from e
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise CheckpointError(f"{path}: expected a {FORMAT} checkpoint, found {found!r}: this file is from "
                              "another tool or an incompatible robonav version")
    try:
        meta = json.loads(payload["meta"])
    except (KeyError, TypeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: checkpoint metadata is missing or not JSON ({e})") from e
    return {"model": payload["model"], "optimizer": payload.get("optimizer"), "meta": meta}


def file_hash(path: str | Path) -> str:
    """sha256 of a file (the source checkpoint's hash recorded by export)."""
    return file_sha256(path)


def policy_meta(model: Any, meta: dict[str, Any], checkpoint_sha256: str = "") -> PolicyMeta:
    """The PolicyMeta of a loaded checkpoint: ``model`` (an ActorCritic or QNetwork, robonav.policy.agent.load_policy)
    and its ``meta``; FP32, no model or weights file yet."""
    spec = meta.get("observation_spec")
    observation = meta.get("observation", "preprocessor" if spec else "plain")
    if (observation == "plain") != (spec is None):
        raise CheckpointError(f"checkpoint meta: observation {observation!r} with observation_spec "
                              f"{'null' if spec is None else 'set'}: the checkpoint was edited or written by a "
                              "broken tool")
    v_max, omega_max = (float(x) for x in meta["action_limits"])
    return PolicyMeta(observation_spec=None if spec is None else ObservationSpec.from_dict(spec),
                      obs_dim=int(meta["obs_dim"]), action_limits=(v_max, omega_max),
                      control_period=float(meta["control_period"]),
                      head="argmax" if hasattr(model, "advantage_head") else "gaussian",
                      state_layers=int(model.state_layers), hidden=int(model.cfg.hidden), precision="fp32",
                      checkpoint_sha256=checkpoint_sha256)


RESUME_KEYS = ("env_rngs", "episodes", "generator", "torch_rng", "successes", "learner_rng", "replay_rng",
               "learner_successes")
"""Meta entries only a resumed run needs (dropped by `release_checkpoint` where present)."""


def release_checkpoint(src: str | Path, dst: str | Path, **extra: Any) -> Path:
    """Write the policy of ``src`` as a release checkpoint at ``dst``: the weights and the meta that rebuilds and
    describes the policy, no optimiser state and no resume state (a third of the size). ``extra`` entries (e.g.
    ``source_sha256``) are added to the meta. It loads like any checkpoint; it cannot resume a run."""
    ck = load_checkpoint(src)
    return save_checkpoint(dst, ck["model"], _released(ck["meta"], **extra), optimizer=None)


def _released(meta: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A release checkpoint's meta: ``meta`` without the resume state, with ``extra`` and ``release: True``."""
    out = {k: v for k, v in meta.items() if k not in RESUME_KEYS}
    out.update(extra, release=True)
    return out


AVERAGE_SAME = ("algo", "policy", "q", "obs_dim", "observation", "observation_spec", "action_limits",
                "control_period")
"""Meta entries that must agree between checkpoints whose weights are averaged (the same network, the same task)."""


def average_checkpoints(srcs: list[str | Path], dst: str | Path) -> Path:
    """Write the mean of the weights of ``srcs`` (kept checkpoints of one run) as a release checkpoint at ``dst``.

    Weight averaging along one run (SWA, Izmailov et al. 2018; in deep RL, Nikishin et al. 2018) smooths the
    step-to-step drift of a value-based greedy policy, whose action flips wherever two Q values are close. Floating
    point tensors are averaged, except the observation normaliser's, which must be equal (the R2D2 learner
    freezes them when learning starts: an average of different normalisers would describe no input); the meta is
    the last checkpoint's, released, with ``averaged_from`` (the sources and their sha256) added."""
    if len(srcs) < 1:
        raise CheckpointError("average_checkpoints needs at least one checkpoint")
    cks = [load_checkpoint(s) for s in srcs]
    first, meta0 = cks[0]["model"], cks[0]["meta"]
    for src, ck in zip(srcs[1:], cks[1:]):
        differ = [k for k in AVERAGE_SAME if ck["meta"].get(k) != meta0.get(k)]
        if differ or ck["model"].keys() != first.keys():
            raise CheckpointError(f"{src}: its {', '.join(differ) or 'weight names'} differ from {srcs[0]}'s: "
                                  "average the kept checkpoints of one run only")
    model: dict[str, torch.Tensor] = {}
    for name, value in first.items():
        values = [ck["model"][name] for ck in cks]
        if any(v.shape != value.shape for v in values):
            raise CheckpointError(f"weight {name!r} has shapes {[tuple(v.shape) for v in values]} across {srcs}: "
                                  "average the kept checkpoints of one run only")
        if name.startswith("normalizer.") or not value.is_floating_point():
            bad = [str(s) for s, v in zip(srcs, values) if not torch.equal(v, value)]
            if bad:
                raise CheckpointError(f"{name!r} differs between {srcs[0]} and {bad}: the observation normaliser "
                                      "must be frozen (as R2D2's is after its warmup) for weights to be averaged")
            model[name] = value
        else:
            model[name] = torch.stack(values).double().mean(0).to(value.dtype)
    sources = [{"path": str(s), "sha256": file_hash(s), "global_step": ck["meta"].get("global_step")}
               for s, ck in zip(srcs, cks)]
    return save_checkpoint(dst, model, _released(cks[-1]["meta"], averaged_from=sources), optimizer=None)
