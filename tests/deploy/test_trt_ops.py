"""The TensorRT 10.3 ONNX-parser list: pinned entries, and a check that names every problem of a bad model."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from robonav.deploy.trt_ops import OPSET_MAX, SUPPORTED, TrtCompatibilityError, check_trt_compatible, trt_issues


def test_pinned_entries_of_the_support_matrix():
    assert OPSET_MAX == 20
    assert SUPPORTED["MatMul"] == SUPPORTED["Gemm"] == {"FLOAT", "FLOAT16", "BFLOAT16"}  # INT8 only through Q/DQ
    assert SUPPORTED["DequantizeLinear"] == {"INT8"}
    assert "INT32" in SUPPORTED["Add"] and "BOOL" in SUPPORTED["Gather"]
    assert {"LSTM", "Elu", "Clip", "Split", "Unsqueeze", "QuantizeLinear", "Cast"} <= set(SUPPORTED)
    for unsupported in ("Unique", "Det", "MatMulInteger", "QLinearMatMul", "DynamicQuantizeLinear", "StringNormalizer"):
        assert unsupported not in SUPPORTED


def _bad_model() -> onnx.ModelProto:
    """Four things TensorRT 10.3 refuses: an unsupported op, uint8 QDQ with zero point 128, a custom-domain op,
    and opset 21."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    u = helper.make_tensor_value_info("u", TensorProto.FLOAT, [None])
    inits = [numpy_helper.from_array(np.array(0.1, np.float32), "s"),
             numpy_helper.from_array(np.array(128, np.uint8), "zp")]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "s", "zp"], ["q"], name="quant"),
        helper.make_node("DequantizeLinear", ["q", "s", "zp"], ["y"], name="dequant"),
        helper.make_node("Unique", ["x"], ["u"], name="unique"),
        helper.make_node("FusedGemm", ["x", "x"], ["f"], name="fused", domain="com.microsoft"),
    ]
    graph = helper.make_graph(nodes, "bad", [x], [y, u], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21), helper.make_opsetid("com.microsoft",
                                                                                                       1)])


def test_every_problem_is_named():
    issues = trt_issues(_bad_model())
    text = "\n".join(issues)
    assert "opset 21 outside 9..20" in text
    assert "operator domain 'com.microsoft'" in text and "custom-domain operator com.microsoft.FusedGemm" in text
    assert "node 'unique' (Unique): operator Unique is not supported" in text
    assert "node 'quant' (QuantizeLinear): output data type UINT8 not supported" in text
    assert "node 'dequant' (DequantizeLinear): input data type UINT8 not supported" in text
    assert "zero point 'zp' must be 0, found values up to 128" in text
    with pytest.raises(TrtCompatibilityError, match=r"would not parse in TensorRT 10\.3 \(\d+ problem"):
        check_trt_compatible(_bad_model())


def test_non_constant_quantization_scale_is_named():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    s = helper.make_tensor_value_info("s", TensorProto.FLOAT, [])
    y = helper.make_tensor_value_info("y", TensorProto.INT8, [1, 4])
    graph = helper.make_graph([helper.make_node("QuantizeLinear", ["x", "s"], ["y"], name="q")], "g", [x, s], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])
    model.ir_version = 10
    assert trt_issues(model) == ["node 'q' (QuantizeLinear): input 1 ('s') must be a build-time constant"]


def test_the_exported_models_pass(exported, int8, fp16):
    for path in (exported.onnx, int8[0], fp16[0]):
        assert trt_issues(onnx.load(str(path))) == [], path
