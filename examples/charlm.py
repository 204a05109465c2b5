"""A character-level language model of Python source code: a stateful LSTM, sampled character by character.

Text: Python's own standard library (the sources of a few modules, read with `inspect.getsource`), so the data
is on every machine. The last 10% is held out for validation.

1. Training, the stateful way: the text is cut into 32 parallel streams; batch k holds the k-th 64-character
   window of every stream, so each stream's LSTM state runs on from one batch to the next (truncated
   backpropagation through time, states zeroed at every epoch's start). Loss and perplexity per epoch.
2. Validation perplexity: the held-out text in one chunk through `model.stream()` (batch 1, explicit states).
3. Generation: a prompt, then one character at a time, each sampled from the model and fed back, with the LSTM
   state carried from step to step (`model.stream()` at batch 1; the model was built for batch 32).
4. With Keras 3 installed, the same model trained in Keras from the same initial weights on the same batches.

    python examples/charlm.py                 # full; writes examples/results/charlm.json
    python examples/charlm.py --quick         # a few seconds
"""
from __future__ import annotations

import argparse
import inspect
import math
import time

import numpy as np

import rnnstate as rs
from _common import keras_or_none, set_threads, write_results

MODULES = ["textwrap", "json.decoder", "json.encoder", "string", "os", "collections", "argparse"]


def load_text(max_chars):
    import importlib
    text = "\n".join(inspect.getsource(importlib.import_module(m)) for m in MODULES)
    return text[:max_chars]


def stateful_batches(ids, streams, window):
    """Inputs ids[t] and targets ids[t+1]: `streams` consecutive stretches, window k of every stretch in rows
    k*streams .. k*streams+streams-1 (so batch_size=streams, shuffle=False carries each stretch's state)."""
    n = (len(ids) - 1) // streams // window * window
    x = np.stack([ids[i * n:(i + 1) * n] for i in range(streams)])            # (S, n)
    y = np.stack([ids[i * n + 1:(i + 1) * n + 1] for i in range(streams)])    # (S, n): the next character

    def cut(a):                                                            # (S, n) -> (n/W * S, W)
        return a.reshape(streams, n // window, window).transpose(1, 0, 2).reshape(-1, window)
    return cut(x), cut(y)


def build(lib, vocab, units, batch_size=None, window=None, stateful=False):
    """Embedding(32) -> LSTM (every step) -> Dense(softmax over characters), in rnnstate or Keras."""
    L = lib.layers
    inp = lib.Input(shape=(window,), batch_size=batch_size, dtype="int32")
    h = L.LSTM(units, return_sequences=True, stateful=stateful, name="lstm")(L.Embedding(vocab, 32)(inp))
    return lib.Model(inp, L.Dense(vocab, activation="softmax", name="next_char")(h))


def mean_nll(probs, targets):
    """Mean negative log-likelihood (nats per character) of `targets` (N,) under `probs` (N, V)."""
    return float(-np.mean(np.log(np.maximum(probs[np.arange(len(targets)), targets], 1e-12))))


def generate(model, prompt, n, index, chars, temperature, rng):
    """Feed `prompt`, then sample `n` characters one at a time, carrying the LSTM state between steps."""
    stream = model.stream()
    y, states = stream.step(np.array([[index[c] for c in prompt]]), None)     # (1, len(prompt)): one chunk
    out = []
    for _ in range(n):
        p = y[0, -1].double().numpy() ** (1 / temperature)                    # sharpen (T < 1) and renormalise
        c = int(rng.choice(len(p), p=p / p.sum()))
        out.append(chars[c])
        y, states = stream.step(np.array([[c]]), states)                       # one character, state carried
    return prompt + "".join(out)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="20k characters, LSTM(32), 2 epochs; no results file")
    p.add_argument("--epochs", type=int)
    p.add_argument("--no-keras", action="store_true", help="skip the Keras comparison")
    p.add_argument("--out", help="unused (no plots); accepted like the other examples")
    p.add_argument("--threads", type=int, help="CPU threads for torch and JAX (default: their own)")
    a = p.parse_args(argv)
    set_threads(a.threads)
    chars_max, units, epochs = (20_000, 32, 2) if a.quick else (250_000, 128, 20)
    epochs = a.epochs or epochs
    streams, window, lr, seed = 32, 64, 3e-3, 0

    text = load_text(chars_max)
    chars = sorted(set(text))
    index = {c: i for i, c in enumerate(chars)}
    ids = np.array([index[c] for c in text], dtype="int64")
    split = len(ids) * 9 // 10
    x, y = stateful_batches(ids[:split], streams, window)
    val = ids[split:]
    print(f"{len(text):,} characters of Python source ({', '.join(MODULES)}), {len(chars)} distinct; "
          f"{len(x) // streams} batches of {streams} x {window} per epoch")

    # 1. Train; states zeroed at each epoch's start, loss and perplexity printed at its end.
    rs.utils.set_random_seed(seed)
    model = build(rs, len(chars), units, batch_size=streams, stateful=True)   # time axis free: any chunk length
    model.compile(optimizer=rs.optimizers.Adam(lr), loss="sparse_categorical_crossentropy")
    initial = model.get_weights()
    log = rs.callbacks.LambdaCallback(
        on_epoch_begin=lambda e, logs: model.reset_states(),
        on_epoch_end=lambda e, logs: print(f"  epoch {e + 1:2d}: loss {logs['loss']:.3f} nats/char, "
                                           f"perplexity {math.exp(logs['loss']):.2f}"))
    t0 = time.perf_counter()
    hist = model.fit(x, y, batch_size=streams, epochs=epochs, shuffle=False, callbacks=[log], verbose=0)
    fit_s = time.perf_counter() - t0

    # 2. Validation: the whole held-out text as one chunk of one stream.
    probs, _ = model.stream().step(val[None, :-1], None)                     # (1, N-1, V)
    val_nll = mean_nll(probs[0].numpy(), val[1:])

    # Oracle: character-by-character streaming equals one full-sequence predict of a stateless copy.
    full = build(rs, len(chars), units)
    full.set_weights(model.get_weights())
    check = val[:40]
    whole = full.predict(check[None], verbose=0)[0]                           # (40, V)
    stream, states, stepped = model.stream(), None, []
    for c in check:
        y_t, states = stream.step(np.array([c]), states)                       # x_t (1,): one character
        stepped.append(y_t[0].numpy())
    stream_diff = float(np.max(np.abs(np.array(stepped) - whole)))

    # 3. Generate.
    sample = generate(model, "def ", 300 if not a.quick else 60, index, chars, 0.8, np.random.default_rng(seed))

    res = {"rnnstate": {"train_loss": [float(v) for v in hist.history["loss"]], "val_nll": val_nll,
                        "val_perplexity": math.exp(val_nll), "fit_s": fit_s},
           "unigram_val_perplexity": math.exp(mean_nll(np.tile(np.bincount(ids[:split], minlength=len(chars))
                                                              / split, (len(val) - 1, 1)), val[1:])),
           "stream_vs_predict_max_diff": stream_diff, "sample": sample,
           "config": {"characters": len(text), "vocab": len(chars), "units": units, "epochs": epochs,
                      "streams": streams, "window": window, "lr": lr, "seed": seed, "modules": MODULES}}

    # 4. Keras: same model, initial weights and batches; validation by a stateless copy's predict.
    keras = None if a.no_keras else keras_or_none()
    if keras is not None:
        keras.utils.set_random_seed(seed)
        km = build(keras, len(chars), units, batch_size=streams, stateful=True)
        km.set_weights(initial)
        km.compile(optimizer=keras.optimizers.Adam(lr), loss="sparse_categorical_crossentropy")
        reset = keras.callbacks.LambdaCallback(on_epoch_begin=lambda e, logs: km.get_layer("lstm").reset_states())
        t0 = time.perf_counter()
        k_hist = km.fit(x, y, batch_size=streams, epochs=epochs, shuffle=False, callbacks=[reset], verbose=0)
        k_fit_s = time.perf_counter() - t0
        k_full = build(keras, len(chars), units)
        k_full.set_weights(km.get_weights())
        k_nll = mean_nll(np.asarray(k_full.predict(val[None, :-1], verbose=0))[0], val[1:])
        carried = any(np.abs(np.asarray(v)).max() > 0 for v in km.get_layer("lstm").states)
        res["keras"] = {"train_loss": [float(v) for v in k_hist.history["loss"]], "val_nll": k_nll,
                        "val_perplexity": math.exp(k_nll), "fit_s": k_fit_s, "carried_state_in_fit": bool(carried)}

    print(f"validation perplexity: rnnstate {res['rnnstate']['val_perplexity']:.2f} (fit {fit_s:.1f} s)", end="")
    if "keras" in res:
        print(f", Keras {res['keras']['val_perplexity']:.2f} (fit {res['keras']['fit_s']:.1f} s, includes JAX "
              f"compilation{'' if res['keras']['carried_state_in_fit'] else '; it did not carry state between batches'})",
              end="")
    print(f"; unigram baseline {res['unigram_val_perplexity']:.2f}")
    print(f"streamed one character at a time vs full-sequence predict: max difference {stream_diff:.1e}")
    print("sample (temperature 0.8):\n" + sample)
    if not a.quick:
        print("results:", write_results("charlm", res))
    return res


if __name__ == "__main__":
    main()
