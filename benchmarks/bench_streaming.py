"""Streaming one step at a time: rnnstate (``Streamer`` / ``model.stream()`` / ``StateStore``) vs the
equivalent torch modules (nn.LSTM / nn.GRU / nn.RNN / nn.Embedding / nn.Linear with the same weights)
called step by step, with their states carried, under ``torch.no_grad()``.

Cases (F features, U units), each measured interleaved with its torch peer in one process, ``--repeats``
times; the ratio reported is the median over the repeats of (rnnstate median / torch median):

* single layer, B=1, F=32, U=128: ``Streamer(layer).step`` with x_t (B, F) and (B, 1, F) vs the torch
  module's one-step call on (B, 1, F); LSTM, GRU, SimpleRNN. Target (issue 16): <= 0.15x nn.LSTM's
  one-step call (timed beside the GRU and SimpleRNN too); the ratio against nn.GRU / nn.RNN, whose calls
  cost a third and a quarter of nn.LSTM's (no oneDNN setup), is reported beside it.
* small models, B=1: LSTM(128)->LSTM(128)->Dense(10); GRU(64)->SimpleRNN(64)->Dense(10);
  Embedding(64,32)->LSTM(128)->Dense(64, softmax) (a char model; x_t token ids). ``model.stream().step``
  (the step plan) and, for reference, the same streamer forced onto the model graph. Target: <= 0.5x.
* StateStore: 1,000 streams of the LSTM-LSTM-Dense model, stepped in batches of 64 random keys (and one
  key per step): ``store.step(keys, x_t)`` vs a per-stream loop (each stream its own ``Streamer``, 64 B=1
  steps) vs the torch modules on the batch with the states gathered from / scattered to per-stream pool
  tensors (index_select / index_copy_, a hand-written store). Reported as streams stepped per second.
  At batch 64 the step is compute-bound (two (64, 160) x (160, 512) products per LSTM): both sides are
  at the BLAS floor, and the ratio is the store's key handling over the torch side's.

    python benchmarks/bench_streaming.py              # full: JSON to benchmarks/results/streaming-<host>-<stamp>.json
    python benchmarks/bench_streaming.py --smoke      # seconds; keeps the script working
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import bench_util as bu  # noqa: E402

TARGETS = {"layer": 0.15, "model": 0.5, "store": 0.5}
REF_LSTM = "torch nn.LSTM (B,1,F), reference"


# ---- torch peers with the same weights ---------------------------------------------------------------------
def torch_twin(layer):
    """The torch module computing `layer` (rnnstate keeps torch's weight layout), eval, no grad."""
    from rnnstate import layers as L
    with torch.no_grad():
        if isinstance(layer, L.Dense):
            m = torch.nn.Linear(layer.input_dim, layer.units, bias=layer.use_bias)
            m.weight.copy_(layer.kernel.t())
            if layer.use_bias:
                m.bias.copy_(layer.bias)
            return m
        if isinstance(layer, L.Embedding):
            m = torch.nn.Embedding(layer.input_dim, layer.output_dim)
            m.weight.copy_(layer.embeddings)
            return m
        cell = layer.cell
        cls = {"LSTM": torch.nn.LSTM, "GRU": torch.nn.GRU}.get(cell.kernel_label)
        kw = {} if cls else {"nonlinearity": cell.activation_name}
        m = (cls or torch.nn.RNN)(cell.input_dim, cell.units, batch_first=True, **kw)
        m.weight_ih_l0.copy_(cell.weight_ih)
        m.weight_hh_l0.copy_(cell.weight_hh)
        m.bias_ih_l0.copy_(cell.bias_ih)
        m.bias_hh_l0.copy_(cell.bias_hh)
        return m.eval()


class TorchStack:
    """The model's layers as torch modules, stepped on (B, 1, ...) with the states carried."""

    def __init__(self, layers):
        from rnnstate import layers as L
        self.mods = []
        for layer in layers:
            if isinstance(layer, L.InputLayer):
                continue
            act = None
            if isinstance(layer, L.Dense) and layer.get_config().get("activation") == "softmax":
                act = torch.softmax
            kind = "rnn" if hasattr(layer, "cell") else "ff"
            self.mods.append((kind, torch_twin(layer), act))

    def zero_states(self, B):
        out = []
        for kind, m, _ in self.mods:
            if kind == "rnn":
                z = torch.zeros(1, B, m.hidden_size)
                out.append((z, z.clone()) if isinstance(m, torch.nn.LSTM) else z)
        return out

    def step(self, x, states):
        h, new, k = x, [], 0
        with torch.no_grad():
            for kind, m, act in self.mods:
                if kind == "rnn":
                    h, st = m(h, states[k])
                    new.append(st)
                    k += 1
                else:
                    h = m(h)
                    if act is not None:
                        h = act(h, -1)
        return h, new


# ---- cases -------------------------------------------------------------------------------------------------
def _models(F, U, smoke):
    import rnnstate
    from rnnstate import layers as L
    u2, vocab, emb = (U, 64, 32) if not smoke else (U, 7, 4)
    m1 = rnnstate.Sequential([rnnstate.Input((None, F)), L.LSTM(U, return_sequences=True), L.LSTM(U),
                              L.Dense(10)], name="lstm_lstm_dense")
    inp = rnnstate.Input((None, F))
    g = L.GRU(max(u2 // 2, 2), return_sequences=True)(inp)
    m2 = rnnstate.Model(inp, L.Dense(10)(L.SimpleRNN(max(u2 // 2, 2))(g)), name="gru_rnn_dense")
    m3 = rnnstate.Sequential([rnnstate.Input((None,), dtype="int64"), L.Embedding(vocab, emb),
                              L.LSTM(U, return_sequences=True), L.Dense(vocab, activation="softmax")],
                             name="embedding_lstm_dense")
    return [(m1, "float"), (m2, "float"), (m3, vocab)]


def layer_case(kind, B, F, U):
    """{impl: fn}, check (max |diff| after 8 steps), path."""
    from rnnstate import layers as L
    from rnnstate.states import Streamer
    torch.manual_seed(0)
    layer = getattr(L, kind)(U)
    x = torch.randn(B, 8, F)
    layer(x)
    twin = torch_twin(layer)
    stream = Streamer(layer)
    zero = (torch.zeros(1, B, U), torch.zeros(1, B, U)) if kind == "LSTM" else torch.zeros(1, B, U)
    st, tst = None, zero
    diff = 0.0
    for t in range(8):
        y, st = stream.step(x[:, t], st)
        with torch.no_grad():
            ty, tst = twin(x[:, t:t + 1], tst)
        diff = max(diff, float((y - ty[:, 0]).abs().max()))
    x2, x3 = x[:, 0].contiguous(), x[:, :1].contiguous()
    s = {"a": None, "b": None, "t": zero}

    def rs_2d():
        _, s["a"] = stream.step(x2, s["a"])

    def rs_3d():
        _, s["b"] = stream.step(x3, s["b"])

    def torch_mod():
        with torch.no_grad():
            _, s["t"] = twin(x3, s["t"])

    fns = {f"torch nn.{type(twin).__name__} (B,1,F)": torch_mod, "rnnstate Streamer(layer) x (B,F)": rs_2d,
           "rnnstate Streamer(layer) x (B,1,F)": rs_3d}
    if kind != "LSTM":              # the yardstick for every single layer: nn.LSTM's one-step call
        lstm = torch.nn.LSTM(F, U, batch_first=True).eval()
        s["l"] = (torch.zeros(1, B, U), torch.zeros(1, B, U))

        def torch_lstm():
            with torch.no_grad():
                _, s["l"] = lstm(x3, s["l"])
        fns[REF_LSTM] = torch_lstm
    return fns, diff, stream.path


def model_case(model, inp, B, F):
    from rnnstate.states import Streamer
    torch.manual_seed(1)
    stack = TorchStack(model.layers)
    if inp == "float":
        xs = torch.randn(B, 8, F)
    else:
        xs = torch.randint(0, inp, (B, 8))
    stream, graph = model.stream(), Streamer(model)
    graph._fast = False                                      # the model graph: what every step ran before
    st, tst = None, stack.zero_states(B)
    diff = 0.0
    for t in range(8):
        y, st = stream.step(xs[:, t:t + 1], st)
        ty, tst = stack.step(xs[:, t:t + 1], tst)
        diff = max(diff, float((y.reshape(B, -1) - ty.reshape(B, -1)).abs().max()))
    x1 = xs[:, :1].contiguous()
    s = {"p": None, "g": None, "t": stack.zero_states(B)}

    def rs_plan():
        _, s["p"] = stream.step(x1, s["p"])

    def rs_graph():
        _, s["g"] = graph.step(x1, s["g"])

    def torch_mods():
        _, s["t"] = stack.step(x1, s["t"])

    fns = {"torch modules step by step": torch_mods, "rnnstate model.stream().step": rs_plan,
           "rnnstate model graph (before)": rs_graph}
    return fns, diff, stream.path


def store_case(model, F, n_streams, batch, smoke):
    from rnnstate.states import StateStore
    rng = np.random.default_rng(2)
    keys = [f"s{i}" for i in range(n_streams)]
    batches = [[keys[j] for j in rng.choice(n_streams, batch, replace=False)] for _ in range(4 if smoke else 64)]
    x = torch.randn(batch, 1, F)
    rows_x = [x[i:i + 1] for i in range(batch)]
    store = StateStore(model)
    for i in range(0, n_streams, batch):                     # every stream seen once: the steady state
        ks = keys[i:i + batch]
        store.step(ks, x[:len(ks)])
    per = {k: model.stream() for k in keys}                  # each stream its own Streamer
    per_states = {k: None for k in keys}
    for k in keys:
        _, per_states[k] = per[k].step(rows_x[0], None)
    stack = TorchStack(model.layers)
    row_of = {k: i for i, k in enumerate(keys)}
    pool = [tuple(torch.zeros(n_streams, m.hidden_size) for _ in range(2 if isinstance(m, torch.nn.LSTM) else 1))
            for kind, m, _ in stack.mods if kind == "rnn"]
    it = {"s": 0, "p": 0, "t": 0}

    def nxt(name):
        i = it[name] = (it[name] + 1) % len(batches)
        return batches[i]

    def rs_store():
        store.step(nxt("s"), x)

    def rs_per_stream():
        for k, xr in zip(nxt("p"), rows_x):
            _, per_states[k] = per[k].step(xr, per_states[k])

    def torch_store():
        idx = torch.from_numpy(np.array([row_of[k] for k in nxt("t")], dtype=np.int64))
        states = [tuple(p.index_select(0, idx).unsqueeze(0) for p in ps) for ps in pool]
        states = [s if len(s) == 2 else s[0] for s in states]
        _, new = stack.step(x, states)
        for ps, st in zip(pool, new):
            for p, v in zip(ps, st if isinstance(st, tuple) else (st,)):
                p.index_copy_(0, idx, v[0])

    fns = {"torch modules + index gather/scatter": torch_store, "rnnstate StateStore.step": rs_store,
           "rnnstate per-stream Streamer loop": rs_per_stream}
    return fns, store.streamer.last_path


# ---- running -----------------------------------------------------------------------------------------------
def run_repeats(fns, policy, repeats):
    """Per implementation: the median ms of each repeat (each repeat one interleaved measure_group)."""
    per = {k: [] for k in fns}
    errors = {}
    for _ in range(repeats):
        res = bu.measure_group(fns, policy)
        for k, v in res.items():
            if isinstance(v, BaseException):
                errors[k] = repr(v)
            else:
                per[k].append(v.median_ms)
    return per, errors


def summarize(per, base):
    """{impl: {median_ms (median of repeats), ratio (median over repeats of impl/base), repeats_ms}}; with
    an nn.LSTM reference in the group also the ratio against it."""
    out = {}
    for k, ms in per.items():
        if not ms:
            continue
        ratios = [a / b for a, b in zip(ms, per[base])] if per.get(base) else []
        out[k] = {"median_ms": statistics.median(ms), "repeats_ms": ms,
                  "ratio_vs_torch": statistics.median(ratios) if ratios else None,
                  "ratio_repeats": ratios}
        if per.get(REF_LSTM):
            out[k]["ratio_vs_nn_lstm"] = statistics.median([a / b for a, b in zip(ms, per[REF_LSTM])])
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--smoke", action="store_true")
    p.add_argument("--out")
    p.add_argument("--repeats", type=int, default=None, help="interleaved repeats per case (default 5; smoke 1)")
    p.add_argument("--threads", type=int, default=1, help="torch threads for everything (default 1)")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    import rnnstate
    repeats = a.repeats or (1 if a.smoke else 5)
    policy = bu.TimingPolicy.for_mode(a.smoke, False)
    if not a.smoke:
        policy.target_s = 0.3
        policy.max_reps = 5000
    F, U = (4, 8) if a.smoke else (32, 128)
    n_streams, batch = (20, 4) if a.smoke else (1000, 64)
    header = {"machine": bu.cpu_info(), "hostname": bu.hostname(), "torch": torch.__version__,
              "rnnstate": getattr(rnnstate, "__version__", None), "threads": torch.get_num_threads(),
              "repeats": repeats, "loadavg_start": bu.load_average(), "shapes": {"F": F, "U": U},
              "compiled_kernels": rnnstate._ext.unavailable_reason() or "available"}
    load = bu.OtherLoad()
    cases, diffs = [], []
    for kind in ("LSTM", "GRU", "SimpleRNN"):
        fns, diff, path = layer_case(kind, 1, F, U)
        base = next(iter(fns))
        per, errors = run_repeats(fns, policy, repeats)
        cases.append({"case": f"{kind}({U}) one step, B=1, F={F}", "group": "layer", "path": path, "base": base,
                      "max_abs_diff_vs_torch": diff, "results": summarize(per, base), "errors": errors})
        diffs.append(diff)
    models = _models(F, U, a.smoke)
    for model, inp in models:
        fns, diff, path = model_case(model, inp, 1, F)
        base = next(iter(fns))
        per, errors = run_repeats(fns, policy, repeats)
        desc = " -> ".join(type(l).__name__ for l in model.layers if type(l).__name__ != "InputLayer")
        cases.append({"case": f"{model.name} ({desc}) one step, B=1", "group": "model", "path": path,
                      "base": base, "max_abs_diff_vs_torch": diff, "results": summarize(per, base),
                      "errors": errors})
        diffs.append(diff)
    for b in (batch, 1):
        fns, path = store_case(models[0][0], F, n_streams, b, a.smoke)
        base = next(iter(fns))
        per, errors = run_repeats(fns, policy, repeats)
        res = summarize(per, base)
        for v in res.values():
            v["streams_per_s"] = b / (v["median_ms"] / 1e3)
        what = f"batches of {b} random keys" if b > 1 else "one random key per step"
        cases.append({"case": f"StateStore {n_streams} streams, {what} ({models[0][0].name})", "group": "store",
                      "batch": b, "path": path, "base": base, "results": res, "errors": errors})
    header["other_load"] = load.fraction()
    header["loadavg_end"] = bu.load_average()

    ol = header["other_load"]
    print(f"machine: {header['machine'].get('cpu_model')} x{header['machine'].get('logical_cpus')}, threads="
          f"{header['threads']}, torch {torch.__version__}, repeats {repeats}, other load "
          f"{ol if ol is None else round(ol, 2)}, loadavg {header['loadavg_start']} -> {header['loadavg_end']}")
    rows = []
    for c in cases:
        target = TARGETS[c["group"]]
        for impl, r in c["results"].items():
            ratio = r["ratio_vs_torch"]
            extra = f"{r['streams_per_s']:,.0f} streams/s" if "streams_per_s" in r else ""
            lstm_ratio = r.get("ratio_vs_nn_lstm")
            mark = "" if impl in (c["base"], REF_LSTM) or "before" in impl or "per-stream" in impl \
                or ratio is None else ("ok" if ratio <= target else "MISSED")
            if mark and lstm_ratio is not None:
                mark = (f"{'ok' if lstm_ratio <= target else 'MISSED'} vs nn.LSTM ({lstm_ratio:.2f}x); "
                        f"{mark} vs its own module")
            rows.append([c["case"], impl, f"{r['median_ms'] * 1e3:.1f}",
                         bu.fmt_ratio(ratio) if impl != REF_LSTM else "", f"<= {target}x {mark}" if mark else "",
                         extra])
        for impl, err in c["errors"].items():
            rows.append([c["case"], impl, "error", err[:40], "", ""])
    print(bu.render_table(["case", "implementation", "median us", "vs torch (median of repeats)", "target",
                           "throughput"], rows, left_cols=2))
    for c in cases:
        print(f"  {c['case']}: path {c['path']!r}"
              + (f", max |rnnstate - torch| {c['max_abs_diff_vs_torch']:.1e}" if "max_abs_diff_vs_torch" in c else ""))
    result = {"schema": 1, "header": header, "cases": cases}
    stamp = time.strftime('%Y%m%d-%H%M%S')
    out = a.out or (None if a.smoke else str(ROOT / "benchmarks" / "results" /
                                            f"streaming-{bu.slug(bu.hostname())}-{stamp}.json"))
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(result, indent=1))
        print(f"JSON: {out}")
    if max(diffs) > 1e-4:
        sys.exit(f"rnnstate and torch disagree (max |diff| {max(diffs):.2e})")


if __name__ == "__main__":
    main()
