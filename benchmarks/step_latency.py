"""Microseconds per policy step on one pinned CPU core: torch eager, TorchScript, every runtime backend (ONNX Runtime
FP32, FP16, INT8; Numba; the PyTorch backend on the CPU) and, where a GPU is visible, the PyTorch CUDA-graph backend.

One policy step is what the robot runs every control tick: obs [1, D] and the recurrent state in, action and the
next state out, batch 1. Every form runs the same observations in the same process, pinned to one core with one
thread, interleaved round by round (so drift on a shared machine hits all alike); the table gives the median of
the rounds' means and the ratio to torch eager.

    python benchmarks/step_latency.py                                    # the shipped default policy (D = 651)
    python benchmarks/step_latency.py --policy random                    # the default recipe's shape, random weights
    python benchmarks/step_latency.py --policy runs/default/last.pt      # a trained checkpoint
    python benchmarks/step_latency.py --policy x.pt --onnx x.onnx --int8 x.int8.onnx   # given models (+ sidecars)

By default it times the shipped default policy: robonav/data/policies/default.pt, .onnx and .int8.onnx. Otherwise,
without --onnx/--int8, the checkpoint is exported and quantized into a temporary folder; that INT8 model is
calibrated on random observations (timing does not depend on the activation ranges; never ship it). The figures
go to results/bench/step_latency.json (``--out``) with machine, CPU, date, threads and load. The step does not
depend on guidance beyond the observation's width (651 inputs with it, 645 without: 1 % of the encoder's
multiply-adds), so no second policy is timed.
The backend rows time ``Backend.step``: the runtime's own call, input checks and state hand-over included; "Numba
kernel" times the bare kernel call (`policy_step`), to show what the backend wrapper adds. The header gives D, H,
the encoder's multiply-adds and the whole step's. The CUDA row is end to end (obs in, graph, action out, sync) and
labelled with the GPU; its CPU thread is pinned like the rest.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _checkpoint(args: argparse.Namespace, folder: Path) -> Path:
    """The checkpoint to time: --policy, or a random policy of the default recipe's shape."""
    if args.policy == "default":
        from robonav.data import resource

        return resource("policies", "default.pt")
    if args.policy != "random":
        return Path(args.policy)
    import torch

    from robonav.policy.actor_critic import ActorCritic, PolicyConfig
    from robonav.policy.checkpoint import save_checkpoint
    from robonav.sensors.spec import ObservationSpec, PreprocessorConfig

    spec = ObservationSpec(PreprocessorConfig(guidance=True))
    cfg = PolicyConfig(encoder=(256, 256), hidden=128)
    torch.manual_seed(0)
    model = ActorCritic(spec.size, cfg)
    meta = {"policy": {**dataclasses.asdict(cfg), "encoder": list(cfg.encoder)}, "obs_dim": spec.size,
            "observation_spec": spec.to_dict(), "action_limits": [0.5, 2.0], "control_period": 0.1,
            "observation": "preprocessor"}
    return save_checkpoint(folder / "random.pt", model.state_dict(), meta)


def _models(args: argparse.Namespace, checkpoint: Path, folder: Path) -> dict[str, Path]:
    from robonav.deploy.export import export_onnx
    from robonav.deploy.quantize import QuantizeConfig, quantize_fp16, quantize_int8_from_feeds

    fp32 = Path(args.onnx) if args.onnx else export_onnx(checkpoint, folder / "policy.onnx").onnx
    fp16 = fp32.with_name(f"{fp32.stem}.fp16.onnx")
    if not fp16.exists():
        fp16 = folder / "policy.fp16.onnx"
        quantize_fp16(fp32, fp16)
    if args.int8:
        int8 = Path(args.int8)
    else:
        from robonav.model.sidecar import read_sidecar

        sidecar = read_sidecar(fp32)
        rng = np.random.default_rng(0)
        feeds = [{"obs": rng.normal(size=(1, sidecar.obs_dim)).astype(np.float32),
                  "h_in": rng.uniform(-1, 1, sidecar.state_shape).astype(np.float32),
                  "c_in": rng.normal(size=sidecar.state_shape).astype(np.float32)} for _ in range(64)]
        int8 = folder / "policy.int8.onnx"
        quantize_int8_from_feeds(fp32, int8, feeds, QuantizeConfig(), {"method": "minmax", "suite": "random (timing)"})
    return {"fp32": fp32, "fp16": fp16, "int8": int8}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--policy", default="default", help="checkpoint; 'default': the shipped default policy and its "
                   "ONNX models; 'random': random weights in the default recipe's shape")
    p.add_argument("--onnx", help="an FP32 export to time (default: the shipped one, else export --policy)")
    p.add_argument("--int8", help="an INT8 model to time (default: the shipped one, else quantize the FP32 model "
                   "on random inputs)")
    p.add_argument("--out", default="results/bench/step_latency.json", help="where to write the JSON")
    p.add_argument("--steps", type=int, default=2000, help="steps per round and form")
    p.add_argument("--rounds", type=int, default=7, help="rounds (each form once per round, interleaved)")
    p.add_argument("--core", type=int, default=None, help="CPU core to pin to (default: the last allowed)")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    args = p.parse_args()

    core = args.core if args.core is not None else max(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {core})
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = "1"
    if args.policy == "default":
        from robonav.data import resource

        args.onnx = args.onnx or str(resource("policies", "default.onnx"))
        args.int8 = args.int8 or str(resource("policies", "default.int8.onnx"))
    from benchmarks.bench_common import bench_header, write_json

    header = bench_header(core)
    import onnxruntime
    import torch

    from robonav.deploy.export import _step_module
    from robonav.policy.agent import load_policy
    from robonav.runtime.backends.numba_backend import NumbaBackend
    from robonav.runtime.backends.numba_kernels import aligned_zeros, policy_step
    from robonav.runtime.backends.onnx_backend import OnnxBackend
    from robonav.runtime.backends.torch_backend import TorchBackend

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = _checkpoint(args, Path(tmp))
        model, meta = load_policy(checkpoint)
        models = _models(args, checkpoint, Path(tmp))
        d, layers, hidden = int(meta["obs_dim"]), model.state_layers, model.cfg.hidden
        rng = np.random.default_rng(1)
        obs = rng.uniform(0, 1, size=(args.steps, 1, d)).astype(np.float32)
        obs_t = torch.from_numpy(obs)
        zero = torch.zeros(layers, 1, hidden)
        scripted = torch.jit.optimize_for_inference(torch.jit.trace(_step_module(model), (obs_t[0], zero, zero)))

        def torch_loop(step):
            def run():
                h = c = zero
                with torch.inference_mode():
                    for t in range(args.steps):
                        _, h, c = step(obs_t[t], h, c)
            return run

        backends = {f"ORT {k.upper()}": OnnxBackend(v).open() for k, v in models.items()}
        backends["Numba"] = NumbaBackend(models["fp32"]).open()
        backends["torch CPU backend"] = TorchBackend(models["fp32"]).open()
        gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else None
        if gpu:
            backends["torch CUDA graph"] = TorchBackend(models["fp32"], device="cuda").open()

        def backend_loop(backend):
            def run():
                backend.reset()
                for t in range(args.steps):
                    backend.step(obs[t])
            return run

        def kernel_loop(backend):
            packed = backend.packed
            s_in, s_out = aligned_zeros(backend._state_in.size), aligned_zeros(backend._state_in.size)
            action, scratch = np.zeros(2, np.float32), aligned_zeros(packed.scratch_size)

            def run():
                a, b = s_in, s_out
                for t in range(args.steps):
                    policy_step(obs[t], a, b, action, packed.weights, packed.layout, scratch)
                    a, b = b, a
            return run

        forms = {"torch eager": torch_loop(model.step), "TorchScript": torch_loop(scripted),
                 **{name: backend_loop(b) for name, b in backends.items()},
                 "Numba kernel": kernel_loop(backends["Numba"])}
        for run in forms.values():  # warm-up
            run()
        times: dict[str, list[float]] = {k: [] for k in forms}
        for _ in range(args.rounds):
            for name, run in forms.items():
                t0 = time.perf_counter()
                run()
                times[name].append((time.perf_counter() - t0) / args.steps * 1e6)
        sizes = {k: v.stat().st_size for k, v in models.items()}
        sizes["npz"] = models["fp32"].with_suffix(".npz").stat().st_size
        for b in backends.values():
            b.close()
    us = {k: statistics.median(v) for k, v in times.items()}
    base = us["torch eager"]
    params = sum(p.numel() for p in model.actor.parameters()) + sum(p.numel() for p in model.mu.parameters())
    widths = [d, *model.cfg.encoder]
    encoder_macs = sum(a * b for a, b in itertools.pairwise(widths))
    core_in = widths[-1]
    core_macs = (sum(((core_in if i == 0 else hidden) + hidden) * 4 * hidden for i in range(model.cfg.layers))
                 if model.cfg.core == "lstm" else core_in * hidden)
    step_macs = encoder_macs + core_macs + hidden * 2
    settings = {"obs_dim": d, "hidden": hidden, "layers": layers, "encoder": list(model.cfg.encoder),
                "encoder_macs": encoder_macs, "step_macs": step_macs, "gpu": gpu,
                "step_params": params, "threads": 1, "core": core, "steps": args.steps, "rounds": args.rounds,
                "torch": torch.__version__, "onnxruntime": onnxruntime.__version__, "cpu": platform.processor() or
                platform.machine(), "policy": args.policy or "random weights"}
    print(f"policy step latency, batch 1, one thread pinned to core {core}: D={d}, H={hidden}, L={layers}, encoder "
          f"{list(model.cfg.encoder)} ({encoder_macs} multiply-adds; {step_macs} in the whole step), {params} "
          f"parameters in the step; {args.rounds} rounds x {args.steps} steps, median of round means"
          + (f"; CUDA on {gpu}" if gpu else "; no CUDA GPU visible"), file=sys.stderr if args.json else sys.stdout)
    if not args.json:
        print(f"  {'form':<18}{'us/step':>9}{'min':>9}{'vs eager':>10}{'file bytes':>12}")
        files = {"ORT FP32": sizes["fp32"], "ORT FP16": sizes["fp16"], "ORT INT8": sizes["int8"],
                 "Numba": sizes["npz"]}
        for name, value in us.items():
            print(f"  {name:<18}{value:>9.1f}{min(times[name]):>9.1f}{base / value:>9.2f}x{files.get(name, ''):>12}")
        print(f"  torch {torch.__version__}, onnxruntime {onnxruntime.__version__}, {settings['cpu']}")
    record = {**header, "benchmark": "step_latency", "us_per_step": us,
              "speedup_vs_eager": {k: base / v for k, v in us.items()}, "bytes": sizes, "settings": settings}
    path = write_json(args.out, record)
    if args.json:
        print(json.dumps(record, sort_keys=True))
    else:
        print(f"  wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
