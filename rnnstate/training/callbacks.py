"""Keras callbacks for the rnnstate training loop.

Hooks are Keras': ``on_{train,test,predict}_{begin,end}``, ``on_epoch_{begin,end}`` and
``on_{train,test,predict}_batch_{begin,end}`` (``on_batch_*`` are the train-batch aliases).
``self.model`` is the model being trained, ``self.params`` holds ``epochs``, ``steps`` and
``verbose``.  Batch hooks that a callback does not override cost nothing per step: the loop
only builds per-batch logs (which syncs metric values to Python floats) when some callback
overrides a batch hook.

Weights snapshots (``EarlyStopping(restore_best_weights=True)``) use the model's
``state_dict``; ``ModelCheckpoint`` calls ``model.save(path)`` / ``model.save_weights(path)``.

Under torch.distributed every rank runs the callbacks on the same (global) logs, so they decide
alike; only rank 0 prints, writes checkpoints and CSV rows.
"""

import csv
import math
import os
import warnings

import numpy as np
import torch

from . import distributed
from .optimizers import get_learning_rate, set_learning_rate

__all__ = ["Callback", "CallbackList", "History", "EarlyStopping", "ModelCheckpoint", "ReduceLROnPlateau",
           "CSVLogger", "LambdaCallback", "LearningRateScheduler", "TorchLRScheduler", "TerminateOnNaN"]


def _say(message):
    """Print a callback message (on rank 0 only under torch.distributed)."""
    if distributed.is_chief():
        print(message)


class Callback:
    def __init__(self):
        self.model = None
        self.params = {}

    def set_model(self, model):
        self.model = model

    def set_params(self, params):
        self.params = params

    def on_train_begin(self, logs=None): pass
    def on_train_end(self, logs=None): pass
    def on_epoch_begin(self, epoch, logs=None): pass
    def on_epoch_end(self, epoch, logs=None): pass
    def on_test_begin(self, logs=None): pass
    def on_test_end(self, logs=None): pass
    def on_predict_begin(self, logs=None): pass
    def on_predict_end(self, logs=None): pass
    def on_batch_begin(self, batch, logs=None): pass
    def on_batch_end(self, batch, logs=None): pass

    def on_train_batch_begin(self, batch, logs=None):
        self.on_batch_begin(batch, logs=logs)

    def on_train_batch_end(self, batch, logs=None):
        self.on_batch_end(batch, logs=logs)

    def on_test_batch_begin(self, batch, logs=None): pass
    def on_test_batch_end(self, batch, logs=None): pass
    def on_predict_batch_begin(self, batch, logs=None): pass
    def on_predict_batch_end(self, batch, logs=None): pass


def _overrides(cb, *names):
    wants = getattr(cb, "_wants_batch_hooks", None)   # a callback may say so itself
    if wants is not None:
        return bool(wants)
    return any(n in vars(cb) or getattr(type(cb), n, None) is not getattr(Callback, n) for n in names)


class CallbackList:
    """Calls a list of callbacks; batch hooks go only to callbacks that override them."""

    _BATCH = {"train": ("on_train_batch_begin", "on_train_batch_end", "on_batch_begin", "on_batch_end"),
              "test": ("on_test_batch_begin", "on_test_batch_end"),
              "predict": ("on_predict_batch_begin", "on_predict_batch_end")}

    def __init__(self, callbacks=None, model=None, params=None):
        self.callbacks = [TorchLRScheduler(cb) if _is_torch_scheduler(cb) else cb for cb in (callbacks or [])]
        for cb in self.callbacks:
            if not isinstance(cb, Callback):
                raise TypeError(f"callbacks must be Callback instances or torch.optim.lr_scheduler objects; received "
                                f"{cb!r} (type {type(cb).__name__}).")
            if model is not None:
                cb.set_model(model)
            if params is not None:
                cb.set_params(params)
        self._batch_cbs = {mode: [cb for cb in self.callbacks if _overrides(cb, *names)]
                           for mode, names in self._BATCH.items()}

    def wants_batch_logs(self, mode):
        return bool(self._batch_cbs[mode])

    def _call(self, name, *args):
        for cb in self.callbacks:
            getattr(cb, name)(*args)

    def batch(self, mode, when, step, logs):
        for cb in self._batch_cbs[mode]:
            getattr(cb, f"on_{mode}_batch_{when}")(step, logs)

    def on_train_begin(self, logs=None): self._call("on_train_begin", logs)
    def on_train_end(self, logs=None): self._call("on_train_end", logs)
    def on_epoch_begin(self, epoch, logs=None): self._call("on_epoch_begin", epoch, logs)
    def on_epoch_end(self, epoch, logs=None): self._call("on_epoch_end", epoch, logs)
    def on_test_begin(self, logs=None): self._call("on_test_begin", logs)
    def on_test_end(self, logs=None): self._call("on_test_end", logs)
    def on_predict_begin(self, logs=None): self._call("on_predict_begin", logs)
    def on_predict_end(self, logs=None): self._call("on_predict_end", logs)


class History(Callback):
    """Records epoch logs: ``history.history`` maps each log name to its per-epoch values and
    ``history.epoch`` lists the epoch indices."""

    def __init__(self):
        super().__init__()
        self.history = {}
        self.epoch = []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for k, v in (logs or {}).items():
            self.history.setdefault(k, []).append(v)


# ---- monitored-quantity callbacks ---------------------------------------------------------------
class _MonitorCallback(Callback):
    def __init__(self, monitor="val_loss", mode="auto", min_delta=0.0):
        super().__init__()
        if mode not in ("auto", "min", "max"):
            warnings.warn(f"{type(self).__name__} mode {mode!r} is unknown, falling back to 'auto'.", stacklevel=3)
            mode = "auto"
        self.monitor, self.mode, self.min_delta = monitor, mode, abs(min_delta)
        self._maximize = None

    def _set_direction(self):
        if self.mode != "auto":
            self._maximize = self.mode == "max"
            return
        name = self.monitor[4:] if self.monitor.startswith("val_") else self.monitor
        direction = None
        lookup = getattr(self.model, "_metric_direction", None)
        if callable(lookup):
            direction = lookup(name)
        if direction is None:
            direction = "up" if (name.endswith("acc") or name.endswith("accuracy") or name.endswith("auc")) else "down"
        self._maximize = direction == "up"

    def _is_improvement(self, value, reference, min_delta=None):
        if reference is None:
            return True
        if self._maximize is None:
            self._set_direction()
        delta = self.min_delta if min_delta is None else min_delta
        return value - delta > reference if self._maximize else value + delta < reference

    def _monitor_value(self, logs):
        value = (logs or {}).get(self.monitor)
        if value is None:
            warnings.warn(f"{type(self).__name__} is conditioned on metric `{self.monitor}` which is not available. "
                          f"Available metrics are: {','.join(logs or {})}.", stacklevel=3)
        return value


def _snapshot(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


class EarlyStopping(_MonitorCallback):
    """Stop training when ``monitor`` has not improved by more than ``min_delta`` for
    ``patience`` epochs (counted from ``start_from_epoch``).  ``baseline``: the value to beat.
    ``restore_best_weights``: at the end of training load the weights of the best epoch."""

    def __init__(self, monitor="val_loss", min_delta=0, patience=0, verbose=0, mode="auto", baseline=None,
                 restore_best_weights=False, start_from_epoch=0):
        super().__init__(monitor, mode, min_delta)
        self.patience, self.verbose, self.baseline = patience, verbose, baseline
        self.restore_best_weights, self.start_from_epoch = restore_best_weights, start_from_epoch
        self.on_train_begin()

    def on_train_begin(self, logs=None):
        self.wait, self.stopped_epoch, self.best, self.best_weights, self.best_epoch = 0, 0, None, None, 0

    def on_epoch_end(self, epoch, logs=None):
        current = self._monitor_value(logs)
        if current is None or epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights, self.best_epoch = _snapshot(self.model), epoch
        self.wait += 1
        if self._is_improvement(current, self.best):
            self.best, self.best_epoch = current, epoch
            if self.restore_best_weights:
                self.best_weights = _snapshot(self.model)
            if self.baseline is None or self._is_improvement(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose > 0:
            _say(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose > 0:
                _say(f"Restoring model weights from the end of the best epoch: {self.best_epoch + 1}.")
            self.model.load_state_dict(self.best_weights)


class ModelCheckpoint(_MonitorCallback):
    """Save the model (``model.save(path)``) or its weights (``model.save_weights(path)``) after
    every epoch, or every ``save_freq`` batches.  ``filepath`` may hold ``str.format`` fields:
    ``{epoch}`` (1-based) and any log name, e.g. ``"ckpt-{epoch:02d}-{val_loss:.2f}.keras"``.
    With ``save_best_only`` it saves only when ``monitor`` improves on the best value so far
    (starting from ``initial_value_threshold`` if given)."""

    def __init__(self, filepath, monitor="val_loss", verbose=0, save_best_only=False, save_weights_only=False,
                 mode="auto", save_freq="epoch", initial_value_threshold=None):
        super().__init__(monitor, mode)
        self.filepath = os.fspath(filepath)
        self.verbose, self.save_best_only, self.save_weights_only = verbose, save_best_only, save_weights_only
        if save_freq != "epoch" and not (isinstance(save_freq, int) and save_freq > 0):
            raise ValueError(f"Unrecognized save_freq: {save_freq!r}; expected 'epoch' or a positive integer.")
        self.save_freq = save_freq
        self._wants_batch_hooks = save_freq != "epoch"
        self.best = initial_value_threshold
        self._batches = 0
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.save_freq != "epoch":
            self._batches += 1
            if self._batches % self.save_freq == 0:
                self._save(self._epoch, batch, logs)

    def on_epoch_end(self, epoch, logs=None):
        if self.save_freq == "epoch":
            self._save(epoch, None, logs)

    def _save(self, epoch, batch, logs):
        logs = dict(logs or {})
        try:
            path = self.filepath.format(epoch=epoch + 1, batch=batch, **logs)
        except KeyError as e:
            raise KeyError(f"Failed to format the ModelCheckpoint filepath {self.filepath!r}: {e} is not an "
                           f"available key. Available keys: epoch, batch, {', '.join(logs)}.") from None
        if self.save_best_only:
            current = logs.get(self.monitor)
            if current is None:
                warnings.warn(f"Can save best model only with {self.monitor} available, skipping.", stacklevel=2)
                return
            if not self._is_improvement(current, self.best):
                if self.verbose > 0:
                    _say(f"\nEpoch {epoch + 1}: {self.monitor} did not improve from {self.best:.5f}")
                return
            if self.verbose > 0:
                _say(f"\nEpoch {epoch + 1}: {self.monitor} improved from {self.best} to {current:.5f}, "
                      f"saving model to {path}")
            self.best = current
        elif self.verbose > 0:
            _say(f"\nEpoch {epoch + 1}: saving model to {path}")
        if distributed.is_chief():
            parent = os.path.dirname(path)
            if parent:
                os.makedirs(parent, exist_ok=True)
            if self.save_weights_only:
                self.model.save_weights(path)
            else:
                self.model.save(path)
        distributed.barrier()   # the file exists for every rank once the callback returns


class ReduceLROnPlateau(_MonitorCallback):
    """Multiply the learning rate (every param group of the torch optimizer) by ``factor`` when
    ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs; then wait
    ``cooldown`` epochs; never go below ``min_lr``.  Adds ``learning_rate`` to the epoch logs."""

    def __init__(self, monitor="val_loss", factor=0.1, patience=10, verbose=0, mode="auto", min_delta=1e-4,
                 cooldown=0, min_lr=0.0, **kwargs):
        super().__init__(monitor, mode, min_delta)
        if factor >= 1.0:
            raise ValueError(f"ReduceLROnPlateau does not support a factor >= 1.0. Received factor={factor}")
        self.factor, self.patience, self.verbose = factor, patience, verbose
        self.cooldown, self.min_lr = cooldown, min_lr
        self.on_train_begin()

    def on_train_begin(self, logs=None):
        self.wait, self.cooldown_counter, self.best = 0, 0, None

    def _torch_opt(self):
        opt = self.model.optimizer
        return getattr(opt, "torch_optimizer", None) or opt

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        opt = self._torch_opt()
        logs["learning_rate"] = get_learning_rate(opt)
        current = self._monitor_value(logs)
        if current is None:
            return
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if self._is_improvement(current, self.best):
            self.best, self.wait = current, 0
        elif self.cooldown_counter <= 0:
            self.wait += 1
            if self.wait >= self.patience:
                old = get_learning_rate(opt)
                if old > np.float32(self.min_lr):
                    new = max(old * self.factor, self.min_lr)
                    set_learning_rate(opt, new)
                    if self.verbose > 0:
                        _say(f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {new}.")
                    self.cooldown_counter, self.wait = self.cooldown, 0


class LearningRateScheduler(Callback):
    """Set the learning rate at each epoch start to ``schedule(epoch, lr)`` (or ``schedule(epoch)``
    for a one-argument function, as Keras)."""

    def __init__(self, schedule, verbose=0):
        super().__init__()
        self.schedule, self.verbose = schedule, verbose

    def on_epoch_begin(self, epoch, logs=None):
        opt = getattr(self.model.optimizer, "torch_optimizer", None) or self.model.optimizer
        try:
            lr = self.schedule(epoch, get_learning_rate(opt))
        except TypeError:   # Keras: old-style schedule(epoch)
            lr = self.schedule(epoch)
        if not isinstance(lr, (int, float, np.floating, np.integer)) and not (
                isinstance(lr, torch.Tensor) and lr.numel() == 1):
            raise ValueError(f"LearningRateScheduler: the schedule must return a number; it returned {lr!r} for "
                             f"epoch {epoch}.")
        lr = float(lr)
        set_learning_rate(opt, lr)
        if self.verbose > 0:
            _say(f"\nEpoch {epoch + 1}: LearningRateScheduler setting learning rate to {lr}.")

    def on_epoch_end(self, epoch, logs=None):
        opt = getattr(self.model.optimizer, "torch_optimizer", None) or self.model.optimizer
        if logs is not None:
            logs["learning_rate"] = get_learning_rate(opt)


def _is_torch_scheduler(obj):
    sched = torch.optim.lr_scheduler
    return isinstance(obj, tuple(c for c in (getattr(sched, "LRScheduler", None), getattr(sched, "_LRScheduler", None),
                                             sched.ReduceLROnPlateau) if c is not None))


class TorchLRScheduler(Callback):
    """Step a ``torch.optim.lr_scheduler`` object during ``fit``: after every epoch
    (``step_every="epoch"``, the default, as torch's examples) or after every training batch
    (``step_every="batch"``; the default for ``OneCycleLR`` and ``CyclicLR``).  torch's
    ``ReduceLROnPlateau`` is stepped with the epoch log ``monitor`` (default ``"val_loss"``, else
    ``"loss"``).  A scheduler given directly in ``callbacks=[...]`` is wrapped in this callback.

    The scheduler must be built on the model's torch optimizer: compile with a
    ``torch.optim.Optimizer`` and build the scheduler on it, or build it on
    ``model.optimizer.torch_optimizer`` after ``compile``.  Adds ``learning_rate`` to the epoch logs."""

    def __init__(self, scheduler, step_every=None, monitor="val_loss"):
        super().__init__()
        if not _is_torch_scheduler(scheduler):
            raise TypeError(f"TorchLRScheduler expects a torch.optim.lr_scheduler object; received "
                            f"{type(scheduler).__name__}.")
        if step_every is None:
            step_every = "batch" if type(scheduler).__name__ in ("OneCycleLR", "CyclicLR") else "epoch"
        if step_every not in ("epoch", "batch"):
            raise ValueError(f"TorchLRScheduler: step_every must be 'epoch' or 'batch'; received {step_every!r}.")
        self.scheduler, self.step_every, self.monitor = scheduler, step_every, monitor
        self._plateau = isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)
        if self._plateau and step_every == "batch":
            raise ValueError("TorchLRScheduler: torch's ReduceLROnPlateau needs an epoch metric; use step_every='epoch'.")
        self._wants_batch_hooks = step_every == "batch"

    def _torch_opt(self):
        opt = self.model.optimizer
        return getattr(opt, "torch_optimizer", None) or opt

    def on_train_begin(self, logs=None):
        if self.scheduler.optimizer is not self._torch_opt():
            raise ValueError(f"The {type(self.scheduler).__name__} scheduler was built on a different optimizer than "
                             f"the model's ({type(self._torch_opt()).__name__}): build it on "
                             "model.optimizer.torch_optimizer after compile(), or compile with the torch optimizer "
                             "it was built on.")

    def on_train_batch_end(self, batch, logs=None):
        if self.step_every == "batch":
            self.scheduler.step()

    def on_epoch_end(self, epoch, logs=None):
        if self._plateau:
            key = self.monitor if logs and self.monitor in logs else "loss"
            self.scheduler.step((logs or {})[key])
        elif self.step_every == "epoch":
            self.scheduler.step()
        if logs is not None:
            logs["learning_rate"] = get_learning_rate(self._torch_opt())


class TerminateOnNaN(Callback):
    """Stop training as soon as a batch loss is NaN or infinite."""

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and (math.isnan(loss) or math.isinf(loss)):
            _say(f"Batch {batch}: Invalid loss, terminating training")
            self.model.stop_training = True


class CSVLogger(Callback):
    """Write one CSV row per epoch: ``epoch`` then the log names in sorted order (written once as
    a header).  ``append=True`` appends to an existing file without repeating the header.
    Values missing in an epoch (e.g. validation skipped by ``validation_freq``) are ``NA``."""

    def __init__(self, filename, separator=",", append=False):
        super().__init__()
        self.filename, self.sep, self.append = os.fspath(filename), separator, append
        self.keys, self.writer, self.csv_file = None, None, None
        self._append_header = True

    def on_train_begin(self, logs=None):
        self.keys, self.writer, self.csv_file = None, None, None
        if not distributed.is_chief():
            return   # rank 0 writes the (global) logs
        if self.append:
            self._append_header = not (os.path.exists(self.filename) and os.path.getsize(self.filename) > 0)
            mode = "a"
        else:
            self._append_header, mode = True, "w"
        self.csv_file = open(self.filename, mode, newline="", encoding="utf-8")
        self.writer, self.keys = None, None

    def on_epoch_end(self, epoch, logs=None):
        if self.csv_file is None:
            return
        logs = logs or {}
        if self.keys is None:
            self.keys = sorted(logs)
        if self.writer is None:
            self.writer = csv.DictWriter(self.csv_file, fieldnames=["epoch"] + self.keys, delimiter=self.sep)
            if self._append_header:
                self.writer.writeheader()
        row = {"epoch": epoch}
        for k in self.keys:
            v = logs.get(k, "NA")
            row[k] = v.item() if isinstance(v, (np.generic, torch.Tensor)) else v
        self.writer.writerow(row)
        self.csv_file.flush()

    def on_train_end(self, logs=None):
        if self.csv_file is not None:
            self.csv_file.close()
            self.csv_file, self.writer = None, None


class LambdaCallback(Callback):
    """A callback from plain functions: ``on_epoch_begin(epoch, logs)``, ``on_epoch_end(epoch,
    logs)``, ``on_train_begin(logs)``, ``on_train_end(logs)``, ``on_train_batch_begin(batch,
    logs)``, ``on_train_batch_end(batch, logs)`` and any other hook by name."""

    def __init__(self, on_epoch_begin=None, on_epoch_end=None, on_train_begin=None, on_train_end=None,
                 on_train_batch_begin=None, on_train_batch_end=None, **kwargs):
        super().__init__()
        hooks = dict(on_epoch_begin=on_epoch_begin, on_epoch_end=on_epoch_end, on_train_begin=on_train_begin,
                     on_train_end=on_train_end, on_train_batch_begin=on_train_batch_begin,
                     on_train_batch_end=on_train_batch_end, **kwargs)
        for name, fn in hooks.items():
            if fn is None:
                continue
            if not callable(getattr(Callback, name, None)):
                raise ValueError(f"LambdaCallback: unknown hook {name!r}.")
            setattr(self, name, fn)
