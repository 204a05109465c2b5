"""Keras losses on torch tensors.

Functions (``mean_squared_error(y_true, y_pred)``, ...) return the *per-sample* loss: reduced
over the last axis only, so ``(batch,)`` for ``(batch, features)`` outputs and ``(batch, time)``
for sequence outputs.  ``Loss`` objects add Keras' reduction: ``"sum_over_batch_size"``
(default; sum of the weighted per-sample losses divided by their *number*, not by the sum of
weights), ``"sum"``, ``"mean"``, ``"mean_with_sample_weight"`` or ``None``/``"none"``.
``sample_weight`` has one weight per sample (or per sample and time step); a ``(batch,)``
weight on a ``(batch, time)`` loss is broadcast over time.

Crossentropies on probabilities follow Keras numerically: probabilities are renormalized to sum
to one (categorical) and clipped to ``[1e-7, 1 - 1e-7]`` before the log; ``from_logits=True``
uses log-softmax / log-sigmoid instead.
"""

import copy
import math

import torch
import torch.nn.functional as F

EPSILON = 1e-7

__all__ = ["Loss", "LossFunctionWrapper", "MeanSquaredError", "MeanAbsoluteError", "MeanAbsolutePercentageError",
           "MeanSquaredLogarithmicError", "CategoricalCrossentropy", "SparseCategoricalCrossentropy",
           "BinaryCrossentropy", "Huber", "KLDivergence", "Poisson", "LogCosh", "CosineSimilarity",
           "mean_squared_error", "mean_absolute_error", "mean_absolute_percentage_error",
           "mean_squared_logarithmic_error", "categorical_crossentropy", "sparse_categorical_crossentropy",
           "binary_crossentropy", "huber", "kl_divergence", "poisson", "log_cosh", "cosine_similarity",
           "TorchLoss", "get", "reduce_weighted_values"]


# ---- helpers --------------------------------------------------------------------------------------
def _as_float(y_true, y_pred):
    if not isinstance(y_pred, torch.Tensor):
        y_pred = torch.as_tensor(y_pred, dtype=torch.float32)
    if not isinstance(y_true, torch.Tensor):
        y_true = torch.as_tensor(y_true)
    if y_pred.dtype in (torch.bfloat16, torch.float16):     # Keras: a loss computes in floatx (float32), so
        y_pred = y_pred.float()                             # mixed-precision outputs are upcast first
    if y_true.dtype != y_pred.dtype:
        y_true = y_true.to(y_pred.dtype)
    return y_true, y_pred


def _same_rank(a, b):
    """Keras' squeeze_or_expand_to_same_rank for ranks that differ by one with a trailing 1."""
    if a.dim() == b.dim() + 1 and a.shape[-1] == 1:
        return (a.squeeze(-1), b) if b.dim() != 1 else (a, b.unsqueeze(-1))
    if b.dim() == a.dim() + 1 and b.shape[-1] == 1:
        return (a, b.squeeze(-1)) if a.dim() != 1 else (a.unsqueeze(-1), b)
    return a, b


def _regression(y_true, y_pred):
    y_true, y_pred = _as_float(y_true, y_pred)
    return _same_rank(y_true, y_pred)


# ---- per-sample loss functions --------------------------------------------------------------------
def mean_squared_error(y_true, y_pred):
    y_true, y_pred = _regression(y_true, y_pred)
    return torch.square(y_pred - y_true).mean(dim=-1)


def mean_absolute_error(y_true, y_pred):
    y_true, y_pred = _regression(y_true, y_pred)
    return torch.abs(y_pred - y_true).mean(dim=-1)


def mean_absolute_percentage_error(y_true, y_pred):
    y_true, y_pred = _regression(y_true, y_pred)
    return 100.0 * (torch.abs(y_true - y_pred) / torch.abs(y_true).clamp_min(EPSILON)).mean(dim=-1)


def mean_squared_logarithmic_error(y_true, y_pred):
    y_true, y_pred = _regression(y_true, y_pred)
    return torch.square(torch.log1p(y_pred.clamp_min(EPSILON)) - torch.log1p(y_true.clamp_min(EPSILON))).mean(dim=-1)


def huber(y_true, y_pred, delta=1.0):
    y_true, y_pred = _regression(y_true, y_pred)
    return F.huber_loss(y_pred, y_true, reduction="none", delta=float(delta)).mean(dim=-1)


def log_cosh(y_true, y_pred):
    y_true, y_pred = _regression(y_true, y_pred)
    x = y_pred - y_true
    return (x + F.softplus(-2.0 * x) - math.log(2.0)).mean(dim=-1)


def kl_divergence(y_true, y_pred):
    y_true, y_pred = _as_float(y_true, y_pred)
    y_true = y_true.clamp(EPSILON, 1.0)
    y_pred = y_pred.clamp(EPSILON, 1.0)
    return (y_true * torch.log(y_true / y_pred)).sum(dim=-1)


def poisson(y_true, y_pred):
    y_true, y_pred = _as_float(y_true, y_pred)
    return (y_pred - y_true * torch.log(y_pred + EPSILON)).mean(dim=-1)


def cosine_similarity(y_true, y_pred, axis=-1):
    y_true, y_pred = _regression(y_true, y_pred)
    return -(F.normalize(y_true, dim=axis, eps=1e-12) * F.normalize(y_pred, dim=axis, eps=1e-12)).sum(dim=axis)


def _log_probs(y_pred, from_logits, axis=-1):
    if from_logits:
        return F.log_softmax(y_pred, dim=axis)
    probs = y_pred / y_pred.sum(dim=axis, keepdim=True)
    return probs.clamp(EPSILON, 1.0 - EPSILON).log()


def categorical_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    y_true, y_pred = _as_float(y_true, y_pred)
    if y_true.shape != y_pred.shape:
        raise ValueError("categorical_crossentropy expects one-hot targets shaped like the predictions; received "
                         f"y_true.shape={tuple(y_true.shape)}, y_pred.shape={tuple(y_pred.shape)}. "
                         "For integer class labels use 'sparse_categorical_crossentropy'.")
    if label_smoothing:
        y_true = y_true * (1.0 - label_smoothing) + label_smoothing / y_true.shape[axis]
    return -(y_true * _log_probs(y_pred, from_logits, axis)).sum(dim=axis)


def sparse_categorical_crossentropy(y_true, y_pred, from_logits=False, ignore_class=None, axis=-1):
    if not isinstance(y_true, torch.Tensor):
        y_true = torch.as_tensor(y_true)
    if y_true.dim() == y_pred.dim() and y_true.shape[-1] == 1:
        y_true = y_true.squeeze(-1)
    if tuple(y_true.shape) != tuple(y_pred.shape[:-1]):
        raise ValueError("sparse_categorical_crossentropy expects integer labels shaped like the predictions without "
                         f"their last (class) axis; received y_true.shape={tuple(y_true.shape)}, "
                         f"y_pred.shape={tuple(y_pred.shape)}. For one-hot targets use 'categorical_crossentropy'.")
    labels = y_true.long()
    valid = None
    if ignore_class is not None:
        valid = labels != int(ignore_class)
        labels = torch.where(valid, labels, torch.zeros_like(labels))
    log_probs = _log_probs(y_pred, from_logits, axis)
    out = -log_probs.gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    if valid is not None:
        out = torch.where(valid, out, torch.zeros_like(out))
    return out


def binary_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    y_true, y_pred = _as_float(y_true, y_pred)
    if y_true.shape != y_pred.shape:
        y_true, y_pred = _same_rank(y_true, y_pred)
    if label_smoothing:
        y_true = y_true * (1.0 - label_smoothing) + 0.5 * label_smoothing
    if from_logits:
        per_element = F.binary_cross_entropy_with_logits(y_pred, y_true, reduction="none")
    else:
        per_element = F.binary_cross_entropy(y_pred.clamp(EPSILON, 1.0 - EPSILON), y_true, reduction="none")
    return per_element.mean(dim=axis)


# ---- reduction ------------------------------------------------------------------------------------
_REDUCTIONS = ("sum_over_batch_size", "sum", "mean", "mean_with_sample_weight", "none", None)


def reduce_weighted_values(values, sample_weight=None, mask=None, reduction="sum_over_batch_size"):
    """Weight per-sample ``values`` and reduce them like Keras."""
    if reduction not in _REDUCTIONS:
        raise ValueError(f"Invalid reduction {reduction!r}; expected one of {list(_REDUCTIONS)}.")
    if mask is not None:
        mask = mask.to(values.dtype)
        if reduction in ("mean", "sum_over_batch_size"):   # average over the valid entries only
            mask = mask * (mask.numel() / mask.sum().clamp_min(1e-12))
        sample_weight = mask if sample_weight is None else _broadcast_weight(sample_weight, mask) * mask
    if sample_weight is not None:
        values = values * _broadcast_weight(sample_weight, values)
    if reduction is None or reduction == "none" or values.dim() == 0:
        return values
    if sample_weight is None and reduction in ("sum_over_batch_size", "mean"):
        return values.mean()
    total = values.sum()
    if reduction == "sum":
        return total
    if reduction == "mean_with_sample_weight" and sample_weight is not None:
        return total / _broadcast_weight(sample_weight, values).expand_as(values).sum()
    return total / max(values.numel(), 1)


def _broadcast_weight(weight, values):
    if not isinstance(weight, torch.Tensor):
        weight = torch.as_tensor(weight, dtype=values.dtype, device=values.device)
    weight = weight.to(values.dtype)
    if weight.dim() == values.dim() + 1 and weight.shape[-1] == 1:
        weight = weight.squeeze(-1)
    while weight.dim() < values.dim():
        weight = weight.unsqueeze(-1)
    return weight


# ---- Loss classes ---------------------------------------------------------------------------------
class Loss:
    """Base class: subclasses implement ``call(y_true, y_pred)`` returning per-sample losses."""

    def __init__(self, name=None, reduction="sum_over_batch_size"):
        if reduction not in _REDUCTIONS:
            raise ValueError(f"Invalid reduction {reduction!r}; expected one of {list(_REDUCTIONS)}.")
        self.name = name or _snake(type(self).__name__)
        self.reduction = reduction

    def call(self, y_true, y_pred):
        raise NotImplementedError

    def compute_mask(self, y_true, y_pred):
        """Entries to average over (None: all). Used by ``ignore_class``."""
        return None

    def __call__(self, y_true, y_pred, sample_weight=None, mask=None):
        """`mask`: the prediction's mask (e.g. (B, T) after an ``Embedding(mask_zero=True)``); masked
        entries are left out and the mean is over the valid ones (Keras 3)."""
        values = self.call(y_true, y_pred)
        own = self.compute_mask(y_true, y_pred)
        if mask is not None:
            own = mask if own is None else (own & mask)
        return reduce_weighted_values(values, sample_weight, own, self.reduction)

    def get_config(self):
        return {"name": self.name, "reduction": self.reduction}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"{type(self).__name__}(name={self.name!r})"


class LossFunctionWrapper(Loss):
    """A ``fn(y_true, y_pred, **kwargs) -> per-sample losses`` made into a ``Loss``."""

    def __init__(self, fn, name=None, reduction="sum_over_batch_size", **kwargs):
        super().__init__(name=name or getattr(fn, "__name__", None), reduction=reduction)
        self.fn, self._fn_kwargs = fn, kwargs

    def call(self, y_true, y_pred):
        if not isinstance(y_pred, torch.Tensor):
            y_pred = torch.as_tensor(y_pred, dtype=torch.float32)
        if not isinstance(y_true, torch.Tensor):
            y_true = torch.as_tensor(y_true)
        y_true, y_pred = _same_rank(y_true, y_pred)   # as Keras' wrapper: (B,) targets for (B, 1) outputs
        return self.fn(y_true, y_pred, **self._fn_kwargs)

    def get_config(self):
        return {**super().get_config(), **self._fn_kwargs}


def _wrapper_class(class_name, fn, default_name, arg_names=()):
    def __init__(self, *args, reduction="sum_over_batch_size", name=default_name, **kwargs):
        kwargs.update(dict(zip(arg_names, args)))
        LossFunctionWrapper.__init__(self, fn, name=name, reduction=reduction, **kwargs)
    doc = f"Keras ``{class_name}`` loss (per-sample function: ``{fn.__name__}``)."
    return type(class_name, (LossFunctionWrapper,), {"__init__": __init__, "__doc__": doc})


MeanSquaredError = _wrapper_class("MeanSquaredError", mean_squared_error, "mean_squared_error")
MeanAbsoluteError = _wrapper_class("MeanAbsoluteError", mean_absolute_error, "mean_absolute_error")
MeanAbsolutePercentageError = _wrapper_class("MeanAbsolutePercentageError", mean_absolute_percentage_error,
                                             "mean_absolute_percentage_error")
MeanSquaredLogarithmicError = _wrapper_class("MeanSquaredLogarithmicError", mean_squared_logarithmic_error,
                                             "mean_squared_logarithmic_error")
CategoricalCrossentropy = _wrapper_class("CategoricalCrossentropy", categorical_crossentropy,
                                         "categorical_crossentropy", ("from_logits", "label_smoothing", "axis"))
BinaryCrossentropy = _wrapper_class("BinaryCrossentropy", binary_crossentropy, "binary_crossentropy",
                                    ("from_logits", "label_smoothing", "axis"))
Huber = _wrapper_class("Huber", huber, "huber_loss", ("delta",))
KLDivergence = _wrapper_class("KLDivergence", kl_divergence, "kl_divergence")
Poisson = _wrapper_class("Poisson", poisson, "poisson")
LogCosh = _wrapper_class("LogCosh", log_cosh, "log_cosh")
CosineSimilarity = _wrapper_class("CosineSimilarity", cosine_similarity, "cosine_similarity", ("axis",))


class SparseCategoricalCrossentropy(LossFunctionWrapper):
    """Keras ``SparseCategoricalCrossentropy(from_logits=False, ignore_class=None)``; with
    ``ignore_class`` those targets get zero loss and the mean is over the other entries."""

    def __init__(self, from_logits=False, ignore_class=None, reduction="sum_over_batch_size",
                 name="sparse_categorical_crossentropy", axis=-1):
        super().__init__(sparse_categorical_crossentropy, name=name, reduction=reduction,
                         from_logits=from_logits, ignore_class=ignore_class, axis=axis)
        self.ignore_class = ignore_class

    def compute_mask(self, y_true, y_pred):
        if self.ignore_class is None:
            return None
        y_true = torch.as_tensor(y_true)
        if y_true.dim() == y_pred.dim() and y_true.shape[-1] == 1:
            y_true = y_true.squeeze(-1)
        return y_true.long() != int(self.ignore_class)


class TorchLoss(Loss):
    """A torch loss module (``nn.CrossEntropyLoss()``, ``nn.MSELoss()``, any ``nn.Module`` loss)
    called as torch defines it: ``module(input=y_pred, target=y_true)``.

    Keras' layout is adapted to torch's where they differ, nothing else:

    * ``CrossEntropyLoss`` / ``NLLLoss`` on sequence outputs ``(B, T, C)``: the class axis moves to
      axis 1 (torch wants ``(B, C, T)``); integer labels ``(B, T)`` (sparse, as Keras'
      ``sparse_categorical_crossentropy``) or one-hot/probability targets ``(B, T, C)`` (as
      ``categorical_crossentropy``) both work, as torch allows; labels given as floats become
      int64 and a trailing label axis of 1 is dropped.  The model output must be logits for
      ``CrossEntropyLoss`` (torch applies log-softmax) and log-probabilities for ``NLLLoss``.
    * other losses: a ``(B,)`` target for a ``(B, 1)`` output (or the reverse) is reshaped to the
      output's shape instead of broadcasting to ``(B, B)``, and integer targets become the
      output's dtype.

    With ``sample_weight`` (or an output mask) the module runs with ``reduction="none"`` (on a
    copy) and the per-element losses are weighted and averaged like a Keras loss
    (``sum(w * loss) / count``; ``reduction="sum"`` modules are summed).
    """

    _CLASS_INDEX = ("CrossEntropyLoss", "NLLLoss", "MultiMarginLoss", "MultiLabelMarginLoss")

    def __init__(self, module, name=None):
        if not isinstance(module, torch.nn.Module) or not callable(module):
            raise TypeError(f"TorchLoss expects a torch.nn.Module loss; received {type(module).__name__}.")
        self.module = module
        super().__init__(name=name or _snake(type(module).__name__))

    def _prepare(self, y_true, y_pred):
        target = y_true if isinstance(y_true, torch.Tensor) else torch.as_tensor(y_true)
        pred = y_pred
        kind = type(self.module).__name__
        if kind in ("CrossEntropyLoss", "NLLLoss"):
            if target.dim() == pred.dim() and target.shape[-1] == 1 and pred.shape[-1] != 1:
                target = target.squeeze(-1)
            if target.dim() == pred.dim() - 1 and target.is_floating_point():
                target = target.long()
            if pred.dim() > 2:
                pred = pred.movedim(-1, 1)
                if target.dim() == y_pred.dim():
                    target = target.movedim(-1, 1)
            return pred, target
        if kind not in self._CLASS_INDEX:
            target, pred = _same_rank(target, pred)
            if pred.is_floating_point() and not target.is_floating_point():
                target = target.to(pred.dtype)
        return pred, target

    def __call__(self, y_true, y_pred, sample_weight=None, mask=None):
        pred, target = self._prepare(y_true, y_pred)
        if sample_weight is None and mask is None:
            return self.module(pred, target)
        reduction = getattr(self.module, "reduction", None)
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(f"Loss {self.name!r} ({type(self.module).__name__}): sample weights and masks need a "
                             "torch loss with a `reduction` attribute ('mean', 'sum' or 'none') so that "
                             f"per-element losses can be weighted; this module has reduction={reduction!r}.")
        per_element = copy.copy(self.module)
        per_element.reduction = "none"
        values = per_element(pred, target)   # (B,) or (B, T) for class losses, else the output's shape
        return reduce_weighted_values(values, sample_weight, mask,
                                      "sum" if reduction == "sum" else "sum_over_batch_size")

    def get_config(self):
        return {"name": self.name, "module": repr(self.module)}

    def __repr__(self):
        return f"TorchLoss({self.module!r})"


def _snake(name):
    return "".join("_" + c.lower() if c.isupper() and i else c.lower() for i, c in enumerate(name))


_ALIASES = {
    "mse": MeanSquaredError, "mean_squared_error": MeanSquaredError,
    "mae": MeanAbsoluteError, "mean_absolute_error": MeanAbsoluteError,
    "mape": MeanAbsolutePercentageError, "mean_absolute_percentage_error": MeanAbsolutePercentageError,
    "msle": MeanSquaredLogarithmicError, "mean_squared_logarithmic_error": MeanSquaredLogarithmicError,
    "categorical_crossentropy": CategoricalCrossentropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
    "binary_crossentropy": BinaryCrossentropy,
    "huber": Huber, "huber_loss": Huber,
    "kld": KLDivergence, "kl_divergence": KLDivergence, "kullback_leibler_divergence": KLDivergence,
    "poisson": Poisson, "log_cosh": LogCosh, "logcosh": LogCosh,
    "cosine_similarity": CosineSimilarity,
}
_BY_CLASS = {cls.__name__: cls for cls in set(_ALIASES.values())}
FUNCTIONS = {
    "mse": mean_squared_error, "mean_squared_error": mean_squared_error,
    "mae": mean_absolute_error, "mean_absolute_error": mean_absolute_error,
    "mape": mean_absolute_percentage_error, "msle": mean_squared_logarithmic_error,
    "categorical_crossentropy": categorical_crossentropy,
    "sparse_categorical_crossentropy": sparse_categorical_crossentropy,
    "binary_crossentropy": binary_crossentropy, "huber": huber, "kld": kl_divergence,
    "kl_divergence": kl_divergence, "poisson": poisson, "log_cosh": log_cosh, "logcosh": log_cosh,
    "cosine_similarity": cosine_similarity,
}


def get(identifier):
    """Resolve a loss: a name (Keras names and aliases, case-insensitive), a ``Loss`` instance or
    class, a ``keras.losses`` object of a class defined here (its config is copied), a torch loss
    module (``nn.CrossEntropyLoss()``..., called as ``module(y_pred, y_true)``: ``TorchLoss``), or a callable
    ``fn(y_true, y_pred) -> per-sample losses``.  ``None`` gives ``None``."""
    if identifier is None or isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, str):
        cls = _ALIASES.get(identifier.lower()) or _BY_CLASS.get(identifier) or _ALIASES.get(_snake(identifier))
        if cls is None:
            raise ValueError(f"Unknown loss {identifier!r}. Known names: {sorted(_ALIASES)}; "
                             "or pass a Loss object or a function fn(y_true, y_pred).")
        loss = cls()
        loss.name = identifier
        return loss
    if isinstance(identifier, type) and issubclass(identifier, Loss):
        return identifier()
    if type(identifier).__module__.startswith("keras") and hasattr(identifier, "get_config"):
        return _from_keras(identifier)
    if isinstance(identifier, torch.nn.Module):
        return TorchLoss(identifier)
    if callable(identifier):
        return LossFunctionWrapper(identifier)
    raise ValueError(f"Could not interpret loss identifier: {identifier!r} (type {type(identifier).__name__}).")


def _from_keras(obj):
    cls = _BY_CLASS.get(type(obj).__name__)
    if cls is None:
        raise ValueError(f"No torch equivalent for the Keras loss {type(obj).__name__}; known: {sorted(_BY_CLASS)}.")
    cfg = {**obj.get_config(), **getattr(obj, "_fn_kwargs", {})}
    return cls(**{k: v for k, v in cfg.items() if k != "dtype"})
