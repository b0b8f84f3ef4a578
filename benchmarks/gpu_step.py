"""The GPU policy step with the state on the device: the fused Numba CUDA kernel at batch 1, 64 and 1,024, beside
the Numba CPU step of the same model on one core, in one run.

    python benchmarks/gpu_step.py [--model default] [--steps 2000] [--batches 1,64,1024] [--json]

Each figure is microseconds per step end to end (observations host -> device, the kernel, actions device -> host,
synchronised), the median over ``--steps`` steps after a warm-up, and steps per second per robot row at each
batch. Parity: the kernel's actions against the Numba CPU step over the same recorded observations (the model's
selftest recording) through one episode, max |error|. Without a CUDA device it measures nothing and writes that
(``"measured": false`` with the reason) to results/bench/gpu_step.json, so no figure is ever claimed unmeasured.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

for _v in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="default", help="step model (.onnx, its .npz beside it; 'default': shipped)")
    p.add_argument("--steps", type=int, default=2000, help="timed steps per batch size")
    p.add_argument("--batches", default="1,64,1024", help="comma-separated batch sizes")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    p.add_argument("--out", default="results/bench/gpu_step.json", help="where to write the JSON")
    args = p.parse_args()
    from numba import cuda

    from benchmarks.bench_common import bench_header, write_json
    from robonav.model.sidecar import read_sidecar
    from robonav.runtime.backends.numba_backend import NumbaBackend, load_model_weights
    from robonav.runtime.backends.numba_kernels import pack_weights
    from robonav.runtime.run import model_path

    model = model_path(args.model)
    record: dict = {**bench_header(None), "benchmark": "gpu_step", "model": str(model), "steps": args.steps}
    if not cuda.is_available() or os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        record.update(measured=False, reason="no CUDA device on this machine (numba.cuda.is_available() is False)"
                      if not cuda.is_available() else "the CUDA simulator, not a GPU")
        print(f"gpu step: not measured: {record['reason']}", file=sys.stderr)
    else:
        from robonav.runtime.backends.cuda_step import CudaStepper

        sidecar = read_sidecar(model, check_hash=False)
        packed = pack_weights(load_model_weights(model, sidecar))
        record["device"] = cuda.get_current_device().name.decode()
        frames = _recorded_obs(model, sidecar.obs_dim)
        rows = []
        for batch in (int(b) for b in args.batches.split(",")):
            stepper = CudaStepper(packed, batch=batch)
            obs = np.ascontiguousarray(np.resize(frames, (batch, sidecar.obs_dim)), np.float32)
            for _ in range(50):
                stepper.step(obs)
            times = np.empty(args.steps)
            for i in range(args.steps):
                t = time.perf_counter()
                stepper.step(obs)
                times[i] = time.perf_counter() - t
            us = float(np.median(times) * 1e6)
            rows.append({"batch": batch, "p50_us": us, "p99_us": float(np.percentile(times, 99) * 1e6),
                         "robot_steps_per_s": batch / (us * 1e-6)})
            print(f"  batch {batch:>5}: {us:8.1f} us per step (p99 {rows[-1]['p99_us']:.1f}), "
                  f"{rows[-1]['robot_steps_per_s']:,.0f} robot-steps/s", file=sys.stderr)
        cpu = NumbaBackend(model).open()
        stepper = CudaStepper(packed, batch=1)
        errs = [float(np.abs(stepper.step(o[None]) - cpu.step(o)).max()) for o in frames]
        t_cpu = []
        for o in frames:
            t = time.perf_counter()
            cpu.step(o)
            t_cpu.append(time.perf_counter() - t)
        record.update(measured=True, rows=rows, parity_max_abs_error=max(errs), parity_steps=len(frames),
                      numba_cpu_p50_us=float(np.median(t_cpu) * 1e6))
        print(f"  parity against the Numba CPU step: max |error| {max(errs):.2e} over {len(frames)} steps; "
              f"Numba CPU {record['numba_cpu_p50_us']:.1f} us", file=sys.stderr)
    print(f"wrote {write_json(args.out, record)}", file=sys.stderr)
    if args.json:
        print(json.dumps(record, sort_keys=True))
    return 0


def _recorded_obs(model: Path, dim: int) -> np.ndarray:
    """The first 500 observations of the model's selftest recording (its episodes back to back: the parity check
    runs through no reset, on both sides alike), else seeded normal noise."""
    from robonav.runtime.selftest import SelftestRecording

    path = model.with_suffix(".selftest.npz")
    if path.exists():
        return np.ascontiguousarray(SelftestRecording.load(path).obs[:500], np.float32)
    return np.random.default_rng(0).normal(size=(500, dim)).astype(np.float32)


if __name__ == "__main__":
    raise SystemExit(main())
