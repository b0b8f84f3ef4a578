"""Build a TensorRT engine from a step model on the target, with its sidecar: ``robonav build``.

Engines are not portable (TensorRT version, GPU model), so this runs on the robot (JetPack 6.1+: TensorRT 10.3).
``build_engine(onnx, out, BuildConfig())``:

- precision: from the model's sidecar. An INT8 (QDQ) model builds as int8 and an FP16 model as fp16, both as
  STRONGLY_TYPED networks: every tensor keeps the type the graph gives it, explicit quantization included. An FP32
  model builds as fp32 (strongly typed, TF32 off, so it keeps FP32 parity) or, asked ``precision='fp16'``, weakly
  typed with the FP16 flag (TensorRT picks FP16 kernels where faster). INT8 from an FP32 model is refused: quantize
  it first (``robonav quantize``; TensorRT 10 deprecates implicit INT8 calibration).
- workspace limit (MiB), a timing cache read before and written back after the build (``--timing-cache``,
  default ``<out folder>/robonav.timing-cache``: it makes rebuilds fast and their kernel choice repeatable),
  DLA where asked (``dla_core``; FP16 or INT8 only, with GPU fallback for layers DLA cannot run).
- writes the engine and ``<engine>.json``: the model's sidecar with the engine's file, hash and precision, and
  ``extra["engine"]``: TensorRT version, GPU name, compute capability and I/O tensors (what TrtBackend checks),
  plus the source model, its hash and these settings. Because a sidecar is named ``<model>.json``, an engine must
  not share its stem with a model beside it (policy.onnx and policy.engine both map to policy.json): the build
  refuses an ``out`` whose sidecar would overwrite another model's.

``import_engine(engine, onnx)`` (``robonav build --engine FILE.engine --onnx FILE.onnx``) takes an engine built
elsewhere (``trtexec --onnx=FILE.onnx --saveEngine=FILE.engine``, on this device): it deserialises it here, checks
its I/O tensors against the step-model contract of the ONNX model's sidecar (`compare_engine_io`: names, modes,
dtypes, shapes) and writes the same sidecar a built engine gets, its facts marked ``built_by: external``.

Only TensorRT 10.3 API is used: `TRT_API_USED` lists every TensorRT name this module and
robonav.runtime.backends.trt_backend touch, each with the release that introduced it; tests/deploy/test_build.py checks
the list against the code and against tensorrt-stubs, and mypy checks the calls against the stubs.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from robonav.atomic import write_bytes_atomic
from robonav.errors import UserError
from robonav.model.sidecar import ModelSidecar, file_sha256, read_sidecar, sidecar_path, write_sidecar

if TYPE_CHECKING:
    import tensorrt as trt

__all__ = ["TRT_API_USED", "BuildConfig", "BuildError", "BuildResult", "IoTensor", "build_engine", "check_out_path",
           "compare_engine_io", "contract_io", "import_engine", "resolve_precision"]

IoTensor = tuple[str, str, str, tuple[int, ...]]
"""One I/O tensor as (name, mode 'input'/'output', NumPy dtype name, shape)."""

TRT_API_USED: dict[str, str] = {
    "__version__": "1.0", "Logger": "5.0", "Logger.WARNING": "5.0", "Builder": "5.0",
    "Builder.create_network": "5.0", "Builder.create_builder_config": "6.0",
    "Builder.build_serialized_network": "8.0", "Builder.num_DLA_cores": "5.0",
    "NetworkDefinitionCreationFlag.STRONGLY_TYPED": "10.0", "OnnxParser": "5.0", "OnnxParser.parse": "5.0",
    "OnnxParser.num_errors": "5.0", "OnnxParser.get_error": "5.0", "IBuilderConfig.set_memory_pool_limit": "8.4",
    "MemoryPoolType.WORKSPACE": "8.4", "IBuilderConfig.set_flag": "6.0", "IBuilderConfig.clear_flag": "6.0",
    "BuilderFlag.FP16": "6.0", "BuilderFlag.TF32": "7.1", "BuilderFlag.GPU_FALLBACK": "6.0",
    "IBuilderConfig.default_device_type": "6.0", "IBuilderConfig.DLA_core": "6.0", "DeviceType.DLA": "5.0",
    "IBuilderConfig.create_timing_cache": "8.0", "IBuilderConfig.set_timing_cache": "8.0",
    "IBuilderConfig.get_timing_cache": "8.0", "ITimingCache.serialize": "8.0", "Runtime": "5.0",
    "Runtime.deserialize_cuda_engine": "5.0", "ICudaEngine.num_io_tensors": "8.5",
    "ICudaEngine.get_tensor_name": "8.5", "ICudaEngine.get_tensor_shape": "8.5",
    "ICudaEngine.get_tensor_dtype": "8.5", "ICudaEngine.get_tensor_mode": "8.5", "DataType.name": "5.0",
    "TensorIOMode.name": "8.5",
    "ICudaEngine.create_execution_context": "5.0", "IExecutionContext.set_tensor_address": "8.5",
    "IExecutionContext.execute_async_v3": "8.5",
}
"""Every TensorRT name robonav uses -> the TensorRT release that introduced it (all <= 10.3, JetPack 6.1's)."""
TARGET_TRT = "10.3"


class BuildError(UserError, RuntimeError):
    """An engine cannot be built here: no TensorRT, no GPU, or a model, precision or DLA request it refuses."""


@dataclass(frozen=True)
class BuildConfig:
    """Engine build settings (``robonav build`` options)."""

    precision: str | None = None
    """'fp32', 'fp16' or 'int8'; None: the model's own precision."""
    workspace_mb: int = 256
    """Workspace memory pool limit (MiB) for the builder's tactics."""
    timing_cache: str | None = None
    """Timing cache file, read if present and written after the build (default: <out folder>/robonav.timing-cache)."""
    dla_core: int | None = None
    """Build for this DLA core (Jetson AGX/NX Orin), GPU fallback on; None: the GPU."""


@dataclass(frozen=True)
class BuildResult:
    """What `build_engine` wrote."""

    engine: Path
    """The engine file."""
    sidecar: Path
    """Its ``<engine>.json``."""
    meta: ModelSidecar
    """The sidecar's content."""
    timing_cache: Path | None
    """The timing cache written (None: an imported engine)."""


def resolve_precision(model_precision: str, asked: str | None, model: str = "model") -> tuple[str, bool]:
    """(engine precision, strongly typed) for a model of ``model_precision`` built as ``asked``; BuildError if the
    model does not allow it."""
    asked = asked or model_precision
    if asked not in ("fp32", "fp16", "int8"):
        raise BuildError(f"{model}: precision {asked!r}; expected fp32, fp16 or int8")
    if model_precision == asked:
        return asked, True
    if model_precision == "fp32" and asked == "fp16":
        return "fp16", False
    if model_precision == "fp32":
        raise BuildError(f"{model} is an FP32 model without Q/DQ nodes, so it cannot build as int8: quantize it first "
                         "(`robonav quantize --precision int8`) and build the .int8.onnx model")
    raise BuildError(f"{model} is a {model_precision} model; it builds only as {model_precision} (its precision is "
                     f"in its graph); for {asked} build the FP32 export")


def check_out_path(onnx: Path, out: Path) -> None:
    """Refuse an ``out`` that is not an .engine or whose sidecar would overwrite another model's."""
    if out.suffix != ".engine":
        raise BuildError(f"--out {out}: expected a path ending in .engine (its sidecar takes .json)")
    side = sidecar_path(out)
    if side == sidecar_path(onnx):
        raise BuildError(f"--out {out}: its sidecar {side.name} would overwrite the sidecar of {onnx.name}; give the "
                         f"engine another stem, e.g. --out {out.with_name(onnx.stem + '.trt.engine')}")
    if side.is_file():
        try:
            other = read_sidecar(out, check_hash=False)
        except ValueError:
            other = None
        if other is None or other.model_file != out.name:
            raise BuildError(f"--out {out}: {side.name} exists and describes another model; choose another --out")


def contract_io(sidecar: ModelSidecar) -> list[IoTensor]:
    """The step-model contract of a model's sidecar as IoTensor tuples, inputs then outputs."""
    return ([(t.name, "input", t.dtype, tuple(t.shape)) for t in sidecar.inputs]
            + [(t.name, "output", t.dtype, tuple(t.shape)) for t in sidecar.outputs])


def _describe(t: IoTensor) -> str:
    return f"{t[1]} {t[2]} {list(t[3])}"


def compare_engine_io(engine: str | os.PathLike[str], expected: Sequence[IoTensor], found: Sequence[IoTensor],
                      source: str) -> None:
    """Refuse (BuildError) an engine whose I/O tensors ``found`` differ from ``expected``, the contract of the
    ONNX model ``source``, by name, mode, dtype or shape: one line naming the tensor and both sides."""
    want = {t[0]: t for t in expected}
    got = {t[0]: t for t in found}
    fix = (f"build the engine from {source} as it is (trtexec --onnx={source} --saveEngine=...: no "
           "--inputIOFormats/--outputIOFormats, no shape options), or with `robonav build`")
    for name, w in want.items():
        g = got.get(name)
        if g is None:
            raise BuildError(f"{engine}: tensor {name!r}: the ONNX contract of {source} has {_describe(w)}, the "
                             f"engine has no such tensor (it has {sorted(got)}); {fix}")
        if (g[1], g[2], tuple(g[3])) != (w[1], w[2], tuple(w[3])):
            raise BuildError(f"{engine}: tensor {name!r}: the ONNX contract of {source} has {_describe(w)}, the "
                             f"engine has {_describe(g)}; {fix}")
    for name in sorted(set(got) - set(want)):
        raise BuildError(f"{engine}: tensor {name!r}: the engine has {_describe(got[name])}, the ONNX contract of "
                         f"{source} has no such tensor (it has {sorted(want)}); {fix}")


def _host_facts(tensorrt_version: str, device: int = 0) -> dict[str, str]:
    """This machine's TensorRT version, GPU name and compute capability; BuildError without a GPU."""
    from robonav.runtime.backends.cuda import CudaUnavailableError, cudart

    try:
        cuda = cudart()
        cuda.require_device(device)
    except CudaUnavailableError as e:
        raise BuildError(f"an engine is built on the GPU it will run on, and {e}") from e
    return {"tensorrt": tensorrt_version, "gpu": cuda.device_name(device),
            "compute_capability": cuda.compute_capability(device)}


def _need_tensorrt(verb: str) -> None:
    """A BuildError saying TensorRT is missing (it comes from JetPack, not pip), unless it is here."""
    from robonav.runtime.backends.trt_backend import TrtUnavailableError, require_tensorrt

    try:
        require_tensorrt(verb)
    except TrtUnavailableError as e:
        raise BuildError(str(e)) from e


def build_engine(onnx: str | os.PathLike[str], out: str | os.PathLike[str], config: BuildConfig = BuildConfig()
                 ) -> BuildResult:
    """Build ``out`` (.engine) and its sidecar from ``onnx`` (a robonav step model with its sidecar)."""
    from robonav.runtime.backends.trt_backend import engine_io

    onnx, out = Path(onnx), Path(out)
    source = read_sidecar(onnx)
    precision, strongly_typed = resolve_precision(source.precision, config.precision, onnx.name)
    check_out_path(onnx, out)
    if config.dla_core is not None and precision == "fp32":
        raise BuildError("DLA runs FP16 and INT8 only: build an fp16 or int8 engine for --dla-core")
    _need_tensorrt("robonav build")
    import tensorrt as trt  # present (checked above); typed by tensorrt-stubs under mypy

    host = _host_facts(trt.__version__)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED) if strongly_typed else 0
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx.read_bytes(), str(onnx)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise BuildError(f"{onnx}: TensorRT {trt.__version__}'s ONNX parser refused it: {errors}")
    cfg = builder.create_builder_config()
    cfg.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, config.workspace_mb << 20)
    if precision == "fp16" and not strongly_typed:
        cfg.set_flag(trt.BuilderFlag.FP16)
    if precision == "fp32":
        cfg.clear_flag(trt.BuilderFlag.TF32)
    if config.dla_core is not None:
        cores = builder.num_DLA_cores
        if not 0 <= config.dla_core < cores:
            raise BuildError(f"--dla-core {config.dla_core}: this device has {cores} DLA core(s)"
                             + ("; build for the GPU (leave --dla-core out)" if cores == 0 else ""))
        cfg.default_device_type = trt.DeviceType.DLA
        cfg.DLA_core = config.dla_core
        cfg.set_flag(trt.BuilderFlag.GPU_FALLBACK)
    cache_path = Path(config.timing_cache) if config.timing_cache else out.parent / "robonav.timing-cache"
    cache = cfg.create_timing_cache(cache_path.read_bytes() if cache_path.is_file() else b"")
    if not cfg.set_timing_cache(cache, False):
        raise BuildError(f"timing cache {cache_path} was made by another TensorRT version or GPU; delete it or pass "
                         "another --timing-cache")
    plan = builder.build_serialized_network(network, cfg)
    if plan is None:
        raise BuildError(f"{onnx}: TensorRT {trt.__version__} could not build an engine (see its log above)")
    out.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(cache_path, bytes(memoryview(cfg.get_timing_cache().serialize())))
    write_bytes_atomic(out, bytes(memoryview(plan)))
    _runtime, engine = _deserialize(logger, out)
    facts = {**host, "io": engine_io(engine), "built_by": "robonav build", "strongly_typed": strongly_typed,
             "source": onnx.name, "source_sha256": source.model_sha256, "source_precision": source.precision,
             "settings": {**asdict(config), "timing_cache": str(cache_path)}}
    meta = replace(source, model_file=out.name, model_sha256=file_sha256(out), weights_sha256="",
                   precision=precision).with_extra(
        engine=facts)
    return BuildResult(out, write_sidecar(out, meta), meta, cache_path)


def _engine_target(engine: Path, out: str | os.PathLike[str] | None) -> Path:
    """Where an imported engine goes: in place, ``out`` if it names an .engine, else ``out``/<engine name>."""
    if out is None:
        return engine
    out = Path(out)
    return out if out.suffix == ".engine" else out / engine.name


def _deserialize(logger: trt.Logger, path: Path) -> tuple[trt.Runtime, trt.ICudaEngine]:
    """(runtime, engine) of an engine file, the runtime to be kept while the engine is; BuildError where this
    TensorRT cannot read it."""
    import tensorrt as trt

    runtime = trt.Runtime(logger)
    engine = runtime.deserialize_cuda_engine(path.read_bytes())
    if engine is None:
        raise BuildError(f"{path}: TensorRT {trt.__version__} could not deserialise it (see its log above): an "
                         "engine runs only on the TensorRT version and GPU that built it; build it on this device")
    return runtime, engine


def import_engine(engine: str | os.PathLike[str], onnx: str | os.PathLike[str],
                  out: str | os.PathLike[str] | None = None, precision: str | None = None) -> BuildResult:
    """Check an engine built elsewhere (trtexec) from ``onnx`` against the ONNX model's step contract on this
    device and write its sidecar (copying the engine to ``out`` first if given: a folder or an .engine path).
    ``precision``: what the engine was built as (default: the model's), by the rules of `resolve_precision`."""
    from robonav.runtime.backends.trt_backend import engine_io

    engine, onnx = Path(engine), Path(onnx)
    source = read_sidecar(onnx)
    built_as, _ = resolve_precision(source.precision, precision, onnx.name)
    if engine.suffix != ".engine" or not engine.is_file():
        raise BuildError(f"--engine {engine}: expected an existing .engine file (trtexec --saveEngine=FILE.engine)")
    target = _engine_target(engine, out)
    check_out_path(onnx, target)
    _need_tensorrt("robonav build --engine")
    import tensorrt as trt  # present (checked above); typed by tensorrt-stubs under mypy

    host = _host_facts(trt.__version__)
    logger = trt.Logger(trt.Logger.WARNING)
    _runtime, deserialized = _deserialize(logger, engine)
    io = engine_io(deserialized)
    compare_engine_io(engine, contract_io(source), [(t["name"], t["mode"], t["dtype"], tuple(t["shape"])) for t in io],
                      onnx.name)
    if target.resolve() != engine.resolve():
        write_bytes_atomic(target, engine.read_bytes())
    facts = {**host, "io": io, "built_by": "external", "strongly_typed": None, "source": onnx.name,
             "source_sha256": source.model_sha256, "source_precision": source.precision,
             "settings": {"imported_from": str(engine)}}
    meta = replace(source, model_file=target.name, model_sha256=file_sha256(target), weights_sha256="",
                   precision=built_as).with_extra(engine=facts)
    return BuildResult(target, write_sidecar(target, meta), meta, None)
