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
    # rnnstate's Adam runs torch's fused update: the fair peer uses it too ("torch_loop"); torch's
    # default (foreach) update is reported beside it
    opt = torch.optim.Adam(params, lr=1e-3, eps=1e-7, fused=True)
    opt_default = torch.optim.Adam(params, lr=1e-3, eps=1e-7)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)

    def step_with(o):
        o.zero_grad(set_to_none=True)
        out, _ = lstm(xt)
        logp = torch.log_softmax(head(out[:, -1]), -1)
        loss = -(yt * logp).sum(-1).mean()
        loss.backward()
        o.step()
        return loss.item()

    def torch_step():
        return step_with(opt)

    def torch_step_default_adam():
        return step_with(opt_default)

    def ours():
        return m.train_on_batch(x, y)

    res = bu.measure_group({"torch_loop": torch_step, "torch_loop_default_adam": torch_step_default_adam,
                            "rnnstate": ours}, policy)
    return {k: v.median_ms for k, v in res.items()}


def _torch_addition(digits, hidden, n_chars):
    """The text-addition model written by hand in torch (nn.LSTM, nn.Linear, Adam as rnnstate
    configures it: Keras' defaults, fused update) and one epoch of its training loop."""
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.enc = torch.nn.LSTM(n_chars, hidden, batch_first=True)
            self.dec = torch.nn.LSTM(hidden, hidden, batch_first=True)
            self.out = torch.nn.Linear(hidden, n_chars)

        def forward(self, x):
            _, (h, _) = self.enc(x)
            seq, _ = self.dec(h[0].unsqueeze(1).expand(-1, digits + 1, -1))
            return self.out(seq)

    net = Net()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, eps=1e-7, fused=True)

    def epoch(x, y, batch_size=32):
        xt, yt = torch.from_numpy(x).float(), torch.from_numpy(y.argmax(-1))
        perm = torch.randperm(len(xt))
        for i in range(0, len(xt), batch_size):
            idx = perm[i:i + batch_size]
            opt.zero_grad(set_to_none=True)
            logits = net(xt[idx])
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, n_chars), yt[idx].reshape(-1))
            loss.backward()
            opt.step()
    return epoch


def addition_epoch(n, digits, hidden, rounds, with_keras):
    """Epochs of the three (and the BLAS floor), interleaved (round r: one epoch each, in an order
    that rotates), so that drift on a shared machine hits all alike; medians of the per-epoch times."""
    import addition
    import rnnstate

    x, y, _, _ = addition.make_data(n, digits, seed=0)
    rnnstate.utils.set_random_seed(0)
    m = addition.build(digits, hidden)
    m.fit(x[:64], y[:64], batch_size=32, epochs=1, verbose=0)             # warm-up
    runners = {"rnnstate": lambda: m.fit(x, y, batch_size=32, epochs=1, verbose=0)}
    torch_epoch = _torch_addition(digits, hidden, len(addition.CHARS))
    torch_epoch(x[:64], y[:64])
    runners["torch_loop"] = lambda: torch_epoch(x, y)
    if with_keras:
        import keras
        km = keras.Sequential([keras.Input((2 * digits + 1, len(addition.CHARS))), keras.layers.LSTM(hidden),
                               keras.layers.RepeatVector(digits + 1),
                               keras.layers.LSTM(hidden, return_sequences=True),
                               keras.layers.Dense(len(addition.CHARS), activation="softmax")])
        km.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
        km.fit(x[:64], y[:64], batch_size=32, epochs=1, verbose=0)        # warm-up: XLA compile
        runners["keras_jax"] = lambda: km.fit(x, y, batch_size=32, epochs=1, verbose=0)
    # the BLAS floor of one epoch: both LSTMs' matrix products (forward and backward), nothing else
    import bench_impls as bi
    enc = bi.setup_gemm_floor("lstm", 32, 2 * digits + 1, len(addition.CHARS), hidden, "fwd+bwd", "cpu").fn
    dec = bi.setup_gemm_floor("lstm", 32, digits + 1, hidden, hidden, "fwd+bwd", "cpu").fn
    steps = -(-len(x) // 32)

    def floor_epoch():
        for _ in range(steps):
            enc()
            dec()
    runners["gemm_floor"] = floor_epoch
    times = {k: [] for k in runners}
    last = {}
    names = list(runners)
    for r in range(rounds):
        # the order rotates every round: whatever runs right after XLA's thread pool has been busy
        # (measured here: the next few hundred ms of torch run up to 1.5x slower) is a different one
        for k in names[r % len(names):] + names[:r % len(names)]:
            t0 = time.perf_counter()
            last[k] = runners[k]()
            times[k].append(time.perf_counter() - t0)
    out = {f"{k}_s_per_epoch": float(np.median(v)) for k, v in times.items()}
    out["epoch_times_s"] = times
    out["rnnstate_final_acc"] = float(last["rnnstate"].history["accuracy"][-1])
    if with_keras:
        out["keras_final_acc"] = float(last["keras_jax"].history["accuracy"][-1])
    return out


def _vowels():
    """aeon's JapaneseVowels (shipped with aeon, no download): 270 training / 370 test utterances of 7-26
    frames, 12 LPC coefficients, 9 speakers; right-padded with zeros to 29 steps (Keras' Masking(0.0))."""
    from aeon.datasets import load_japanese_vowels
    out = []
    for split in ("train", "test"):
        X, y = load_japanese_vowels(split=split)
        x = np.zeros((len(X), 29, 12), np.float32)
        for i, a in enumerate(X):
            x[i, :a.shape[1]] = a.T
        out += [x, y.astype(int) - 1, np.array([a.shape[1] for a in X])]
    return out


def _vowels_model(lib, units):
    L = lib.layers
    m = lib.Sequential([lib.Input((29, 12)), L.Masking(0.0), L.LSTM(units), L.Dense(9, activation="softmax")])
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return m


def _torch_vowels(x, y, lengths, units):
    """The same classifier by hand in torch: nn.LSTM over packed sequences (torch's way to skip padding),
    nn.Linear, cross-entropy, Adam as rnnstate configures it (Keras' defaults, fused update)."""
    from torch.nn.utils.rnn import pack_padded_sequence
    lstm, head = torch.nn.LSTM(12, units, batch_first=True), torch.nn.Linear(units, 9)
    opt = torch.optim.Adam(list(lstm.parameters()) + list(head.parameters()), lr=1e-3, eps=1e-7, fused=True)
    xt, yt, lt = torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(lengths)

    def epochs(n, batch=32):
        for _ in range(n):
            perm = torch.randperm(len(xt))
            for i in range(0, len(xt), batch):
                idx = perm[i:i + batch]
                opt.zero_grad(set_to_none=True)
                packed = pack_padded_sequence(xt[idx], lt[idx], batch_first=True, enforce_sorted=False)
                _, (h, _) = lstm(packed)
                torch.nn.functional.cross_entropy(head(h[0]), yt[idx]).backward()
                opt.step()
    return epochs


def vowels_epoch(units, epochs, rounds, with_keras):
    """Masked variable-length classification (JapaneseVowels, Masking -> LSTM(units) -> Dense(9)): s/epoch
    of rnnstate's fit, Keras 3's fit and the hand-written torch loop, interleaved in rounds of `epochs`
    epochs each (every peer's first epochs untimed: XLA compiles there), medians; test accuracies after."""
    import rnnstate
    xtr, ytr, ltr, xte, yte, _ = _vowels()
    rnnstate.utils.set_random_seed(0)
    m = _vowels_model(rnnstate, units)
    m.fit(xtr, ytr, batch_size=32, epochs=1, verbose=0)
    runners = {"rnnstate": lambda: m.fit(xtr, ytr, batch_size=32, epochs=epochs, verbose=0)}
    tl = _torch_vowels(xtr, ytr, ltr, units)
    tl(1)
    runners["torch_loop_packed"] = lambda: tl(epochs)
    if with_keras:
        import keras
        keras.utils.set_random_seed(0)
        km = _vowels_model(keras, units)
        km.fit(xtr, ytr, batch_size=32, epochs=1, verbose=0)
        runners["keras_jax"] = lambda: km.fit(xtr, ytr, batch_size=32, epochs=epochs, verbose=0)
    times = {k: [] for k in runners}
    names = list(runners)
    for r in range(rounds):
        for k in names[r % len(names):] + names[:r % len(names)]:
            t0 = time.perf_counter()
            runners[k]()
            times[k].append((time.perf_counter() - t0) / epochs)
    out = {f"{k}_s_per_epoch": float(np.median(v)) for k, v in times.items()}
    out["epoch_times_s"] = times
    out["rnnstate_test_acc"] = float(m.evaluate(xte, yte, verbose=0)[1])
    out["rnnstate_path"] = m.layers[1].last_path
    if with_keras:
        out["keras_test_acc"] = float(km.evaluate(xte, yte, verbose=0)[1])
    return out


def _ddp_worker(rank, world, port, threads, n, digits, hidden, epochs, batch, out):
    """One process of the distributed addition run: `epochs` timed epochs after a warm-up epoch."""
    import torch.distributed as dist

    import addition
    import rnnstate
    from rnnstate.training import Callback

    torch.set_num_threads(threads)
    if world > 1:
        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    x, y, _, _ = addition.make_data(n, digits, seed=0)
    rnnstate.utils.set_random_seed(0)
    m = addition.build(digits, hidden)
    m.fit(x[:2 * batch], y[:2 * batch], batch_size=batch, epochs=1, verbose=0)   # warm-up

    class Clock(Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.times.append(time.perf_counter() - self.t0)

    clock = Clock()
    clock.times = []
    h = m.fit(x, y, batch_size=batch, epochs=epochs, verbose=0, callbacks=[clock])
    if rank == 0:
        Path(out).write_text(json.dumps({"times": clock.times, "loss": h.history["loss"]}))
    if world > 1:
        dist.barrier()                # no rank tears gloo down while another still talks to it
        dist.destroy_process_group()


def distributed_addition(n, digits, hidden, epochs, batch=64, world=2, rounds=2, smoke=False):
    """The text-addition epoch over the same global batch on 1 process with all threads, on 1
    process with a `world`-th of them, and on `world` gloo processes with a `world`-th each,
    interleaved; per-epoch medians.  All give the same losses (checked), so ratios are pure speed;
    the speedup is against the faster one-process run (on a loaded machine more threads can be
    slower)."""
    import socket
    import tempfile

    import torch.multiprocessing as mp

    threads = torch.get_num_threads()
    share = max(1, threads // world)
    runs = {"1x" + str(threads): (1, threads), "1x" + str(share): (1, share), f"{world}x{share}": (world, share)}
    if smoke:   # two spawns only: the code path, not a measurement
        runs = {"1x" + str(share): (1, share), f"{world}x{share}": (world, share)}
    times, losses = {k: [] for k in runs}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(rounds):
            for key, (procs, thr) in runs.items():
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", 0))
                    port = sock.getsockname()[1]
                out = os.path.join(tmp, "ddp.json")
                mp.spawn(_ddp_worker, args=(procs, port, thr, n, digits, hidden, epochs, batch, out),
                         nprocs=procs, join=True)
                res = json.loads(Path(out).read_text())
                times[key] += res["times"]
                losses[key] = res["loss"]
    ref = losses["1x" + str(share)]
    same = all(bool(np.allclose(v, ref, rtol=1e-4, atol=1e-6)) for v in losses.values())
    med = {k: float(np.median(v)) for k, v in times.items()}
    best_one = min(v for k, v in med.items() if k.startswith("1x"))
    return {"world": world, "global_batch": batch, "threads_total": threads,
            "s_per_epoch_by_processes_x_threads": med, "one_process_s_per_epoch": best_one,
            "many_processes_s_per_epoch": med[f"{world}x{share}"], "speedup": best_one / med[f"{world}x{share}"],
            "same_losses": same, "epoch_times_s": times}


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
    n, digits, hidden, rounds = (64, 2, 8, 1) if a.smoke else (10000, 3, 128, 4)
    add = addition_epoch(n, digits, hidden, rounds, with_keras=not a.smoke)
    vow = vowels_epoch(*((8, 1, 1) if a.smoke else (64, 5, 6)), with_keras=not a.smoke)
    ddp = distributed_addition(*((64, 2, 8, 1) if a.smoke else (n, digits, hidden, 2)), rounds=1 if a.smoke else 2, smoke=a.smoke)
    result = {"header": header, "train_step": {"shape_BTFUC": step_shape, **step},
              "addition": {"n": n, "digits": digits, "hidden": hidden, "rounds": rounds, **add},
              "vowels_masked": vow, "addition_distributed_gloo": ddp}
    print(f"machine: {header['machine'].get('cpu_model')} x{header['machine'].get('logical_cpus')}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"one training step {step_shape}: torch loop {step['torch_loop']:.2f} ms (torch's default Adam: "
          f"{step['torch_loop_default_adam']:.2f} ms), rnnstate {step['rnnstate']:.2f} ms -> "
          f"{step['rnnstate'] / step['torch_loop']:.2f}x")
    line = (f"text addition ({n} questions, median of {rounds} interleaved epochs): rnnstate "
            f"{add['rnnstate_s_per_epoch']:.2f} s/epoch, hand-written torch {add['torch_loop_s_per_epoch']:.2f} s, "
            f"the LSTMs' matrix products alone (BLAS floor) {add['gemm_floor_s_per_epoch']:.2f} s")
    if "keras_jax_s_per_epoch" in add:
        line += (f", Keras 3 (JAX) {add['keras_jax_s_per_epoch']:.2f} s/epoch -> "
                 f"{add['rnnstate_s_per_epoch'] / add['keras_jax_s_per_epoch']:.2f}x")
    print(line)
    line = (f"masked variable-length classification (JapaneseVowels, Masking -> LSTM -> Dense, batch 32): rnnstate "
            f"{vow['rnnstate_s_per_epoch'] * 1e3:.1f} ms/epoch, hand-written torch (packed sequences) "
            f"{vow['torch_loop_packed_s_per_epoch'] * 1e3:.1f} ms -> "
            f"{vow['rnnstate_s_per_epoch'] / vow['torch_loop_packed_s_per_epoch']:.2f}x")
    if "keras_jax_s_per_epoch" in vow:
        line += (f", Keras 3 (JAX) {vow['keras_jax_s_per_epoch'] * 1e3:.1f} ms -> "
                 f"{vow['rnnstate_s_per_epoch'] / vow['keras_jax_s_per_epoch']:.2f}x; test accuracy rnnstate "
                 f"{vow['rnnstate_test_acc']:.3f}, Keras {vow['keras_test_acc']:.3f}")
    print(line)
    print(f"text addition on torch.distributed (gloo, global batch {ddp['global_batch']}, {ddp['threads_total']} "
          f"threads in all), s/epoch by processes x threads: "
          + ", ".join(f"{k} {v:.2f}" for k, v in ddp["s_per_epoch_by_processes_x_threads"].items())
          + f" -> {ddp['world']} processes {ddp['speedup']:.2f}x the best single process "
          f"(same losses: {ddp['same_losses']})")
    out = a.out or (None if a.smoke else str(ROOT / "benchmarks" / "results" /
                                            f"training-{bu.slug(bu.hostname())}-{time.strftime('%Y%m%d-%H%M%S')}.json"))
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(result, indent=1))
        print(f"JSON: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
