"""``TensorBoard``: Keras' callback on ``torch.utils.tensorboard.SummaryWriter`` (optional extra ``tensorboard``).

Tags are Keras 3's: ``epoch_<name>`` (training logs plus ``epoch_learning_rate``) under ``log_dir/train``,
the ``val_`` logs as ``epoch_<name>`` under ``log_dir/validation`` (step = epoch index); with
``update_freq="batch"`` or an int N, ``batch_<name>`` under ``train`` every N global batches (step = global
batch index, from 1); ``evaluation_<name>_vs_iterations`` under ``validation`` after each evaluation
(step = optimizer iterations); with ``histogram_freq=N > 0``, one ``<weight path>/histogram`` per weight
(``model.weights``, Keras layout: ``lstm_cell/kernel/histogram``) every N epochs.  Only rank 0 writes under torch.distributed.
"""

import os

import numpy as np
import torch

from . import distributed
from .callbacks import Callback
from .optimizers import get_learning_rate

_MISSING = ("TensorBoard requires the `tensorboard` package (`pip install tensorboard`, or "
            "`pip install rnnstate[tensorboard]`).")


def _scalar(v):
    if isinstance(v, torch.Tensor):
        return float(v.detach().cpu().reshape(-1)[0]) if v.numel() == 1 else None
    if isinstance(v, (int, float, np.generic)) and not isinstance(v, bool):
        return float(v)
    return None


class TensorBoard(Callback):
    """Write scalar logs (and weight histograms) for TensorBoard, as ``keras.callbacks.TensorBoard``.

    Args:
        log_dir: directory; event files go to ``log_dir/train`` and ``log_dir/validation``.
        histogram_freq: every how many epochs to write weight histograms (0: never).
        write_graph: accepted for Keras compatibility; graphs are not written (a Keras graph is a TF
            concept); ``True`` is ignored.
        write_images, write_steps_per_second, profile_batch, embeddings_freq, embeddings_metadata: the
            TF-only features; their off values are accepted, anything else is refused with a ValueError.
        update_freq: ``"epoch"`` (default), ``"batch"`` or an int N: write ``batch_<name>`` scalars every
            N training batches.
    """

    def __init__(self, log_dir="logs", histogram_freq=0, write_graph=True, write_images=False,
                 write_steps_per_second=False, update_freq="epoch", profile_batch=0, embeddings_freq=0,
                 embeddings_metadata=None):
        super().__init__()
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as e:   # torch raises ImportError when tensorboard is absent
            raise ImportError(_MISSING) from e
        self._writer_cls = SummaryWriter
        for name, value in (("write_images", write_images), ("write_steps_per_second", write_steps_per_second),
                            ("profile_batch", profile_batch), ("embeddings_freq", embeddings_freq),
                            ("embeddings_metadata", embeddings_metadata)):
            if value:
                raise ValueError(f"TensorBoard: `{name}` is not supported by rnnstate (a TensorFlow feature); "
                                 f"expected it off (0/False/None). Received: {name}={value!r}")
        if isinstance(histogram_freq, bool) or not isinstance(histogram_freq, int) or histogram_freq < 0:
            raise ValueError(f"TensorBoard: `histogram_freq` must be an int >= 0. Received: "
                             f"histogram_freq={histogram_freq!r}")
        if update_freq == "batch":
            update_freq = 1
        if update_freq != "epoch" and (isinstance(update_freq, bool) or not isinstance(update_freq, int)
                                       or update_freq < 1):
            raise ValueError(f"TensorBoard: `update_freq` must be 'epoch', 'batch' or an int >= 1. Received: "
                             f"update_freq={update_freq!r}")
        self.log_dir = os.fspath(log_dir)
        self.histogram_freq, self.write_graph, self.update_freq = histogram_freq, write_graph, update_freq
        self._wants_batch_hooks = update_freq != "epoch"
        self._writers = {}
        self._global_train_batch = 0

    def _writer(self, which):
        if which not in self._writers:
            self._writers[which] = self._writer_cls(os.path.join(self.log_dir, which))
        return self._writers[which]

    def on_train_begin(self, logs=None):
        self._global_train_batch = 0

    def on_train_batch_end(self, batch, logs=None):
        self._global_train_batch += 1
        if self.update_freq == "epoch" or self._global_train_batch % self.update_freq or not distributed.is_chief():
            return
        w = self._writer("train")
        for name, value in (logs or {}).items():
            v = _scalar(value)
            if v is not None:
                w.add_scalar(f"batch_{name}", v, self._global_train_batch)

    def on_test_end(self, logs=None):
        """Keras 3's ``evaluation_<name>_vs_iterations`` under ``validation``, step = optimizer iterations."""
        steps = getattr(getattr(self.model, "optimizer", None), "iterations", None)
        if steps is None or not distributed.is_chief():
            return
        w = self._writer("validation")
        for name, value in (logs or {}).items():
            v = _scalar(value)
            if v is not None:
                w.add_scalar(f"evaluation_{name}_vs_iterations", v, int(steps))

    def _learning_rate(self):
        opt = getattr(self.model, "optimizer", None)
        opt = getattr(opt, "torch_optimizer", None) or opt
        if isinstance(opt, torch.optim.Optimizer):
            return get_learning_rate(opt)
        return None

    def on_epoch_end(self, epoch, logs=None):
        if not distributed.is_chief():
            return
        logs = dict(logs or {})
        train = {k: v for k, v in logs.items() if not k.startswith("val_")}
        val = {k[4:]: v for k, v in logs.items() if k.startswith("val_")}
        lr = self._learning_rate()
        if lr is not None and "learning_rate" not in train:
            train["learning_rate"] = lr
        for which, items in (("train", train), ("validation", val)):
            if not items:
                continue
            w = self._writer(which)
            for name, value in items.items():
                v = _scalar(value)
                if v is not None:
                    w.add_scalar(f"epoch_{name}", v, epoch)
        if self.histogram_freq and epoch % self.histogram_freq == 0:
            w = self._writer("train")
            seen = set()
            for i, weight in enumerate(self.model.weights):   # Keras layout and paths: `lstm_cell/kernel`
                tag = f"{getattr(weight, 'path', None) or f'weight_{i}'}/histogram"
                tag = tag if tag not in seen else f"{tag}_{i}"
                seen.add(tag)
                w.add_histogram(tag, np.asarray(weight.numpy(), dtype=np.float32), epoch)
        for w in self._writers.values():
            w.flush()

    def on_train_end(self, logs=None):
        for w in self._writers.values():
            w.close()
        self._writers = {}
