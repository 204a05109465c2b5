"""A CNN-LSTM (Conv1D -> MaxPooling1D -> LSTM -> Dense) on UCR/UEA time series, beside the plain LSTM.

Data: the two archive sets of examples/ucr.py (shipped inside the `aeon` package, nothing is downloaded):
GunPoint (150 steps, 1 channel, 2 classes, 50 train / 150 test series) and BasicMotions (100 steps, 6 channels,
4 classes, 40 / 40), on the archives' own train/test split, normalised per channel with training statistics.

    CNN-LSTM:  Input -> Conv1D(units, 5, relu, padding="same") -> MaxPooling1D(pool) -> LSTM(units) -> Dense(softmax)
    LSTM:      Input -> LSTM(units) -> Dense(softmax)

Both LSTMs have the same number of units. The convolution learns local shape features and the pooling shortens
the sequence the LSTM runs over `pool` times (the recurrence is the sequential, slow part). Reported: test accuracy
(mean over seeds) and median seconds per epoch. With Keras installed, the trained models' test predictions are compared
with Keras 3 models holding the same weights (Conv1D, MaxPooling1D, LSTM and Dense share Keras' weight layout).

    python examples/cnn_lstm.py            # full; writes examples/results/cnn_lstm.json
    python examples/cnn_lstm.py --quick    # a few seconds: BasicMotions, small models, few epochs, no results file
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import rnnstate as rs
from _common import keras_or_none, set_threads, write_results
from ucr import load


def build(lib, kind, units, steps, channels, classes, pool=4, kernel=5):
    """The CNN-LSTM or the plain LSTM, in rnnstate or Keras (the same code)."""
    L = lib.layers
    inp = lib.Input(shape=(steps, channels))
    x = inp
    if kind == "CNN-LSTM":
        x = L.Conv1D(units, kernel, activation="relu", padding="same")(x)      # (B, T, units)
        x = L.MaxPooling1D(pool)(x)                                           # (B, T // pool, units)
    x = L.LSTM(units)(x)                                                      # (B, units)
    return lib.Model(inp, L.Dense(classes, activation="softmax")(x))


class EpochTimer(rs.callbacks.Callback):
    """Wall time of every epoch (the median ignores the first epoch's warm-up and a busy machine's spikes)."""

    def __init__(self):
        super().__init__()
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self._t0 = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._t0)


def fit(model, data, epochs, batch, lr):
    """Adam, sparse categorical cross-entropy; returns (test accuracy, median seconds per epoch, test
    probabilities)."""
    xtr, ytr, xte, yte = data
    model.compile(optimizer=rs.optimizers.Adam(lr), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    timer = EpochTimer()
    model.fit(xtr, ytr, batch_size=batch, epochs=epochs, verbose=0, callbacks=[timer])
    probs = np.asarray(model.predict(xte, verbose=0))
    return float((probs.argmax(-1) == yte).mean()), float(np.median(timer.seconds)), probs


def keras_max_diff(keras, kind, units, shape, classes, weights, x, probs):
    """Max |rnnstate - Keras| over the test predictions, the Keras model holding the trained weights."""
    km = build(keras, kind, units, *shape, classes)
    km.set_weights(weights)
    return float(np.abs(np.asarray(km.predict(x, verbose=0)) - probs).max())


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="BasicMotions only, units 8, 20 epochs: seconds, no results file")
    p.add_argument("--epochs", type=int)
    p.add_argument("--seed", type=int, default=0, help="first seed (the full run trains --seeds seeds from it)")
    p.add_argument("--seeds", type=int, help="seeds per model (default 3; --quick: 1)")
    p.add_argument("--no-keras", action="store_true", help="skip the comparison with Keras")
    p.add_argument("--out", help="unused (no plots); accepted like the other examples")
    p.add_argument("--threads", type=int, help="CPU threads for torch and JAX (default: their own)")
    a = p.parse_args(argv)
    set_threads(a.threads)
    names, units, epochs = (["BasicMotions"], 8, 20) if a.quick else (["GunPoint", "BasicMotions"], 32, 100)
    epochs, seeds = a.epochs or epochs, a.seeds or (1 if a.quick else 3)
    batch, lr, pool = 8, 3e-3, 4
    keras = None if a.no_keras else keras_or_none()

    results = {"config": {"units": units, "conv_kernel": 5, "pool": pool, "epochs": epochs, "batch_size": batch,
                          "lr": lr, "seeds": list(range(a.seed, a.seed + seeds))}, "datasets": {}}
    for name in names:
        xtr, ytr, xte, yte, classes = load(name)
        mean, std = xtr.mean((0, 1)), xtr.std((0, 1))                           # per channel, training data only
        data = ((xtr - mean) / std, ytr, (xte - mean) / std, yte)
        shape = xtr.shape[1:]
        row = results["datasets"][name] = {"train/test": [len(xtr), len(xte)], "steps": shape[0],
                                           "channels": shape[1], "classes": len(classes),
                                           "chance": float(np.bincount(yte).max() / len(yte)), "models": {}}
        print(f"{name}: {len(xtr)} train / {len(xte)} test series, {shape[0]} steps x {shape[1]} channel(s), "
              f"{len(classes)} classes (majority class {row['chance']:.3f})")
        for kind in ("CNN-LSTM", "LSTM"):
            row["models"][kind] = {"accuracy_per_seed": [], "s_per_epoch_per_seed": []}
        for seed in range(a.seed, a.seed + seeds):            # interleaved: both kinds see the same machine load
            for kind in ("CNN-LSTM", "LSTM"):
                r = row["models"][kind]
                rs.utils.set_random_seed(seed)
                model = build(rs, kind, units, *shape, len(classes), pool=pool)
                acc, sec, probs = fit(model, data, epochs, batch, lr)
                r["accuracy_per_seed"].append(acc)
                r["s_per_epoch_per_seed"].append(sec)
                if keras is not None:
                    diff = keras_max_diff(keras, kind, units, shape, len(classes), model.get_weights(), data[2],
                                          probs)
                    r["keras_predict_max_diff"] = max(diff, r.get("keras_predict_max_diff", 0.0))
                r["params"] = int(sum(w.size for w in model.get_weights()))
        for kind, r in row["models"].items():
            r["accuracy"] = float(np.mean(r["accuracy_per_seed"]))
            r["s_per_epoch"] = float(np.mean(r["s_per_epoch_per_seed"]))
            keras_note = (f", Keras with the same weights: max |d predict| {r['keras_predict_max_diff']:.1e}"
                          if keras is not None else "")
            print(f"  {kind:>8}({units}), {r['params']} weights, {epochs} epochs: accuracy {r['accuracy']:.3f} ("
                  + " ".join(f"{v:.2f}" for v in r["accuracy_per_seed"]) + f"), {r['s_per_epoch']:.3f} s/epoch"
                  + keras_note)
        m = row["models"]
        row["epoch_time_ratio_lstm_over_cnn_lstm"] = m["LSTM"]["s_per_epoch"] / m["CNN-LSTM"]["s_per_epoch"]
        print(f"  the plain LSTM takes {row['epoch_time_ratio_lstm_over_cnn_lstm']:.1f}x the CNN-LSTM's time "
              f"per epoch")
    if not a.quick:
        print("results:", write_results("cnn_lstm", results))
    return results


if __name__ == "__main__":
    main()
