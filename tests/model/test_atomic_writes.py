"""The files a model travels as (weights, sidecar, selftest recording, checkpoint, ONNX) are written atomically: a
writer that fails half way leaves the old file whole and no temporary file behind."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from robonav.model.sidecar import read_sidecar, sidecar_path, write_sidecar


class Boom(RuntimeError):
    """The writer died."""


def _half_then_boom(real):
    """A stand-in for a writer taking a file (or path) first: writes a few bytes of the real output, then fails."""
    def write(target, *args, **kw):
        real(target, *args, **kw)
        if hasattr(target, "truncate"):
            target.truncate(7)
        raise Boom("killed half way")
    return write


def _siblings(path):
    return sorted(p.name for p in path.parent.iterdir())


def test_a_failed_sidecar_write_keeps_the_old_sidecar(tmp_path, toys, monkeypatch):
    model = toys.write(tmp_path)
    side = sidecar_path(model)
    before, names = side.read_bytes(), _siblings(side)
    import robonav.atomic

    monkeypatch.setattr(robonav.atomic.os, "fsync", lambda fd: (_ for _ in ()).throw(Boom("disk gone")))
    with pytest.raises(Boom):
        write_sidecar(model, dataclasses.replace(read_sidecar(model), control_period=0.2))
    assert side.read_bytes() == before and _siblings(side) == names
    monkeypatch.undo()
    write_sidecar(model, dataclasses.replace(read_sidecar(model), control_period=0.2))
    assert json.loads(side.read_text())["control_period"] == 0.2


def test_a_failed_weights_write_keeps_the_old_weights(tmp_path, monkeypatch):
    from robonav.deploy import export
    from robonav.policy.actor_critic import ActorCritic, PolicyConfig

    model = ActorCritic(12, PolicyConfig(encoder=(8,), hidden=4))
    path = export.write_weights(model, tmp_path / "p.npz")
    before, names = path.read_bytes(), _siblings(path)
    monkeypatch.setattr(export.np, "savez", _half_then_boom(np.savez))
    with pytest.raises(Boom):
        export.write_weights(model, path)
    assert path.read_bytes() == before and _siblings(path) == names
    with np.load(path) as f:
        assert str(f["format"]) == export.WEIGHTS_FORMAT and f["obs_mean"].shape == (12,)


def test_a_failed_recording_save_keeps_the_old_recording(tmp_path, monkeypatch):
    from robonav.runtime import selftest
    from robonav.sensors.frame import ScanSpec

    t, beams = 3, 8
    rec = selftest.SelftestRecording(
        scan=ScanSpec.evenly_spaced(beams, range_max=3.5), ranges=np.ones((t, beams), np.float32),
        odom=np.zeros((t, 3)), goal=np.ones((t, 2)), episode=np.array([0, 0, 1]), seq=np.arange(t),
        command=np.zeros((t, 2)), obs=np.zeros((t, 4), np.float32), actions=np.zeros((t, 2), np.float32),
        meta={"model_file": "m.onnx"})
    path = rec.save(tmp_path / "m.selftest.npz")
    before, names = path.read_bytes(), _siblings(path)
    monkeypatch.setattr(selftest.np, "savez_compressed", _half_then_boom(np.savez_compressed))
    with pytest.raises(Boom):
        dataclasses.replace(rec, meta={"model_file": "other.onnx"}).save(path)
    assert path.read_bytes() == before and _siblings(path) == names
    assert selftest.SelftestRecording.load(path).meta["model_file"] == "m.onnx"


def test_a_failed_checkpoint_save_keeps_the_old_checkpoint(tmp_path, monkeypatch):
    import torch

    from robonav.policy import checkpoint

    path = checkpoint.save_checkpoint(tmp_path / "last.pt", {"w": torch.ones(3)}, {"global_step": 1})
    before, names = path.read_bytes(), _siblings(path)
    monkeypatch.setattr(checkpoint.torch, "save", _half_then_boom(torch.save))
    with pytest.raises(Boom):
        checkpoint.save_checkpoint(path, {"w": torch.zeros(3)}, {"global_step": 2})
    assert path.read_bytes() == before and _siblings(path) == names
    assert checkpoint.load_checkpoint(path)["meta"] == {"global_step": 1}
