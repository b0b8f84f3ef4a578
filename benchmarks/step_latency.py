"""Microseconds per policy step on one pinned CPU core: torch eager, TorchScript, ONNX Runtime FP32, FP16 and INT8.

One policy step is what the robot runs every control tick: obs [1, D] and the recurrent state in, action and the
next state out, batch 1. Every form runs the same observations in the same process, pinned to one core with one
thread, interleaved round by round (so drift on a shared machine hits all alike); the table gives the median of
the rounds' means and the ratio to torch eager.

    python benchmarks/step_latency.py                                    # the default recipe's shape, random weights
    python benchmarks/step_latency.py --policy runs/default/last.pt      # a trained checkpoint
    python benchmarks/step_latency.py --onnx policy.onnx --int8 policy.int8.onnx   # shipped models (+ sidecars)

Without --onnx/--int8 the checkpoint is exported and quantized into a temporary folder; that INT8 model is
calibrated on random observations (timing does not depend on the activation ranges; never ship it).
The ONNX Runtime rows time ``OnnxBackend.step``: the runtime's own call, input checks and state hand-over included.
"""

from __future__ import annotations

import argparse
import dataclasses
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
    if args.policy:
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
        from robonav.runtime.sidecar import read_sidecar

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
    p.add_argument("--policy", help="checkpoint (default: random weights in the default recipe's shape)")
    p.add_argument("--onnx", help="an FP32 export to time (default: export --policy)")
    p.add_argument("--int8", help="an INT8 model to time (default: quantize the FP32 model on random inputs)")
    p.add_argument("--steps", type=int, default=2000, help="steps per round and form")
    p.add_argument("--rounds", type=int, default=7, help="rounds (each form once per round, interleaved)")
    p.add_argument("--core", type=int, default=None, help="CPU core to pin to (default: the last allowed)")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    args = p.parse_args()

    core = args.core if args.core is not None else max(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {core})
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"
    import onnxruntime
    import torch

    from robonav.deploy.export import _step_module
    from robonav.policy.agent import load_policy
    from robonav.runtime.onnx_backend import OnnxBackend

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

        backends = {k: OnnxBackend(v).open() for k, v in models.items()}

        def ort_loop(backend):
            def run():
                backend.reset()
                for t in range(args.steps):
                    backend.step(obs[t])
            return run

        forms = {"torch eager": torch_loop(model.step), "TorchScript": torch_loop(scripted),
                 "ORT FP32": ort_loop(backends["fp32"]), "ORT FP16": ort_loop(backends["fp16"]),
                 "ORT INT8": ort_loop(backends["int8"])}
        for run in forms.values():  # warm-up
            run()
        times: dict[str, list[float]] = {k: [] for k in forms}
        for _ in range(args.rounds):
            for name, run in forms.items():
                t0 = time.perf_counter()
                run()
                times[name].append((time.perf_counter() - t0) / args.steps * 1e6)
        sizes = {k: v.stat().st_size for k, v in models.items()}
    us = {k: statistics.median(v) for k, v in times.items()}
    base = us["torch eager"]
    params = sum(p.numel() for p in model.actor.parameters()) + sum(p.numel() for p in model.mu.parameters())
    settings = {"obs_dim": d, "hidden": hidden, "layers": layers, "encoder": list(model.cfg.encoder),
                "step_params": params, "threads": 1, "core": core, "steps": args.steps, "rounds": args.rounds,
                "torch": torch.__version__, "onnxruntime": onnxruntime.__version__, "cpu": platform.processor() or
                platform.machine(), "policy": args.policy or "random weights"}
    print(f"policy step latency, batch 1, one thread pinned to core {core}: D={d}, H={hidden}, L={layers}, encoder "
          f"{list(model.cfg.encoder)}, {params} parameters in the step; {args.rounds} rounds x {args.steps} steps, "
          "median of round means", file=sys.stderr if args.json else sys.stdout)
    if not args.json:
        print(f"  {'form':<12}{'us/step':>9}{'min':>9}{'vs eager':>10}{'file bytes':>12}")
        files = {"ORT FP32": sizes["fp32"], "ORT FP16": sizes["fp16"], "ORT INT8": sizes["int8"]}
        for name, value in us.items():
            print(f"  {name:<12}{value:>9.1f}{min(times[name]):>9.1f}{base / value:>9.2f}x{files.get(name, ''):>12}")
        print(f"  torch {torch.__version__}, onnxruntime {onnxruntime.__version__}, {settings['cpu']}")
    else:
        print(json.dumps({"us_per_step": us, "speedup_vs_eager": {k: base / v for k, v in us.items()},
                          "bytes": sizes, **settings}, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
