"""Env selection shared by the batched control pieces (safety layer, command delay)."""

from __future__ import annotations

import numpy as np


def env_index(env_ids: np.ndarray | list[int] | None, num_envs: int, where: str,
              error: type[ValueError]) -> np.ndarray | slice:
    """Turns `env_ids` (None = all, int indices, or a bool mask of length num_envs) into an index."""
    if env_ids is None:
        return slice(None)
    ids = np.asarray(env_ids)
    if ids.size == 0:
        return np.zeros(0, dtype=np.intp)
    if ids.dtype == np.bool_:
        if ids.shape != (num_envs,):
            raise error(
                f"{where}: a bool env mask must have shape ({num_envs},), actual: {ids.shape}."
            )
        return np.flatnonzero(ids)
    if ids.dtype.kind not in "iu":
        raise error(
            f"{where}: env_ids must be integers or a bool mask, actual dtype: {ids.dtype}."
        )
    ids = ids.reshape(-1)
    if ids.size and (ids.min() < -num_envs or ids.max() >= num_envs):
        raise error(f"{where}: env_ids must lie in [0, {num_envs}), actual: {ids.tolist()}.")
    return ids
