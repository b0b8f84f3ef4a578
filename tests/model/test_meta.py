"""PolicyMeta: the typed contract of a trained policy, its one JSON form, and what reads it."""

from __future__ import annotations

import dataclasses
import json

import pytest

from robonav.data import resource
from robonav.model.meta import PolicyMeta, PolicyMetaError, observation_spec
from robonav.model.sidecar import ModelSidecar, file_sha256, read_sidecar, sidecar_path
from robonav.sensors.spec import ObservationSpec, PreprocessorConfig

SPEC = ObservationSpec(PreprocessorConfig(num_bins=16, fine_pixels=4, coarse_pixels=4, grid_cells=128))


def meta(**kw) -> PolicyMeta:
    base = dict(observation_spec=SPEC, obs_dim=SPEC.size, action_limits=(0.5, 2.0), control_period=0.1,
                head="argmax", state_layers=2, hidden=16, checkpoint_sha256="c" * 64)
    return PolicyMeta(**{**base, **kw})


def test_round_trips_through_json_with_a_typed_spec():
    m = meta()
    data = json.loads(json.dumps(m.to_dict()))
    assert data["observation"] == "preprocessor" and data["observation_spec"]["size"] == SPEC.size == 101
    back = PolicyMeta.from_dict(data)
    assert back == m and isinstance(back.observation_spec, ObservationSpec)
    assert back.state_shape == (2, 1, 16) and back.actions == 2
    plain = meta(observation_spec=None, obs_dim=40)
    assert plain.observation == "plain" and PolicyMeta.from_dict(plain.to_dict()) == plain


def test_contradictions_are_refused_with_the_field():
    data = meta().to_dict()
    with pytest.raises(PolicyMetaError, match=r"here: observation 'plain' with observation_spec set: expected "
                                              r"'preprocessor' with a spec or 'plain' with null"):
        PolicyMeta.from_dict({**data, "observation": "plain"}, "here")
    with pytest.raises(PolicyMetaError, match=r"here: missing field\(s\) \['control_period'\]"):
        PolicyMeta.from_dict({k: v for k, v in data.items() if k != "control_period"}, "here")
    with pytest.raises(PolicyMetaError, match=r"here: a field has the wrong type"):
        PolicyMeta.from_dict({**data, "action_limits": [0.5, 2.0, 1.0]}, "here")
    with pytest.raises(PolicyMetaError, match=r"here: head must be one of \['argmax', 'gaussian'\], got 'beta'"):
        PolicyMeta.from_dict({**data, "head": "beta"}, "here")
    with pytest.raises(PolicyMetaError, match=r"observation_spec describes 101 floats but obs_dim is 100"):
        meta(obs_dim=100)
    with pytest.raises(PolicyMetaError, match=r"observation_spec must be an ObservationSpec or None, got dict"):
        meta(observation_spec=SPEC.to_dict())


def test_observation_spec_is_the_observers_without_building_it():
    from robonav.sim.observation import make_observer

    config = PreprocessorConfig(num_bins=16, fine_pixels=4, coarse_pixels=4, grid_cells=128)
    spec = observation_spec("preprocessor", config, 0.7, 1.5)
    assert spec == make_observer("preprocessor", 0.7, 1.5, config).spec  # type: ignore[attr-defined]
    assert spec is not None and (spec.config.v_max, spec.config.omega_max) == (0.7, 1.5)
    assert observation_spec("plain", config, 0.7, 1.5) is None
    with pytest.raises(PolicyMetaError, match=r"observation 'lidar': expected one of \('preprocessor', 'plain'\)"):
        observation_spec("lidar", config, 0.5, 2.0)


@pytest.mark.parametrize("name", ["default", "default-q", "default.int8", "default-q.int8"])
def test_shipped_sidecars_load_with_their_hashes(name):
    model = resource("policies", f"{name}.onnx")
    side = read_sidecar(model)  # checks the .onnx's sha256
    assert side.observation == "preprocessor" and side.observation_spec is not None
    assert side.obs_dim == side.observation_spec.size and side.control_period == 0.1
    assert side.head == ("argmax" if name.startswith("default-q") else "gaussian")
    if side.precision == "fp32":
        assert side.weights_sha256 == file_sha256(model.with_suffix(".npz"))
    else:
        assert side.precision == "int8" and side.weights_sha256 == ""


def test_a_sidecar_from_before_head_and_weights_hash_still_reads(tmp_path, toys):
    """Sidecars written before robonav recorded the head and the weights' hash keep loading (as None and '')."""
    model = toys.write(tmp_path)
    old = {k: v for k, v in json.loads(sidecar_path(model).read_text()).items() if k not in ("head", "weights_sha256")}
    side = ModelSidecar.from_dict(old, "old.json")
    assert side.head is None and side.weights_sha256 == "" and side == dataclasses.replace(
        read_sidecar(model), head=None)
