"""keras.utils.disable_interactive_logging's counterpart: progress bars off, epoch lines kept."""
import numpy as np
import pytest

import rnnstate
from rnnstate import layers


@pytest.fixture
def model():
    m = rnnstate.Sequential([rnnstate.Input((3, 2)), layers.LSTM(2), layers.Dense(1)])
    m.compile("sgd", "mse")
    return m


def test_disable_interactive_logging(model, capsys):
    import keras
    x, y = np.zeros((4, 3, 2), "float32"), np.zeros((4, 1), "float32")
    assert rnnstate.utils.is_interactive_logging_enabled() == keras.utils.is_interactive_logging_enabled() is True
    rnnstate.utils.disable_interactive_logging()
    try:
        assert not rnnstate.utils.is_interactive_logging_enabled()
        model.fit(x, y, epochs=2, verbose=1)
        model.predict(x, verbose=1)
        model.evaluate(x, y, verbose=1)
    finally:
        rnnstate.utils.enable_interactive_logging()
    out = capsys.readouterr()
    lines = [l for l in out.out.splitlines() if l.strip()]
    assert lines[0] == "Epoch 1/2" and lines[2] == "Epoch 2/2" and "loss: " in lines[1] and len(lines) == 4
    assert "step/s" not in out.out + out.err and "it/s" not in out.out + out.err
    model.predict(x, verbose=1)                                       # back on: a bar again
    out = capsys.readouterr()
    assert "step" in out.out + out.err
