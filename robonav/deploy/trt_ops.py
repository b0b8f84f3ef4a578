"""What TensorRT 10.3's ONNX parser accepts, kept in the repo, and a check that names everything it would refuse.

No TensorRT runs on the machines that export and quantize, so a model is checked here against the parser's
published support matrix before it travels to a Jetson (JetPack 6.1/6.2 ship TensorRT 10.3).

Source: onnx/onnx-tensorrt ``docs/operators.md`` ("Operator Support Matrix"), the ONNX parser's own list.
- https://github.com/onnx/onnx-tensorrt/blob/main/docs/operators.md (TensorRT 10.15, opset 9 to 24), and
- https://github.com/onnx/onnx-tensorrt/blob/6d0ab7be324d02c7feb3a306b6fdbeae84f71ddc/docs/operators.md
  (TensorRT 8.5), with
- https://github.com/onnx/onnx-tensorrt/blob/main/CHANGELOG.md for the 10.0 to 10.15 changes: 10.0 "supports
  operators in the inclusive range of opset 9 to opset 20" and treats INT8/INT4/FP8 as quantized types reachable
  only through Q/DQ; 10.1 added DeformConv, 10.3 tensor ``axes`` for Slice, 10.4 the window ops, 10.5 STFT, 10.6
  moved to ONNX 1.17 (newer opsets).
The release/10.3 text itself was not in the archive this was built from, so `SUPPORTED` holds the operators that
both the 8.5 and the 10.15 matrices mark supported (an operator supported before and after 10.3 was supported
in it), each with the 10.x data types of its main input/output. That errs toward refusing: a model this check
passes uses nothing newer than 10.3. Opset range and IR version follow 10.0 to 10.5 (opset <= 20, IR <= 10).

`qdq_issues` checks the explicit-quantization form TensorRT builds INT8 engines from (docs/design.md "INT8").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from robonav.errors import UserError

__all__ = ["IR_MAX", "OPSET_MAX", "OPSET_MIN", "SUPPORTED", "TRT_VERSION", "TrtCompatibilityError",
           "check_trt_compatible", "qdq_issues", "trt_issues"]

TRT_VERSION = "10.3"
OPSET_MIN, OPSET_MAX = 9, 20
IR_MAX = 10

_F = frozenset({"FLOAT", "FLOAT16", "BFLOAT16"})
_FI = _F | {"INT32", "INT64"}
_FIB = _FI | {"BOOL"}
_B = frozenset({"BOOL"})
_F2 = frozenset({"FLOAT", "FLOAT16"})


def _ops(types: frozenset[str], names: str) -> dict[str, frozenset[str]]:
    return {n: types for n in names.split()}


SUPPORTED: dict[str, frozenset[str]] = {
    **_ops(_F, "Acos Acosh Asin Asinh Atan Atanh AveragePool BatchNormalization Ceil Celu Clip Conv ConvTranspose "
               "Cos Cosh CumSum Dropout Einsum Elu Erf Exp Floor Gemm GlobalAveragePool GlobalLpPool GlobalMaxPool "
               "GRU HardSigmoid HardSwish ImageScaler InstanceNormalization LeakyRelu Log LogSoftmax LRN LSTM "
               "LpNormalization LpPool MatMul MaxPool MeanVarianceNormalization ParametricSoftplus PRelu "
               "RandomNormal RandomNormalLike RandomUniform RandomUniformLike Reciprocal Resize RNN Round ScaledTanh "
               "Scan Selu Sigmoid Sin Sinh Softmax Softplus Softsign Sqrt Tan Tanh ThresholdedRelu Upsample "
               "QuantizeLinear"),
    **_ops(_FI, "Abs Add ArgMax ArgMin DepthToSpace Div Equal Greater GreaterOrEqual IsNaN Less LessOrEqual Max Mean "
                "Min Mod Mul Neg Pad Pow Range ReduceL1 ReduceL2 ReduceLogSum ReduceLogSumExp ReduceMax ReduceMean "
                "ReduceMin ReduceProd ReduceSum ReduceSumSquare Relu Scatter ScatterElements ScatterND Shrink Sign "
                "SpaceToDepth Sub Sum TopK"),
    **_ops(_FIB, "Concat Constant ConstantOfShape Expand EyeLike Flatten Gather GatherElements GatherND Identity If "
                 "Loop OneHot Reshape ReverseSequence Shape Size Slice Split Squeeze Tile Transpose Trilu Unsqueeze "
                 "Where"),
    **_ops(_B, "And Not Or Xor"),
    **_ops(_F2, "GridSample NonMaxSuppression NonZero RoiAlign"),
    "Cast": _FI | {"UINT8", "BOOL"},
    "DequantizeLinear": frozenset({"INT8"}),
}
"""op type -> ONNX data types (TensorProto names) of its main input and output that the parser takes. For
QuantizeLinear the set is its float input (its output must be INT8); for DequantizeLinear its quantized input."""

_GRAPH_TYPES = _FIB | {"INT8", "UINT8", "DOUBLE"}
"""Data types any tensor may have (DOUBLE is cast down with clamping; UINT8 only at the network's I/O)."""

_CONSTANT_INPUTS = {"QuantizeLinear": (1, 2), "DequantizeLinear": (1, 2), "Squeeze": (1,), "Unsqueeze": (1,),
                    "TopK": (1,), "CumSum": (1,), **{f"Reduce{r}": (1,) for r in (
                        "L1", "L2", "LogSum", "LogSumExp", "Max", "Mean", "Min", "Prod", "Sum", "SumSquare")}}
"""Inputs the parser needs as build-time constants (initializers or Constant outputs)."""


class TrtCompatibilityError(UserError, ValueError):
    """A model with operators, data types, opset or IR version that TensorRT 10.3's ONNX parser refuses."""


@dataclass(frozen=True)
class _Graph:
    dtypes: dict[str, str]
    constants: dict[str, Any]


def _graph_facts(model: Any) -> _Graph:
    import onnx
    from onnx import numpy_helper

    inferred = onnx.shape_inference.infer_shapes(model)
    g = inferred.graph
    name_of = onnx.TensorProto.DataType.Name
    dtypes: dict[str, str] = {}
    for vi in [*g.input, *g.output, *g.value_info]:
        if vi.type.HasField("tensor_type"):
            dtypes[vi.name] = name_of(vi.type.tensor_type.elem_type)
    constants: dict[str, Any] = {}
    for init in g.initializer:
        dtypes[init.name] = name_of(init.data_type)
        constants[init.name] = numpy_helper.to_array(init)
    for node in g.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    dtypes[node.output[0]] = name_of(attr.t.data_type)
                    constants[node.output[0]] = numpy_helper.to_array(attr.t)
    return _Graph(dtypes, constants)


def trt_issues(model: Any) -> list[str]:
    """Everything in ``model`` (an onnx.ModelProto) that TensorRT 10.3's ONNX parser would refuse, one line each."""
    issues: list[str] = []
    if model.ir_version > IR_MAX:
        issues.append(f"IR version {model.ir_version} > {IR_MAX}")
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx"):
            if not OPSET_MIN <= imp.version <= OPSET_MAX:
                issues.append(f"opset {imp.version} outside {OPSET_MIN}..{OPSET_MAX}")
        else:
            issues.append(f"operator domain {imp.domain!r} (version {imp.version}): only the default domain parses")
    facts = _graph_facts(model)
    for name, dtype in sorted(facts.dtypes.items()):
        if dtype not in _GRAPH_TYPES:
            issues.append(f"tensor {name!r} has data type {dtype}")
    for node in model.graph.node:
        where = f"node {node.name or '?'!r} ({node.op_type})"
        if node.domain not in ("", "ai.onnx"):
            issues.append(f"{where}: custom-domain operator {node.domain}.{node.op_type}")
            continue
        allowed = SUPPORTED.get(node.op_type)
        if allowed is None:
            issues.append(f"{where}: operator {node.op_type} is not supported")
            continue
        issues += _node_dtype_issues(node, where, allowed, facts)
        for k in _CONSTANT_INPUTS.get(node.op_type, ()):
            if k < len(node.input) and node.input[k] and node.input[k] not in facts.constants:
                issues.append(f"{where}: input {k} ({node.input[k]!r}) must be a build-time constant")
        if node.op_type in ("QuantizeLinear", "DequantizeLinear") and len(node.input) > 2 and node.input[2]:
            zp = facts.constants.get(node.input[2])
            if zp is not None and (zp != 0).any():
                issues.append(f"{where}: zero point {node.input[2]!r} must be 0, found values up to "
                              f"{int(abs(zp).max())}")
    return issues


def _node_dtype_issues(node: Any, where: str, allowed: frozenset[str], facts: _Graph) -> list[str]:
    dt = facts.dtypes
    first_in = dt.get(node.input[0]) if node.input and node.input[0] else None
    first_out = dt.get(node.output[0]) if node.output else None
    found: list[str] = []
    if node.op_type == "QuantizeLinear":
        pairs = [("input", first_in, allowed), ("output", first_out, frozenset({"INT8"}))]
    elif node.op_type == "DequantizeLinear":
        pairs = [("input", first_in, allowed), ("output", first_out, _F)]
    else:
        pairs = [("input", first_in, allowed), ("output", first_out, allowed)]
    for what, dtype, ok in pairs:
        if dtype is not None and dtype not in ok:
            found.append(f"{where}: {what} data type {dtype} not supported (supported: {', '.join(sorted(ok))})")
    return found


def check_trt_compatible(model: Any) -> None:
    """Raise TrtCompatibilityError naming every operator, data type, opset or IR problem TensorRT 10.3 refuses."""
    issues = trt_issues(model)
    if issues:
        raise TrtCompatibilityError(
            f"the model would not parse in TensorRT {TRT_VERSION} ({len(issues)} problem(s)):\n  "
            + "\n  ".join(issues)
            + "\nexport with opset <= 20 and keep to the operators in robonav/deploy/trt_ops.py; quantize with "
              "signed int8, zero point 0 (robonav quantize does)")


def qdq_issues(model: Any, float_nodes: tuple[str, ...] = ()) -> list[str]:
    """What breaks docs/design.md's INT8 contract: a MatMul/Gemm (not in ``float_nodes``) whose activation or weight
    input does not come from a DequantizeLinear, a weight that is not an int8 initializer, a non-zero zero point,
    or a per-channel scale whose length is not the weight's output channels."""
    from onnx import TensorProto, numpy_helper

    inits = {i.name: i for i in model.graph.initializer}
    producer = {o: n for n in model.graph.node for o in n.output}
    issues = []
    for node in model.graph.node:
        if node.op_type not in ("MatMul", "Gemm") or node.name in float_nodes:
            continue
        trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0) if node.op_type == "Gemm" else 0
        for k in (0, 1):
            dq = producer.get(node.input[k])
            if dq is None or dq.op_type != "DequantizeLinear":
                issues.append(f"{node.name}: input {k} ({node.input[k]}) is not dequantized from int8")
                continue
            zero_point = inits.get(dq.input[2]) if len(dq.input) > 2 else None
            if zero_point is None or zero_point.data_type != TensorProto.INT8 or numpy_helper.to_array(
                    zero_point).any():
                issues.append(f"{node.name}: input {k} zero point must be an int8 initializer of zeros")
            if k == 1:
                weight = inits.get(dq.input[0])
                if weight is None or weight.data_type != TensorProto.INT8:
                    issues.append(f"{node.name}: weight {dq.input[0]} is not an int8 initializer")
                    continue
                out_axis = 0 if trans_b else 1  # Gemm transB=1: W [N, K]; MatMul: W [K, N]
                axis = next((a.i for a in dq.attribute if a.name == "axis"), 1)
                scale = numpy_helper.to_array(inits[dq.input[1]]) if dq.input[1] in inits else None
                channels = weight.dims[out_axis]
                if scale is None or scale.size != channels or axis != out_axis:
                    issues.append(f"{node.name}: weight scale must be per output channel ({channels} on axis "
                                  f"{out_axis}), found {None if scale is None else scale.size} on axis {axis}")
    return issues
