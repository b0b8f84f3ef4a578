"""Quantization: the INT8 QDQ contract, FP16 weight share, validation-only calibration, and closed-loop judging."""

from __future__ import annotations

import dataclasses

import numpy as np
import onnx
import pytest
from onnx import TensorProto, numpy_helper

from robonav.deploy.parity import backend_actions, judge
from robonav.deploy.quantize import (
    CalibrationSplitError,
    QuantizeError,
    calibration_feeds,
    check_calibration_suite,
    check_validation_episodes,
    quantize_fp16,
    quantize_int8,
    recurrent_matmuls,
)
from robonav.deploy.trt_ops import qdq_issues
from robonav.eval.episodes import make_episodes
from robonav.model.sidecar import read_sidecar
from robonav.runtime.backends.onnx_backend import OnnxBackend


def _graph(path):
    model = onnx.load(str(path))
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    kinds = {i.name: i.data_type for i in model.graph.initializer}
    producer = {o: n for n in model.graph.node for o in n.output}
    return model, inits, kinds, producer


def test_int8_has_qdq_around_every_matmul_with_int8_per_channel_weights(int8):
    model, inits, kinds, producer = _graph(int8[0])
    assert int8[1].extra["matmul_outputs"] == "int8" and int8[1].extra["recurrent"] == "int8"
    matmuls = [n for n in model.graph.node if n.op_type in ("MatMul", "Gemm")]
    assert len(matmuls) == 4  # encoder, x @ W_ih, h @ W_hh, action head
    for node in matmuls:
        act, weight = producer[node.input[0]], producer[node.input[1]]
        assert act.op_type == weight.op_type == "DequantizeLinear", node.name
        assert producer[act.input[0]].op_type == "QuantizeLinear"        # activation: Q then DQ
        assert kinds[weight.input[0]] == TensorProto.INT8                  # weight: an int8 initializer
        w = inits[weight.input[0]]
        trans_b = any(a.name == "transB" and a.i == 1 for a in node.attribute)
        out_axis = 0 if trans_b else 1
        axis = next(a.i for a in weight.attribute if a.name == "axis")
        assert axis == out_axis and inits[weight.input[1]].shape == (w.shape[out_axis],), node.name
        assert np.abs(w).max() == 127                                     # symmetric: the largest weight is +-127
        assert inits[act.input[1]].shape == ()                             # activations per tensor
    for node in model.graph.node:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            assert kinds[node.input[2]] == TensorProto.INT8 and not inits[node.input[2]].any(), node.name
    assert qdq_issues(model) == []
    assert not any(kinds[n.input[2]] == TensorProto.INT32 for n in model.graph.node if n.op_type == "DequantizeLinear")


def test_int8_quantizes_only_around_matmuls_and_keeps_gates_and_state_float(int8):
    model, _, _, producer = _graph(int8[0])
    readers: dict[str, list] = {}
    for node in model.graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    for q in (n for n in model.graph.node if n.op_type == "QuantizeLinear"):
        dq_readers = [r for d in readers[q.output[0]] for r in readers[d.output[0]]]
        after_matmul = getattr(producer.get(q.input[0]), "op_type", None) in ("MatMul", "Gemm")
        assert after_matmul or all(r.op_type in ("MatMul", "Gemm") for r in dq_readers), q.name
    for node in model.graph.node:
        if node.op_type in ("Sigmoid", "Tanh", "Mul", "Split", "Unsqueeze"):  # gates, cell state, h_out, c_out
            assert all(producer.get(i) is None or producer[i].op_type != "DequantizeLinear" for i in node.input), \
                node.name
    assert "c_in" not in {n.input[0] for n in model.graph.node if n.op_type == "QuantizeLinear"}


def test_qdq_issues_bites_on_a_nonzero_zero_point(int8, tmp_path):
    model = onnx.load(str(int8[0]))
    zp = next(i for i in model.graph.initializer if i.name.endswith("zero_point") and i.data_type == TensorProto.INT8)
    zp.CopyFrom(numpy_helper.from_array(np.ones(numpy_helper.to_array(zp).shape, np.int8), zp.name))
    assert any("zero point must be an int8 initializer of zeros" in s for s in qdq_issues(model))


def test_int8_interface_metadata_size_and_accuracy(exported, int8, recording, fp32_actions):
    path, sidecar = int8
    assert read_sidecar(path).precision == "int8" and sidecar.inputs == exported.meta.inputs
    assert sidecar.head == exported.meta.head == "gaussian" and sidecar.weights_sha256 == ""  # no .npz beside it
    assert sidecar.extra["calibration"]["suite"] == "val-3x3" and sidecar.extra["source"]["sha256"] == \
        exported.meta.model_sha256
    assert path.stat().st_size < exported.bytes
    with OnnxBackend(path) as backend:  # loads with every check, runs through the recorded resets
        actions = backend_actions(backend, recording)
    err = np.abs(actions - fp32_actions).max(axis=0)
    assert np.all(err < 0.25 * np.array([0.5, 2.0])), err  # near FP32 (untrained weights: loose)
    assert np.abs(actions - fp32_actions).max() > 0         # but really quantized


def test_recurrent_float_keeps_h_at_w_hh_in_float(exported, calibration, helpers, tmp_path):
    src = tmp_path / exported.onnx.name
    src.write_bytes(exported.onnx.read_bytes())
    (tmp_path / exported.sidecar.name).write_bytes(exported.sidecar.read_bytes())
    recurrent = recurrent_matmuls(onnx.load(str(src)))
    assert len(recurrent) == 1
    out = tmp_path / "rf.onnx"
    config = helpers.quant_config(recurrent="float", outputs="float", calibration="percentile")
    sidecar, _ = quantize_int8(src, out, config, calibration)
    model, _, kinds, producer = _graph(out)
    node = next(n for n in model.graph.node if n.name == recurrent[0])
    assert node.input[1] not in producer and kinds[node.input[1]] == TensorProto.FLOAT  # W_hh: a float initializer
    assert producer[node.input[0]].op_type != "DequantizeLinear"                         # h: not quantized
    assert sidecar.extra["float_matmuls"] == recurrent and qdq_issues(model, tuple(recurrent)) == []
    matmul_outputs = {o for n in model.graph.node if n.op_type in ("MatMul", "Gemm") for o in n.output}
    assert not any(n.input[0] in matmul_outputs for n in model.graph.node if n.op_type == "QuantizeLinear")


def test_fp16_holds_most_weight_bytes_in_half_and_float32_io(exported, fp16, recording, fp32_actions):
    path, sidecar = fp16
    model, inits, kinds, _ = _graph(path)
    half = sum(v.nbytes for k, v in inits.items() if kinds[k] == TensorProto.FLOAT16)
    full = sum(v.nbytes for k, v in inits.items() if kinds[k] == TensorProto.FLOAT)
    assert half / (half + full) >= 0.9, (half, full)
    assert sidecar.inputs == exported.meta.inputs and sidecar.precision == "fp16"
    sub = next(n for n in model.graph.node if "obs" in n.input)
    assert sub.op_type == "Sub" and kinds[sub.input[1]] == TensorProto.FLOAT  # normaliser reads obs in float32
    with OnnxBackend(path) as backend:
        actions = backend_actions(backend, recording)
    assert 0 < np.abs(actions - fp32_actions).max() < 0.02


@pytest.mark.parametrize("suite, why", [
    ("test", "split 'test'"), ("test-9x9", "split 'test'"), ("train-5x5", "split 'train'"),
    ("hand", "a maze file, folder or hand-drawn suite"), ("nonsense", "a maze file"),
])
def test_calibration_refuses_all_but_validation_mazes(suite, why):
    with pytest.raises(CalibrationSplitError, match=f"calibration suite '{suite}' is {why}.*validation-split"):
        check_calibration_suite(suite)


def test_calibration_accepts_validation_suites_and_checks_each_maze():
    for suite in ("val", "val-5x5", "val-7x7-rooms"):
        check_calibration_suite(suite)
    check_validation_episodes(make_episodes("val-3x3", 3))
    with pytest.raises(CalibrationSplitError, match=r"episode 0 is on maze 'perfect-3x3-s2000000'"):
        check_validation_episodes(make_episodes("test-3x3", 1))


def test_quantize_refuses_test_mazes_before_recording(exported, helpers, tmp_path):
    with pytest.raises(CalibrationSplitError):
        quantize_int8(exported.onnx, tmp_path / "x.onnx", helpers.quant_config(calib_suite="test"))
    assert not (tmp_path / "x.onnx").exists()


def test_quantize_starts_from_fp32_only(int8, tmp_path):
    with pytest.raises(QuantizeError, match="starts from the FP32 export, this model is int8"):
        quantize_fp16(int8[0], tmp_path / "x.onnx")


def test_calibration_feeds_replay_the_states(exported, calibration):
    feeds = calibration_feeds(exported.onnx, calibration, 10**6)
    assert len(feeds) == calibration.steps
    starts = np.cumsum([0] + [len(s) for s in calibration.segments[:-1]])
    assert all(not feeds[t]["h_in"].any() for t in starts)              # zero state where an episode starts
    assert np.abs(feeds[int(starts[0]) + 5]["h_in"]).max() > 0           # the state the policy reaches
    assert len(calibration_feeds(exported.onnx, calibration, 100)) == 100


def test_percentile_and_entropy_clip_tighter_than_minmax(exported, calibration, helpers, tmp_path, int8):
    src = tmp_path / exported.onnx.name
    src.write_bytes(exported.onnx.read_bytes())
    (tmp_path / exported.sidecar.name).write_bytes(exported.sidecar.read_bytes())

    def scales(path):
        _, inits, _, _ = _graph(path)
        return {k: float(v) for k, v in inits.items() if k.endswith("_scale") and v.shape == ()}

    minmax = scales(int8[0])
    for method in ("percentile", "entropy"):  # 99.9: a few hundred steps hold too few samples for 99.999
        config = helpers.quant_config(calibration=method, percentile=99.9)
        quantize_int8(src, tmp_path / f"{method}.onnx", config, calibration)
        other = scales(tmp_path / f"{method}.onnx")
        assert other.keys() == minmax.keys()
        assert all(other[k] <= minmax[k] * 1.0001 for k in other), method
        assert any(other[k] < 0.99 * minmax[k] for k in other), method


def test_quantized_model_is_judged_in_closed_loop_through_the_eval_path(exported, int8, capsys):
    from robonav import cli

    episodes = make_episodes("val-3x3", 2, seed=5)
    result = judge(exported.onnx, int8[0], episodes, num_envs=2)
    assert result["episodes"] == 2 and result["precision"] == "int8" and result["steps"] > 0
    assert 0 <= result["success_quantized"] <= 1 and 0 <= result["action_deviation_rate"] <= 1
    assert result["size_ratio"] < 1 and result["flips"] == result["flips"]
    # robonav eval --policy X.int8.onnx runs the same runner with the same factory
    from robonav.eval.policies import resolve_policy

    resolved = resolve_policy(str(int8[0]))
    factory, config = resolved.factory, resolved.sim_config
    assert type(factory(1)).__name__ == "OnnxPolicy" and config.latency_ticks == 1
    assert cli.main(["eval", "--policy", str(int8[0]), "--mazes", "val-3x3", "--episodes", "2", "--seed", "5",
                     "--envs", "2", "--json"]) == 0
    import json

    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["success_rate"] == result["success_quantized"]
    assert dataclasses.is_dataclass(config)
