"""``TrainingMixin``: Keras' compile / fit / evaluate / predict on torch.

Wiring: ``class Model(TrainingMixin, Layer)`` where ``Layer`` is a ``torch.nn.Module``.  The mixin
relies only on ``self._run_graph(inputs, training) -> list of output tensors``, ``input_names``,
``output_names``, ``inputs`` / ``outputs`` (symbolic tensors with ``.shape`` and ``.dtype``), the
``nn.Module`` API, and for ``ModelCheckpoint`` ``save`` / ``save_weights``.  Optional: a method
``_regularization_losses()`` returning scalar tensors to add to the loss at each training step.

A training step is: ``zero_grad(set_to_none=True)``; ``outputs = _run_graph(inputs,
training=True)``; ``total = sum(weight * loss)``; ``backward``; ``step``; metric states updated
with detached tensors (synced to Python floats only for display, batch callbacks that need logs,
and epoch ends).  After ``fit``/``evaluate``/``predict`` the model is left in ``eval()`` mode.
``predict`` runs under ``torch.inference_mode()``, evaluation under ``torch.no_grad()``.
"""

import numbers
import warnings

import torch

from .. import _checks
from . import distributed
from . import feed
from . import metrics as metrics_mod
from . import optimizers as optimizers_mod
from .callbacks import CallbackList, History
from .compile_utils import CompiledSpec, standardize_x, x_labels
from .data import ArrayBatches, IterableBatches, check_cardinality, is_batch_iterable, unpack_batch
from .progress import Progress, resolve_verbose

__all__ = ["TrainingMixin"]


class TrainingMixin:
    """Keras training API for a torch model (see the module docstring for the contract)."""

    stop_training = False
    history = None
    optimizer = None
    compiled = False
    _compiled_spec = None

    # ---- compile -------------------------------------------------------------------------------
    def compile(self, optimizer="rmsprop", loss=None, loss_weights=None, metrics=None, weighted_metrics=None,
                run_eagerly=None, jit_compile=None, *, steps_per_execution=1, auto_scale_loss=True):
        """Configure training.  ``optimizer``: a name (Keras defaults), an
        ``rnnstate.training.optimizers`` object or a ``torch.optim.Optimizer``.  ``loss``: one loss
        (applied to every output, as in Keras), a list with one entry per output or a dict by
        output name; ``None`` entries (or names left out of the dict) mark outputs without a loss,
        which then need no targets.  ``metrics`` / ``weighted_metrics``: a list (for several
        outputs: applied to each output that has a loss), a list with one entry per output, or a
        dict by output name.  ``run_eagerly``, ``jit_compile``, ``steps_per_execution`` and
        ``auto_scale_loss`` are accepted for compatibility; execution is always eager torch."""
        _checks.loss_weights(self, loss_weights)
        spec = CompiledSpec(self, loss, loss_weights, metrics, weighted_metrics)   # validates first
        opt = optimizers_mod.get(optimizer)
        params = list(self.parameters())
        if opt.built:
            own = {id(p) for p in params}
            if any(id(p) not in own for p in opt._params):
                raise ValueError(f"The optimizer {opt.name!r} is already bound to parameters that do not belong to "
                                 "this model; pass a new optimizer (or a name) to compile().")
        elif params:
            opt.build(params)
        self.optimizer = opt
        self.loss, self.loss_weights = loss, loss_weights
        self._compile_args = {"loss": loss, "loss_weights": loss_weights, "metrics": metrics,
                              "weighted_metrics": weighted_metrics}     # saved with the model (native files)
        self._compiled_spec = spec
        self._loss_tracker = metrics_mod.Mean(name="loss")
        self._output_loss_trackers = [metrics_mod.Mean(name=n) for n in spec.loss_log_names]
        self.compiled = True

    def _spec(self, what):
        spec = self._compiled_spec
        if spec is None:
            raise RuntimeError(f"You must call compile() before {what}().")
        if not spec.loss_entries:
            raise ValueError(f"{what}() needs a loss, but compile() received loss={spec.user_loss!r} (no output has a "
                             f"loss). Outputs: {spec.output_names}.")
        return spec

    @property
    def metrics_names(self):
        return self._compiled_spec.log_names() if self._compiled_spec is not None else []

    def _metric_direction(self, name):
        """'up'/'down' for a log name (used by callbacks in mode='auto'); None if unknown."""
        spec = self._compiled_spec
        if name == "loss" or (spec is not None and name in spec.loss_log_names):
            return "down"
        for log_name, m, _, _ in (spec.metric_entries if spec is not None else ()):
            if log_name == name:
                return getattr(m, "direction", None)
        return None

    def reset_metrics(self):
        if self._compiled_spec is None:
            return
        self._loss_tracker.reset_state()
        for t in self._output_loss_trackers:
            t.reset_state()
        for _, m, _, _ in self._compiled_spec.metric_entries:
            m.reset_state()

    def _trackers(self):
        return ([("loss", self._loss_tracker)] + [(t.name, t) for t in self._output_loss_trackers]
                + [(name, m) for name, m, _, _ in self._compiled_spec.metric_entries])

    def _logs(self, local=False):
        """Current loss and metric values; under torch.distributed the global ones (a collective
        call: every rank must ask), unless ``local`` (this rank's, for the progress bar)."""
        world = distributed.world()
        if world is not None and not local:
            return distributed.reduce_logs(self._trackers())
        return {name: m.result() for name, m in self._trackers() if world is None or not m.collective}

    # ---- data --------------------------------------------------------------------------------
    def _device(self):
        dev = self.__dict__.get("_device_cache", False)    # cached as Layer does (no per-call module walk);
        if dev is False:                                   # no getattr(super(), ...): torch.compile reads this
            dev = self.__dict__["_device_cache"] = next((p.device for p in self.parameters()), None)
        return dev if dev is not None else torch.device("cpu")

    # ---- steps -------------------------------------------------------------------------------
    def _forward(self, xs, training):
        """The outputs, and their masks (None, or a list with None where an output is unmasked)."""
        ddp = distributed.runner(self) if training else None
        if ddp is not None:
            return distributed.forward(ddp, self, xs, training)
        if getattr(self, "_masking", False):
            masks = []
            outs = self._run_graph(xs, training=training, output_masks=masks)
            masks = masks if any(m is not None for m in masks) else None
        else:
            outs, masks = self._run_graph(xs, training=training), None
        if isinstance(outs, torch.Tensor):
            outs = [outs]
        return list(outs), masks

    def _compute_loss(self, spec, ys, outs, sws, masks=None):
        if len(outs) != len(spec.output_names):
            raise RuntimeError(f"_run_graph returned {len(outs)} tensors but the model has "
                               f"{len(spec.output_names)} outputs {spec.output_names}.")
        total, parts = None, []
        for i, loss, weight in spec.loss_entries:
            try:
                sw = None if sws is None else sws[i]
                m = None if masks is None else masks[i]
                value = loss(ys[i], outs[i], sw) if m is None else loss(ys[i], outs[i], sw, mask=m)
            except (RuntimeError, ValueError, IndexError) as e:
                raise ValueError(f"Computing loss {getattr(loss, 'name', loss)!r} for output "
                                 f"{spec.output_names[i]!r} failed: y_true has shape {tuple(ys[i].shape)} and dtype "
                                 f"{ys[i].dtype}, y_pred has shape {tuple(outs[i].shape)}. {e}") from e
            parts.append(value)
            if weight is not None:
                value = value * weight
            total = value if total is None else total + value
        return total, parts

    def _update_state(self, spec, total, parts, ys, outs, sws, batch_size, masks=None):
        self._loss_tracker.update_state(total.detach(), batch_size)
        if self._output_loss_trackers:
            for tracker, value in zip(self._output_loss_trackers, parts):
                tracker.update_state(value.detach(), batch_size)
        if spec.metric_entries:
            with torch.no_grad():
                for _, m, i, weighted in spec.metric_entries:
                    sw = sws[i] if (weighted and sws is not None) else None
                    mask = None if masks is None else masks[i]
                    if mask is None:
                        m.update_state(ys[i], outs[i].detach(), sw)
                    else:
                        m.update_state(ys[i], outs[i].detach(), sw, mask=mask)

    def _train_step(self, spec, xs, ys, sws, scale=None, empty=False):
        """``scale``: the loss factor of this rank's share of a global batch (distributed fit);
        ``empty``: the batch is a stand-in row (scale 0) whose metrics are not recorded."""
        opt = self.optimizer
        if opt.built:
            opt.zero_grad(set_to_none=True)
        outs, masks = self._forward(xs, training=True)
        if not opt.built:   # parameters created lazily by the first forward pass
            opt.build(self.parameters())
        total, parts = self._compute_loss(spec, ys, outs, sws, masks)
        grad_total = total if scale is None or scale == 1.0 else total * scale
        reg = getattr(self, "_regularization_losses", None)
        if reg is not None:
            for r in reg() or ():
                total, grad_total = total + r, grad_total + r
        grad_total.backward()
        opt.step()
        if not empty:
            self._update_state(spec, total, parts, ys, outs, sws, _batch_size(xs), masks)

    def _test_step(self, spec, xs, ys, sws):
        outs, masks = self._forward(xs, training=False)
        total, parts = self._compute_loss(spec, ys, outs, sws, masks)
        self._update_state(spec, total, parts, ys, outs, sws, _batch_size(xs), masks)

    # ---- fit ---------------------------------------------------------------------------------
    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None, validation_split=0.0,
            validation_data=None, shuffle=True, class_weight=None, sample_weight=None, initial_epoch=0,
            steps_per_epoch=None, validation_steps=None, validation_batch_size=None, validation_freq=1):
        """Train for ``epochs`` epochs; returns the ``History`` (also ``model.history``)."""
        _checks.fit_arguments(self, "fit", batch_size, epochs, initial_epoch, steps_per_epoch, validation_split,
                              validation_freq, class_weight, shuffle, validation_steps, validation_batch_size,
                              steps_arg="steps_per_epoch")
        spec = self._spec("fit")
        world = distributed.world()
        verbose = distributed.display_verbose(resolve_verbose(verbose), world)
        if is_batch_iterable(x):
            if validation_split:
                raise ValueError("validation_split is only supported for array inputs, not for a dataset/iterable "
                                 f"of batches (received a {type(x).__name__}); pass validation_data instead.")
            data, val_flat = feed.batches(spec, x, y, sample_weight, batch_size, steps_per_epoch, what="fit"), None
        else:
            data, val_flat = feed.array_batches(spec, x, y, sample_weight, class_weight, batch_size, shuffle,
                                              steps_per_epoch, split=validation_split)
        val_data = None
        if val_flat is not None:
            val_data = ArrayBatches(val_flat, validation_batch_size or batch_size or 32, steps=validation_steps,
                                    cycle=False)
        elif validation_data is not None:
            val_data = feed.validation_batches(spec, validation_data, validation_batch_size or batch_size,
                                             validation_steps)
        data, val_data = distributed.shard(data, world), distributed.shard(val_data, world)
        distributed.sync_numpy_rng(world)
        history = History()
        cbs = CallbackList(list(callbacks or []) + [history], model=self,
                           params={"epochs": epochs, "steps": data.steps_per_epoch, "verbose": verbose})
        progress = Progress(verbose, epochs=epochs)
        self.history, self.stop_training = history, False
        want_logs = cbs.wants_batch_logs("train")
        show = (lambda: self._logs(local=True)) if verbose == 1 else None
        epoch_logs, mv = {}, _mover(self._device())
        cbs.on_train_begin()
        ddp = distributed.ddp_training(self, world)   # DDP around the forward pass when distributed
        ddp.__enter__()
        try:
            for epoch in range(initial_epoch, epochs):
                self.reset_metrics()
                self.train()
                distributed.begin_epoch(data, epoch)
                cbs.on_epoch_begin(epoch)
                progress.begin(epoch, data.steps_per_epoch)
                steps = 0
                for step, batch in enumerate(data.epoch()):
                    if want_logs:
                        cbs.batch("train", "begin", step, {})
                    xs, ys, sws = feed.split_batch(spec, batch, data, mv, class_weight)
                    self._train_step(spec, xs, ys, sws, getattr(batch, "scale", None), getattr(batch, "empty", False))
                    steps += 1
                    if want_logs:
                        cbs.batch("train", "end", step, self._logs())
                        if world is not None:
                            self.stop_training = distributed.any_rank(self.stop_training)
                    progress.update(show)
                    if self.stop_training:
                        break
                if steps == 0:
                    progress.end({})
                    warnings.warn("The training data produced no batches in this epoch; stopping training.",
                                  stacklevel=2)
                    break
                epoch_logs = self._logs()
                if val_data is not None and _should_validate(epoch, validation_freq):
                    val_logs = self._run_test(spec, val_data, cbs)
                    epoch_logs.update({"val_" + k: v for k, v in val_logs.items()})
                progress.end(epoch_logs)
                cbs.on_epoch_end(epoch, epoch_logs)
                if world is not None:
                    self.stop_training = distributed.any_rank(self.stop_training)
                if self.stop_training:
                    break
        finally:
            progress.close()
            ddp.__exit__(None, None, None)
        cbs.on_train_end(epoch_logs)
        self.eval()
        return history

    def _run_test(self, spec, data, cbs, progress=None):
        self.reset_metrics()
        self.eval()
        cbs.on_test_begin()
        want = cbs.wants_batch_logs("test")
        show = (lambda: self._logs(local=True)) if progress is not None and progress.verbose == 1 else None
        mv = _mover(self._device())
        with torch.no_grad():
            for step, batch in enumerate(data.epoch()):
                if want:
                    cbs.batch("test", "begin", step, {})
                if not getattr(batch, "empty", False):   # a rank's empty share of a distributed batch
                    self._test_step(spec, *feed.split_batch(spec, batch, data, mv))
                if want:
                    cbs.batch("test", "end", step, self._logs())
                if progress is not None:
                    progress.update(show)
        logs = self._logs()
        cbs.on_test_end(logs)
        return logs

    # ---- evaluate / predict --------------------------------------------------------------------
    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None, steps=None,
                 callbacks=None, return_dict=False):
        """Loss and metrics on the data: a dict if ``return_dict``, else a float when there is
        only the loss, else a list in ``metrics_names`` order."""
        _checks.fit_arguments(self, "evaluate", batch_size, steps=steps)
        spec = self._spec("evaluate")
        world = distributed.world()
        verbose = distributed.display_verbose(resolve_verbose(verbose), world)
        data = distributed.shard(feed.batches(spec, x, y, sample_weight, batch_size, steps, what="evaluate"), world)
        cbs = CallbackList(callbacks, model=self, params={"steps": data.steps_per_epoch, "verbose": verbose})
        progress = Progress(verbose)
        progress.begin(steps=data.steps_per_epoch)
        logs = self._run_test(spec, data, cbs, progress)
        progress.end(logs)
        return _format_result(logs, return_dict)

    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None):
        """Model outputs as numpy (a list of arrays for several outputs), computed batch by batch
        in ``eval()`` mode under ``torch.inference_mode()``.  Under torch.distributed every rank
        predicts its share of array inputs and all ranks receive all outputs, in input order."""
        _checks.fit_arguments(self, "predict", batch_size, steps=steps)
        world = distributed.world()
        verbose = distributed.display_verbose(resolve_verbose(verbose), world)
        names, dtypes = list(self.input_names), [getattr(t, "dtype", None) for t in self.inputs]
        if is_batch_iterable(x):
            data, iterable = IterableBatches(x, steps), True
        else:
            xs = standardize_x(x, names, dtypes)
            check_cardinality(list(zip(x_labels(names), xs)))
            data, iterable = ArrayBatches(xs, batch_size or 32, steps=steps, cycle=False), False
            data = distributed.shard(data, world)
        cbs = CallbackList(callbacks, model=self, params={"steps": data.steps_per_epoch, "verbose": verbose})
        progress = Progress(verbose)
        progress.begin(steps=data.steps_per_epoch)
        want = cbs.wants_batch_logs("predict")
        collected, mv = None, _mover(self._device())
        self.eval()
        cbs.on_predict_begin()
        with torch.inference_mode():
            for step, batch in enumerate(data.epoch()):
                if iterable:
                    batch = standardize_x(unpack_batch(batch)[0], names, dtypes)
                if want:
                    cbs.batch("predict", "begin", step, {})
                outs = [o.detach().cpu() for o in self._forward([mv(t) for t in batch], training=False)[0]]
                collected = [[] for _ in outs] if collected is None else collected
                for bucket, o in zip(collected, outs):
                    bucket.append(None if getattr(batch, "empty", False) else o)
                if want:
                    cbs.batch("predict", "end", step, {"outputs": outs})
                progress.update()
        cbs.on_predict_end()
        progress.end()
        if collected is None:
            raise ValueError("predict() received no data (zero batches).")
        if world is not None and not iterable:
            collected = distributed.gather_predictions(world, collected)
        results = [_to_numpy(torch.cat(parts, dim=0)) for parts in collected]
        return results[0] if len(results) == 1 else results

    # ---- single batches ------------------------------------------------------------------------
    def train_on_batch(self, x, y=None, sample_weight=None, class_weight=None, return_dict=False):
        """One training step on exactly this batch; returns its loss and metrics."""
        _checks.fit_arguments(self, "fit", class_weight=class_weight)
        spec = self._spec("train_on_batch")
        batch = feed.single_batch(spec, _mover(self._device()), x, y, sample_weight, class_weight)
        self.reset_metrics()
        self.train()
        with distributed.ddp_training(self, distributed.world()):   # each rank's batch; DDP averages
            self._train_step(spec, *batch)
        self.eval()
        return _format_result(self._logs(), return_dict)

    def test_on_batch(self, x, y=None, sample_weight=None, return_dict=False):
        spec = self._spec("test_on_batch")
        batch = feed.single_batch(spec, _mover(self._device()), x, y, sample_weight)
        self.reset_metrics()
        self.eval()
        with torch.no_grad():
            self._test_step(spec, *batch)
        return _format_result(self._logs(), return_dict)

    def predict_on_batch(self, x):
        xs = standardize_x(x, list(self.input_names), [getattr(t, "dtype", None) for t in self.inputs])
        mv = _mover(self._device())
        self.eval()
        with torch.inference_mode():
            outs = [_to_numpy(o.detach().cpu()) for o in self._forward([mv(t) for t in xs], training=False)[0]]
        return outs[0] if len(outs) == 1 else outs


def _mover(device):
    def move(t):
        if t is None or t.device == device:
            return t
        return t.to(device, non_blocking=True)
    return move


def _batch_size(xs):
    return int(xs[0].shape[0]) if xs and xs[0].dim() else 1


def _to_numpy(t):
    if t.dtype == torch.bfloat16:
        t = t.float()
    return t.numpy()


def _should_validate(epoch, freq):
    if isinstance(freq, numbers.Integral):
        return (epoch + 1) % freq == 0
    return (epoch + 1) in set(freq)


def _format_result(logs, return_dict):
    if return_dict:
        return logs
    values = list(logs.values())
    return values[0] if len(values) == 1 else values

