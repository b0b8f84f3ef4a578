"""A local Ray cluster on this machine (2 CPUs) for the distributed tests; skipped where ray is not installed."""

from __future__ import annotations

import pytest

ray = pytest.importorskip("ray", reason="ray is not installed: pip install robonav[dist]")


@pytest.fixture(scope="session")
def ray_cluster():
    """One local Ray instance for the whole dist suite (starting one costs seconds), shut down at the end."""
    ray.init(num_cpus=2, include_dashboard=False, address="local", log_to_driver=False)
    yield ray
    ray.shutdown()
