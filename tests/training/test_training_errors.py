import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from _training_fakes import DenseModel, SeqClassifier, TwoInputModel, toy_sequence_data
from rnnstate.training import optimizers

X, Y, LABELS = toy_sequence_data(n=64)


def _stateful(loss=("categorical_crossentropy", None, None), **kw):
    m = SeqClassifier(return_state=True)
    m.compile("adam", loss=list(loss) if isinstance(loss, tuple) else loss, **kw)
    return m


def test_missing_or_misplaced_targets_name_the_output():
    m = _stateful()
    with pytest.raises(ValueError, match=r"y is None, but outputs 'dense' \(loss 'categorical_crossentropy'\) need"):
        m.fit(X, None, verbose=0)
    with pytest.raises(ValueError, match=r"Output 'dense' needs a target .* but its entry in y is None"):
        m.fit(X, [None, None, None], verbose=0)
    with pytest.raises(ValueError, match=r"y is a list of 2 targets, but the model has 3 outputs \['dense', 'h', 'c'\] "
                                         r"of which 1 need targets"):
        m.fit(X, [Y, Y], verbose=0)
    with pytest.raises(ValueError, match=r"y has keys \['probs'\] that are not model outputs; the outputs are"):
        m.fit(X, {"probs": Y}, verbose=0)
    with pytest.raises(ValueError, match="Output 'dense' needs a target"):
        m.fit(X, {"h": np.zeros((64, 8))}, verbose=0)


def test_single_loss_for_stateful_outputs_explains_the_fix():
    m = _stateful(loss="categorical_crossentropy")
    with pytest.raises(ValueError, match=r"applies to every one of the 3 outputs .* recurrent states .*"
                                         r"loss=\{'dense': 'categorical_crossentropy'\}"):
        m.fit(X, Y, verbose=0)
    # ... while one target per output works (Keras semantics)
    m.compile("sgd", loss="mse")
    m.fit(X, [Y, np.zeros((64, 8)), np.zeros((64, 8))], verbose=0, epochs=1)


def test_compile_argument_errors():
    m = SeqClassifier(return_state=True)
    with pytest.raises(ValueError, match=r"`loss` is a list of 2 entries but the model has 3 outputs"):
        m.compile("adam", loss=["mse", None])
    with pytest.raises(ValueError, match=r"`loss` has keys \['probs'\] that are not model outputs"):
        m.compile("adam", loss={"probs": "mse"})
    with pytest.raises(ValueError, match="Unknown loss 'categorical_crossentropyy'"):
        m.compile("adam", loss={"dense": "categorical_crossentropyy"})
    with pytest.raises(ValueError, match="Unknown optimizer"):
        m.compile("adamm", loss="mse")
    with pytest.raises(RuntimeError, match=r"must call compile\(\) before fit"):
        SeqClassifier().fit(X, Y, verbose=0)
    m.compile("adam", loss=None)
    with pytest.raises(ValueError, match=r"fit\(\) needs a loss"):
        m.fit(X, Y, verbose=0)
    other = torch.optim.SGD(DenseModel().parameters(), lr=0.1)
    with pytest.raises(ValueError, match="already bound to parameters that do not belong"):
        m.compile(other, loss=["mse", None, None])


def test_data_errors():
    m = SeqClassifier()
    m.compile("adam", "categorical_crossentropy")
    with pytest.raises(ValueError, match="x has 64 samples, y has 60 samples"):
        m.fit(X, Y[:60], verbose=0)
    with pytest.raises(ValueError, match=r"sample_weight\['dense'\] has 10 samples"):
        m.fit(X, Y, sample_weight=np.ones(10), verbose=0)
    with pytest.raises(ValueError, match=r"Computing loss 'categorical_crossentropy' for output 'dense' failed: "
                                         r"y_true has shape \(32,\)"):
        m.fit(X, LABELS, verbose=0)
    with pytest.raises(ValueError, match="validation_split is only supported for array inputs"):
        m.fit(DataLoader(TensorDataset(torch.tensor(X), torch.tensor(Y))), validation_split=0.2, verbose=0)
    with pytest.raises(ValueError, match="validation_data must be a tuple"):
        m.fit(X, Y, validation_data=(X,), verbose=0)
    with pytest.raises(ValueError, match="verbose must be"):
        m.fit(X, Y, verbose=3)
    with pytest.raises(TypeError, match="cannot convert an array of dtype <U"):
        m.fit(np.array([["a"]]), Y, verbose=0)
    two = TwoInputModel()
    two.compile("sgd", loss={"out": "mse", "aux": "mse"})
    tokens, extra = np.zeros((8, 4), "int64"), np.zeros((8, 2))
    with pytest.raises(ValueError, match=r"missing inputs: \['extra'\]"):
        two.fit({"tokens": tokens}, [np.zeros((8, 1)), np.zeros((8, 2))], verbose=0)
    with pytest.raises(ValueError, match=r"The model has 2 inputs \['tokens', 'extra'\], but x is a single array"):
        two.predict(tokens, verbose=0)
    with pytest.raises(ValueError, match=r"y is a single array, but 2 outputs need targets"):
        two.fit([tokens, extra], np.zeros((8, 1)), verbose=0)
    with pytest.raises(ValueError, match="class_weight is only supported for models with exactly one output"):
        two.fit([tokens, extra], [np.zeros((8, 1)), np.zeros((8, 2))], class_weight={0: 1.0}, verbose=0)
    with pytest.raises(ValueError, match=r"`loss_weights` is a list of 3 entries"):
        two.compile("sgd", loss=["mse", "mse"], loss_weights=[1.0, 2.0, 3.0])
    assert optimizers.get("sgd").learning_rate == 0.01
