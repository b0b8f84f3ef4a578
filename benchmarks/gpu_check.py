"""The GPU check of the inference runtime, in one prepared run: parity, transfers and latency on a lent GPU.

Two steps. Here (with the simulator and torch), record what the GPU machine needs into one folder (about 8 MB for
the default policy):

    python benchmarks/gpu_check.py record --out out/gpu_check          # policy.onnx/.json/.npz + episodes.npz

On the GPU machine (Python 3.12, torch CUDA, ONNX Runtime CPU, numba; no simulator, no pip), from the checkout:

    PYTHONPATH=. python benchmarks/gpu_check.py run --data out/gpu_check [--json $OUT/gpu_check.json]

The CUDA half calls CUDA through cuda-bindings (robonav.runtime.backends.cuda). Without pip there, bring the wheels
from here and unpack them beside the data (a wheel is a zip):

    pip download 'cuda-bindings>=12.6,<13' --only-binary=:all: --python-version 3.12 \
        --platform manylinux_2_28_x86_64 -d out/wheels
    for w in out/wheels/*.whl; do python -m zipfile -e "$w" out/site; done   # then PYTHONPATH=.:out/site

``run`` checks, on the recorded episodes (resets included) against ONNX Runtime CPU FP32 (recomputed there when
onnxruntime imports, else the recorded actions):

1. TorchBackend on CUDA with two captured graphs (and eagerly): max |action error| <= 1e-5;
2. the TensorRT backend's CUDA half (robonav.runtime.backends.trt_backend.CudaGraphStep: pinned buffers, stream, two
   graphs, ping-pong, reset) with two stand-ins for the engine: `ShiftRegisterEngine` (device copies, exact NumPy
   twin: bit-exact) and `TorchStandIn` (the policy step in torch, in place on the raw device buffers): 1e-5;
3. transfers: in the CUDA half, each graph holds exactly one host-to-device copy (obs, from the pinned buffer) and
   one device-to-host copy (action, into the pinned buffer), and a step issues no copy of its own; for the torch
   backend, torch.profiler counts one HtoD and one DtoH memcpy per step;
4. latency per step end to end (obs in, step, action out, sync), median of rounds, next to Numba and ONNX Runtime
   on one CPU core of the same machine, labelled with the GPU.

Without CUDA it runs the CPU part, says what it skipped, and exits 2; a failed check exits 1.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TOLERANCE = 1e-5


def record(args: argparse.Namespace) -> int:
    """Export the policy and record episodes (simulator, ONNX Runtime) into ``args.out``."""
    from robonav.deploy.export import export_onnx
    from robonav.deploy.parity import backend_actions, record_steps, sim_config
    from robonav.eval.policies import checkpoint_path
    from robonav.runtime.backends.onnx_backend import OnnxBackend, OnnxPolicy

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    checkpoint = checkpoint_path(args.policy)
    done = export_onnx(checkpoint, out / "policy.onnx")
    rec = record_steps(lambda n: OnnxPolicy(done.onnx, n), sim_config(done.meta), args.steps, args.mazes, 0, 4)
    obs, starts = rec.sequence()
    with OnnxBackend(done.onnx) as backend:
        actions = backend_actions(backend, rec)
    np.savez_compressed(out / "episodes.npz", obs=obs, starts=starts, ort_actions=actions,
                        suite=np.array(args.mazes), policy=np.array(str(args.policy)))
    size = sum(p.stat().st_size for p in out.iterdir())
    print(f"recorded {len(obs)} steps of {int(starts.sum())} {args.mazes} episodes (D={obs.shape[1]}) into {out}/ "
          f"({size / 1e6:.1f} MB)")
    return 0


class TorchStandIn:
    """The policy step in torch, computed in place on raw device buffers: a stand-in for a TensorRT engine in the
    CUDA half. Every intermediate is preallocated, so enqueue allocates nothing and can be captured."""

    def __init__(self, arrays: dict[str, np.ndarray], device: str = "cuda") -> None:
        import torch

        from robonav.model.heads import HEADS, head_kind

        torch.backends.cuda.matmul.allow_tf32 = False  # FP32, as the ONNX Runtime reference
        self.torch = torch
        dev = torch.device(device)

        def t(name: str, transpose: bool = False) -> Any:
            a = np.asarray(arrays[name], np.float32)
            return torch.from_numpy(np.ascontiguousarray(a.T if transpose else a)).to(dev)

        head = head_kind(arrays)
        self.argmax = head == "argmax"  # a Q network: the best-scored primitive
        w_name, b_name, table = HEADS[head]
        self.mean, self.std, self.table = t("obs_mean"), t("obs_std"), t(table)
        self.clip = float(arrays["obs_clip"])
        self.x = torch.zeros(1, len(arrays["obs_mean"]), device=dev)
        self.encoder, k = [], 0
        while f"encoder_w{k}" in arrays:
            w = t(f"encoder_w{k}", True)
            self.encoder.append((w, t(f"encoder_b{k}"), torch.zeros(1, w.shape[1], device=dev)))
            k += 1
        self.hidden, self.layers = int(arrays["hidden"]), int(arrays["actor_layers"])
        self.state_layers = int(arrays["state_layers"])
        self.lstm = str(arrays["core"]) == "lstm"
        if self.lstm:
            self.cells = [(t(f"lstm_w_ih{i}", True), t(f"lstm_w_hh{i}", True), t(f"lstm_b{i}"))
                          for i in range(self.layers)]
            self.gates = torch.zeros(1, 4 * self.hidden, device=dev)
        else:
            self.core = (t("core_w", True), t("core_b"))
        self.tmp = torch.zeros(1, self.hidden, device=dev)
        self.mu = (t(w_name, True), t(b_name))
        self.q = torch.zeros(1, self.mu[0].shape[1], device=dev)
        self.best = torch.zeros(1, dtype=torch.int64, device=dev)

    def _wrap(self, ptr: int, shape: tuple[int, ...]) -> Any:
        class View:  # a device buffer seen through __cuda_array_interface__ (zero-copy)
            def __init__(self) -> None:
                self.__cuda_array_interface__ = {"shape": shape, "typestr": "<f4", "data": (ptr, False), "version": 2}

        return self.torch.as_tensor(View(), device="cuda")

    def enqueue(self, stream: int, a: dict[str, int]) -> None:
        torch = self.torch
        n, h = self.state_layers, self.hidden
        tensors = (self._wrap(a["obs"], tuple(self.x.shape)), self._wrap(a["h_in"], (n, 1, h)),
                   self._wrap(a["c_in"], (n, 1, h)), self._wrap(a["action"], (1, 2)),
                   self._wrap(a["h_out"], (n, 1, h)), self._wrap(a["c_out"], (n, 1, h)))
        with torch.cuda.stream(torch.cuda.ExternalStream(stream)):
            self.compute(*tensors)

    def compute(self, obs: Any, h_in: Any, c_in: Any, action: Any, h_out: Any, c_out: Any) -> None:
        """The step, in place: obs [1, D], h_in, c_in [L, 1, H] -> action [1, A], h_out, c_out."""
        torch = self.torch
        with torch.no_grad():
            torch.sub(obs, self.mean, out=self.x)
            self.x.div_(self.std).clamp_(-self.clip, self.clip)
            z = self.x
            for w, b, buf in self.encoder:
                torch.addmm(b, z, w, out=buf)
                torch.nn.functional.elu_(buf)
                z = buf
            h_out.copy_(h_in)  # rows the actor does not write pass through
            c_out.copy_(c_in)
            if self.lstm:
                for layer, (w_ih, w_hh, b) in enumerate(self.cells):
                    torch.addmm(b, z, w_ih, out=self.gates)
                    self.gates.addmm_(h_in[layer], w_hh)
                    i, f, g, o = self.gates.chunk(4, dim=-1)
                    i.sigmoid_(), f.sigmoid_(), g.tanh_(), o.sigmoid_()
                    torch.mul(f, c_in[layer], out=c_out[layer])
                    c_out[layer].addcmul_(i, g)
                    torch.tanh(c_out[layer], out=self.tmp)
                    torch.mul(o, self.tmp, out=h_out[layer])
                    z = h_out[layer]
            else:
                torch.addmm(self.core[1], z, self.core[0], out=self.tmp)
                z = self.tmp.tanh_()
            if self.argmax:
                torch.addmm(self.mu[1], z, self.mu[0], out=self.q)
                torch.argmax(self.q, dim=-1, out=self.best)
                torch.index_select(self.table, 0, self.best, out=action)
            else:
                torch.addmm(self.mu[1], z, self.mu[0], out=action)
                action.clamp_(-1.0, 1.0).mul_(self.table)


def _drive(step: Any, reset: Any, obs: np.ndarray, starts: np.ndarray) -> np.ndarray:
    out = np.empty((len(obs), 2), np.float32)
    for t in range(len(obs)):
        if starts[t]:
            reset()
        out[t] = step(obs[t : t + 1])
    return out


def _latency(step: Any, obs: np.ndarray, steps: int, rounds: int) -> float:
    """Median over rounds of the mean microseconds per step."""
    means = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for t in range(steps):
            step(obs[t % len(obs) : t % len(obs) + 1])
        means.append((time.perf_counter() - t0) / steps * 1e6)
    return statistics.median(means)


def run(args: argparse.Namespace) -> int:
    from robonav.model.sidecar import read_sidecar
    from robonav.runtime.backends.numba_backend import NumbaBackend, load_weights

    data = Path(args.data)
    model = data / "policy.onnx"
    with np.load(data / "episodes.npz") as f:
        obs, starts, reference = f["obs"], f["starts"], f["ort_actions"]
    sidecar = read_sidecar(model)
    report: dict[str, Any] = {"steps": len(obs), "episodes": int(starts.sum()), "obs_dim": sidecar.obs_dim,
                              "hidden": sidecar.hidden, "python": platform.python_version(), "checks": {},
                              "us_per_step": {}}
    checks, us = report["checks"], report["us_per_step"]

    def check(name: str, actions: np.ndarray, tol: float = TOLERANCE) -> None:
        err = float(np.abs(actions - reference).max())
        checks[name] = {"max_abs_error": err, "tolerance": tol, "passed": err <= tol}
        print(f"  parity {name:<34} max |action error| {err:.3g} (tolerance {tol:g}) "
              f"{'PASS' if err <= tol else 'FAIL'}")

    try:
        from robonav.runtime.backends.onnx_backend import OnnxBackend

        with OnnxBackend(model) as ort:
            fresh = _drive(ort.step, ort.reset, obs, starts)
            us["ort cpu"] = _latency(ort.step, obs, args.steps, args.rounds)
        report["recorded_vs_recomputed_ort"] = float(np.abs(fresh - reference).max())
        reference = fresh
    except ImportError:
        report["recorded_vs_recomputed_ort"] = None
    with NumbaBackend(model) as numba:
        check("numba cpu", _drive(numba.step, numba.reset, obs, starts))
        us["numba cpu"] = _latency(numba.step, obs, args.steps, args.rounds)
    import torch

    if not torch.cuda.is_available():
        print("gpu_check: no CUDA GPU visible (torch.cuda.is_available() is False): CUDA checks skipped")
        report["gpu"] = None
        _finish(report, args)
        return 2
    report["gpu"] = torch.cuda.get_device_name()
    report["torch"] = torch.__version__
    _torch_checks(model, obs, starts, args, check, report)
    _cuda_half_checks(sidecar, load_weights(data / "policy.npz", sidecar), obs, starts, args, check, report)
    _finish(report, args)
    return 0 if all(c["passed"] for c in checks.values()) else 1


def _torch_checks(model: Path, obs: np.ndarray, starts: np.ndarray, args: argparse.Namespace, check: Any,
                  report: dict[str, Any]) -> None:
    import torch
    from torch.profiler import ProfilerActivity, profile

    from robonav.runtime.backends.torch_backend import TorchBackend

    for graphs in (True, False):
        name = f"torch cuda {'graph' if graphs else 'eager'}"
        with TorchBackend(model, device="cuda", cuda_graph=graphs) as backend:
            check(name, _drive(backend.step, backend.reset, obs, starts))
            report["us_per_step"][name] = _latency(backend.step, obs, args.steps, args.rounds)
            if graphs:
                n = 50
                with profile(activities=[ProfilerActivity.CUDA]) as prof:
                    for t in range(n):
                        backend.step(obs[t : t + 1])
                    torch.cuda.synchronize()
                names = [e.name for e in prof.events()]
                h2d, d2h = sum("HtoD" in x for x in names), sum("DtoH" in x for x in names)
                ok = (h2d, d2h) == (n, n)
                report["checks"]["torch graph transfers"] = {"steps": n, "HtoD": h2d, "DtoH": d2h, "passed": ok}
                print(f"  transfers torch cuda graph: {h2d} HtoD and {d2h} DtoH memcpys in {n} steps (profiler) "
                      f"{'PASS' if ok else 'FAIL'}")


def _cuda_half_checks(sidecar: Any, arrays: dict[str, np.ndarray], obs: np.ndarray, starts: np.ndarray,
                      args: argparse.Namespace, check: Any, report: dict[str, Any]) -> None:
    import torch

    from robonav.runtime.backends.cuda import CudaUnavailableError, cudart
    from robonav.runtime.backends.trt_backend import CudaGraphStep, ShiftRegisterEngine, shift_register_reference

    torch.cuda.init()  # torch's context first: cuda-bindings' runtime then shares the device's primary context
    try:
        cuda = cudart()
    except CudaUnavailableError as e:  # a check that cannot run fails: it is not skipped
        report["checks"]["cuda half"] = {"passed": False, "error": str(e)}
        print(f"  cuda half: FAILED ({e})")
        return
    report["cuda_binding"] = cuda.path
    report["cuda_versions"] = cuda.versions()
    engines = {"shift register": ShiftRegisterEngine(cuda, sidecar), "torch stand-in": TorchStandIn(arrays)}
    for name, engine in engines.items():
        for graphs in (True, False):
            label = f"cuda half, {name}, {'graphs' if graphs else 'direct'}"
            try:
                step = CudaGraphStep(engine, sidecar, cuda, graphs=graphs).open()
            except Exception as e:  # report and go on: one failing stand-in must not hide the others
                report["checks"][label] = {"passed": False, "error": f"{type(e).__name__}: {e}"}
                print(f"  {label}: FAILED to open ({type(e).__name__}: {e})")
                continue
            try:
                actions = _drive(step.step, step.reset, obs, starts)
                if name == "shift register":
                    want = shift_register_reference(obs, starts, sidecar.state_layers * sidecar.hidden)
                    exact = bool(np.array_equal(actions, want))
                    report["checks"][label] = {"bit_exact": exact, "passed": exact}
                    print(f"  parity {label:<34} bit-exact against its NumPy twin: {'PASS' if exact else 'FAIL'}")
                else:
                    check(label, actions)
                report["us_per_step"][label] = _latency(step.step, obs, args.steps, args.rounds)
                if graphs:
                    _graph_transfers(cuda, step, sidecar, label, report)
            finally:
                step.close()


def _graph_transfers(cuda: Any, step: Any, sidecar: Any, label: str, report: dict[str, Any]) -> None:
    before = dict(cuda.copies)
    for _ in range(20):
        step.step(np.zeros((1, sidecar.obs_dim), np.float32))
    direct = {k: v - before.get(k, 0) for k, v in cuda.copies.items() if v != before.get(k, 0)}
    graphs = []
    ok = not direct
    for graph in step.graph:
        nodes = cuda.graph_memcpy_nodes(graph)
        host = sorted((n.direction, n.nbytes, n.src_type, n.dst_type) for n in nodes if n.direction != "DtoD")
        want = sorted([("DtoH", 4 * len(sidecar.action_limits), "device", "pinned"),
                       ("HtoD", 4 * sidecar.obs_dim, "pinned", "device")])
        ok = ok and host == want
        graphs.append({"node_types": dict(cuda.graph_node_types(graph)), "host_copies": host})
    report["checks"][f"{label} transfers"] = {"direct_copies_in_20_steps": direct, "graphs": graphs, "passed": ok}
    print(f"  transfers {label}: per graph {graphs[0]['host_copies']} + device-only nodes "
          f"{graphs[0]['node_types']}; copies issued by steps: {direct or 'none'} {'PASS' if ok else 'FAIL'}")


def _finish(report: dict[str, Any], args: argparse.Namespace) -> None:
    print(f"latency per step, end to end, median of {args.rounds} rounds x {args.steps} steps "
          f"(GPU: {report['gpu'] or 'none'}; CPU rows one thread):")
    for name, value in report["us_per_step"].items():
        print(f"  {name:<40}{value:>9.1f} us")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1, sort_keys=True, default=str))
    print(json.dumps({"gpu": report["gpu"], "passed": all(c["passed"] for c in report["checks"].values()),
                      "us_per_step": report["us_per_step"]}, sort_keys=True))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("record", help="export a policy and record episodes for the GPU machine (needs the simulator)")
    r.add_argument("--policy", default="default", help="checkpoint, or 'default' (shipped)")
    r.add_argument("--out", default="out/gpu_check", help="folder to write (default: %(default)s)")
    r.add_argument("--steps", type=int, default=1000, help="at least this many ticks (default: %(default)s)")
    r.add_argument("--mazes", default="val-3x3", help="suite: short episodes, so the steps cross resets")
    g = sub.add_parser("run", help="the checks (on the GPU machine)")
    g.add_argument("--data", default="out/gpu_check", help="folder written by record (default: %(default)s)")
    g.add_argument("--steps", type=int, default=1000, help="steps per timing round (default: %(default)s)")
    g.add_argument("--rounds", type=int, default=5, help="timing rounds (default: %(default)s)")
    g.add_argument("--json", help="write the full report here")
    args = p.parse_args()
    return record(args) if args.cmd == "record" else run(args)


if __name__ == "__main__":
    sys.exit(main())
