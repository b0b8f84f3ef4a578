"""resolve_policy: every --policy form to a factory, its PolicyMeta and its eval settings, in one place."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from robonav.errors import UserError
from robonav.eval.policies import (
    NAMED_POLICIES,
    PolicyNotFoundError,
    ResolvedPolicy,
    checkpoint_path,
    resolve_policy,
    sim_config,
)
from robonav.eval.runner import EVAL_LATENCY_TICKS, ExpertPolicy, RandomPolicy
from robonav.model.sidecar import SidecarError, read_sidecar


def test_unknown_names_get_one_line_listing_what_is_accepted(tmp_path):
    with pytest.raises(PolicyNotFoundError) as e:
        resolve_policy("defualt")
    text = str(e.value)
    assert "\n" not in text and isinstance(e.value, UserError)
    assert text == ("--policy 'defualt': neither a policy name (default, default-q, classical, guided, expert, "
                    "random) nor an existing file; give one of those names, a checkpoint (.pt), an ONNX model "
                    "(.onnx) or a TensorRT engine (.engine)")
    with pytest.raises(PolicyNotFoundError, match=r"--policy '.*missing.onnx': neither a policy name"):
        resolve_policy(str(tmp_path / "missing.onnx"))


def test_baselines_read_no_model_and_run_the_nominal_eval_settings():
    for name, cls in (("expert", ExpertPolicy), ("random", RandomPolicy)):
        r = resolve_policy(name)
        assert r.meta is None and r.sim_config == sim_config(None) and isinstance(r.factory(2), cls)
    assert sim_config(None).latency_ticks == EVAL_LATENCY_TICKS and not sim_config(None).randomization.enabled
    from robonav.eval.classical import ClassicalPolicy

    assert resolve_policy("classical").factory is ClassicalPolicy


def test_shipped_checkpoint_resolves_to_its_meta_and_settings():
    r = resolve_policy("default-q")
    assert r.meta is not None and r.meta.head == "argmax" and r.meta.precision == "fp32"
    assert r.meta.observation_spec is not None and r.sim_config.preprocessor == r.meta.observation_spec.config
    assert r.sim_config.period == r.meta.control_period and r.sim_config.observation == "preprocessor"
    exported = read_sidecar(checkpoint_path("default-q").with_suffix(".onnx"))
    assert r.meta.checkpoint_sha256 == exported.checkpoint_sha256  # the shipped .onnx came from this checkpoint
    assert dataclasses.replace(exported.policy, model_sha256="", weights_sha256="") == r.meta
    agent = r.factory(2)
    agent.reset(np.arange(2))
    assert agent.act(np.zeros((2, r.meta.obs_dim), np.float32), None, None).shape == (2, 2)


def test_an_onnx_model_resolves_through_its_sidecar(tmp_path, toys):
    model = toys.write(tmp_path)
    r = resolve_policy(str(model))
    assert r.meta == read_sidecar(model) and r.sim_config.observation == "plain" and r.sim_config.period == 0.1
    policy = r.factory(2)
    policy.reset(np.arange(2))
    obs = np.ones((2, toys.D), np.float32)
    np.testing.assert_allclose(policy.act(obs), np.tile(obs[0] @ toys.W, (2, 1)), rtol=1e-6)
    model.with_suffix(".json").unlink()
    with pytest.raises(SidecarError, match=r"no sidecar toy.json beside it"):
        resolve_policy(str(model))


def test_the_registry_is_the_place_for_more_named_policies(monkeypatch):
    made = ResolvedPolicy("wall-follower", RandomPolicy, None, sim_config(None))
    monkeypatch.setitem(NAMED_POLICIES, "wall-follower", lambda name: made)
    assert resolve_policy("wall-follower") is made
    with pytest.raises(PolicyNotFoundError,
                       match=r"\(default, default-q, classical, guided, expert, random, wall-follower\)"):
        resolve_policy("wall-folower")


def test_robonav_eval_says_an_unknown_policy_in_one_line():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "robonav.cli", "eval", "--policy", "defualt", "--episodes", "1"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    lines = [s for s in out.stderr.splitlines() if s.strip() and not s.startswith("pybullet build time")]
    assert lines == [
        "robonav eval: --policy 'defualt': neither a policy name (default, default-q, classical, guided, expert, "
        "random) nor an existing file; give one of those names, a checkpoint (.pt), an ONNX model (.onnx) or a "
        "TensorRT engine (.engine)"]
