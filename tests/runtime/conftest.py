"""Recorded episodes for the backend tests (the toy step models are in tests/conftest.py)."""

from __future__ import annotations

import pytest

RECORDING_SUITE = "val-3x3"


@pytest.fixture(scope="module")
def recording(exported):
    """At least 1,000 ticks of 3x3 validation episodes driven by ONNX Runtime over the test module's ``exported``
    model (each backend test module defines its own), back to back through resets."""
    from robonav.deploy.parity import record_steps, sim_config
    from robonav.runtime.backends.onnx_backend import OnnxPolicy

    rec = record_steps(lambda n: OnnxPolicy(exported.onnx, n), sim_config(exported.meta), 1000, RECORDING_SUITE, 0,
                       3)
    assert rec.steps >= 1000 and len(rec.segments) >= 2
    return rec


@pytest.fixture(scope="module")
def ort_actions(exported, recording):
    """The ONNX Runtime reference actions over ``recording``."""
    from robonav.deploy.parity import backend_actions
    from robonav.runtime.backends.onnx_backend import OnnxBackend

    with OnnxBackend(exported.onnx) as backend:
        return backend_actions(backend, recording)
