"""Prioritized sequence replay (Schaul et al. 2016, with R2D2's sequence priorities), capacity in sequences.

- New sequences enter at the largest priority seen so far (1 before any update), so each is replayed soon.
- A sequence's priority is p = eta max_t |delta_t| + (1 - eta) mean_t |delta_t| over its valid TRAINED steps only
  (``sequence_priorities``; eta = 0.9), so padding length changes nothing.
- Sampling draws each of a batch's sequences independently with P(i) = p_i^alpha / sum_k p_k^alpha (alpha = 0.9),
  from a sum tree over p^alpha (numpy, vectorised descent: O(B log N) per batch, no per-item Python loop).
- Importance weights w_i = (N P(i))^-beta, divided by the batch's largest weight (so they only scale updates down).
- When full, the oldest sequence is overwritten (FIFO).

Storage is torch tensors allocated at the first ``add`` from that sequence's shapes; ``sample`` returns time-major
[T, B] tensors for the learner. ``state_dict`` holds the contents, priorities and the sampling RNG as tensors and
plain Python values (``torch.load(weights_only=True)`` reads it back), for an exact ``--resume``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from robonav.errors import RobonavError
from robonav.policy.state import LstmState
from robonav.train.r2d2.sequencer import Sequence

MIN_PRIORITY = 1e-6
"""Floor under every priority: a sequence whose TD errors are all 0 stays sampleable."""


class ReplayError(RobonavError, ValueError):
    """A replay used in a way it cannot serve (empty, mismatched shapes, foreign state)."""


def sequence_priorities(abs_td: torch.Tensor, mask: torch.Tensor, eta: float = 0.9) -> np.ndarray:
    """[B] priorities eta * max + (1 - eta) * mean of ``abs_td`` [T, B] over the steps where ``mask`` [T, B] is true
    (a column with no such step gets 0)."""
    m = mask.bool()
    td = abs_td.detach().double()
    count = m.sum(0)
    mean = torch.where(m, td, torch.zeros_like(td)).sum(0) / count.clamp(min=1)
    peak = torch.where(m, td, torch.zeros_like(td)).amax(0)
    return (eta * peak + (1.0 - eta) * mean).numpy()


class SumTree:
    """Binary tree whose internal nodes hold the sum of their leaves; leaf i at ``tree[size + i]``."""

    def __init__(self, capacity: int) -> None:
        self.leaves = 1 << max(0, int(capacity - 1).bit_length())
        self.tree = np.zeros(2 * self.leaves, np.float64)

    def set(self, index: np.ndarray, values: np.ndarray) -> None:
        """Leaves ``index`` := ``values``; parents recomputed from their children (no drift from deltas)."""
        node = np.asarray(index, np.int64) + self.leaves
        self.tree[node] = values
        while node[0] > 1:
            node = np.unique(node // 2)
            self.tree[node] = self.tree[2 * node] + self.tree[2 * node + 1]

    def total(self) -> float:
        return float(self.tree[1])

    def leaf(self, index: np.ndarray) -> np.ndarray:
        return self.tree[np.asarray(index, np.int64) + self.leaves]

    def find(self, mass: np.ndarray) -> np.ndarray:
        """Leaf i with cumsum(leaves)[i-1] <= mass < cumsum(leaves)[i], for each mass in [0, total)."""
        node = np.ones(len(mass), np.int64)
        mass = np.asarray(mass, np.float64).copy()
        while node[0] < self.leaves:
            left = 2 * node
            left_sum = self.tree[left]
            right = mass >= left_sum
            mass = np.where(right, mass - left_sum, mass)
            node = np.where(right, left + 1, left)
        return node - self.leaves


@dataclass
class ReplayBatch:
    """Sampled sequences, time-major."""

    obs: torch.Tensor
    """[T, B, D] float32 (T = burn_in + seq_len + 1)."""
    actions: torch.Tensor
    """[T, B] int64."""
    rewards: torch.Tensor
    """[T, B] float32."""
    terminated: torch.Tensor
    """[T, B] bool."""
    truncated: torch.Tensor
    """[T, B] bool."""
    starts: torch.Tensor
    """[T, B] float32 episode_starts."""
    valid: torch.Tensor
    """[T, B] bool real transitions."""
    state: LstmState
    """(h, c) [layers, B, H]: the stored input state of position 0."""
    first_state: LstmState
    """The actor's input state at position burn_in."""
    last_state: LstmState
    """The actor's input state at each sequence's last valid transition."""
    weights: torch.Tensor
    """[B] float32 importance weights, max 1."""
    indices: np.ndarray
    """[B] replay slots, for ``update_priorities``."""
    versions: torch.Tensor
    """[B] int64 learner updates when each sequence's first real step was acted."""


_FIELDS = ("obs", "actions", "rewards", "terminated", "truncated", "starts", "valid")
_STATES = ("state", "first_state", "last_state")


class PrioritizedReplay:
    """A ring of ``capacity`` sequences with a sum tree over their priorities^alpha."""

    def __init__(self, capacity: int, alpha: float = 0.9, seed: int = 0) -> None:
        if capacity < 1:
            raise ReplayError(f"replay capacity must be >= 1 sequence, got {capacity}")
        self.capacity, self.alpha = capacity, alpha
        self.tree = SumTree(capacity)
        self.priorities = np.zeros(capacity, np.float64)
        self.max_priority = 1.0
        self.size = self.cursor = 0
        self.rng = np.random.default_rng(seed)
        self.data: dict[str, torch.Tensor] = {}

    def __len__(self) -> int:
        return self.size

    def add(self, seq: Sequence) -> int:
        """Store ``seq`` at max priority (overwriting the oldest when full); returns its slot."""
        if not self.data:
            self._allocate(seq)
        slot = self.cursor
        t_len = self.data["obs"].shape[1]
        if seq.obs.shape != tuple(self.data["obs"].shape[1:]):
            raise ReplayError(f"sequence obs of shape {seq.obs.shape} does not fit this replay's "
                              f"{tuple(self.data['obs'].shape[1:])}: one replay holds one burn_in + seq_len and one "
                              f"observation size (T = {t_len})")
        for name in _FIELDS:
            self.data[name][slot] = torch.from_numpy(np.asarray(getattr(seq, name)))
        for name in _STATES:
            h, c = getattr(seq, name)
            self.data[name + "_h"][slot] = torch.from_numpy(np.asarray(h, np.float32))
            self.data[name + "_c"][slot] = torch.from_numpy(np.asarray(c, np.float32))
        self.data["versions"][slot] = seq.version
        self._set(np.array([slot]), np.array([self.max_priority]))
        self.cursor = (self.cursor + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)
        return slot

    def sample(self, batch: int, beta: float) -> ReplayBatch:
        """``batch`` sequences drawn independently with P(i) = p_i^alpha / sum, and their importance weights."""
        if self.size == 0:
            raise ReplayError("cannot sample from an empty replay: add sequences first (learning starts after "
                              "the warmup steps)")
        total = self.tree.total()
        idx = self.tree.find(self.rng.random(batch) * total)
        idx = np.minimum(idx, self.size - 1)  # a draw rounded onto an empty leaf past the end (measure zero)
        probs = self.tree.leaf(idx) / total
        weights = (self.size * probs) ** (-beta)
        weights = weights / weights.max()
        return self.gather(idx, torch.from_numpy(weights.astype(np.float32)))

    def gather(self, indices: np.ndarray, weights: torch.Tensor | None = None) -> ReplayBatch:
        """The stored sequences at ``indices`` as a time-major batch (weights 1 unless given)."""
        idx = np.asarray(indices, np.int64)
        if len(idx) and (idx.min() < 0 or idx.max() >= self.size):
            raise ReplayError(f"replay slots {idx.tolist()} outside the {self.size} filled ones")
        t = torch.from_numpy(idx)
        d = self.data

        def states(name: str) -> LstmState:
            return LstmState(d[name + "_h"][t].transpose(0, 1).contiguous(),
                             d[name + "_c"][t].transpose(0, 1).contiguous())

        return ReplayBatch(
            obs=d["obs"][t].transpose(0, 1), actions=d["actions"][t].t(), rewards=d["rewards"][t].t(),
            terminated=d["terminated"][t].t(), truncated=d["truncated"][t].t(), starts=d["starts"][t].t().float(),
            valid=d["valid"][t].t(), state=states("state"), first_state=states("first_state"),
            last_state=states("last_state"), weights=torch.ones(len(idx)) if weights is None else weights,
            indices=idx, versions=d["versions"][t])

    def update_priorities(self, indices: np.ndarray, priorities: np.ndarray) -> None:
        """New priorities (from the loss's TD errors) for sampled slots; the max seen rises with them."""
        priorities = np.asarray(priorities, np.float64)
        if len(priorities):
            self.max_priority = max(self.max_priority, float(priorities.max()))
        self._set(np.asarray(indices), priorities)

    def probabilities(self) -> np.ndarray:
        """[size] sampling probability of every stored sequence (for tests and diagnostics)."""
        leaves = self.tree.leaf(np.arange(self.size))
        return leaves / leaves.sum()

    def _set(self, idx: np.ndarray, priorities: np.ndarray) -> None:
        self.priorities[idx] = priorities
        self.tree.set(idx, np.maximum(priorities, MIN_PRIORITY) ** self.alpha)

    def _allocate(self, seq: Sequence) -> None:
        n = self.capacity
        for name in _FIELDS:
            a = np.asarray(getattr(seq, name))
            self.data[name] = torch.zeros((n, *a.shape), dtype=torch.from_numpy(a).dtype)
        for name in _STATES:
            h, _ = getattr(seq, name)
            self.data[name + "_h"] = torch.zeros((n, *np.shape(h)), dtype=torch.float32)
            self.data[name + "_c"] = torch.zeros((n, *np.shape(h)), dtype=torch.float32)
        self.data["versions"] = torch.zeros(n, dtype=torch.int64)

    # -- resume ---------------------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Contents (filled slots only), priorities, cursor and the sampling RNG; tensors and plain values."""
        return {"capacity": self.capacity, "alpha": self.alpha, "size": self.size, "cursor": self.cursor,
                "max_priority": self.max_priority,
                "priorities": torch.from_numpy(self.priorities[:self.size].copy()),
                "data": {k: v[:self.size].clone() for k, v in self.data.items()},
                "rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["capacity"] != self.capacity or state["alpha"] != self.alpha:
            raise ReplayError(f"replay state for capacity {state['capacity']}, alpha {state['alpha']} cannot load "
                              f"into capacity {self.capacity}, alpha {self.alpha}: resume with the run's settings")
        self.size, self.cursor = int(state["size"]), int(state["cursor"])
        self.max_priority = float(state["max_priority"])
        self.data = {}
        for k, v in state["data"].items():
            full = torch.zeros((self.capacity, *v.shape[1:]), dtype=v.dtype)
            full[:self.size] = v
            self.data[k] = full
        self.priorities = np.zeros(self.capacity, np.float64)
        self.tree = SumTree(self.capacity)
        if self.size:
            self._set(np.arange(self.size), state["priorities"].numpy())
        self.rng.bit_generator.state = state["rng"]
