"""Keras metrics as running means on torch tensors.

A metric keeps ``total`` and ``count`` as detached tensors on the data's device, so updating it
never synchronizes with the device; ``result()`` turns them into a Python float (call it at
display time or at the end of an epoch).  Means are over all samples seen (per sample and time
step for sequence outputs), i.e. batch results weighted by batch size, as in Keras.  With a
``sample_weight`` (``weighted_metrics``) the mean is ``sum(w * value) / sum(w)``.
"""

import copy
import functools
import types
import warnings

import torch

from . import losses as losses_mod

__all__ = ["Metric", "Mean", "MeanMetricWrapper", "BinaryAccuracy", "CategoricalAccuracy",
           "SparseCategoricalAccuracy", "MeanSquaredError", "MeanAbsoluteError", "binary_accuracy",
           "categorical_accuracy", "sparse_categorical_accuracy", "top_k_categorical_accuracy",
           "sparse_top_k_categorical_accuracy", "TopKCategoricalAccuracy", "SparseTopKCategoricalAccuracy",
           "AUC", "Precision", "Recall", "TorchMetric", "TorchLossMetric", "get", "resolve_accuracy"]


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


def top_k_categorical_accuracy(y_true, y_pred, k=5):
    """1 where the true class (argmax of one-hot ``y_true``) is among the ``k`` largest predictions."""
    return sparse_top_k_categorical_accuracy(y_true.argmax(dim=-1), y_pred, k)


def sparse_top_k_categorical_accuracy(y_true, y_pred, k=5):
    y_true = torch.as_tensor(y_true)
    if y_true.dim() == y_pred.dim() and y_true.shape[-1] == 1:
        y_true = y_true.squeeze(-1)
    if k >= y_pred.shape[-1]:
        return torch.ones(y_pred.shape[:-1], dtype=y_pred.dtype, device=y_pred.device)
    top = y_pred.topk(k, dim=-1).indices
    return (top == y_true.long().unsqueeze(-1)).any(dim=-1).to(y_pred.dtype)


class TopKCategoricalAccuracy(MeanMetricWrapper):
    def __init__(self, k=5, name="top_k_categorical_accuracy"):
        super().__init__(top_k_categorical_accuracy, name=name, direction="up", k=k)


class SparseTopKCategoricalAccuracy(MeanMetricWrapper):
    def __init__(self, k=5, name="sparse_top_k_categorical_accuracy"):
        super().__init__(sparse_top_k_categorical_accuracy, name=name, direction="up", k=k)


# ---- confusion-matrix metrics (Keras' thresholded counts; summable across ranks) ----------------
def _flat_binary(y_true, y_pred, sample_weight, mask):
    """Keras' confusion-matrix inputs: every element a binary prediction, with its weight."""
    y_true, y_pred = losses_mod._same_rank(torch.as_tensor(y_true, device=y_pred.device), y_pred)
    y_true, y_pred = y_true.to(y_pred.dtype), y_pred.detach()
    w = torch.ones_like(y_pred)
    if sample_weight is not None:
        w = w * losses_mod._broadcast_weight(sample_weight, y_pred)
    if mask is not None:
        w = w * losses_mod._broadcast_weight(mask, y_pred)
    return y_true.reshape(-1), y_pred.reshape(-1), w.reshape(-1)


class _Confusion(Metric):
    """True/false positives/negatives at ``thresholds`` (prediction > threshold is positive)."""

    direction = "up"
    _thresholds = (0.5,)

    def reset_state(self):
        self.counts = torch.zeros(4, len(self._thresholds), dtype=torch.float64)   # tp, fp, tn, fn

    def update_state(self, y_true, y_pred, sample_weight=None, mask=None):
        t, p, w = _flat_binary(y_true, y_pred, sample_weight, mask)
        thr = torch.as_tensor(self._thresholds, dtype=p.dtype, device=p.device)
        above = (p.unsqueeze(-1) > thr).to(torch.float64)       # (n, thresholds)
        pos, w = (t > 0.5).to(torch.float64).unsqueeze(-1), w.to(torch.float64).unsqueeze(-1)
        tp, fp = (w * pos * above).sum(0), (w * (1 - pos) * above).sum(0)
        fn, tn = (w * pos).sum() - tp, (w * (1 - pos)).sum() - fp
        self.counts = self.counts.to(p.device) + torch.stack([tp, fp, tn, fn])

    def sync_states(self):
        return [self.counts]

    def result(self) -> float:
        return self._from_counts(self.counts.cpu())

    def result_from(self, states) -> float:
        return self._from_counts(states[0].reshape(4, -1))


def _div(a, b):
    return torch.where(b > 0, a / torch.where(b > 0, b, torch.ones_like(b)), torch.zeros_like(a))


class _Ratio(_Confusion):
    """``tp / (tp + counts[_other])`` over all elements, at one threshold (default 0.5)."""

    _other = None

    def __init__(self, thresholds=None, name=None):
        self._thresholds = (0.5 if thresholds is None else float(thresholds),)
        super().__init__(name=name or self._default_name)

    def _from_counts(self, c):
        return float(_div(c[0], c[0] + c[self._other])[0])


class Precision(_Ratio):
    """Keras ``Precision(thresholds=0.5)``: ``tp / (tp + fp)`` over all elements."""
    _other, _default_name = 1, "precision"


class Recall(_Ratio):
    """Keras ``Recall(thresholds=0.5)``: ``tp / (tp + fn)`` over all elements."""
    _other, _default_name = 3, "recall"


class AUC(_Confusion):
    """Keras ``AUC(num_thresholds=200, curve="ROC", summation_method="interpolation")``: the ROC
    curve from counts at ``num_thresholds`` thresholds (``-eps``, evenly spaced in (0, 1), ``1 + eps``)
    summed as Riemann rectangles (interpolation: trapezoids; "minoring"/"majoring": lower/upper
    heights).  ``from_logits``: apply a sigmoid first.  Only the ROC curve (Keras' default)."""

    def __init__(self, num_thresholds=200, curve="ROC", summation_method="interpolation", name="auc",
                 from_logits=False):
        if curve.upper() != "ROC":
            raise ValueError(f"AUC: curve={curve!r} is not supported; rnnstate computes the ROC curve (curve='ROC').")
        if summation_method not in ("interpolation", "minoring", "majoring"):
            raise ValueError(f"AUC: summation_method must be 'interpolation', 'minoring' or 'majoring'; received "
                             f"{summation_method!r}.")
        if int(num_thresholds) <= 1:
            raise ValueError(f"AUC: num_thresholds must be > 1; received {num_thresholds}.")
        self.num_thresholds, self.summation_method, self.from_logits = int(num_thresholds), summation_method, from_logits
        eps = 1e-7
        inner = [(i + 1) / (self.num_thresholds - 1) for i in range(self.num_thresholds - 2)]
        self._thresholds = tuple([-eps] + inner + [1.0 + eps])
        super().__init__(name=name)

    def update_state(self, y_true, y_pred, sample_weight=None, mask=None):
        super().update_state(y_true, torch.sigmoid(y_pred) if self.from_logits else y_pred, sample_weight, mask)

    def _from_counts(self, c):
        tp, fp, tn, fn = c
        y, x = _div(tp, tp + fn), _div(fp, fp + tn)   # recall, false-positive rate per threshold
        if self.summation_method == "interpolation":
            heights = (y[:-1] + y[1:]) / 2
        elif self.summation_method == "minoring":
            heights = torch.minimum(y[:-1], y[1:])
        else:
            heights = torch.maximum(y[:-1], y[1:])
        return float(((x[:-1] - x[1:]) * heights).sum())


# ---- plug-ins: torchmetrics objects and torch loss modules ---------------------------------------
def _is_torchmetrics_like(obj):
    return all(callable(getattr(obj, a, None)) for a in ("update", "compute", "reset")) and not isinstance(obj, dict)


class TorchMetric(Metric):
    """A torchmetrics metric (or any object with ``update(preds, target)``, ``compute()`` and
    ``reset()``), driven as torchmetrics defines it: ``update(preds=y_pred, target=y_true)``.

    Sequence outputs ``(B, T, C)`` with integer targets ``(B, T)`` are flattened to ``(B*T, C)`` /
    ``(B*T,)`` (torchmetrics' classification metrics want classes on axis 1); an output mask keeps
    the valid steps only.  Targets are passed as given: multiclass metrics want integer labels
    (use ``sparse_categorical_crossentropy``-style targets).  Under torch.distributed the metric
    syncs itself in ``compute()`` (torchmetrics' own all-gather), called on every rank together.
    torchmetrics takes no sample weights: use it in ``metrics=``, not ``weighted_metrics=``."""

    collective = True

    def __init__(self, metric, name=None):
        self.metric = metric
        self._device = None
        hib = getattr(metric, "higher_is_better", None)
        self.direction = "up" if hib else "down" if hib is False else None
        super().__init__(name=name or _snake_name(type(metric).__name__))

    def reset_state(self):
        self.metric.reset()

    def update_state(self, y_true, y_pred, sample_weight=None, mask=None):
        if sample_weight is not None:
            raise ValueError(f"Metric {self.name!r} ({type(self.metric).__name__}) takes no sample weights "
                             "(torchmetrics' update(preds, target)); list it in metrics=, not weighted_metrics=.")
        preds, target = y_pred.detach(), y_true
        if mask is not None:
            preds, target = preds[mask], target[mask]
        elif preds.dim() > 2 and target.dim() == preds.dim() - 1:
            preds, target = preds.reshape(-1, preds.shape[-1]), target.reshape(-1)
        if self._device != preds.device and hasattr(self.metric, "to"):
            self.metric = self.metric.to(preds.device)
            self._device = preds.device
        self.metric.update(preds, target)

    def result(self) -> float:
        with warnings.catch_warnings():   # compute() before any update (an empty epoch) warns
            warnings.simplefilter("ignore")
            value = self.metric.compute()
        value = torch.as_tensor(value)
        if value.numel() != 1:
            raise ValueError(f"Metric {self.name!r} ({type(self.metric).__name__}) computed a value of shape "
                             f"{tuple(value.shape)}; a compiled metric must give one number (e.g. average='micro' "
                             "or 'macro' rather than None).")
        return float(value)

    def sync_states(self):
        return []

    def result_from(self, states) -> float:
        return self.result()


class TorchLossMetric(Metric):
    """The running mean of a torch loss module's value (as a Keras loss used as a metric), called
    ``module(y_pred, y_true)``; see ``losses.TorchLoss``."""

    def __init__(self, module, name=None):
        self.loss = losses_mod.TorchLoss(module)
        super().__init__(name=name or self.loss.name)

    def update_state(self, y_true, y_pred, sample_weight=None, mask=None):
        value = self.loss(y_true, y_pred.detach(), sample_weight, mask)
        self._accumulate(value.reshape(1).expand(int(y_pred.shape[0])) if value.dim() == 0 else value)


def _snake_name(name):
    return "".join("_" + c.lower() if c.isupper() and i and not name[i - 1].isupper() else c.lower()
                   for i, c in enumerate(name))


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
    "auc": AUC, "precision": Precision, "recall": Recall,
    "top_k_categorical_accuracy": TopKCategoricalAccuracy,
    "sparse_top_k_categorical_accuracy": SparseTopKCategoricalAccuracy,
}
_KERAS_CLASSES = {   # keras.metrics objects rnnstate computes itself (arguments taken from get_config)
    "AUC": (AUC, ("num_thresholds", "curve", "summation_method", "from_logits")),
    "Precision": (Precision, ("thresholds",)), "Recall": (Recall, ("thresholds",)),
    "TopKCategoricalAccuracy": (TopKCategoricalAccuracy, ("k",)),
    "SparseTopKCategoricalAccuracy": (SparseTopKCategoricalAccuracy, ("k",)),
    "BinaryAccuracy": (BinaryAccuracy, ()), "CategoricalAccuracy": (CategoricalAccuracy, ()),
    "SparseCategoricalAccuracy": (SparseCategoricalAccuracy, ()),
    "MeanSquaredError": (MeanSquaredError, ()), "MeanAbsoluteError": (MeanAbsoluteError, ()),
}
_EXPECTED = ("a metric name, an rnnstate.metrics.Metric (or class), a function fn(y_true, y_pred), a torchmetrics "
             "metric (update(preds, target) / compute() / reset()), a torch loss module, or a keras.metrics object "
             f"of a class rnnstate computes ({', '.join(sorted(_KERAS_CLASSES))})")


def get(identifier, loss=None, output_shape=None):
    """A fresh ``Metric`` for ``identifier``: a name (``accuracy``/``acc`` resolved from ``loss``
    and ``output_shape``, the names above, or any loss name such as ``categorical_crossentropy``),
    a ``Metric`` (copied), a ``Metric`` class, a function ``fn(y_true, y_pred)``, a torchmetrics
    metric (copied; ``TorchMetric``), a torch loss module (``TorchLossMetric``) or a keras.metrics
    object of a class computed here.  Anything else raises: no metric object is read in a way it
    was not made for.  The metric is named after a string identifier as given (Keras behaviour)."""
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
    if isinstance(identifier, losses_mod.TorchLoss):
        return TorchLossMetric(identifier.module, name=identifier.name)
    if isinstance(identifier, losses_mod.Loss):
        return MeanMetricWrapper(identifier.call, name=identifier.name)
    if type(identifier).__module__.startswith("keras"):
        return _from_keras(identifier)
    if _is_torchmetrics_like(identifier):
        return TorchMetric(copy.deepcopy(identifier))
    if isinstance(identifier, torch.nn.modules.loss._Loss):
        return TorchLossMetric(identifier)
    if isinstance(identifier, (types.FunctionType, types.BuiltinFunctionType, types.MethodType, functools.partial)):
        return MeanMetricWrapper(identifier, name=getattr(identifier, "__name__", "metric"))
    if callable(identifier) and not isinstance(identifier, torch.nn.Module) and not any(
            hasattr(identifier, a) for a in ("update", "update_state", "compute", "result")):
        return MeanMetricWrapper(identifier, name=getattr(identifier, "__name__", None) or
                                 _snake_name(type(identifier).__name__))   # a callable object fn(y_true, y_pred)
    raise ValueError(f"Cannot use {identifier!r} (type {type(identifier).__module__}.{type(identifier).__name__}) as a "
                     f"metric: rnnstate would not know how to drive it. Expected {_EXPECTED}.")


def _from_keras(obj):
    entry = _KERAS_CLASSES.get(type(obj).__name__)
    if entry is None:
        raise ValueError(f"Cannot use the Keras metric {type(obj).__name__} in rnnstate: rnnstate computes its own "
                         f"metrics and has no equivalent for this one. Expected {_EXPECTED}.")
    cls, keys = entry
    cfg = obj.get_config()
    for key, default in (("top_k", None), ("class_id", None), ("multi_label", False), ("label_weights", None)):
        if cfg.get(key, default) != default:
            raise ValueError(f"Keras metric {type(obj).__name__}({key}={cfg[key]!r}) is not supported by rnnstate; "
                             f"only {', '.join(keys) or 'the default arguments'}.")
    kwargs = {k: cfg[k] for k in keys if k in cfg}
    if isinstance(kwargs.get("thresholds"), (list, tuple)):
        if len(kwargs["thresholds"]) != 1:
            raise ValueError(f"Keras metric {type(obj).__name__}: one threshold is supported; received "
                             f"{kwargs['thresholds']}.")
        kwargs["thresholds"] = kwargs["thresholds"][0]
    if "curve" in kwargs and not isinstance(kwargs["curve"], str):
        kwargs["curve"] = str(kwargs["curve"]).split(".")[-1]
    if "summation_method" in kwargs and not isinstance(kwargs["summation_method"], str):
        kwargs["summation_method"] = str(kwargs["summation_method"]).split(".")[-1].lower()
    return cls(name=cfg.get("name", None) or cls().name, **kwargs)
