"""The export and quantize verbs: --json last line, the table, and user errors as one clear line (exit code 2)."""

from __future__ import annotations

import json
import shutil

from robonav import cli


def _last_json(capsys):
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_export_verb_writes_the_three_files_and_reports_parity(checkpoint, tmp_path, capsys):
    out = tmp_path / "p.onnx"
    rc = cli.main(["export", "--policy", str(checkpoint), "--out", str(out), "--parity-steps", "200",
                   "--parity-mazes", "val-3x3", "--episodes", "0", "--envs", "2", "--json"])
    result = _last_json(capsys)
    assert rc == 0 and result["parity_passed"] is True and result["parity_max_abs_error"] <= 1e-5
    assert result["parity_steps"] >= 200 and result["closed_loop_episodes"] == 0
    assert (result["opset"], result["ir_version"]) == (20, 10) and "Gemm" in result["ops"]
    assert out.exists() and out.with_suffix(".json").exists() and out.with_suffix(".npz").exists()


def test_quantize_verb_prints_the_table_and_json(exported, tmp_path, capsys):
    src = tmp_path / exported.onnx.name
    shutil.copy(exported.onnx, src)
    shutil.copy(exported.sidecar, src.with_suffix(".json"))
    assert cli.main(["quantize", "--onnx", str(src), "--precision", "fp16", "--episodes", "2", "--mazes", "val-3x3",
                     "--envs", "2"]) == 0
    text = capsys.readouterr().out
    assert "2 paired episodes of val-3x3" in text and "FP16" in text and "McNemar p" in text
    assert "noise floor: not measured" in text and (tmp_path / "tiny.fp16.onnx").exists()
    assert cli.main(["quantize", "--onnx", str(src), "--precision", "int8", "--calib-mazes", "val-3x3",
                     "--calib-episodes", "1", "--episodes", "0", "--envs", "2", "--json"]) == 0
    result = _last_json(capsys)
    assert result["out"] == str(tmp_path / "tiny.int8.onnx") and result["calibration"]["suite"] == "val-3x3"
    assert result["matmul_outputs"] == "int8" and result["recurrent"] == "int8"


def test_quantize_verb_refuses_test_mazes_for_calibration(exported, capsys):
    rc = cli.main(["quantize", "--onnx", str(exported.onnx), "--precision", "int8", "--calib-mazes", "test",
                   "--episodes", "0"])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("robonav quantize: calibration suite 'test' is split 'test'")
