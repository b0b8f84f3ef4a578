"""Fixtures shared by the training tests."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture()
def one_torch_thread():
    """One torch thread, as `robonav train` runs the learner (threads: 1): on a shared CPU more threads only
    contend (two made the LSTM about 30x slower here)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
