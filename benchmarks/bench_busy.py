"""Busy machine: rnnstate and torch.nn.LSTM next to other busy processes.

Rows (LSTM, F=32, U=128, inference):
  * stream x(1,1,F)   one streaming step as a Keras user calls it: LSTM(U, return_state=True)(x_t,
                      initial_state=[h, c]) vs nn.LSTM(x_t, (h, c));
  * stream x(1,F)     one step without the time axis: Streamer(LSTM(U)).step(x_t, state) vs nn.LSTMCell;
  * forward (32,100)  LSTM(U) over x (32, 100, F) vs nn.LSTM;
  * gates fwd         the same with return_gate_sequences (the compiled loop) vs nn.LSTM's plain forward;
  * small batch       LSTM(U) over x (4, 100, F) (the small-batch loop) vs nn.LSTM;
  * train fwd+bwd     forward + backward over x (32, 20, F) (the compiled training loop) vs nn.LSTM.

Each row is timed per call (median and p90) idle, then with one and with two background busy processes
(plain Python spin loops started here, bounded in time, killed at the end). Within each load the
implementations are interleaved round by round, so that the load of anything else running on the machine
falls on all of them alike (the CPU time others used is recorded per load: ``other_cpu_frac``).
Target (issue 15): every rnnstate row's median and p90 within 2x of its idle value, and at or below
torch's under the same load. JSON goes to benchmarks/results/busy-<host>-<stamp>.json.

    python benchmarks/bench_busy.py [--smoke] [--out PATH] [--loads 0,1,2]
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import subprocess
import sys
import time

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, _HERE)
sys.path.insert(0, os.path.dirname(_HERE))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import bench_util as bu  # noqa: E402

F, U = 32, 128
SPIN = "import time\nend = time.time() + {secs}\nwhile time.time() < end:\n    pass\n"


def log(msg=""):
    print(msg, flush=True)


def build(seed=0):
    """{row: {impl: fn}} with the same weights for rnnstate and torch; checks they agree."""
    import rnnstate
    from rnnstate.states import Streamer
    torch.manual_seed(seed)
    ref = torch.nn.LSTM(F, U, batch_first=True).eval()
    cell = torch.nn.LSTMCell(F, U).eval()
    cell.load_state_dict({k.replace("_l0", ""): v for k, v in ref.state_dict().items()})
    keras_w = [ref.weight_ih_l0.detach().T.numpy(), ref.weight_hh_l0.detach().T.numpy(),
               (ref.bias_ih_l0 + ref.bias_hh_l0).detach().numpy()]          # Keras layout, gate order i f c o

    def rs_layer(**kw):
        layer = rnnstate.layers.LSTM(U, **kw)
        layer(torch.zeros(1, 1, F))
        layer.set_weights(keras_w)
        return layer.eval()

    x1 = torch.randn(1, 1, F)
    x_big = torch.randn(32, 100, F)
    call_layer, seq_layer = rs_layer(return_state=True), rs_layer(return_sequences=True)
    stream = Streamer(rs_layer())
    st = {"rs": [torch.zeros(1, U), torch.zeros(1, U)], "stream": None,
          "t": (torch.zeros(1, 1, U), torch.zeros(1, 1, U)), "cell": (torch.zeros(1, U), torch.zeros(1, U))}

    def rs_call():
        with torch.inference_mode():
            _, h, c = call_layer(x1, initial_state=st["rs"])
        st["rs"] = [h, c]

    def rs_stream():
        _, st["stream"] = stream.step(x1[:, 0], st["stream"])

    def torch_call():
        with torch.inference_mode():
            _, st["t"] = ref(x1, st["t"])

    def torch_cell():
        with torch.inference_mode():
            st["cell"] = cell(x1[:, 0], st["cell"])

    def rs_fwd():
        with torch.inference_mode():
            return seq_layer(x_big)

    def torch_fwd():
        with torch.inference_mode():
            return ref(x_big)[0]

    gates_layer = rs_layer(return_sequences=True, return_gate_sequences=True)
    x_small = torch.randn(4, 100, F)
    small_layer = rs_layer(return_sequences=True)
    train_layer = rs_layer(return_sequences=True)
    train_layer.train()
    ref_train = torch.nn.LSTM(F, U, batch_first=True)
    ref_train.load_state_dict(ref.state_dict())
    x_train = torch.randn(32, 20, F)

    def rs_gates():                   # the compiled loop writing h, c and the gates (packed GEMM)
        with torch.inference_mode():
            return gates_layer(x_big)

    def rs_small():                   # batch 4: the small-batch loop
        with torch.inference_mode():
            return small_layer(x_small)

    def torch_small():
        with torch.inference_mode():
            return ref(x_small)[0]

    def rs_train():                   # forward + backward: the compiled training loop
        train_layer(x_train).sum().backward()

    def torch_train():
        ref_train(x_train)[0].sum().backward()

    diff = float((rs_fwd() - torch_fwd()).abs().max())
    assert diff < 1e-4, f"rnnstate and torch disagree by {diff}"
    rows = {"stream x(1,1,F)": {"rnnstate": rs_call, "torch": torch_call},
            "stream x(1,F)": {"rnnstate": rs_stream, "torch": torch_cell},
            "forward (32,100,F)": {"rnnstate": rs_fwd, "torch": torch_fwd},
            "gates fwd (32,100,F)": {"rnnstate": rs_gates, "torch": torch_fwd},
            "small batch (4,100,F)": {"rnnstate": rs_small, "torch": torch_small},
            "train fwd+bwd (32,20,F)": {"rnnstate": rs_train, "torch": torch_train}}
    for fns in rows.values():
        for fn in fns.values():
            fn()
    paths = {"stream x(1,1,F)": call_layer.last_path, "stream x(1,F)": stream.last_path,
             "forward (32,100,F)": seq_layer.last_path, "gates fwd (32,100,F)": gates_layer.last_path}
    paths["small batch (4,100,F)"] = small_layer.last_path
    paths["train fwd+bwd (32,20,F)"] = train_layer.last_path
    return rows, paths, diff


def sample(fn, n, budget_s):
    """Up to n per-call timings (ms), stopping once budget_s is spent."""
    out, t_end = [], time.perf_counter() + budget_s
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1e3)
        if t0 > t_end:
            break
    return out


def start_busy(k, secs):
    return [subprocess.Popen([sys.executable, "-c", SPIN.format(secs=secs)]) for _ in range(k)]


def stop_busy(procs):
    for p in procs:
        p.kill()
    for p in procs:
        p.wait()


def measure(rows, load, rounds, per_round, budget_s):
    """{row: {impl: samples}} at `load` busy processes, implementations interleaved round by round."""
    procs = start_busy(load, secs=rounds * len(rows) * 2 * budget_s * 3 + 30)
    try:
        time.sleep(0.3 if load else 0.0)                  # let the spinners get going
        other = bu.OtherLoad()
        res = {r: {i: [] for i in fns} for r, fns in rows.items()}
        for k in range(rounds):
            for r, fns in rows.items():
                names = list(fns) if k % 2 == 0 else list(fns)[::-1]
                for name in names:
                    res[r][name] += sample(fns[name], per_round[r], budget_s)
        return res, other.fraction()
    finally:
        stop_busy(procs)


def summarize(samples):
    s = sorted(samples)
    return {"median_ms": bu._quantile(s, 0.5), "p90_ms": bu._quantile(s, 0.9), "n": len(s)}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--smoke", action="store_true", help="a few samples only (keeps the script working)")
    p.add_argument("--loads", default="0,1,2", help="numbers of busy processes, comma-separated")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    loads = [int(v) for v in args.loads.split(",")]
    rows, paths, diff = build()
    if args.smoke:
        rounds, budget, per_round = 1, 0.2, {"stream x(1,1,F)": 20, "stream x(1,F)": 20, "forward (32,100,F)": 2,
                                             "gates fwd (32,100,F)": 2, "small batch (4,100,F)": 2,
                                             "train fwd+bwd (32,20,F)": 2}
    else:
        rounds, budget, per_round = 6, 1.0, {"stream x(1,1,F)": 300, "stream x(1,F)": 300, "forward (32,100,F)": 8,
                                             "gates fwd (32,100,F)": 8, "small batch (4,100,F)": 30,
                                             "train fwd+bwd (32,20,F)": 10}
    header = {"hostname": bu.hostname(), **bu.cpu_info(), "torch": torch.__version__,
              "torch_threads": torch.get_num_threads(), "load_average_start": bu.load_average(),
              "started": _dt.datetime.now().isoformat(timespec="seconds"), "paths": paths,
              "check_maxabs_vs_torch": diff,
              "note": "busy processes are Python spin loops; other_cpu_frac is the CPU time used by anything "
                      "but this process (the spinners and whatever else shares the machine), per load"}
    log(f"busy-machine bench on {header['hostname']} ({header.get('cpu_model')}, {header['logical_cpus']} CPUs, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads), load average {header['load_average_start']}")
    results, other = {}, {}
    for load in loads:
        samples, other[load] = measure(rows, load, rounds, per_round, budget)
        for r, impls in samples.items():
            for name, s in impls.items():
                results.setdefault(r, {}).setdefault(name, {})[load] = summarize(s)
        log(f"  load {load}: done (other CPU {other[load] if other[load] is None else round(other[load], 2)})")
    table, verdicts = [], []
    for r, impls in results.items():
        for name, by_load in impls.items():
            idle = by_load.get(0)
            for load, st in by_load.items():
                t = impls["torch"][load]
                st["vs_idle_median"] = st["median_ms"] / idle["median_ms"] if idle else None
                st["vs_idle_p90"] = st["p90_ms"] / idle["p90_ms"] if idle else None
                st["vs_torch_median"] = st["median_ms"] / t["median_ms"]
                st["vs_torch_p90"] = st["p90_ms"] / t["p90_ms"]
                ok = None
                if name == "rnnstate" and idle:
                    ok = (st["vs_idle_median"] <= 2 and st["vs_idle_p90"] <= 2 and st["vs_torch_median"] <= 1
                          and st["vs_torch_p90"] <= 1)
                    verdicts.append(ok)
                st["target_met"] = ok
                table.append([r, name, str(load), bu.fmt_ms(st["median_ms"]), bu.fmt_ms(st["p90_ms"]),
                              bu.fmt_ratio(st["vs_idle_median"]), bu.fmt_ratio(st["vs_idle_p90"]),
                              bu.fmt_ratio(st["vs_torch_median"]), bu.fmt_ratio(st["vs_torch_p90"]),
                              "" if ok is None else ("ok" if ok else "MISS")])
    log(bu.render_table(["row", "impl", "busy", "median ms", "p90 ms", "med/idle", "p90/idle", "med/torch",
                         "p90/torch", "target"], table, left_cols=2))
    for r, path in paths.items():
        log(f"  {r}: rnnstate ran {path}")
    header["load_average_end"] = bu.load_average()
    data = {"header": header, "other_cpu_frac": other, "results": results,
            "target_met_all": all(verdicts) if verdicts else None}
    out = args.out
    if out is None:
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        out = os.path.join(_HERE, "results", f"busy-{bu.slug(header['hostname'])}-{stamp}.json")
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w") as f:
        json.dump(data, f, indent=1)
    log(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
