"""Every CPU backend refuses model bytes its sidecar does not vouch for: a garbage .onnx, a garbage .npz, or the
.npz of another export, naming the file and both sha256."""

from __future__ import annotations

import dataclasses
import hashlib
import shutil

import pytest

from robonav.model.sidecar import ModelHashError, file_sha256, read_sidecar, sidecar_path, write_sidecar
from robonav.runtime.backends.registry import open_backend

GARBAGE = b"not a model\n" * 7
GARBAGE_SHA = hashlib.sha256(GARBAGE).hexdigest()


def _export(folder, seed: int):
    import torch

    from robonav.deploy.export import export_onnx
    from robonav.policy.actor_critic import ActorCritic, PolicyConfig
    from robonav.policy.checkpoint import save_checkpoint
    from robonav.sensors.spec import ObservationSpec, PreprocessorConfig

    spec = ObservationSpec(PreprocessorConfig(num_bins=16, fine_pixels=4, coarse_pixels=4, grid_cells=128))
    config = PolicyConfig(encoder=(16,), hidden=8)
    torch.manual_seed(seed)
    meta = {"policy": {**dataclasses.asdict(config), "encoder": list(config.encoder)}, "obs_dim": spec.size,
            "observation_spec": spec.to_dict(), "action_limits": [0.5, 2.0], "control_period": 0.1,
            "observation": "preprocessor"}
    checkpoint = save_checkpoint(folder / "tiny.pt", ActorCritic(spec.size, config).state_dict(), meta)
    return export_onnx(checkpoint, folder / "tiny.onnx")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Two exports of the same architecture with different weights (seed 0 and 1)."""
    return [_export(tmp_path_factory.mktemp(f"export{seed}"), seed) for seed in (0, 1)]


def _copy(done, folder):
    """The export's .onnx, .json and .npz copied into ``folder``; returns the .onnx path there."""
    for path in (done.onnx, done.sidecar, done.weights):
        shutil.copy(path, folder / path.name)
    return folder / done.onnx.name


def test_export_records_both_hashes(models):
    done = models[0]
    side = read_sidecar(done.onnx)
    assert side.model_sha256 == file_sha256(done.onnx) and side.weights_sha256 == file_sha256(done.weights)
    assert side.head == "gaussian" and side.checkpoint_sha256 == file_sha256(done.onnx.with_suffix(".pt"))
    assert models[1].meta.weights_sha256 != side.weights_sha256  # other weights, other hash


@pytest.mark.parametrize("kind", ["ort", "numba", "torch"])
def test_garbage_onnx_is_refused(models, tmp_path, kind):
    model = _copy(models[0], tmp_path)
    want = models[0].meta.model_sha256
    model.write_bytes(GARBAGE)
    with pytest.raises(ModelHashError, match=rf"{model}: model sha256 {GARBAGE_SHA} differs from the sidecar's "
                                             rf"{want} \(tiny.json\)"):
        open_backend(kind, model)


@pytest.mark.parametrize("kind", ["numba", "torch"])
def test_garbage_npz_is_refused(models, tmp_path, kind):
    model = _copy(models[0], tmp_path)
    want = models[0].meta.weights_sha256
    model.with_suffix(".npz").write_bytes(GARBAGE)
    with pytest.raises(ModelHashError, match=rf"tiny.npz: weights sha256 {GARBAGE_SHA} differs from the sidecar's "
                                             rf"{want}"):
        open_backend(kind, model)


@pytest.mark.parametrize("kind", ["numba", "torch"])
def test_npz_of_another_export_is_refused(models, tmp_path, kind):
    model = _copy(models[0], tmp_path)
    shutil.copy(models[1].weights, model.with_suffix(".npz"))
    found, want = models[1].meta.weights_sha256, models[0].meta.weights_sha256
    with pytest.raises(ModelHashError, match=rf"tiny.npz: weights sha256 {found} differs from the sidecar's {want}"):
        open_backend(kind, model)


@pytest.mark.parametrize("kind", ["numba", "torch"])
def test_a_sidecar_without_weights_hash_is_refused(models, tmp_path, kind):
    """A sidecar written before export recorded weights_sha256 proves nothing about the .npz: re-export."""
    model = _copy(models[0], tmp_path)
    write_sidecar(model, dataclasses.replace(read_sidecar(model), weights_sha256=""))
    assert "weights_sha256" in sidecar_path(model).read_text()
    with pytest.raises(ModelHashError, match=r"tiny.npz: its sidecar tiny.json records no sha256 for the weights.*"
                                             r"re-export the model"):
        open_backend(kind, model)


@pytest.mark.parametrize("kind", ["ort", "numba", "torch"])
def test_the_untouched_copy_opens(models, tmp_path, kind):
    """The refusals above come from the bytes changed, not from the copy."""
    with open_backend(kind, _copy(models[0], tmp_path)) as backend:
        assert backend.sidecar.weights_sha256 == models[0].meta.weights_sha256
