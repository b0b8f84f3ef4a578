"""Bad input through the real installed ``robonav`` command: one line on stderr naming the input, exit status 2, no
traceback; ``--debug`` shows the traceback; bugs keep theirs; every robonav exception has the one root."""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import inspect
import pkgutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import robonav
from robonav.errors import RobonavError, UserError

ROBONAV = Path(sys.executable).parent / "robonav"
"""The console script pip installed beside this Python (PYTHONPATH picks the tree under test)."""


def _robonav(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    assert ROBONAV.is_file(), f"no installed robonav command at {ROBONAV}: pip install -e . into this venv"
    return subprocess.run([str(ROBONAV), *args], capture_output=True, text=True, timeout=300, cwd=cwd)


def _one_line_error(out: subprocess.CompletedProcess[str], verb: str) -> str:
    """The single stderr line of a refused command, after checking the exit status and the absence of a traceback."""
    assert out.returncode == 2, (out.returncode, out.stderr)
    assert "Traceback" not in out.stderr, out.stderr
    lines = out.stderr.splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith(f"robonav {verb}: "), lines[0]
    return lines[0]


# -- the six inputs of the issue ----------------------------------------------------------------------------------

@pytest.mark.parametrize("maze, says", [
    ("rooms:9y9", "--maze 'rooms:9y9': size expected as WIDTHxHEIGHT or WIDTH in passage cells, actual size: '9y9'; "
                  "give e.g. --maze rooms:9x9"),
    ("rooms:30x30", "--maze 'rooms:30x30': width expected in 3..25 passage cells, actual width: 30; give e.g. "
                    "--maze rooms:25x25"),
])
def test_a_bad_maze_size_is_one_line(maze, says):
    assert _one_line_error(_robonav("sim", "--maze", maze), "sim") == f"robonav sim: {says}"


def test_a_binary_launch_file_is_one_line(tmp_path):
    launch = tmp_path / "robot.yaml"
    launch.write_bytes(b"run:\n  model: \x85\xff\x00\x01")
    line = _one_line_error(_robonav("run", "--launch", str(launch)), "run")
    assert line == (f"robonav run: launch file {launch} is not UTF-8 text (byte 0x85 at offset 14); expected a YAML "
                    "launch file such as launch/robot.yaml: is it a binary?")


@pytest.mark.parametrize("name", ["conf", "conf.yaml"])
def test_a_launch_path_that_is_a_directory_is_one_line(tmp_path, name):
    folder = tmp_path / name
    folder.mkdir()
    line = _one_line_error(_robonav("sim", "--launch", str(folder)), "sim")
    assert line.startswith(f"robonav sim: launch file {folder} is a directory; expected a YAML file")


def _toy_with_weights(toys, folder: Path, vouch_for_the_cut: bool) -> tuple[Path, str, str]:
    """A toy step model with its sidecar (tests/conftest.py) and a weights file beside it, cut in half; the sidecar
    records the whole file's sha256 (as export writes it) or, ``vouch_for_the_cut``, the cut file's (so the hash
    check passes and the reader meets the truncation). Returns the model and the two hashes."""
    from robonav.model.sidecar import file_sha256, read_sidecar, write_sidecar

    model = toys.write(folder)
    weights = model.with_suffix(".npz")
    np.savez(weights, format=np.array("robonav.weights/1"), obs_mean=np.zeros(5, np.float32),
             encoder_w0=np.ones((64, 5), np.float32))
    whole = file_sha256(weights)
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    cut = file_sha256(weights)
    sidecar = read_sidecar(model)
    write_sidecar(model, dataclasses.replace(sidecar, weights_sha256=cut if vouch_for_the_cut else whole))
    return model, whole, cut


@pytest.mark.parametrize("verb", ["run", "selftest"])
def test_a_truncated_weights_file_is_one_line(toys, tmp_path, verb):
    model, whole, cut = _toy_with_weights(toys, tmp_path, vouch_for_the_cut=False)
    line = _one_line_error(_robonav(verb, "--backend", "numba", "--model", str(model)), verb)
    assert line.startswith(f"robonav {verb}: {model.with_suffix('.npz')}: weights sha256 {cut} differs from the "
                           f"sidecar's {whole}"), line


def test_a_truncated_weights_file_the_sidecar_vouches_for_is_one_line(toys, tmp_path):
    model, _, _ = _toy_with_weights(toys, tmp_path, vouch_for_the_cut=True)
    line = _one_line_error(_robonav("run", "--backend", "numba", "--model", str(model)), "run")
    assert line.startswith(f"robonav run: {model.with_suffix('.npz')}: not a readable .npz"), line
    assert line.endswith("re-export the model")


def test_a_corrupt_onnx_whose_sidecar_hash_matches_is_one_line(toys, tmp_path):
    from robonav.model.sidecar import read_sidecar, write_sidecar

    model = toys.write(tmp_path)
    garbage = bytes(range(256)) * 4
    model.write_bytes(garbage)
    sidecar = read_sidecar(model, check_hash=False)
    write_sidecar(model, dataclasses.replace(sidecar, model_sha256=hashlib.sha256(garbage).hexdigest()))
    line = _one_line_error(_robonav("run", "--backend", "ort", "--model", str(model), "--ticks", "1"), "run")
    assert line.startswith(f"robonav run: {model}: ONNX Runtime cannot load it ("), line
    assert line.endswith("expected an ONNX step model as `robonav export` writes it: re-export it, or copy the file "
                         "again")


# -- a launch file without the section a verb reads ---------------------------------------------------------------

def test_run_with_the_train_launch_file_is_refused_by_name():
    from robonav.data import resource

    line = _one_line_error(_robonav("run", "--launch", "train", "--ticks", "1"), "run")
    assert line == (f"robonav run: launch file {resource('launch', 'train.yaml')} has no 'run' section (the sections "
                    "robonav run reads: run); it has 'train'; use --launch robot or add the section")


@pytest.mark.parametrize("verb, launch, says", [
    ("sim", "robot", "has no 'sim' section (the sections robonav sim reads: sim); it has 'run'; use --launch sim"),
    ("train", "sim", "has no 'train' section (the sections robonav train reads: train); it has 'sim'; use --launch "
                     "train"),
    ("selftest", "sim", "has no 'run' section (the sections robonav selftest reads: run); it has 'sim'; use --launch "
                        "robot"),
    ("sim-robot", "robot", "has no 'robot' section (the sections robonav sim-robot reads: robot); it has 'run'; use "
                           "--launch hil"),
    ("hil", "robot", "has no 'hil', 'robot' sections (the sections robonav hil reads: hil, run, robot); it has "
                     "'run'; use --launch hil"),
])
def test_every_verb_with_launch_refuses_a_file_without_its_section(verb, launch, says):
    line = _one_line_error(_robonav(verb, "--launch", launch), verb)
    assert says in line, line


def test_an_empty_launch_file_is_refused_too(tmp_path):
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing yet\n")
    line = _one_line_error(_robonav("sim", "--launch", str(empty)), "sim")
    assert line == (f"robonav sim: launch file {empty} has no 'sim' section (the sections robonav sim reads: sim); it "
                    "is empty; use --launch sim or add the section")


def test_a_multi_line_yaml_error_is_printed_on_one_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("sim:\n  substeps: [2\n")
    line = _one_line_error(_robonav("sim", "--launch", str(bad)), "sim")
    assert line.startswith(f"robonav sim: {bad}: not valid YAML: ") and "line 3" in line, line


# -- --debug, bugs and Ctrl-C ---------------------------------------------------------------------------------------

def test_debug_shows_the_traceback_of_a_user_error():
    out = _robonav("--debug", "sim", "--maze", "rooms:9y9")
    assert out.returncode != 0
    assert "Traceback" in out.stderr and "robonav.settings.SettingsError: --maze 'rooms:9y9'" in out.stderr


def _main_with_verb_raising(monkeypatch, exc: BaseException, *argv: str) -> int:
    """robonav.cli.main(['average', ...]) with the verb replaced by one that raises ``exc``."""
    from robonav import cli
    from robonav.cli import sim_train

    def verb(args):
        raise exc

    monkeypatch.setattr(sim_train, "cmd_average", verb)
    return cli.main([*argv, "average", "x.pt", "--out", "y.pt"])


def test_a_user_error_is_one_line_and_exit_2_in_process(monkeypatch, capsys):
    assert _main_with_verb_raising(monkeypatch, UserError("x.pt: not a checkpoint\n(second line)")) == 2
    assert capsys.readouterr().err == "robonav average: x.pt: not a checkpoint (second line)\n"


def test_a_bug_keeps_its_traceback(monkeypatch):
    with pytest.raises(ZeroDivisionError):
        _main_with_verb_raising(monkeypatch, ZeroDivisionError("a bug"))
    with pytest.raises(RobonavError):  # robonav's own, but not the user's: a bug as well
        _main_with_verb_raising(monkeypatch, RobonavError("an internal check"))


def test_ctrl_c_exits_130_quietly(monkeypatch, capsys):
    assert _main_with_verb_raising(monkeypatch, KeyboardInterrupt()) == 130
    assert capsys.readouterr().err == ""
    with pytest.raises(KeyboardInterrupt):
        _main_with_verb_raising(monkeypatch, KeyboardInterrupt(), "--debug")


# -- one root ---------------------------------------------------------------------------------------------------

def _robonav_exceptions() -> dict[str, type[BaseException]]:
    found = {}
    for info in pkgutil.walk_packages(robonav.__path__, "robonav."):
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            if inspect.isclass(obj) and issubclass(obj, BaseException) and obj.__module__ == module.__name__:
                found[f"{module.__name__}.{name}"] = obj
    return found


def test_every_robonav_exception_derives_from_the_root_and_keeps_its_builtin():
    found = _robonav_exceptions()
    assert len(found) >= 70  # every module was walked (76 classes on 2026-12-07)
    assert [k for k, cls in found.items() if not issubclass(cls, RobonavError)] == []
    # what a user causes is a UserError and still the builtin old `except` clauses catch
    for name, builtin in (("robonav.sim.maze.MazeError", ValueError), ("robonav.settings.SettingsError", ValueError),
                          ("robonav.model.meta.ModelRefusedError", ValueError),
                          ("robonav.data.ResourceNotFoundError", FileNotFoundError),
                          ("robonav.runtime.backends.registry.BackendUnavailableError", RuntimeError),
                          ("robonav.hil.runner.HilError", RuntimeError)):
        assert issubclass(found[name], UserError) and issubclass(found[name], builtin), name
    # bugs and what the loop handles itself are not
    for name in ("robonav.runtime.backends.base.BackendStateError", "robonav.runtime.wire.protocol.WireCrcError",
                 "robonav.deploy.export.ExportError", "robonav.control.safety.SafetyInputError"):
        assert not issubclass(found[name], UserError), name


def test_ray_flags_with_the_r2d2_launch_file_are_one_line():
    line = _one_line_error(_robonav("train", "--launch", "train_q", "--ray", "local"), "train")
    assert line == ("robonav train: --ray and --ray-workers serve recurrent PPO only, but train.algo is 'r2d2': leave "
                    "them out, or train with algo ppo (--launch train)")
