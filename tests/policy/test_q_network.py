"""The Q-network: its deployment step is forward's greedy choice, its head is dueling, and it exports like PPO's."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from robonav.policy.actor_critic import PolicyConfig, _Body
from robonav.policy.q_network import DEFAULT_PRIMITIVES, QConfig, QConfigError, QNetwork
from robonav.policy.state import LstmState


def _model(q_cfg: QConfig | None = None, **kw) -> QNetwork:
    torch.manual_seed(0)
    m = QNetwork(7, PolicyConfig(encoder=(16,), hidden=8, **kw), q_cfg)
    with torch.no_grad():  # non-trivial normaliser statistics: they must be inside every form
        m.normalizer.mean.uniform_(-1, 1)
        m.normalizer.var.uniform_(0.5, 2)
    return m


def _random_state(m: QNetwork, batch: int) -> LstmState:
    s = m.initial_state(batch)
    return LstmState(torch.randn_like(s.h), torch.randn_like(s.c))


def test_default_primitives_are_the_documented_seven():
    assert QConfig().primitives == DEFAULT_PRIMITIVES
    assert len(DEFAULT_PRIMITIVES) == 7
    assert (0.5, 0.0) in DEFAULT_PRIMITIVES and (0.35, 0.0) in DEFAULT_PRIMITIVES and (-0.15, 0.0) in DEFAULT_PRIMITIVES
    assert {(0.35, 1.0), (0.35, -1.0), (0.0, 1.5), (0.0, -1.5)} <= set(DEFAULT_PRIMITIVES)


def test_it_reuses_the_actor_critics_body():
    m = _model()
    assert type(m.body) is _Body


@pytest.mark.parametrize("kw", [{}, {"layers": 2}, {"core": "mlp"}])
@pytest.mark.parametrize("dueling", [True, False])
def test_step_is_the_greedy_primitive_of_forward_from_nonzero_state(kw, dueling):
    m = _model(QConfig(dueling=dueling), **kw)
    with torch.no_grad():  # spread the initial Q values so the greedy choice varies along the sequence
        m.advantage_head.weight.mul_(20.0)
    t_len, batch = 9, 3
    obs = torch.randn(t_len, batch, 7)
    starts = torch.zeros(t_len, batch)
    starts[4, 1] = 1.0
    s0 = _random_state(m, batch)
    with torch.no_grad():
        q, s_seq = m(obs, s0, starts)
    assert q.shape == (t_len, batch, 7)
    greedy = m.primitives[q.argmax(-1)]  # [T, B, 2]
    chosen = set()
    for b in range(batch):
        h, c = s0.h[:, b:b + 1], s0.c[:, b:b + 1]
        for t in range(t_len):
            if starts[t, b]:
                h, c = torch.zeros_like(h), torch.zeros_like(c)
            with torch.no_grad():
                action, h, c = m.step(obs[t, b:b + 1], h, c)
            assert action.shape == (1, 2)
            torch.testing.assert_close(action[0], greedy[t, b], atol=0, rtol=0)
            chosen.add(int(q[t, b].argmax()))
        if m.cfg.core == "lstm":
            torch.testing.assert_close(h, s_seq.h[:, b:b + 1], atol=1e-6, rtol=0)
            torch.testing.assert_close(c, s_seq.c[:, b:b + 1], atol=1e-6, rtol=0)
    assert len(chosen) > 1, "the sequence should exercise more than one primitive (else the test is weak)"


def test_dueling_head_is_value_plus_centred_advantage():
    m = _model()
    feat = torch.randn(5, 8)
    adv = m.advantage_head(feat)
    assert m.value_head is not None
    value = m.value_head(feat)
    q = m.head(feat)
    torch.testing.assert_close(q.mean(-1, keepdim=True), value, atol=1e-6, rtol=0)
    torch.testing.assert_close(q - value, adv - adv.mean(-1, keepdim=True), atol=1e-6, rtol=0)


def test_episode_start_resets_the_state_in_forward():
    m = _model()
    obs = torch.randn(8, 1, 7)
    starts = torch.zeros(8, 1)
    starts[5, 0] = 1.0
    with torch.no_grad():
        q, _ = m(obs, _random_state(m, 1), starts)
        fresh, _ = m(obs[5:], m.initial_state(1), torch.zeros(3, 1))
    torch.testing.assert_close(q[5:], fresh, atol=1e-6, rtol=0)


def test_config_errors_say_what_to_do():
    with pytest.raises(QConfigError, match="at least 2"):
        QConfig(primitives=((0.5, 0.0),))
    with pytest.raises(QConfigError, match=r"primitives\[1\] must be a \(v, omega\) pair"):
        QConfig(primitives=((0.5, 0.0), (0.1,)))  # type: ignore[arg-type]
    with pytest.raises(QConfigError, match="separate_critic=false"):
        QNetwork(7, PolicyConfig(separate_critic=True))


def test_step_exports_to_onnx_and_matches_onnx_runtime(tmp_path):
    """The step traces to the docs/design.md step graph (ArgMax + Gather, no LSTM op) and ORT agrees over a sequence."""
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    import contextlib
    import io
    import warnings

    from robonav.deploy.trt_ops import check_trt_compatible

    m = _model(layers=2).eval()

    class Step(torch.nn.Module):
        def __init__(self, q: QNetwork) -> None:
            super().__init__()
            self.q = q

        def forward(self, obs, h, c):
            return self.q.step(obs, h, c)

    shape = (2, 1, 8)
    path = tmp_path / "q.onnx"
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(Step(m), (torch.zeros(1, 7), torch.zeros(shape), torch.zeros(shape)), str(path),
                          input_names=["obs", "h_in", "c_in"], output_names=["action", "h_out", "c_out"],
                          opset_version=20, dynamo=True, external_data=False)
    model = onnx.load(str(path))
    ops = {n.op_type for n in model.graph.node}
    assert "ArgMax" in ops and "LSTM" not in ops
    check_trt_compatible(model)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    h = c = np.zeros(shape, np.float32)
    ht, ct = torch.zeros(shape), torch.zeros(shape)
    for _ in range(50):
        obs = rng.normal(size=(1, 7)).astype(np.float32)
        a, h, c = sess.run(None, {"obs": obs, "h_in": h, "c_in": c})
        with torch.no_grad():
            at, ht, ct = m.step(torch.from_numpy(obs), ht, ct)
        np.testing.assert_array_equal(a, at.numpy())
        np.testing.assert_allclose(h, ht.numpy(), atol=1e-5)
