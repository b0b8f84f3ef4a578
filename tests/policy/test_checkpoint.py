"""Checkpoints round-trip, load with weights_only, and refuse corrupt or foreign files with a clear message."""

from __future__ import annotations

import pickle

import pytest
import torch

from robonav.policy.actor_critic import ActorCritic, PolicyConfig
from robonav.policy.checkpoint import (
    CheckpointError,
    average_checkpoints,
    file_hash,
    load_checkpoint,
    release_checkpoint,
    save_checkpoint,
)
from robonav.policy.q_network import QNetwork


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

    (tmp_path / "evil.pt").write_bytes(pickle.dumps(Evil(), protocol=2))
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="no such checkpoint file"):
        load_checkpoint(tmp_path / "missing.pt")


def _q_checkpoint(path, seed: int, meta: dict | None = None):
    torch.manual_seed(seed)
    net = QNetwork(5, PolicyConfig(encoder=(8,), hidden=4))
    net.normalizer.update(torch.arange(15.0).reshape(3, 5))  # frozen statistics, the same in every checkpoint
    torch.manual_seed(seed)
    return net, save_checkpoint(path, net.state_dict(), {"algo": "r2d2", "obs_dim": 5, "global_step": seed,
                                                         "torch_rng": [seed], **(meta or {})})


def test_average_is_the_mean_of_the_weights_by_hand(tmp_path):
    nets, paths = zip(*[_q_checkpoint(tmp_path / f"chunk-{i}.pt", i) for i in (1, 2, 3)])
    out = average_checkpoints(paths, tmp_path / "avg.pt")
    ck = load_checkpoint(out)
    w = [n.state_dict() for n in nets]
    name = next(k for k in w[0] if k.endswith("weight") and not k.startswith("normalizer"))
    torch.testing.assert_close(ck["model"][name], (w[0][name] + w[1][name] + w[2][name]) / 3)
    torch.testing.assert_close(ck["model"]["normalizer.mean"], w[0]["normalizer.mean"], rtol=0, atol=0)
    assert ck["meta"]["global_step"] == 3 and ck["meta"]["release"] is True and "torch_rng" not in ck["meta"]
    assert [a["sha256"] for a in ck["meta"]["averaged_from"]] == [file_hash(p) for p in paths]
    single = load_checkpoint(average_checkpoints(paths[:1], tmp_path / "one.pt"))["model"]
    assert all(torch.equal(single[k], v) for k, v in w[0].items())  # one checkpoint: its own weights


def test_average_refuses_checkpoints_of_different_runs(tmp_path):
    _, a = _q_checkpoint(tmp_path / "a.pt", 1)
    _, b = _q_checkpoint(tmp_path / "b.pt", 2, {"obs_dim": 6})
    with pytest.raises(CheckpointError, match=r"b.pt: its obs_dim differ from .*a.pt's"):
        average_checkpoints([a, b], tmp_path / "avg.pt")
    net, c = _q_checkpoint(tmp_path / "c.pt", 3)
    net.normalizer.update(torch.ones(2, 5))  # still updating (PPO's normaliser): no average describes an input
    save_checkpoint(c, net.state_dict(), load_checkpoint(c)["meta"])
    with pytest.raises(CheckpointError, match="observation normaliser must be frozen"):
        average_checkpoints([a, c], tmp_path / "avg.pt")
