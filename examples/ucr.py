"""Classify UCR/UEA time series with LSTM, GRU and Bidirectional LSTM, beside the archive's baselines and Keras.

Data (shipped inside the `aeon` package, read from its own files; nothing is downloaded):
  GunPoint      univariate: 150 steps, 2 classes (drawing a gun vs pointing), 50 train / 150 test series.
  BasicMotions  multivariate: 6 channels (accelerometer + gyroscope), 100 steps, 4 classes, 40 / 40.

Each classifier is Input -> recurrent layer -> Dense(softmax), trained with Adam on the archive's own train/test
split, from 3 seeds (mean and per-seed accuracy). The same model is trained in Keras 3 (when installed) from the
same initial weights, on the same batches in the same order. With SGD the two stay equal to ~1e-7; with Adam they
drift apart from the first step (Keras adds epsilon before Adam's bias correction, torch after), and on 50
training series where one run converges and the next does not, single runs differ by luck: compare means.
The archives' published 1-NN baselines are printed beside them, recomputed here from the data as a check.

    python examples/ucr.py                 # full; writes examples/results/ucr.json
    python examples/ucr.py --quick         # a few seconds: small GRU, few epochs
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import rnnstate as rs
from _common import keras_or_none, set_threads, write_results

# Published test accuracies of the archives' 1-nearest-neighbour baselines (accuracy = 1 - error rate), default
# train/test split. Each is recomputed below from the data (ED always, DTW in the full run), as a check.
# GunPoint: the UCR Time Series Classification Archive (2018), DataSummary.csv: Euclidean error 0.087, DTW with
#   an unconstrained (100%) window error 0.093 (Dau et al., "The UCR Time Series Archive", 2019).
# BasicMotions: Bagnall et al., "The UEA multivariate time series classification archive, 2018"
#   (arXiv:1811.00075), benchmark table: DTW_I (channels warped independently) 1.000, DTW_D (jointly) 0.975.
PUBLISHED = {"GunPoint": {"1-NN ED": 0.913, "1-NN DTW": 0.907},
             "BasicMotions": {"1-NN DTW_I": 1.000, "1-NN DTW_D": 0.975}}


def load(name):
    """(x_train, y_train, x_test, y_test, class names): x (N, T, C) float32 (aeon gives (N, C, T)), y int."""
    from aeon.datasets import load_basic_motions, load_gunpoint
    loader = {"GunPoint": load_gunpoint, "BasicMotions": load_basic_motions}[name]
    (xtr, ytr), (xte, yte) = loader(split="train"), loader(split="test")
    classes = sorted(set(ytr))
    code = {c: i for i, c in enumerate(classes)}
    as_x = lambda x: np.asarray(x, dtype="float32").transpose(0, 2, 1)       # (N, C, T) -> (N, T, C)
    as_y = lambda y: np.array([code[c] for c in y])
    return as_x(xtr), as_y(ytr), as_x(xte), as_y(yte), classes


def one_nn_euclidean(xtr, ytr, xte):
    """The archives' simplest baseline: the label of the nearest training series (raw values)."""
    d = ((xte[:, None] - xtr[None]) ** 2).sum(axis=(2, 3))                   # (N_test, N_train)
    return ytr[d.argmin(1)]


def one_nn_dtw(xtr, ytr, xte):
    """1-NN with dynamic time warping (aeon's numba DTW, full window): {"1-NN DTW": acc} for one channel,
    {"1-NN DTW_D": dependent (all channels warped together), "1-NN DTW_I": independent (summed per channel)}."""
    from aeon.distances import dtw_pairwise_distance
    a, b = xte.transpose(0, 2, 1).astype("float64"), xtr.transpose(0, 2, 1).astype("float64")   # (N, C, T)
    dep = dtw_pairwise_distance(a, b)                                         # (N_test, N_train)
    if a.shape[1] == 1:
        return {"1-NN DTW": dep}
    ind = sum(dtw_pairwise_distance(a[:, c:c + 1], b[:, c:c + 1]) for c in range(a.shape[1]))
    return {"1-NN DTW_D": dep, "1-NN DTW_I": ind}


def build(lib, kind, units, steps, channels, classes):
    """Input -> LSTM | GRU | Bidirectional(LSTM) -> Dense(softmax), in rnnstate or Keras (same code)."""
    L = lib.layers
    rnn = {"LSTM": lambda: L.LSTM(units), "GRU": lambda: L.GRU(units),
           "BiLSTM": lambda: L.Bidirectional(L.LSTM(units))}[kind]()
    inp = lib.Input(shape=(steps, channels))
    return lib.Model(inp, L.Dense(classes, activation="softmax")(rnn(inp)))


def train(lib, model, data, epochs, batch, lr):
    """Fit without shuffling (both libraries see the same batches in the same order); test accuracy, seconds."""
    xtr, ytr, xte, yte = data
    model.compile(optimizer=lib.optimizers.Adam(lr), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    t0 = time.perf_counter()
    model.fit(xtr, ytr, batch_size=batch, epochs=epochs, shuffle=False, verbose=0)
    seconds = time.perf_counter() - t0
    pred = np.asarray(model.predict(xte, verbose=0)).argmax(-1)
    return float((pred == yte).mean()), seconds


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="GRU(8), 10 epochs: a few seconds, no results file")
    p.add_argument("--epochs", type=int)
    p.add_argument("--seeds", type=int, help="train each model from seeds 0..N-1 (default 3; --quick: 1)")
    p.add_argument("--no-keras", action="store_true", help="skip the Keras comparison")
    p.add_argument("--out", help="unused (no plots); accepted like the other examples")
    p.add_argument("--threads", type=int, help="CPU threads for torch and JAX (default: their own)")
    a = p.parse_args(argv)
    set_threads(a.threads)
    kinds, units, epochs = (["GRU"], 8, 10) if a.quick else (["LSTM", "GRU", "BiLSTM"], 32, 150)
    epochs = a.epochs or epochs
    batch, lr, seeds = 8, 3e-3, a.seeds or (1 if a.quick else 3)
    keras = None if a.no_keras else keras_or_none()

    results = {"config": {"units": units, "epochs": epochs, "batch_size": batch, "lr": lr, "seeds": seeds},
               "datasets": {}}
    for name in ["GunPoint", "BasicMotions"]:
        xtr, ytr, xte, yte, classes = load(name)
        measured = {"1-NN ED": float((one_nn_euclidean(xtr, ytr, xte) == yte).mean())}   # raw series
        if not a.quick:
            dtw = one_nn_dtw(xtr, ytr, xte)
            measured.update({k: float((ytr[d.argmin(1)] == yte).mean()) for k, d in dtw.items()})
        mean, std = xtr.mean((0, 1)), xtr.std((0, 1))                         # per channel, training data only
        data = ((xtr - mean) / std, ytr, (xte - mean) / std, yte)
        row = {"train/test": [len(xtr), len(xte)], "steps": xtr.shape[1], "channels": xtr.shape[2],
               "classes": len(classes), "published": PUBLISHED[name], "measured here": measured, "models": {}}
        print(f"{name}: {len(xtr)} train / {len(xte)} test series of {xtr.shape[1]} steps x {xtr.shape[2]} "
              f"channel(s), {len(classes)} classes; chance {1 / len(classes):.3f}")
        print("  published: " + ", ".join(f"{k} {v:.3f}" for k, v in PUBLISHED[name].items())
              + "; measured here: " + ", ".join(f"{k} {v:.3f}" for k, v in measured.items()))
        for kind in kinds:
            r = row["models"][kind] = {"rnnstate": {"accuracy_per_seed": [], "fit_s_per_seed": []}}
            for seed in range(seeds):                  # training an LSTM on 50 series is a matter of luck too
                rs.utils.set_random_seed(seed)
                model = build(rs, kind, units, xtr.shape[1], xtr.shape[2], len(classes))
                initial = model.get_weights()
                runs = [("rnnstate", rs, model)]
                if keras is not None:
                    keras.utils.set_random_seed(seed)
                    km = build(keras, kind, units, xtr.shape[1], xtr.shape[2], len(classes))
                    km.set_weights(initial)                                    # the same starting point
                    runs.append(("keras", keras, km))
                for lib_name, lib, m in runs:
                    acc, sec = train(lib, m, data, epochs, batch, lr)
                    out = r.setdefault(lib_name, {"accuracy_per_seed": [], "fit_s_per_seed": []})
                    out["accuracy_per_seed"].append(acc)
                    out["fit_s_per_seed"].append(sec)
            line = f"  {kind}({units}), {epochs} epochs, seeds 0-{seeds - 1}:"
            for lib_name, out in r.items():
                out["accuracy"] = float(np.mean(out["accuracy_per_seed"]))
                out["fit_s"] = float(np.mean(out["fit_s_per_seed"]))
                line += (f" {lib_name} accuracy {out['accuracy']:.3f} ("
                         + " ".join(f"{v:.2f}" for v in out["accuracy_per_seed"]) + f") {out['fit_s']:5.1f} s/fit |")
            print(line.rstrip(" |"))
        results["datasets"][name] = row
    if not a.quick:
        print("results:", write_results("ucr", results))
    return results


if __name__ == "__main__":
    main()
