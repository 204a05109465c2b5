"""Keras-like console output: ``Epoch i/N`` then a tqdm bar (verbose=1) or one summary line per
epoch (verbose=2).  Metric values are read (which synchronizes with the device) at most every
``interval`` seconds while a bar runs, and at the end of each epoch."""

import numbers
import sys
import time

from tqdm.auto import tqdm

from .. import _logging

__all__ = ["Progress", "format_logs", "resolve_verbose"]


def resolve_verbose(verbose):
    if isinstance(verbose, str) and verbose == "auto":
        return 1
    if isinstance(verbose, (bool, numbers.Integral)) and verbose in (0, 1, 2):
        return int(verbose)
    raise ValueError(f"verbose must be 'auto', 0, 1 or 2; received {verbose!r}.")


def _fmt(v):
    try:
        v = float(v)
    except (TypeError, ValueError):
        return str(v)
    return f"{v:.4e}" if v != 0 and abs(v) < 1e-3 else f"{v:.4f}"


def format_logs(logs, sep=" - "):
    return sep.join(f"{k}: {_fmt(v)}" for k, v in logs.items())


class Progress:
    """One progress display for fit (``epochs`` given), evaluate or predict."""

    def __init__(self, verbose, epochs=None, interval=0.2, file=None):
        if verbose == 1 and not _logging.is_interactive():     # bars off: fit's epoch lines only
            verbose = 2 if epochs is not None else 0
        self.verbose, self.epochs, self.interval = verbose, epochs, interval
        self.file = file or sys.stdout
        self.bar = None
        self._t0 = self._last = 0.0
        self._steps_done = 0

    def begin(self, epoch=None, steps=None):
        self._steps_done = 0
        self._t0 = self._last = time.monotonic()
        if self.verbose == 0:
            return
        if epoch is not None and self.epochs is not None:
            print(f"Epoch {epoch + 1}/{self.epochs}", file=self.file, flush=True)
        if self.verbose == 1:
            self.bar = tqdm(total=steps, file=self.file, unit="step", leave=True, dynamic_ncols=True,
                            mininterval=0.1)

    def update(self, get_logs=None):
        """One more step; ``get_logs()`` gives the current running values (called when due)."""
        self._steps_done += 1
        if self.bar is None:
            return
        self.bar.update(1)
        if get_logs is not None:
            now = time.monotonic()
            if now - self._last >= self.interval:
                self._last = now
                self.bar.set_postfix_str(format_logs(get_logs()), refresh=False)

    def close(self):
        """Close a bar left open (training interrupted by an exception)."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def end(self, logs=None):
        logs = logs or {}
        if self.verbose == 1 and self.bar is not None:
            self.bar.set_postfix_str(format_logs(logs), refresh=False)
            self.bar.close()
            self.bar = None
        elif self.verbose == 2:
            elapsed = time.monotonic() - self._t0
            per_step = 1000.0 * elapsed / max(self._steps_done, 1)
            head = f"{self._steps_done}/{self._steps_done} - {elapsed:.0f}s - {per_step:.0f}ms/step"
            print(head + (" - " + format_logs(logs) if logs else ""), file=self.file, flush=True)
