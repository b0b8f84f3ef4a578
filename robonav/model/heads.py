"""The heads a policy's weights may end in: the table every reader of a weights file shares.

A head is an affine map on the last hidden layer, then a rule that turns its outputs into the action:

    'gaussian' (an actor-critic):  action = clip(mu_w @ z + mu_b, -1, 1) * action_scale
    'argmax'   (a Q network):      action = primitives[argmax(q_w @ z + q_b)], the first index on ties

Export writes the head's arrays into ``<model>.npz`` (robonav.deploy.export.write_weights) and its kind into the
sidecar (PolicyMeta.head); the Numba kernel, its NumPy reference, the PyTorch step and the weights checks read
the names from `HEADS`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["HEADS", "head_kind"]

HEADS: dict[str, tuple[str, str, str]] = {"gaussian": ("mu_w", "mu_b", "action_scale"),
                                          "argmax": ("q_w", "q_b", "primitives")}
"""Head kind -> the names of its weight, its bias and its output table (the actor-critic's action scale, or the
Q network's primitives) in a weights file."""


def head_kind(arrays: Mapping[str, Any]) -> str:
    """'gaussian' or 'argmax' of a weights file's arrays; files written before Q networks had weights have no
    ``head`` key and are 'gaussian'."""
    return str(arrays["head"]) if "head" in arrays else "gaussian"
