"""Running observation normalisation whose statistics are part of the model (and of its ONNX graph).

Statistics update only while ``update()`` is called by the trainer; evaluation and export read them frozen,
so a policy never meets fresh statistics at test time (a complaint about CleanRL's evaluation).
"""

from __future__ import annotations

import torch
from torch import nn


class ObsNormalizer(nn.Module):
    """(x - mean) / sqrt(var + eps), clipped to +-clip; mean and var are buffers saved with the model."""

    mean: torch.Tensor
    var: torch.Tensor
    count: torch.Tensor

    def __init__(self, dim: int, clip: float = 10.0, eps: float = 1e-8) -> None:
        super().__init__()
        self.clip, self.eps = clip, eps
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("var", torch.ones(dim))
        self.register_buffer("count", torch.tensor(1e-4, dtype=torch.float64))

    @torch.no_grad()
    def update(self, x: torch.Tensor) -> None:
        """Fold a batch [..., dim] into the running statistics (parallel-variance formula)."""
        x = x.reshape(-1, x.shape[-1]).double()
        n = x.shape[0]
        if n == 0:
            return
        b_mean, b_var = x.mean(0), x.var(0, unbiased=False)
        total = self.count + n
        delta = b_mean - self.mean.double()
        new_mean = self.mean.double() + delta * n / total
        m2 = self.var.double() * self.count + b_var * n + delta.pow(2) * self.count * n / total
        self.mean.copy_(new_mean.float())
        self.var.copy_((m2 / total).float())
        self.count.copy_(total)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ((x - self.mean) / torch.sqrt(self.var + self.eps)).clamp(-self.clip, self.clip)
