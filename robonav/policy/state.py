"""Recurrent state as data: an (h, c) pair passed into and returned from every forward, never kept in a module."""

from __future__ import annotations

from typing import NamedTuple

import torch


class LstmState(NamedTuple):
    """LSTM state, each of shape (layers, envs, hidden). A separate critic stacks its layers after the actor's."""

    h: torch.Tensor
    c: torch.Tensor

    def masked(self, episode_starts: torch.Tensor) -> LstmState:
        """Zero the state of envs whose observation begins an episode (``episode_starts`` [envs], 1 = start).

        This is robonav's one masking rule: ``episode_starts[t] = 1`` means obs[t] begins an episode, and h, c
        are zeroed before step t.
        """
        keep = (1.0 - episode_starts.float()).view(1, -1, 1)
        return LstmState(self.h * keep, self.c * keep)

    def select(self, envs: torch.Tensor | slice) -> LstmState:
        """The state of a subset of envs (second axis)."""
        return LstmState(self.h[:, envs], self.c[:, envs])

    def detach(self) -> LstmState:
        return LstmState(self.h.detach(), self.c.detach())
