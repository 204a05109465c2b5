#!/usr/bin/env python
"""Side-by-side RNN benchmark: torch fused RNNs, an nn.LSTMCell loop,
Keras 3 (JAX backend) and rnnstate, in one process, on the same weights and
inputs.

    .venv/bin/python benchmarks/bench_rnn.py              # full grid
    .venv/bin/python benchmarks/bench_rnn.py --quick --only lstm
    .venv/bin/python benchmarks/bench_rnn.py --smoke      # CI: a few seconds
    .venv/bin/python benchmarks/bench_rnn.py --small-batch  # LSTM, GRU fwd, B=1,2,4,8, one thread

See benchmarks/README.md for what the columns mean.  Exit status: 0 when all
peers (torch, Keras) ran and agreed numerically; 1 when a peer failed or the
peers disagree (a harness bug); 2 for bad arguments.  rnnstate being missing
or failing never changes the exit status: its rows are marked instead.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import gc
import json
import os
import platform
import sys
import time

# Keras must see the backend before it is imported anywhere (rnnstate may
# import keras too).
os.environ["KERAS_BACKEND"] = "jax"
# keep TF/XLA start-up chatter out of the table
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

_HERE = os.path.dirname(os.path.abspath(__file__))
_ROOT = os.path.dirname(_HERE)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import numpy as np  # noqa: E402
import torch  # noqa: E402

import bench_impls as bi  # noqa: E402
from bench_util import (TimingPolicy, cpu_info, fmt_ms, fmt_ratio,  # noqa: E402
                        hostname, load_average, measure, measure_group,
                        OtherLoad, render_table, slug)

FULL_GRID = [(1, 100, 32, 128), (32, 100, 32, 128),
             (256, 100, 32, 256), (32, 500, 64, 512)]
SMOKE_GRID = [(2, 5, 3, 4)]
# --small-batch: the LSTM and GRU forward at B <= 8 (rnnstate's small-batch loops, rnnstate/_ext/
# small_batch.cpp) against nn.LSTM (oneDNN) / nn.GRU and Keras/JAX, every peer on one thread (rs/torch is
# the target ratio).
SMALL_BATCH_GRID = [(1, 100, 32, 128), (2, 100, 32, 128), (4, 100, 32, 128), (8, 100, 32, 128)]
FLOP_CONFIG = (256, 100, 32, 256)
CELLS = ["lstm", "gru", "rnn"]
MODES = ["fwd", "fwd+bwd"]

# column order of the printed table; JSON keys use the same names
IMPL_COLUMNS = ["torch", "cell_loop", "keras_api", "keras_jit",
                "rs_call", "rs_api", "rs_cseq", "rs_gates", "gemm_floor"]

IMPL_DOC = {
    "torch": "torch nn.LSTM/GRU/RNN(batch_first=True). fwd: module(x) under "
             "torch.inference_mode. fwd+bwd: zero_grad, forward, "
             "mean((y_seq - target)^2), backward, SGD update p -= lr*grad",
    "cell_loop": "LSTM fwd only: Python loop over nn.LSTMCell collecting h_t "
                 "and c_t, stacked to (B,T,U), under torch.inference_mode",
    "keras_api": "Keras 3 / JAX. fwd: model.predict(x, verbose=0, "
                 "batch_size=B) (numpy in, numpy out, includes predict's "
                 "per-call overhead). fwd+bwd: model.train_on_batch(x, y) "
                 "with SGD and loss='mse'",
    "keras_jit": "Keras 3 / JAX fwd only: jax.jit(model.stateless_call) on a "
                 "device array, .block_until_ready(); the fastest Keras "
                 "forward path, no predict overhead",
    "rs_call": "rnnstate layer used as a torch module. fwd: layer(x) under "
               "torch.inference_mode. fwd+bwd: same training step as 'torch'",
    "rs_api": "rnnstate Keras-style API. fwd: Sequential.predict(x, verbose=0, "
              "batch_size=B). fwd+bwd: Sequential.train_on_batch(x, y) with "
              "SGD and loss='mse'",
    "rs_cseq": "LSTM fwd only: rnnstate LSTM(return_sequences=True, "
               "return_state=True, return_cell_sequence=True) layer call",
    "rs_gates": "fwd only: rnnstate layer(return_sequences=True, "
                "return_gate_sequences=True) layer call",
    "gemm_floor": "not an implementation: the configuration's matrix products "
                  "alone (torch.mm, preallocated, no activations), a lower "
                  "bound for any implementation on this BLAS",
}

RATIO_DOC = {
    "rs/torch": "rs_call / torch (same mode)",
    "rs/keras": "rs_api / keras_api (predict vs predict, or train_on_batch vs "
                "train_on_batch)",
    "rs/kjit": "rs_call / keras_jit (fwd; lowest-overhead path of each)",
    "loop/torch": "cell_loop / torch fwd",
    "cseq/torch": "rs_cseq / torch fwd (cost of getting the c_t sequence)",
    "gates/torch": "rs_gates / torch fwd",
    "keras/floor": "keras_api / gemm_floor: the largest speed-up over Keras "
                   "any implementation on this BLAS can reach",
}

RATIOS = [("rs/torch", "rs_call", "torch"),
          ("rs/keras", "rs_api", "keras_api"),
          ("rs/kjit", "rs_call", "keras_jit"),
          ("loop/torch", "cell_loop", "torch"),
          ("cseq/torch", "rs_cseq", "torch"),
          ("gates/torch", "rs_gates", "torch"),
          ("keras/floor", "keras_api", "gemm_floor")]

# torch vs keras max abs diff above this = harness bug (e.g. weight mapping).
# Loosened on CUDA, where cuDNN may run the RNN matmuls in TF32.
PEER_TOL = 1e-3
PEER_TOL_CUDA = 2e-2


def flops_fwd(cell, B, T, F, U):
    """Approximate forward FLOPs: 2 * G * B * T * U * (F + U), G = number of
    gates (LSTM 4, GRU 3, SimpleRNN 1), i.e. the two matmuls per step; the
    elementwise gate math is ignored.  For LSTM this is 8*B*T*U*(F+U)."""
    return 2 * bi.GATES[cell] * B * T * U * (F + U)


# --------------------------------------------------------------------------


def log(msg=""):
    print(msg, flush=True)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--smoke", action="store_true",
                   help="tiny grid (2,5,3,4), 2 repeats; for CI")
    p.add_argument("--quick", action="store_true",
                   help="fewer repeats (~0.15 s per measurement)")
    p.add_argument("--only", default=None,
                   help="comma list of cells: lstm,gru,rnn")
    p.add_argument("--modes", default=None,
                   help="comma list of modes: fwd,fwd+bwd (default both)")
    p.add_argument("--grid", action="append", default=None, metavar="B,T,F,U",
                   help="replace the grid; may be repeated")
    p.add_argument("--device", choices=["cpu", "cuda"], default=None,
                   help="device for torch and rnnstate (default: cuda if "
                        "available, else cpu); Keras runs where JAX runs")
    p.add_argument("--out", default=None,
                   help="JSON path (default benchmarks/results/"
                        "<host-or-gpu>-<date>.json; with --smoke a temp file)")
    p.add_argument("--no-keras", action="store_true",
                   help="skip the Keras/JAX peers")
    p.add_argument("--no-extras", action="store_true",
                   help="skip the seed-model, streaming and sgemm sections")
    p.add_argument("--threads", type=int, default=None,
                   help="torch.set_num_threads(N) (default: torch's own "
                        "default, 1 with --smoke; recorded in the JSON)")
    p.add_argument("--no-interleave", action="store_true",
                   help="time implementations one after the other instead "
                        "of interleaved round-robin")
    p.add_argument("--small-batch", action="store_true",
                   help="the small-batch rows: LSTM and GRU fwd at (B, 100, 32, 128), "
                        "B = 1, 2, 4, 8, one thread (unless --threads), no "
                        "extras; JSON named <host>-small-batch-<date>.json")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--samples", action="store_true",
                   help="keep every timing sample in the JSON")
    a = p.parse_args(argv)

    if a.small_batch:
        a.only = a.only or "lstm,gru"
        a.modes = a.modes or "fwd"
        a.grid = a.grid or [",".join(map(str, g)) for g in SMALL_BATCH_GRID]
        a.no_extras = True
        if a.threads is None:
            a.threads = 1
        if a.threads == 1:   # JAX/XLA on one thread too (read when jax is imported, after this)
            os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false "
                                  "intra_op_parallelism_threads=1")
    if a.only:
        alias = {"simplernn": "rnn", "simple_rnn": "rnn"}
        a.cells = [alias.get(c.strip().lower(), c.strip().lower())
                   for c in a.only.split(",") if c.strip()]
        bad = [c for c in a.cells if c not in CELLS]
        if bad:
            p.error(f"--only: unknown cell(s) {bad}; choose from {CELLS}")
    else:
        a.cells = list(CELLS)
    if a.modes:
        a.modes = [m.strip() for m in a.modes.split(",") if m.strip()]
        bad = [m for m in a.modes if m not in MODES]
        if bad:
            p.error(f"--modes: unknown mode(s) {bad}; choose from {MODES}")
    else:
        a.modes = list(MODES)
    if a.grid:
        try:
            a.grid = [tuple(int(v) for v in g.split(",")) for g in a.grid]
        except ValueError:
            p.error("--grid expects B,T,F,U integers")
        if any(len(g) != 4 or min(g) < 1 for g in a.grid):
            p.error("--grid expects four positive integers B,T,F,U")
    else:
        a.grid = SMOKE_GRID if a.smoke else FULL_GRID
    if a.threads is None and a.smoke:
        # CI boxes are often shared: a 2-thread torch call stalls badly when
        # another process holds a core. Timings don't matter in --smoke.
        a.threads = 1
    if a.threads is not None:
        if a.threads < 1:
            p.error("--threads must be >= 1")
        torch.set_num_threads(a.threads)
    if a.device is None:
        a.device = "cuda" if torch.cuda.is_available() else "cpu"
    elif a.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda requested but torch.cuda.is_available() is False")
    return a


def machine_header(args, device, keras, jax, rs, keras_error):
    h = {
        "hostname": hostname(),
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "argv": sys.argv[1:],
        "python": platform.python_version(),
        "platform": platform.platform(),
        **cpu_info(),
        "torch_num_threads": torch.get_num_threads(),
        "torch_num_interop_threads": torch.get_num_interop_threads(),
        "versions": {
            "torch": torch.__version__,
            "numpy": np.__version__,
            "keras": getattr(keras, "__version__", None),
            "jax": getattr(jax, "__version__", None),
            "rnnstate": rs.version,
        },
        "device": device.type,
        "device_name": (torch.cuda.get_device_name(device)
                        if device.type == "cuda" else "cpu"),
        "cuda_tf32": ({"cudnn.allow_tf32": torch.backends.cudnn.allow_tf32,
                       "cuda.matmul.allow_tf32":
                           torch.backends.cuda.matmul.allow_tf32}
                      if device.type == "cuda" else None),
        "check_tol": PEER_TOL_CUDA if device.type == "cuda" else PEER_TOL,
        "keras_backend": os.environ.get("KERAS_BACKEND"),
        "keras_error": keras_error,
        "jax_devices": ([str(d) for d in jax.devices()] if jax else None),
        "mode": "smoke" if args.smoke else ("quick" if args.quick else "full"),
        "interleaved": not args.no_interleave,
        "loadavg_start": load_average(),
        "lr": bi.LR,
        "flop_formula": "2*G*B*T*U*(F+U), G=4 LSTM / 3 GRU / 1 SimpleRNN "
                        "(LSTM: 8*B*T*U*(F+U)); elementwise ops ignored",
        "impl_doc": IMPL_DOC,
        "ratio_doc": RATIO_DOC,
    }
    return h


def maxdiff(a, b):
    if a is None or b is None:
        return None
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        if a.size == b.size:
            b = b.reshape(a.shape)
        else:
            return f"shape {list(a.shape)} vs {list(b.shape)}"
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))))


def safe(name, thunk, peer=True):
    """Run a setup function; turn an unexpected failure into an Impl."""
    t0 = time.perf_counter()
    try:
        imp = thunk()
    except Exception as exc:
        imp = bi.Impl.missing(name, f"setup failed: {bi.err_text(exc)}",
                              peer=peer, status="error")
    # setup = construction, weight transplant, first call (incl. compilation)
    imp.info["setup_s"] = round(time.perf_counter() - t0, 3)
    return imp


class Bench:
    def __init__(self, args):
        self.args = args
        self.device = torch.device(args.device)
        self.policy = TimingPolicy.for_mode(args.smoke, args.quick)
        self.sync = torch.cuda.synchronize if self.device.type == "cuda" else None
        self.peer_failures = []
        self.results = []
        self.last_other_load = None
        self.extra_timings = {}
        self.sgemm_results = {}
        self.sgemm_n = 256 if args.smoke else 1024
        self.flop_cfg = args.grid[0] if args.smoke else FLOP_CONFIG
        self.tol = PEER_TOL_CUDA if self.device.type == "cuda" else PEER_TOL

        if args.no_keras:
            self.keras, self.jax, self.keras_error = None, None, "--no-keras"
        else:
            t0 = time.perf_counter()
            self.keras, self.jax, self.keras_error = bi.import_keras()
            if self.keras is None:
                log(f"[keras] not available ({self.keras_error}); Keras "
                    "columns will be marked missing")
                if not args.smoke:
                    self.peer_failures.append(f"keras import: {self.keras_error}")
            else:
                log(f"[keras] {self.keras.__version__} on jax "
                    f"{self.jax.__version__} ({self.jax.devices()[0].platform}),"
                    f" import {time.perf_counter() - t0:.1f}s")

        self.rs = bi.RnnState(repo_root=_ROOT)
        if self.rs.available:
            msg = f"[rnnstate] {self.rs.version or ''} from {self.rs.file}"
            if self.rs.missing_names:
                msg += f"; missing names: {', '.join(self.rs.missing_names)}"
            log(msg)
        else:
            log(f"[rnnstate] NOT AVAILABLE: {self.rs.error}\n"
                "           rnnstate columns are marked missing; peers still run.")

    # -- helpers -----------------------------------------------------------

    @staticmethod
    def smoke_skip(name):
        return bi.Impl.missing(name, "skipped in --smoke (XLA compile time)",
                               status="skipped")

    def keras_missing(self, name):
        return bi.Impl.missing(name, f"keras unavailable ({self.keras_error})")

    def time_impls(self, impls, extra=None):
        """Time the ready impls (interleaved); ``extra`` = {name: fn} of
        reference work (sgemm) timed in the same rotation, whose Timings are
        left in ``self.extra_timings``.  The CPU share other processes took
        meanwhile is left in ``self.last_other_load``."""
        ready = {i.name: i.fn for i in impls if i.status == "ok"}
        extra = extra or {}
        ready.update({f"__extra_{k}": f for k, f in extra.items()})
        load = OtherLoad()
        if self.args.no_interleave:
            timed = {}
            for name, fn in ready.items():
                timed.update(measure_group({name: fn}, self.policy, self.sync))
        else:
            timed = measure_group(ready, self.policy, self.sync)
        self.last_other_load = load.fraction()
        self.extra_timings = {k: timed.get(f"__extra_{k}") for k in extra}
        out = {}
        for imp in impls:
            rec = {"status": imp.status}
            if imp.reason:
                rec["reason"] = imp.reason
            info = {k: v for k, v in imp.info.items() if not k.startswith("_")}
            if info:
                rec["info"] = info
            t = timed.get(imp.name)
            if isinstance(t, BaseException):
                rec["status"] = "error"
                rec["reason"] = f"timed call failed: {bi.err_text(t)}"
            elif t is not None:
                rec.update(t.as_dict(keep_samples=self.args.samples))
                if imp.post is not None:
                    try:
                        rec.update(imp.post())
                    except Exception as exc:
                        rec["post_error"] = bi.err_text(exc)
            if rec["status"] == "error" and imp.peer:
                self.peer_failures.append(f"{imp.name}: {rec['reason']}")
            out[imp.name] = rec
        return out

    # -- grid ----------------------------------------------------------------

    def run_config(self, cell, cfg, mode):
        B, T, F, U = cfg
        dev = self.device
        weights = bi.make_keras_weights(cell, F, U, self.args.seed)
        x_np, y_np = bi.make_data(B, T, F, U, self.args.seed)
        x_t = torch.from_numpy(x_np).to(dev)
        y_t = torch.from_numpy(y_np).to(dev)
        k, j, rs = self.keras, self.jax, self.rs
        # --smoke keeps CI fast: Keras predict/train_on_batch (about 1 s of
        # XLA compilation each) only for the first cell; the cheap jitted
        # forward still runs for every cell so the weight mapping is checked.
        keras_api_ok = not (self.args.smoke and cell != self.args.cells[0])
        impls = []
        check = {}

        if mode == "fwd":
            impls.append(safe("torch", lambda: bi.setup_torch_fwd(
                cell, x_t, F, U, weights, dev)))
            if cell == "lstm":
                impls.append(safe("cell_loop", lambda: bi.setup_cell_loop(
                    x_t, F, U, weights, dev)))
            if k is not None:
                impls.append(safe("keras_api", lambda: bi.setup_keras_predict(
                    k, cell, x_np, T, F, U, weights)) if keras_api_ok
                    else self.smoke_skip("keras_api"))
                impls.append(safe("keras_jit", lambda: bi.setup_keras_jit(
                    k, j, cell, x_np, T, F, U, weights)))
            else:
                impls += [self.keras_missing("keras_api"),
                          self.keras_missing("keras_jit")]
            impls.append(safe("rs_call", lambda: rs.setup_call(
                "rs_call", cell, x_t, U, weights, dev,
                {"return_sequences": True}), peer=False))
            impls.append(safe("rs_api", lambda: rs.setup_predict(
                cell, x_np, T, F, U, weights, dev), peer=False))
            if cell == "lstm":
                impls.append(safe("rs_cseq", lambda: rs.setup_call(
                    "rs_cseq", cell, x_t, U, weights, dev,
                    {"return_sequences": True, "return_state": True,
                     "return_cell_sequence": True}), peer=False))
            impls.append(safe("rs_gates", lambda: rs.setup_call(
                "rs_gates", cell, x_t, U, weights, dev,
                {"return_sequences": True, "return_gate_sequences": True}),
                peer=False))

            by = {i.name: i for i in impls}
            ref = by["torch"].check_out
            for name, imp in by.items():
                if name != "torch" and imp.check_out is not None:
                    check[f"{name}_vs_torch"] = maxdiff(ref, imp.check_out)
            # c_t sequence: compare any (B,T,U) output other than the first
            # with the LSTMCell loop's c_t
            if "rs_cseq" in by and "cell_loop" in by:
                c_ref = by["cell_loop"].info.get("_c_seq")
                outs = by["rs_cseq"].info.get("_outputs") or []
                diffs = [maxdiff(c_ref, o) for o in outs[1:]
                         if o is not None and c_ref is not None
                         and o.shape == c_ref.shape]
                diffs = [d for d in diffs if isinstance(d, float)]
                if diffs:
                    check["rs_cseq_c_vs_cell_loop"] = min(diffs)
            for peer in ("keras_jit", "keras_api", "cell_loop"):
                d = check.get(f"{peer}_vs_torch")
                if isinstance(d, str) or (isinstance(d, float) and d > self.tol):
                    self.peer_failures.append(
                        f"{cell} {cfg} {peer} disagrees with torch: {d}")
        else:
            impls.append(safe("torch", lambda: bi.setup_torch_step(
                cell, x_t, y_t, F, U, weights, dev)))
            if k is not None:
                impls.append(safe("keras_api", lambda: bi.setup_keras_train(
                    k, cell, x_np, y_np, T, F, U, weights)) if keras_api_ok
                    else self.smoke_skip("keras_api"))
            else:
                impls.append(self.keras_missing("keras_api"))
            impls.append(safe("rs_call", lambda: rs.setup_step(
                cell, x_t, y_t, U, weights, dev), peer=False))
            impls.append(safe("rs_api", lambda: rs.setup_train_on_batch(
                cell, x_np, y_np, T, F, U, weights, dev), peer=False))

        impls.append(safe("gemm_floor", lambda: bi.setup_gemm_floor(
            cell, B, T, F, U, mode, dev), peer=False))

        extra = {}
        if (cell, mode, cfg) == ("lstm", "fwd", self.flop_cfg) \
                and not self.args.no_extras:
            extra["sgemm"] = self.sgemm_fn()
        timings = self.time_impls(impls, extra)
        if extra:
            t = self.extra_timings.get("sgemm")
            if t is not None and not isinstance(t, BaseException):
                self.sgemm_results["with_flop_config"] = self.sgemm_record(t)
        ratios = {}
        for rname, num, den in RATIOS:
            a, b = timings.get(num, {}), timings.get(den, {})
            if a.get("status") == "ok" and b.get("status") == "ok":
                ratios[rname] = a["median_ms"] / b["median_ms"]
        row = {"cell": cell, "B": B, "T": T, "F": F, "U": U, "mode": mode,
               "impls": timings, "ratios": ratios, "check_maxabs": check,
               "loadavg_after": load_average(),
               "other_cpu_frac": self.last_other_load}
        if mode == "fwd":
            fl = flops_fwd(cell, B, T, F, U)
            row["flops"] = fl
            row["gflops"] = {n: fl / (r["median_ms"] * 1e-3) / 1e9
                             for n, r in timings.items()
                             if r.get("status") == "ok"}
        self.results.append(row)
        return row

    def run_grid(self):
        for cell in self.args.cells:
            for cfg in self.args.grid:
                for mode in self.args.modes:
                    t0 = time.perf_counter()
                    row = self.run_config(cell, cfg, mode)
                    parts = []
                    for n in IMPL_COLUMNS:
                        r = row["impls"].get(n)
                        if r and r["status"] == "ok":
                            parts.append(f"{n}={fmt_ms(r['median_ms'])}")
                    log(f"  {cell:4s} {str(cfg):20s} {mode:7s} "
                        f"({time.perf_counter() - t0:5.1f}s)  "
                        + " ".join(parts))

    # -- extras --------------------------------------------------------------

    def run_seed_model(self):
        """Tutorial model Input((3,1)) -> LSTM(1), predict on one sample."""
        B, T, F, U = 1, 3, 1, 1
        dev = self.device
        weights = bi.make_keras_weights("lstm", F, U, self.args.seed)
        x_np = np.array([[[70.0], [80.0], [90.0]]], dtype=np.float32) / 100.0
        x_t = torch.from_numpy(x_np).to(dev)
        k, rs = self.keras, self.rs
        impls = []

        def torch_seed():
            m = bi.torch_fused("lstm", F, U, weights, dev).eval()

            def fn():
                with torch.inference_mode():
                    return m(x_t)[0][:, -1]
            out = fn()
            return bi.Impl("torch", fn=fn, check_out=bi.to_numpy(out),
                           info={"path": "nn.LSTM(1,1)(x)[0][:, -1]"})

        impls.append(safe("torch", torch_seed))
        if k is not None:
            impls.append(safe("keras_api", lambda: bi.setup_keras_predict(
                k, "lstm", x_np, T, F, U, weights, return_sequences=False))
                if not self.args.smoke else self.smoke_skip("keras_api"))
            impls.append(safe("keras_jit", lambda: bi.setup_keras_jit(
                k, self.jax, "lstm", x_np, T, F, U, weights,
                return_sequences=False)))
        else:
            impls += [self.keras_missing("keras_api"),
                      self.keras_missing("keras_jit")]
        impls.append(safe("rs_call", lambda: rs.setup_call(
            "rs_call", "lstm", x_t, U, weights, dev, {}), peer=False))
        impls.append(safe("rs_api", lambda: rs.setup_predict(
            "lstm", x_np, T, F, U, weights, dev, return_sequences=False),
            peer=False))
        by = {i.name: i for i in impls}
        check = {f"{n}_vs_torch": maxdiff(by["torch"].check_out, i.check_out)
                 for n, i in by.items()
                 if n != "torch" and i.check_out is not None}
        for peer in ("keras_api", "keras_jit"):
            d = check.get(f"{peer}_vs_torch")
            if isinstance(d, str) or (isinstance(d, float) and d > self.tol):
                self.peer_failures.append(f"seed model {peer} vs torch: {d}")
        timings = self.time_impls(impls)
        ratios = {}
        for rname, num, den in [("rs/keras", "rs_api", "keras_api"),
                                ("rs/torch", "rs_call", "torch"),
                                ("rs/kjit", "rs_call", "keras_jit")]:
            a, b = timings.get(num, {}), timings.get(den, {})
            if a.get("status") == "ok" and b.get("status") == "ok":
                ratios[rname] = a["median_ms"] / b["median_ms"]
        return {"model": "Input((3,1)) -> LSTM(1)", "x": x_np.tolist(),
                "impls": timings, "ratios": ratios, "check_maxabs": check,
                "other_cpu_frac": self.last_other_load}

    def run_streaming(self):
        """One timestep with carried state, B=1, F=32, U=128."""
        B, F, U = 1, 32, 128
        dev = self.device
        weights = bi.make_keras_weights("lstm", F, U, self.args.seed)
        x_np, _ = bi.make_data(B, 1, F, U, self.args.seed)
        x1 = torch.from_numpy(x_np).to(dev)          # (1, 1, F)
        impls = []

        def torch_lstm():
            m = bi.torch_fused("lstm", F, U, weights, dev).eval()
            st = {"hc": (torch.zeros(1, B, U, device=dev),
                         torch.zeros(1, B, U, device=dev))}

            def fn():
                with torch.inference_mode():
                    y, st["hc"] = m(x1, st["hc"])
                return y
            fn()
            return bi.Impl("torch_lstm", fn=fn,
                           info={"path": "nn.LSTM(x[1,1,F], (h, c))"})

        def torch_cell():
            c = torch.nn.LSTMCell(F, U)
            bi.load_torch_weights(c, "lstm", weights, suffix="")
            c = c.to(dev).eval()
            xs = x1[:, 0]
            st = {"hc": (torch.zeros(B, U, device=dev),
                         torch.zeros(B, U, device=dev))}

            def fn():
                with torch.inference_mode():
                    st["hc"] = c(xs, st["hc"])
                return st["hc"][0]
            fn()
            return bi.Impl("torch_cell", fn=fn,
                           info={"path": "nn.LSTMCell(x[1,F], (h, c))"})

        def rs_stream():
            rs = self.rs
            why = rs._why_missing("lstm")
            if why:
                return bi.Impl.missing("rs_call", why, peer=False)
            try:
                layer = rs.make_layer("lstm", U, return_state=True)
            except TypeError as exc:
                return bi.Impl.missing("rs_call", f"return_state unsupported: "
                                       f"{bi.err_text(exc)}", peer=False)
            rs._prepare(layer, weights, x1, dev)
            if hasattr(layer, "eval"):
                layer.eval()
            st = {"state": [torch.zeros(B, U, device=dev),
                            torch.zeros(B, U, device=dev)]}
            with torch.inference_mode():
                res = layer(x1, initial_state=st["state"])
            ts = bi.all_tensors(res)
            carry = len(ts) >= 3 and all(tuple(t.shape) == (B, U)
                                         for t in ts[1:3])

            def fn():
                with torch.inference_mode():
                    r = layer(x1, initial_state=st["state"])
                if carry:
                    st["state"] = [r[1], r[2]]
                return r
            return bi.Impl("rs_call", fn=fn, peer=False,
                           post=lambda: rs.last_path_of(layer),
                           info={"path": "LSTM(U, return_state=True)(x[1,1,F], "
                                         "initial_state=[h, c])",
                                 "state_carried": carry,
                                 **rs.last_path_of(layer)})

        def rs_streamer():
            rs = self.rs
            why = rs._why_missing("lstm")
            if why:
                return bi.Impl.missing("rs_stream", why, peer=False)
            try:
                from rnnstate.states import Streamer
            except ImportError as exc:
                return bi.Impl.missing("rs_stream", f"no Streamer: {bi.err_text(exc)}", peer=False)
            layer = rs.make_layer("lstm", U)
            rs._prepare(layer, weights, x1, dev)
            stream = Streamer(layer)
            xs = x1[:, 0]
            st = {"state": None}

            def fn():
                y, st["state"] = stream.step(xs, st["state"])
                return y
            fn()
            return bi.Impl("rs_stream", fn=fn, peer=False,
                           post=lambda: {"last_path": stream.last_path},
                           info={"path": "Streamer(LSTM(U)).step(x[1,F], state)", "last_path": stream.last_path})

        impls.append(safe("torch_lstm", torch_lstm))
        impls.append(safe("torch_cell", torch_cell))
        impls.append(safe("rs_call", rs_stream, peer=False))
        impls.append(safe("rs_stream", rs_streamer, peer=False))
        timings = self.time_impls(impls)
        ratios = {}
        for rname, num, den in [("rs/torch_lstm", "rs_call", "torch_lstm"),
                                ("stream/torch_lstm", "rs_stream", "torch_lstm"),
                                ("stream/torch_cell", "rs_stream", "torch_cell"),
                                ("rs/torch_cell", "rs_call", "torch_cell"),
                                ("cell/torch_lstm", "torch_cell", "torch_lstm")]:
            a, b = timings.get(num, {}), timings.get(den, {})
            if a.get("status") == "ok" and b.get("status") == "ok":
                ratios[rname] = a["median_ms"] / b["median_ms"]
        return {"B": B, "F": F, "U": U, "T": 1, "impls": timings,
                "ratios": ratios, "other_cpu_frac": self.last_other_load}

    def sgemm_fn(self):
        n = self.sgemm_n
        a = torch.randn(n, n, device=self.device)
        b = torch.randn(n, n, device=self.device)
        c = torch.empty(n, n, device=self.device)

        def fn():
            return torch.mm(a, b, out=c)
        return fn

    def sgemm_record(self, t):
        n = self.sgemm_n
        return {"n": n, "op": f"torch.mm({n}x{n}, {n}x{n}) fp32",
                **t.as_dict(), "gflops": 2 * n ** 3 / (t.median_ms * 1e-3) / 1e9}

    def run_sgemm(self):
        """sgemm rate: measured alone at the end of the run, and (when the
        FLOP config ran) interleaved with the LSTM fwd at that config. The
        reference rate is the faster of the two (the machine's achievable
        rate in this run)."""
        load = OtherLoad()
        t = measure(self.sgemm_fn(), self.policy, self.sync)
        rec = self.sgemm_record(t)
        rec["other_cpu_frac"] = load.fraction()
        self.sgemm_results["alone"] = rec
        best = max(self.sgemm_results.values(), key=lambda r: r["gflops"])
        return {**best, "measured": dict(self.sgemm_results)}


# --------------------------------------------------------------------------
# Reporting
# --------------------------------------------------------------------------


def print_report(header, results, seed, stream, sgemm, flop_cfg, tol):
    log()
    log(f"Machine: {header['cpu_model']} | {header.get('physical_cores', '?')} "
        f"cores / {header['logical_cpus']} logical | torch threads "
        f"{header['torch_num_threads']} | device {header['device_name']}")
    v = header["versions"]
    log(f"torch {v['torch']} | keras {v['keras']} | jax {v['jax']} | "
        f"numpy {v['numpy']} | rnnstate {v['rnnstate']}")

    cols = [c for c in IMPL_COLUMNS
            if any(c in r["impls"] for r in results)]
    rcols = [r for r, _, _ in RATIOS
             if any(r in row["ratios"] for row in results)
             or r in ("rs/torch", "rs/keras")]

    def status_cell(rec):
        if rec is None:
            return ""
        if rec["status"] == "ok":
            return fmt_ms(rec["median_ms"])
        return {"missing": "miss", "skipped": "skip"}.get(rec["status"], "ERR")

    def other(v):
        return "?" if v is None else f"{100 * v:.0f}%"

    rows = []
    for r in results:
        cfg = f"{r['cell']} ({r['B']},{r['T']},{r['F']},{r['U']})"
        rows.append([cfg, r["mode"], other(r.get("other_cpu_frac"))] +
                    [status_cell(r["impls"].get(c)) for c in cols])
    log("\nMedian time per call, ms ('miss' = not available, 'ERR' = failed, "
        "'skip' = skipped, blank = not applicable; 'others' = share of the "
        "machine's CPU time other processes used meanwhile)")
    log(render_table(["config (B,T,F,U)", "mode", "others"] + cols, rows,
                     left_cols=2))
    busy = [r for r in results if (r.get("other_cpu_frac") or 0) > 0.10]
    if busy:
        log(f"WARNING: other processes used >10% of the CPUs during "
            f"{len(busy)} of {len(results)} rows; their absolute times (and, "
            "less so, ratios) are unreliable. Re-run on a quiet machine.")

    rows = []
    for r in results:
        cfg = f"{r['cell']} ({r['B']},{r['T']},{r['F']},{r['U']})"
        rows.append([cfg, r["mode"]] +
                    [fmt_ratio(r["ratios"].get(c)) for c in rcols])
    log("\nRatios (< 1 means the numerator is faster)")
    log(render_table(["config (B,T,F,U)", "mode"] + rcols, rows, left_cols=2))

    # numerical agreement
    bad = []
    for r in results:
        for k, d in r.get("check_maxabs", {}).items():
            if isinstance(d, str) or (d is not None and d > tol):
                bad.append(f"{r['cell']} ({r['B']},{r['T']},{r['F']},{r['U']}) "
                           f"{k}: {d}")
    if bad:
        log("\nNumerical mismatches (max abs diff > %g):" % tol)
        for b in bad:
            log("  " + b)
    else:
        n = sum(len(r.get("check_maxabs", {})) for r in results)
        log(f"\nNumerical cross-checks: {n} comparisons, all max abs diff <= "
            f"{tol:g}")

    # rnnstate kernel paths
    paths = {}
    for r in results:
        for n, rec in r["impls"].items():
            lp = rec.get("last_path")
            if lp is not None:
                paths.setdefault(f"{n} {r['cell']} {r['mode']}", set()).add(str(lp))
    if paths:
        log("\nrnnstate last_path: " + "; ".join(
            f"{k}: {', '.join(sorted(v))}" for k, v in sorted(paths.items())))

    reasons = {}
    for r in results:
        for n, rec in r["impls"].items():
            if rec["status"] != "ok":
                reasons.setdefault((n, rec["status"], rec.get("reason", "")),
                                   []).append(r["cell"])
    if reasons:
        log("\nNot measured:")
        for (n, st, why), cells in reasons.items():
            log(f"  {n:10s} {st:7s} {why}  [{', '.join(sorted(set(cells)))}]")

    if seed:
        log("\nSeed tutorial model Input((3,1)) -> LSTM(1), one sample, ms:")
        log("  " + "  ".join(f"{n}={status_cell(rec)}"
                             for n, rec in seed["impls"].items()) +
            "  " + "  ".join(f"{k}={fmt_ratio(v)}"
                             for k, v in seed["ratios"].items()))
    if stream:
        log("\nStreaming step B=1 F=32 U=128, one timestep, carried state, ms:")
        log("  " + "  ".join(f"{n}={status_cell(rec)}"
                             for n, rec in stream["impls"].items()) +
            "  " + "  ".join(f"{k}={fmt_ratio(v)}"
                             for k, v in stream["ratios"].items()))

    if sgemm:
        log(f"\nsgemm: {sgemm['op']}: {fmt_ms(sgemm['median_ms'])} ms = "
            f"{sgemm['gflops']:.1f} GFLOP/s (best of: " + ", ".join(
                f"{k} {v['gflops']:.1f}" for k, v in sgemm["measured"].items())
            + ")")
        for r in results:
            if (r["cell"], r["mode"]) == ("lstm", "fwd") and \
                    (r["B"], r["T"], r["F"], r["U"]) == flop_cfg:
                log(f"LSTM fwd at {flop_cfg}: {r['flops'] / 1e9:.2f} GFLOP "
                    f"per call (8*B*T*U*(F+U))")
                for n, g in r["gflops"].items():
                    log(f"  {n:10s} {g:7.1f} GFLOP/s = "
                        f"{100 * g / sgemm['gflops']:5.1f}% of sgemm")


def default_out(args, header):
    if args.out:
        return args.out
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    if args.smoke:
        import tempfile
        return os.path.join(tempfile.gettempdir(),
                            f"rnnstate-bench-smoke-{os.getpid()}.json")
    who = (slug(header["device_name"]) if header["device"] == "cuda"
           else slug(header["hostname"]))
    if args.small_batch:
        who += "-small-batch"
    return os.path.join(_HERE, "results", f"{who}-{stamp}.json")


def main(argv=None):
    args = parse_args(argv)
    t_start = time.perf_counter()
    bench = Bench(args)
    # everything imported so far lives for the whole run: move it out of the
    # collector's reach so the gc.collect() before each measurement is cheap
    gc.collect()
    gc.freeze()
    header = machine_header(args, bench.device, bench.keras, bench.jax,
                            bench.rs, bench.keras_error)
    la = load_average()
    if la and la[0] > 0.5 and args.device == "cpu":
        log(f"[bench] WARNING: load average {la[0]} before start: other "
            "processes are using the CPUs; absolute times will be noisy, "
            "compare ratios from this run only")
    log(f"[bench] device={args.device} threads={torch.get_num_threads()} "
        f"cells={','.join(args.cells)} modes={','.join(args.modes)} "
        f"grid={args.grid} policy={bench.policy}")

    bench.run_grid()
    seed = stream = sgemm = None
    if not args.no_extras:
        seed = bench.run_seed_model()
        stream = bench.run_streaming()
        sgemm = bench.run_sgemm()
    flop_cfg = bench.flop_cfg
    if sgemm:
        for r in bench.results:
            if r["mode"] == "fwd":
                r["gflops_pct_of_sgemm"] = {
                    n: 100 * g / sgemm["gflops"] for n, g in r["gflops"].items()}

    header["wall_s"] = time.perf_counter() - t_start
    header["loadavg_end"] = load_average()
    header["peer_failures"] = bench.peer_failures
    doc = {"schema": 1, "header": header, "rnnstate": bench.rs.describe(),
           "results": bench.results, "seed_model": seed, "streaming": stream,
           "sgemm": sgemm, "flop_config": list(flop_cfg)}
    print_report(header, bench.results, seed, stream, sgemm, flop_cfg,
                 bench.tol)

    out = default_out(args, header)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w") as fh:
        json.dump(doc, fh, indent=1, default=str)
    log(f"\nJSON: {out}  (total {header['wall_s']:.1f}s)")

    if bench.peer_failures:
        log("\nPEER FAILURES (harness problem, not rnnstate):")
        for f in bench.peer_failures:
            log("  " + f)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
