"""What the real-data examples share: the machine a result was measured on, the results file, and Keras
(the JAX backend) when it is installed, to train the same model beside rnnstate."""
from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "results"


def machine():
    """Where a number was measured: host, CPU, thread count, library versions."""
    info = {"node": platform.node(), "processor": _cpu_name(), "python": platform.python_version(),
            "torch": torch.__version__, "torch_threads": torch.get_num_threads(), "cpus": os.cpu_count(),
            "load_average_1min": round(os.getloadavg()[0], 1) if hasattr(os, "getloadavg") else None,
            "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime())}
    try:
        import keras
        info["keras"] = f"{keras.__version__} ({keras.backend.backend()})"
    except ImportError:
        pass
    return info


def _cpu_name():
    """The CPU model (Linux: /proc/cpuinfo), else what `platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def write_results(name, results):
    """examples/results/<name>.json: the example's numbers and the machine that produced them."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"example": name, "machine": machine(), **results}, indent=2, default=_plain) + "\n")
    return path


def keras_or_none():
    """Keras 3 on JAX, or None when it is not installed (then the examples run rnnstate only)."""
    os.environ.setdefault("KERAS_BACKEND", "jax")
    try:
        import keras
    except ImportError:
        return None
    return keras


def set_threads(n):
    """Use `n` CPU threads in torch and (if it is not imported yet) in JAX; None: the libraries' defaults.
    On a busy machine one thread is much faster for small models: idle OpenMP workers spin against other
    processes."""
    if n is None:
        return
    import sys
    torch.set_num_threads(n)
    if "jax" not in sys.modules:
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false"
                                   f" intra_op_parallelism_threads={n}").strip()


def _plain(v):
    """numpy scalars and arrays as JSON numbers and lists."""
    return v.tolist() if hasattr(v, "tolist") else str(v)
