"""What ``compile`` resolves once: the loss, weight and metrics of each output, and the
standardization of ``x`` / ``y`` / ``sample_weight`` into flat per-input / per-output lists.

Outputs without a loss (and without metrics) need no targets: ``y`` may be a list with ``None``
for them, a dict that leaves them out, a list of only the needed targets, or a single array when
exactly one output needs a target.
"""

import torch

from . import losses as losses_mod
from . import metrics as metrics_mod
from .data import is_array_like, to_tensor

__all__ = ["CompiledSpec", "standardize_x", "x_labels", "class_weight_to_sample_weight"]


def _ident_name(loss):
    if loss is None:
        return "None"
    name = loss if isinstance(loss, str) else getattr(loss, "name", None) or getattr(loss, "__name__", None)
    return repr(name) if isinstance(name, str) else repr(loss)


class CompiledSpec:
    """Per-output losses/metrics of a compiled model plus the x/y/sample_weight standardizers."""

    def __init__(self, model, loss=None, loss_weights=None, metrics=None, weighted_metrics=None):
        self.input_names = list(model.input_names)
        self.input_dtypes = [getattr(t, "dtype", None) for t in model.inputs]
        self.output_names = list(model.output_names)
        if len(set(self.output_names)) != len(self.output_names):
            raise ValueError(f"Model output names must be unique; received {self.output_names}.")
        self.output_shapes = [tuple(getattr(t, "shape", ()) or ()) for t in model.outputs]
        n = len(self.output_names)
        self.user_loss = loss
        self.single_loss = loss is not None and not isinstance(loss, (list, tuple, dict)) and n > 1
        self.losses = [losses_mod.get(l) for l in self._per_output(loss, "loss")]
        self.loss_weights = self._resolve_loss_weights(loss_weights)
        self.loss_indices = [i for i, l in enumerate(self.losses) if l is not None]
        self.loss_entries = [(i, self.losses[i], self.loss_weights[i]) for i in self.loss_indices]
        # per-output loss logs ('<output>_loss') only when several outputs have a loss (Keras 3)
        self.loss_log_names = [f"{self.output_names[i]}_loss" for i in self.loss_indices] \
            if len(self.loss_indices) > 1 else []
        self.metric_entries = []   # (log name, Metric, output index, weighted)
        self._add_metrics(metrics, weighted=False)
        self._add_metrics(weighted_metrics, weighted=True)
        used = {e[2] for e in self.metric_entries}
        self.need_y = [self.losses[i] is not None or i in used for i in range(n)]

    # ---- per-output resolution ---------------------------------------------------------------
    def _per_output(self, value, what):
        names, n = self.output_names, len(self.output_names)
        if isinstance(value, dict):
            unknown = [k for k in value if k not in names]
            if unknown:
                raise ValueError(f"`{what}` has keys {unknown} that are not model outputs; the outputs are {names}.")
            return [value.get(name) for name in names]
        if isinstance(value, (list, tuple)):
            if len(value) != n:
                raise ValueError(f"`{what}` is a list of {len(value)} entries but the model has {n} outputs {names}. "
                                 f"Give one entry per output (None for outputs without a {what}, e.g. recurrent "
                                 f"states) or a dict {{output_name: {what}}}.")
            return list(value)
        return [value] * n

    def _resolve_loss_weights(self, loss_weights):
        n = len(self.output_names)
        if loss_weights is None:
            return [None] * n
        if isinstance(loss_weights, (int, float)):
            return [float(loss_weights)] * n
        with_loss = [i for i, l in enumerate(self.losses) if l is not None]
        if isinstance(loss_weights, (list, tuple)) and len(loss_weights) == len(with_loss) != n:
            out = [None] * n
            for i, w in zip(with_loss, loss_weights):
                out[i] = w
            return out
        return self._per_output(loss_weights, "loss_weights")

    def _add_metrics(self, metrics, weighted):
        if not metrics:
            return
        names, n = self.output_names, len(self.output_names)
        if n == 1:
            if isinstance(metrics, dict):
                metrics = self._per_output(metrics, "metrics")[0] or []
            per_output = [self._flatten(metrics)]
        elif isinstance(metrics, dict):
            per_output = [self._flatten(m) for m in self._per_output(metrics, "metrics")]
        elif isinstance(metrics, (list, tuple)) and len(metrics) == n:
            per_output = [self._flatten(m) for m in metrics]   # Keras 3: one entry per output
        else:
            # a flat list for a multi-output model: every output that has a loss gets it
            flat = self._flatten(metrics)
            per_output = [flat if self.losses[i] is not None else [] for i in range(n)]
        taken = {e[0] for e in self.metric_entries} | {"loss"} | set(self.loss_log_names)
        for i, idents in enumerate(per_output):
            for ident in idents:
                m = metrics_mod.get(ident, self.losses[i], self.output_shapes[i])
                base = ident if isinstance(ident, str) else m.name
                name = f"{names[i]}_{base}" if n > 1 else base
                if name in taken:
                    alt = f"{names[i]}_weighted_{base}" if n > 1 else f"weighted_{base}"
                    name = alt if weighted and alt not in taken else self._dedupe(name, taken)
                m.name = name
                taken.add(name)
                self.metric_entries.append((name, m, i, weighted))

    @staticmethod
    def _flatten(m):
        if m is None:
            return []
        if isinstance(m, (list, tuple)):
            return [x for x in m if x is not None]
        return [m]

    @staticmethod
    def _dedupe(name, taken):
        k = 1
        while f"{name}_{k}" in taken:
            k += 1
        return f"{name}_{k}"

    def log_names(self):
        return ["loss"] + self.loss_log_names + [e[0] for e in self.metric_entries]

    # ---- x -----------------------------------------------------------------------------------
    def standardize_x(self, x):
        return standardize_x(x, self.input_names, self.input_dtypes)

    def x_labels(self):
        return x_labels(self.input_names)

    # ---- y -----------------------------------------------------------------------------------
    def _need_text(self):
        return ", ".join(f"{self.output_names[i]!r} (loss {_ident_name(self.losses[i])})" if self.losses[i] is not None
                         else f"{self.output_names[i]!r} (metrics)" for i in range(len(self.output_names))
                         if self.need_y[i])

    def standardize_y(self, y, required=True):
        """A list with one tensor (or None) per output. ``required``: targets of outputs with a loss
        or metrics must be present."""
        names, n = self.output_names, len(self.output_names)
        need = [i for i in range(n) if self.need_y[i]]
        if y is None:
            if required and need:
                raise ValueError(f"Targets are missing: y is None, but outputs {self._need_text()} need targets.")
            return [None] * n
        if isinstance(y, dict):
            unknown = [k for k in y if k not in names]
            if unknown:
                raise ValueError(f"y has keys {unknown} that are not model outputs; the outputs are {names}.")
            ys = [y.get(k) for k in names]
        elif isinstance(y, (list, tuple)) and (n > 1 or all(v is None or is_array_like(v) for v in y)):
            if len(y) == n:
                ys = list(y)
            elif len(y) == len(need):
                ys = [None] * n
                for i, v in zip(need, y):
                    ys[i] = v
            else:
                raise ValueError(f"y is a list of {len(y)} targets, but the model has {n} outputs {names} of which "
                                 f"{len(need)} need targets: {self._need_text()}. Pass one target per output (None "
                                 "for outputs without a loss), only the needed targets, or a dict "
                                 "{output_name: target}.")
        else:
            if n == 1:
                ys = [y]
            elif len(need) == 1:
                ys = [None] * n
                ys[need[0]] = y
            elif self.single_loss:
                raise ValueError(
                    f"y is a single array, but compile() received the single loss {_ident_name(self.user_loss)}, "
                    f"which (as in Keras) applies to every one of the {n} outputs {names}, so each needs a target. "
                    f"If some outputs are recurrent states (return_state=True) or otherwise need no loss, compile "
                    f"with a dict such as loss={{{names[0]!r}: {_ident_name(self.user_loss)}}} or a list with None, "
                    f"e.g. loss=[{_ident_name(self.user_loss)}" + ", None" * (n - 1) + "]; otherwise pass one "
                    "target per output.")
            else:
                raise ValueError(f"y is a single array, but {len(need)} outputs need targets: {self._need_text()}. "
                                 "Pass a list (None for outputs without a loss) or a dict {output_name: target}.")
        out = []
        for i, v in enumerate(ys):
            if v is None:
                if required and self.need_y[i]:
                    has = "loss " + _ident_name(self.losses[i]) if self.losses[i] is not None else "metrics"
                    raise ValueError(f"Output {names[i]!r} needs a target (it has {has}), but its entry in y is "
                                     f"None. Outputs that need targets: {self._need_text()}.")
                out.append(None)
            elif not self.need_y[i]:
                out.append(None)   # a target for an output without loss or metrics is ignored
            else:
                out.append(to_tensor(v, what=self.y_labels()[i]))
        return out

    def y_labels(self):
        return ["y" if len(self.output_names) == 1 else f"y[{k!r}]" for k in self.output_names]

    # ---- sample weights ------------------------------------------------------------------------
    def standardize_sample_weight(self, sample_weight, ys, class_weight=None):
        n, names = len(self.output_names), self.output_names
        sws = None
        if sample_weight is not None:
            if isinstance(sample_weight, dict) or (isinstance(sample_weight, (list, tuple)) and n > 1
                                                   and len(sample_weight) == n and not
                                                   all(isinstance(v, (int, float)) for v in sample_weight)):
                sws = self._per_output(sample_weight, "sample_weight")
            else:
                sws = [sample_weight if self.losses[i] is not None else None for i in range(n)]
            sws = [None if w is None or not self.need_y[i] else to_tensor(w, torch.float32, "sample_weight")
                   for i, w in enumerate(sws)]
        if class_weight:
            if len(self.loss_indices) != 1:
                raise ValueError("class_weight is only supported for models with exactly one output that has a loss; "
                                 f"outputs with a loss: {[names[i] for i in self.loss_indices]}. Use sample_weight.")
            i = self.loss_indices[0]
            cw = class_weight_to_sample_weight(ys[i], class_weight)
            sws = sws or [None] * n
            sws[i] = cw if sws[i] is None else sws[i].reshape(sws[i].shape + (1,) * (cw.dim() - sws[i].dim())) * cw
        return sws


def x_labels(input_names):
    return ["x"] if len(input_names) == 1 else [f"x[{k!r}]" for k in input_names]


def standardize_x(x, input_names, input_dtypes):
    """A list with one tensor per model input from an array, a list/tuple or a dict by name."""
    names, n = list(input_names), len(input_names)
    if x is None:
        raise ValueError(f"No input data: x is None, but the model expects {n} input(s) {names}.")
    if isinstance(x, dict):
        unknown = [k for k in x if k not in names]
        missing = [k for k in names if k not in x]
        if unknown or missing:
            raise ValueError(f"x is a dict with keys {list(x)}, but the model inputs are {names}"
                             + (f"; unknown keys: {unknown}" if unknown else "")
                             + (f"; missing inputs: {missing}" if missing else "") + ".")
        values = [x[k] for k in names]
    elif isinstance(x, (list, tuple)) and (n > 1 or all(is_array_like(v) for v in x)):
        if len(x) != n:
            raise ValueError(f"The model expects {n} input(s) {names}, but x is a list of {len(x)} arrays.")
        values = list(x)
    else:
        if n != 1:
            raise ValueError(f"The model has {n} inputs {names}, but x is a single array; pass a list of {n} "
                             "arrays or a dict {input_name: array}.")
        values = [x]
    return [to_tensor(v, dt, what=label) for v, dt, label in zip(values, input_dtypes, x_labels(names))]


def class_weight_to_sample_weight(y, class_weight):
    """Per-sample (per-time-step for sequences) weights from ``{class_index: weight}``; labels are
    the argmax of one-hot targets or the integer targets themselves; unlisted classes weigh 1."""
    if y.dim() > 1 and y.shape[-1] != 1:
        labels = y.argmax(dim=-1)
    else:
        labels = y.squeeze(-1) if y.dim() > 1 else y
        labels = torch.round(labels.double()).long() if labels.is_floating_point() else labels.long()
    size = max(int(labels.max()) + 1 if labels.numel() else 1, max(int(k) for k in class_weight) + 1)
    table = torch.ones(size, dtype=torch.float32)
    for k, w in class_weight.items():
        table[int(k)] = float(w)
    return table.to(labels.device)[labels.clamp_min(0)]
