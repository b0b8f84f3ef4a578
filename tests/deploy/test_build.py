"""robonav build: precision rules, output-path refusals, the clear exit without TensorRT, the checked list of
TensorRT API (TRT_API_USED) against the code and tensorrt-stubs, the I/O check of an engine built elsewhere
(`compare_engine_io`, on a real export's graph) and the --engine refusals; a real build, and a trtexec engine
imported, where TensorRT and a GPU exist."""

from __future__ import annotations

import ast
import dataclasses
import shutil
from pathlib import Path

import pytest

from robonav.cli import main
from robonav.deploy import build
from robonav.deploy.build import TARGET_TRT, TRT_API_USED, BuildError, check_out_path, resolve_precision
from robonav.model.sidecar import write_sidecar

ROOT = Path(__file__).resolve().parents[2]
TRT_MODULES = [ROOT / "robonav" / "deploy" / "build.py", ROOT / "robonav" / "runtime" / "backends" / "trt_backend.py"]
NOT_TRT = {"__init__", "append", "data", "dtype", "engine", "enqueue", "nbytes", "pop", "precision", "reset", "shape",
           "write"}
"""Attribute names the TRT modules use on their own or NumPy/TensorSpec/pathlib objects that happen to be TensorRT
member names too."""


def _has_tensorrt() -> bool:
    try:
        import tensorrt
    except ImportError:
        return False
    return hasattr(tensorrt, "Builder")


def _stub_file() -> Path | None:
    """tensorrt-stubs' class definitions: the prepared typings/ copy, else the installed package."""
    prepared = ROOT / "typings" / "tensorrt_bindings" / "tensorrt.pyi"
    if prepared.is_file():
        return prepared
    from importlib import metadata

    try:
        path = Path(str(metadata.distribution("tensorrt-stubs").locate_file("tensorrt_bindings/tensorrt.pyi")))
    except metadata.PackageNotFoundError:
        return None
    return path if path.is_file() else None


@pytest.mark.parametrize("model, asked, expected", [
    ("int8", None, ("int8", True)), ("int8", "int8", ("int8", True)), ("fp16", None, ("fp16", True)),
    ("fp32", None, ("fp32", True)), ("fp32", "fp16", ("fp16", False)),
])
def test_precision_follows_the_model(model, asked, expected):
    assert resolve_precision(model, asked) == expected


@pytest.mark.parametrize("model, asked, message", [
    ("fp32", "int8", r"an FP32 model without Q/DQ nodes, so it cannot build as int8: quantize it first"),
    ("int8", "fp16", r"is a int8 model; it builds only as int8 .* for fp16 build the FP32 export"),
    ("fp16", "fp32", r"is a fp16 model; it builds only as fp16"),
    ("fp32", "bf16", r"precision 'bf16'; expected fp32, fp16 or int8"),
])
def test_precisions_the_model_does_not_allow_are_refused(model, asked, message):
    with pytest.raises(BuildError, match=message):
        resolve_precision(model, asked)


def test_out_paths_that_would_clobber_a_sidecar_are_refused(exported, tmp_path):
    onnx = tmp_path / "policy.onnx"
    with pytest.raises(BuildError, match=r"expected a path ending in .engine"):
        check_out_path(onnx, tmp_path / "policy.plan")
    with pytest.raises(BuildError, match=r"its sidecar policy.json would overwrite the sidecar of policy.onnx; .*"
                                         r"--out .*policy.trt.engine"):
        check_out_path(onnx, tmp_path / "policy.engine")
    write_sidecar(tmp_path / "other.onnx", dataclasses.replace(exported.meta, model_file="other.onnx"))
    with pytest.raises(BuildError, match=r"other.json exists and describes another model"):
        check_out_path(onnx, tmp_path / "other.engine")
    write_sidecar(tmp_path / "mine.engine", dataclasses.replace(exported.meta, model_file="mine.engine"))
    check_out_path(onnx, tmp_path / "mine.engine")  # a rebuild may replace its own sidecar


@pytest.mark.skipif(_has_tensorrt(), reason="checks the exit on a machine without TensorRT")
def test_cli_without_tensorrt_exits_2_with_one_sentence(exported, tmp_path, capsys):
    rc = main(["build", "--onnx", str(exported.onnx), "--out", str(tmp_path / "tiny.trt.engine")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1
    assert err.startswith("robonav build: robonav build needs TensorRT, which is not installed here")
    assert not (tmp_path / "tiny.trt.engine").exists()


def test_cli_refuses_a_precision_before_looking_for_tensorrt(exported, tmp_path, capsys):
    rc = main(["build", "--onnx", str(exported.onnx), "--precision", "int8", "--out", str(tmp_path / "t.engine")])
    assert rc == 2 and "quantize it first" in capsys.readouterr().err


def test_every_listed_call_predates_the_target_release():
    target = tuple(int(x) for x in TARGET_TRT.split("."))
    late = {k: v for k, v in TRT_API_USED.items() if tuple(int(x) for x in v.split(".")) > target}
    assert TARGET_TRT == "10.3" and not late


def _stub_members(stub: Path) -> dict[str, set[str]]:
    members: dict[str, set[str]] = {}
    for node in ast.parse(stub.read_text()).body:
        if isinstance(node, ast.ClassDef):
            names = set()
            for item in node.body:
                if isinstance(item, ast.FunctionDef):
                    names.add(item.name)
                elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                    names.add(item.target.id)
            members[node.name] = names
    return members


def _trt_chains(tree: ast.AST) -> set[str]:
    """'X' or 'X.Y' for every ``trt.X`` / ``trt.X.Y`` in the code."""
    chains = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "trt":
            chains.add(node.attr)
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute)
                and isinstance(node.value.value, ast.Name) and node.value.value.id == "trt"):
            chains.add(f"{node.value.attr}.{node.attr}")
    return chains


def test_listed_api_exists_in_the_stubs_and_the_code_uses_nothing_else():
    stub = _stub_file()
    if stub is None:
        pytest.skip("tensorrt-stubs not installed (pip install --no-deps tensorrt-stubs==10.13.0.35.1)")
    members = _stub_members(stub)
    missing = []
    for entry in TRT_API_USED:
        cls, _, member = entry.partition(".")
        if entry == "__version__":
            continue
        if cls not in members or (member and member not in members[cls]):
            missing.append(entry)
    assert not missing, f"not in tensorrt-stubs: {missing}"
    all_members = set().union(*members.values())
    listed_members = {e.partition(".")[2] or e for e in TRT_API_USED}
    for module in TRT_MODULES:
        tree = ast.parse(module.read_text())
        prefixes = {e.partition(".")[0] for e in TRT_API_USED}  # trt.BuilderFlag of trt.BuilderFlag.FP16
        chains = _trt_chains(tree) - set(TRT_API_USED) - prefixes
        assert not chains, f"{module.name} uses trt.{chains} without listing it in TRT_API_USED"
        attrs = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)} & all_members
        unlisted = attrs - listed_members - NOT_TRT
        assert not unlisted, f"{module.name} calls TensorRT members {unlisted} not in TRT_API_USED"


def test_the_canary_misspells_calls_mypy_must_catch():
    text = (ROOT / "tools" / "typings_canary" / "trt_canary.py").read_text()
    assert "set_flagz" in text and "build_serialized_networkk" in text
    assert build.__doc__ and "TRT_API_USED" in build.__doc__


@pytest.mark.tensorrt
@pytest.mark.gpu
@pytest.mark.skipif(not _has_tensorrt(), reason="needs TensorRT (tensorrt.Builder) and a GPU")
def test_build_and_run_an_engine_against_onnx_runtime(exported, recording, fp32_actions, tmp_path):
    from robonav.deploy.build import BuildConfig, build_engine
    from robonav.deploy.parity import backend_actions, compare_actions
    from robonav.runtime.backends.trt_backend import TrtBackend

    done = build_engine(exported.onnx, tmp_path / "tiny.trt.engine", BuildConfig(timing_cache=str(tmp_path / "tc")))
    assert done.meta.extra["engine"]["strongly_typed"] and (tmp_path / "tc").stat().st_size > 0
    with TrtBackend(done.engine) as backend:
        report = compare_actions(backend_actions(backend, recording), fp32_actions, len(recording.segments), 1e-4)
    assert report.passed, report


def _onnx_io(path: Path) -> list[tuple[str, str, str, tuple[int, ...]]]:
    """The graph inputs and outputs of an ONNX file as (name, mode, dtype, shape): what an engine built from it
    unchanged (trtexec --onnx=...) exposes."""
    import numpy as np
    import onnx
    from onnx import helper

    graph = onnx.load(str(path), load_external_data=False).graph
    out = []
    for mode, values in (("input", graph.input), ("output", graph.output)):
        for v in values:
            t = v.type.tensor_type
            dtype = np.dtype(helper.tensor_dtype_to_np_dtype(t.elem_type)).name
            out.append((v.name, mode, dtype, tuple(d.dim_value if d.HasField("dim_value") else -1
                                                   for d in t.shape.dim)))
    return out


def test_an_engine_with_the_onnx_models_io_passes_and_any_change_is_named(exported):
    from robonav.deploy.build import compare_engine_io, contract_io

    contract = contract_io(exported.meta)
    found = _onnx_io(exported.onnx)
    assert sorted(found) == sorted(contract)  # the real export's graph is the contract
    hidden, obs_dim = exported.meta.hidden, exported.meta.obs_dim
    assert ("h_in", "input", "float32", (exported.meta.state_layers, 1, hidden)) in found
    compare_engine_io("x.engine", contract, found[::-1], "tiny.onnx")  # order does not matter

    def changed(tensor, **kw):
        keys = ("name", "mode", "dtype", "shape")
        return [tuple(kw.get(k, t[i]) for i, k in enumerate(keys)) if t[0] == tensor else t for t in found]

    cases = [
        (changed("obs", dtype="float16"),
         rf"x.engine: tensor 'obs': the ONNX contract of tiny.onnx has input float32 \[1, {obs_dim}\], the engine has "
         rf"input float16 \[1, {obs_dim}\]; build the engine from tiny.onnx as it is \(trtexec --onnx=tiny.onnx"),
        (changed("h_in", shape=(1, 4, hidden)),
         rf"tensor 'h_in': the ONNX contract of tiny.onnx has input float32 \[1, 1, {hidden}\], the engine has input "
         rf"float32 \[1, 4, {hidden}\]"),
        (changed("c_out", mode="input"), r"tensor 'c_out': .* has output float32 .*, the engine has input float32"),
        ([t for t in found if t[0] != "action"], r"tensor 'action': the ONNX contract of tiny.onnx has output float32 "
                                                 r"\[1, 2\], the engine has no such tensor \(it has \['c_in'"),
        (changed("obs", name="observation"), r"tensor 'obs': .* the engine has no such tensor"),
        ([*found, ("debug", "output", "float32", (1,))], r"tensor 'debug': the engine has output float32 \[1\], the "
                                                         r"ONNX contract of tiny.onnx has no such tensor"),
    ]
    for engine_io, message in cases:
        with pytest.raises(BuildError, match=message) as info:
            compare_engine_io("x.engine", contract, engine_io, "tiny.onnx")
        assert "\n" not in str(info.value)


def test_engine_targets_in_place_in_a_folder_or_at_a_path(tmp_path):
    from robonav.deploy.build import _engine_target

    engine = tmp_path / "a" / "p.trt.engine"
    assert _engine_target(engine, None) == engine
    assert _engine_target(engine, tmp_path / "robot") == tmp_path / "robot" / "p.trt.engine"
    assert _engine_target(engine, tmp_path / "q.engine") == tmp_path / "q.engine"


@pytest.mark.skipif(_has_tensorrt(), reason="checks the exit on a machine without TensorRT")
def test_cli_engine_without_tensorrt_exits_2_with_one_sentence(exported, tmp_path, capsys):
    engine = tmp_path / "tiny.trt.engine"
    engine.write_bytes(b"not read: TensorRT is looked for first")
    rc = main(["build", "--engine", str(engine), "--onnx", str(exported.onnx)])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1
    assert err.startswith("robonav build: robonav build --engine needs TensorRT, which is not installed here")
    assert not (tmp_path / "tiny.trt.json").exists()


@pytest.mark.parametrize("argv, message", [
    (["--engine", "{dir}/t.engine", "--dla-core", "0"], r"--engine takes an engine already built: --dla-core apply"),
    (["--engine", "{dir}/missing.engine"], r"--engine .*missing.engine: expected an existing .engine file"),
    (["--engine", "{dir}/t.engine", "--precision", "int8"], r"cannot build as int8: quantize it first"),
    (["--engine", "{dir}/t.engine", "--out", "{onnx_dir}/tiny.engine"], r"would overwrite the sidecar of tiny.onnx"),
    ([], r"robonav build --onnx needs --out FILE.engine \(or --engine FILE.engine"),
])
def test_cli_engine_refusals_before_tensorrt(exported, tmp_path, capsys, argv, message):
    import re

    (tmp_path / "t.engine").write_bytes(b"x")
    argv = [a.format(dir=tmp_path, onnx_dir=exported.onnx.parent) for a in argv]
    rc = main(["build", "--onnx", str(exported.onnx), *argv])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and re.search(message, err), err


@pytest.mark.tensorrt
@pytest.mark.gpu
@pytest.mark.skipif(not _has_tensorrt() or shutil.which("trtexec") is None,
                    reason="needs TensorRT with trtexec and a GPU (TensorRT is not installable here)")
def test_an_engine_trtexec_built_gets_its_sidecar_and_runs(exported, recording, fp32_actions, tmp_path):
    import subprocess

    from robonav.deploy.build import import_engine
    from robonav.deploy.parity import backend_actions, compare_actions
    from robonav.runtime.backends.trt_backend import TrtBackend

    engine = tmp_path / "tiny.trt.engine"
    subprocess.run(["trtexec", f"--onnx={exported.onnx}", f"--saveEngine={engine}", "--noTF32"], check=True,
                   capture_output=True)
    done = import_engine(engine, exported.onnx)
    assert done.sidecar == tmp_path / "tiny.trt.json" and done.meta.extra["engine"]["built_by"] == "external"
    with TrtBackend(done.engine) as backend:
        report = compare_actions(backend_actions(backend, recording), fp32_actions, len(recording.segments), 1e-4)
    assert report.passed, report
