"""The training examples, in their small versions: they must learn, and predict identically after reload."""
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))

import addition  # noqa: E402
import seq2seq  # noqa: E402


def test_addition_learns(capsys):
    hist, exact = addition.main(["--small", "--verbose", "0"])
    loss = hist.history["loss"]
    assert loss[-1] < 0.7 * loss[0]
    assert hist.history["val_accuracy"][-1] > 0.35            # chance is 1/12 per character
    assert "s/epoch" in capsys.readouterr().out


def test_seq2seq_trains_saves_loads_and_decodes_greedily(tmp_path, capsys):
    hist, exact, same = seq2seq.main(["--small", "--verbose", "0", "--out", str(tmp_path)])
    assert same                                               # identical predictions after save -> load
    assert (tmp_path / "seq2seq.keras").exists()
    loss = hist.history["loss"]
    assert loss[-1] < 0.7 * loss[0]
    assert hist.history["val_accuracy"][-1] > 0.25            # chance is 1/12 per token
    assert exact > 0.1                                        # whole words right, decoded step by step
    assert np.isfinite(loss).all()
