"""Timing, machine description and table formatting for the rnnstate benchmarks.

Kept free of torch/keras imports at module level so that it can be imported
cheaply; everything that needs a framework receives it as an argument.
"""

from __future__ import annotations

import gc
import os
import platform
import socket
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional


# --------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------


@dataclass
class TimingPolicy:
    """How long / how often each implementation is measured (per
    implementation and config; see ``measure_group``)."""

    warmup: int = 1
    target_s: float = 0.5
    min_reps: int = 5
    max_reps: int = 2000
    collect: bool = True     # gc.collect() before each measurement


    @classmethod
    def for_mode(cls, smoke: bool, quick: bool) -> "TimingPolicy":
        if smoke:
            return cls(warmup=1, target_s=0.0, min_reps=2, max_reps=2,
                       collect=False)
        if quick:
            return cls(warmup=1, target_s=0.15, min_reps=3, max_reps=500)
        return cls(warmup=1, target_s=0.5, min_reps=5, max_reps=2000)


@dataclass
class Timing:
    median_ms: float
    min_ms: float
    q1_ms: float
    q3_ms: float
    reps: int
    warmup: int
    cpu_per_wall: float = 0.0
    samples_ms: List[float] = field(default_factory=list)

    def as_dict(self, keep_samples: bool = False) -> Dict:
        d = {
            "median_ms": self.median_ms,
            "min_ms": self.min_ms,
            "q1_ms": self.q1_ms,
            "q3_ms": self.q3_ms,
            "reps": self.reps,
            "warmup": self.warmup,
            "cpu_per_wall": round(self.cpu_per_wall, 3),
        }
        if keep_samples:
            d["samples_ms"] = self.samples_ms
        return d


def _quantile(sorted_vals: List[float], q: float) -> float:
    if len(sorted_vals) == 1:
        return sorted_vals[0]
    pos = q * (len(sorted_vals) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(sorted_vals) - 1)
    frac = pos - lo
    return sorted_vals[lo] * (1 - frac) + sorted_vals[hi] * frac


def measure(fn: Callable[[], object], policy: TimingPolicy,
            sync: Optional[Callable[[], None]] = None) -> Timing:
    """Median wall time of ``fn()`` (a group of one, see ``measure_group``).
    Exceptions from ``fn`` propagate."""
    res = measure_group({"fn": fn}, policy, sync)["fn"]
    if isinstance(res, BaseException):
        raise res
    return res


def _no_sync():
    return None


def measure_group(fns: Dict[str, Callable[[], object]], policy: TimingPolicy,
                  sync: Optional[Callable[[], None]] = None
                  ) -> Dict[str, "Timing | BaseException"]:
    """Median wall time of each ``fn()`` in ``fns``, measured interleaved.

    Per implementation: ``policy.warmup`` untimed calls, one timed estimate
    call (discarded), and ``n = clamp(target_s / estimate, min_reps,
    max_reps)`` timed calls.  The timed calls of all implementations are
    interleaved round-robin, in chunks of consecutive calls of one
    implementation lasting ~20 ms (so caches are warm within a chunk), so
    that a burst of load from other processes on a shared machine hits all
    implementations alike and the *ratios* stay meaningful.

    ``fn`` must itself force completion of asynchronous work it starts (JAX
    ``block_until_ready``); ``sync`` (e.g. ``torch.cuda.synchronize``) is
    called after every call inside the timed region.  An implementation that
    raises is dropped from the rotation and its exception is returned in
    place of its Timing; nothing else is caught.
    """
    perf = time.perf_counter
    sync = sync or _no_sync
    out: Dict[str, "Timing | BaseException"] = {}
    est: Dict[str, float] = {}
    for name, fn in fns.items():
        try:
            for _ in range(policy.warmup):
                fn()
                sync()
            t0 = perf()
            fn()
            sync()
            est[name] = perf() - t0
        except Exception as exc:  # recorded by the caller, not swallowed
            out[name] = exc

    reps, chunk, rounds = {}, {}, {}
    for name, e in est.items():
        if policy.target_s <= 0:
            n = policy.min_reps
        else:
            n = int(policy.target_s / max(e, 1e-7))
            n = max(policy.min_reps, min(policy.max_reps, n))
        reps[name] = n
        chunk[name] = max(1, min(n, int(0.02 / max(e, 1e-7))))
        rounds[name] = -(-n // chunk[name])

    samples: Dict[str, List[float]] = {n: [] for n in est}
    cpu = {n: 0.0 for n in est}
    wall = {n: 0.0 for n in est}
    active = [n for n in fns if n in est]
    if policy.collect:
        gc.collect()
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        while active:
            for name in list(active):
                fn, buf = fns[name], samples[name]
                k = min(chunk[name], reps[name] - len(buf))
                c0, w0 = time.process_time(), perf()
                try:
                    for _ in range(k):
                        t0 = perf()
                        fn()
                        sync()
                        buf.append(perf() - t0)
                except Exception as exc:
                    out[name] = exc
                    active.remove(name)
                    continue
                cpu[name] += time.process_time() - c0
                wall[name] += perf() - w0
                if len(buf) >= reps[name]:
                    active.remove(name)
    finally:
        if gc_was_enabled:
            gc.enable()

    for name in est:
        if name in out:
            continue
        ms = sorted(v * 1e3 for v in samples[name])
        out[name] = Timing(
            median_ms=statistics.median(ms),
            min_ms=ms[0],
            q1_ms=_quantile(ms, 0.25),
            q3_ms=_quantile(ms, 0.75),
            reps=len(ms),
            warmup=policy.warmup,
            # process CPU seconds (all threads) per wall second over the
            # timed calls: ~torch.get_num_threads() for a well-parallelised
            # kernel on an idle machine; lower values hint at other load
            cpu_per_wall=cpu[name] / max(wall[name], 1e-9),
            samples_ms=[v * 1e3 for v in samples[name]],
        )
    return {n: out[n] for n in fns}


# --------------------------------------------------------------------------
# Machine description
# --------------------------------------------------------------------------


def cpu_info() -> Dict:
    info = {"cpu_model": platform.processor() or platform.machine(),
            "logical_cpus": os.cpu_count()}
    try:
        info["affinity_cpus"] = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        pass
    try:
        with open("/proc/cpuinfo") as fh:
            text = fh.read()
    except OSError:
        return info
    physical = set()
    phys_id = core_id = None
    for line in text.splitlines():
        if ":" not in line:
            if phys_id is not None and core_id is not None:
                physical.add((phys_id, core_id))
            phys_id = core_id = None
            continue
        key, _, val = line.partition(":")
        key, val = key.strip(), val.strip()
        if key == "model name" and "cpu_model_proc" not in info:
            info["cpu_model_proc"] = val
        elif key == "physical id":
            phys_id = val
        elif key == "core id":
            core_id = val
        elif key == "flags" and "cpu_flags_simd" not in info:
            flags = set(val.split())
            info["cpu_flags_simd"] = sorted(
                f for f in flags
                if f.startswith(("avx", "fma", "amx", "sse4")))
    if phys_id is not None and core_id is not None:
        physical.add((phys_id, core_id))
    if "cpu_model_proc" in info:
        info["cpu_model"] = info.pop("cpu_model_proc")
    if physical:
        info["physical_cores"] = len(physical)
    return info


def load_average() -> Optional[List[float]]:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def _proc_stat_busy() -> Optional[float]:
    """Seconds of non-idle CPU time of the whole machine since boot."""
    try:
        with open("/proc/stat") as fh:
            parts = fh.readline().split()
    except OSError:
        return None
    if not parts or parts[0] != "cpu":
        return None
    v = [int(x) for x in parts[1:]]
    # user nice system idle iowait irq softirq steal (guest is inside user)
    busy = v[0] + v[1] + v[2] + sum(v[5:8])
    return busy / os.sysconf("SC_CLK_TCK")


class OtherLoad:
    """CPU used by *other* processes while a block of work runs: machine-wide
    busy time from /proc/stat minus this process's CPU time, as a fraction of
    (wall time x logical CPUs).  None where /proc/stat is unavailable."""

    def __init__(self):
        self.ncpu = os.cpu_count() or 1
        self.b0 = _proc_stat_busy()
        self.p0 = time.process_time()
        self.w0 = time.perf_counter()

    def fraction(self) -> Optional[float]:
        b1 = _proc_stat_busy()
        if self.b0 is None or b1 is None:
            return None
        wall = time.perf_counter() - self.w0
        if wall < 0.05:
            return None
        others = (b1 - self.b0) - (time.process_time() - self.p0)
        return max(0.0, min(1.0, others / (wall * self.ncpu)))


def hostname() -> str:
    try:
        return socket.gethostname() or "unknown-host"
    except OSError:
        return "unknown-host"


def slug(text: str) -> str:
    out = []
    for ch in text.lower():
        out.append(ch if ch.isalnum() else "-")
    s = "".join(out)
    while "--" in s:
        s = s.replace("--", "-")
    return s.strip("-") or "unknown"


# --------------------------------------------------------------------------
# Formatting
# --------------------------------------------------------------------------


def fmt_ms(v: Optional[float]) -> str:
    if v is None:
        return "-"
    if v < 0.1:
        return f"{v:.4f}"
    if v < 1:
        return f"{v:.3f}"
    if v < 10:
        return f"{v:.2f}"
    if v < 100:
        return f"{v:.1f}"
    return f"{v:.0f}"


def fmt_ratio(v: Optional[float]) -> str:
    if v is None:
        return "-"
    if v >= 100:
        return f"{v:.0f}x"
    if v >= 10:
        return f"{v:.1f}x"
    return f"{v:.2f}x"


def render_table(headers: List[str], rows: List[List[str]],
                 left_cols: int = 1) -> str:
    widths = [len(h) for h in headers]
    for r in rows:
        for i, c in enumerate(r):
            widths[i] = max(widths[i], len(c))

    def line(cells):
        parts = []
        for i, c in enumerate(cells):
            parts.append(c.ljust(widths[i]) if i < left_cols
                         else c.rjust(widths[i]))
        return "  ".join(parts).rstrip()

    sep = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), sep] + [line(r) for r in rows])
