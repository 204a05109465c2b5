"""Learn to add: "123+45" -> "168", a Sequential LSTM encoder -> RepeatVector -> LSTM decoder.

Keras' classic text-addition example with `keras` replaced by `rnnstate`. Full run:
    python examples/addition.py                 # 3-digit numbers, 50,000 questions, 30 epochs
    python examples/addition.py --small         # the quick version the tests run
Prints the accuracy and the time per epoch.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import rnnstate
from rnnstate import layers

CHARS = "0123456789+ "


def encode(strings, length):
    idx = {c: i for i, c in enumerate(CHARS)}
    x = np.zeros((len(strings), length, len(CHARS)), dtype=bool)
    for n, s in enumerate(strings):
        for t, ch in enumerate(s):
            x[n, t, idx[ch]] = True
    return x


def decode(probs):
    return ["".join(CHARS[i] for i in row) for row in probs.argmax(-1)]


def make_data(n, digits, seed):
    rng = np.random.default_rng(seed)
    maxlen = 2 * digits + 1
    seen, qs, ans = set(), [], []
    while len(qs) < n:
        a, b = (int(rng.integers(0, 10 ** int(rng.integers(1, digits + 1)))) for _ in range(2))
        key = tuple(sorted((a, b)))
        if key in seen:
            continue
        seen.add(key)
        q = f"{a}+{b}"
        qs.append(q + " " * (maxlen - len(q)))
        s = str(a + b)
        ans.append(s + " " * (digits + 1 - len(s)))
    return encode(qs, maxlen), encode(ans, digits + 1), qs, ans


def build(digits, hidden):
    model = rnnstate.Sequential()
    model.add(layers.Input((2 * digits + 1, len(CHARS))))
    model.add(layers.LSTM(hidden))
    model.add(layers.RepeatVector(digits + 1))
    model.add(layers.LSTM(hidden, return_sequences=True))
    model.add(layers.Dense(len(CHARS), activation="softmax"))
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    return model


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--small", action="store_true", help="2-digit numbers, 3,000 questions, 12 epochs")
    p.add_argument("--epochs", type=int)
    p.add_argument("--verbose", type=int, default=2)
    a = p.parse_args(argv)
    digits, n, epochs, hidden = (2, 3000, 12, 64) if a.small else (3, 50000, 30, 128)
    epochs = a.epochs or epochs
    rnnstate.utils.set_random_seed(0)
    x, y, qs, ans = make_data(n, digits, seed=0)
    split = len(x) - len(x) // 10
    model = build(digits, hidden)
    model.summary()
    t0 = time.perf_counter()
    hist = model.fit(x[:split], y[:split], batch_size=32, epochs=epochs, validation_data=(x[split:], y[split:]),
                     verbose=a.verbose)
    per_epoch = (time.perf_counter() - t0) / epochs
    pred = decode(model.predict(x[split:], verbose=0))
    exact = float(np.mean([p_ == t for p_, t in zip(pred, ans[split:])]))
    for q, t, p_ in list(zip(qs[split:], ans[split:], pred))[:5]:
        print(f"{q.strip():>9} = {t.strip():<5} predicted {p_.strip():<5} {'ok' if p_ == t else 'x'}")
    print(f"val char accuracy {hist.history['val_accuracy'][-1]:.3f}, exact answers {exact:.3f}, "
          f"{per_epoch:.2f} s/epoch over {epochs} epochs")
    return hist, exact


if __name__ == "__main__":
    main()
