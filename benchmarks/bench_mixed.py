"""Mixed precision (``mixed_bfloat16``) against float32, in one process, interleaved: the LSTM forward,
one fit step, and the text-addition task's accuracy and epoch time; torch's own bf16 route (``nn.LSTM``
under ``torch.autocast("cpu", dtype=torch.bfloat16)``) measured beside it. Raw numbers go to JSON.

    python benchmarks/bench_mixed.py              # full
    python benchmarks/bench_mixed.py --smoke      # seconds; the code path, not a measurement
    python benchmarks/bench_mixed.py --threads 1  # on a busy machine: the CPU-time clock is then exact

Timing: rounds of one call of every implementation each (the order rotates every round), medians of the
per-call times, ratios of medians. Two clocks: wall time, and the calling thread's CPU time (with one
thread this ignores the time the process waits for a core on a shared machine; with more threads it
misses the workers' time, so it is reported only at --threads 1).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "examples"))
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import bench_util as bu  # noqa: E402


def interleaved(fns, rounds, warmup=1):
    """{name: {"wall_ms": median, "cpu_ms": median}}: `rounds` rounds of one call each, rotating order."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    names = list(fns)
    wall = {k: [] for k in names}
    cpu = {k: [] for k in names}
    for r in range(rounds):
        for k in names[r % len(names):] + names[:r % len(names)]:
            c0, w0 = time.thread_time(), time.perf_counter()
            fns[k]()
            wall[k].append(time.perf_counter() - w0)
            cpu[k].append(time.thread_time() - c0)
    return {k: {"wall_ms": float(np.median(wall[k])) * 1e3, "cpu_ms": float(np.median(cpu[k])) * 1e3,
                "wall_samples_ms": [round(v * 1e3, 3) for v in wall[k]]} for k in names}


def _lstm_pair(F, U):
    """An rnnstate float32 LSTM, the same weights under mixed_bfloat16, and nn.LSTM with them."""
    import rnnstate
    from rnnstate import layers

    fp32 = layers.LSTM(U, return_sequences=True)
    mixed = layers.LSTM(U, return_sequences=True, dtype="mixed_bfloat16")
    x = np.zeros((1, 2, F), "float32")
    with torch.no_grad():
        fp32(x)
        mixed(x)
    mixed.set_weights(fp32.get_weights())
    ref = torch.nn.LSTM(F, U, batch_first=True)
    with torch.no_grad():
        ref.weight_ih_l0.copy_(fp32.cell.weight_ih)
        ref.weight_hh_l0.copy_(fp32.cell.weight_hh)
        ref.bias_ih_l0.copy_(fp32.cell.bias_ih)
        ref.bias_hh_l0.zero_()
    del rnnstate
    return fp32, mixed, ref


def forward_rows(shapes, rounds):
    rows = {}
    for (B, T, F, U) in shapes:
        fp32, mixed, ref = _lstm_pair(F, U)
        x = torch.randn(B, T, F)

        def autocast_lstm():
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return ref(x)

        fns = {"rnnstate_fp32": lambda: fp32(x), "rnnstate_mixed_bf16": lambda: mixed(x),
               "torch_fp32": lambda: ref(x), "torch_autocast_bf16": autocast_lstm}
        with torch.no_grad():
            res = interleaved(fns, rounds)
            err = float((mixed(x).float() - fp32(x)).abs().max())
        res["paths"] = {"rnnstate_fp32": fp32.last_path, "rnnstate_mixed_bf16": mixed.last_path}
        res["max_abs_diff_mixed_vs_fp32"] = err
        rows[f"forward {(B, T, F, U)}"] = res
    return rows


def fit_step_rows(shapes, rounds):
    """One train_on_batch of Input -> LSTM(U) -> Dense(10, softmax, float32) in float32 and under
    mixed_bfloat16, and the same model by hand in torch under autocast (fused Adam)."""
    import rnnstate
    from rnnstate import layers
    from rnnstate import mixed_precision as mp

    rows = {}
    for (B, T, F, U) in shapes:
        x = np.random.default_rng(0).standard_normal((B, T, F)).astype("float32")
        y = np.random.default_rng(1).integers(0, 10, B)
        models = {}
        for name, policy in (("rnnstate_fp32", "float32"), ("rnnstate_mixed_bf16", "mixed_bfloat16")):
            mp.set_global_policy(policy)
            m = rnnstate.Sequential([layers.Input((T, F)), layers.LSTM(U),
                                     layers.Dense(10, activation="softmax", dtype="float32")])
            m.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
            models[name] = m
        mp.set_global_policy("float32")
        lstm, head = torch.nn.LSTM(F, U, batch_first=True), torch.nn.Linear(U, 10)
        opt = torch.optim.Adam(list(lstm.parameters()) + list(head.parameters()), lr=1e-3, eps=1e-7, fused=True)
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)

        def torch_step(amp):
            opt.zero_grad(set_to_none=True)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
                out, _ = lstm(xt)
            loss = torch.nn.functional.cross_entropy(head(out[:, -1].float()), yt)
            loss.backward()
            opt.step()

        fns = {k: (lambda m=m: m.train_on_batch(x, y)) for k, m in models.items()}
        fns["torch_fp32"] = lambda: torch_step(False)
        fns["torch_autocast_bf16"] = lambda: torch_step(True)
        res = interleaved(fns, rounds)
        res["paths"] = {k: m.layers[0].last_path for k, m in models.items()}
        rows[f"fit step {(B, T, F, U)}"] = res
    return rows


def addition_accuracy(n, digits, hidden, epochs):
    """The text-addition task (examples/addition.py) trained from the same initial weights in float32 and
    under mixed_bfloat16 (last Dense float32, Keras' advice): validation character accuracy, exact answers
    and seconds per epoch; the two trainings run epoch by epoch, alternating."""
    import addition
    import rnnstate
    from rnnstate import layers
    from rnnstate import mixed_precision as mp

    x, y, qs, ans = addition.make_data(n, digits, seed=0)
    split = len(x) - len(x) // 10
    models = {}
    for name, policy in (("fp32", "float32"), ("mixed_bf16", "mixed_bfloat16")):
        mp.set_global_policy(policy)
        rnnstate.utils.set_random_seed(0)
        m = rnnstate.Sequential([layers.Input((2 * digits + 1, len(addition.CHARS))), layers.LSTM(hidden),
                                 layers.RepeatVector(digits + 1), layers.LSTM(hidden, return_sequences=True),
                                 layers.Dense(len(addition.CHARS), activation="softmax", dtype="float32")])
        m.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
        models[name] = m
    mp.set_global_policy("float32")
    models["mixed_bf16"].set_weights(models["fp32"].get_weights())
    times = {k: [] for k in models}
    hist = {k: None for k in models}
    for e in range(epochs):
        for k in (list(models) if e % 2 == 0 else list(models)[::-1]):
            t0 = time.perf_counter()
            hist[k] = models[k].fit(x[:split], y[:split], batch_size=32, epochs=1, verbose=0,
                                    validation_data=(x[split:], y[split:]))
            times[k].append(time.perf_counter() - t0)
    out = {"n": n, "digits": digits, "hidden": hidden, "epochs": epochs}
    for k, m in models.items():
        pred = addition.decode(m.predict(x[split:], verbose=0))
        out[k] = {"val_char_accuracy": float(hist[k].history["val_accuracy"][-1]),
                  "exact_answers": float(np.mean([p == t for p, t in zip(pred, ans[split:])])),
                  "s_per_epoch_median": float(np.median(times[k])), "epoch_times_s": times[k],
                  "lstm_path": m.layers[0].last_path}
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--smoke", action="store_true")
    p.add_argument("--out")
    p.add_argument("--threads", type=int)
    p.add_argument("--rounds", type=int, help="timed rounds per row (default 15; 2 with --smoke)")
    p.add_argument("--skip-accuracy", action="store_true")
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    from rnnstate.loop import mixed as loop_mixed
    header = {"machine": bu.cpu_info(), "hostname": bu.hostname(), "torch": torch.__version__,
              "torch_threads": torch.get_num_threads(), "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
              "load_average": bu.load_average(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
              "bf16_units": loop_mixed.bf16_units_reason() or "yes"}
    rounds = a.rounds or (2 if a.smoke else 15)
    shapes = [(4, 5, 3, 8)] if a.smoke else [(32, 100, 32, 128), (256, 100, 32, 256)]
    result = {"header": header, "rounds": rounds}
    result["forward"] = forward_rows(shapes, rounds)
    result["fit_step"] = fit_step_rows(shapes, max(2, rounds // 3))
    if not a.skip_accuracy:
        result["addition"] = addition_accuracy(*((64, 2, 8, 1) if a.smoke else (3000, 2, 64, 40)))

    cpu_ok = torch.get_num_threads() == 1
    print(f"machine: {header['machine'].get('cpu_model')}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, bf16 units: {header['bf16_units']}, load {header['load_average']}")
    for group in ("forward", "fit_step"):
        for row, res in result[group].items():
            base = res["rnnstate_fp32"]
            line = f"{row}: " + ", ".join(f"{k} {v['wall_ms']:.2f} ms" for k, v in res.items()
                                           if isinstance(v, dict) and "wall_ms" in v)
            line += (f" | fp32/mixed wall {base['wall_ms'] / res['rnnstate_mixed_bf16']['wall_ms']:.2f}x, "
                     f"mixed vs torch autocast {res['rnnstate_mixed_bf16']['wall_ms'] / res['torch_autocast_bf16']['wall_ms']:.2f}x time")
            if cpu_ok:
                line += (f"; CPU clock fp32/mixed {base['cpu_ms'] / res['rnnstate_mixed_bf16']['cpu_ms']:.2f}x, "
                         f"mixed vs autocast {res['rnnstate_mixed_bf16']['cpu_ms'] / res['torch_autocast_bf16']['cpu_ms']:.2f}x time")
            print(line)
            print(f"    mixed path: {res['paths']['rnnstate_mixed_bf16']}")
    if "addition" in result:
        ad = result["addition"]
        print(f"text addition ({ad['n']} questions, {ad['digits']} digits, {ad['epochs']} epochs): val char accuracy "
              f"fp32 {ad['fp32']['val_char_accuracy']:.4f}, mixed_bfloat16 {ad['mixed_bf16']['val_char_accuracy']:.4f} "
              f"(exact answers {ad['fp32']['exact_answers']:.3f} / {ad['mixed_bf16']['exact_answers']:.3f}); s/epoch "
              f"{ad['fp32']['s_per_epoch_median']:.2f} / {ad['mixed_bf16']['s_per_epoch_median']:.2f}")
    out = a.out or (None if a.smoke else str(ROOT / "benchmarks" / "results" /
                                            f"mixed-{bu.slug(bu.hostname())}-{time.strftime('%Y%m%d-%H%M%S')}"
                                            f"{'-threads1' if cpu_ok else ''}.json"))
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(result, indent=1))
        print(f"JSON: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
