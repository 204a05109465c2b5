import os

os.environ.setdefault("KERAS_BACKEND", "jax")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

keras = pytest.importorskip("keras")   # the reference implementation

from rnnstate.training import losses, metrics  # noqa: E402

RNG = np.random.default_rng(3)


@pytest.mark.parametrize("loss,shape,expected", [
    ("categorical_crossentropy", (None, 3), metrics.CategoricalAccuracy),
    ("sparse_categorical_crossentropy", (None, 3), metrics.SparseCategoricalAccuracy),
    ("binary_crossentropy", (None, 4), metrics.BinaryAccuracy),   # multi-label: binary, from the loss
    ("mse", (None, 1), metrics.BinaryAccuracy),                   # last dim 1
    (None, (None, 1), metrics.BinaryAccuracy),
])
def test_accuracy_resolution_from_loss_and_shape(loss, shape, expected):
    for ident in ("accuracy", "acc"):
        m = metrics.get(ident, losses.get(loss), shape)
        assert type(m) is expected and m.name == ident and m.direction == "up"


@pytest.mark.parametrize("y_true_shape,expected", [((6, 3), metrics.categorical_accuracy),
                                                   ((6,), metrics.sparse_categorical_accuracy),
                                                   ((6, 1), metrics.sparse_categorical_accuracy)])
def test_accuracy_without_a_deciding_loss_resolves_on_first_batch(y_true_shape, expected):
    m = metrics.get("accuracy", losses.get("mse"), (None, 3))
    y_pred = torch.softmax(torch.randn(6, 3), -1)
    y_true = torch.zeros(y_true_shape)
    m.update_state(y_true, y_pred)
    assert m.fn is expected


def _keras_value(metric, y_true, y_pred, sample_weight=None):
    metric.update_state(y_true, y_pred, sample_weight=sample_weight)
    return float(metric.result())


@pytest.mark.parametrize("weighted", [False, True])
def test_metric_values_match_keras_across_batches(weighted):
    probs = RNG.uniform(size=(10, 4)).astype("float32")
    onehot = np.eye(4, dtype="float32")[RNG.integers(0, 4, 10)]
    labels = onehot.argmax(-1)
    binary_t = RNG.integers(0, 2, size=(10, 1)).astype("float32")
    binary_p = RNG.uniform(size=(10, 1)).astype("float32")
    sw = RNG.uniform(size=(10,)).astype("float32") if weighted else None
    pairs = [
        (metrics.CategoricalAccuracy(), keras.metrics.CategoricalAccuracy(), onehot, probs),
        (metrics.SparseCategoricalAccuracy(), keras.metrics.SparseCategoricalAccuracy(), labels, probs),
        (metrics.BinaryAccuracy(), keras.metrics.BinaryAccuracy(), binary_t, binary_p),
        (metrics.get("mae"), keras.metrics.MeanAbsoluteError(), onehot, probs),
        (metrics.get("mse"), keras.metrics.MeanSquaredError(), onehot, probs),
    ]
    for ours, theirs, yt, yp in pairs:
        for sl in (slice(0, 7), slice(7, 10)):     # two batches of different sizes
            w = None if sw is None else sw[sl]
            ours.update_state(torch.tensor(yt[sl]), torch.tensor(yp[sl]), None if w is None else torch.tensor(w))
            expected = _keras_value(theirs, yt[sl], yp[sl], w)
        assert ours.result() == pytest.approx(expected, rel=1e-6), ours.name
        ours.reset_state()
        assert ours.result() == 0.0


def test_loss_names_work_as_metrics_and_unknown_names_fail():
    m = metrics.get("categorical_crossentropy")
    m.update_state(torch.tensor([[0.0, 1.0]]), torch.tensor([[0.5, 0.5]]))
    assert m.result() == pytest.approx(np.log(2.0), rel=1e-6)
    with pytest.raises(ValueError, match="Unknown metric 'acuracy'"):
        metrics.get("acuracy")
