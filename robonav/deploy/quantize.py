"""FP16 and INT8 (QDQ) versions of an exported step model, in the form TensorRT consumes, with their sidecars.

- FP16 (`quantize_fp16`): weights and activations in half precision, inputs and outputs kept float32 (the
  runtime's interface does not change) and the input normalisation kept float32 (a feature with a small spread
  is divided by a small std: half precision would amplify its rounding by that much).
- INT8 (`quantize_int8`): explicit quantization, QuantizeLinear/DequantizeLinear pairs around every MatMul/Gemm
  (docs/design.md "INT8": signed int8, symmetric, zero point 0, per-channel weight scales on the output axis, float
  biases); element-wise gates, the cell state, h_out/c_out and the normaliser stay float, as TensorRT runs
  whatever has no Q/DQ. Activation ranges come from observations recorded in simulator rollouts of the FP32
  model itself on validation-split mazes only (`check_calibration_suite` refuses anything else: test mazes judge
  the model, train mazes taught it), replayed with the state fed back so calibration sees the states the policy
  reaches; min-max, percentile or entropy calibration.
  Defaults, as measured on the default policy (200 paired 7x7 test episodes, FP32 success 0.975): quantizing the
  recurrent matmul too (``recurrent="int8"``: 0.975, 27 % of the FP32 file) is within the noise of keeping it
  float (``"float"``: 0.980, 38 %), so it is quantized; MatMul/Gemm outputs get a Q/DQ pair as well
  (``outputs="int8"``, same success as without) because only then do ONNX Runtime's CPU kernels run int8
  (43 us a step against 318 us, which dequantizes every weight every step).

robonav.deploy.parity.judge then measures the quantized model against FP32 in closed loop on paired episodes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from robonav.atomic import atomic_path
from robonav.deploy.parity import Recording, record_episodes, sim_config
from robonav.deploy.trt_ops import qdq_issues
from robonav.errors import RobonavError, UserError
from robonav.model.sidecar import OUTPUT_NAMES, ModelSidecar, file_sha256, read_sidecar, write_sidecar
from robonav.sim.episodes import EpisodeSpec

__all__ = ["CALIBRATION_METHODS", "CalibrationSplitError", "QuantizeConfig", "QuantizeError",
           "calibration_episodes", "calibration_feeds", "check_calibration_suite", "check_validation_episodes",
           "quantize_fp16", "quantize_int8", "quantize_int8_from_feeds", "recurrent_matmuls", "to_float16"]

CALIBRATION_METHODS = ("minmax", "percentile", "entropy")
_MATMULS = ("MatMul", "Gemm")
_GENERATED_NAME = re.compile(r"^[a-z]+-\d+x\d+-s(\d+)(?:-|$)")


class CalibrationSplitError(UserError, ValueError):
    """Calibration asked for mazes outside the validation split (test mazes would leak into the judgement)."""


class QuantizeError(RobonavError, RuntimeError):
    """A quantized model that breaks what docs/design.md's INT8 contract or the step-model contract require."""


@dataclass(frozen=True)
class QuantizeConfig:
    """INT8 calibration and placement settings."""

    calibration: str = "minmax"
    """Activation range method: 'minmax', 'percentile' or 'entropy'."""
    percentile: float = 99.999
    """Percentile of |activation| kept by 'percentile' calibration."""
    calib_suite: str = "val"
    """Maze suite of the calibration rollouts: a validation split suite (val, val-5x5, val-7x7-rooms, ...)."""
    calib_episodes: int = 16
    """Episodes rolled out for calibration."""
    calib_seed: int = 0
    """Seed of the calibration episode list."""
    calib_samples: int = 2048
    """Control steps (drawn evenly from the rollouts) fed to the calibrator."""
    recurrent: str = "int8"
    """'int8': quantize every MatMul/Gemm; 'float': keep the recurrent matmul (h @ W_hh) in float."""
    outputs: str = "int8"
    """MatMul/Gemm outputs: 'float' (Q/DQ on their inputs only) or 'int8' (a Q/DQ pair on each output too: ONNX
    Runtime's CPU kernels then fuse QGemm/QLinearMatMul and run in int8; TensorRT fuses either form)."""
    num_envs: int = 8
    """Episodes run side by side while recording."""

    def __post_init__(self) -> None:
        if self.calibration not in CALIBRATION_METHODS:
            raise ValueError(f"calibration must be one of {CALIBRATION_METHODS}, got {self.calibration!r}")
        for name in ("recurrent", "outputs"):
            if getattr(self, name) not in ("int8", "float"):
                raise ValueError(f"{name} must be 'int8' or 'float', got {getattr(self, name)!r}")
        if self.calib_episodes < 1 or self.calib_samples < 1:
            raise ValueError(f"calib_episodes and calib_samples must be >= 1, got {self.calib_episodes}, "
                             f"{self.calib_samples}")
        if not 50.0 < self.percentile <= 100.0:
            raise ValueError(f"percentile must be in (50, 100], got {self.percentile}")


# ------------------------------------------------------------------------------------------------ calibration
def check_calibration_suite(suite: str) -> None:
    """Refuse a calibration suite that is not a generated suite of the validation split."""
    from robonav.sim.suites import SuiteError, parse_suite

    try:
        split = parse_suite(suite).split
    except SuiteError:
        split = None
    if split != "val":
        found = f"split {split!r}" if split else "a maze file, folder or hand-drawn suite"
        raise CalibrationSplitError(
            f"calibration suite {suite!r} is {found}; calibration must use validation-split mazes only (test mazes "
            "judge the quantized model, train mazes are what it learnt on): use e.g. --calib-mazes val or val-5x5")


def check_validation_episodes(episodes: list[EpisodeSpec]) -> None:
    """Refuse any episode whose maze is not a generated maze with a validation-split seed (a second guard)."""
    from robonav.sim.suites import SPLIT_SIZE, SPLITS

    lo = SPLITS["val"]
    for k, ep in enumerate(episodes):
        match = _GENERATED_NAME.match(ep.maze.name)
        seed = int(match.group(1)) if match else None
        if seed is None or not lo <= seed < lo + SPLIT_SIZE:
            raise CalibrationSplitError(
                f"calibration episode {k} is on maze {ep.maze.name!r}, expected a generated maze with a validation "
                f"seed in [{lo}, {lo + SPLIT_SIZE}); calibrate on a val suite only")


def calibration_episodes(config: QuantizeConfig) -> list[EpisodeSpec]:
    """The calibration episodes of ``config``, after checking they are validation mazes."""
    from robonav.eval.episodes import make_episodes

    check_calibration_suite(config.calib_suite)
    episodes = make_episodes(config.calib_suite, config.calib_episodes, config.calib_seed)
    check_validation_episodes(episodes)
    return episodes


def calibration_feeds(model: str | os.PathLike[str], recording: Recording, samples: int) -> list[dict[str, Any]]:
    """Feeds {obs, h_in, c_in} for ``samples`` steps spread evenly over the recording, with the states the FP32
    model reaches when it replays the recorded episodes (state fed back, zeroed at every episode start)."""
    from robonav.runtime.backends.onnx_backend import load_session

    sidecar = read_sidecar(model)
    session = load_session(model, sidecar)
    obs, starts = recording.sequence()
    keep = set(np.linspace(0, len(obs) - 1, min(samples, len(obs))).round().astype(int).tolist())
    zero = np.zeros(sidecar.state_shape, np.float32)
    h, c = zero, zero
    feeds = []
    for t in range(len(obs)):
        if starts[t]:
            h, c = zero, zero
        feed = {"obs": obs[t : t + 1], "h_in": h, "c_in": c}
        if t in keep:
            feeds.append(feed)
        _, h, c = session.run(OUTPUT_NAMES, feed)
    return feeds


class _FeedReader:
    """onnxruntime.quantization CalibrationDataReader over a list of feeds (duck-typed: ``get_next``)."""

    def __init__(self, feeds: list[dict[str, Any]]) -> None:
        self.feeds = feeds
        self.index = 0

    def get_next(self) -> dict[str, Any] | None:
        if self.index >= len(self.feeds):
            return None
        self.index += 1
        return self.feeds[self.index - 1]


# --------------------------------------------------------------------------------------------- graph queries
def recurrent_matmuls(model: Any) -> list[str]:
    """Names of the MatMul/Gemm nodes fed by the recurrent input h_in (through shape-only ops): h @ W_hh."""
    passthrough = {"Gather", "Squeeze", "Unsqueeze", "Reshape", "Slice", "Identity", "Split"}
    reached, frontier, found = {"h_in"}, ["h_in"], []
    while frontier:
        tensor = frontier.pop()
        for node in model.graph.node:
            if tensor not in node.input:
                continue
            if node.op_type in _MATMULS:
                found.append(node.name)
            elif node.op_type in passthrough:
                for out in node.output:
                    if out not in reached:
                        reached.add(out)
                        frontier.append(out)
    return sorted(set(found))


# ------------------------------------------------------------------------------------------------ converters
def _finish(proto: Any, source: ModelSidecar, out: Path, precision: str, extra: dict[str, Any]) -> ModelSidecar:
    """Stamp, check (onnx.checker, I/O contract, TensorRT 10.3) and save ``proto`` with its sidecar."""
    import onnx

    from robonav.deploy.export import finish_model

    sidecar = replace(source, model_file=out.name, model_sha256="", weights_sha256="", precision=precision, extra={})
    proto = finish_model(proto, sidecar, source.model_file)
    with atomic_path(out) as tmp:
        onnx.save(proto, str(tmp))
    sidecar = replace(sidecar, model_sha256=file_sha256(out), opset=_opset(proto), ir_version=proto.ir_version)
    sidecar = sidecar.with_extra(source={"model": source.model_file, "sha256": source.model_sha256},
                                 parity_fp32=source.extra.get("parity"), **extra)
    write_sidecar(out, sidecar)
    return sidecar


def _opset(proto: Any) -> int:
    return next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))


def _normaliser_nodes(proto: Any) -> list[str]:
    """Nodes between the obs input and the first matmul: the observation normalisation."""
    names, frontier, seen = [], ["obs"], {"obs"}
    while frontier:
        tensor = frontier.pop()
        for node in proto.graph.node:
            if tensor in node.input and node.op_type not in _MATMULS and node.name not in names:
                names.append(node.name)
                for out in node.output:
                    if out not in seen:
                        seen.add(out)
                        frontier.append(out)
    return names


def _source(model: str | os.PathLike[str]) -> tuple[Path, ModelSidecar]:
    path = Path(model)
    sidecar = read_sidecar(path)
    if sidecar.precision != "fp32":
        raise QuantizeError(f"{path}: quantize starts from the FP32 export, this model is {sidecar.precision}")
    return path, sidecar


def to_float16(proto: Any, float32_nodes: list[str]) -> Any:
    """``proto`` with every float tensor and initializer in half precision, except the nodes ``float32_nodes``
    (and their constant inputs), with Casts where the two meet; graph inputs and outputs stay float32.

    Written here rather than onnxruntime.transformers.float16.convert_float_to_float16 because that converter,
    given a node block list, still rounds a kept node's inputs and constants through half precision (a Cast to
    float16 and straight back), which is what keeping the node float32 is meant to avoid.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    g = proto.graph
    inferred = onnx.shape_inference.infer_shapes(proto).graph
    floats = {v.name for v in [*inferred.input, *inferred.output, *inferred.value_info]
              if v.type.tensor_type.elem_type == TensorProto.FLOAT}
    floats |= {i.name for i in g.initializer if i.data_type == TensorProto.FLOAT}
    keep = set(float32_nodes)

    def wants(node: Any) -> int:
        return TensorProto.FLOAT if node.name in keep else TensorProto.FLOAT16

    made_in = {i.name: TensorProto.FLOAT for i in g.input}  # float tensor -> precision it is produced in
    for node in g.node:
        if node.op_type == "Cast":
            raise QuantizeError(f"FP16 conversion meets a Cast node {node.name!r}: convert an FP32 export only")
        made_in.update({out: wants(node) for out in node.output if out in floats})
        if node.op_type == "Constant" and wants(node) == TensorProto.FLOAT16:
            for attr in node.attribute:
                if attr.name == "value" and attr.t.data_type == TensorProto.FLOAT:
                    attr.t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(attr.t).astype(np.float16)))
    inits = []
    for init in g.initializer:  # half where only half nodes read it
        if init.data_type == TensorProto.FLOAT:
            if {wants(n) for n in g.node if init.name in n.input} == {TensorProto.FLOAT16}:
                init = numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16), init.name)
            made_in[init.name] = init.data_type
        inits.append(init)
    casts = []
    for out in [o.name for o in g.output]:  # a graph output made in half: made as <name>__fp16, cast to float32
        if made_in.get(out) == TensorProto.FLOAT16:
            half = f"{out}__fp16"
            for node in g.node:
                node.output[:] = [half if o == out else o for o in node.output]
                node.input[:] = [half if i == out else i for i in node.input]
            made_in[half], floats = TensorProto.FLOAT16, floats | {half}
            casts.append(helper.make_node("Cast", [half], [out], name=f"{out}__to_fp32", to=TensorProto.FLOAT))
    converted: dict[tuple[str, int], str] = {}
    for node in g.node:  # a float input produced in the other precision is read through one shared Cast
        for k, name in enumerate(node.input):
            if name not in floats or made_in.get(name, wants(node)) == wants(node):
                continue
            key = (name, wants(node))
            if key not in converted:
                converted[key] = f"{name}__to_{'fp32' if key[1] == TensorProto.FLOAT else 'fp16'}"
                casts.append(helper.make_node("Cast", [name], [converted[key]], name=converted[key], to=key[1]))
            node.input[k] = converted[key]
    g.node.extend(casts)
    del g.initializer[:]
    g.initializer.extend(inits)
    del g.value_info[:]
    _topological_sort(proto)
    return proto


def _topological_sort(proto: Any) -> None:
    """Order the nodes so every input is produced before it is read (ONNX requires it)."""
    pending = list(proto.graph.node)
    available = {i.name for i in proto.graph.input} | {i.name for i in proto.graph.initializer} | {""}
    ordered = []
    while pending:
        ready = [n for n in pending if all(i in available for i in n.input)]
        if not ready:
            raise QuantizeError(f"graph has a cycle or a missing input around {[n.name for n in pending][:5]}")
        for n in ready:
            ordered.append(n)
            available.update(n.output)
        pending = [n for n in pending if all(n is not r for r in ready)]
    del proto.graph.node[:]
    proto.graph.node.extend(ordered)


def quantize_fp16(model: str | os.PathLike[str], out: str | os.PathLike[str]) -> ModelSidecar:
    """Half-precision copy of an FP32 step model (float32 I/O and normaliser) at ``out``, with its sidecar."""
    import onnx

    src, source = _source(model)
    out = Path(out)
    proto = onnx.load(str(src))
    kept = _normaliser_nodes(proto)
    half = to_float16(proto, kept)
    return _finish(half, source, out, "fp16", {"fp16": {"float32_nodes": kept, "io": "float32"}})


def _float_readers(proto: Any) -> None:
    """Let every reader of a quantized activation other than a MatMul/Gemm read the float tensor again.

    The quantizer hands the dequantized tensor to all readers, so h_out (also read by the action head) would leave
    the step rounded to int8 and the recurrent state would carry the rounding even with ``recurrent="float"``.
    Q/DQ pairs after a MatMul/Gemm output (``outputs="int8"``) are left as they are.
    """
    producer = {o: n for n in proto.graph.node for o in n.output}
    for node in proto.graph.node:
        if node.op_type in _MATMULS:
            continue
        for k, name in enumerate(node.input):
            dq = producer.get(name)
            q = producer.get(dq.input[0]) if dq is not None and dq.op_type == "DequantizeLinear" else None
            if q is not None and q.op_type == "QuantizeLinear":
                source = producer.get(q.input[0])
                if source is None or source.op_type not in _MATMULS:
                    node.input[k] = q.input[0]


def _calibrate(model: Path, feeds: list[dict[str, Any]], config: QuantizeConfig, folder: Path
               ) -> dict[str, list[dict[str, Any]]]:
    """Activation ranges of the MatMul/Gemm tensors over ``feeds``, as onnxruntime TensorQuantOverrides.

    The calibrator is made here rather than inside quantize_static because quantize_static cannot set the
    histogram size: its entropy calibrator then gets as many histogram bins as quantized bins (128), has a single
    candidate threshold and returns the min-max range. Entropy here uses 2048 bins searched for the 128-bin
    quantization with the least KL divergence (TensorRT's method); percentile uses 2048 bins of |x|. The ranges
    go to quantize_static as per-tensor rmin/rmax overrides (onnxruntime >= 1.17).
    """
    from onnxruntime.quantization import CalibrationMethod
    from onnxruntime.quantization.calibrate import create_calibrator

    method = {"minmax": "MinMax", "percentile": "Percentile", "entropy": "Entropy"}[config.calibration]
    options = {"minmax": {"symmetric": True},
               "percentile": {"symmetric": True, "num_bins": 2048, "percentile": config.percentile},
               "entropy": {"symmetric": True, "num_bins": 2048, "num_quantized_bins": 128}}[config.calibration]
    calibrator = create_calibrator(model, list(_MATMULS), augmented_model_path=str(folder / "augmented.onnx"),
                                   calibrate_method=getattr(CalibrationMethod, method), extra_options=options)
    calibrator.collect_data(_FeedReader(feeds))
    ranges = calibrator.compute_data()
    return {name: [{"rmin": np.float32(np.min(r.range_value[0])), "rmax": np.float32(np.max(r.range_value[1]))}]
            for name, r in ranges.items()}


def quantize_int8(model: str | os.PathLike[str], out: str | os.PathLike[str], config: QuantizeConfig,
                  recording: Recording | None = None, progress: Callable[[int, int], None] | None = None
                  ) -> tuple[ModelSidecar, Recording]:
    """INT8 QDQ copy of an FP32 step model at ``out``, calibrated on validation rollouts of the model itself.

    ``recording``: calibration rollouts already recorded on `calibration_episodes(config)` (else recorded here).
    ``progress(done, total)``: after each calibration episode recorded. Returns the sidecar and the recording.
    """
    src, source = _source(model)
    episodes = calibration_episodes(config)
    if recording is None:
        from robonav.runtime.backends.onnx_backend import OnnxPolicy

        recording = record_episodes(lambda n: OnnxPolicy(src, n), episodes, sim_config(source), config.num_envs,
                                    progress)
    elif [(r.maze_hash, r.seed) for r in recording.results] != [(e.maze.hash(), e.seed) for e in episodes]:
        raise CalibrationSplitError("the given calibration recording is not of the calibration episodes of this "
                                    f"config ({config.calib_suite}, {config.calib_episodes}, seed "
                                    f"{config.calib_seed}); record it with calibration_episodes(config)")
    feeds = calibration_feeds(src, recording, config.calib_samples)
    calibration = {"method": config.calibration, "suite": config.calib_suite, "episodes": config.calib_episodes,
                   "seed": config.calib_seed, "samples": len(feeds), "steps_recorded": recording.steps,
                   "percentile": config.percentile if config.calibration == "percentile" else None}
    return quantize_int8_from_feeds(src, out, feeds, config, calibration), recording


def quantize_int8_from_feeds(model: str | os.PathLike[str], out: str | os.PathLike[str], feeds: list[dict[str, Any]],
                             config: QuantizeConfig, calibration: dict[str, Any]) -> ModelSidecar:
    """The quantization step of `quantize_int8` on given calibration feeds ({obs, h_in, c_in} each), described by
    ``calibration`` in the sidecar. Use `quantize_int8` for models that ship; this serves timing benchmarks,
    whose result does not depend on the activation ranges."""
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    src, source = _source(model)
    out = Path(out)
    float_nodes = recurrent_matmuls(onnx.load(str(src))) if config.recurrent == "float" else []
    # No onnxruntime pre-processing (quant_pre_process): its graph optimizations may fuse nodes into ORT-only ops.
    quiet = logging.getLogger()
    level = quiet.level
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp, contextlib.redirect_stdout(sys.stderr):
        ranges = _calibrate(src, feeds, config, Path(tmp))  # the calibrators print progress: keep stdout for --json
        raw = Path(tmp) / "raw.onnx"
        quiet.setLevel(logging.ERROR)  # its "consider pre-processing" warning: skipped on purpose (above)
        try:  # quantize_static's own min-max pass (on a few feeds) is overridden tensor by tensor
            quantize_static(
                str(src), str(raw), _FeedReader(feeds[:8]), quant_format=QuantFormat.QDQ,
                op_types_to_quantize=list(_MATMULS), per_channel=True, reduce_range=False,
                activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, nodes_to_exclude=float_nodes,
                extra_options={"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False,
                               "OpTypesToExcludeOutputQuantization": [] if config.outputs == "int8" else list(_MATMULS),
                               "QDQKeepRemovableActivations": True, "TensorQuantOverrides": ranges},
            )
        finally:
            quiet.setLevel(level)
        proto = onnx.load(str(raw))
    _float_readers(proto)
    issues = qdq_issues(proto, tuple(float_nodes))
    if issues:
        raise QuantizeError("the quantizer left the INT8 contract of docs/design.md broken:\n  " + "\n  ".join(issues))
    return _finish(proto, source, out, "int8", {"calibration": calibration, "recurrent": config.recurrent,
                                                "matmul_outputs": config.outputs, "float_matmuls": float_nodes})
