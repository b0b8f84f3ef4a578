"""robonav build: precision rules, output-path refusals, the clear exit without TensorRT, and the checked list of
TensorRT API (TRT_API_USED) against the code and tensorrt-stubs; a real build where TensorRT and a GPU exist."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest

from robonav.cli import main
from robonav.deploy import build
from robonav.deploy.build import TARGET_TRT, TRT_API_USED, BuildError, check_out_path, resolve_precision
from robonav.model.sidecar import write_sidecar

ROOT = Path(__file__).resolve().parents[2]
TRT_MODULES = [ROOT / "robonav" / "deploy" / "build.py", ROOT / "robonav" / "runtime" / "backends" / "trt_backend.py"]
NOT_TRT = {"__init__", "append", "data", "engine", "enqueue", "nbytes", "pop", "precision", "reset", "shape", "write"}
"""Attribute names the TRT modules use on their own or NumPy/ctypes/pathlib objects that happen to be TensorRT
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
