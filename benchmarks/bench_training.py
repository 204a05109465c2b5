"""Training speed: rnnstate's `train_on_batch` vs a hand-written torch loop, and one text-addition epoch
vs Keras 3 on JAX — measured in one process, same data, ratios printed, raw numbers written as JSON.

    python benchmarks/bench_training.py            # full
    python benchmarks/bench_training.py --smoke    # seconds; CI keeps it working
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

import numpy as np  # noqa: E402
import torch  # noqa: E402

import bench_util as bu  # noqa: E402


def train_step_pair(B, T, F, U, C, policy):
    """rnnstate Model.train_on_batch vs nn.LSTM + nn.Linear + torch.optim.Adam, same sizes."""
    import rnnstate
    from rnnstate import layers as L

    x = np.random.default_rng(0).standard_normal((B, T, F)).astype("float32")
    y = np.eye(C, dtype="float32")[np.random.default_rng(1).integers(0, C, B)]
    inp = rnnstate.Input((T, F))
    m = rnnstate.Model(inp, L.Dense(C, activation="softmax")(L.LSTM(U)(inp)))
    m.compile(optimizer="adam", loss="categorical_crossentropy")

    lstm, head = torch.nn.LSTM(F, U, batch_first=True), torch.nn.Linear(U, C)
    params = list(lstm.parameters()) + list(head.parameters())
    opt = torch.optim.Adam(params, lr=1e-3, eps=1e-7)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)

    def torch_step():
        opt.zero_grad(set_to_none=True)
        out, _ = lstm(xt)
        logp = torch.log_softmax(head(out[:, -1]), -1)
        loss = -(yt * logp).sum(-1).mean()
        loss.backward()
        opt.step()
        return loss.item()

    def ours():
        return m.train_on_batch(x, y)

    res = bu.measure_group({"torch_loop": torch_step, "rnnstate": ours}, policy)
    return {k: v.median_ms for k, v in res.items()}


def addition_epoch(n, digits, hidden, epochs, with_keras):
    import addition
    import rnnstate

    x, y, _, _ = addition.make_data(n, digits, seed=0)
    out = {}
    rnnstate.utils.set_random_seed(0)
    m = addition.build(digits, hidden)
    m.fit(x[:64], y[:64], batch_size=32, epochs=1, verbose=0)             # warm-up
    t0 = time.perf_counter()
    h = m.fit(x, y, batch_size=32, epochs=epochs, verbose=0)
    out["rnnstate_s_per_epoch"] = (time.perf_counter() - t0) / epochs
    out["rnnstate_final_acc"] = float(h.history["accuracy"][-1])
    if with_keras:
        import keras
        km = keras.Sequential([keras.Input((2 * digits + 1, len(addition.CHARS))), keras.layers.LSTM(hidden),
                               keras.layers.RepeatVector(digits + 1),
                               keras.layers.LSTM(hidden, return_sequences=True),
                               keras.layers.Dense(len(addition.CHARS), activation="softmax")])
        km.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
        km.fit(x[:64], y[:64], batch_size=32, epochs=1, verbose=0)        # warm-up: XLA compile
        t0 = time.perf_counter()
        kh = km.fit(x, y, batch_size=32, epochs=epochs, verbose=0)
        out["keras_jax_s_per_epoch"] = (time.perf_counter() - t0) / epochs
        out["keras_final_acc"] = float(kh.history["accuracy"][-1])
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--smoke", action="store_true")
    p.add_argument("--out")
    p.add_argument("--threads", type=int)
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    policy = bu.TimingPolicy.for_mode(a.smoke, False)
    header = {"machine": bu.cpu_info(), "hostname": bu.hostname(), "torch": torch.__version__,
              "torch_threads": torch.get_num_threads(), "device": "cpu",
              "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "load_average": bu.load_average()}
    step_shape = (4, 5, 3, 8, 3) if a.smoke else (32, 50, 32, 128, 10)
    step = train_step_pair(*step_shape, policy)
    n, digits, hidden, epochs = (64, 2, 8, 1) if a.smoke else (10000, 3, 128, 2)
    add = addition_epoch(n, digits, hidden, epochs, with_keras=not a.smoke)
    result = {"header": header, "train_step": {"shape_BTFUC": step_shape, **step},
              "addition": {"n": n, "digits": digits, "hidden": hidden, "epochs": epochs, **add}}
    print(f"machine: {header['machine'].get('cpu_model')} x{header['machine'].get('logical_cpus')}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"one training step {step_shape}: torch loop {step['torch_loop']:.2f} ms, rnnstate "
          f"{step['rnnstate']:.2f} ms -> {step['rnnstate'] / step['torch_loop']:.2f}x")
    line = f"text addition ({n} questions): rnnstate {add['rnnstate_s_per_epoch']:.2f} s/epoch"
    if "keras_jax_s_per_epoch" in add:
        line += (f", Keras 3 (JAX) {add['keras_jax_s_per_epoch']:.2f} s/epoch -> "
                 f"{add['rnnstate_s_per_epoch'] / add['keras_jax_s_per_epoch']:.2f}x")
    print(line)
    out = a.out or (None if a.smoke else str(ROOT / "benchmarks" / "results" /
                                            f"training-{bu.slug(bu.hostname())}-{time.strftime('%Y%m%d-%H%M%S')}.json"))
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(result, indent=1))
        print(f"JSON: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
