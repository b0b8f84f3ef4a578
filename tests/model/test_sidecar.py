"""The loader refuses a model that breaks its sidecar or the step-model contract, saying what and what to do."""

from __future__ import annotations

import dataclasses
import json

import pytest

from robonav.model.sidecar import (
    ModelHashError,
    ModelIOError,
    ModelMetadataError,
    ModelSidecar,
    SidecarError,
    read_sidecar,
    sidecar_path,
    weights_path,
)
from robonav.runtime.backends.onnx_backend import OnnxBackend


def test_a_good_toy_loads(tmp_path, toys):
    path = toys.write(tmp_path)
    with OnnxBackend(path) as backend:
        assert backend.sidecar == read_sidecar(path)


def test_paths_beside_the_model():
    assert sidecar_path("a/policy.int8.onnx").as_posix() == "a/policy.int8.json"
    assert weights_path("a/policy.onnx").as_posix() == "a/policy.npz"


def test_sidecar_round_trips(tmp_path, toys):
    path = toys.write(tmp_path)
    sidecar = read_sidecar(path)
    assert ModelSidecar.from_dict(json.loads(sidecar_path(path).read_text())) == sidecar
    assert sidecar.state_shape == (1, 1, toys.H) and sidecar.with_extra(a=1).extra == {"a": 1}


def test_model_missing_an_input_is_refused(tmp_path, toys):
    path = toys.write(tmp_path, drop_input="c_in")
    has = r"\['obs float32 \[1, 5\]', 'h_in float32 \[1, 1, 2\]'\]"
    with pytest.raises(ModelIOError, match=r"input 'c_in' is missing; expected c_in float32 \[1, 1, 2\], the model "
                                           rf"has {has}.*robonav export"):
        OnnxBackend(path).open()


def test_model_with_a_wrong_shape_is_refused(tmp_path, toys):
    path = toys.write(tmp_path, obs_dim=6)  # the model takes 6 floats, its sidecar says 5
    with pytest.raises(ModelIOError, match=r"input 'obs' expected float32 \[1, 5\], actual float32 \[1, 6\]"):
        OnnxBackend(path).open()


def test_model_without_metadata_is_refused(tmp_path, toys):
    path = toys.write(tmp_path, with_metadata=False)
    with pytest.raises(ModelMetadataError, match=r"metadata_props lacks \['robonav.action_limits', .*re-export it"):
        OnnxBackend(path).open()


def test_model_whose_metadata_disagrees_is_refused(tmp_path, toys):
    other = dataclasses.replace(toys.sidecar("toy.onnx"), action_limits=(1.0, 2.0))
    path = toys.write(tmp_path, metadata_from=other)
    with pytest.raises(ModelMetadataError, match=r"metadata robonav.action_limits is '\[1.0, 2.0\]' but the sidecar "
                                                 r"says '\[0.5, 2.0\]'"):
        OnnxBackend(path).open()


def test_changed_model_file_is_refused_by_hash(tmp_path, toys):
    path = toys.write(tmp_path)
    path.write_bytes(path.read_bytes() + b"\0")
    with pytest.raises(ModelHashError, match=r"sha256 .* differs from the sidecar's .*changed or replaced"):
        read_sidecar(path)
    with pytest.raises(ModelHashError):
        OnnxBackend(path).open()


def test_missing_or_broken_sidecars_are_refused(tmp_path, toys):
    path = toys.write(tmp_path)
    side = sidecar_path(path)
    good = json.loads(side.read_text())
    side.unlink()
    with pytest.raises(SidecarError, match=r"no sidecar toy.json beside it.*robonav export"):
        OnnxBackend(path)
    side.write_text("{not json")
    with pytest.raises(SidecarError, match="not readable JSON"):
        read_sidecar(path)
    side.write_text(json.dumps({**good, "format": "other/1"}))
    with pytest.raises(SidecarError, match=r"expected format 'robonav.model/1', found 'other/1'"):
        read_sidecar(path)
    side.write_text(json.dumps({k: v for k, v in good.items() if k != "control_period"}))
    with pytest.raises(SidecarError, match=r"missing field\(s\) \['control_period'\]"):
        read_sidecar(path)
    side.write_text(json.dumps({**good, "model_file": "other.onnx"}))
    with pytest.raises(SidecarError, match=r"describes model file 'other.onnx', not 'toy.onnx'"):
        read_sidecar(path)
    side.write_text(json.dumps({**good, "obs_dim": 7}))
    with pytest.raises(SidecarError, match="do not follow the step-model contract for obs_dim=7"):
        read_sidecar(path)
    side.write_text(json.dumps({**good, "precision": "int4"}))
    with pytest.raises(SidecarError, match=r"precision must be one of \('fp32', 'fp16', 'int8'\), got 'int4'"):
        read_sidecar(path)


def test_observation_spec_must_match_obs_dim(toys):
    from robonav.sensors.spec import ObservationSpec

    spec = ObservationSpec()
    with pytest.raises(SidecarError, match=rf"observation_spec describes {spec.size} floats but obs_dim is 5"):
        dataclasses.replace(toys.sidecar("toy.onnx"), observation_spec=spec)
