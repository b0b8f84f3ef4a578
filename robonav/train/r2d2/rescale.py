"""The value rescaling of R2D2 (Pohlen et al. 2018), in which the network's Q values and the targets live.

    h(x)      = sign(x) (sqrt(|x| + 1) - 1) + eps x                                       eps = 1e-3
    h^-1(x)   = sign(x) (((sqrt(1 + 4 eps (|x| + 1 + eps)) - 1) / (2 eps))^2 - 1)          (the paper's appendix)

Both are written in a cancellation-free form with the same values: sqrt(|x| + 1) - 1 = |x| / (sqrt(|x| + 1) + 1),
and with u = sqrt(|x| + 1) the root of eps u^2 + u - (1 + eps + |y|) = 0,

    u - 1 = 2 |y| / (1 + 2 eps + sqrt(1 + 4 eps (1 + eps + |y|)))        |x| = (u - 1) (u - 1 + 2)

so the round trip is tight from 1e-6 to 1e6 (the literal forms lose all digits near 0: 1 + tiny - 1).
"""

from __future__ import annotations

import math

import torch

EPS = 1e-3
"""The paper's eps: h is asymptotically eps x, so h^-1 exists on all of R."""


def h(x: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """sign(x) (sqrt(|x| + 1) - 1) + eps x, elementwise."""
    a = x.abs()
    return torch.sign(x) * a / (torch.sqrt(a + 1.0) + 1.0) + eps * x


def h_inv(y: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """The exact inverse of ``h``, elementwise."""
    a = y.abs()
    w = 2.0 * a / (1.0 + 2.0 * eps + torch.sqrt(1.0 + 4.0 * eps * (1.0 + eps + a)))  # u - 1
    return torch.sign(y) * w * (w + 2.0)


def h_paper(x: float, eps: float = EPS) -> float:
    """h written literally as in the paper (plain Python; the reference of tests and targets.reference_targets)."""
    return math.copysign(math.sqrt(abs(x) + 1.0) - 1.0, x) + eps * x


def h_inv_paper(y: float, eps: float = EPS) -> float:
    """h^-1 written literally as in the paper's appendix (plain Python)."""
    return math.copysign(((math.sqrt(1.0 + 4.0 * eps * (abs(y) + 1.0 + eps)) - 1.0) / (2.0 * eps)) ** 2 - 1.0, y)
