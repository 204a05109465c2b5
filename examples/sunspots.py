"""Forecast the yearly sunspot number with a stateful LSTM, then stream it year by year.

Data: `statsmodels.datasets.sunspots` (yearly mean sunspot numbers 1700-2008, 309 values; it ships inside
statsmodels, nothing is downloaded). The last 40 years (1969-2008) are held out.

1. Train a stateful LSTM the Keras way: the training years are cut into 4 consecutive segments, each segment
   into windows of 16 years; batch k holds window k of every segment, so the LSTM's carried state (one row per
   segment) continues from one batch to the next (truncated backpropagation through time). States are zeroed
   at the start of every epoch.
2. Stream the trained model one year at a time with explicit states (`model.stream()`, batch 1 although it
   was built for batch 4): after reading year t it forecasts year t+1. This is how a deployed forecaster runs.
3. Check the stream against a full-sequence `predict` of a stateless copy of the model (same weights), report
   the one-step-ahead RMSE on the held-out years against the naive forecast "next year = this year", and
   plot the forecast and the LSTM's h and c over the years.
4. With Keras 3 installed, train the same model in Keras from the same initial weights, on the same batches,
   and report its RMSE and fit time beside rnnstate's.

    python examples/sunspots.py                 # full: 32 units, 300 epochs; writes examples/results/sunspots.json
    python examples/sunspots.py --quick         # a few seconds
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

import rnnstate as rs
from _common import keras_or_none, set_threads, write_results

TEST_YEARS = 40


def load():
    """Years (N,) and sunspot numbers (N,) as float32."""
    from statsmodels.datasets import sunspots
    df = sunspots.load_pandas().data
    return df["YEAR"].to_numpy().astype(int), df["SUNACTIVITY"].to_numpy().astype("float32")


def stateful_batches(z, segments, window):
    """Inputs z[t] and targets z[t+1] cut for stateful training: `segments` consecutive stretches of the
    series, each cut into windows; rows k*segments .. k*segments+segments-1 are window k of every stretch,
    so with batch_size=segments and shuffle=False, row i of the carried state always follows stretch i."""
    n = (len(z) - 1) // segments // window * window                  # steps per stretch, whole windows
    x = np.stack([z[i * n:(i + 1) * n] for i in range(segments)])           # (S, n)
    y = np.stack([z[i * n + 1:(i + 1) * n + 1] for i in range(segments)])   # (S, n): one year later

    def cut(a):                                                       # (S, n) -> (n/W * S, W, 1)
        return a.reshape(segments, n // window, window).transpose(1, 0, 2).reshape(-1, window, 1)
    return cut(x), cut(y)


def build(units, batch_size=None, window=None, stateful=False):
    """Input -> LSTM (all steps) -> Dense(1): at every step, the next year's (scaled) sunspot number."""
    inp = rs.Input(shape=(window, 1), batch_size=batch_size)
    h = rs.layers.LSTM(units, stateful=stateful, return_sequences=True, name="lstm")(inp)
    return rs.Model(inp, rs.layers.Dense(1, name="forecast")(h))


def build_keras(keras, units, batch_size=None, window=None, stateful=False):
    """The same architecture in Keras."""
    inp = keras.Input(shape=(window, 1), batch_size=batch_size)
    h = keras.layers.LSTM(units, stateful=stateful, return_sequences=True, name="lstm")(inp)
    return keras.Model(inp, keras.layers.Dense(1, name="forecast")(h))


def rmse(a, b):
    return float(np.sqrt(np.mean((np.asarray(a) - np.asarray(b)) ** 2)))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="8 units, 40 epochs: a few seconds, no results file")
    p.add_argument("--epochs", type=int)
    p.add_argument("--lr", type=float, default=3e-3, help="Adam learning rate (default 3e-3)")
    p.add_argument("--no-keras", action="store_true", help="skip the Keras comparison")
    p.add_argument("--out", default="out/sunspots", help="folder for the PNGs (default out/sunspots)")
    p.add_argument("--threads", type=int, help="CPU threads for torch and JAX (default: their own)")
    a = p.parse_args(argv)
    set_threads(a.threads)
    units, epochs = (8, 40) if a.quick else (32, 300)
    epochs = a.epochs or epochs
    segments, window, lr, seed = 4, 16, a.lr, 0

    years, spots = load()
    split = len(spots) - TEST_YEARS                      # first held-out year: years[split]
    mean, std = spots[:split].mean(), spots[:split].std()
    z = (spots - mean) / std                             # scaled with training statistics only
    x, y = stateful_batches(z[:split], segments, window)

    # 1. Train: a stateful model with a fixed batch size; states zeroed at every epoch's start.
    rs.utils.set_random_seed(seed)
    model = build(units, batch_size=segments, window=window, stateful=True)
    model.compile(optimizer=rs.optimizers.Adam(lr), loss="mse")
    initial_weights = model.get_weights()                # Keras starts from these too
    reset = rs.callbacks.LambdaCallback(on_epoch_begin=lambda epoch, logs: model.reset_states())
    t0 = time.perf_counter()
    hist = model.fit(x, y, batch_size=segments, epochs=epochs, shuffle=False, callbacks=[reset], verbose=0)
    fit_s = time.perf_counter() - t0

    # 2. Stream year by year, batch 1, explicit states; record the forecast and the LSTM's h and c.
    stream = model.stream()
    states, forecast, hs, cs = None, [], [], []
    for t in range(len(z) - 1):
        y_t, states = stream.step(z[t:t + 1, None], states)       # x_t (1, 1): one year -> y_t (1, 1)
        forecast.append(float(y_t[0, 0]))
        hs.append(states["lstm"].h[0].numpy())
        cs.append(states["lstm"].c[0].numpy())
    forecast = np.array(forecast) * std + mean                     # forecast[t] is for years[t + 1]
    hs, cs = np.array(hs), np.array(cs)                            # (N-1, U)

    # 3. Oracle: the same weights in a stateless model, run over the whole series at once.
    full = build(units)
    full.set_weights(model.get_weights())
    full_pred = full.predict(z[None, :-1, None], verbose=0)[0, :, 0] * std + mean
    stream_diff = float(np.max(np.abs(full_pred - forecast))) / std      # in scaled units, as the model sees them

    truth = spots[split:]
    ours = forecast[split - 1:]                          # forecasts made after reading years[split-1 ..]
    naive = spots[split - 1:-1]                          # "next year = this year"
    res = {"rnnstate": {"rmse": rmse(ours, truth), "fit_s": fit_s, "final_loss": float(hist.history["loss"][-1])},
           "naive_rmse": rmse(naive, truth), "stream_vs_predict_max_diff": stream_diff,
           "config": {"units": units, "epochs": epochs, "segments": segments, "window": window, "lr": lr,
                      "seed": seed, "test_years": f"{years[split]}-{years[-1]}"}}

    # 4. Keras: same architecture, same initial weights, same batches, same optimizer.
    keras = None if a.no_keras else keras_or_none()
    if keras is not None:
        keras.utils.set_random_seed(seed)
        km = build_keras(keras, units, batch_size=segments, window=window, stateful=True)
        km.set_weights(initial_weights)
        km.compile(optimizer=keras.optimizers.Adam(lr), loss="mse")
        k_reset = keras.callbacks.LambdaCallback(
            on_epoch_begin=lambda epoch, logs: [l.reset_states() for l in km.layers if getattr(l, "stateful", 0)])
        t0 = time.perf_counter()
        k_hist = km.fit(x, y, batch_size=segments, epochs=epochs, shuffle=False, callbacks=[k_reset], verbose=0)
        k_fit_s = time.perf_counter() - t0
        k_full = build_keras(keras, units)
        k_full.set_weights(km.get_weights())
        k_pred = np.asarray(k_full.predict(z[None, :-1, None], verbose=0))[0, :, 0] * std + mean
        # Did Keras carry the state from batch to batch? (Keras 3.15 on JAX: no, its state variables stay
        # zero through fit, so it trains on independent windows; see the README.)
        carried = any(np.abs(np.asarray(v)).max() > 0 for v in km.get_layer("lstm").states)
        res["keras"] = {"rmse": rmse(k_pred[split - 1:], truth), "fit_s": k_fit_s,
                        "final_loss": float(k_hist.history["loss"][-1]), "carried_state_in_fit": bool(carried)}

    print(f"sunspots {years[0]}-{years[-1]}, held out {res['config']['test_years']}: one-step-ahead RMSE")
    print(f"  rnnstate LSTM({units}) {res['rnnstate']['rmse']:7.2f}   fit {fit_s:6.1f} s over {epochs} epochs")
    if "keras" in res:
        print(f"  Keras    LSTM({units}) {res['keras']['rmse']:7.2f}   fit {res['keras']['fit_s']:6.1f} s "
              f"(same initial weights and batches; includes JAX compilation)")
        if not res["keras"]["carried_state_in_fit"]:
            print("           Keras did not carry the LSTM state between batches (its stateful state stayed 0):"
                  " it trained on independent 16-year windows")
    print(f"  naive (last value)  {res['naive_rmse']:7.2f}")
    print(f"  streamed forecast vs full-sequence predict: max difference {stream_diff:.1e}")

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    res["plots"] = plot(out, years, spots, split, forecast, hs, cs)
    if not a.quick:
        print("results:", write_results("sunspots", res))
    return res


def plot(out, years, spots, split, forecast, hs, cs):
    """forecast.png: truth, forecast and naive over the held-out years; states.png: h and c over the years."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4))
    yr = years[split:]
    ax.plot(yr, spots[split:], "k-o", ms=3, label="observed")
    ax.plot(yr, forecast[split - 1:], "C0-o", ms=3, label="LSTM, streamed (one year ahead)")
    ax.plot(yr, spots[split - 1:-1], "C7--", label="naive: last year's value")
    ax.set(xlabel="year", ylabel="yearly mean sunspot number", title="Held-out years: one-step-ahead forecast")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "forecast.png", dpi=110)
    plt.close(fig)

    # The 4 units whose cell state varies most; h and c on one shared y-axis (h is bounded by 1, c is not).
    top = np.argsort(cs.std(0))[::-1][:4]
    fig, (a0, a1) = plt.subplots(2, 1, figsize=(9, 6), sharex=True, gridspec_kw={"height_ratios": [1, 2]})
    a0.plot(years, spots, "k-", lw=1)
    a0.axvline(years[split], color="C3", ls=":", label="held-out years start")
    a0.set(ylabel="sunspot number")
    a0.legend(loc="upper left")
    for i, u in enumerate(top):
        a1.plot(years[:-1], cs[:, u], f"C{i}-", lw=1.2, label=f"c, unit {u}")
        a1.plot(years[:-1], hs[:, u], f"C{i}:", lw=1.2, label=f"h, unit {u}")
    a1.set(xlabel="year (state after reading that year)", ylabel="state value (unitless)",
           title="LSTM states while streaming: c (solid) and h = o * tanh(c) (dotted)")
    a1.legend(ncol=4, fontsize=7, loc="lower left")
    fig.tight_layout()
    fig.savefig(out / "states.png", dpi=110)
    plt.close(fig)
    return [str(out / "forecast.png"), str(out / "states.png")]


if __name__ == "__main__":
    main()
