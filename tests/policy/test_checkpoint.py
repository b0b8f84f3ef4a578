"""Checkpoints round-trip, load with weights_only, and refuse corrupt or foreign files with a clear message."""

from __future__ import annotations

import pickle

import pytest
import torch

from robonav.policy.actor_critic import ActorCritic, PolicyConfig
from robonav.policy.checkpoint import CheckpointError, load_checkpoint, release_checkpoint, save_checkpoint


def test_round_trip(tmp_path):
    m = ActorCritic(5, PolicyConfig(encoder=(8,), hidden=4))
    path = save_checkpoint(tmp_path / "a.pt", m.state_dict(), {"obs_dim": 5, "note": "x"})
    ck = load_checkpoint(path)
    m2 = ActorCritic(5, PolicyConfig(encoder=(8,), hidden=4))
    m2.load_state_dict(ck["model"])
    for (k, v), (_, v2) in zip(m.state_dict().items(), m2.state_dict().items()):
        assert torch.equal(v, v2), k
    assert ck["meta"] == {"obs_dim": 5, "note": "x"}
    assert not list(tmp_path.glob("*.tmp"))


def test_release_keeps_the_policy_and_drops_optimiser_and_resume_state(tmp_path):
    m = ActorCritic(5, PolicyConfig(encoder=(8,), hidden=4))
    opt = torch.optim.Adam(m.parameters())
    m(torch.ones(1, 1, 5), m.initial_state(1), torch.zeros(1, 1))[0].sum().backward()
    opt.step()
    meta = {"obs_dim": 5, "policy": {"hidden": 4}, "torch_rng": [1, 2], "episodes": [{"seed": 3}], "successes": [1]}
    src = save_checkpoint(tmp_path / "last.pt", m.state_dict(), meta, optimizer=opt.state_dict())
    dst = release_checkpoint(src, tmp_path / "default.pt", source="last.pt")
    ck = load_checkpoint(dst)
    assert ck["optimizer"] is None
    assert ck["meta"] == {"obs_dim": 5, "policy": {"hidden": 4}, "source": "last.pt", "release": True}
    assert all(torch.equal(ck["model"][k], v) for k, v in m.state_dict().items())
    assert dst.stat().st_size < src.stat().st_size


def test_corrupt_file_is_refused(tmp_path):
    m = ActorCritic(5, PolicyConfig(encoder=(8,), hidden=4))
    path = save_checkpoint(tmp_path / "a.pt", m.state_dict(), {})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(path)


def test_foreign_files_are_refused(tmp_path):
    torch.save({"state_dict": {}}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match=r"expected a robonav\.checkpoint/1 checkpoint, found None"):
        load_checkpoint(tmp_path / "other.pt")

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    (tmp_path / "evil.pt").write_bytes(pickle.dumps(Evil()))
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="no such checkpoint file"):
        load_checkpoint(tmp_path / "missing.pt")
