"""`python -m rnnstate demo`: the seed tutorial's four listings, explained, plus what only rnnstate returns.

Each listing runs exactly as in the tutorial (with ``keras`` replaced by ``rnnstate`` in the imports);
after each result we say what each array is and check the relations that must hold. Then a small LSTM
is trained for a few seconds on a counting task, so that its states mean something, and its h and c
(one shared y scale) and gates are drawn to PNG files.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import runpy
import time
from pathlib import Path

import numpy as np
import torch

LISTINGS = [
    ("seed_1_lstm.py", "LSTM(1): the model outputs the final hidden state h, shape (batch, units) = (1, 1)."),
    ("seed_2_return_sequences.py", "LSTM(1, return_sequences=True): h for every timestep, shape (batch, "
                                    "timesteps, units) = (1, 3, 1)."),
    ("seed_3_return_state.py", "LSTM(1, return_state=True): [final h, final h again (the state), final c], "
                                "each (1, 1). The first two are the same tensor: the output *is* h."),
    ("seed_4_sequences_and_state.py", "return_sequences=True and return_state=True: [h for every step (1, 3, 1), "
                                       "final h (1, 1), final c (1, 1)]. The last step of the sequence is the "
                                       "final h."),
]

COUNT_T = 20          # the counting task: sequences of 20 bits; the target is the number of ones / 10


def _examples_dir() -> Path:
    return Path(__file__).resolve().parent.parent / "examples"


def _keras_diff(ns):
    """Max |rnnstate - Keras| for a listing's model, with Keras given rnnstate's weights; None without Keras."""
    try:
        import importlib.util
        if importlib.util.find_spec("keras") is None:
            return None
        os.environ.setdefault("KERAS_BACKEND", "jax")
        import keras
    except Exception:                   # noqa: BLE001 - an optional oracle: any failure to import means "absent"
        return None
    src = (ns["__source__"]).replace("rnnstate", "keras")
    kns = {"__name__": "__main__"}
    with contextlib.redirect_stdout(io.StringIO()):
        exec(compile(src, "<keras listing>", "exec"), kns)
    km = kns["model"]
    km.set_weights(ns["model"].get_weights())
    ours = ns["model"].predict(ns["data"], verbose=0)
    theirs = km.predict(ns["data"], verbose=0)
    ours, theirs = (ours, theirs) if isinstance(ours, list) else ([ours], [theirs])
    del keras
    return max(float(np.abs(np.asarray(a) - np.asarray(b)).max()) for a, b in zip(ours, theirs))


def _counting_model(epochs):
    """LSTM(4) -> Dense(1) trained to count the ones in a 20-bit sequence: a counter has to live in the
    cell state c, which is not bounded to (-1, 1) the way h = o * tanh(c) is. About a second of fit."""
    import rnnstate
    from rnnstate.layers import LSTM, Dense, Input

    rng = np.random.default_rng(0)
    x = rng.integers(0, 2, size=(512, COUNT_T, 1)).astype("float32")
    y = x.sum(1) / 10.0                                                  # (N, 1): 0 .. 2
    inp = Input((COUNT_T, 1))
    model = rnnstate.Model(inp, Dense(1, name="count")(LSTM(4, name="counter")(inp)))
    model.compile(optimizer=rnnstate.optimizers.Adam(0.03), loss="mse")
    start = time.perf_counter()
    hist = model.fit(x, y, batch_size=32, epochs=epochs, verbose=0)
    return model, hist.history["loss"][-1], time.perf_counter() - start


def run(out_dir="out", plot=True, epochs=20):
    import rnnstate
    rnnstate.utils.disable_interactive_logging()            # no progress bars in the demo
    try:
        return _run(out_dir, plot, epochs)
    finally:
        rnnstate.utils.enable_interactive_logging()


def _run(out_dir, plot, epochs):
    import rnnstate
    from rnnstate.layers import LSTM

    rnnstate.utils.set_random_seed(1)
    ex = _examples_dir()
    print("rnnstate demo: the tutorial's four listings, with `keras` replaced by `rnnstate` in the imports.")
    print("The weights are random (as in the tutorial), so the numbers differ from the tutorial's and from run to "
          "run;\nwhat holds is checked below, and Keras given the same weights prints the same numbers.\n")
    for i, (fname, what) in enumerate(LISTINGS, 1):
        print(f"=== Listing {i}: examples/{fname}")
        src = (ex / fname).read_text()
        ns = runpy.run_path(str(ex / fname), run_name="__main__")    # prints model.predict(data), as the listing
        ns["__source__"] = src
        print(f"--> {what}")
        res = ns["model"].predict(ns["data"], verbose=0)
        if i == 3:
            out, h, c = res
            assert np.array_equal(out, h)
            print(f"    check: output == h: {np.array_equal(out, h)}")
        if i == 4:
            seq, h, c = res
            ok = np.allclose(seq[:, -1], h)
            assert ok
            print(f"    check: seq[:, -1] == h: {ok};  h = o * tanh(c), not tanh(c)")
        diff = _keras_diff(ns)
        if diff is not None:
            print(f"    Keras 3 with the same weights: max |rnnstate - keras| = {diff:.1e}")

    print("\n=== Beyond Keras: the cell state and the gates at every step, in one call")
    data = np.array([0.1, 0.2, 0.3]).reshape((1, 3, 1))
    layer = LSTM(4, return_sequences=True, return_state=True, return_cell_sequence=True, return_gate_sequences=True)
    with torch.no_grad():
        res = layer(data)
    print(f"    result fields: {res._fields}")
    print(f"    h sequence {tuple(res.output.shape)}, c sequence {tuple(res.c_seq.shape)}, gates 4 x "
          f"{tuple(res.gate_o.shape)};  kernel: {layer.last_path}")
    ok = np.allclose((res.gate_o * torch.tanh(res.c_seq)).numpy(), res.output.numpy(), atol=1e-6)
    print(f"    check: h_t == o_t * tanh(c_t) at every step: {ok}  (that is why h != tanh(c))")
    print(f"    check: c_seq[:, -1] == final c: {np.allclose(res.c_seq[:, -1], res.c)}")

    print(f"\n=== A trained LSTM's states: counting the ones in {COUNT_T} random bits")
    model, loss, took = _counting_model(epochs)
    bits = np.array([1, 1, 0, 1, 1, 1, 0, 0, 1, 1, 1, 1, 0, 1, 1, 1, 0, 1, 1, 1], "float32").reshape(1, COUNT_T, 1)
    pred = float(model.predict(bits, verbose=0)[0, 0]) * 10
    print(f"    {epochs} epochs in {took:.1f} s, mse {loss:.4f};  ones in a test sequence: {int(bits.sum())}, "
          f"predicted {pred:.2f}")
    [(name, seqs)] = rnnstate.plot.state_sequences(model, bits)
    h, c = seqs["h"][0], seqs["c"][0]                                  # (T, U)
    u = int(np.abs(c[-1]).argmax())
    print(f"    unit {u}: |c| grows to {abs(c[-1, u]):.2f} while |h| stays {abs(h[-1, u]):.2f} < 1: "
          f"c is the counter, h = o * tanh(c) its squashed view")
    if plot:
        os.makedirs(out_dir, exist_ok=True)
        states = rnnstate.plot.plot_states(model, bits, os.path.join(out_dir, "states.png"), parts="states",
                                           title="trained counter LSTM: h and c on one scale")
        gates = rnnstate.plot.plot_states(model, bits, os.path.join(out_dir, "gates.png"), parts="gates",
                                          title="trained counter LSTM: gates")
        print(f"\n=== Plots: {states} (h and c, one y scale) and {gates} (gates i, f, g, o)")
    return 0


def main(argv=None):
    import rnnstate
    parser = argparse.ArgumentParser(prog="python -m rnnstate",
                                     description="rnnstate: Keras-compatible recurrent layers on PyTorch.")
    parser.add_argument("--version", action="version", version=f"rnnstate {rnnstate.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = sub.add_parser("demo", help="run the tutorial's examples, explained, and plot a trained LSTM's states")
    demo.add_argument("--out", default="out", help="folder for the PNG plots (default: out)")
    demo.add_argument("--no-plot", action="store_true", help="skip the plots (no matplotlib needed)")
    demo.add_argument("--epochs", type=int, default=20, help="epochs to train the counting LSTM (default 20)")
    args = parser.parse_args(argv)
    if args.command != "demo":
        parser.print_help()
        return 2
    return run(args.out, plot=not args.no_plot, epochs=args.epochs)
