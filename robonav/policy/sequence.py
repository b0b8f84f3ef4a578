"""Run an LSTM over [T, B] sequences that contain episode starts, with one LSTM call and no per-step loop.

Each column is split at its episode starts into segments; segments are padded into a [T, K] batch whose first
segment per column starts from the given state (zeroed if the column starts an episode) and every later
segment from zeros; one ``nn.LSTM`` call runs them all, and the outputs are gathered back to [T, B]
(rsl_rl's split-and-pad, done with index arithmetic). Example, T = 4, B = 2, starts marked by *:

    column 0:  a0  a1 *a2  a3      ->  segments  [a0 a1 . .]  (state h0[:, 0])   [a2 a3 . .]  (zeros)
    column 1:  b0  b1  b2  b3      ->            [b0 b1 b2 b3] (state h0[:, 1])
"""

from __future__ import annotations

import torch
from torch import nn

from robonav.policy.state import LstmState


def lstm_sequence(lstm: nn.LSTM, x: torch.Tensor, state: LstmState, episode_starts: torch.Tensor
                  ) -> tuple[torch.Tensor, LstmState]:
    """Outputs [T, B, H] of ``lstm`` over ``x`` [T, B, D] from ``state`` ((L, B, H) pairs), resetting the state
    where ``episode_starts`` [T, B] is 1 (before that step). Also returns the state after the last step."""
    t_len, batch = x.shape[:2]
    starts = episode_starts.bool()
    if not starts[1:].any():  # fast path: at most a reset at t = 0
        out, (h, c) = lstm(x, tuple(state.masked(starts[0])))
        return out, LstmState(h, c)
    boundary = starts.clone()
    boundary[0] = True
    flat_b = boundary.t().reshape(-1)  # column-major: column 0's steps, then column 1's ...
    seg = torch.cumsum(flat_b.long(), 0) - 1  # [T*B] segment id of each element
    k = int(seg[-1].item()) + 1
    idx = torch.arange(t_len * batch, device=x.device)
    first = torch.zeros(k, dtype=torch.long, device=x.device)
    first[seg[flat_b]] = idx[flat_b]
    pos = idx - first[seg]  # position inside the segment
    x_flat = x.transpose(0, 1).reshape(t_len * batch, -1)
    padded = x.new_zeros(t_len, k, x.shape[-1])
    padded[pos, seg] = x_flat
    # Initial states: column b's first segment gets state[:, b] (masked by starts[0]); others start at zero.
    col_first_seg = seg.view(batch, t_len)[:, 0]  # [B]
    s0 = state.masked(starts[0])
    h0 = x.new_zeros(s0.h.shape[0], k, s0.h.shape[2])
    c0 = torch.zeros_like(h0)
    h0[:, col_first_seg] = s0.h
    c0[:, col_first_seg] = s0.c
    out_pad, _ = lstm(padded, (h0, c0))
    out = out_pad[pos, seg].view(batch, t_len, -1).transpose(0, 1)
    # Final state: the last segment of each column, at its last valid position.
    last_seg = seg.view(batch, t_len)[:, -1]
    last_pos = pos.view(batch, t_len)[:, -1]
    _, (hs, cs) = _states_at(lstm, padded, h0, c0, last_seg, last_pos)
    return out, LstmState(hs, cs)


def _states_at(lstm: nn.LSTM, padded: torch.Tensor, h0: torch.Tensor, c0: torch.Tensor, segs: torch.Tensor,
               positions: torch.Tensor) -> tuple[None, tuple[torch.Tensor, torch.Tensor]]:
    """(h, c) after step ``positions[b]`` of segment ``segs[b]``: rerun only those segments, truncated.

    Only the final state of a rollout chunk needs this, so it costs one extra LSTM call over B segments.
    """
    sub = padded[:, segs]  # [T, B, D]
    packed = nn.utils.rnn.pack_padded_sequence(sub, (positions + 1).cpu(), enforce_sorted=False)
    _, (h, c) = lstm(packed, (h0[:, segs].contiguous(), c0[:, segs].contiguous()))
    return None, (h, c)
