"""examples/attention_seq2seq.py and examples/cnn_lstm.py in their --quick versions, and the step-by-step
attention decoder against independent oracles: the teacher-forced full model fed the decoded prefix (computed by
the example), and Keras 3 running the same architecture with the same weights (computed here)."""
import math
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))

pytest.importorskip("aeon")          # test extras (pyproject [test]); `make test` installs them
pytest.importorskip("matplotlib")
keras = pytest.importorskip("keras")

import attention_seq2seq  # noqa: E402
import cnn_lstm  # noqa: E402
import rnnstate  # noqa: E402
from seq2seq import END, START, make_pairs, one_hot, translate, vocab  # noqa: E402


def test_attention_seq2seq_quick_decodes_like_the_full_model_and_plots(tmp_path, capsys):
    res = attention_seq2seq.main(["--quick", "--out", str(tmp_path)])
    src_chars, tgt_chars = vocab()
    assert set(res["models"]) == {"luong", "bahdanau"}
    for variant, r in res["models"].items():
        # the oracle: the teacher-forced full model fed the decoded prefix gives the same probabilities and weights
        assert r["step_vs_full_max_diff"]["probs"] < 1e-5 and r["step_vs_full_max_diff"]["attention"] < 1e-5
        assert r["attention_row_sum_max_error"] < 1e-5          # a softmax over the source steps
        assert r["attention_on_padding_max"] == 0.0             # Masking: padded source steps get no weight
        assert 0.0 <= r["sequence_accuracy"] <= 1.0 and math.isfinite(r["s_per_epoch"])
        for src, decoded, expected in r["examples"]:
            assert expected == translate(src)                  # the task, recomputed from the source word
            assert set(decoded) <= set(tgt_chars) - {START, END}
    assert (tmp_path / "attention.png").stat().st_size > 10_000
    assert "sequence accuracy" in capsys.readouterr().out


@pytest.mark.parametrize("variant", ["luong", "bahdanau"])
def test_step_by_step_decoding_equals_keras_full_model(variant):
    """Untrained (random, enlarged) weights, so the attention is far from uniform; no training needed for the
    property: decoding one character per call with h, c fed back == Keras' teacher-forced model on the prefix."""
    src, _ = make_pairs(12, 5, seed=3)
    src_chars, tgt_chars = vocab()
    x_src = one_hot(src, src_chars, 5)                          # words of 2..5 letters: some padding
    rnnstate.utils.set_random_seed(1)
    model, _, lay = attention_seq2seq.build(variant, len(src_chars), len(tgt_chars), 8)
    _, keras_full, _ = attention_seq2seq.build(variant, len(src_chars), len(tgt_chars), 8, lib=keras)
    weights = [w * 3 for w in model.get_weights()]
    model.set_weights(weights)
    keras_full.set_weights(weights)
    encoder, step = attention_seq2seq.inference(lay, len(src_chars), len(tgt_chars), 8)
    decoded, fed, probs, attn = attention_seq2seq.decode(encoder, step, x_src, tgt_chars, max_steps=7)

    x_dec = np.zeros(fed.shape + (len(tgt_chars),), "float32")
    np.put_along_axis(x_dec, fed[..., None], 1.0, axis=-1)
    k_probs, k_attn = (np.asarray(a) for a in keras_full.predict([x_src, x_dec], verbose=0))
    np.testing.assert_allclose(probs, k_probs, atol=1e-5)
    np.testing.assert_allclose(attn, k_attn, atol=1e-5)
    assert (fed[:, 1:] == probs[:, :-1].argmax(-1)).all()       # greedy: each step feeds the previous argmax
    assert (fed[:, 0] == tgt_chars.index(START)).all()
    padding = np.arange(5)[None, :] >= np.array([len(s) for s in src])[:, None]    # (B, Ts)
    assert padding.any() and (attn.transpose(0, 2, 1)[padding] == 0.0).all()      # masked source steps: weight 0
    np.testing.assert_allclose(attn.sum(-1), 1.0, atol=1e-6)
    assert attn.max() > 0.5                                     # not uniform: the comparison is not vacuous


def test_cnn_lstm_quick_beats_chance_and_predicts_like_keras(capsys):
    res = cnn_lstm.main(["--quick", "--threads", "1"])
    row = res["datasets"]["BasicMotions"]
    assert (row["train/test"], row["steps"], row["channels"], row["classes"]) == ([40, 40], 100, 6, 4)
    _, _, _, y_test, _ = cnn_lstm.load("BasicMotions")
    assert row["chance"] == pytest.approx(np.bincount(y_test).max() / len(y_test))     # 0.25: balanced classes
    for kind in ("CNN-LSTM", "LSTM"):
        r = row["models"][kind]
        assert r["keras_predict_max_diff"] < 1e-5               # Keras 3 with the trained weights predicts the same
        assert r["accuracy"] > row["chance"] + 0.25             # seeded runs reach 1.00 and 0.88
        assert 0 < r["s_per_epoch"] < 60
    # the CNN-LSTM has the conv's weights on top of an LSTM of the same size, fed `units` channels instead of 6
    units = res["config"]["units"]
    lstm = lambda f: 4 * units * (f + units + 1)                # noqa: E731
    assert row["models"]["LSTM"]["params"] == lstm(6) + units * 4 + 4
    assert row["models"]["CNN-LSTM"]["params"] == 5 * 6 * units + units + lstm(units) + units * 4 + 4
    assert "accuracy" in capsys.readouterr().out


def test_example_help():
    for mod in (attention_seq2seq, cnn_lstm):
        with pytest.raises(SystemExit) as e:
            mod.main(["--help"])
        assert e.value.code == 0
