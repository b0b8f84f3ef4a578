"""What every benchmark's JSON carries: machine, CPU model, date, threads and load, and its atomic write."""

from __future__ import annotations

import datetime
import json
import os
import platform
from pathlib import Path
from typing import Any

from robonav.atomic import write_text_atomic

THREAD_VARS = ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (else platform's guess)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def bench_header(core: int | None) -> dict[str, Any]:
    """Machine, CPU model, date (UTC), pinned core, thread settings and the 1/5/15-minute load average."""
    return {"machine": platform.node(), "cpu_model": cpu_model(), "cpus": os.cpu_count(),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "python": platform.python_version(), "pinned_core": core,
            "threads": {v: os.environ.get(v, "") for v in THREAD_VARS},
            "load_avg": [round(x, 2) for x in os.getloadavg()]}


def write_json(path: str | os.PathLike[str], record: dict[str, Any]) -> Path:
    """Write ``record`` (with the load average at the end of the run added) as indented JSON, atomically."""
    record = {**record, "load_avg_end": [round(x, 2) for x in os.getloadavg()]}
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out, json.dumps(record, indent=1) + "\n")
    return out
