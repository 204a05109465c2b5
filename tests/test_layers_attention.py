"""Attention (Luong) and AdditiveAttention (Bahdanau) against Keras 3 (JAX) with the same weights:
scores, masks (explicit and propagated), causal masks, returned scores, a training step, `.keras` files."""
import keras
import numpy as np
import pytest

from rnnstate import layers as L

from ._keras_pairs import close, keras_files_both_ways, pair, random_weights, sgd_step_matches

B, TQ, TV, D = 2, 3, 5, 4


@pytest.fixture(scope="module")
def qvk():
    rng = np.random.default_rng(0)
    return [rng.standard_normal((B, t, D)).astype("float32") for t in (TQ, TV, TV)]


KINDS = [("Attention", {}), ("Attention", {"use_scale": True}), ("Attention", {"score_mode": "concat"}),
         ("Attention", {"score_mode": "concat", "use_scale": True}), ("AdditiveAttention", {}),
         ("AdditiveAttention", {"use_scale": False})]
MASKS = {"none": None,
         "both": [np.array([[1, 1, 0], [1, 0, 0]], bool), np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], bool)],
         "value": [None, np.array([[1, 0, 1, 0, 1], [1, 1, 0, 0, 0]], bool)]}


@pytest.mark.parametrize("kind,kw", KINDS, ids=[f"{k}-{kw}" for k, kw in KINDS])
@pytest.mark.parametrize("mask,causal,with_key", [("none", False, False), ("both", False, True), ("both", True, False),
                                                  ("value", True, False), ("none", True, True)])
def test_attention_matches_keras(kind, kw, mask, causal, with_key, qvk, rng):
    inputs = qvk if with_key else qvk[:2]
    kl, rl = getattr(keras.layers, kind)(**kw), getattr(L, kind)(**kw)
    kl(inputs)
    rl(inputs)
    w = random_weights(kl, rng)
    kl.set_weights(w)
    rl.set_weights(w)
    assert [(v.name, tuple(v.shape)) for v in rl.weights] == [(v.name, tuple(v.shape)) for v in kl.weights]
    call = dict(mask=MASKS[mask], use_causal_mask=causal, return_attention_scores=True)
    k_out, k_scores = kl(inputs, **call)
    out, scores = rl(inputs, **call)
    close([out, scores], [k_out, k_scores])
    close(rl(inputs, mask=MASKS[mask], use_causal_mask=causal), k_out)     # without the scores
    np.testing.assert_allclose(scores.sum(-1).detach().numpy(), 1.0, atol=1e-6)


def _seq2seq(lib, kind):
    """A small encoder-decoder: masked source ids, an LSTM encoder, a decoder LSTM started from the
    encoder's states, attention over the encoder outputs, scores returned as a model output."""
    src, tgt = lib.Input((TV,), dtype="int32"), lib.Input((TQ, D))
    e = lib.layers.Embedding(7, D, mask_zero=True)(src)
    enc, h, c = lib.layers.LSTM(D, return_sequences=True, return_state=True)(e)
    dec = lib.layers.LSTM(D, return_sequences=True)(tgt, initial_state=[h, c])
    if kind == "luong":
        ctx, scores = lib.layers.Attention(use_scale=True)([dec, enc], return_attention_scores=True)
    else:
        q = lib.layers.Dense(D)(dec)
        ctx, scores = lib.layers.AdditiveAttention()([q, enc, lib.layers.Dense(D)(enc)],
                                                     return_attention_scores=True)
    y = lib.layers.Dense(3)(lib.layers.Concatenate()([dec, ctx]))
    return lib.Model([src, tgt], [y, scores])


@pytest.fixture(scope="module", params=["luong", "bahdanau"])
def seq2seq(request):
    return pair(lambda lib: _seq2seq(lib, request.param), np.random.default_rng(1))


def test_seq2seq_attention_model_like_keras(seq2seq, tmp_path):
    km, rm = seq2seq
    rng = np.random.default_rng(2)
    src = np.array([[1, 2, 3, 0, 0], [4, 5, 6, 2, 0]])
    tgt = rng.standard_normal((B, TQ, D)).astype("float32")
    got, want = rm.predict([src, tgt]), km.predict([src, tgt], verbose=0)
    close(got, want)
    assert np.all(got[1][0, :, 3:] < 1e-6)          # padded source steps get no attention (propagated mask)
    keras_files_both_ways(km, rm, [src, tgt], tmp_path)
    # one SGD step on the first output only
    k1, r1 = (type(m)(m.inputs, m.outputs[0]) for m in (km, rm))
    sgd_step_matches(k1, r1, [src, tgt], rng.standard_normal((B, TQ, 3)).astype("float32"))


def test_attention_errors(qvk):
    with pytest.raises(ValueError, match="Attention .*list \\[query, value\\]"):
        L.Attention()(qvk[0])
    with pytest.raises(ValueError, match="`score_mode` must be one of"):
        L.Attention(score_mode="general")
    with pytest.raises(ValueError, match="query_mask must have shape \\(2, 3\\)"):
        L.Attention()(qvk[:2], mask=[np.ones((2, 5), bool), None])
    with pytest.raises(ValueError, match="AdditiveAttention .*same feature size"):
        L.AdditiveAttention()([qvk[0], qvk[1][..., :2]])


MHA_CASES = [dict(num_heads=2, key_dim=3), dict(num_heads=3, key_dim=2, value_dim=2, output_shape=5),
             dict(num_heads=1, key_dim=4, use_bias=False)]


@pytest.mark.parametrize("kw", MHA_CASES, ids=[str(kw) for kw in MHA_CASES])
@pytest.mark.parametrize("masks,causal", [(False, False), (True, False), (False, True), (True, True)])
def test_multi_head_attention_matches_keras(kw, masks, causal, qvk, rng):
    q, v, k = qvk
    kl, rl = keras.layers.MultiHeadAttention(**kw), L.MultiHeadAttention(**kw)
    kl(q, v, key=k)
    rl(q, v, key=k)
    w = random_weights(kl, rng)
    kl.set_weights(w)
    rl.set_weights(w)
    assert [(v_.name, tuple(v_.shape)) for v_ in rl.weights] == [(v_.name, tuple(v_.shape)) for v_ in kl.weights]
    call = dict(use_causal_mask=causal)
    if masks:      # (Keras 3.15 ignores an explicit query_mask, using the query's graph mask: model test below)
        call.update(value_mask=MASKS["both"][1])
    close(rl(q, v, key=k, return_attention_scores=True, **call), kl(q, v, key=k, return_attention_scores=True, **call))
    close(rl(q, v, key=k, **call), kl(q, v, key=k, **call))


def _mha_model(lib):
    ids, x = lib.Input((TV,), dtype="int32"), lib.Input((TQ, D))
    e = lib.layers.Embedding(7, D, mask_zero=True)(ids)
    y = lib.layers.MultiHeadAttention(2, 3)(x, e)                   # value mask from the Embedding
    # (a second Embedding: Keras' MultiHeadAttention clears the mask of the tensors it is called on,
    # so a tensor shared by two of them would lose its mask in Keras)
    e2 = lib.layers.Embedding(7, D, mask_zero=True)(ids)
    z = lib.layers.MultiHeadAttention(2, 2, output_shape=3)(e2, e2, use_causal_mask=True)   # self-attention
    return lib.Model([ids, x], [y, lib.layers.LSTM(2)(z)])


def test_multi_head_attention_model_masks_files_and_step(tmp_path):
    km, rm = pair(_mha_model, np.random.default_rng(5))
    ids = np.array([[1, 2, 3, 0, 0], [4, 5, 6, 2, 0]])
    x = np.random.default_rng(6).standard_normal((B, TQ, D)).astype("float32")
    close(rm.predict([ids, x]), km.predict([ids, x], verbose=0))
    keras_files_both_ways(km, rm, [ids, x], tmp_path)
    k1, r1 = (type(m)(m.inputs, m.outputs[0]) for m in (km, rm))
    sgd_step_matches(k1, r1, [ids, x], np.random.default_rng(7).standard_normal((B, TQ, D)).astype("float32"))
