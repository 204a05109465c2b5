"""An encoder-decoder with attention (Luong and Bahdanau) on the synthetic translation task of seq2seq.py.

The task is the one examples/seq2seq.py trains on (its data helpers are reused): a word of random letters
translates to the word reversed with every vowel doubled ("abe" -> "eeba"). Reversal is where attention helps:
the decoder must look back at a source position that moves one step per output character.

Training model (teacher forcing), for each of two attention layers:

    encoder: Masking() -> LSTM(return_sequences=True, return_state=True) -> enc_seq (B, Ts, U), h, c
    decoder: LSTM(return_sequences=True, return_state=True, initial_state=[h, c]) -> dec_seq (B, Tt, U)
    context, weights = Attention()([dec_seq, enc_seq], return_attention_scores=True)      # Luong, dot product
                    or AdditiveAttention()([W1 dec_seq, enc_seq, W2 enc_seq], ...)        # Bahdanau, additive
    probs = Dense(softmax)(Concatenate()([dec_seq, context]))                            # (B, Tt, vocab)

The source words are padded with zero vectors at the end; `Masking` marks the padding, the encoder's LSTM
carries its state through it (h, c are the states after the last real character) and the attention gives it
weight 0 (the mask travels with enc_seq inside the model). Inference uses the trained layers in two new models:
the encoder (source -> enc_seq, h, c) and one decoder step (token, enc_seq, source mask, h, c -> probs, h', c',
weights), called once per output character with the states fed back explicitly. Every step-by-step decode is
checked against the teacher-forced full model fed the decoded prefix (the same probabilities and attention
weights, to float rounding). The attention weights of a few held-out words are plotted as heatmaps
(out/attention.png). The baseline is the same encoder-decoder without the attention
(probs = Dense(dec_seq), as in seq2seq.py but with the Masking), trained for as many epochs.

    python examples/attention_seq2seq.py                # full; writes examples/results/attention_seq2seq.json
    python examples/attention_seq2seq.py --quick        # a few seconds, no results file
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np

import rnnstate
from _common import set_threads, write_results
from seq2seq import END, START, make_pairs, one_hot, vocab

VARIANTS = {"luong": "Attention", "bahdanau": "AdditiveAttention"}      # layer names in rnnstate and Keras
BASELINE = "no attention"


def build(variant, n_src, n_tgt, latent, lib=rnnstate):
    """The teacher-forced training model, the same graph returning the attention weights too (the oracle of the
    step-by-step decode), and its layers. `variant`: a key of VARIANTS, or BASELINE (the same encoder-decoder
    without attention: probs = Dense(dec_seq); then the second model is None). `lib`: rnnstate, or Keras (the
    same code builds the same model there, with the same weight order)."""
    L = lib.layers
    lay = {"masking": L.Masking(), "encoder": L.LSTM(latent, return_sequences=True, return_state=True),
           "decoder": L.LSTM(latent, return_sequences=True, return_state=True),
           "dense": L.Dense(n_tgt, activation="softmax")}
    if variant != BASELINE:
        lay.update(attention=getattr(L, VARIANTS[variant])(), concat=L.Concatenate())
    if variant == "bahdanau":                                   # scores v . tanh(W1 query + W2 key)
        lay.update(query_proj=L.Dense(latent, use_bias=False), key_proj=L.Dense(latent, use_bias=False))
    src = lib.Input(shape=(None, n_src))
    enc_seq, h, c = lay["encoder"](lay["masking"](src))                     # (B, Ts, U), (B, U), (B, U)
    tgt = lib.Input(shape=(None, n_tgt))
    dec_seq, _, _ = lay["decoder"](tgt, initial_state=[h, c])               # (B, Tt, U)
    if variant == BASELINE:
        probs, weights = lay["dense"](dec_seq), None
    else:
        context, weights = attend(lay, dec_seq, enc_seq)                   # (B, Tt, U), (B, Tt, Ts)
        probs = lay["dense"](lay["concat"]([dec_seq, context]))             # (B, Tt, n_tgt)
    model = lib.Model([src, tgt], probs)
    model.compile(optimizer="rmsprop", loss="categorical_crossentropy", metrics=["accuracy"])
    with_weights = None if weights is None else lib.Model([src, tgt], [probs, weights])   # shares the layers
    return model, with_weights, lay


def attend(lay, dec_seq, enc_seq, **mask):
    """context, weights = attention over the encoder steps for every decoder step. Luong: scores = dec . enc.
    Bahdanau: the query and key are projected first (W1 dec, W2 enc: Keras' AdditiveAttention has no weights
    of its own but the scale v), the value stays enc."""
    if "key_proj" in lay:
        inputs = [lay["query_proj"](dec_seq), enc_seq, lay["key_proj"](enc_seq)]    # [query, value, key]
    else:
        inputs = [dec_seq, enc_seq]
    return lay["attention"](inputs, return_attention_scores=True, **mask)


def inference(lay, n_src, n_tgt, latent):
    """Encoder: source -> [enc_seq, h, c]. Decoder step: [token (B, 1, n_tgt), enc_seq, source mask (B, Ts),
    h, c] -> [probs (B, 1, n_tgt), h, c, weights (B, 1, Ts)]. Both built from the trained layers (no copies).
    (A model's outputs carry no mask, so the step model takes the source mask as an input of its own.)"""
    src = rnnstate.Input(shape=(None, n_src))
    encoder = rnnstate.Model(src, list(lay["encoder"](lay["masking"](src))))
    token = rnnstate.Input(shape=(None, n_tgt))
    enc_seq = rnnstate.Input(shape=(None, latent))
    src_mask = rnnstate.Input(shape=(None,), dtype="bool")
    h_in, c_in = rnnstate.Input(shape=(latent,)), rnnstate.Input(shape=(latent,))
    dec_seq, h, c = lay["decoder"](token, initial_state=[h_in, c_in])
    if "attention" not in lay:                                            # the baseline: enc_seq is unused
        return encoder, rnnstate.Model([token, h_in, c_in], [lay["dense"](dec_seq), h, c])
    context, weights = attend(lay, dec_seq, enc_seq, mask=[None, src_mask])
    probs = lay["dense"](lay["concat"]([dec_seq, context]))
    step = rnnstate.Model([token, enc_seq, src_mask, h_in, c_in], [probs, h, c, weights])
    return encoder, step


def decode(encoder, step, x_src, tgt_chars, max_steps):
    """Greedy decoding, one character per call of the step model, states (h, c) carried explicitly.

    Returns the decoded strings (up to END), the fed tokens (B, S) as ids (START first), the step
    probabilities (B, S, n_tgt) and attention weights (B, S, Ts) (None for the baseline); S <= max_steps
    (stops when every word has ended)."""
    n = len(x_src)
    enc_seq, h, c = encoder.predict(x_src, verbose=0)
    src_mask = x_src.any(-1)                                              # (B, Ts): False at the padding
    ids = np.full(n, tgt_chars.index(START))
    fed, probs, weights = [], [], []
    done = np.zeros(n, dtype=bool)
    out = [""] * n
    for _ in range(max_steps):
        token = np.zeros((n, 1, len(tgt_chars)), dtype="float32")
        token[np.arange(n), 0, ids] = 1.0
        if len(step.inputs) == 5:                                        # with attention
            p, h, c, w = step.predict([token, enc_seq, src_mask, h, c], verbose=0)   # h, c go back in next step
            weights.append(w[:, 0])
        else:
            p, h, c = step.predict([token, h, c], verbose=0)
        fed.append(ids)
        probs.append(p[:, 0])
        ids = p[:, 0].argmax(-1)
        for i, k in enumerate(ids):
            if not done[i]:
                done[i] = tgt_chars[k] == END
                out[i] += "" if done[i] else tgt_chars[k]
        if done.all():
            break
    return out, np.stack(fed, 1), np.stack(probs, 1), np.stack(weights, 1) if weights else None


def check_against_full_model(with_weights, x_src, fed, probs, weights, n_tgt):
    """The oracle: the teacher-forced full model fed the decoded prefix (START, y1, ..., y_{S-1}) gives, at every
    step, the probabilities and attention weights of the step-by-step decode. Returns the max differences."""
    x_dec = np.zeros(fed.shape + (n_tgt,), dtype="float32")
    np.put_along_axis(x_dec, fed[..., None], 1.0, axis=-1)
    full_probs, full_weights = with_weights.predict([x_src, x_dec], verbose=0)
    return float(np.abs(full_probs - probs).max()), float(np.abs(full_weights - weights).max())


def plot_attention(path, examples):
    """examples: {variant: [(source, decoded, weights (S, Ts)), ...]} -> one heatmap per word and variant."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows, cols = len(examples), max(len(v) for v in examples.values())
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.4 * rows), squeeze=False)
    for r, (variant, items) in enumerate(examples.items()):
        for col, (src, dec, w) in enumerate(items):
            ax = axes[r, col]
            out_chars = list(dec) + ["<end>"]
            ax.imshow(w[:len(out_chars), :len(src)], cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
            ax.set_xticks(range(len(src)), list(src))
            ax.set_yticks(range(len(out_chars)), out_chars)
            ax.set_xlabel("source")
            ax.set_title(f"{variant}: {src} -> {dec}", fontsize=9)
        for col in range(len(items), cols):
            axes[r, col].axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny data and model: a few seconds, no results file")
    p.add_argument("--epochs", type=int)
    p.add_argument("--seed", type=int, default=0, help="seed of the data and of the initial weights")
    p.add_argument("--out", default="out/attention_seq2seq", help="folder for attention.png")
    p.add_argument("--no-baseline", action="store_true", help="skip the baseline: the same model without attention")
    p.add_argument("--threads", type=int, help="CPU threads for torch (default: its own)")
    p.add_argument("--verbose", type=int, default=0)
    a = p.parse_args(argv)
    set_threads(a.threads)
    n, max_len, latent, epochs = (400, 4, 16, 3) if a.quick else (8000, 8, 64, 30)
    epochs = a.epochs or epochs
    src, tgt = make_pairs(n, max_len, seed=a.seed)
    src_chars, tgt_chars = vocab()
    T_src, T_tgt = max(map(len, src)), max(map(len, tgt))
    x_src = one_hot(src, src_chars, T_src)
    x_dec = one_hot([t[:-1] for t in tgt], tgt_chars, T_tgt - 1)
    y_dec = one_hot([t[1:] for t in tgt], tgt_chars, T_tgt - 1)
    k = max(n // 10, 8)                                        # held-out words (the last k): never trained on
    train = (x_src[:-k], x_dec[:-k]), y_dec[:-k]
    held_src, held_tgt = src[-k:], [t[1:-1] for t in tgt[-k:]]

    results = {"config": {"pairs": n, "max_source_length": max_len, "latent": latent, "epochs": epochs,
                          "batch_size": 64, "optimizer": "rmsprop", "held_out": k, "seed": a.seed},
               "models": {}}
    os.makedirs(a.out, exist_ok=True)
    to_plot = {}
    for variant in list(VARIANTS) + ([] if a.quick or a.no_baseline else [BASELINE]):
        rnnstate.utils.set_random_seed(a.seed)
        model, with_weights, lay = build(variant, len(src_chars), len(tgt_chars), latent)
        t0 = time.perf_counter()
        hist = model.fit(*train, batch_size=64, epochs=epochs, verbose=a.verbose)
        per_epoch = (time.perf_counter() - t0) / epochs
        encoder, step = inference(lay, len(src_chars), len(tgt_chars), latent)
        decoded, fed, probs, weights = decode(encoder, step, x_src[-k:], tgt_chars, T_tgt)
        acc = float(np.mean([d == t for d, t in zip(decoded, held_tgt)]))
        r = results["models"][variant] = {
            "sequence_accuracy": acc, "train_token_accuracy": float(hist.history["accuracy"][-1]),
            "s_per_epoch": per_epoch, "params": int(sum(w.size for w in model.get_weights())),
            "examples": [[s, d, t] for s, d, t in zip(held_src[:5], decoded[:5], held_tgt[:5])]}
        line = f"{variant:>12}: held-out sequence accuracy {acc:.3f}, {per_epoch:.2f} s/epoch"
        if with_weights is not None:
            dp, dw = check_against_full_model(with_weights, x_src[-k:], fed, probs, weights, len(tgt_chars))
            r.update({"step_vs_full_max_diff": {"probs": dp, "attention": dw},
                      "attention_row_sum_max_error": float(np.abs(weights.sum(-1) - 1.0).max()),
                      "attention_on_padding_max": float((weights * ~x_src[-k:].any(-1)[:, None, :]).max())})
            to_plot[variant] = [(s, d, w) for s, d, w in zip(held_src[:3], decoded[:3], weights[:3])]
            line += f"; step-by-step decode vs full model: max |d probs| {dp:.1e}, max |d attention| {dw:.1e}"
        print(line)
        for s, d, t in zip(held_src[:3], decoded[:3], held_tgt[:3]):
            print(f"              {s:>10} -> {d:<18} (expected {t})")
    png = os.path.join(a.out, "attention.png")
    plot_attention(png, to_plot)
    results["plot"] = png
    print("attention weights:", png)
    if not a.quick:
        print("results:", write_results("attention_seq2seq", results))
    return results


if __name__ == "__main__":
    main()
