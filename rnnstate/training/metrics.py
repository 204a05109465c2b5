"""Keras metrics as running means on torch tensors.

A metric keeps ``total`` and ``count`` as detached tensors on the data's device, so updating it
never synchronizes with the device; ``result()`` turns them into a Python float (call it at
display time or at the end of an epoch).  Means are over all samples seen (per sample and time
step for sequence outputs), i.e. batch results weighted by batch size, as in Keras.  With a
``sample_weight`` (``weighted_metrics``) the mean is ``sum(w * value) / sum(w)``.
"""

import copy

import torch

from . import losses as losses_mod

__all__ = ["Metric", "Mean", "MeanMetricWrapper", "BinaryAccuracy", "CategoricalAccuracy",
           "SparseCategoricalAccuracy", "MeanSquaredError", "MeanAbsoluteError", "binary_accuracy",
           "categorical_accuracy", "sparse_categorical_accuracy", "get", "resolve_accuracy"]


class Metric:
    """Base: ``update_state(y_true, y_pred, sample_weight=None)``, ``result()``, ``reset_state()``.

    ``direction`` is ``"up"`` when larger is better (used by callbacks in ``mode="auto"``)."""

    direction = "down"

    def __init__(self, name=None):
        self.name = name or type(self).__name__.lower()
        self.reset_state()

    def reset_state(self):
        self.total = 0.0
        self.count = 0.0

    def _accumulate(self, values, sample_weight=None):
        values = values.detach()
        if sample_weight is None:
            self.total = self.total + values.sum()
            self.count = self.count + values.numel()
        else:
            w = losses_mod._broadcast_weight(sample_weight, values).expand_as(values)
            self.total = self.total + (values * w).sum()
            self.count = self.count + w.sum()

    def update_state(self, y_true, y_pred, sample_weight=None):
        raise NotImplementedError

    def result(self) -> float:
        if not float(self.count):
            return 0.0
        return float(self.total / self.count)   # float32 division, as Keras

    # ---- distributed training: states summed across ranks, then the result of the sums --------
    collective = False
    """True for metrics whose ``result()`` is itself a collective call (torchmetrics' sync)."""

    def sync_states(self):
        """The states that add up across ranks (tensors or numbers)."""
        return [self.total, self.count]

    def result_from(self, states) -> float:
        """``result()`` computed from summed ``sync_states()`` (1-D float64 tensors)."""
        total, count = (float(s.sum()) for s in states)
        return total / count if count else 0.0

    def __repr__(self):
        return f"{type(self).__name__}(name={self.name!r})"


class Mean(Metric):
    """Weighted mean of the values passed to ``update_state(values, sample_weight=None)``."""

    def update_state(self, values, sample_weight=None):
        if not isinstance(values, torch.Tensor):
            values = torch.as_tensor(values, dtype=torch.float32)
        if values.dim() == 0 and sample_weight is not None and not isinstance(sample_weight, torch.Tensor):
            w = float(sample_weight)   # the loss trackers: one fused op per step
            v = values.detach()
            self.total = self.total.add(v, alpha=w) if isinstance(self.total, torch.Tensor) else v * w
            self.count = self.count + w
            return
        self._accumulate(values.reshape(-1) if values.dim() == 0 else values, sample_weight)


class MeanMetricWrapper(Metric):
    """Running mean of ``fn(y_true, y_pred, **kwargs)`` (per-sample values)."""

    def __init__(self, fn, name=None, direction="down", **kwargs):
        self.fn, self._fn_kwargs, self.direction = fn, kwargs, direction
        super().__init__(name=name or getattr(fn, "__name__", "metric"))

    def update_state(self, y_true, y_pred, sample_weight=None, mask=None):
        """`mask`: the prediction's mask; masked entries get weight 0 (Keras 3)."""
        values = self.fn(y_true, y_pred, **self._fn_kwargs)
        if mask is not None:
            m = mask.to(values.dtype)
            sample_weight = m if sample_weight is None else \
                losses_mod._broadcast_weight(sample_weight, m) * m
        self._accumulate(values, sample_weight)


# ---- per-sample metric functions ----------------------------------------------------------------
def binary_accuracy(y_true, y_pred, threshold=0.5):
    y_true, y_pred = losses_mod._same_rank(torch.as_tensor(y_true), y_pred)
    return (y_true.to(y_pred.dtype) == (y_pred > threshold).to(y_pred.dtype)).to(y_pred.dtype).mean(dim=-1)


def categorical_accuracy(y_true, y_pred):
    return (y_true.argmax(dim=-1) == y_pred.argmax(dim=-1)).to(y_pred.dtype)


def sparse_categorical_accuracy(y_true, y_pred):
    y_true = torch.as_tensor(y_true)
    if y_true.dim() == y_pred.dim() and y_true.shape[-1] == 1:
        y_true = y_true.squeeze(-1)
    return (y_true.long() == y_pred.argmax(dim=-1)).to(y_pred.dtype)


class BinaryAccuracy(MeanMetricWrapper):
    def __init__(self, name="binary_accuracy", threshold=0.5):
        super().__init__(binary_accuracy, name=name, direction="up", threshold=threshold)


class CategoricalAccuracy(MeanMetricWrapper):
    def __init__(self, name="categorical_accuracy"):
        super().__init__(categorical_accuracy, name=name, direction="up")


class SparseCategoricalAccuracy(MeanMetricWrapper):
    def __init__(self, name="sparse_categorical_accuracy"):
        super().__init__(sparse_categorical_accuracy, name=name, direction="up")


class MeanSquaredError(MeanMetricWrapper):
    def __init__(self, name="mean_squared_error"):
        super().__init__(losses_mod.mean_squared_error, name=name)


class MeanAbsoluteError(MeanMetricWrapper):
    def __init__(self, name="mean_absolute_error"):
        super().__init__(losses_mod.mean_absolute_error, name=name)


class _AutoAccuracy(MeanMetricWrapper):
    """'accuracy' whose kind is picked from the shapes of the first batch (Keras 3's rule):
    binary if predictions have last dim 1, sparse if targets have lower rank or last dim 1,
    categorical otherwise.  Resolved once, not per step."""

    def __init__(self, name="accuracy"):
        super().__init__(None, name=name, direction="up")

    def update_state(self, y_true, y_pred, sample_weight=None):
        if self.fn is None:
            self.fn = _accuracy_from_shapes(tuple(y_true.shape), tuple(y_pred.shape))
        super().update_state(y_true, y_pred, sample_weight)


def _accuracy_from_shapes(true_shape, pred_shape):
    if pred_shape[-1:] == (1,):
        return binary_accuracy
    if len(true_shape) < len(pred_shape) or (true_shape[-1:] == (1,) and pred_shape[-1] != 1):
        return sparse_categorical_accuracy
    return categorical_accuracy


def resolve_accuracy(name, loss=None, output_shape=None):
    """The accuracy metric for 'accuracy'/'acc': from the loss (binary, categorical or sparse
    categorical crossentropy), else binary for outputs whose last dim is 1, else decided from the
    first batch's shapes."""
    fn = getattr(loss, "fn", None)
    if fn is losses_mod.binary_crossentropy:
        return BinaryAccuracy(name=name)
    if fn is losses_mod.sparse_categorical_crossentropy:
        return SparseCategoricalAccuracy(name=name)
    if fn is losses_mod.categorical_crossentropy:
        return CategoricalAccuracy(name=name)
    if output_shape is not None and len(output_shape) and output_shape[-1] == 1:
        return BinaryAccuracy(name=name)
    return _AutoAccuracy(name=name)


_CLASSES = {
    "binary_accuracy": BinaryAccuracy, "categorical_accuracy": CategoricalAccuracy,
    "sparse_categorical_accuracy": SparseCategoricalAccuracy,
    "mse": MeanSquaredError, "mean_squared_error": MeanSquaredError,
    "mae": MeanAbsoluteError, "mean_absolute_error": MeanAbsoluteError,
}


def get(identifier, loss=None, output_shape=None):
    """A fresh ``Metric`` for ``identifier``: a name (``accuracy``/``acc`` resolved from ``loss``
    and ``output_shape``, the names above, or any loss name such as ``categorical_crossentropy``),
    a ``Metric`` (copied), a ``Metric`` class, or a function ``fn(y_true, y_pred)``.  The metric
    is named after a string identifier as given (Keras behaviour)."""
    if isinstance(identifier, Metric):
        return copy.deepcopy(identifier)
    if isinstance(identifier, type) and issubclass(identifier, Metric):
        return identifier()
    if isinstance(identifier, str):
        key = identifier.lower()
        if key in ("accuracy", "acc"):
            return resolve_accuracy(identifier, loss, output_shape)
        if key in _CLASSES:
            return _CLASSES[key](name=identifier)
        if key in losses_mod.FUNCTIONS:
            return MeanMetricWrapper(losses_mod.FUNCTIONS[key], name=identifier)
        raise ValueError(f"Unknown metric {identifier!r}. Known names: "
                         f"{sorted({'accuracy', 'acc', *_CLASSES, *losses_mod.FUNCTIONS})}; or pass a Metric "
                         "or a function fn(y_true, y_pred).")
    if isinstance(identifier, losses_mod.Loss):
        return MeanMetricWrapper(identifier.call, name=identifier.name)
    if callable(identifier):
        return MeanMetricWrapper(identifier, name=getattr(identifier, "__name__", "metric"))
    raise ValueError(f"Could not interpret metric identifier: {identifier!r} (type {type(identifier).__name__}).")
